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

use crate::catalog::{CatalogEntry, Family};
use crate::error::DatasetError;
use crate::prepare::PrepareOptions;
use crate::service::{BatchRequest, Datasets, Origin, batch, batch_count};

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
            | DatasetError::Checksum { .. } => Status::failed_precondition(message),
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
        Family::Vision => pb::DatasetFamily::Vision,
        Family::Tabular => pb::DatasetFamily::Tabular,
        Family::Text => pb::DatasetFamily::Text,
    }
}

fn info(entry: &CatalogEntry) -> pb::DatasetInfo {
    let defaults = PrepareOptions::default();
    let input_kind = match entry.family {
        Family::Vision => pb::InputKind::Image,
        Family::Tabular => pb::InputKind::Tabular,
        Family::Text => pb::InputKind::Text,
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
        .chain(
            (entry.family == Family::Text)
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
        if text.tokenizer == pb::Tokenizer::Bpe as i32 {
            return Err(DatasetError::Unsupported(
                "the BPE tokenizer is not available yet; use TOKENIZER_WORD".into(),
            ));
        }
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
    if options.synthetic.is_some() || options.hugging_face.is_some() {
        return Err(DatasetError::Unsupported(
            "synthetic and Hugging Face options apply to generators not served yet".into(),
        ));
    }
    let origin = Origin {
        source_dir: (!options.source_dir.is_empty()).then(|| options.source_dir.into()),
        skip_checksums: options.skip_checksums,
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
            text: Some(pb::TextOptions {
                tokenizer: pb::Tokenizer::Word.into(),
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

fn progress(stage: &str, message: &str) -> pb::PrepareDatasetEvent {
    pb::PrepareDatasetEvent {
        event: Some(pb::prepare_dataset_event::Event::Progress(
            pb::PrepareProgress {
                stage: stage.to_owned(),
                message: message.to_owned(),
                ..pb::PrepareProgress::default()
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
        let entry = self.datasets.describe(&request.into_inner().name)?;
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
        self.datasets.describe(&request.name)?;
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        let datasets = Arc::clone(&self.datasets);
        tokio::task::spawn_blocking(move || {
            let mut report = |stage: &'static str, message: &str| {
                let _ = sender.blocking_send(Ok(progress(stage, message)));
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
                        x: data.x,
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
}
