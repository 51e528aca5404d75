//! sandbox-svc as a new user starts it: no configuration file at all, run from an empty working
//! folder. The default relative folders are resolved to absolute paths at load (Docker refuses
//! relative bind mounts), the default docker image gives command jobs ordinary tools (busybox),
//! and a sandbox with no usable backend says NOT_SERVING and why.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{run_job, script_job};
use ra_proto::common::v1::{ExitReason, ResourceLimits};
use ra_proto::sandbox::v1 as pb;
use ra_proto::sandbox::v1::sandbox_service_client::SandboxServiceClient;
use tonic_health::pb::health_check_response::ServingStatus;

/// sandbox-svc started with `args` and no configuration, in `cwd`; killed on drop.
struct Bare(Child, u16);

impl Bare {
    fn start(cwd: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = ra_test_support::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_sandbox-svc"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .expect("start sandbox-svc");
        Self(child, port)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.1)
    }

    /// A client, and what GetCapabilities says (it answers whatever the health).
    async fn capabilities(
        &self,
    ) -> (
        SandboxServiceClient<tonic::transport::Channel>,
        pb::Capabilities,
    ) {
        let mut client = SandboxServiceClient::connect(self.endpoint())
            .await
            .expect("connect");
        let capabilities = client
            .get_capabilities(pb::GetCapabilitiesRequest {})
            .await
            .expect("GetCapabilities answers")
            .into_inner();
        (client, capabilities)
    }

    /// The first health answer (the service decides before it answers anything).
    async fn health(&mut self) -> ServingStatus {
        for _ in 0..1200 {
            if let Some(status) =
                ra_test_support::health_status(&self.endpoint(), ra_proto::service_names::SANDBOX)
                    .await
            {
                return status;
            }
            if let Ok(Some(status)) = self.0.try_wait() {
                panic!("sandbox-svc exited: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sandbox-svc never answered a health check");
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn limits(seconds: u64) -> ResourceLimits {
    ResourceLimits {
        timeout_seconds: seconds,
        ..Default::default()
    }
}

#[tokio::test]
async fn the_docker_backend_works_with_the_default_configuration() {
    let test = "the_docker_backend_works_with_the_default_configuration";
    if !std::path::Path::new("/bin/busybox").is_file() {
        ra_test_support::skip_or_fail(test, "a static busybox (apt install busybox-static)");
        return;
    }
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut service = Bare::start(cwd.path(), &[], &[]);
    assert_eq!(service.health().await, ServingStatus::Serving);
    let (mut client, capabilities) = service.capabilities().await;
    let docker = capabilities
        .backends
        .iter()
        .find(|b| b.backend == pb::Backend::Docker as i32)
        .expect("docker listed");
    if !docker.available {
        ra_test_support::skip_or_fail(
            test,
            &format!("the Docker Engine ({})", docker.unavailable_reason),
        );
        return;
    }
    // Ordinary tools, a pipe, files in the scratch folder, and the metrics protocol.
    let script = r#"set -e
mkdir -p made/inside
echo "three little words" > made/inside/file.txt
cp made/inside/file.txt copy.txt
words=$(cat copy.txt | wc -w)
ls made/inside | grep -q file.txt
sorted=$(printf 'b\na\n' | sort | head -n 1)
echo "tools: words=$words sorted=$sorted sed=$(echo abc | sed s/b/X/) awk=$(echo 4 5 | awk '{print $1 * $2}')"
echo '{"type":"final","metrics":{"val_accuracy":0.5}}'
"#;
    let mut job = script_job("tools.sh", script, limits(60), pb::Backend::Docker);
    if let Some(pb::job_spec::Kind::Command(command)) = &mut job.kind {
        command.argv[0] = "sh".into();
    }
    let outcome = run_job(&mut client, job).await;
    let logs = outcome.logs().join("\n");
    assert_eq!(
        outcome.reason(),
        ExitReason::Completed,
        "{:?}\n{logs}",
        outcome.result()
    );
    assert!(
        logs.contains("tools: words=3 sorted=a sed=aXc awk=20"),
        "{logs}"
    );
    assert_eq!(
        outcome.started().map(|e| e.resource_control.as_str()),
        Some("docker")
    );
    // The default folders were made under the working folder, as absolute paths.
    assert!(cwd.path().join(".research-agent/sandbox").is_dir());
}

#[tokio::test]
async fn a_sandbox_with_no_usable_backend_is_not_serving_and_says_why() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut service = Bare::start(
        cwd.path(),
        &[],
        &[
            ("RA_SANDBOX__DOCKER_ENABLED", "false"),
            (
                "RA_SANDBOX__PROCESS__INIT_PATH",
                "/nonexistent/ra-sandbox-init",
            ),
        ],
    );
    assert_eq!(service.health().await, ServingStatus::NotServing);
    let (mut client, capabilities) = service.capabilities().await;
    assert!(capabilities.backends.iter().all(|b| !b.available));
    let process = capabilities
        .backends
        .iter()
        .find(|b| b.backend == pb::Backend::Process as i32)
        .expect("process listed");
    assert!(
        process
            .unavailable_reason
            .contains("/nonexistent/ra-sandbox-init"),
        "{}",
        process.unavailable_reason
    );
    assert!(
        capabilities.train_jobs_blocked_by.contains("process"),
        "{}",
        capabilities.train_jobs_blocked_by
    );
    // A job is refused with the reason, not run.
    let refused = client
        .run_job(pb::RunJobRequest {
            job: Some(script_job(
                "x.sh",
                "exit 0",
                limits(10),
                pb::Backend::Process,
            )),
            job_id: String::new(),
        })
        .await;
    match refused {
        Err(status) => assert!(status.message().contains("process"), "{status:?}"),
        Ok(stream) => {
            let events: Vec<_> =
                tokio_stream::StreamExt::collect::<Vec<_>>(stream.into_inner()).await;
            let finished =
                events
                    .iter()
                    .rev()
                    .find_map(|e| match e.as_ref().ok()?.event.as_ref()? {
                        pb::job_event::Event::Finished(result) => Some(result.clone()),
                        _ => None,
                    });
            let finished = finished.expect("a finished event");
            assert_eq!(
                finished.exit_reason,
                ExitReason::Rejected as i32,
                "{finished:?}"
            );
            assert!(finished.message.contains("process"), "{finished:?}");
        }
    }
}
