//! The `kubernetes` backend (kube-rs): each job becomes a `batch/v1` Job in the service's own
//! namespace — the cluster's scheduler places it — built by [`manifest`], watched through the
//! API (pod status read by [`status`]), its output followed from the pod log (the metrics
//! protocol as on every backend), cancelled by deleting the Job with foreground propagation.
//! The job folder and the prepared dataset reach the pod through two PersistentVolumeClaims the
//! service mounts too: the work claim (the job's scratch, read-write: inputs in, outputs out,
//! with no copy) and the dataset cache's claim (read-only), so a trial pod needs no network at
//! all. Jobs of this instance that a crashed service left running are deleted at start-up;
//! finished ones are removed by their TTL (and by the service once the TTL has passed, for
//! clusters without the TTL controller).

pub mod manifest;
pub mod status;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Toleration};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::backend::{Control, Launch, Launched, RawExit};
use crate::events::{BackendKind, Enforcement, OutputStream, ResourceSample};
use manifest::{LABEL_INSTANCE, LABEL_JOB, Trial, trial_job};
use status::{PodState, job_ended, pod_state};

/// The kubernetes backend's settings (`[sandbox.kubernetes]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesSettings {
    /// Bring the backend up (it needs a cluster: in-cluster credentials or a kubeconfig).
    pub enabled: bool,
    /// Namespace of the trial Jobs; empty: the service's own (in a pod) or the kubeconfig's.
    pub namespace: String,
    /// Image of the trial pods (`research-agent/trainer`); command jobs need their programs in
    /// it.
    pub image: String,
    pub image_pull_policy: String,
    /// Where `ra-trainer` is inside the image.
    pub trainer_in_image: PathBuf,
    /// PersistentVolumeClaim holding the job folders (`sandbox.work_dir` lies inside it).
    pub work_claim: String,
    /// Where the work claim is mounted in this service; `sandbox.work_dir` must be inside.
    pub work_root: PathBuf,
    /// PersistentVolumeClaim of the prepared-dataset cache (`sandbox.dataset_cache_dir` is its
    /// root).
    pub dataset_claim: String,
    /// Kubernetes deletes finished Jobs after this many seconds; 0: the service deletes each as
    /// soon as it has read its end.
    pub ttl_seconds_after_finished: u32,
    /// `nvidia.com/gpu` per trial pod; a trial on a CUDA device asks for at least one.
    pub gpus: u32,
    pub runtime_class_name: String,
    pub node_selector: BTreeMap<String, String>,
    /// Kubernetes Toleration objects as JSON, e.g.
    /// `[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]`.
    pub tolerations_json: String,
    /// More labels on trial Jobs and pods (a NetworkPolicy selects them by these).
    pub labels: BTreeMap<String, String>,
    pub run_as_user: i64,
    pub run_as_group: i64,
    /// The cluster enforces a deny-all NetworkPolicy on trial pods (its network plugin
    /// implements policies, and the release installs one). Recorded with each trial as its
    /// network isolation; say `false` on a cluster without (a pod then has its plugin's network).
    pub network_isolated: bool,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            namespace: String::new(),
            image: "research-agent/trainer:dev".into(),
            image_pull_policy: "IfNotPresent".into(),
            trainer_in_image: PathBuf::from("/usr/local/bin/ra-trainer"),
            work_claim: String::new(),
            work_root: PathBuf::new(),
            dataset_claim: String::new(),
            ttl_seconds_after_finished: 300,
            gpus: 0,
            runtime_class_name: String::new(),
            node_selector: BTreeMap::new(),
            tolerations_json: String::new(),
            labels: BTreeMap::new(),
            run_as_user: 65_532,
            run_as_group: 65_532,
            network_isolated: true,
        }
    }
}

impl KubernetesSettings {
    /// The configuration's own mistakes (checked at load, before any cluster is asked).
    pub fn check(&self, work_dir: &Path) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        for (name, value) in [
            ("image", &self.image),
            ("work_claim", &self.work_claim),
            ("dataset_claim", &self.dataset_claim),
        ] {
            if value.trim().is_empty() {
                return Err(format!(
                    "sandbox.kubernetes.{name} must be set when the backend is enabled"
                ));
            }
        }
        if !matches!(
            self.image_pull_policy.as_str(),
            "Always" | "IfNotPresent" | "Never"
        ) {
            return Err(format!(
                "sandbox.kubernetes.image_pull_policy = {:?}: use Always, IfNotPresent or Never",
                self.image_pull_policy
            ));
        }
        if self.work_root.as_os_str().is_empty() || !work_dir.starts_with(&self.work_root) {
            return Err(format!(
                "sandbox.work_dir ({}) must lie inside sandbox.kubernetes.work_root ({}), where the work claim is mounted",
                work_dir.display(),
                self.work_root.display()
            ));
        }
        self.tolerations().map(|_| ())
    }

    fn tolerations(&self) -> Result<Vec<Toleration>, String> {
        if self.tolerations_json.trim().is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_str(&self.tolerations_json).map_err(|e| {
            format!("sandbox.kubernetes.tolerations_json is not a list of Tolerations: {e}")
        })
    }
}

#[derive(Clone)]
pub struct KubernetesBackend {
    jobs: Api<Job>,
    pods: Api<Pod>,
    namespace: String,
    instance: String,
    /// Drawn at start-up: a job resubmitted under the same id after a restart gets a new Job
    /// name while the old Job may still be going away.
    boot: String,
    settings: KubernetesSettings,
    tolerations: Vec<Toleration>,
    dataset_root: PathBuf,
    /// When expired finished Jobs were last looked for.
    last_reap: Arc<Mutex<Instant>>,
}

impl std::fmt::Debug for KubernetesBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesBackend")
            .field("namespace", &self.namespace)
            .field("instance", &self.instance)
            .field("image", &self.settings.image)
            .finish()
    }
}

fn kube_error(what: &str) -> impl FnOnce(kube::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl KubernetesBackend {
    /// Connects (in-cluster credentials, else the kubeconfig), checks that Jobs can be listed in
    /// the namespace, and deletes what an earlier instance left.
    pub async fn new(settings: &KubernetesSettings, dataset_root: &Path) -> Result<Self, String> {
        let tolerations = settings.tolerations()?;
        let client = kube::Client::try_default()
            .await
            .map_err(kube_error("cannot reach a Kubernetes API server"))?;
        let namespace = if settings.namespace.is_empty() {
            client.default_namespace().to_owned()
        } else {
            settings.namespace.clone()
        };
        let instance = instance_label(&namespace, &settings.work_claim);
        let backend = Self {
            jobs: Api::namespaced(client.clone(), &namespace),
            pods: Api::namespaced(client, &namespace),
            namespace,
            instance,
            boot: uuid::Uuid::now_v7().simple().to_string(),
            settings: settings.clone(),
            tolerations,
            dataset_root: dataset_root.to_owned(),
            last_reap: Arc::new(Mutex::new(Instant::now())),
        };
        let reaped = backend.reap(Reap::Everything).await?;
        if reaped > 0 {
            tracing::warn!(
                reaped,
                namespace = %backend.namespace,
                "deleted trial Jobs left by an earlier sandbox-svc"
            );
        }
        Ok(backend)
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn selector(&self) -> String {
        format!("{LABEL_INSTANCE}={}", self.instance)
    }

    /// Deletes this instance's Jobs: all of them, or the finished ones past their TTL.
    async fn reap(&self, which: Reap) -> Result<usize, String> {
        let listed = self
            .jobs
            .list(&ListParams::default().labels(&self.selector()))
            .await
            .map_err(kube_error(&format!(
                "cannot list Jobs in namespace {}",
                self.namespace
            )))?;
        let ttl = i64::from(self.settings.ttl_seconds_after_finished);
        let now = k8s_openapi::jiff::Timestamp::now();
        let mut count = 0;
        for job in listed {
            let expired = job
                .status
                .as_ref()
                .and_then(|s| s.completion_time.as_ref().or(s.start_time.as_ref()))
                .filter(|_| job_ended(&job).is_some() || is_complete(&job))
                .is_some_and(|t| now.as_second() - t.0.as_second() >= ttl);
            if (which == Reap::Everything || expired)
                && let Some(name) = job.metadata.name.as_deref()
            {
                let _ = self.jobs.delete(name, &DeleteParams::foreground()).await;
                count += 1;
            }
        }
        Ok(count)
    }

    pub async fn launch(&self, launch: Launch<'_>) -> Result<Launched, String> {
        // Clusters without the TTL controller (before 1.21) keep finished Jobs forever: look for
        // expired ones now and then, not at every launch.
        let due = {
            let mut last = self
                .last_reap
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let due = last.elapsed() >= REAP_INTERVAL;
            if due {
                *last = Instant::now();
            }
            due
        };
        if due && let Err(error) = self.reap(Reap::Expired).await {
            tracing::warn!(%error, "cannot remove expired trial Jobs");
        }
        let name = job_name(&self.instance, &self.boot, launch.job_id);
        let scratch = launch
            .work
            .scratch
            .strip_prefix(&self.settings.work_root)
            .map_err(|_| {
                format!(
                    "the job folder {} is outside sandbox.kubernetes.work_root {}",
                    launch.work.scratch.display(),
                    self.settings.work_root.display()
                )
            })?;
        let dataset = match &launch.dataset_dir {
            Some(dir) => Some(dir.strip_prefix(&self.dataset_root).map_err(|_| {
                format!(
                    "the dataset {} is outside sandbox.dataset_cache_dir {}",
                    dir.display(),
                    self.dataset_root.display()
                )
            })?),
            None => None,
        };
        let job = trial_job(
            &self.settings,
            &self.tolerations,
            &Trial {
                name: &name,
                job_id: launch.job_id,
                instance: &self.instance,
                argv: &launch.argv,
                env: &launch.env,
                scratch_sub_path: scratch,
                dataset_sub_path: dataset,
                limits: &launch.limits,
                gpu: launch.gpu,
            },
        );
        self.jobs
            .create(&PostParams::default(), &job)
            .await
            .map_err(kube_error("cannot create the trial's Job"))?;
        let (output_tx, output) = mpsc::channel(64);
        let (exit_tx, exit) = oneshot::channel();
        let (running_tx, running) = oneshot::channel();
        let follower = tokio::spawn(follow(
            self.clone(),
            name.clone(),
            Follow {
                output: output_tx,
                running: running_tx,
                exit: exit_tx,
            },
        ));
        Ok(Launched {
            output,
            exit,
            enforcement: Enforcement {
                backend: BackendKind::Kubernetes,
                resource_control: "kubernetes".into(),
                seccomp: true,
                namespaces: ["mount", "pid", "network", "ipc", "uts"]
                    .map(str::to_owned)
                    .to_vec(),
                // A deny-all NetworkPolicy (the chart's), where the cluster enforces policies.
                network_isolated: self.settings.network_isolated,
                scratch: "volume".into(),
            },
            control: Control::Kubernetes(KubernetesControl {
                jobs: self.jobs.clone(),
                name,
                delete_when_finished: self.settings.ttl_seconds_after_finished == 0,
                follower,
            }),
            running: Some(running),
        })
    }

    /// Waits until `decide` says something about the job's pod (polled through a watch).
    async fn wait_pod<T>(
        &self,
        name: &str,
        mut decide: impl FnMut(Option<&Pod>, Option<&Job>) -> Option<T>,
    ) -> Result<T, String> {
        let selector = format!("{LABEL_JOB}={name}");
        loop {
            let job = self
                .jobs
                .get_opt(name)
                .await
                .map_err(kube_error("cannot read the trial's Job"))?;
            let pods = self
                .pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(kube_error("cannot list the trial's pods"))?;
            if let Some(answer) = decide(pods.items.first(), job.as_ref()) {
                return Ok(answer);
            }
            let version = pods.metadata.resource_version.unwrap_or_default();
            let watched = self
                .pods
                .watch(
                    &WatchParams::default().labels(&selector).timeout(10),
                    &version,
                )
                .await;
            let Ok(stream) = watched else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            let mut stream = stream.boxed();
            while let Ok(Some(event)) = stream.try_next().await {
                match event {
                    WatchEvent::Added(pod) | WatchEvent::Modified(pod) => {
                        if let Some(answer) = decide(Some(&pod), None) {
                            return Ok(answer);
                        }
                    }
                    // Gone (deleted, or the Job's deadline): the loop asks the Job why.
                    WatchEvent::Deleted(_) | WatchEvent::Error(_) => break,
                    WatchEvent::Bookmark(_) => {}
                }
            }
        }
    }
}

/// How often a launch looks for expired finished Jobs.
const REAP_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reap {
    Everything,
    Expired,
}

fn is_complete(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
        })
}

/// The DNS-label name of a job's Kubernetes Job (job ids are any string a client chose).
fn job_name(instance: &str, boot: &str, job_id: &str) -> String {
    let digest = Sha256::digest(format!("{instance}/{boot}/{job_id}").as_bytes());
    format!("ra-trial-{}", hex::encode(&digest[..10]))
}

/// This service instance: its namespace and work claim (two releases never share both).
fn instance_label(namespace: &str, work_claim: &str) -> String {
    let digest = Sha256::digest(format!("{namespace}/{work_claim}").as_bytes());
    hex::encode(&digest[..8])
}

/// Where a trial's follower reports: its output, the moment its container runs, its exit.
struct Follow {
    output: mpsc::Sender<(OutputStream, bytes::Bytes)>,
    running: oneshot::Sender<()>,
    exit: oneshot::Sender<RawExit>,
}

/// What the wait for a trial's container learns: the pod whose container runs (or already
/// ran), or how the job ended without running.
enum Start {
    Running(String),
    Ended(RawExit),
}

/// Follows one trial: waits for its container, streams its log, then reports its exit.
async fn follow(backend: KubernetesBackend, name: String, to: Follow) {
    let start = backend
        .wait_pod(&name, |pod, job| match pod.map(pod_state) {
            // Even an ended container has a log to read.
            Some(PodState::Started | PodState::Ended(_)) => pod
                .and_then(|p| p.metadata.name.clone())
                .map(Start::Running),
            Some(PodState::Unstartable(exit)) => Some(Start::Ended(exit)),
            Some(PodState::Waiting) | None => without_pod(pod, job, || {
                RawExit::setup_failed("the trial's Job was deleted before it ran")
            })
            .map(Start::Ended),
        })
        .await
        .unwrap_or_else(|error| Start::Ended(RawExit::setup_failed(error)));
    let _ = to.running.send(());
    let pod = match start {
        Start::Running(pod) => pod,
        Start::Ended(exit) => {
            let _ = to.exit.send(exit);
            return;
        }
    };
    stream_log(&backend, &pod, &to.output).await;
    drop(to.output);
    let ended = backend
        .wait_pod(&name, |pod, job| match pod.map(pod_state) {
            Some(PodState::Ended(exit) | PodState::Unstartable(exit)) => Some(exit),
            // Deleted under it (cancelled): a kill.
            _ => without_pod(pod, job, || RawExit {
                signal: Some(9),
                ..RawExit::default()
            }),
        })
        .await
        .unwrap_or_else(RawExit::setup_failed);
    let _ = to.exit.send(ended);
}

/// When the pod does not tell: the Job's own end (its deadline, a failure), or `gone` when
/// neither the Job nor a pod is left.
fn without_pod(
    pod: Option<&Pod>,
    job: Option<&Job>,
    gone: impl FnOnce() -> RawExit,
) -> Option<RawExit> {
    match job {
        Some(job) => job_ended(job),
        None if pod.is_none() => Some(gone()),
        None => None,
    }
}

/// The pod's log as it is written (stdout and stderr interleaved, as the kubelet keeps them).
async fn stream_log(
    backend: &KubernetesBackend,
    pod: &str,
    output: &mpsc::Sender<(OutputStream, bytes::Bytes)>,
) {
    let params = LogParams {
        container: Some(manifest::CONTAINER.into()),
        follow: true,
        ..LogParams::default()
    };
    let Ok(log) = backend.pods.log_stream(pod, &params).await else {
        return;
    };
    let mut log = Box::pin(log);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match log.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let chunk = bytes::Bytes::copy_from_slice(&buffer[..n]);
                if output.send((OutputStream::Stdout, chunk)).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// The handle on a running trial.
pub struct KubernetesControl {
    jobs: Api<Job>,
    name: String,
    /// No TTL: the Job goes as soon as its end is read.
    delete_when_finished: bool,
    follower: tokio::task::JoinHandle<()>,
}

impl KubernetesControl {
    /// Deletes the Job; foreground propagation removes its pod before the Job itself goes.
    pub async fn kill(&mut self) {
        let _ = self
            .jobs
            .delete(&self.name, &DeleteParams::foreground())
            .await;
    }

    /// Kubernetes has no per-pod usage without a metrics server; none is sampled.
    pub async fn sample(&mut self) -> Option<ResourceSample> {
        None
    }

    pub async fn finish(self, _exit: &mut RawExit) {
        self.follower.abort();
        if self.delete_when_finished {
            let _ = self
                .jobs
                .delete(&self.name, &DeleteParams::background())
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_dns_labels_for_any_job_id() {
        for id in ["0190-abc", "Ünïcode job / with spaces", &"x".repeat(500)] {
            let name = job_name("instance", "boot", id);
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
        }
        assert_ne!(job_name("a", "boot", "job"), job_name("b", "boot", "job"));
        assert_ne!(job_name("a", "boot", "job"), job_name("a", "again", "job"));
    }

    #[test]
    fn settings_are_checked_before_any_cluster_is_asked() {
        let work = Path::new("/work/jobs");
        assert!(KubernetesSettings::default().check(work).is_ok());
        let enabled = KubernetesSettings {
            enabled: true,
            work_claim: "work".into(),
            dataset_claim: "datasets".into(),
            work_root: "/work".into(),
            ..KubernetesSettings::default()
        };
        assert!(enabled.check(work).is_ok());
        let outside = enabled.check(Path::new("/elsewhere/jobs"));
        assert!(outside.is_err_and(|e| e.contains("work_root")));
        let no_claim = KubernetesSettings {
            work_claim: String::new(),
            ..enabled.clone()
        };
        assert!(
            no_claim
                .check(work)
                .is_err_and(|e| e.contains("work_claim"))
        );
        let bad_policy = KubernetesSettings {
            image_pull_policy: "Sometimes".into(),
            ..enabled.clone()
        };
        assert!(bad_policy.check(work).is_err());
        let bad_tolerations = KubernetesSettings {
            tolerations_json: "{not json".into(),
            ..enabled.clone()
        };
        assert!(
            bad_tolerations
                .check(work)
                .is_err_and(|e| e.contains("tolerations_json"))
        );
        let gpu = KubernetesSettings {
            tolerations_json:
                r#"[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]"#
                    .into(),
            ..enabled
        };
        assert_eq!(gpu.tolerations().map(|t| t.len()), Ok(1));
    }
}
