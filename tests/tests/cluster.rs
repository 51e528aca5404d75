//! The Helm chart on a real Kubernetes (`../shared/k8s/local-cluster`): installed with the locally
//! built images (`helm install --wait`: every pod Ready on its exec gRPC probes), a research
//! session on `shapes` run through the planner, its trials run as Kubernetes Jobs (one per trial, found by
//! kubectl through the job-id annotation), the session decided and the registry holding every
//! trial; then the sandbox pod killed in the middle of a second session, which still ends with
//! every trial recorded once. Needs the cluster up with `local-cluster env` in the environment
//! (KUBECONFIG, RA_K8S_APISERVER_PORT, helm and kubectl on PATH), root (the hostPath volumes are
//! made for the pods' user) and the images of `deploy/docker/build-images.sh`; skips loudly
//! without them (a failure in CI). README's `<!-- cluster-test: … -->` marker reruns it.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ra_integration_tests::{
    free_port, image_tag as tag, output_text as text, skip_or_fail, workspace_binary,
};

const TEST: &str = "the_chart_runs_sessions_as_kubernetes_jobs_and_survives_a_sandbox_restart";
/// The first session: a CNN on the `shapes` images (the baseline reaches it on its own).
const GOAL: &str = "a CNN for shapes with at least 50% accuracy within 2 candidates";
const LONGER_GOAL: &str =
    "an MLP for synthetic-tabular with at least 99.9% accuracy within 3 candidates";

fn chart() -> PathBuf {
    ra_integration_tests::repo_path("deploy/helm/research-agent")
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// One release in a namespace of its own, with its host folders; all removed however the test
/// ends.
struct Release {
    namespace: String,
    volumes: PathBuf,
}

impl Release {
    fn kubectl(&self, args: &[&str]) -> Output {
        let mut all = vec!["-n", &self.namespace];
        all.extend_from_slice(args);
        run("kubectl", &all)
    }

    fn diagnostics(&self) -> String {
        let pods = text(&self.kubectl(&["get", "pods,jobs", "-o", "wide"]));
        let events = text(&self.kubectl(&["get", "events", "--sort-by=.lastTimestamp"]));
        let logs = text(&self.kubectl(&[
            "logs",
            "-l",
            "app.kubernetes.io/component in (sandbox,evaluator,planner)",
            "--tail",
            "40",
            "--all-containers",
        ]));
        format!("{pods}\n{events}\n{logs}")
    }

    /// Names of the trial Jobs, and the sandbox job id each carries.
    fn trial_jobs(&self) -> Vec<(String, String)> {
        let listed = self.kubectl(&[
            "get",
            "jobs",
            "-l",
            "app.kubernetes.io/component=trial",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}{" "}{.metadata.annotations.research-agent\.sandbox/job-id}{"\n"}{end}"#,
        ]);
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter_map(|line| {
                let (name, id) = line.split_once(' ')?;
                Some((name.to_owned(), id.to_owned()))
            })
            .collect()
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = run(
            "helm",
            &["uninstall", "ra", "-n", &self.namespace, "--timeout", "60s"],
        );
        let _ = run(
            "kubectl",
            &[
                "delete",
                "namespace",
                &self.namespace,
                "--wait=true",
                "--timeout=90s",
            ],
        );
        let _ = run(
            "kubectl",
            &[
                "delete",
                "pv",
                "-l",
                &format!(
                    "app.kubernetes.io/instance=ra,research-agent/namespace={}",
                    self.namespace
                ),
            ],
        );
        let _ = std::fs::remove_dir_all(&self.volumes);
    }
}

fn research(planner: &str, auth: &Auth, goal: &str, seed: &str) -> Command {
    let mut command = Command::new(workspace_binary("research-agent"));
    command.args([
        "run",
        "--planner",
        planner,
        "--ca-file",
        &auth.ca.display().to_string(),
        "--token-file",
        &auth.token.display().to_string(),
        "--seed",
        seed,
        "--max-minutes",
        "8",
        "--goal",
        goal,
    ]);
    command
}

/// The release's CA and the researcher's token, taken from its generated Secret.
struct Auth {
    ca: PathBuf,
    token: PathBuf,
    _dir: tempfile::TempDir,
}

impl Auth {
    fn from_secret(release: &Release) -> Auth {
        let dir = tempfile::tempdir().expect("a folder");
        let key = |name: &str| {
            let got = release.kubectl(&[
                "get",
                "secret",
                "ra-research-agent-auth",
                "-o",
                &format!("jsonpath={{.data.{}}}", name.replace('.', "\\.")),
            ]);
            assert!(got.status.success(), "{}", text(&got));
            let decoded = Command::new("base64")
                .arg("-d")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    child.stdin.take().expect("stdin").write_all(&got.stdout)?;
                    child.wait_with_output()
                })
                .expect("base64 -d");
            assert!(decoded.status.success(), "{name}: {}", text(&decoded));
            decoded.stdout
        };
        let ca = dir.path().join("ca.crt");
        let token = dir.path().join("researcher.token");
        std::fs::write(&ca, key("ca.crt")).expect("write the CA");
        std::fs::write(&token, key("researcher.token")).expect("write the token");
        Auth {
            ca,
            token,
            _dir: dir,
        }
    }

    fn credentials(&self) -> ra_client::Credentials {
        ra_client::Credentials::from_settings(
            &ra_client::ClientSettings {
                ca_file: self.ca.clone(),
                token_file: self.token.clone(),
                ..ra_client::ClientSettings::default()
            },
            "test",
        )
        .expect("the researcher's credentials")
    }
}

fn decided(said: &str) -> Option<String> {
    said.lines()
        .find(|l| {
            l.starts_with("research exp_")
                && (l.contains(": SUCCEEDED — ") || l.contains(": EXHAUSTED — "))
        })
        .and_then(|l| l.strip_prefix("research "))
        .and_then(|l| l.split(':').next())
        .map(str::to_owned)
}

fn wait_output(child: Child) -> Output {
    child.wait_with_output().expect("research-agent ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_runs_sessions_as_kubernetes_jobs_and_survives_a_sandbox_restart() {
    let Ok(api_port) = std::env::var("RA_K8S_APISERVER_PORT") else {
        return skip_or_fail(
            TEST,
            "no local cluster (eval \"$(local-cluster env)\" sets RA_K8S_APISERVER_PORT)",
        );
    };
    if !Command::new("kubectl")
        .args(["get", "nodes"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return skip_or_fail(TEST, "kubectl cannot reach a cluster (local-cluster up)");
    }
    let image = format!("research-agent/sandbox-svc:{}", tag());
    if !run("docker", &["image", "inspect", &image])
        .status
        .success()
    {
        return skip_or_fail(
            TEST,
            &format!("{image} is not built (deploy/docker/build-images.sh)"),
        );
    }
    let namespace = format!("ra-e2e-{}", std::process::id());
    let volumes = PathBuf::from("/var/tmp/ra-cluster-volumes").join(&namespace);
    let release = Release {
        namespace: namespace.clone(),
        volumes: volumes.clone(),
    };
    for sub in ["datasets", "work", "registry"] {
        let dir = volumes.join(sub);
        std::fs::create_dir_all(&dir).expect("a volume folder");
        if let Err(error) = std::os::unix::fs::chown(&dir, Some(65_532), Some(65_532)) {
            return skip_or_fail(
                TEST,
                &format!("cannot give the hostPath volumes to 65532 (needs root): {error}"),
            );
        }
    }
    let ports: Vec<u16> = (0..10).map(|_| free_port()).collect();
    let chart_dir = chart().display().to_string();
    let local_values = chart()
        .join("values-local-cluster.yaml")
        .display()
        .to_string();
    let mut install: Vec<String> = [
        "install",
        "ra",
        &chart_dir,
        "-n",
        &namespace,
        "--create-namespace",
        "-f",
        &local_values,
        "--wait",
        "--timeout",
        "5m",
    ]
    .map(str::to_owned)
    .to_vec();
    let volumes_text = volumes.display().to_string();
    for (key, value) in [
        ("image.tag", tag()),
        ("hostPathVolumes", volumes_text),
        ("sandbox.apiServerPort", api_port.clone()),
        ("ports.planner", ports[0].to_string()),
        ("ports.evaluator", ports[1].to_string()),
        ("ports.sandbox", ports[2].to_string()),
        ("ports.dataset", ports[3].to_string()),
        ("ports.registry", ports[4].to_string()),
        ("healthPorts.planner", ports[5].to_string()),
        ("healthPorts.evaluator", ports[6].to_string()),
        ("healthPorts.sandbox", ports[7].to_string()),
        ("healthPorts.dataset", ports[8].to_string()),
        ("healthPorts.registry", ports[9].to_string()),
        // Finished trial Jobs stay for the test to see.
        ("sandbox.trials.ttlSecondsAfterFinished", "3600".into()),
    ] {
        install.push("--set-string".into());
        install.push(format!("{key}={value}"));
    }
    let started = Instant::now();
    let refs: Vec<&str> = install.iter().map(String::as_str).collect();
    let installed = run("helm", &refs);
    assert!(
        installed.status.success(),
        "{}\n{}",
        text(&installed),
        release.diagnostics()
    );
    eprintln!(
        "helm install --wait: every pod Ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let planner = format!("https://127.0.0.1:{}", ports[0]);
    let registry_url = format!("https://127.0.0.1:{}", ports[4]);
    let sandbox_url = format!("https://127.0.0.1:{}", ports[2]);
    let auth = Auth::from_secret(&release);
    let credentials = auth.credentials();

    // TLS everywhere and callers checked: without a token the planner refuses; with the
    // researcher's token the sandbox still does (it runs jobs for the evaluator alone).
    let tls_only = ra_client::Credentials::from_settings(
        &ra_client::ClientSettings {
            ca_file: auth.ca.clone(),
            ..ra_client::ClientSettings::default()
        },
        "test",
    )
    .expect("the CA");
    let anonymous = ra_client::planner_with("planner", &planner, &tls_only)
        .expect("a client")
        .client()
        .parse_goal(ra_proto::planner::v1::ParseGoalRequest { text: GOAL.into() })
        .await;
    assert_eq!(
        anonymous.map(|_| ()).map_err(|s| s.code()),
        Err(tonic::Code::Unauthenticated)
    );
    let researcher_at_sandbox = ra_client::sandbox_with("sandbox", &sandbox_url, &credentials)
        .expect("a client")
        .client()
        .list_jobs(ra_proto::sandbox::v1::ListJobsRequest::default())
        .await;
    assert_eq!(
        researcher_at_sandbox.map(|_| ()).map_err(|s| s.code()),
        Err(tonic::Code::PermissionDenied)
    );

    // A session through the planner: its trials are Jobs, and the registry has each of them.
    let started = Instant::now();
    let session = research(&planner, &auth, GOAL, "3")
        .output()
        .expect("research-agent");
    let said = text(&session);
    let experiment =
        decided(&said).unwrap_or_else(|| panic!("no decision: {said}\n{}", release.diagnostics()));
    eprintln!("cluster session: {:.1} s", started.elapsed().as_secs_f64());
    let registry = ra_client::registry_with("registry", &registry_url, &credentials)
        .expect("a registry client");
    let trials = registry.trials(&experiment, "").await.expect("the trials");
    assert!(!trials.is_empty(), "{said}");
    let jobs = release.trial_jobs();
    let job_ids: HashSet<&str> = jobs.iter().map(|(_, id)| id.as_str()).collect();
    for trial in &trials {
        assert!(
            job_ids.contains(trial.job_id.as_str()),
            "trial {} (job {}) has no Kubernetes Job: {jobs:?}",
            trial.id,
            trial.job_id
        );
    }

    // A second, longer session; the sandbox pod is killed while its trials run.
    let mut second = research(&planner, &auth, LONGER_GOAL, "5");
    let child = second
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("research-agent");
    let before = jobs.len();
    let deadline = Instant::now() + Duration::from_secs(180);
    while release.trial_jobs().len() <= before {
        assert!(
            Instant::now() < deadline,
            "no trial started\n{}",
            release.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let killed = release.kubectl(&[
        "delete",
        "pod",
        "-l",
        "app.kubernetes.io/component=sandbox",
        "--wait=false",
    ]);
    assert!(killed.status.success(), "{}", text(&killed));
    let killed_at = Instant::now();
    let second = tokio::task::spawn_blocking(move || wait_output(child))
        .await
        .expect("the second session");
    let said = text(&second);
    let experiment = decided(&said).unwrap_or_else(|| {
        panic!(
            "no decision after the restart: {said}\n{}",
            release.diagnostics()
        )
    });
    let trials = registry.trials(&experiment, "").await.expect("the trials");
    eprintln!(
        "second session across the sandbox restart: {} trials in {:.1} s: {}",
        trials.len(),
        killed_at.elapsed().as_secs_f64(),
        said.lines()
            .find(|l| l.starts_with("research exp_") && l.contains(" — "))
            .unwrap_or_default()
    );
    let mut seen = BTreeSet::new();
    for trial in &trials {
        // No trial recorded twice for the same candidate and seed, none left unfinished.
        assert!(
            seen.insert((trial.candidate_id.clone(), trial.seed, trial.job_id.clone())),
            "duplicated: {trial:?}"
        );
        assert!(trial.finished_at.is_some(), "unfinished: {trial:?}");
    }
    let sandbox_pods = text(&release.kubectl(&[
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/component=sandbox",
        "-o",
        "name",
    ]));
    assert_eq!(sandbox_pods.lines().count(), 1, "{sandbox_pods}");
}
