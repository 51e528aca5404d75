//! The thin tonic adapter: each RPC validates and converts its request, calls [`Datasets`]
//! (blocking work on the blocking pool), and converts the result back; errors go through the
//! one exhaustive `From<DatasetError> for Status`.

use std::pin::Pin;
use std::sync::Arc;

use ra_prepared::{Manifest, PreparedDataset, PreparedError};
use ra_proto::dataset::v1 as pb;
use ra_proto::dataset::v1::dataset_service_server::{DatasetService, DatasetServiceServer};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::catalog::{CatalogEntry, Family, Origin as SampleOrigin};
use crate::error::DatasetError;
use crate::hub::{ColumnMapping, HubDataset};
use crate::prepare::PrepareOptions;
use crate::progress::Progress;
use crate::service::{BatchRequest, Datasets, Origin, batch, batch_count};
use crate::synthetic::{Generator, SyntheticOptions};
use crate::text::TokenizerKind;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Buffered messages between a stream's producer and the client.
const STREAM_BUFFER: usize = 4;
/// The largest batch StreamBatches accepts, in samples.
const MAX_BATCH_SIZE: u32 = 65_536;

#[derive(Debug, Clone)]
pub struct DatasetGrpc {
    datasets: Arc<Datasets>,
    max_message_bytes: usize,
}

impl DatasetGrpc {
    pub fn new(datasets: Datasets, max_message_bytes: usize) -> Self {
        Self {
            datasets: Arc::new(datasets),
            max_message_bytes,
        }
    }

    /// The tonic server for this service, with the configured message-size limits.
    pub fn into_server(self) -> DatasetServiceServer<Self> {
        let limit = self.max_message_bytes;
        DatasetServiceServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }
}

impl From<DatasetError> for Status {
    fn from(error: DatasetError) -> Self {
        let message = error.to_string();
        match error {
            DatasetError::Option { .. } => Status::invalid_argument(message),
            DatasetError::UnknownDataset { .. } | DatasetError::UnknownPrepared(_) => {
                Status::not_found(message)
            }
            DatasetError::MissingFile { .. }
            | DatasetError::Malformed { .. }
            | DatasetError::Checksum { .. }
            | DatasetError::NeedOriginals(_) => Status::failed_precondition(message),
            DatasetError::Download { .. } => Status::unavailable(message),
            DatasetError::Unsupported(_) => Status::unimplemented(message),
            DatasetError::Io { .. } => Status::internal(message),
            DatasetError::Prepared(prepared) => match prepared {
                PreparedError::NoSplit { .. } => Status::not_found(message),
                PreparedError::Mismatch { .. } | PreparedError::Manifest { .. } => {
                    Status::data_loss(message)
                }
                PreparedError::NewerFormat { .. } => Status::failed_precondition(message),
                PreparedError::Invalid(_) => Status::invalid_argument(message),
                PreparedError::Io { .. } => Status::internal(message),
            },
        }
    }
}

fn family_to_pb(family: Family) -> pb::DatasetFamily {
    match family {
        Family::Synthetic => pb::DatasetFamily::Synthetic,
        Family::Vision => pb::DatasetFamily::Vision,
        Family::Tabular => pb::DatasetFamily::Tabular,
        Family::Text => pb::DatasetFamily::Text,
    }
}

fn info(entry: &CatalogEntry) -> pb::DatasetInfo {
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
fn hub_info(dataset: &HubDataset) -> pb::DatasetInfo {
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

/// The request's options over the defaults (0 and empty mean "the default").
fn options_from_pb(
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

fn manifest_to_pb(dataset: &PreparedDataset) -> pb::Manifest {
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

/// Runs blocking work on the blocking pool; a panic there becomes INTERNAL, not a crash.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DatasetError> + Send + 'static,
) -> Result<T, Status> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Status::from),
        Err(error) => Err(Status::internal(format!(
            "dataset-svc task failed: {error}"
        ))),
    }
}

fn progress_to_pb(progress: Progress) -> pb::PrepareDatasetEvent {
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

#[tonic::async_trait]
impl DatasetService for DatasetGrpc {
    #[tracing::instrument(skip(self, request))]
    async fn list_datasets(
        &self,
        request: Request<pb::ListDatasetsRequest>,
    ) -> Result<Response<pb::ListDatasetsResponse>, Status> {
        let family = request.into_inner().family;
        let datasets = self
            .datasets
            .catalog()
            .iter()
            .filter(|entry| family == 0 || family_to_pb(entry.family) as i32 == family)
            .map(info)
            .collect();
        Ok(Response::new(pb::ListDatasetsResponse { datasets }))
    }

    #[tracing::instrument(skip(self, request))]
    async fn describe_dataset(
        &self,
        request: Request<pb::DescribeDatasetRequest>,
    ) -> Result<Response<pb::DatasetInfo>, Status> {
        let name = request.into_inner().name;
        if name.starts_with("hf:") {
            let dataset = self.datasets.describe_hub(&name)?;
            return Ok(Response::new(hub_info(&dataset)));
        }
        let entry = self.datasets.describe(&name)?;
        Ok(Response::new(info(entry)))
    }

    type PrepareDatasetStream = ResponseStream<pb::PrepareDatasetEvent>;

    #[tracing::instrument(skip(self, request))]
    async fn prepare_dataset(
        &self,
        request: Request<pb::PrepareDatasetRequest>,
    ) -> Result<Response<Self::PrepareDatasetStream>, Status> {
        let request = request.into_inner();
        let (options, origin) = options_from_pb(request.options)?;
        // Refuse unknown names before a stream is opened.
        if request.name.starts_with("hf:") {
            self.datasets.describe_hub(&request.name)?;
        } else {
            self.datasets.describe(&request.name)?;
        }
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        let datasets = Arc::clone(&self.datasets);
        tokio::task::spawn_blocking(move || {
            let mut report = |progress: Progress| {
                let _ = sender.blocking_send(Ok(progress_to_pb(progress)));
            };
            let outcome = datasets.prepare(&request.name, &origin, &options, &mut report);
            let last = match outcome {
                Ok(dataset) => {
                    tracing::info!(prepared_id = %dataset.manifest().prepared_id, "dataset prepared");
                    Ok(pb::PrepareDatasetEvent {
                        event: Some(pb::prepare_dataset_event::Event::Manifest(manifest_to_pb(
                            &dataset,
                        ))),
                    })
                }
                Err(error) => Err(Status::from(error)),
            };
            let _ = sender.blocking_send(last);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    type StreamBatchesStream = ResponseStream<pb::Batch>;

    #[tracing::instrument(skip(self, request))]
    async fn stream_batches(
        &self,
        request: Request<pb::StreamBatchesRequest>,
    ) -> Result<Response<Self::StreamBatchesStream>, Status> {
        let request = request.into_inner();
        if request.batch_size == 0 || request.batch_size > MAX_BATCH_SIZE {
            return Err(Status::invalid_argument(format!(
                "batch_size {} must be 1 to {MAX_BATCH_SIZE}",
                request.batch_size
            )));
        }
        let batches = BatchRequest {
            batch_size: request.batch_size as usize,
            shuffle_seed: request.shuffle_seed,
            normalize: request.normalize,
            max_batches: request.max_batches,
        };
        let datasets = Arc::clone(&self.datasets);
        let (id, split) = (request.prepared_id.clone(), request.split.clone());
        let (dataset, order) =
            blocking(move || datasets.plan_batches(&id, &split, &batches)).await?;
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        let split = request.split;
        tokio::task::spawn_blocking(move || {
            for index in 0..batch_count(order.len(), &batches) {
                let message = batch(&dataset, &split, &order, index, &batches)
                    .map(|data| pb::Batch {
                        index: data.index,
                        x_shape: data.x_shape,
                        x_dtype: data.x_dtype.to_owned(),
                        x: data.x.into(),
                        y: data.y,
                    })
                    .map_err(|error| Status::from(DatasetError::from(error)));
                let failed = message.is_err();
                // A closed channel means the client went away.
                if sender.blocking_send(message).is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    #[tracing::instrument(skip(self, request))]
    async fn get_prepared(
        &self,
        request: Request<pb::GetPreparedRequest>,
    ) -> Result<Response<pb::Manifest>, Status> {
        let id = request.into_inner().prepared_id;
        let datasets = Arc::clone(&self.datasets);
        let dataset = blocking(move || datasets.get_prepared(&id)).await?;
        Ok(Response::new(manifest_to_pb(&dataset)))
    }

    #[tracing::instrument(skip(self, request))]
    async fn list_prepared(
        &self,
        request: Request<pb::ListPreparedRequest>,
    ) -> Result<Response<pb::ListPreparedResponse>, Status> {
        let dataset = request.into_inner().dataset;
        let datasets = Arc::clone(&self.datasets);
        let found = blocking(move || datasets.list_prepared(&dataset)).await?;
        Ok(Response::new(pb::ListPreparedResponse {
            manifests: found.iter().map(manifest_to_pb).collect(),
        }))
    }

    #[tracing::instrument(skip(self, request))]
    async fn delete_prepared(
        &self,
        request: Request<pb::DeletePreparedRequest>,
    ) -> Result<Response<pb::DeletePreparedResponse>, Status> {
        let id = request.into_inner().prepared_id;
        let datasets = Arc::clone(&self.datasets);
        let freed_bytes = blocking(move || datasets.delete_prepared(&id)).await?;
        Ok(Response::new(pb::DeletePreparedResponse { freed_bytes }))
    }
}
