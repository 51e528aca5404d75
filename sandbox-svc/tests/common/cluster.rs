//! The kubernetes backend under test on a real cluster: a [`TrialNamespace`] (claims over the
//! service's folders) and the trial image the docker backend builds (`ra-trainer`, bash and
//! busybox `FROM scratch`, on the engine the kubelet uses); the sandbox-svc under test runs on
//! the host, as root, with the kubeconfig.

use std::path::Path;

pub use ra_test_support::cluster::TrialNamespace;
use ra_test_support::cluster::{DATASET_CLAIM, WORK_CLAIM};

/// What the service's `[sandbox.kubernetes]` section names.
#[derive(Debug, Clone)]
pub struct Trials {
    pub namespace: String,
    pub image: String,
}

impl Trials {
    /// The namespace (claims over `root`) and the image; `Err(why)` without a cluster or Docker.
    pub async fn create(root: &Path, test: &str) -> Result<(TrialNamespace, Self), String> {
        let namespace = TrialNamespace::create(root, test).await?;
        let image = trial_image().await?;
        let trials = Self {
            namespace: namespace.name.clone(),
            image,
        };
        Ok((namespace, trials))
    }

    /// The backend's settings for a service whose work claim is `root` (`root/jobs` is its
    /// work folder, `root/datasets` its dataset cache).
    pub fn sandbox_settings(&self, root: &Path) -> String {
        format!(
            r#"
[sandbox.kubernetes]
enabled = true
namespace = "{namespace}"
image = "{image}"
image_pull_policy = "Never"
trainer_in_image = "/opt/ra/ra-trainer"
work_claim = "{WORK_CLAIM}"
work_root = "{root}"
dataset_claim = "{DATASET_CLAIM}"
ttl_seconds_after_finished = 0
# No network plugin enforces NetworkPolicies on the local cluster.
network_isolated = false
"#,
            namespace = self.namespace,
            image = self.image,
            root = root.display(),
        )
    }
}

/// The docker backend's own trial image, built when absent.
pub async fn trial_image() -> Result<String, String> {
    let trainer = ra_test_support::workspace_binary("ra-trainer");
    let backend = sandbox_svc::docker::DockerBackend::new(
        &sandbox_svc::docker::DockerSettings::default(),
        Some(&trainer),
        &[],
        "kubernetes-tests",
    )
    .await
    .map_err(|e| format!("cannot build the trial image with the Docker Engine: {e}"))?;
    Ok(backend.image().to_owned())
}
