//! The first minutes of a new user: `research-agent` is one self-contained file (copied alone
//! into an empty folder it still runs a session: it is its own sandbox init and trainer), and a
//! missing piece is named in a refusal before any session starts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ra_integration_tests::workspace_binary;

const GOAL: &str = "an MLP for synthetic-tabular with at least 90% accuracy within 2 candidates";

/// `research-agent` copied alone into a fresh folder, and a working folder beside it.
fn copied_alone() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let bin = dir.path().join("bin");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&bin).expect("bin");
    std::fs::create_dir_all(&work).expect("work");
    let copy = bin.join("research-agent");
    std::fs::copy(workspace_binary("research-agent"), &copy).expect("copy research-agent");
    (dir, copy, work)
}

fn run(program: &Path, work: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    // A copy just written may still be open in a child another test thread is forking (until
    // that child's exec closes it): exec then fails with ETXTBSY for a moment. Try again.
    let mut tries = 0;
    loop {
        let started = Command::new(program)
            .args(args)
            .current_dir(work)
            // Nothing of the build on PATH: only the system's programs.
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(env.iter().copied())
            .output();
        match started {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            started => return started.expect("run research-agent"),
        }
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_copied_research_agent_runs_a_session_on_its_own() {
    let (_dir, program, work) = copied_alone();
    let output = run(&program, &work, &["run", "--offline", "--goal", GOAL], &[]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(0), "{said}");
    assert!(said.contains(": SUCCEEDED — "), "{said}");
    assert!(work.join(".research-agent/reports").is_dir(), "{said}");
    // Its hidden roles, by hand.
    let output = run(&program, &work, &["trainer", "--help"], &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("Usage: ra-trainer"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_missing_trainer_is_refused_before_the_session_starts() {
    let (_dir, program, work) = copied_alone();
    let output = run(
        &program,
        &work,
        &["run", "--offline", "--goal", GOAL],
        &[("RA_SANDBOX__TRAINER_PATH", "/nonexistent/ra-trainer")],
    );
    let said = text(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("FailedPrecondition"), "{said}");
    assert!(
        said.contains("/nonexistent/ra-trainer is not a file"),
        "{said}"
    );
    // Nothing was recorded: no session to list.
    let listed = run(&program, &work, &["list", "--offline"], &[]);
    let listed_text = text(&listed);
    assert!(listed.status.success(), "{listed_text}");
    assert!(!listed_text.contains("exp_"), "{listed_text}");
}

#[test]
fn a_sandbox_that_cannot_run_anything_stops_the_start_with_the_reason() {
    let (_dir, program, work) = copied_alone();
    let output = run(
        &program,
        &work,
        &["run", "--offline", "--goal", GOAL],
        &[(
            "RA_SANDBOX__PROCESS__INIT_PATH",
            "/nonexistent/ra-sandbox-init",
        )],
    );
    let said = text(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("sandbox-svc cannot run any job"), "{said}");
    assert!(said.contains("/nonexistent/ra-sandbox-init"), "{said}");
}

#[test]
fn a_configuration_file_reaches_the_embedded_services() {
    let (_dir, program, work) = copied_alone();
    std::fs::write(
        work.join("stack.toml"),
        "[planner.defaults]\nmax_candidates = 1\n\n[sandbox]\nmax_concurent_jobs = 2\n",
    )
    .expect("write");
    let output = run(
        &program,
        &work,
        &[
            "run",
            "--offline",
            "--config",
            "stack.toml",
            "--goal",
            "an MLP for synthetic-tabular with at least 90% accuracy",
        ],
        &[],
    );
    let said = text(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a misspelt key is refused: {said}"
    );
    assert!(said.contains("max_concurent_jobs"), "{said}");
}
