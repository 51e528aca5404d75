//! The `quick-evaluator` program as a user runs it: embedded (every service in its process) and
//! as a client of a running evaluator, on the real digits data; and the evaluator's contract
//! through grpcurl and server reflection.

use std::process::Command;

use ra_integration_tests::{
    grpcurl, shared_data_or_skip, skip_or_fail, stack_on_shared_data, workspace_binary,
};
use serde_json::Value;

fn run_json(command: &mut Command) -> Value {
    let output = command.output().expect("run quick-evaluator");
    assert!(
        output.status.success(),
        "quick-evaluator failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "--json printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[test]
fn embedded_quick_evaluator_prints_a_decision_as_json() {
    let Some(data) = shared_data_or_skip("embedded_quick_evaluator_prints_a_decision_as_json")
    else {
        return;
    };
    let state = tempfile::tempdir().expect("temporary directory");
    let result = run_json(
        Command::new(workspace_binary("quick-evaluator"))
            .args(["--dataset", "digits", "--num-seeds", "3", "--epochs", "3"])
            .args(["--target-accuracy", "0.8", "--offline", "--json"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--state-dir")
            .arg(state.path()),
    );
    assert_eq!(result["decision"], "ACHIEVED", "{result:#}");
    assert_eq!(
        result["model"], "default-mlp",
        "digits is tabular: the default MLP"
    );
    assert_eq!(result["aggregate"]["n"], 3);
    let seeds = result["seeds"].as_array().expect("seeds");
    assert_eq!(seeds.len(), 3);
    assert!(seeds.iter().all(|seed| seed["state"] == "succeeded"));
    let mean = result["aggregate"]["mean"].as_f64().expect("mean");
    let low = result["aggregate"]["ci_low"].as_f64().expect("ci_low");
    assert!(low < mean && mean > 0.8);
    assert!(
        state.path().join("registry").is_dir(),
        "the state lives under --state-dir"
    );

    // A goal it cannot prove with one seed: UNDECIDED, the undefined numbers as null.
    let single = run_json(
        Command::new(workspace_binary("quick-evaluator"))
            .args(["--dataset", "digits", "--num-seeds", "1", "--epochs", "1"])
            .args(["--target-accuracy", "0.5", "--offline", "--json"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--state-dir")
            .arg(state.path()),
    );
    assert_eq!(single["decision"], "UNDECIDED");
    assert!(single["p_value"].is_null() && single["aggregate"]["ci_low"].is_null());
    assert!(
        single["explanation"]
            .as_str()
            .is_some_and(|e| e.contains("single seed"))
    );

    // A bad flag combination is refused before anything runs.
    let output = Command::new(workspace_binary("quick-evaluator"))
        .args(["--dataset", "digits", "--num-seeds", "2"])
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .expect("run quick-evaluator");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("give a target"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quick_evaluator_as_a_client_and_grpcurl_reflection() {
    let Some((stack, _root)) =
        stack_on_shared_data("quick_evaluator_as_a_client_and_grpcurl_reflection").await
    else {
        return;
    };
    let evaluator_url = stack.evaluator_url();
    let dataset_url = stack.dataset_url();
    let result = tokio::task::spawn_blocking(move || {
        run_json(
            Command::new(workspace_binary("quick-evaluator"))
                .args(["--dataset", "digits", "--num-seeds", "2", "--epochs", "2"])
                .args(["--metric", "val_loss", "--threshold", "5", "--json"])
                .args([
                    "--evaluator",
                    &evaluator_url,
                    "--dataset-service",
                    &dataset_url,
                ]),
        )
    })
    .await
    .expect("quick-evaluator task");
    assert_eq!(result["target"]["metric"], "val_loss");
    assert_eq!(
        result["decision"], "ACHIEVED",
        "a loss below 5 is easy: {result:#}"
    );

    match grpcurl() {
        None => skip_or_fail(
            "quick_evaluator_as_a_client_and_grpcurl_reflection",
            "grpcurl is not installed (set RA_GRPCURL)",
        ),
        Some(grpcurl) => {
            let address = stack.evaluator.to_string();
            let output = Command::new(&grpcurl)
                .args(["-plaintext", &address, "list"])
                .output()
                .expect("run grpcurl");
            let listed = String::from_utf8_lossy(&output.stdout);
            assert!(
                listed.contains("ra.evaluator.v1.EvaluatorService"),
                "{listed}"
            );
            let output = Command::new(&grpcurl)
                .args([
                    "-plaintext",
                    "-d",
                    r#"{"experiment_id": "exp_0192d3a4b5c67d8e9f0a1b2c3d4e5f60"}"#,
                ])
                .args([
                    &address,
                    "ra.evaluator.v1.EvaluatorService/AssessExperiment",
                ])
                .output()
                .expect("run grpcurl");
            let answer = String::from_utf8_lossy(&output.stderr);
            assert!(answer.contains("NotFound"), "{answer}");
        }
    }
    stack.stop().await.expect("stop the stack");
}
