//! The escape and fault suite, for every backend: each attack is a small hostile bash program
//! run as an untrusted command job; each test asserts that the attack failed and that the host
//! is unchanged (no connection, no file, no secret in the output, no process left behind).
//! The Docker half needs a running Docker Engine, the Kubernetes third a real cluster
//! (`local-cluster up` and its `env`; its trial pods run on this machine's Docker): each skips
//! loudly without, and fails instead under `RA_REQUIRE_TEST_DEPS=1` (as in CI).
//!
//! One attack depends on the cluster rather than the sandbox: a trial pod's network is its
//! network plugin's, and only a plugin that enforces NetworkPolicies keeps the chart's
//! deny-all policy. The local cluster has none, so there the connection to the host's bridge
//! address is expected to succeed, and the test checks that the trial's record says so
//! (`network_isolated: false`, from `sandbox.kubernetes.network_isolated`).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::cluster::{TrialNamespace, Trials};
use common::{
    HOST_SECRET_NAME, HOST_SECRET_VALUE, Options, Outcome, SandboxProcess, eventually,
    host_processes_with, run_job, script_job,
};
use ra_proto::common::v1::{ExitReason, ResourceLimits};
use ra_proto::sandbox::v1 as pb;
use tokio_stream::StreamExt;

fn limits(timeout_seconds: u64) -> ResourceLimits {
    ResourceLimits {
        timeout_seconds,
        memory_bytes: 256 << 20,
        max_processes: 32,
        max_output_bytes: 1 << 20,
        scratch_bytes: 16 << 20,
        ..Default::default()
    }
}

/// A host folder everyone may write and read: only isolation keeps jobs out of it.
fn open_host_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    dir
}

struct Attack {
    name: &'static str,
    script: String,
    limits: ResourceLimits,
}

/// The service under test, and the cluster namespace its kubernetes backend uses (dropped
/// after the service, which deletes its running Jobs as it stops).
struct UnderTest {
    service: SandboxProcess,
    cluster: Option<(TrialNamespace, Trials)>,
}

impl UnderTest {
    fn options(&self, backend: pb::Backend) -> Options {
        Options {
            docker: backend == pb::Backend::Docker,
            kubernetes: self.cluster.as_ref().map(|(_, trials)| trials.clone()),
            ..Options::default()
        }
    }

    /// Nothing of the jobs is left in the cluster: no Job, no pod.
    async fn cluster_is_clean(&self) -> Result<(), Vec<String>> {
        let Some((namespace, _)) = &self.cluster else {
            return Ok(());
        };
        if eventually(90, || namespace.jobs_and_pods().is_empty()).await {
            Ok(())
        } else {
            Err(namespace.jobs_and_pods())
        }
    }
}

/// Starts the service for `backend`; `None` when Docker or a cluster is needed and absent
/// (after the loud skip, or the failure under RA_REQUIRE_TEST_DEPS).
async fn service_for(backend: pb::Backend, root: &Path, test: &str) -> Option<UnderTest> {
    let cluster = if backend == pb::Backend::Kubernetes {
        match Trials::create(root, test).await {
            Ok(cluster) => Some(cluster),
            Err(why) => {
                ra_test_support::skip_or_fail(test, &format!("a Kubernetes cluster ({why})"));
                return None;
            }
        }
    } else {
        None
    };
    let options = Options {
        docker: backend == pb::Backend::Docker,
        max_concurrent_jobs: 2,
        kubernetes: cluster.as_ref().map(|(_, trials)| trials.clone()),
        ..Options::default()
    };
    let service = SandboxProcess::start(root, &options).await;
    if backend != pb::Backend::Process {
        let mut client = service.client().await;
        let probe = script_job("probe.sh", "exit 0", limits(60), backend);
        match client
            .run_job(pb::RunJobRequest {
                job: Some(probe),
                job_id: String::new(),
            })
            .await
        {
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                ra_test_support::skip_or_fail(
                    test,
                    &format!("the {backend:?} backend ({})", status.message()),
                );
                return None;
            }
            Err(status) => panic!("the {backend:?} probe job was refused: {status}"),
            // Run the probe to its end, so that it is cleaned up before the test looks.
            Ok(stream) => {
                let _: Vec<_> = stream.into_inner().collect().await;
            }
        }
    }
    Some(UnderTest { service, cluster })
}

/// This machine's addresses other than loopback (its interfaces, Docker's bridge among them,
/// where containers and local-cluster pods have their network), which a job could try.
fn host_addresses() -> Vec<String> {
    let Ok(listed) = std::process::Command::new("ip")
        .args(["-4", "-o", "address", "show"])
        .output()
    else {
        return Vec::new();
    };
    // "2: eth0    inet 192.0.2.2/24 brd …"
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().skip_while(|w| *w != "inet").skip(1);
            let address = words.next()?.split('/').next()?;
            let parsed: std::net::Ipv4Addr = address.parse().ok()?;
            (!parsed.is_loopback()).then(|| address.to_owned())
        })
        .collect()
}

async fn escape_suite(backend: pb::Backend, test: &str) {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(under) = service_for(backend, root.path(), test).await else {
        return;
    };
    let mut client = under.service.client().await;
    let host = open_host_dir();
    let marker_file = host.path().join("marker");
    let secret_file = host.path().join("secret.txt");
    std::fs::write(&secret_file, "planted-secret-5d1b").expect("plant the secret");
    std::fs::set_permissions(
        &secret_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");

    // A listener on every host address that records any connection.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("listener");
    let port = listener.local_addr().expect("address").port();
    let connected = Arc::new(AtomicBool::new(false));
    let flag = connected.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
        }
    });

    let tag = uuid::Uuid::now_v7().simple().to_string();
    let mut attacks = vec![
        Attack {
            name: "tcp-connect-host-loopback",
            script: format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo ESCAPED"),
            limits: limits(30),
        },
        Attack {
            name: "dns-lookup",
            script: "exec 3<>/dev/tcp/example.com/80 && echo ESCAPED".into(),
            limits: limits(30),
        },
        Attack {
            name: "write-outside-scratch",
            script: format!(
                "echo pwned > {} && echo ESCAPED; echo pwned > /usr/pwned-{tag} && echo ESCAPED; echo pwned > /pwned && echo ESCAPED; true",
                marker_file.display()
            ),
            limits: limits(30),
        },
        Attack {
            name: "read-host-secret-file",
            script: format!(
                "s=$(< {}) && echo \"ESCAPED $s\"; true",
                secret_file.display()
            ),
            limits: limits(30),
        },
        Attack {
            name: "read-service-environment",
            script: format!(
                "[[ -n ${HOST_SECRET_NAME} ]] && echo ESCAPED; for f in /proc/[0-9]*/environ; do while IFS= read -r -d '' v; do [[ $v == {HOST_SECRET_NAME}=* ]] && echo \"ESCAPED $v\"; done < \"$f\"; done 2>/dev/null; true"
            ),
            limits: limits(30),
        },
        Attack {
            name: "fork-bomb",
            script: "b() { b | b & }; b; while :; do :; done".into(),
            limits: limits(5),
        },
        Attack {
            name: "memory-bomb",
            script: "x=$(printf '%*s' 1048576 ''); while :; do x=\"$x$x\"; done".into(),
            limits: ResourceLimits {
                memory_bytes: 64 << 20,
                ..limits(60)
            },
        },
        Attack {
            name: "cpu-spin-past-timeout",
            script: "while :; do :; done".into(),
            limits: limits(2),
        },
        Attack {
            name: "stdout-flood",
            script: "s=$(printf '%*s' 4096 '' | tr ' ' A 2>/dev/null || printf '%*s' 4096 ''); while :; do echo \"$s\"; done".into(),
            limits: limits(60),
        },
        Attack {
            name: "scratch-disk-fill",
            script: "s=$(printf '%*s' 1048576 ''); while :; do echo \"$s\" >> fill || exit 3; done".into(),
            limits: limits(60),
        },
        Attack {
            name: "double-forked-daemon",
            script: format!(
                "( ( trap '' HUP TERM; exec -a daemon-{tag} bash -c 'while :; do :; done' ) & ) ; echo detached; exit 0"
            ),
            limits: limits(30),
        },
    ];

    let addresses = host_addresses();
    if !addresses.is_empty() {
        attacks.push(Attack {
            name: "tcp-connect-host-addresses",
            script: format!(
                "for a in {}; do (exec 3<>/dev/tcp/$a/{port}) 2>/dev/null && echo CONNECTED $a; done; true",
                addresses.join(" ")
            ),
            limits: limits(60),
        });
    }

    let mut table = Vec::new();
    for attack in &attacks {
        let name = format!("attack-{tag}-{}.sh", attack.name);
        let outcome = run_job(
            &mut client,
            script_job(&name, &attack.script, attack.limits, backend),
        )
        .await;
        let reached = connected.swap(false, Ordering::SeqCst);
        let isolated = outcome.started().is_some_and(|e| e.network_isolated);
        let contained = if attack.name == "tcp-connect-host-addresses" && !isolated {
            // Only the cluster's network plugin could have stopped it; the record says so.
            assert_eq!(backend, pb::Backend::Kubernetes, "{}", attack.name);
            format!(
                "{}: the trial is recorded as not network-isolated",
                if reached {
                    "NOT contained (no NetworkPolicy enforcement on this cluster)"
                } else {
                    "contained by the cluster's network"
                }
            )
        } else {
            assert!(
                !reached,
                "{}: a job reached the host's network",
                attack.name
            );
            check_contained(attack.name, &outcome, &tag).await
        };
        table.push((attack.name, outcome.reason(), contained));
    }
    assert!(!marker_file.exists(), "a job wrote a host file");
    assert!(
        !Path::new(&format!("/usr/pwned-{tag}")).exists() && !Path::new("/pwned").exists(),
        "a job wrote into a system folder"
    );
    eprintln!("escape suite, backend {backend:?}:");
    for (name, reason, contained) in &table {
        eprintln!("  {name:<28} {reason:?}: {contained}");
    }
    let jobs = root.path().join("jobs");
    assert_eq!(
        std::fs::read_dir(&jobs).map(Iterator::count).unwrap_or(0),
        0,
        "job folders left behind"
    );
    if let Err(left) = under.cluster_is_clean().await {
        panic!("trial Jobs or pods left in the cluster: {left:?}");
    }
}

/// Asserts the attack failed in the expected way; returns a line for the table.
async fn check_contained(name: &str, outcome: &Outcome, tag: &str) -> String {
    let logs = outcome.logs();
    let result = outcome.result();
    for line in &logs {
        assert!(
            !line.contains("ESCAPED") && !line.contains("CONNECTED"),
            "{name}: the attack succeeded: {line}"
        );
        assert!(
            !line.contains(HOST_SECRET_VALUE) && !line.contains("planted-secret"),
            "{name}: a secret leaked: {line}"
        );
    }
    assert!(!result.message.contains(HOST_SECRET_VALUE));
    let reason = outcome.reason();
    match name {
        // Kubernetes has no per-pod process limit (a node's podPidsLimit is the kubelet's): the
        // bomb meets the memory limit or the timeout.
        "fork-bomb" => assert!(
            matches!(
                reason,
                ExitReason::Timeout
                    | ExitReason::Failed
                    | ExitReason::Killed
                    | ExitReason::OutOfMemory
            ),
            "{name}: {reason:?} {}",
            result.message
        ),
        "memory-bomb" => assert_eq!(
            reason,
            ExitReason::OutOfMemory,
            "{name}: {}",
            result.message
        ),
        "cpu-spin-past-timeout" => assert_eq!(reason, ExitReason::Timeout, "{name}"),
        "stdout-flood" => assert_eq!(reason, ExitReason::OutputLimit, "{name}"),
        "scratch-disk-fill" => {
            assert_eq!(reason, ExitReason::Failed, "{name}: {}", result.message);
            assert!(
                result.message.contains("scratch directory is full"),
                "{name}: {}",
                result.message
            );
        }
        "double-forked-daemon" => {
            assert_eq!(reason, ExitReason::Completed, "{name}: {}", result.message);
            assert!(logs.iter().any(|l| l == "detached"));
        }
        _ => {}
    }
    // However it ended, nothing of it is left running on the host.
    let gone = eventually(10, || host_processes_with(tag).is_empty()).await;
    assert!(
        gone,
        "{name}: processes outlived the job: {:?}",
        host_processes_with(tag)
    );
    format!(
        "contained ({})",
        result.message.chars().take(70).collect::<String>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn process_backend_contains_every_attack() {
    escape_suite(
        pb::Backend::Process,
        "process_backend_contains_every_attack",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_backend_contains_every_attack() {
    escape_suite(pb::Backend::Docker, "docker_backend_contains_every_attack").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubernetes_backend_contains_every_attack() {
    escape_suite(
        pb::Backend::Kubernetes,
        "kubernetes_backend_contains_every_attack",
    )
    .await;
}

/// `kill -9` of sandbox-svc in the middle of a job, then a restart: no orphan process or
/// container, the scratch folder removed.
async fn service_killed_mid_job(backend: pb::Backend, test: &str) {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(mut under) = service_for(backend, root.path(), test).await else {
        return;
    };
    let mut client = under.service.client().await;
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let name = format!("orphan-{tag}.sh");
    let mut stream = client
        .run_job(pb::RunJobRequest {
            job: Some(script_job(
                &name,
                "echo running; while :; do :; done",
                limits(600),
                backend,
            )),
            job_id: String::new(),
        })
        .await
        .expect("RunJob")
        .into_inner();
    // Wait until the job prints, so that it is surely running.
    let mut job_id = String::new();
    while let Some(event) = stream.next().await {
        if let Ok(event) = &event {
            job_id.clone_from(&event.job_id);
        }
        if let Ok(pb::JobEvent {
            event: Some(pb::job_event::Event::Log(log)),
            ..
        }) = &event
            && log.line == "running"
        {
            break;
        }
    }
    assert!(!host_processes_with(&tag).is_empty(), "the job is running");
    let jobs = root.path().join("jobs");
    assert_eq!(std::fs::read_dir(&jobs).expect("jobs folder").count(), 1);
    under.service.kill_hard();
    drop(stream);

    let restarted = SandboxProcess::start(root.path(), &under.options(backend)).await;
    assert!(
        eventually(20, || host_processes_with(&tag).is_empty()).await,
        "orphans after the restart: {:?}",
        host_processes_with(&tag)
    );
    assert_eq!(
        std::fs::read_dir(&jobs).expect("jobs folder").count(),
        0,
        "the killed job's scratch folder was not removed"
    );
    if backend == pb::Backend::Docker {
        let listed = std::process::Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=research-agent.sandbox.job={job_id}"),
            ])
            .output()
            .expect("docker ps");
        assert!(
            String::from_utf8_lossy(&listed.stdout).trim().is_empty(),
            "sandbox containers left after the restart"
        );
    } else if backend == pb::Backend::Kubernetes {
        if let Err(left) = under.cluster_is_clean().await {
            panic!("trial Jobs or pods left after the restart: {left:?}");
        }
    } else {
        // Every hierarchy's sandbox folders must have lost this job's group.
        let mut leftovers = Vec::new();
        for mount in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let candidates = std::iter::once(mount.path()).chain(
                std::fs::read_dir(mount.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("ra-sandbox-"))
                    .map(|e| e.path()),
            );
            leftovers.extend(candidates.map(|p| p.join(&job_id)).filter(|p| p.exists()));
        }
        assert!(leftovers.is_empty(), "cgroups left: {leftovers:?}");
    }
    drop(restarted);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn process_backend_survives_a_killed_service() {
    service_killed_mid_job(
        pb::Backend::Process,
        "process_backend_survives_a_killed_service",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_backend_survives_a_killed_service() {
    service_killed_mid_job(
        pb::Backend::Docker,
        "docker_backend_survives_a_killed_service",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubernetes_backend_survives_a_killed_service() {
    service_killed_mid_job(
        pb::Backend::Kubernetes,
        "kubernetes_backend_survives_a_killed_service",
    )
    .await;
}
