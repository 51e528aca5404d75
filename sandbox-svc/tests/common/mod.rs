//! sandbox-svc started as its real binary (so that it can be killed with SIGKILL, and so that
//! its environment holds a secret the jobs must not see), with its folders in a temporary
//! directory, plus helpers to run jobs and read their events.
#![allow(dead_code)]

pub mod cluster;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ra_proto::sandbox::v1 as pb;
use ra_proto::sandbox::v1::sandbox_service_client::SandboxServiceClient;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// In the service's environment; no job may learn it.
pub const HOST_SECRET_NAME: &str = "HOST_API_TOKEN";
pub const HOST_SECRET_VALUE: &str = "host-secret-7f3a9c1e";

pub struct SandboxProcess {
    pub child: Child,
    pub port: u16,
    pub root: PathBuf,
    pub config_file: PathBuf,
}

/// Settings a test may change.
#[derive(Clone)]
pub struct Options {
    pub docker: bool,
    pub max_concurrent_jobs: u32,
    pub max_queued_jobs: u32,
    pub dataset_cache: Option<PathBuf>,
    /// The kubernetes backend, in this namespace of a real cluster.
    pub kubernetes: Option<cluster::Trials>,
    /// The trainer; the workspace's `ra-trainer` (flex only) when absent.
    pub trainer: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            docker: false,
            max_concurrent_jobs: 2,
            max_queued_jobs: 16,
            dataset_cache: None,
            kubernetes: None,
            trainer: None,
        }
    }
}

impl SandboxProcess {
    /// Starts the service with its folders under `root` (kept by the caller, so that a restart
    /// finds what a killed instance left).
    pub async fn start(root: &Path, options: &Options) -> Self {
        let datasets = options
            .dataset_cache
            .clone()
            .unwrap_or_else(|| root.join("datasets"));
        let config = format!(
            r#"[server]
shutdown_grace_seconds = 2
log_filter = "info"

[sandbox]
work_dir = "{root}/jobs"
outputs_dir = "{root}/outputs"
dataset_cache_dir = "{datasets}"
trainer_path = "{trainer}"
docker_enabled = {docker}
sample_interval_ms = 200
max_concurrent_jobs = {concurrent}
max_queued_jobs = {queued}

[sandbox.process]
init_path = "{init}"

[sandbox.policy]
command_allowlist = ["bash"]
{kubernetes}
"#,
            root = root.display(),
            datasets = datasets.display(),
            trainer = options
                .trainer
                .clone()
                .unwrap_or_else(|| ra_test_support::workspace_binary("ra-trainer"))
                .display(),
            docker = options.docker,
            concurrent = options.max_concurrent_jobs,
            queued = options.max_queued_jobs,
            init = env!("CARGO_BIN_EXE_ra-sandbox-init"),
            kubernetes = options
                .kubernetes
                .as_ref()
                .map(|k| k.sandbox_settings(root))
                .unwrap_or_default(),
        );
        let config_file = root.join("sandbox.toml");
        std::fs::write(&config_file, config).expect("write the config");
        let port = ra_test_support::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_sandbox-svc"))
            .args(["--config", &config_file.display().to_string()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(std::env::var_os("KUBECONFIG").map(|v| ("KUBECONFIG", v)))
            .env(HOST_SECRET_NAME, HOST_SECRET_VALUE)
            .stdin(Stdio::null())
            .spawn()
            .expect("start sandbox-svc");
        let mut started = Self {
            child,
            port,
            root: root.to_path_buf(),
            config_file,
        };
        started.wait_serving().await;
        started
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_serving(&mut self) {
        let child = &mut self.child;
        let waited = ra_test_support::wait_serving(
            &format!("http://127.0.0.1:{}", self.port),
            ra_proto::service_names::SANDBOX,
            Duration::from_secs(120),
            Duration::from_millis(50),
            |_| {
                let exited = child.try_wait().ok().flatten();
                async move {
                    exited.map(|status| format!("sandbox-svc exited before serving: {status}"))
                }
            },
        )
        .await;
        if let Err(error) = waited {
            panic!("{error}");
        }
    }

    pub async fn client(&self) -> SandboxServiceClient<Channel> {
        SandboxServiceClient::connect(self.endpoint())
            .await
            .expect("connect to sandbox-svc")
    }

    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        // SIGTERM for a graceful stop (running jobs cancelled and cleaned up).
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill_hard();
    }
}

/// A bash script job with `limits`.
pub fn script_job(
    name: &str,
    script: &str,
    limits: ra_proto::common::v1::ResourceLimits,
    backend: pb::Backend,
) -> pb::JobSpec {
    pb::JobSpec {
        kind: Some(pb::job_spec::Kind::Command(pb::CommandJob {
            argv: vec!["bash".into(), name.into()],
            files: vec![pb::InputFile {
                path: name.into(),
                content: script.as_bytes().to_vec(),
                executable: false,
            }],
            ..Default::default()
        })),
        limits: Some(limits),
        backend: backend as i32,
        ..Default::default()
    }
}

/// Everything a finished RunJob stream said.
#[derive(Debug, Default)]
pub struct Outcome {
    pub events: Vec<pb::JobEvent>,
    pub result: Option<pb::JobResult>,
}

impl Outcome {
    pub fn result(&self) -> &pb::JobResult {
        self.result
            .as_ref()
            .expect("the stream ended with a finished event")
    }

    pub fn reason(&self) -> ra_proto::common::v1::ExitReason {
        ra_proto::common::v1::ExitReason::try_from(self.result().exit_reason)
            .expect("a known exit reason")
    }

    pub fn logs(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match &e.event {
                Some(pb::job_event::Event::Log(log)) => Some(log.line.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn started(&self) -> Option<&pb::Enforcement> {
        self.events.iter().find_map(|e| match &e.event {
            Some(pb::job_event::Event::Started(s)) => s.enforcement.as_ref(),
            _ => None,
        })
    }
}

pub async fn run_job(client: &mut SandboxServiceClient<Channel>, job: pb::JobSpec) -> Outcome {
    let mut stream = client
        .run_job(pb::RunJobRequest {
            job: Some(job),
            job_id: String::new(),
        })
        .await
        .expect("RunJob accepted")
        .into_inner();
    let mut outcome = Outcome::default();
    while let Some(event) = stream.next().await {
        let event = event.expect("event");
        if let Some(pb::job_event::Event::Finished(result)) = &event.event {
            outcome.result = Some(result.clone());
        }
        outcome.events.push(event);
    }
    outcome
}

/// Host processes whose command line contains `marker`.
pub fn host_processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(marker) {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// Waits up to `seconds` for `check` to hold.
pub async fn eventually(seconds: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check()
}

/// A prepared tabular dataset written with ra-prepared (no dataset-svc): `train` and `val`
/// splits of 16 features in 4 well-separated classes (each class a shifted Gaussian-like
/// cloud from a fixed-seed generator), so a small MLP learns it in a few epochs. Its id.
pub fn prepared_tabular(cache: &Path, seed: u64) -> String {
    use ra_prepared::{ManifestDraft, Normalization, SplitData, XData, write_prepared};
    const FEATURES: usize = 16;
    const CLASSES: usize = 4;
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut noise = move || {
        // xorshift64*, mapped to a sum of uniforms (roughly normal, mean 0, sd 0.5).
        let mut sum = 0.0f32;
        for _ in 0..3 {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            sum += bits as f32 / (1u64 << 24) as f32 - 0.5;
        }
        sum
    };
    let mut split = |name: &str, samples: usize| {
        let y: Vec<i64> = (0..samples as i64).map(|i| i % CLASSES as i64).collect();
        let x = y
            .iter()
            .flat_map(|class| {
                let class = *class as usize;
                (0..FEATURES)
                    .map(|f| if f % CLASSES == class { 1.5 } else { 0.0 } + noise())
                    .collect::<Vec<f32>>()
            })
            .collect();
        SplitData {
            name: name.into(),
            x: XData::F32(x),
            y,
        }
    };
    let splits = vec![split("train", 256), split("val", 64)];
    let id = format!("sandbox-test-tabular-{seed}");
    let draft = ManifestDraft {
        dataset: "sandbox-test-tabular".into(),
        input: ra_spec::InputSpec::Tabular {
            features: FEATURES as u32,
        },
        class_names: (0..CLASSES).map(|c| format!("class{c}")).collect(),
        normalization: Normalization {
            mean: vec![0.0; FEATURES],
            std: vec![1.0; FEATURES],
        },
        source_checksums: Default::default(),
        checksums_verified: false,
        options: serde_json::json!({ "seed": seed }),
        created_at: "1970-01-01T00:00:00Z".into(),
    };
    write_prepared(cache, &id, draft, splits).expect("write the test dataset");
    id
}

/// A small MLP for [`prepared_tabular`]'s 16 features and 4 classes, three epochs on `dataset`.
pub fn mlp_train_job(dataset: &str, seed: u64, save_weights: bool) -> pb::JobSpec {
    use ra_spec::{InputSpec, Layer, ModelSpec, TrainSpec};
    let model = ModelSpec {
        name: "mlp".into(),
        input: InputSpec::Tabular { features: 16 },
        num_classes: 4,
        layers: vec![Layer::linear(32), Layer::relu(), Layer::linear(4)],
    };
    let train = TrainSpec {
        epochs: 3,
        batch_size: 32,
        learning_rate: 0.01,
        ..TrainSpec::default()
    };
    pb::JobSpec {
        kind: Some(pb::job_spec::Kind::Train(pb::TrainJob {
            model: Some((&model).into()),
            train: Some((&train).into()),
            prepared_dataset_id: dataset.into(),
            seed,
            save_weights,
            device: String::new(),
            seeds: Vec::new(),
        })),
        ..Default::default()
    }
}
