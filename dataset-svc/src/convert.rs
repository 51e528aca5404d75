//! Conversions between dataset-svc's domain types and the `dataset.v1` contract: catalog
//! entries and Hub datasets to `DatasetInfo`, request options to [`PrepareOptions`], prepared
//! manifests to `Manifest`, and progress to events. Checked here: every request field that
//! maps onto a domain option (names, ranges, enum values).

use ra_client::local_data::LocalKind;
use ra_prepared::{Manifest, PreparedDataset};
use ra_proto::dataset::v1 as pb;

use crate::catalog::{CatalogEntry, Family, Origin as SampleOrigin};
use crate::error::DatasetError;
use crate::hub::{ColumnMapping, HubDataset};
use crate::local::LocalSummary;
use crate::prepare::PrepareOptions;
use crate::progress::Progress;
use crate::service::Origin;
use crate::synthetic::{Generator, SyntheticOptions};
use crate::text::TokenizerKind;

pub(crate) fn family_to_pb(family: Family) -> pb::DatasetFamily {
    match family {
        Family::Synthetic => pb::DatasetFamily::Synthetic,
        Family::Vision => pb::DatasetFamily::Vision,
        Family::Tabular => pb::DatasetFamily::Tabular,
        Family::Text => pb::DatasetFamily::Text,
    }
}

pub(crate) fn info(entry: &CatalogEntry) -> pb::DatasetInfo {
    let defaults = PrepareOptions::default();
    let input_kind = match (entry.family, entry.origin) {
        (Family::Vision, _) | (_, SampleOrigin::Generated(Generator::Shapes)) => {
            pb::InputKind::Image
        }
        (Family::Text, _) | (_, SampleOrigin::Generated(Generator::Text)) => pb::InputKind::Text,
        _ => pb::InputKind::Tabular,
    };
    let generated = match entry.origin {
        SampleOrigin::Generated(generator) => Some(generator.defaults()),
        SampleOrigin::Files(_) => None,
    };
    pb::DatasetInfo {
        name: entry.name.to_owned(),
        family: family_to_pb(entry.family).into(),
        task: "classification".into(),
        input_kind: input_kind.into(),
        input_shape: entry.input_shape.to_vec(),
        class_names: entry.class_names.iter().map(|c| (*c).to_owned()).collect(),
        source_splits: entry
            .source_splits
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        sources: entry
            .sources
            .iter()
            .map(|source| pb::SourceFile {
                file_name: source.file_name.to_owned(),
                url: source.url.to_owned(),
                sha256: source.sha256.unwrap_or_default().to_owned(),
                size_bytes: source.size_bytes,
            })
            .collect(),
        license: entry.license.to_owned(),
        size_bytes: entry.sources.iter().map(|s| s.size_bytes).sum(),
        description: entry.description.to_owned(),
        option_defaults: [
            ("val_fraction", defaults.val_fraction.to_string()),
            ("test_fraction", defaults.test_fraction.to_string()),
            ("seed", defaults.seed.to_string()),
        ]
        .into_iter()
        .chain(generated.into_iter().flat_map(|d| {
            [
                ("synthetic.num_samples", d.num_samples.to_string()),
                ("synthetic.num_classes", d.num_classes.to_string()),
                ("synthetic.size", d.size.to_string()),
                ("synthetic.channels", d.channels.to_string()),
                ("synthetic.noise", d.noise.to_string()),
                ("synthetic.difficulty", d.difficulty.to_string()),
            ]
        }))
        .chain(
            (input_kind == pb::InputKind::Text)
                .then(|| {
                    [
                        ("text.sequence_length", defaults.sequence_length.to_string()),
                        ("text.min_frequency", defaults.min_frequency.to_string()),
                        ("text.vocab_size", defaults.max_vocab.to_string()),
                    ]
                })
                .into_iter()
                .flatten(),
        )
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
    }
}

/// What is known of a Hugging Face dataset before its files are read.
pub(crate) fn hub_info(dataset: &HubDataset) -> pb::DatasetInfo {
    pb::DatasetInfo {
        name: dataset.name(),
        family: pb::DatasetFamily::HuggingFace.into(),
        task: "classification".into(),
        sources: vec![pb::SourceFile {
            file_name: format!("{}/*.parquet", dataset.config.as_deref().unwrap_or("*")),
            url: format!("https://huggingface.co/datasets/{}", dataset.repo),
            ..pb::SourceFile::default()
        }],
        description: format!(
            "Hugging Face dataset {}, read from its parquet files (the input kind, shape and classes are known once prepared)",
            dataset.repo
        ),
        option_defaults: [
            (
                "hugging_face.text_column",
                "text, sentence, content, review or document",
            ),
            ("hugging_face.label_column", "label, labels or class"),
            ("hugging_face.image_column", "image or img (PNG)"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        ..pb::DatasetInfo::default()
    }
}

/// DescribeDataset's answer for a researcher's own files.
pub(crate) fn local_info(summary: &LocalSummary) -> pb::DatasetInfo {
    let (family, input_kind) = match summary.kind {
        LocalKind::Images => (pb::DatasetFamily::Vision, pb::InputKind::Image),
        LocalKind::Text => (pb::DatasetFamily::Text, pb::InputKind::Text),
        LocalKind::Csv | LocalKind::Tsv | LocalKind::Parquet => {
            (pb::DatasetFamily::Tabular, pb::InputKind::Tabular)
        }
    };
    pb::DatasetInfo {
        name: summary.name.clone(),
        family: family.into(),
        task: "classification".into(),
        input_kind: input_kind.into(),
        input_shape: summary.input_shape(),
        class_names: summary.raw.class_names.clone(),
        source_splits: vec!["train".into()],
        sources: summary
            .raw
            .source_checksums
            .iter()
            .map(|(file_name, sha256)| pb::SourceFile {
                file_name: file_name.clone(),
                url: String::new(),
                sha256: sha256.clone(),
                size_bytes: summary.bytes,
            })
            .collect(),
        license: "your own data".into(),
        size_bytes: summary.bytes,
        description: summary.description(),
        option_defaults: summary
            .kind
            .option_keys()
            .iter()
            .map(|key| {
                (
                    (*key).to_owned(),
                    local_default(summary.kind, key).to_owned(),
                )
            })
            .collect(),
    }
}

/// What a local name's option is when left out.
fn local_default(kind: LocalKind, key: &str) -> &'static str {
    match (kind, key) {
        (LocalKind::Text, "text") => "text, sentence, content, review, document, body or message",
        (_, "label") => {
            "label, labels, target, class, y, category or sentiment; tables: else the last column"
        }
        (_, "header") => "found from the cells (a first row of names over numbers)",
        (_, "size") => "the images' own size (all must match)",
        (_, "channels") => "3 when any image has colour, else 1",
        _ => "",
    }
}

/// The request's options over the defaults (0 and empty mean "the default").
pub(crate) fn options_from_pb(
    options: Option<pb::PrepareOptions>,
) -> Result<(PrepareOptions, Origin), DatasetError> {
    let options = options.unwrap_or_default();
    let mut converted = PrepareOptions {
        seed: options.seed,
        subset_size: (options.subset_size > 0).then_some(options.subset_size as usize),
        ..PrepareOptions::default()
    };
    if options.val_fraction != 0.0 {
        converted.val_fraction = options.val_fraction;
    }
    converted.test_fraction = options.test_fraction;
    if let Some(text) = options.text {
        converted.tokenizer = match pb::Tokenizer::try_from(text.tokenizer) {
            Ok(pb::Tokenizer::Unspecified | pb::Tokenizer::Word) => TokenizerKind::Word,
            Ok(pb::Tokenizer::Bpe) => TokenizerKind::Bpe,
            Err(_) => {
                return Err(crate::error::bad_option(
                    "text.tokenizer",
                    format!(
                        "tokenizer {} is unknown: use TOKENIZER_WORD or TOKENIZER_BPE",
                        text.tokenizer
                    ),
                ));
            }
        };
        if text.min_frequency > 0 {
            converted.min_frequency = text.min_frequency as usize;
        }
        if text.vocab_size > 0 {
            converted.max_vocab = text.vocab_size as usize;
        }
        if text.sequence_length > 0 {
            converted.sequence_length = text.sequence_length as usize;
        }
    }
    let synthetic = options.synthetic.map(|s| SyntheticOptions {
        num_samples: s.num_samples as usize,
        num_classes: s.num_classes as usize,
        size: s.size as usize,
        channels: s.channels as usize,
        noise: s.noise,
        difficulty: s.difficulty,
    });
    let origin = Origin {
        source_dir: (!options.source_dir.is_empty()).then(|| options.source_dir.into()),
        skip_checksums: options.skip_checksums,
        offline: options.offline,
        synthetic,
        hugging_face: options.hugging_face.map(|h| ColumnMapping {
            text: h.text_column,
            label: h.label_column,
            image: h.image_column,
        }),
    };
    Ok((converted, origin))
}

pub(crate) fn manifest_to_pb(dataset: &PreparedDataset) -> pb::Manifest {
    let manifest: &Manifest = dataset.manifest();
    let options = serde_json::from_value::<PrepareOptions>(manifest.options.clone())
        .ok()
        .map(|o| pb::PrepareOptions {
            seed: o.seed,
            val_fraction: o.val_fraction,
            test_fraction: o.test_fraction,
            subset_size: o.subset_size.map_or(0, |s| s as u32),
            skip_checksums: !manifest.checksums_verified,
            synthetic: o.synthetic.map(|s| pb::SyntheticOptions {
                num_samples: s.num_samples as u32,
                num_classes: s.num_classes as u32,
                size: s.size as u32,
                channels: s.channels as u32,
                noise: s.noise,
                difficulty: s.difficulty,
            }),
            hugging_face: o.hugging_face.map(|h| pb::HuggingFaceOptions {
                text_column: h.text,
                label_column: h.label,
                image_column: h.image,
                revision: String::new(),
            }),
            text: Some(pb::TextOptions {
                tokenizer: match o.tokenizer {
                    TokenizerKind::Word => pb::Tokenizer::Word,
                    TokenizerKind::Bpe => pb::Tokenizer::Bpe,
                }
                .into(),
                min_frequency: o.min_frequency as u32,
                vocab_size: o.max_vocab as u32,
                sequence_length: o.sequence_length as u32,
            }),
            ..pb::PrepareOptions::default()
        });
    let created_at = humantime::parse_rfc3339(&manifest.created_at)
        .ok()
        .map(prost_types::Timestamp::from);
    pb::Manifest {
        format_version: manifest.format_version,
        prepared_id: manifest.prepared_id.clone(),
        dataset: manifest.dataset.clone(),
        input: Some((&manifest.input).into()),
        x_dtype: manifest.x_dtype.name().into(),
        class_names: manifest.class_names.clone(),
        splits: manifest
            .splits
            .iter()
            .map(|split| pb::SplitInfo {
                name: split.name.clone(),
                num_samples: split.num_samples,
                file_name: split.file_name.clone(),
                sha256: split.sha256.clone(),
                class_counts: split.class_counts.clone(),
            })
            .collect(),
        normalization_mean: manifest.normalization.mean.clone(),
        normalization_std: manifest.normalization.std.clone(),
        source_checksums: manifest.source_checksums.clone().into_iter().collect(),
        checksums_verified: manifest.checksums_verified,
        options,
        imbalance_ratio: manifest.imbalance_ratio,
        path: dataset.dir().display().to_string(),
        created_at,
    }
}

pub(crate) fn progress_to_pb(progress: Progress) -> pb::PrepareDatasetEvent {
    pb::PrepareDatasetEvent {
        event: Some(pb::prepare_dataset_event::Event::Progress(
            pb::PrepareProgress {
                stage: progress.stage.to_owned(),
                fraction: progress.fraction,
                bytes_done: progress.bytes_done,
                bytes_total: progress.bytes_total,
                message: progress.message,
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_options_become_domain_options_and_unknown_enums_are_refused() {
        let (defaults, origin) = options_from_pb(None).expect("defaults");
        assert_eq!(defaults, PrepareOptions::default());
        assert_eq!(origin.source_dir, None);
        let (options, origin) = options_from_pb(Some(pb::PrepareOptions {
            seed: 7,
            subset_size: 100,
            source_dir: "/data/cifar".into(),
            text: Some(pb::TextOptions {
                tokenizer: pb::Tokenizer::Bpe as i32,
                vocab_size: 500,
                ..Default::default()
            }),
            ..Default::default()
        }))
        .expect("valid");
        assert_eq!((options.seed, options.subset_size), (7, Some(100)));
        assert_eq!(
            (options.tokenizer, options.max_vocab),
            (TokenizerKind::Bpe, 500)
        );
        assert_eq!(
            origin.source_dir.as_deref(),
            Some(std::path::Path::new("/data/cifar"))
        );
        let error = options_from_pb(Some(pb::PrepareOptions {
            text: Some(pb::TextOptions {
                tokenizer: 42,
                ..Default::default()
            }),
            ..Default::default()
        }))
        .expect_err("unknown tokenizer");
        assert!(error.to_string().contains("text.tokenizer"), "{error}");
        assert_eq!(family_to_pb(Family::Vision), pb::DatasetFamily::Vision);
    }
}
