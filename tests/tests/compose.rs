//! deploy/compose.yaml as a platform engineer uses it: `docker compose up --wait` brings the five
//! services up healthy on their private network (their own `--probe` health checks), and
//! `research-agent run --planner http://…` runs a research session through the published planner
//! to its end, trials on the sandbox's process backend inside its container; `down -v` leaves
//! nothing. Needs Docker with the compose plugin (`local-cluster install-tools` provides one;
//! `.ci/run` puts it on the path) and the images of `deploy/docker/build-images.sh` (tag
//! `$RA_IMAGE_TAG`, default `dev`); skips loudly without them (a failure in CI).

use std::path::PathBuf;
use std::process::{Command, Output};

use ra_integration_tests::{
    free_port, image_tag as tag, output_text as text, skip_or_fail, workspace_binary,
};

const TEST: &str = "compose_runs_a_research_session_to_its_end";
const GOAL: &str = "an MLP for synthetic-tabular with at least 80% accuracy within 3 candidates";

fn compose_file() -> PathBuf {
    ra_integration_tests::repo_path("deploy/compose.yaml")
}

/// One compose project, taken down with its volumes however the test ends.
struct Project {
    name: String,
    port: u16,
}

impl Project {
    fn compose(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("compose")
            .args([
                "-f",
                &compose_file().display().to_string(),
                "-p",
                &self.name,
            ])
            .args(args)
            .env("RA_IMAGE_TAG", tag())
            .env("RA_PLANNER_PORT", self.port.to_string())
            .output()
            .expect("run docker compose")
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let down = self.compose(&["down", "-v", "--timeout", "5"]);
        if !down.status.success() {
            eprintln!("docker compose down failed: {}", text(&down));
        }
    }
}

#[test]
fn compose_runs_a_research_session_to_its_end() {
    let version = Command::new("docker").args(["compose", "version"]).output();
    if !version.is_ok_and(|o| o.status.success()) {
        return skip_or_fail(TEST, "docker compose is not available");
    }
    let image = format!("research-agent/planner-svc:{}", tag());
    let inspected = Command::new("docker")
        .args(["image", "inspect", &image])
        .output();
    if !inspected.is_ok_and(|o| o.status.success()) {
        return skip_or_fail(
            TEST,
            &format!("{image} is not built (deploy/docker/build-images.sh)"),
        );
    }
    let project = Project {
        name: format!("ra-compose-{}", std::process::id()),
        port: free_port(),
    };
    let config = project.compose(&["config", "--quiet"]);
    assert!(config.status.success(), "{}", text(&config));
    let up = project.compose(&["up", "-d", "--wait", "--wait-timeout", "180"]);
    let logs = || text(&project.compose(&["logs", "--no-color"]));
    assert!(up.status.success(), "{}\n{}", text(&up), logs());

    // Every service answers its health check as healthy, and runs hardened.
    let ps = project.compose(&["ps", "--format", "{{.Service}} {{.Health}}"]);
    let healthy = text(&ps);
    for service in ["registry", "dataset", "sandbox", "evaluator", "planner"] {
        assert!(
            healthy.contains(&format!("{service} healthy")),
            "{service}: {healthy}"
        );
    }
    let sandbox = text(&project.compose(&["ps", "-q", "sandbox"]));
    let inspect = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.Privileged}}",
            sandbox.trim(),
        ])
        .output()
        .expect("docker inspect");
    assert_eq!(
        text(&inspect).trim(),
        "65532:65532 true [ALL] false",
        "the sandbox container"
    );

    let planner = format!("http://127.0.0.1:{}", project.port);
    let work = tempfile::tempdir().expect("a working folder");
    let run = Command::new(workspace_binary("research-agent"))
        .args([
            "run",
            "--planner",
            &planner,
            "--seed",
            "3",
            "--max-minutes",
            "5",
            "--goal",
            GOAL,
        ])
        .current_dir(work.path())
        .output()
        .expect("run research-agent");
    let said = text(&run);
    assert!(
        matches!(run.status.code(), Some(0 | 2)),
        "{said}\n{}",
        logs()
    );
    assert!(
        said.lines().any(|l| l.starts_with("research exp_")
            && (l.contains(": SUCCEEDED — ") || l.contains(": EXHAUSTED — "))),
        "no decision: {said}\n{}",
        logs()
    );
    // The trials ran in the sandbox's container, on its process backend.
    let sandbox_logs = text(&project.compose(&["logs", "--no-color", "sandbox"]));
    assert!(
        sandbox_logs.contains("process backend ready"),
        "{sandbox_logs}"
    );
    assert!(!work.path().join(".research-agent").exists(), "{said}");
}
