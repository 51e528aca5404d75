//! evaluator-svc end to end: the embedded stack (registry, dataset, sandbox with the process
//! backend, evaluator — each on its own 127.0.0.1 port, real gRPC between them) evaluating MLPs
//! on the real digits data from `../shared/data`.
//!
//! Covers the stream, the registry records, reuse of finished trials, Compare, AssessExperiment,
//! early stopping, the failure policy (time-outs, out of memory), a killed evaluator, bad
//! requests and an unreachable sandbox.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use ra_cli::Stack;
use ra_integration_tests::{free_port, stack_on_shared_data, workspace_binary};
use ra_proto::common::v1 as common;
use ra_proto::evaluator::v1 as pb;
use ra_proto::evaluator::v1::evaluator_service_client::EvaluatorServiceClient;
use ra_proto::registry::v1 as reg;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

struct Harness {
    stack: Stack,
    _root: tempfile::TempDir,
}

impl Harness {
    async fn start(test: &str) -> Option<Self> {
        let (stack, root) = stack_on_shared_data(test).await?;
        Some(Self { stack, _root: root })
    }

    async fn evaluator(&self) -> EvaluatorServiceClient<Channel> {
        EvaluatorServiceClient::connect(self.stack.evaluator_url())
            .await
            .expect("connect to the evaluator")
    }

    async fn registry(&self) -> RegistryServiceClient<Channel> {
        RegistryServiceClient::connect(self.stack.registry_url())
            .await
            .expect("connect to the registry")
    }
}

fn linear(out_features: u32) -> common::Layer {
    common::Layer {
        kind: Some(common::layer::Kind::Linear(common::LinearLayer {
            out_features,
            bias: true,
            in_features: 0,
        })),
    }
}

fn relu() -> common::Layer {
    common::Layer {
        kind: Some(common::layer::Kind::Activation(common::ActivationLayer {
            function: common::ActivationFunction::Relu as i32,
        })),
    }
}

/// An MLP for digits' 64 features.
fn digits_mlp(features: u32, hidden: u32) -> common::ModelSpec {
    common::ModelSpec {
        name: format!("mlp-{hidden}"),
        input: Some(common::InputSpec {
            kind: Some(common::input_spec::Kind::Tabular(common::TabularInput {
                features,
            })),
        }),
        num_classes: 10,
        layers: vec![linear(hidden), relu(), linear(10)],
    }
}

fn adam(learning_rate: f64, epochs: u32) -> common::TrainSpec {
    common::TrainSpec {
        optimizer: Some(common::Optimizer {
            kind: Some(common::optimizer::Kind::Adam(
                common::AdamOptimizer::default(),
            )),
        }),
        learning_rate,
        batch_size: 64,
        epochs,
        ..Default::default()
    }
}

fn digits() -> Option<pb::evaluate_request::Dataset> {
    Some(pb::evaluate_request::Dataset::DatasetRef(pb::DatasetRef {
        name: "digits".into(),
        options: Some(ra_proto::dataset::v1::PrepareOptions {
            offline: true,
            ..Default::default()
        }),
    }))
}

fn seeds(count: u32) -> Option<pb::evaluate_request::Seeds> {
    Some(pb::evaluate_request::Seeds::SeedCount(pb::SeedCount {
        count,
        base_seed: 0,
    }))
}

fn accuracy_target(threshold: f64) -> Option<common::Target> {
    Some(common::Target {
        metric: "val_accuracy".into(),
        threshold,
        direction: 0,
        open_ended: false,
    })
}

fn request(
    model: common::ModelSpec,
    train: common::TrainSpec,
    count: u32,
    threshold: f64,
) -> pb::EvaluateRequest {
    pb::EvaluateRequest {
        model: Some(model),
        train: Some(train),
        dataset: digits(),
        seeds: seeds(count),
        target: accuracy_target(threshold),
        ..Default::default()
    }
}

/// Every event of one Evaluate call, and how the stream ended.
struct Run {
    events: Vec<pb::evaluate_event::Event>,
    outcome: Result<pb::EvaluationResult, tonic::Status>,
}

impl Run {
    fn started(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, pb::evaluate_event::Event::SeedStarted(_)))
            .count()
    }

    fn epochs(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, pb::evaluate_event::Event::SeedEpoch(_)))
            .count()
    }

    fn result(&self) -> &pb::EvaluationResult {
        match &self.outcome {
            Ok(result) => result,
            Err(status) => panic!("the evaluation failed: {status:?}"),
        }
    }
}

async fn evaluate(
    client: &mut EvaluatorServiceClient<Channel>,
    request: pb::EvaluateRequest,
) -> Run {
    let mut events = Vec::new();
    let mut stream = match client.evaluate(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            return Run {
                events,
                outcome: Err(status),
            };
        }
    };
    loop {
        match stream.message().await {
            Ok(Some(pb::EvaluateEvent {
                event: Some(pb::evaluate_event::Event::Result(result)),
            })) => {
                return Run {
                    events,
                    outcome: Ok(result),
                };
            }
            Ok(Some(pb::EvaluateEvent { event: Some(event) })) => events.push(event),
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream ended without a result or an error"),
            Err(status) => {
                return Run {
                    events,
                    outcome: Err(status),
                };
            }
        }
    }
}

async fn trials_of(
    registry: &mut RegistryServiceClient<Channel>,
    candidate_id: &str,
) -> Vec<reg::Trial> {
    registry
        .list_trials(reg::ListTrialsRequest {
            candidate_id: candidate_id.into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list trials")
        .into_inner()
        .trials
}

async fn val_accuracy_points(
    registry: &mut RegistryServiceClient<Channel>,
    trial_id: &str,
) -> Vec<common::MetricPoint> {
    registry
        .list_metrics(reg::ListMetricsRequest {
            trial_id: trial_id.into(),
            name: "val_accuracy".into(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .expect("list metrics")
        .into_inner()
        .points
}

fn value(seed: &pb::SeedResult) -> f64 {
    seed.final_metrics["val_accuracy"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn digits_evaluations_decide_compare_reuse_and_prune() {
    let Some(harness) = Harness::start("digits_evaluations_decide_compare_reuse_and_prune").await
    else {
        return;
    };
    let mut evaluator = harness.evaluator().await;
    let mut registry = harness.registry().await;

    // A good MLP: three seeds, goal val_accuracy > 0.8.
    let good = evaluate(
        &mut evaluator,
        request(digits_mlp(64, 64), adam(0.01, 3), 3, 0.8),
    )
    .await;
    let result = good.result().clone();
    assert_eq!(good.started(), 3);
    assert!(
        good.epochs() >= 9,
        "per-seed epoch events: {}",
        good.epochs()
    );
    assert_eq!(result.seeds.len(), 3);
    assert!(
        result
            .seeds
            .iter()
            .all(|s| s.state == common::TrialState::Succeeded as i32)
    );
    assert_eq!(
        result.decision,
        common::GoalDecision::Achieved as i32,
        "{}",
        result.explanation
    );
    assert!(result.p_value < 0.05 && result.t_statistic > 0.0);
    let aggregate = result.aggregate.clone().expect("aggregate");
    assert_eq!(aggregate.n, 3);
    assert!(aggregate.ci_low < aggregate.mean && aggregate.mean < aggregate.ci_high);
    let mean = result.seeds.iter().map(value).sum::<f64>() / 3.0;
    assert!((aggregate.mean - mean).abs() < 1e-12);

    // Everything is in the registry: trials, their metric series, the evaluation.
    let trials = trials_of(&mut registry, &result.candidate_id).await;
    assert_eq!(trials.len(), 3);
    // The evaluator's default device, as each seed and trial records it.
    assert!(
        result.seeds.iter().all(|s| s.device == "flex"),
        "{:?}",
        result.seeds
    );
    for trial in &trials {
        assert_eq!(trial.state, common::TrialState::Succeeded as i32);
        assert_eq!(trial.device, "flex");
        let points = val_accuracy_points(&mut registry, &trial.id).await;
        assert_eq!(points.len(), 3, "one val_accuracy point per epoch");
    }
    let read = evaluator
        .get_evaluation(pb::GetEvaluationRequest {
            evaluation_id: result.evaluation_id.clone(),
        })
        .await
        .expect("GetEvaluation")
        .into_inner();
    assert_eq!(read.decision, result.decision);
    assert!((read.p_value - result.p_value).abs() < 1e-12);
    assert!((read.t_statistic - result.t_statistic).abs() < 1e-9);
    assert_eq!(read.seeds.len(), 3);

    // Evaluating the recorded candidate again reuses its finished seeds: no new trial.
    let again = evaluate(
        &mut evaluator,
        pb::EvaluateRequest {
            candidate_id: result.candidate_id.clone(),
            dataset: digits(),
            seeds: seeds(3),
            target: accuracy_target(0.8),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(again.started(), 0, "finished seeds are not trained again");
    assert!(
        again
            .result()
            .seeds
            .iter()
            .all(|s| s.message.starts_with("reused"))
    );
    assert_eq!(
        trials_of(&mut registry, &result.candidate_id).await.len(),
        3
    );

    // A weak candidate in the same experiment: NOT_ACHIEVED, and Compare says the first is better.
    let mut weak_request = request(digits_mlp(64, 8), adam(0.0005, 1), 3, 0.8);
    weak_request.experiment_id = result.experiment_id.clone();
    let weak = evaluate(&mut evaluator, weak_request).await;
    let weak = weak.result().clone();
    assert_eq!(weak.experiment_id, result.experiment_id);
    assert_eq!(
        weak.decision,
        common::GoalDecision::NotAchieved as i32,
        "{}",
        weak.explanation
    );
    let comparison = evaluator
        .compare(pb::CompareRequest {
            evaluation_a: result.evaluation_id.clone(),
            evaluation_b: weak.evaluation_id.clone(),
            confidence: 0.95,
        })
        .await
        .expect("Compare")
        .into_inner();
    assert_eq!(comparison.better, "a", "{}", comparison.explanation);
    assert!(comparison.mean_difference > 0.0 && comparison.hedges_g > 0.0);
    assert!(comparison.ci_low > 0.0 && comparison.p_value < 0.05);

    // Early stopping: a hopeless candidate is pruned at epoch 1 against the good one's curves.
    let mut hopeless = request(digits_mlp(64, 4), adam(0.00001, 4), 2, 0.8);
    hopeless.experiment_id = result.experiment_id.clone();
    hopeless.early_stopping = Some(pb::EarlyStopping {
        enabled: true,
        percentile: 50.0,
        min_epochs: 1,
        min_trials: 3,
    });
    let pruned = evaluate(&mut evaluator, hopeless).await;
    let pruned = pruned.result().clone();
    assert_eq!(pruned.decision, common::GoalDecision::NotAchieved as i32);
    assert!(
        pruned.explanation.contains("Stopped early"),
        "{}",
        pruned.explanation
    );
    assert!(
        pruned
            .seeds
            .iter()
            .all(|s| s.state == common::TrialState::Pruned as i32),
        "{:?}",
        pruned.seeds
    );
    assert!(
        pruned
            .seeds
            .iter()
            .all(|s| s.message.contains("median pruning"))
    );
    for trial in trials_of(&mut registry, &pruned.candidate_id).await {
        assert_eq!(trial.state, common::TrialState::Pruned as i32);
        assert!(
            trial.message.contains("pruned at epoch 1"),
            "{}",
            trial.message
        );
    }

    // Across the experiment's three candidates, with Holm–Bonferroni.
    let assessment = evaluator
        .assess_experiment(pb::AssessExperimentRequest {
            experiment_id: result.experiment_id.clone(),
            confidence: 0.95,
        })
        .await
        .expect("AssessExperiment")
        .into_inner();
    assert_eq!(assessment.candidates.len(), 3);
    assert!(assessment.any_achieved, "{}", assessment.explanation);
    assert_eq!(assessment.best_candidate_id, result.candidate_id);
    let good_row = assessment
        .candidates
        .iter()
        .find(|c| c.candidate_id == result.candidate_id)
        .expect("the good candidate");
    assert!(good_row.adjusted_p_value >= good_row.p_value);

    harness.stack.stop().await.expect("stop the stack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_seeds_follow_the_failure_policy() {
    let Some(harness) = Harness::start("failing_seeds_follow_the_failure_policy").await else {
        return;
    };
    let mut evaluator = harness.evaluator().await;
    let mut registry = harness.registry().await;

    // Every seed times out: the evaluation fails clearly and the reasons are on record.
    let mut slow = request(digits_mlp(64, 512), adam(0.001, 10_000), 2, 0.8);
    slow.limits = Some(common::ResourceLimits {
        timeout_seconds: 2,
        ..Default::default()
    });
    let run = evaluate(&mut evaluator, slow).await;
    let status = run.outcome.expect_err("the evaluation fails");
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(
        status.message().contains("timed out"),
        "{}",
        status.message()
    );
    assert!(status.message().contains("needs at least 2 finished seeds"));
    let finished: Vec<&pb::SeedResult> = run
        .events
        .iter()
        .filter_map(|e| match e {
            pb::evaluate_event::Event::SeedFinished(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(finished.len(), 2);
    let trial = registry
        .get_trial(reg::GetTrialRequest {
            id: finished[0].trial_id.clone(),
        })
        .await
        .expect("trial")
        .into_inner();
    assert_eq!(trial.state, common::TrialState::Failed as i32);
    assert_eq!(trial.exit_reason, common::ExitReason::Timeout as i32);
    let evaluations = registry
        .list_evaluations(reg::ListEvaluationsRequest {
            experiment_id: trial.experiment_id.clone(),
            ..Default::default()
        })
        .await
        .expect("list evaluations")
        .into_inner()
        .evaluations;
    assert_eq!(evaluations.len(), 1);
    assert!(evaluations[0].explanation.starts_with("evaluation failed"));

    // Out of memory under FAIL_FAST: the model's own training memory (about 150 KB) passes the
    // static check against 1 MiB, but the trainer process needs a few MiB to run at all.
    let mut hungry = request(digits_mlp(64, 64), adam(0.01, 3), 2, 0.8);
    hungry.limits = Some(common::ResourceLimits {
        memory_bytes: 1 << 20,
        ..Default::default()
    });
    hungry.failure_policy = pb::FailurePolicy::FailFast as i32;
    let run = evaluate(&mut evaluator, hungry).await;
    let status = run.outcome.expect_err("the evaluation fails");
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(
        status.message().contains("ran out of memory"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("FAIL_FAST"),
        "{}",
        status.message()
    );

    harness.stack.stop().await.expect("stop the stack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_are_refused_with_reasons() {
    let Some(harness) = Harness::start("bad_requests_are_refused_with_reasons").await else {
        return;
    };
    let mut evaluator = harness.evaluator().await;
    let good = || request(digits_mlp(64, 16), adam(0.01, 1), 2, 0.8);
    let cases: Vec<(pb::EvaluateRequest, Code, &str)> = vec![
        (
            pb::EvaluateRequest {
                seeds: None,
                ..good()
            },
            Code::InvalidArgument,
            "no seeds",
        ),
        (
            pb::EvaluateRequest {
                seeds: seeds(0),
                ..good()
            },
            Code::InvalidArgument,
            "no seeds",
        ),
        (
            pb::EvaluateRequest {
                confidence: 1.5,
                ..good()
            },
            Code::InvalidArgument,
            "confidence = 1.5",
        ),
        (
            pb::EvaluateRequest {
                target: Some(common::Target {
                    metric: "top5".into(),
                    threshold: 0.5,
                    direction: 0,
                    open_ended: false,
                }),
                ..good()
            },
            Code::InvalidArgument,
            "not a metric",
        ),
        (
            pb::EvaluateRequest {
                target: accuracy_target(f64::NAN),
                ..good()
            },
            Code::InvalidArgument,
            "threshold is NaN",
        ),
        (
            pb::EvaluateRequest {
                model: None,
                ..good()
            },
            Code::InvalidArgument,
            "model and train are required",
        ),
        (
            pb::EvaluateRequest {
                model: Some(digits_mlp(10, 16)),
                ..good()
            },
            Code::InvalidArgument,
            "sandbox's checks",
        ),
        (
            pb::EvaluateRequest {
                candidate_id: "cand_0192d3a4b5c67d8e9f0a1b2c3d4e5f60".into(),
                ..good()
            },
            Code::NotFound,
            "",
        ),
        (
            pb::EvaluateRequest {
                device: "tpu".into(),
                ..good()
            },
            Code::InvalidArgument,
            "device = \"tpu\" is not a training device",
        ),
        // A device the sandbox lacks: refused before any record is created.
        (
            pb::EvaluateRequest {
                device: "cuda".into(),
                ..good()
            },
            Code::FailedPrecondition,
            "device cuda is unavailable on the process backend",
        ),
    ];
    for (request, code, needle) in cases {
        let run = evaluate(&mut evaluator, request).await;
        let status = run.outcome.expect_err("refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(
            status.message().contains(needle),
            "{needle:?} not in {:?}",
            status.message()
        );
    }
    // Nothing half-written: the refused requests left no experiment behind.
    let experiments = harness
        .registry()
        .await
        .list_experiments(reg::ListExperimentsRequest::default())
        .await
        .expect("list experiments")
        .into_inner()
        .experiments;
    assert!(experiments.is_empty(), "{experiments:?}");
    let status = evaluator
        .compare(pb::CompareRequest {
            evaluation_a: "eval_0192d3a4b5c67d8e9f0a1b2c3d4e5f60".into(),
            evaluation_b: "eval_0192d3a4b5c67d8e9f0a1b2c3d4e5f61".into(),
            confidence: 0.0,
        })
        .await
        .expect_err("unknown evaluations");
    assert_eq!(status.code(), Code::NotFound);
    let status = evaluator
        .get_evaluation(pb::GetEvaluationRequest::default())
        .await
        .expect_err("empty id");
    assert_eq!(status.code(), Code::InvalidArgument);
    harness.stack.stop().await.expect("stop the stack");
}

/// One job at a time, a job per seed: seeds finish one by one.
const ONE_AT_A_TIME: &str = "max_parallel_seeds = 1\nseeds_per_job = 1";

/// An evaluator-svc binary of this build, started with its own config file.
struct EvaluatorProcess {
    child: std::process::Child,
    url: String,
}

impl EvaluatorProcess {
    async fn start(root: &Path, stack: &Stack, sandbox_url: &str, attempts: u32) -> Self {
        Self::start_with(root, stack, sandbox_url, attempts, ONE_AT_A_TIME).await
    }

    /// With `settings` (lines of `[evaluator]`).
    async fn start_with(
        root: &Path,
        stack: &Stack,
        sandbox_url: &str,
        attempts: u32,
        settings: &str,
    ) -> Self {
        let started = Self::spawn_with(root, stack, sandbox_url, attempts, settings);
        started.wait_for(ServingStatus::Serving).await;
        started
    }

    fn spawn(root: &Path, stack: &Stack, sandbox_url: &str, attempts: u32) -> Self {
        Self::spawn_with(root, stack, sandbox_url, attempts, ONE_AT_A_TIME)
    }

    fn spawn_with(
        root: &Path,
        stack: &Stack,
        sandbox_url: &str,
        attempts: u32,
        settings: &str,
    ) -> Self {
        let port = free_port();
        let config = root.join(format!("evaluator-{port}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nshutdown_grace_seconds = 1\nlog_filter = \"warn\"\n\n[evaluator]\nregistry_url = \"{}\"\nsandbox_url = \"{sandbox_url}\"\ndataset_url = \"{}\"\n{settings}\n\n[evaluator.retry]\nattempts = {attempts}\ninitial_backoff_ms = 20\nmax_backoff_ms = 100\n",
                stack.registry_url(),
                stack.dataset_url()
            ),
        )
        .expect("write the config");
        let child = std::process::Command::new(workspace_binary("evaluator-svc"))
            .args([
                "--config",
                &config.display().to_string(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .spawn()
            .expect("start evaluator-svc");
        let url = format!("http://127.0.0.1:{port}");
        Self { child, url }
    }

    /// Waits until the evaluator's health says `wanted` (it is SERVING only while its peers are).
    async fn wait_for(&self, wanted: ServingStatus) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while ra_integration_tests::health_status(&self.url, ra_proto::service_names::EVALUATOR)
            .await
            != Some(wanted)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "evaluator-svc never became {wanted:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for EvaluatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_evaluator_loses_no_finished_trial() {
    let Some(harness) = Harness::start("a_killed_evaluator_loses_no_finished_trial").await else {
        return;
    };
    let root = tempfile::tempdir().expect("temporary directory");
    let mut doomed =
        EvaluatorProcess::start(root.path(), &harness.stack, &harness.stack.sandbox_url(), 3).await;
    let mut client = EvaluatorServiceClient::connect(doomed.url.clone())
        .await
        .expect("connect");
    let mut stream = client
        .evaluate(request(digits_mlp(64, 32), adam(0.01, 4), 4, 0.8))
        .await
        .expect("Evaluate")
        .into_inner();
    // Seeds run one at a time here: kill the evaluator once two have finished.
    let mut finished: HashMap<u64, String> = HashMap::new();
    let mut candidate_trials = Vec::new();
    while finished.len() < 2 {
        match stream
            .message()
            .await
            .expect("stream")
            .expect("an event")
            .event
        {
            Some(pb::evaluate_event::Event::SeedFinished(seed)) => {
                assert_eq!(seed.state, common::TrialState::Succeeded as i32, "{seed:?}");
                finished.insert(seed.seed, seed.trial_id);
            }
            Some(pb::evaluate_event::Event::SeedStarted(seed)) => {
                candidate_trials.push(seed.trial_id)
            }
            _ => {}
        }
    }
    doomed.child.kill().expect("kill -9 the evaluator");
    let _ = doomed.child.wait();
    drop(stream);

    let mut registry = harness.registry().await;
    let first_trial = registry
        .get_trial(reg::GetTrialRequest {
            id: candidate_trials[0].clone(),
        })
        .await
        .expect("trial")
        .into_inner();
    let candidate_id = first_trial.candidate_id.clone();
    // A fresh evaluator picks the candidate up: finished seeds are reused, the rest run.
    let mut evaluator = harness.evaluator().await;
    let resumed = evaluate(
        &mut evaluator,
        pb::EvaluateRequest {
            candidate_id: candidate_id.clone(),
            dataset: digits(),
            seeds: seeds(4),
            target: accuracy_target(0.8),
            ..Default::default()
        },
    )
    .await;
    let result = resumed.result();
    assert_eq!(result.seeds.len(), 4);
    assert_eq!(
        resumed.started(),
        2,
        "only the two unfinished seeds are trained"
    );
    for (seed, trial_id) in &finished {
        let reused = result
            .seeds
            .iter()
            .find(|s| s.seed == *seed)
            .expect("the seed");
        assert_eq!(
            &reused.trial_id, trial_id,
            "seed {seed} reuses its finished trial"
        );
    }
    let trials = trials_of(&mut registry, &candidate_id).await;
    let mut succeeded_per_seed: HashMap<u64, usize> = HashMap::new();
    for trial in &trials {
        assert!(
            trial.state != common::TrialState::Running as i32
                && trial.state != common::TrialState::Pending as i32,
            "no trial is left running: {trial:?}"
        );
        if trial.state == common::TrialState::Succeeded as i32 {
            *succeeded_per_seed.entry(trial.seed).or_default() += 1;
        }
    }
    assert_eq!(succeeded_per_seed.len(), 4, "{trials:?}");
    assert!(
        succeeded_per_seed.values().all(|count| *count == 1),
        "no seed trained twice to the end"
    );
    harness.stack.stop().await.expect("stop the stack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_sandbox_is_unavailable_after_retries() {
    let Some(harness) = Harness::start("an_unreachable_sandbox_is_unavailable_after_retries").await
    else {
        return;
    };
    let root = tempfile::tempdir().expect("temporary directory");
    let closed = free_port();
    let lonely = EvaluatorProcess::spawn(
        root.path(),
        &harness.stack,
        &format!("http://127.0.0.1:{closed}"),
        3,
    );
    // Health tells the truth: without its sandbox the evaluator is NOT_SERVING, yet it answers.
    lonely.wait_for(ServingStatus::NotServing).await;
    let mut client = EvaluatorServiceClient::connect(lonely.url.clone())
        .await
        .expect("connect");
    let run = evaluate(
        &mut client,
        request(digits_mlp(64, 16), adam(0.01, 1), 2, 0.8),
    )
    .await;
    let status = run.outcome.expect_err("no sandbox");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("sandbox-svc"),
        "{}",
        status.message()
    );
    assert!(status.message().contains("3 tries"), "{}", status.message());
    harness.stack.stop().await.expect("stop the stack");
}

/// An MLP with dropout (which draws random numbers while training) for digits.
fn digits_mlp_with_dropout() -> common::ModelSpec {
    let mut model = digits_mlp(64, 48);
    model.layers.insert(
        2,
        common::Layer {
            kind: Some(common::layer::Kind::Dropout(common::DropoutLayer {
                probability: 0.2,
            })),
        },
    );
    model
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seeds_trained_in_one_job_match_the_seeds_trained_alone() {
    let Some(harness) =
        Harness::start("seeds_trained_in_one_job_match_the_seeds_trained_alone").await
    else {
        return;
    };
    let root = tempfile::tempdir().expect("temporary directory");
    let together = EvaluatorProcess::start_with(
        root.path(),
        &harness.stack,
        &harness.stack.sandbox_url(),
        3,
        "max_parallel_seeds = 1\nseeds_per_job = 3",
    )
    .await;
    let apart = EvaluatorProcess::start_with(
        root.path(),
        &harness.stack,
        &harness.stack.sandbox_url(),
        3,
        "max_parallel_seeds = 3\nseeds_per_job = 1",
    )
    .await;
    let mut grouped = EvaluatorServiceClient::connect(together.url.clone())
        .await
        .expect("connect");
    let mut alone = EvaluatorServiceClient::connect(apart.url.clone())
        .await
        .expect("connect");
    let mut registry = harness.registry().await;

    let ask = || request(digits_mlp_with_dropout(), adam(0.01, 3), 3, 0.8);
    let one_job = evaluate(&mut grouped, ask()).await;
    let own_jobs = evaluate(&mut alone, ask()).await;
    assert_eq!((one_job.started(), one_job.epochs()), (3, 9));
    let by_seed = |run: &Run| -> Vec<(u64, String, String)> {
        let mut seeds: Vec<(u64, String, String)> = run
            .result()
            .seeds
            .iter()
            .map(|s| {
                assert_eq!(s.state, common::TrialState::Succeeded as i32, "{s:?}");
                (
                    s.seed,
                    s.final_metrics["val_accuracy"].to_string(),
                    s.final_metrics["val_loss"].to_string(),
                )
            })
            .collect();
        seeds.sort_by_key(|s| s.0);
        seeds
    };
    assert_eq!(by_seed(&one_job).len(), 3);
    assert_eq!(
        by_seed(&one_job),
        by_seed(&own_jobs),
        "the same seed gives the same metrics in one job of three seeds and in a job of its own"
    );

    // Three trials under one job id, each with its own curve; three job ids when alone.
    let job_ids = |trials: &[reg::Trial]| {
        let mut ids: Vec<String> = trials.iter().map(|t| t.job_id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids.len()
    };
    let trials = trials_of(&mut registry, &one_job.result().candidate_id).await;
    assert_eq!((trials.len(), job_ids(&trials)), (3, 1));
    for trial in &trials {
        assert_eq!(trial.state, common::TrialState::Succeeded as i32);
        let points = val_accuracy_points(&mut registry, &trial.id).await;
        assert_eq!(
            points.len(),
            3,
            "one val_accuracy point per epoch of each seed"
        );
    }
    let trials = trials_of(&mut registry, &own_jobs.result().candidate_id).await;
    assert_eq!((trials.len(), job_ids(&trials)), (3, 3));
    harness.stack.stop().await.expect("stop the stack");
}
