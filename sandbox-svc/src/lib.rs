//! sandbox-svc: untrusted jobs — training a ModelSpec with `ra-trainer`, or a user's own
//! command — checked statically, then run isolated, limited and watched, and cleaned up.
//!
//! - [`limits`], [`job`], [`validate`]: limits with defaults and caps, what a job is, and the
//!   static checks of ValidateJob (every broken rule named with value and limit).
//! - [`process`]: the `process` backend (namespaces, cgroups or rlimits, seccomp, a new root).
//! - [`docker`]: the `docker` backend (bollard; a locally built `FROM scratch` image).
//! - [`kubernetes`]: the `kubernetes` backend (kube-rs; a batch/v1 Job per job).
//! - [`backend`]: what every backend takes and gives back.
//! - [`libraries`], [`devices`], [`gpus`]: the shared libraries a trainer loads (for the process
//!   root and the docker image); the training devices the trainer has, per backend; the host's
//!   GPUs and the GPU jobs each runs at once.
//! - [`workdir`]: a job's host folder and sized scratch; outputs copied out; reaping.
//! - [`protocol`], [`supervise`]: output lines and metrics records; the watch loop (output
//!   cap, timeout, cancellation, resource samples) and the classification of exits.
//! - [`executor`]: one job from checks to clean-up; [`jobs`]: the queue and job table.
//! - [`grpc`], [`convert`], [`config`]: the tonic adapter, proto conversions, configuration.
//! - [`multicall`]: programs that carry `ra-sandbox-init` and `ra-trainer` inside themselves.

pub mod backend;
pub mod config;
pub mod convert;
pub mod devices;
pub mod docker;
pub mod events;
pub mod executor;
pub mod gpus;
pub mod grpc;
pub mod job;
pub mod jobs;
pub mod kubernetes;
pub mod libraries;
pub mod limits;
pub mod multicall;
pub mod process;
pub mod protocol;
pub mod supervise;
pub mod validate;
pub mod workdir;

use ra_proto::service_names;
use ra_serve::{GrpcServer, ServeError, Shutdown};
use tokio::net::TcpListener;
use tonic::service::Routes;

pub use config::{SandboxConfig, SandboxSettings};
pub use events::{BackendKind, Event, ExitReason, JobResult};
pub use executor::Executor;
pub use job::{CommandJob, InputFile, Job, JobKind, TrainJob};
pub use jobs::Jobs;
pub use limits::{LimitPolicy, Limits};
pub use validate::{Policy, Validation, Violation, validate};

/// Brings the backends up and serves until `shutdown`; running jobs are cancelled (and so
/// cleaned up) before it returns.
pub async fn run(
    config: &SandboxConfig,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    let executor = Executor::new(config.sandbox.clone()).await;
    tracing::info!(
        process = executor
            .process
            .as_ref()
            .map_or_else(|e| e.clone(), |p| p.resource_control().to_owned()),
        docker = executor
            .docker
            .as_ref()
            .map_or_else(|e| e.clone(), |d| d.image().to_owned()),
        kubernetes = executor
            .kubernetes
            .as_ref()
            .map_or_else(|e| e.clone(), |k| format!("namespace {}", k.namespace())),
        "sandbox service starting"
    );
    let jobs = Jobs::new(executor);
    let service = grpc::SandboxGrpc::new(jobs.clone(), config.server.max_message_bytes);
    let server = GrpcServer::new(
        Routes::new(service.into_server()),
        &[service_names::SANDBOX],
    )
    .await;
    // Health tells the truth: SERVING only when some backend can run jobs (GetCapabilities and
    // ValidateJob still answer, with the reasons).
    match jobs.executor().readiness() {
        Ok(()) => server.health().set_serving().await,
        Err(why) => tracing::error!(reason = %why, "sandbox NOT_SERVING"),
    }
    if let Some(blocked) = jobs.executor().train_jobs_blocked_by() {
        tracing::warn!(reason = %blocked, "train jobs cannot run");
    }
    let result = server.serve(listener, &config.server, shutdown).await;
    jobs.cancel_all();
    result
}
