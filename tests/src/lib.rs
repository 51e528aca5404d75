//! Helpers shared by the cross-service integration tests: services started in-process on
//! 127.0.0.1:0 with their stores in temporary directories; the light helpers (tools, data,
//! ports, workspace binaries) are ra-test-support's, re-exported.
//!
//! Tools and data that a user's clone may lack are skipped loudly; with
//! `RA_REQUIRE_TEST_DEPS=1` (set by `.ci/run`) a missing one fails the test instead.

pub mod records;
pub mod scripted_llm;

use std::net::SocketAddr;
use std::time::Duration;

use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use ra_serve::Shutdown;
use registry_svc::RegistryConfig;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// A registry-svc served in-process on an ephemeral port, its store in a temporary directory.
pub struct RegistryUnderTest {
    pub address: SocketAddr,
    pub config: RegistryConfig,
    shutdown: Shutdown,
    task: JoinHandle<Result<(), registry_svc::RunError>>,
    _dir: Option<tempfile::TempDir>,
}

impl RegistryUnderTest {
    /// Starts on a fresh store.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts on a fresh store after `adjust` has changed the configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut RegistryConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = RegistryConfig::default();
        config.store.path = dir.path().join("registry");
        config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.server.shutdown_grace_seconds = 5;
        adjust(&mut config);
        Self::start_config(config, Some(dir)).await
    }

    /// Starts with exactly this configuration (the store directory is the caller's).
    pub async fn start_config(config: RegistryConfig, dir: Option<tempfile::TempDir>) -> Self {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        let shutdown = Shutdown::new();
        let task = tokio::spawn({
            let config = config.clone();
            let shutdown = shutdown.clone();
            async move {
                let result = registry_svc::run(&config, listener, shutdown).await;
                if let Err(error) = &result {
                    eprintln!("registry-svc under test failed: {error}");
                }
                result
            }
        });
        let started = Self {
            address,
            config,
            shutdown,
            task,
            _dir: dir,
        };
        started.wait_serving().await;
        started
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    pub async fn client(&self) -> RegistryServiceClient<Channel> {
        RegistryServiceClient::connect(self.endpoint())
            .await
            .expect("connect to the registry")
            .max_decoding_message_size(64 * 1024 * 1024)
    }

    /// Polls the health service until the registry reports SERVING.
    async fn wait_serving(&self) {
        let task = &self.task;
        let waited = ra_client::health::wait_serving(
            &self.endpoint(),
            ra_proto::service_names::REGISTRY,
            Duration::from_secs(20),
            Duration::from_millis(20),
            |_| {
                let ended = task.is_finished();
                async move {
                    ended.then(|| {
                        "the registry stopped before it was ready (see its error in the log above)"
                            .to_owned()
                    })
                }
            },
        )
        .await;
        if let Err(error) = waited {
            panic!("{error}");
        }
    }

    /// Graceful shutdown; returns what `run` returned.
    pub async fn stop(self) -> Result<(), registry_svc::RunError> {
        self.shutdown.trigger();
        self.task.await.expect("registry task panicked")
    }

    pub fn trigger_shutdown(&self) {
        self.shutdown.trigger();
    }
}

pub use ra_test_support::{
    REQUIRE_DEPS_VAR, TEST_DATA_VAR, deps_required, free_port, grpcurl, health_status, image_tag,
    output_text, python_with, repo_path, shared_data_or_skip, skip_or_fail, test_data_dir,
    wait_serving, workspace_binary,
};

/// The embedded stack (registry, dataset, sandbox with the process backend, evaluator) with
/// the shared datasets as its originals, offline, its state in the returned temporary folder;
/// `None` after a loud skip when the datasets are missing.
pub async fn stack_on_shared_data(test: &str) -> Option<(ra_cli::Stack, tempfile::TempDir)> {
    let data = shared_data_or_skip(test)?;
    Some(
        offline_stack(|options| {
            options.data_dir = Some(data);
            options.max_concurrent_jobs = 2;
        })
        .await,
    )
}

/// The embedded stack, offline on the built-in datasets, with this workspace's `research-agent`
/// as its sandbox's helper, its state under `root`; `adjust` changes the options first.
pub async fn offline_stack_at(
    root: &std::path::Path,
    adjust: impl FnOnce(&mut ra_cli::StackOptions),
) -> ra_cli::Stack {
    let mut options = ra_cli::StackOptions {
        root: root.to_path_buf(),
        offline: true,
        helper_program: Some(workspace_binary("research-agent")),
        ..ra_cli::StackOptions::default()
    };
    adjust(&mut options);
    ra_cli::Stack::start(&options)
        .await
        .expect("start the embedded stack")
}

/// [`offline_stack_at`] a fresh temporary folder, returned with the stack.
pub async fn offline_stack(
    adjust: impl FnOnce(&mut ra_cli::StackOptions),
) -> (ra_cli::Stack, tempfile::TempDir) {
    let root = tempfile::tempdir().expect("temporary directory");
    let stack = offline_stack_at(root.path(), adjust).await;
    (stack, root)
}

/// Session defaults for tests that run whole sessions quickly: 2 seeds, at most 3 epochs.
pub fn short_sessions() -> planner_svc::config::SessionDefaults {
    planner_svc::config::SessionDefaults {
        max_epochs: 3,
        num_seeds: 2,
        max_seeds: 2,
        ..planner_svc::config::SessionDefaults::default()
    }
}

/// Small valid records for tests that need one but do not test it.
pub mod fixtures {
    use ra_proto::common::v1 as common;

    /// A one-hidden-layer MLP on 4 tabular features with 3 classes.
    pub fn mlp() -> common::ModelSpec {
        use common::layer::Kind;
        let linear = |out_features| common::Layer {
            kind: Some(Kind::Linear(common::LinearLayer {
                out_features,
                bias: true,
                ..Default::default()
            })),
        };
        let relu = common::Layer {
            kind: Some(Kind::Activation(common::ActivationLayer {
                function: common::ActivationFunction::Relu as i32,
            })),
        };
        common::ModelSpec {
            name: "mlp-64".into(),
            input: Some(common::InputSpec {
                kind: Some(common::input_spec::Kind::Tabular(common::TabularInput {
                    features: 4,
                })),
            }),
            num_classes: 3,
            layers: vec![linear(64), relu, linear(3)],
        }
    }

    /// Adam at the given learning rate, batch 32, 5 epochs.
    pub fn adam(learning_rate: f64) -> common::TrainSpec {
        common::TrainSpec {
            optimizer: Some(common::Optimizer {
                kind: Some(common::optimizer::Kind::Adam(
                    common::AdamOptimizer::default(),
                )),
            }),
            learning_rate,
            batch_size: 32,
            epochs: 5,
            ..Default::default()
        }
    }

    /// A point of `name` at `step`, wall time left to the server.
    pub fn point(name: &str, step: u64, value: f64) -> common::MetricPoint {
        common::MetricPoint {
            name: name.into(),
            step,
            value,
            wall_time: None,
        }
    }
}
