//! A namespace of a real Kubernetes cluster (`../shared/k8s/local-cluster`, with `local-cluster
//! env` in the environment) for the kubernetes sandbox backend run on this host: two hostPath
//! PersistentVolumes with their claims over a local folder — [`WORK_CLAIM`] over the folder
//! itself (the sandbox's job folders lie under it) and [`DATASET_CLAIM`] over its `datasets/`
//! (the prepared-dataset cache) — and a deny-all NetworkPolicy, as the chart installs. Deleted,
//! volumes included, when dropped.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::output_text;

pub const WORK_CLAIM: &str = "work";
pub const DATASET_CLAIM: &str = "datasets";

pub fn kubectl(args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"))
}

/// `Err(why)` when no cluster can be used from here.
pub fn cluster_reachable() -> Result<(), String> {
    if std::env::var_os("KUBECONFIG").is_none() {
        return Err("no cluster: KUBECONFIG is unset (eval \"$(local-cluster env)\")".into());
    }
    if !Command::new("kubectl")
        .args(["get", "nodes"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Err("kubectl cannot reach a cluster (local-cluster up)".into());
    }
    Ok(())
}

pub struct TrialNamespace {
    pub name: String,
}

impl TrialNamespace {
    /// A new namespace named after `purpose`, with the claims over `root` (created if absent,
    /// with `root/datasets`); `Err(why)` when there is no cluster.
    pub async fn create(root: &Path, purpose: &str) -> Result<Self, String> {
        cluster_reachable()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let slug: String = purpose
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        let created = Self {
            name: format!("ra-{slug}-{}-{nanos:x}", std::process::id()),
        };
        std::fs::create_dir_all(root.join("datasets")).map_err(|e| e.to_string())?;
        let mut apply = Command::new("kubectl")
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run kubectl: {e}"))?;
        if let Some(mut stdin) = apply.stdin.take() {
            stdin
                .write_all(created.manifest(root).as_bytes())
                .map_err(|e| e.to_string())?;
        }
        let applied = apply.wait_with_output().map_err(|e| e.to_string())?;
        if !applied.status.success() {
            return Err(format!("kubectl apply: {}", output_text(&applied)));
        }
        // Both claims bound to their volumes before any trial needs them.
        for _ in 0..240 {
            let phases =
                created.kubectl(&["get", "pvc", "-o", "jsonpath={.items[*].status.phase}"]);
            if String::from_utf8_lossy(&phases.stdout).trim() == "Bound Bound" {
                return Ok(created);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!(
            "the claims did not bind: {}",
            output_text(&created.kubectl(&["get", "pvc,pv", "-o", "wide"]))
        ))
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        kubectl(&all)
    }

    /// The Jobs and pods in the namespace (`job/…`, `pod/…`).
    pub fn jobs_and_pods(&self) -> Vec<String> {
        let listed = self.kubectl(&["get", "jobs,pods", "-o", "name"]);
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn volume(&self, claim: &str) -> String {
        format!("{}-{claim}", self.name)
    }

    fn manifest(&self, root: &Path) -> String {
        let namespace = &self.name;
        let mut documents = vec![format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n"
        )];
        for (claim, path) in [
            (WORK_CLAIM, root.to_path_buf()),
            (DATASET_CLAIM, root.join("datasets")),
        ] {
            let volume = self.volume(claim);
            let path = path.display();
            documents.push(format!(
                r#"apiVersion: v1
kind: PersistentVolume
metadata:
  name: {volume}
spec:
  capacity: {{ storage: 1Gi }}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {{ path: "{path}", type: Directory }}
  claimRef: {{ namespace: {namespace}, name: {claim} }}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {claim}
  namespace: {namespace}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  volumeName: {volume}
  resources: {{ requests: {{ storage: 1Gi }} }}
"#
            ));
        }
        documents.push(format!(
            r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: trials-deny-all
  namespace: {namespace}
spec:
  podSelector: {{}}
  policyTypes: [Ingress, Egress]
"#
        ));
        documents.join("---\n")
    }
}

impl Drop for TrialNamespace {
    fn drop(&mut self) {
        let _ = kubectl(&[
            "delete",
            "namespace",
            &self.name,
            "--wait=true",
            "--timeout=90s",
        ]);
        let _ = kubectl(&[
            "delete",
            "pv",
            &self.volume(WORK_CLAIM),
            &self.volume(DATASET_CLAIM),
            "--wait=false",
        ]);
    }
}
