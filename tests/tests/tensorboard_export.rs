//! TensorBoard export of a real session: `research-agent export ID --tensorboard DIR` on the
//! session's state folder writes event files that TensorBoard's own reader (through tbparse)
//! reads back, and every scalar (run, metric, epoch, value) and every candidate's
//! hyperparameters match the registry; the RPC refuses unknown and malformed ids.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;

use ra_integration_tests::records::{SessionRecords, watch_to_end};
use ra_integration_tests::{python_with, skip_or_fail, workspace_binary};
use ra_proto::planner::v1 as pb;
use ra_proto::planner::v1::planner_service_client::PlannerServiceClient;
use ra_proto::registry::v1 as reg;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use serde_json::Value;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exported_session_reads_back_in_tensorboard_as_the_registry_has_it() {
    let test = "an_exported_session_reads_back_in_tensorboard_as_the_registry_has_it";
    let Some(python) = python_with(&["tbparse", "tensorboard"]) else {
        skip_or_fail(
            test,
            "no Python with tbparse and tensorboard (pip install tbparse tensorboard; set RA_PYTHON)",
        );
        return;
    };
    let research_agent = workspace_binary("research-agent");
    let (stack, root) = ra_integration_tests::offline_stack(|options| {
        options.max_concurrent_jobs = 2;
        options.session_defaults = Some(ra_integration_tests::short_sessions());
    })
    .await;
    let mut planner = PlannerServiceClient::connect(stack.planner_url())
        .await
        .expect("planner");
    let mut registry = RegistryServiceClient::connect(stack.registry_url())
        .await
        .expect("registry");
    let started = planner
        .start_research(pb::StartResearchRequest {
            goal_text:
                "an MLP for synthetic-tabular with at least 99.9% accuracy within 3 candidates"
                    .into(),
            seed: 2,
            ..Default::default()
        })
        .await
        .expect("StartResearch")
        .into_inner();
    let id = started.research_id;
    watch_to_end(&mut planner, &id).await;
    let records = SessionRecords::read(&mut registry, &id).await;
    // Every point of every trial, as the registry has it.
    let mut points: HashMap<String, Vec<(String, u64, f64)>> = HashMap::new();
    for trial in &records.trials {
        let listed = registry
            .list_metrics(reg::ListMetricsRequest {
                trial_id: trial.id.clone(),
                name: String::new(),
                page_size: 1000,
                page_token: String::new(),
            })
            .await
            .expect("ListMetrics")
            .into_inner()
            .points;
        points.insert(
            trial.id.clone(),
            listed
                .into_iter()
                .map(|p| (p.name, p.step, p.value))
                .collect(),
        );
    }
    // Refusals of the RPC.
    for (experiment_id, code) in [
        (
            ra_client::ids::EntityKind::Experiment.new_id(),
            Code::NotFound,
        ),
        ("exp_nope".to_owned(), Code::InvalidArgument),
    ] {
        let error = registry
            .export_tensorboard(reg::ExportTensorboardRequest { experiment_id })
            .await
            .expect_err("refused");
        assert_eq!(error.code(), code, "{}", error.message());
    }
    stack.stop().await.expect("stack stops");

    // The README's command on the state folder.
    let out = root.path().join("tb");
    let exported = Command::new(&research_agent)
        .args(["export", &id, "--tensorboard"])
        .arg(&out)
        .arg("--offline")
        .arg("--root")
        .arg(root.path())
        .output()
        .expect("run research-agent export");
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let read = Command::new(&python)
        .arg(ra_integration_tests::repo_path(
            "tests/scripts/read_tensorboard.py",
        ))
        .arg(&out)
        .output()
        .expect("run the reader");
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let seen: Value = serde_json::from_slice(&read.stdout).expect("JSON");

    // Runs: "NN-<candidate>/seed-<seed>", one per trial.
    let position: HashMap<&str, usize> = records
        .candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i + 1))
        .collect();
    let run_of = |trial: &reg::Trial| -> String {
        let candidate = &records.candidates[position[trial.candidate_id.as_str()] - 1];
        let name = candidate
            .model
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        format!(
            "{:02}-{}/seed-{}",
            position[trial.candidate_id.as_str()],
            name,
            trial.seed
        )
    };
    let mut scalars: BTreeMap<(String, String, u64), f64> = BTreeMap::new();
    for row in seen["scalars"].as_array().expect("scalars") {
        let key = (
            row[0].as_str().expect("run").to_owned(),
            row[1].as_str().expect("tag").to_owned(),
            row[2].as_u64().expect("step"),
        );
        scalars.insert(key, row[3].as_f64().expect("value"));
    }
    let mut expected = 0;
    for trial in &records.trials {
        let run = run_of(trial);
        for (name, step, value) in &points[&trial.id] {
            expected += 1;
            let shown = scalars
                .get(&(run.clone(), name.clone(), *step))
                .unwrap_or_else(|| panic!("{run} {name} step {step} is missing from TensorBoard"));
            // Scalars are 32-bit floats in TensorBoard.
            assert!(
                (shown - value).abs() <= 1e-6 * value.abs().max(1.0),
                "{run} {name} step {step}: {shown} vs {value}"
            );
        }
    }
    assert!(expected > 0, "the session recorded metrics");
    assert_eq!(scalars.len(), expected, "nothing but the registry's points");

    // HParams: each trial's run carries its candidate's learning rate, batch size and group.
    let mut hparams: HashMap<(String, String), Value> = HashMap::new();
    for row in seen["hparams"].as_array().expect("hparams") {
        hparams.insert(
            (
                row[0].as_str().expect("run").to_owned(),
                row[1].as_str().expect("name").to_owned(),
            ),
            row[2].clone(),
        );
    }
    for trial in &records.trials {
        let run = run_of(trial);
        let candidate = &records.candidates[position[trial.candidate_id.as_str()] - 1];
        let train = candidate.train.expect("train");
        let get = |name: &str| {
            hparams
                .get(&(run.clone(), name.to_owned()))
                .unwrap_or_else(|| panic!("{run} has no hparam {name}: {hparams:?}"))
                .clone()
        };
        assert_eq!(
            get("learning_rate").as_f64(),
            Some(train.learning_rate),
            "{run}"
        );
        assert_eq!(
            get("batch_size").as_f64(),
            Some(f64::from(train.batch_size)),
            "{run}"
        );
        assert_eq!(get("seed").as_f64(), Some(trial.seed as f64), "{run}");
        assert_eq!(
            get("strategy").as_str(),
            Some(candidate.strategy.as_str()),
            "{run}"
        );
    }
}
