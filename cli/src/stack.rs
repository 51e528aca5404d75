//! The embedded mode: registry, dataset, sandbox, evaluator and planner services started in
//! this process, each on its own 127.0.0.1 port (ephemeral, or the conventional 50051-50055
//! for `research-agent serve all`) with real gRPC between them, their state under one root
//! folder (`.research-agent/` by default): the sled store, the dataset cache, the sandbox's job
//! and output folders, the research reports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ra_serve::Shutdown;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

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

fn server_settings(address: SocketAddr, filter: &str) -> ra_serve::ServerSettings {
    ra_serve::ServerSettings {
        listen: address,
        shutdown_grace_seconds: 5,
        log_filter: filter.to_owned(),
        ..ra_serve::ServerSettings::with_port(address.port())
    }
}

impl Stack {
    /// Starts the five services and waits until each reports SERVING.
    pub async fn start(options: &StackOptions) -> anyhow::Result<Self> {
        let root = absolute(&options.root)?;
        std::fs::create_dir_all(&root)
            .with_context(|| format!("create the state folder {}", root.display()))?;
        let shutdown = Shutdown::new();
        let mut tasks: Vec<(&'static str, ServiceTask)> = Vec::new();
        let filter = &options.log_filter;

        let (listener, registry) = listen(options, 50055).await?;
        let registry_config = registry_svc::RegistryConfig {
            server: server_settings(registry, filter),
            store: registry_svc::StoreSettings {
                path: root.join("registry"),
                ..registry_svc::RegistryConfig::default().store
            },
        };
        tasks.push((
            "registry-svc",
            spawn(shutdown.clone(), move |s| async move {
                Ok(registry_svc::run(&registry_config, listener, s).await?)
            }),
        ));

        let (listener, dataset) = listen(options, 50054).await?;
        let cache_dir = root.join("datasets");
        let dataset_config = dataset_svc::DatasetConfig {
            server: server_settings(dataset, filter),
            data: dataset_svc::config::DataSettings {
                cache_dir: cache_dir.clone(),
                data_dir: options
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| root.join("data")),
                offline: options.offline,
                ..dataset_svc::DatasetConfig::default().data
            },
        };
        tasks.push((
            "dataset-svc",
            spawn(shutdown.clone(), move |s| async move {
                Ok(dataset_svc::run(&dataset_config, listener, s).await?)
            }),
        ));

        let (listener, sandbox) = listen(options, 50053).await?;
        let sandbox_config = sandbox_svc::SandboxConfig {
            server: server_settings(sandbox, filter),
            sandbox: sandbox_svc::SandboxSettings {
                work_dir: root.join("sandbox/jobs"),
                outputs_dir: root.join("sandbox/outputs"),
                dataset_cache_dir: cache_dir,
                docker_enabled: options.docker,
                max_concurrent_jobs: options.max_concurrent_jobs,
                ..sandbox_svc::SandboxSettings::default()
            },
        };
        tasks.push((
            "sandbox-svc",
            spawn(shutdown.clone(), move |s| async move {
                Ok(sandbox_svc::run(&sandbox_config, listener, s).await?)
            }),
        ));

        let (listener, evaluator) = listen(options, 50052).await?;
        let evaluator_config = evaluator_svc::EvaluatorConfig {
            server: server_settings(evaluator, filter),
            evaluator: evaluator_svc::EvaluatorSettings {
                registry_url: url(registry),
                dataset_url: url(dataset),
                sandbox_url: url(sandbox),
                ..evaluator_svc::EvaluatorSettings::default()
            },
        };
        tasks.push((
            "evaluator-svc",
            spawn(shutdown.clone(), move |s| async move {
                Ok(evaluator_svc::run(&evaluator_config, listener, s).await?)
            }),
        ));

        let (listener, planner) = listen(options, 50051).await?;
        let planner_config = planner_svc::PlannerConfig {
            server: server_settings(planner, filter),
            planner: planner_svc::PlannerSettings {
                registry_url: url(registry),
                evaluator_url: url(evaluator),
                dataset_url: url(dataset),
                sandbox_url: url(sandbox),
                reports_dir: root.join("reports"),
                offline: options.offline,
                llm: options.llm.clone().unwrap_or_default(),
                defaults: options.session_defaults.clone().unwrap_or_default(),
                ..planner_svc::PlannerSettings::default()
            },
        };
        let planner_shutdown = Shutdown::new();
        let planner_task = spawn(planner_shutdown.clone(), move |s| async move {
            Ok(planner_svc::run(&planner_config, listener, s).await?)
        });

        let stack = Self {
            registry,
            dataset,
            sandbox,
            evaluator,
            planner,
            root,
            shutdown,
            planner_shutdown,
            planner_task: Some(planner_task),
            tasks,
        };
        for (name, address, service) in [
            ("registry-svc", registry, ra_proto::service_names::REGISTRY),
            ("dataset-svc", dataset, ra_proto::service_names::DATASET),
            ("sandbox-svc", sandbox, ra_proto::service_names::SANDBOX),
            (
                "evaluator-svc",
                evaluator,
                ra_proto::service_names::EVALUATOR,
            ),
            ("planner-svc", planner, ra_proto::service_names::PLANNER),
        ] {
            stack.wait_serving(name, address, service).await?;
        }
        Ok(stack)
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

    async fn wait_serving(
        &self,
        name: &str,
        address: SocketAddr,
        service: &str,
    ) -> anyhow::Result<()> {
        use tonic_health::pb::health_check_response::ServingStatus;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if health(&url(address), service).await == Some(ServingStatus::Serving) {
                return Ok(());
            }
            let task = match name {
                "planner-svc" => self.planner_task.as_ref(),
                _ => self.tasks.iter().find(|(n, _)| *n == name).map(|(_, t)| t),
            };
            if task.is_some_and(JoinHandle::is_finished) {
                bail!("{name} stopped while starting (its error is in the log)");
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{name} did not become ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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

/// The health status of `service` at `endpoint`, `None` if it cannot be asked.
pub async fn health(
    endpoint: &str,
    service: &str,
) -> Option<tonic_health::pb::health_check_response::ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .ok()?
        .connect()
        .await
        .ok()?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let response = client
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .ok()?;
    Some(response.into_inner().status())
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
