//! Crash and resume of the all-in-one `research-agent`: the process is killed with SIGKILL
//! while its second candidate's seeds train (30-60 epochs each); `research-agent resume` continues from the
//! registry. No finished trial is repeated or lost, the interrupted candidate is evaluated to
//! the end, and the session ends within its budget.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use ra_integration_tests::{shared_data_or_skip, workspace_binary};
use ra_proto::common::v1 as common;
use ra_proto::registry::v1 as reg;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The session's records, read through an embedded stack on the same state folder.
struct Snapshot {
    experiment: reg::Experiment,
    candidates: Vec<reg::Candidate>,
    trials: Vec<reg::Trial>,
    evaluations: Vec<reg::Evaluation>,
    decisions: Vec<reg::Decision>,
}

async fn snapshot(root: &Path, data: &Path, id: &str) -> Snapshot {
    let stack = ra_cli::Stack::start(&ra_cli::StackOptions {
        root: root.to_path_buf(),
        data_dir: Some(data.to_path_buf()),
        offline: true,
        helper_program: Some(ra_integration_tests::workspace_binary("research-agent")),
        ..ra_cli::StackOptions::default()
    })
    .await
    .expect("open the state folder");
    let mut registry = RegistryServiceClient::connect(stack.registry_url())
        .await
        .expect("connect to the registry");
    let records = ra_integration_tests::records::SessionRecords::read(&mut registry, id).await;
    stack.stop().await.expect("stop the stack");
    Snapshot {
        experiment: records.experiment,
        candidates: records.candidates,
        trials: records.trials,
        evaluations: records.evaluations,
        decisions: records.decisions,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_session_resumes_without_repeating_or_losing_trials() {
    let test = "a_killed_session_resumes_without_repeating_or_losing_trials";
    let Some(data) = shared_data_or_skip(test) else {
        return;
    };
    let root = tempfile::tempdir().expect("temporary directory");
    let binary = workspace_binary("research-agent");
    let common_args = |command: &str| -> Vec<String> {
        let mut args = vec![command.to_owned()];
        args.extend(
            [
                "--root",
                &root.path().display().to_string(),
                "--data-dir",
                &data.display().to_string(),
                "--offline",
            ]
            .map(str::to_owned),
        );
        args
    };
    let mut run = common_args("run");
    run.extend(
        [
            "--goal",
            "an MLP on digits with at least 99.9% accuracy within 3 candidates",
            "--num-seeds",
            "2",
            "--max-seeds",
            "2",
            "--strategy",
            "random",
            "--max-epochs",
            "60",
            "--json",
            "--log-filter",
            "planner_svc=info,warn",
        ]
        .map(str::to_owned),
    );
    let mut child = tokio::process::Command::new(&binary)
        .args(&run)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start research-agent run");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut research_id = String::new();
    let mut proposed = 0;
    let watched = tokio::time::timeout(Duration::from_secs(600), async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            eprintln!("[research-agent] {line}");
            if let Some(rest) = line.strip_prefix("research ") {
                research_id = rest.split(':').next().unwrap_or_default().to_owned();
            }
            if line.contains("candidate proposed") {
                proposed += 1;
            }
            if proposed == 2 && line.contains("seed started") {
                return true;
            }
        }
        false
    })
    .await
    .expect("the second candidate is proposed within 10 minutes");
    assert!(watched, "research-agent ended before its second candidate");
    assert!(research_id.starts_with("exp_"), "{research_id:?}");
    // The second candidate's seeds train (≥ 30 epochs each): kill the process without warning.
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.start_kill().expect("SIGKILL research-agent");
    let _ = child.wait().await;

    let before = snapshot(root.path(), &data, &research_id).await;
    assert_eq!(
        before.experiment.status(),
        reg::ExperimentStatus::Running,
        "a killed session is left RUNNING: {}",
        before.experiment.summary
    );
    assert_eq!(before.candidates.len(), 2);
    assert_eq!(
        before.evaluations.len(),
        1,
        "only the first candidate was evaluated"
    );
    let finished_before: HashMap<String, reg::Trial> = before
        .trials
        .iter()
        .filter(|t| t.state() == common::TrialState::Succeeded)
        .map(|t| (t.id.clone(), t.clone()))
        .collect();
    assert!(finished_before.len() >= 2, "{:#?}", before.trials);
    let unfinished_before: Vec<&reg::Trial> = before
        .trials
        .iter()
        .filter(|t| {
            t.candidate_id == before.candidates[1].id
                && matches!(
                    t.state(),
                    common::TrialState::Pending | common::TrialState::Running
                )
        })
        .collect();
    assert!(
        !unfinished_before.is_empty(),
        "the kill left the second candidate's trials running: {:#?}",
        before.trials
    );

    // `status` says what happened; `resume` finishes the session.
    let mut status_args = common_args("status");
    status_args.extend([research_id.clone(), "--json".into()]);
    let status = tokio::process::Command::new(&binary)
        .args(&status_args)
        .output()
        .await
        .expect("research-agent status");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["state"], "RUNNING");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("interrupted"),
        "{status}"
    );

    let mut resume = common_args("resume");
    resume.extend([research_id.clone(), "--json".into()]);
    let resumed = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new(&binary).args(&resume).output(),
    )
    .await
    .expect("the resumed session ends within 10 minutes")
    .expect("research-agent resume");
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert_eq!(
        resumed.status.code(),
        Some(2),
        "exhausted without reaching 99.9%: {stdout} {}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let final_status: serde_json::Value = serde_json::from_str(&stdout).expect("final JSON");
    assert_eq!(final_status["state"], "EXHAUSTED");

    let after = snapshot(root.path(), &data, &research_id).await;
    assert_eq!(after.experiment.status(), reg::ExperimentStatus::Exhausted);
    assert_eq!(
        after.candidates.len(),
        3,
        "the budget of 3 candidates holds"
    );
    // No finished trial was repeated or changed; none was lost.
    for (id, trial) in &finished_before {
        let now = after
            .trials
            .iter()
            .find(|t| &t.id == id)
            .expect("a finished trial is kept");
        assert_eq!(now, trial, "a finished trial is not run again");
    }
    let mut seen = std::collections::HashSet::new();
    for trial in &after.trials {
        assert!(
            seen.insert((trial.candidate_id.clone(), trial.seed)),
            "one trial per candidate and seed"
        );
        assert!(
            trial.state() != common::TrialState::Pending
                && trial.state() != common::TrialState::Running,
            "no trial is left unfinished: {trial:?}"
        );
    }
    // Every candidate has exactly one evaluation; the first one's is the one from before.
    for candidate in &after.candidates {
        let count = after
            .evaluations
            .iter()
            .filter(|e| e.candidate_id == candidate.id)
            .count();
        assert_eq!(count, 1, "candidate {} evaluations", candidate.id);
    }
    assert_eq!(after.evaluations[0], before.evaluations[0]);
    for trial in &unfinished_before {
        let now = after
            .trials
            .iter()
            .find(|t| t.id == trial.id)
            .expect("an interrupted trial is kept");
        assert_eq!(
            now.state(),
            common::TrialState::Succeeded,
            "the interrupted trial was adopted and finished: {now:?}"
        );
    }
    assert!(after.decisions.iter().any(|d| d.action == "resume"));
    let seeds_of_second = after
        .trials
        .iter()
        .filter(|t| {
            t.candidate_id == before.candidates[1].id && t.state() == common::TrialState::Succeeded
        })
        .count();
    assert!(
        seeds_of_second >= 2,
        "the interrupted candidate was evaluated to the end"
    );
}
