//! The thin tonic adapter: each RPC validates and converts its request, calls [`Datasets`]
//! (blocking work on the blocking pool), and converts the result back; errors go through the
//! one exhaustive `From<DatasetError> for Status`.

use std::pin::Pin;
use std::sync::Arc;

use ra_prepared::PreparedError;
use ra_proto::dataset::v1 as pb;
use ra_proto::dataset::v1::dataset_service_server::{DatasetService, DatasetServiceServer};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::convert::{
    family_to_pb, hub_info, info, local_info, manifest_to_pb, options_from_pb, progress_to_pb,
};
use crate::error::DatasetError;
use crate::progress::Progress;
use crate::service::{BatchRequest, Datasets, batch, batch_count};

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
            DatasetError::NotThere { .. } => Status::not_found(message),
            DatasetError::TooLarge { .. } => Status::resource_exhausted(message),
            DatasetError::Forbidden(_) => Status::permission_denied(message),
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
        if crate::local::parse(&name)?.is_some() {
            let datasets = Arc::clone(&self.datasets);
            let summary = blocking(move || datasets.describe_local(&name)).await?;
            return Ok(Response::new(local_info(&summary)));
        }
        let entry = self.datasets.describe(&name)?;
        Ok(Response::new(info(entry)))
    }

    #[tracing::instrument(skip(self, request))]
    async fn upload_dataset(
        &self,
        request: Request<tonic::Streaming<pb::UploadDatasetRequest>>,
    ) -> Result<Response<pb::UploadDatasetResponse>, Status> {
        use pb::upload_dataset_request::Item;
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(pb::UploadDatasetRequest {
                item: Some(Item::Header(header)),
            }) => header,
            _ => {
                return Err(Status::invalid_argument(
                    "an upload starts with a header (kind, name, options), then the files' chunks",
                ));
            }
        };
        let datasets = Arc::clone(&self.datasets);
        let mut upload =
            blocking(move || datasets.start_upload(&header.kind, &header.name, &header.options))
                .await?;
        // Chunks are written on the blocking pool one at a time; the upload's private folder
        // is removed if anything fails before the end.
        while let Some(message) = stream.message().await? {
            let chunk = match message.item {
                Some(Item::Chunk(chunk)) => chunk,
                Some(Item::Header(_)) => {
                    return Err(Status::invalid_argument("an upload has one header, first"));
                }
                None => return Err(Status::invalid_argument("an upload message holds nothing")),
            };
            upload = blocking(move || {
                upload.write(&chunk.path, &chunk.data)?;
                Ok(upload)
            })
            .await?;
        }
        let uploaded = blocking(move || upload.finish()).await?;
        tracing::info!(name = %uploaded.name, bytes = uploaded.bytes, "dataset uploaded");
        Ok(Response::new(pb::UploadDatasetResponse {
            name: uploaded.name,
            upload_id: uploaded.id,
            bytes: uploaded.bytes,
            files: uploaded.files,
        }))
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
        } else if crate::local::parse(&request.name)?.is_some() {
            // Read (and refused) by the preparation itself, with its progress.
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
