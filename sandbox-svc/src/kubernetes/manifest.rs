//! The `batch/v1` Job of one trial, built from the launch and the settings: one pod, never
//! restarted (backoffLimit 0), a deadline from the timeout, removed after its TTL, labelled with
//! the job and the service instance; the limits as resources (requests = limits); no
//! service-account token, no service links, no DNS; the restricted security context; the job's
//! scratch folder and the prepared dataset mounted from the claims shared with the service.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, PersistentVolumeClaimVolumeSource, PodDNSConfig,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::KubernetesSettings;
use crate::limits::Limits;
use crate::process::plan::{DATASET_MOUNT, SCRATCH_MOUNT, TRAINER_MOUNT};

/// Labels of every trial Job and pod.
pub const LABEL_JOB: &str = "research-agent.sandbox/job";
pub const LABEL_INSTANCE: &str = "research-agent.sandbox/instance";
/// The sandbox's own job id (any string a client chose), kept whole.
pub const ANNOTATION_JOB_ID: &str = "research-agent.sandbox/job-id";
/// The container's name in the trial pod.
pub const CONTAINER: &str = "trial";
/// Seconds the Job may run beyond the job's own timeout (the sandbox kills it at the timeout;
/// the deadline holds if the sandbox is gone).
pub const DEADLINE_SLACK_SECONDS: u64 = 30;

/// What goes into one trial's Job.
#[derive(Debug)]
pub struct Trial<'a> {
    /// The Job's name and the value of [`LABEL_JOB`] (a DNS label).
    pub name: &'a str,
    pub job_id: &'a str,
    pub instance: &'a str,
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    /// The scratch folder inside the work claim.
    pub scratch_sub_path: &'a Path,
    /// The prepared dataset's folder inside the dataset claim.
    pub dataset_sub_path: Option<&'a Path>,
    pub limits: &'a Limits,
    /// A train job on a CUDA device: it asks for at least one GPU.
    pub gpu: bool,
}

/// The Job for `trial`. `tolerations` are the parsed `tolerations_json`.
pub fn trial_job(
    settings: &KubernetesSettings,
    tolerations: &[Toleration],
    trial: &Trial<'_>,
) -> Job {
    let mut labels: BTreeMap<String, String> = settings.labels.clone();
    labels.insert(LABEL_JOB.into(), trial.name.into());
    labels.insert(LABEL_INSTANCE.into(), trial.instance.into());
    let mut argv = trial.argv.to_vec();
    // The trainer lives in the image, not where the process backend mounts it.
    if argv.first().map(String::as_str) == Some(TRAINER_MOUNT) {
        argv[0] = settings.trainer_in_image.display().to_string();
    }
    let limits = trial.limits;
    let mut resources = BTreeMap::from([
        (
            "cpu".to_owned(),
            Quantity(format!("{}m", limits.cpu_millis)),
        ),
        (
            "memory".to_owned(),
            Quantity(limits.memory_bytes.to_string()),
        ),
        (
            "ephemeral-storage".to_owned(),
            Quantity(limits.scratch_bytes.to_string()),
        ),
    ]);
    let gpus = if trial.gpu {
        settings.gpus.max(1)
    } else {
        settings.gpus
    };
    if gpus > 0 {
        resources.insert("nvidia.com/gpu".into(), Quantity(gpus.to_string()));
    }
    let mut mounts = vec![VolumeMount {
        name: "scratch".into(),
        mount_path: SCRATCH_MOUNT.into(),
        sub_path: Some(trial.scratch_sub_path.display().to_string()),
        ..VolumeMount::default()
    }];
    let mut volumes = vec![claim_volume("scratch", &settings.work_claim, false)];
    if let Some(dataset) = trial.dataset_sub_path {
        mounts.push(VolumeMount {
            name: "dataset".into(),
            mount_path: DATASET_MOUNT.into(),
            sub_path: Some(dataset.display().to_string()),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        volumes.push(claim_volume("dataset", &settings.dataset_claim, true));
    }
    let container = Container {
        name: CONTAINER.into(),
        image: Some(settings.image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        command: Some(argv),
        env: Some(
            trial
                .env
                .iter()
                .map(|(name, value)| EnvVar {
                    name: name.clone(),
                    value: Some(value.clone()),
                    ..EnvVar::default()
                })
                .collect(),
        ),
        working_dir: Some(SCRATCH_MOUNT.into()),
        resources: Some(ResourceRequirements {
            limits: Some(resources.clone()),
            requests: Some(resources),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        restart_policy: Some("Never".into()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        host_network: Some(false),
        host_pid: Some(false),
        host_ipc: Some(false),
        // No cluster DNS: lookups go to a resolver that is not there and fail at once.
        dns_policy: Some("None".into()),
        dns_config: Some(PodDNSConfig {
            nameservers: Some(vec!["127.0.0.1".into()]),
            ..PodDNSConfig::default()
        }),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(settings.run_as_user),
            run_as_group: Some(settings.run_as_group),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        node_selector: (!settings.node_selector.is_empty()).then(|| settings.node_selector.clone()),
        tolerations: (!tolerations.is_empty()).then(|| tolerations.to_vec()),
        runtime_class_name: (!settings.runtime_class_name.is_empty())
            .then(|| settings.runtime_class_name.clone()),
        termination_grace_period_seconds: Some(5),
        volumes: Some(volumes),
        ..PodSpec::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(trial.name.into()),
            labels: Some(labels.clone()),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_JOB_ID.to_owned(),
                trial.job_id.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(
                i64::try_from(
                    limits
                        .timeout_seconds
                        .saturating_add(DEADLINE_SLACK_SECONDS),
                )
                .unwrap_or(i64::MAX),
            ),
            ttl_seconds_after_finished: (settings.ttl_seconds_after_finished > 0)
                .then(|| i32::try_from(settings.ttl_seconds_after_finished).unwrap_or(i32::MAX)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

fn claim_volume(name: &str, claim: &str, read_only: bool) -> Volume {
    Volume {
        name: name.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.into(),
            read_only: Some(read_only),
        }),
        ..Volume::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            timeout_seconds: 60,
            cpu_millis: 1500,
            memory_bytes: 1 << 30,
            max_processes: 64,
            max_output_bytes: 1 << 20,
            scratch_bytes: 256 << 20,
            max_open_files: 256,
        }
    }

    fn job(settings: &KubernetesSettings) -> Job {
        job_on(settings, false)
    }

    fn job_on(settings: &KubernetesSettings, gpu: bool) -> Job {
        let argv = vec![TRAINER_MOUNT.to_owned(), "train".to_owned()];
        let env = vec![("HOME".to_owned(), "/scratch".to_owned())];
        trial_job(
            settings,
            &[],
            &Trial {
                name: "ra-trial-0123456789abcdef",
                job_id: "job one ✓",
                instance: "inst",
                argv: &argv,
                env: &env,
                scratch_sub_path: Path::new("jobs/abc/scratch"),
                dataset_sub_path: Some(Path::new("shapes-1234")),
                limits: &limits(),
                gpu,
            },
        )
    }

    #[test]
    fn a_trial_job_runs_once_with_its_limits_and_nothing_else() {
        let settings = KubernetesSettings {
            work_claim: "work".into(),
            dataset_claim: "datasets".into(),
            ..KubernetesSettings::default()
        };
        let job = job(&settings);
        let spec = job.spec.as_ref().expect("a spec");
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(90));
        assert_eq!(spec.ttl_seconds_after_finished, Some(300));
        let pod = spec.template.spec.as_ref().expect("a pod");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.enable_service_links, Some(false));
        assert_eq!(pod.dns_policy.as_deref(), Some("None"));
        let security = pod.security_context.as_ref().expect("pod security");
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(
            security.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            Some("RuntimeDefault")
        );
        let container = &pod.containers[0];
        assert_eq!(
            container.command.as_deref(),
            Some(&["/usr/local/bin/ra-trainer".to_owned(), "train".to_owned()][..])
        );
        let resources = container.resources.as_ref().expect("resources");
        let limits = resources.limits.as_ref().expect("limits");
        assert_eq!(limits["cpu"].0, "1500m");
        assert_eq!(limits["memory"].0, (1u64 << 30).to_string());
        assert_eq!(limits["ephemeral-storage"].0, (256u64 << 20).to_string());
        assert!(!limits.contains_key("nvidia.com/gpu"));
        assert_eq!(resources.requests.as_ref(), Some(limits));
        let c = container
            .security_context
            .as_ref()
            .expect("container security");
        assert_eq!(c.allow_privilege_escalation, Some(false));
        assert_eq!(c.read_only_root_filesystem, Some(true));
        assert_eq!(
            c.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_owned()])
        );
        let mounts = container.volume_mounts.as_ref().expect("mounts");
        assert_eq!(mounts[0].sub_path.as_deref(), Some("jobs/abc/scratch"));
        assert_eq!(mounts[1].read_only, Some(true));
        assert_eq!(mounts[1].mount_path, DATASET_MOUNT);
        let labels = job.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels[LABEL_INSTANCE], "inst");
        assert_eq!(
            job.metadata.annotations.as_ref().expect("annotations")[ANNOTATION_JOB_ID],
            "job one ✓"
        );
    }

    #[test]
    fn gpu_trials_ask_for_gpus_and_a_zero_ttl_keeps_the_field_unset() {
        let settings = KubernetesSettings {
            gpus: 1,
            ttl_seconds_after_finished: 0,
            ..KubernetesSettings::default()
        };
        let job = job(&settings);
        let spec = job.spec.as_ref().expect("a spec");
        assert_eq!(spec.ttl_seconds_after_finished, None);
        let pod = spec.template.spec.as_ref().expect("a pod");
        let resources = pod.containers[0].resources.as_ref().expect("resources");
        assert_eq!(
            resources.limits.as_ref().expect("limits")["nvidia.com/gpu"].0,
            "1"
        );
        // A trial on a CUDA device asks for a GPU even where trials get none by default.
        let gpu_of = |job: &Job| {
            let pod = job.spec.as_ref()?.template.spec.as_ref()?;
            let limits = pod.containers[0].resources.as_ref()?.limits.as_ref()?;
            limits.get("nvidia.com/gpu").map(|q| q.0.clone())
        };
        let cpu = KubernetesSettings::default();
        assert_eq!(gpu_of(&job_on(&cpu, true)).as_deref(), Some("1"));
        assert_eq!(gpu_of(&job_on(&cpu, false)), None);
        let two = KubernetesSettings {
            gpus: 2,
            ..KubernetesSettings::default()
        };
        assert_eq!(gpu_of(&job_on(&two, true)).as_deref(), Some("2"));
    }
}
