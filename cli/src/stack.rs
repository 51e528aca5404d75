//! The embedded mode: registry, dataset, sandbox, evaluator and planner services started in
//! this process, each on its own 127.0.0.1 port (ephemeral, or the conventional 50051-50055
//! for `research-agent serve all`) with real gRPC between them, their state under one root
//! folder (`.research-agent/` by default): the sled store, the dataset cache, the sandbox's job
//! and output folders, the research reports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ra_client::health::ServingStatus;
use ra_serve::Shutdown;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::StackConfig;

/// What an embedded stack is started with.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Everything the services keep lives under this folder.
    pub root: PathBuf,
    /// Folder of original dataset files (one sub-folder per dataset); default `<root>/data`.
    pub data_dir: Option<PathBuf>,
    /// Never download datasets.
    pub offline: bool,
    /// Sandbox jobs at once; 0: the number of cores.
    pub max_concurrent_jobs: u32,
    /// Whether the sandbox may use Docker (off: the process backend only, nothing to start).
    pub docker: bool,
    /// The services' log filter when tracing is set up by the caller.
    pub log_filter: String,
    /// Serve on the conventional ports (planner 50051, evaluator 50052, sandbox 50053,
    /// dataset 50054, registry 50055) on `host` instead of ephemeral ports on 127.0.0.1.
    pub conventional_ports: Option<std::net::IpAddr>,
    /// The planner's LLM endpoint and session defaults, when not the built-in ones.
    pub llm: Option<planner_svc::config::LlmConfig>,
    pub session_defaults: Option<planner_svc::config::SessionDefaults>,
    /// A TOML file with the services' sections (see [`crate::config`]).
    pub config_file: Option<PathBuf>,
    /// The `RA_*` variables to layer over the file (the process environment for the
    /// command-line programs; none in tests).
    pub environment: Vec<(String, String)>,
    /// Serve the dashboard (HTTP) too; `Some(true)`: read-only (no actions).
    pub dashboard: Option<bool>,
    /// A multi-call program (`research-agent`) the sandbox runs as its init and its trainer;
    /// `None`: this program when it carries them, else the separate binaries beside it.
    pub helper_program: Option<PathBuf>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            root: PathBuf::from(".research-agent"),
            data_dir: None,
            offline: false,
            max_concurrent_jobs: 0,
            docker: false,
            log_filter: "warn".into(),
            conventional_ports: None,
            llm: None,
            session_defaults: None,
            config_file: None,
            environment: Vec::new(),
            dashboard: Some(false),
            helper_program: None,
        }
    }
}

type ServiceTask = JoinHandle<anyhow::Result<()>>;

/// Running services; [`Stack::stop`] shuts them down in order.
pub struct Stack {
    pub registry: SocketAddr,
    pub dataset: SocketAddr,
    pub sandbox: SocketAddr,
    pub evaluator: SocketAddr,
    pub planner: SocketAddr,
    /// The dashboard's HTTP address, when it was asked for.
    pub dashboard: Option<SocketAddr>,
    pub root: PathBuf,
    shutdown: Shutdown,
    /// The planner stops first (its sessions record PAUSED while the others still serve).
    planner_shutdown: Shutdown,
    planner_task: Option<ServiceTask>,
    tasks: Vec<(&'static str, ServiceTask)>,
}

/// A listener on `port` of the options' host (127.0.0.1 and an ephemeral port by default).
async fn listen(options: &StackOptions, port: u16) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let address = match options.conventional_ports {
        Some(host) => SocketAddr::new(host, port),
        None => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("bind {address} (is another service using the port?)"))?;
    let address = listener.local_addr()?;
    Ok((listener, address))
}

fn url(address: SocketAddr) -> String {
    format!("http://{address}")
}

/// The layered configuration with the options (the command's flags) applied on top.
fn configuration(options: &StackOptions, root: &Path) -> anyhow::Result<StackConfig> {
    let mut config = StackConfig::load(
        root,
        options.config_file.clone(),
        options.environment.clone(),
    )?;
    config.server.log_filter = options.log_filter.clone();
    if let Some(data_dir) = &options.data_dir {
        config.data.data_dir = absolute(data_dir)?;
    }
    if options.offline {
        config.data.offline = true;
        config.planner.offline = true;
    }
    if options.max_concurrent_jobs > 0 {
        config.sandbox.max_concurrent_jobs = options.max_concurrent_jobs;
    }
    if options.docker {
        config.sandbox.docker_enabled = true;
    }
    if let Some(llm) = &options.llm {
        config.planner.llm = llm.clone();
    }
    if let Some(defaults) = &options.session_defaults {
        config.planner.defaults = defaults.clone();
    }
    if let Some(program) = &options.helper_program {
        let program = absolute(program)?;
        config.sandbox.process.init_path = program.clone();
        config.sandbox.trainer_path = program;
    }
    // The sandbox reads what dataset-svc writes.
    config.sandbox.dataset_cache_dir = config.data.cache_dir.clone();
    Ok(config)
}

fn with_listen(server: &ra_serve::ServerSettings, address: SocketAddr) -> ra_serve::ServerSettings {
    ra_serve::ServerSettings {
        listen: address,
        ..server.clone()
    }
}

/// Where the three services without peers listen.
struct Leaves {
    registry: SocketAddr,
    dataset: SocketAddr,
    sandbox: SocketAddr,
}

/// Starts registry-svc, dataset-svc and sandbox-svc, which need no other service.
async fn start_leaves(
    options: &StackOptions,
    config: &StackConfig,
    shutdown: &Shutdown,
    tasks: &mut Vec<(&'static str, ServiceTask)>,
) -> anyhow::Result<Leaves> {
    let (listener, registry) = listen(options, registry_svc::config::DEFAULT_PORT).await?;
    let mut registry_config = config.registry();
    registry_config.server = with_listen(&config.server, registry);
    tasks.push((
        "registry-svc",
        spawn(shutdown.clone(), move |s| async move {
            Ok(registry_svc::run(&registry_config, listener, s).await?)
        }),
    ));

    let (listener, dataset) = listen(options, dataset_svc::config::DEFAULT_PORT).await?;
    let mut dataset_config = config.dataset();
    dataset_config.server = with_listen(&config.server, dataset);
    tasks.push((
        "dataset-svc",
        spawn(shutdown.clone(), move |s| async move {
            Ok(dataset_svc::run(&dataset_config, listener, s).await?)
        }),
    ));

    let (listener, sandbox) = listen(options, sandbox_svc::config::DEFAULT_PORT).await?;
    let mut sandbox_config = config.sandbox();
    sandbox_config.server = with_listen(&config.server, sandbox);
    tasks.push((
        "sandbox-svc",
        spawn(shutdown.clone(), move |s| async move {
            Ok(sandbox_svc::run(&sandbox_config, listener, s).await?)
        }),
    ));
    Ok(Leaves {
        registry,
        dataset,
        sandbox,
    })
}

/// Starts evaluator-svc over the leaves.
async fn start_evaluator(
    options: &StackOptions,
    config: &StackConfig,
    shutdown: &Shutdown,
    tasks: &mut Vec<(&'static str, ServiceTask)>,
    leaves: &Leaves,
) -> anyhow::Result<SocketAddr> {
    let (listener, evaluator) = listen(options, evaluator_svc::config::DEFAULT_PORT).await?;
    let mut evaluator_config = config.evaluator();
    evaluator_config.server = with_listen(&config.server, evaluator);
    evaluator_config.evaluator.registry_url = url(leaves.registry);
    evaluator_config.evaluator.dataset_url = url(leaves.dataset);
    evaluator_config.evaluator.sandbox_url = url(leaves.sandbox);
    tasks.push((
        "evaluator-svc",
        spawn(shutdown.clone(), move |s| async move {
            Ok(evaluator_svc::run(&evaluator_config, listener, s).await?)
        }),
    ));
    Ok(evaluator)
}

/// Starts planner-svc over everything else, under its own shutdown (it stops first).
async fn start_planner(
    options: &StackOptions,
    config: &StackConfig,
    shutdown: &Shutdown,
    leaves: &Leaves,
    evaluator: SocketAddr,
) -> anyhow::Result<(SocketAddr, ServiceTask)> {
    let (listener, planner) = listen(options, planner_svc::config::DEFAULT_PORT).await?;
    let mut planner_config = config.planner();
    planner_config.server = with_listen(&config.server, planner);
    planner_config.planner.registry_url = url(leaves.registry);
    planner_config.planner.evaluator_url = url(evaluator);
    planner_config.planner.dataset_url = url(leaves.dataset);
    planner_config.planner.sandbox_url = url(leaves.sandbox);
    let task = spawn(shutdown.clone(), move |s| async move {
        Ok(planner_svc::run(&planner_config, listener, s).await?)
    });
    Ok((planner, task))
}

/// Starts dashboard-svc over the registry, the evaluator and (unless read-only) the planner.
#[allow(clippy::too_many_arguments)]
async fn start_dashboard(
    options: &StackOptions,
    config: &StackConfig,
    shutdown: &Shutdown,
    tasks: &mut Vec<(&'static str, ServiceTask)>,
    leaves: &Leaves,
    evaluator: SocketAddr,
    planner: SocketAddr,
    read_only: bool,
) -> anyhow::Result<SocketAddr> {
    let (listener, dashboard) = listen(options, dashboard_svc::config::DEFAULT_PORT).await?;
    let mut dashboard_config = config.dashboard();
    dashboard_config.server = with_listen(&config.server, dashboard);
    dashboard_config.dashboard.registry_url = url(leaves.registry);
    dashboard_config.dashboard.evaluator_url = url(evaluator);
    dashboard_config.dashboard.planner_url = url(planner);
    dashboard_config.dashboard.read_only |= read_only;
    tasks.push((
        "dashboard-svc",
        spawn(shutdown.clone(), move |s| async move {
            Ok(dashboard_svc::run(&dashboard_config, listener, s).await?)
        }),
    ));
    Ok(dashboard)
}

impl Stack {
    /// Starts the five services and waits until each reports SERVING.
    pub async fn start(options: &StackOptions) -> anyhow::Result<Self> {
        let root = absolute(&options.root)?;
        std::fs::create_dir_all(&root)
            .with_context(|| format!("create the state folder {}", root.display()))?;
        let config = configuration(options, &root)?;
        let shutdown = Shutdown::new();
        let mut tasks: Vec<(&'static str, ServiceTask)> = Vec::new();
        let leaves = start_leaves(options, &config, &shutdown, &mut tasks).await?;
        let evaluator = start_evaluator(options, &config, &shutdown, &mut tasks, &leaves).await?;
        let planner_shutdown = Shutdown::new();
        let (planner, planner_task) =
            start_planner(options, &config, &planner_shutdown, &leaves, evaluator).await?;
        let dashboard = match options.dashboard {
            Some(read_only) => Some(
                start_dashboard(
                    options, &config, &shutdown, &mut tasks, &leaves, evaluator, planner, read_only,
                )
                .await?,
            ),
            None => None,
        };
        let stack = Self {
            registry: leaves.registry,
            dataset: leaves.dataset,
            sandbox: leaves.sandbox,
            evaluator,
            planner,
            dashboard,
            root,
            shutdown,
            planner_shutdown,
            planner_task: Some(planner_task),
            tasks,
        };
        stack.wait_all_serving().await?;
        Ok(stack)
    }

    /// Waits for each service in start order.
    async fn wait_all_serving(&self) -> anyhow::Result<()> {
        for (name, address, service) in [
            (
                "registry-svc",
                self.registry,
                ra_proto::service_names::REGISTRY,
            ),
            (
                "dataset-svc",
                self.dataset,
                ra_proto::service_names::DATASET,
            ),
            (
                "sandbox-svc",
                self.sandbox,
                ra_proto::service_names::SANDBOX,
            ),
            (
                "evaluator-svc",
                self.evaluator,
                ra_proto::service_names::EVALUATOR,
            ),
            (
                "planner-svc",
                self.planner,
                ra_proto::service_names::PLANNER,
            ),
        ] {
            self.wait_serving(name, address, service).await?;
        }
        Ok(())
    }

    pub fn registry_url(&self) -> String {
        url(self.registry)
    }

    pub fn dataset_url(&self) -> String {
        url(self.dataset)
    }

    pub fn sandbox_url(&self) -> String {
        url(self.sandbox)
    }

    pub fn evaluator_url(&self) -> String {
        url(self.evaluator)
    }

    pub fn planner_url(&self) -> String {
        url(self.planner)
    }

    /// The dashboard's address in a browser ("http://127.0.0.1:PORT"), when it serves.
    pub fn dashboard_url(&self) -> Option<String> {
        self.dashboard.map(url)
    }

    async fn wait_serving(
        &self,
        name: &str,
        address: SocketAddr,
        service: &str,
    ) -> anyhow::Result<()> {
        let endpoint = url(address);
        let task = match name {
            "planner-svc" => self.planner_task.as_ref(),
            _ => self.tasks.iter().find(|(n, _)| *n == name).map(|(_, t)| t),
        };
        ra_client::health::wait_serving(
            &endpoint,
            service,
            Duration::from_secs(60),
            Duration::from_millis(20),
            |answer| {
                let stopped = task.is_some_and(JoinHandle::is_finished);
                let endpoint = endpoint.clone();
                async move {
                    if stopped {
                        return Some(format!(
                            "{name} stopped while starting (its error is in the log)"
                        ));
                    }
                    // The sandbox says at once when it can never serve: no backend at all.
                    if name == "sandbox-svc" && answer == Ok(ServingStatus::NotServing) {
                        return sandbox_cannot_serve(&endpoint).await;
                    }
                    None
                }
            },
        )
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))
    }

    /// Shuts every service down, the planner first (its running sessions end PAUSED and are
    /// recorded while the other services still serve), and reports the first that failed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        self.planner_shutdown.trigger();
        if let Some(task) = self.planner_task.take() {
            let outcome = match task.await {
                Ok(result) => result,
                Err(error) => Err(anyhow::anyhow!("planner-svc panicked: {error}")),
            };
            if let Err(error) = outcome {
                first_error = Some(error.context("planner-svc"));
            }
        }
        self.shutdown.trigger();
        for (name, task) in self.tasks.into_iter().rev() {
            let outcome = match task.await {
                Ok(result) => result,
                Err(error) => Err(anyhow::anyhow!("{name} panicked: {error}")),
            };
            if let Err(error) = outcome {
                first_error.get_or_insert(error.context(name));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn spawn<F, Fut>(shutdown: Shutdown, serve: F) -> ServiceTask
where
    F: FnOnce(Shutdown) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        let result = serve(shutdown).await;
        if let Err(error) = &result {
            tracing::error!(%error, "embedded service stopped");
        }
        result
    })
}

/// Why a NOT_SERVING sandbox can never serve (every backend unavailable, with each one's
/// reason), or `None` when it may still come up.
async fn sandbox_cannot_serve(endpoint: &str) -> Option<String> {
    let mut client = ra_client::sandbox("sandbox_url", endpoint).ok()?.client();
    let capabilities = client
        .get_capabilities(ra_proto::sandbox::v1::GetCapabilitiesRequest {})
        .await
        .ok()?
        .into_inner();
    if capabilities.backends.iter().any(|b| b.available) {
        return None;
    }
    let reasons: Vec<String> = capabilities
        .backends
        .iter()
        .map(|b| {
            let name = ra_proto::sandbox::v1::Backend::try_from(b.backend)
                .map_or("?", |b| b.as_str_name());
            format!("{name}: {}", b.unavailable_reason)
        })
        .collect();
    Some(format!(
        "sandbox-svc cannot run any job, so no research can run — {}",
        reasons.join("; ")
    ))
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .context("the current folder")?
            .join(path))
    }
}
