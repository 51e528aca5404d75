//! dataset-svc: datasets read from their original files, preprocessed with statistics of the
//! train split only, split deterministically and written in the prepared-dataset format.
//!
//! - [`catalog`]: every dataset by name, its original files and their pinned sha256 (or its
//!   generator), loading with checksum verification.
//! - [`synthetic`]: the offline generators (`synthetic`, `shapes`, `synthetic-tabular`,
//!   `synthetic-text`).
//! - [`formats`]: parsers of the original file formats (IDX, CIFAR binary, delimited text),
//!   each refusing truncated or malformed input with the file and the rule.
//! - [`download`]: resumable, verified downloads of originals.
//! - [`hub`]: Hugging Face datasets (`hf:<owner>/<name>[:<config>]`) from parquet files.
//! - [`local`]: researchers' own files (`csv:`, `tsv:`, `parquet:`, `images:`, `text:` names)
//!   and uploads of them.
//! - [`sources`]: one loader per catalog dataset, from a folder holding the original file names.
//! - [`split`]: deterministic stratified splits and subsets from a seed.
//! - [`tabular`]: column typing, imputation, one-hot encoding and standardisation.
//! - [`text`]: a word-level vocabulary built on the train split, and padding / truncation;
//!   [`bpe`]: byte-pair encoding trained on the train split.
//! - [`cache`]: the cache's entries by last use, deletion, the size cap.
//! - [`prepare`]: the whole preparation, from a [`RawDataset`] to a `PreparedDataset`;
//!   [`progress`]: what it reports as it goes.
//! - [`service`]: the service's logic behind the RPCs; [`grpc`]: the thin tonic adapter,
//!   [`convert`]: its conversions to and from the contract;
//!   [`config`]: the service configuration.
//!
//! [`run`] serves `ra.dataset.v1.DatasetService` on an already-bound listener until shutdown.

pub mod bpe;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod convert;
pub mod download;
pub mod error;
pub mod formats;
pub mod grpc;
pub mod hub;
pub mod local;
pub mod prepare;
pub mod progress;
pub mod raw;
pub mod service;
pub mod sources;
pub mod split;
pub mod synthetic;
pub mod tabular;
pub mod text;

pub use config::DatasetConfig;
pub use error::DatasetError;
pub use prepare::{PrepareOptions, prepare, prepare_reporting};
pub use progress::{Progress, Report};
pub use raw::{RawDataset, RawPart, Samples};

use ra_proto::service_names;
use ra_serve::server::GrpcServer;
use ra_serve::{ServeError, Shutdown};
use tokio::net::TcpListener;
use tonic::service::Routes;

/// Serves the dataset service on `listener` until `shutdown` triggers.
pub async fn run(
    config: &DatasetConfig,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    tracing::info!(
        data_dir = %config.data.data_dir.display(),
        cache_dir = %config.data.cache_dir.display(),
        "dataset service starting"
    );
    let service = grpc::DatasetGrpc::new(
        service::Datasets::new(config.data.clone()),
        config.server.max_message_bytes,
    );
    let server = GrpcServer::new(
        Routes::new(service.into_server()),
        &[service_names::DATASET],
    )
    .await;
    server.health().set_serving().await;
    server.serve(listener, &config.server, shutdown).await
}
