//! Helpers shared by the integration tests: services started in-process on 127.0.0.1:0 with
//! their stores in temporary directories, and the locating of external test tools and data.
//!
//! Tools and data that a user's clone may lack are skipped loudly; with
//! `RA_REQUIRE_TEST_DEPS=1` (set by `.ci/run`) a missing one fails the test instead.

pub mod scripted_llm;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use ra_serve::Shutdown;
use registry_svc::RegistryConfig;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Set to `1` to turn every "skipped: missing tool or data" into a failure.
pub const REQUIRE_DEPS_VAR: &str = "RA_REQUIRE_TEST_DEPS";
/// Folder of the real datasets (default `../shared/data` beside the checkout).
pub const TEST_DATA_VAR: &str = "RA_TEST_DATA";

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
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if health_status(&self.endpoint(), ra_proto::service_names::REGISTRY).await
                == Some(tonic_health::pb::health_check_response::ServingStatus::Serving)
            {
                return;
            }
            if self.task.is_finished() {
                panic!("the registry stopped before it was ready (see its error in the log above)");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "registry never became SERVING"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
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

/// The health status of `service` at `endpoint`, `None` if it cannot be asked.
pub use ra_cli::stack::health as health_status;

/// Whether missing test tools and data fail tests (CI) instead of skipping them.
pub fn deps_required() -> bool {
    std::env::var(REQUIRE_DEPS_VAR).is_ok_and(|value| value == "1")
}

/// Reports a missing dependency: panics under [`REQUIRE_DEPS_VAR`], otherwise prints a loud skip.
pub fn skip_or_fail(test: &str, what: &str) {
    if deps_required() {
        panic!("{test}: {what}, and {REQUIRE_DEPS_VAR}=1 forbids skipping");
    }
    eprintln!(
        "\n==== SKIPPED {test}: {what} (set {REQUIRE_DEPS_VAR}=1 to make this a failure) ====\n"
    );
}

/// The grpcurl binary: `$RA_GRPCURL`, else `grpcurl` on the PATH.
pub fn grpcurl() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RA_GRPCURL") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("grpcurl"))
            .find(|candidate| candidate.is_file())
    })
}

/// The folder of real datasets: `$RA_TEST_DATA`, else `../shared/data` beside the workspace.
pub fn test_data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os(TEST_DATA_VAR) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    };
    dir.is_dir().then_some(dir)
}

/// [`test_data_dir`], or a loud skip of `test` (a failure under [`REQUIRE_DEPS_VAR`]).
pub fn shared_data_or_skip(test: &str) -> Option<PathBuf> {
    let dir = test_data_dir();
    if dir.is_none() {
        skip_or_fail(
            test,
            "the shared datasets folder is missing (set RA_TEST_DATA)",
        );
    }
    dir
}

/// A 127.0.0.1 port nobody listens on right now (for a process the test starts itself, or to
/// point a client at a closed port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A binary of this workspace's build, built first when needed: the first call in a test
/// process runs `cargo build --workspace --bins` (a no-op when they are fresh) with the cargo
/// and profile that built the test, so `cargo test` never runs a missing or stale binary of
/// another package (cargo builds a package's binaries only for that package's own tests).
pub fn workspace_binary(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let dir = match BUILT.get_or_init(build_workspace_binaries) {
        Ok(dir) => dir,
        Err(error) => panic!("cannot build the workspace's binaries: {error}"),
    };
    let binary = dir.join(name);
    assert!(
        binary.is_file(),
        "{} is missing after `cargo build --workspace --bins`: no binary of that name",
        binary.display()
    );
    binary
}

/// Builds every binary of the workspace into the folder above the test executable's `deps/`.
fn build_workspace_binaries() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the test executable: {e}"))?;
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .ok_or("the test executable is not in a target folder")?
        .to_path_buf();
    let profile = dir
        .file_name()
        .and_then(|p| p.to_str())
        .ok_or("the target folder has no profile name")?;
    // Under `cargo test` CARGO names the cargo that runs us; by hand, the one on PATH.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .args(["build", "--workspace", "--bins", "--quiet"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile != "debug" {
        command.args(["--profile", profile]);
    }
    // Only the target folder's parent is ours to choose: a CARGO_TARGET_DIR elsewhere is kept.
    if let Some(target) = dir.parent() {
        command.env("CARGO_TARGET_DIR", target);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build --workspace --bins failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(dir)
}

/// The embedded stack (registry, dataset, sandbox with the process backend, evaluator) with
/// the shared datasets as its originals, offline, its state in the returned temporary folder;
/// `None` after a loud skip when the datasets are missing.
pub async fn stack_on_shared_data(test: &str) -> Option<(ra_cli::Stack, tempfile::TempDir)> {
    let data = shared_data_or_skip(test)?;
    let root = tempfile::tempdir().expect("temporary directory");
    let stack = ra_cli::Stack::start(&ra_cli::StackOptions {
        root: root.path().to_path_buf(),
        data_dir: Some(data),
        offline: true,
        max_concurrent_jobs: 2,
        docker: false,
        log_filter: "warn".into(),
        helper_program: Some(workspace_binary("research-agent")),
        ..ra_cli::StackOptions::default()
    })
    .await
    .expect("start the embedded stack");
    Some((stack, root))
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
