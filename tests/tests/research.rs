//! Research sessions across the five services on real gRPC (planner → evaluator → sandbox →
//! ra-trainer, datasets from dataset-svc, everything recorded in registry-svc): a session that
//! reaches its goal on real data; the `llm` strategy against a scripted OpenAI-compatible
//! server (feedback, retries, fallback); bad goals refused with nothing written.

use std::time::Duration;

use ra_integration_tests::records::watch_to_end;
use ra_integration_tests::scripted_llm::{Reply, ScriptedLlm};
use ra_integration_tests::{shared_data_or_skip, skip_or_fail};
use ra_proto::common::v1 as common;
use ra_proto::dataset::v1 as ds;
use ra_proto::planner::v1 as pb;
use ra_proto::planner::v1::planner_service_client::PlannerServiceClient;
use ra_proto::registry::v1 as reg;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use tonic::Code;
use tonic::transport::Channel;

/// Small sessions: few epochs, so that a test session takes seconds per candidate.
fn quick_defaults() -> planner_svc::config::SessionDefaults {
    planner_svc::config::SessionDefaults {
        max_epochs: 4,
        num_seeds: 3,
        max_seeds: 3,
        ..planner_svc::config::SessionDefaults::default()
    }
}

async fn stack(
    test: &str,
    llm: Option<planner_svc::config::LlmConfig>,
) -> Option<(ra_cli::Stack, tempfile::TempDir)> {
    let data = shared_data_or_skip(test)?;
    let root = tempfile::tempdir().expect("temporary directory");
    let stack = ra_cli::Stack::start(&ra_cli::StackOptions {
        root: root.path().to_path_buf(),
        data_dir: Some(data),
        offline: true,
        max_concurrent_jobs: 2,
        llm,
        session_defaults: Some(quick_defaults()),
        helper_program: Some(ra_integration_tests::workspace_binary("research-agent")),
        ..ra_cli::StackOptions::default()
    })
    .await
    .expect("start the embedded stack");
    Some((stack, root))
}

async fn planner(stack: &ra_cli::Stack) -> PlannerServiceClient<Channel> {
    PlannerServiceClient::connect(stack.planner_url())
        .await
        .expect("connect to the planner")
}

async fn registry(stack: &ra_cli::Stack) -> RegistryServiceClient<Channel> {
    RegistryServiceClient::connect(stack.registry_url())
        .await
        .expect("connect to the registry")
}

/// Every event of a session until its end, and the final status.
async fn decisions(registry: &mut RegistryServiceClient<Channel>, id: &str) -> Vec<reg::Decision> {
    registry
        .list_decisions(reg::ListDecisionsRequest {
            experiment_id: id.to_owned(),
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .expect("ListDecisions")
        .into_inner()
        .decisions
}

async fn candidates(
    registry: &mut RegistryServiceClient<Channel>,
    id: &str,
) -> Vec<reg::Candidate> {
    registry
        .list_candidates(reg::ListCandidatesRequest {
            experiment_id: id.to_owned(),
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .expect("ListCandidates")
        .into_inner()
        .candidates
}

async fn trials(registry: &mut RegistryServiceClient<Channel>, id: &str) -> Vec<reg::Trial> {
    registry
        .list_trials(reg::ListTrialsRequest {
            experiment_id: id.to_owned(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("ListTrials")
        .into_inner()
        .trials
}

fn start_request(goal: &str, strategy: pb::Strategy) -> pb::StartResearchRequest {
    pb::StartResearchRequest {
        goal_text: goal.into(),
        strategy: strategy as i32,
        seed: 7,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_reaches_its_goal_on_digits_across_the_five_services() {
    let test = "a_session_reaches_its_goal_on_digits_across_the_five_services";
    let Some((stack, _root)) = stack(test, None).await else {
        return;
    };
    let mut planner = planner(&stack).await;
    let mut registry = registry(&stack).await;
    let started = planner
        .start_research(start_request(
            "an MLP on digits with at least 90% accuracy within 6 candidates",
            pb::Strategy::Evolution,
        ))
        .await
        .expect("StartResearch")
        .into_inner();
    assert_eq!(started.state(), pb::ResearchState::Running);
    let goal = started.goal.clone().expect("goal");
    assert_eq!(goal.dataset, "digits");
    assert_eq!(goal.model_family, "mlp");
    assert_eq!(goal.budget.expect("budget").max_candidates, 6);
    let target = goal.target.expect("target");
    assert_eq!(
        (target.metric.as_str(), target.threshold),
        ("val_accuracy", 0.9)
    );
    let id = started.research_id.clone();

    let (events, status) = watch_to_end(&mut planner, &id).await;
    assert_eq!(
        status.state(),
        pb::ResearchState::Succeeded,
        "{}",
        status.message
    );
    let best = status.leaderboard.first().expect("a leaderboard");
    assert_eq!(best.decision(), common::GoalDecision::Achieved);
    assert!(best.adjusted_p_value < 0.05, "{best:?}");
    let aggregate = best.aggregate.clone().expect("aggregate");
    assert!(aggregate.mean > 0.9 && aggregate.n >= 3, "{aggregate:?}");

    // Events: the goal first, every candidate proposed with a rationale and evaluated.
    assert!(matches!(
        events.first().and_then(|e| e.event.as_ref()),
        Some(pb::research_event::Event::GoalParsed(_))
    ));
    let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
    assert!(
        positions.windows(2).all(|w| w[1] == w[0] + 1),
        "positions {positions:?}"
    );
    let proposed: Vec<&pb::CandidateProposed> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(pb::research_event::Event::CandidateProposed(p)) => Some(p),
            _ => None,
        })
        .collect();
    assert!(!proposed.is_empty() && proposed.len() <= 6);
    assert!(proposed.iter().all(|p| !p.rationale.is_empty()));

    // The registry holds the whole session.
    let experiment = registry
        .get_experiment(reg::GetExperimentRequest { id: id.clone() })
        .await
        .expect("GetExperiment")
        .into_inner();
    assert_eq!(experiment.status(), reg::ExperimentStatus::Succeeded);
    let recorded = candidates(&mut registry, &id).await;
    assert_eq!(recorded.len(), proposed.len());
    assert!(
        recorded
            .iter()
            .all(|c| c.strategy == "evolution" || c.strategy == "random")
    );
    let log = decisions(&mut registry, &id).await;
    let proposals = log.iter().filter(|d| d.action == "propose").count();
    assert_eq!(proposals, recorded.len());
    assert!(log.iter().any(|d| d.action == "stop_success"), "{log:?}");
    let all_trials = trials(&mut registry, &id).await;
    assert!(
        all_trials
            .iter()
            .all(|t| t.state() == common::TrialState::Succeeded),
        "{all_trials:?}"
    );
    assert_eq!(status.seeds_used as usize, all_trials.len());

    // The report: markdown and two SVG plots on disk and in the registry.
    let folder = std::path::PathBuf::from(&status.report_path);
    let report = std::fs::read_to_string(folder.join("report.md")).expect("report.md");
    assert!(report.contains("## Leaderboard") && report.contains("## Decision log"));
    assert!(
        report.contains(&best.name),
        "the report names the best candidate"
    );
    for plot in ["candidates.svg", "learning_curves.svg"] {
        let svg = std::fs::read_to_string(folder.join(plot)).expect("plot");
        assert!(
            svg.contains("<svg") && svg.contains("val_accuracy"),
            "{plot}"
        );
    }
    let artifacts = registry
        .list_artifacts(reg::ListArtifactsRequest {
            experiment_id: id.clone(),
            ..Default::default()
        })
        .await
        .expect("ListArtifacts")
        .into_inner()
        .artifacts;
    let mut names: Vec<&str> = artifacts.iter().map(|a| a.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["candidates.svg", "learning_curves.svg", "report.md"]
    );

    // GetResearch agrees; a finished session cannot be resumed or stopped.
    let got = planner
        .get_research(pb::GetResearchRequest {
            research_id: id.clone(),
        })
        .await
        .expect("GetResearch")
        .into_inner();
    assert_eq!(got.state(), pb::ResearchState::Succeeded);
    assert_eq!(got.leaderboard.len(), status.leaderboard.len());
    let refused = planner
        .resume_research(pb::ResumeResearchRequest {
            research_id: id.clone(),
        })
        .await
        .expect_err("a succeeded session cannot be resumed");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    stack.stop().await.expect("stop the stack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_goals_and_requests_are_refused_with_nothing_written() {
    let test = "bad_goals_and_requests_are_refused_with_nothing_written";
    let Some((stack, _root)) = stack(test, None).await else {
        return;
    };
    let mut planner = planner(&stack).await;
    let mut registry = registry(&stack).await;

    let parsed = planner
        .parse_goal(pb::ParseGoalRequest {
            text: "Design a CNN for CIFAR-10 with >75% accuracy".into(),
        })
        .await
        .expect("ParseGoal")
        .into_inner();
    assert_eq!(parsed.dataset, "cifar10");
    assert_eq!(parsed.model_family, "cnn");
    assert_eq!(parsed.target.expect("target").threshold, 0.75);
    assert_eq!(parsed.confidence, 0.95, "defaults are filled in");
    assert!(parsed.num_seeds >= 2);

    for (text, code, words) in [
        ("", Code::InvalidArgument, "empty"),
        (
            "a CNN for imagenet-22k with 90% accuracy",
            Code::InvalidArgument,
            "known datasets",
        ),
        (
            "an MLP on digits with at least 90% and at least 95% accuracy",
            Code::InvalidArgument,
            "two thresholds",
        ),
    ] {
        let error = planner
            .parse_goal(pb::ParseGoalRequest { text: text.into() })
            .await
            .expect_err(text);
        assert_eq!(error.code(), code, "{text}: {error:?}");
        assert!(
            error.message().contains(words),
            "{text}: {}",
            error.message()
        );
        let error = planner
            .start_research(start_request(text, pb::Strategy::Random))
            .await
            .expect_err(text);
        assert_eq!(error.code(), code, "{text}: {error:?}");
    }

    let digits = "an MLP on digits with at least 90% accuracy";
    let with = |change: &dyn Fn(&mut pb::StartResearchRequest)| {
        let mut request = start_request(digits, pb::Strategy::Random);
        change(&mut request);
        request
    };
    let overrides = |change: &dyn Fn(&mut common::ResearchGoal)| {
        let mut goal = common::ResearchGoal::default();
        change(&mut goal);
        Some(goal)
    };
    let cases: Vec<(&str, pb::StartResearchRequest, &str)> = vec![
        (
            "one seed",
            with(&|r| r.overrides = overrides(&|g| g.num_seeds = 1)),
            "at least 2 seeds",
        ),
        (
            "confidence 1.5",
            with(&|r| r.overrides = overrides(&|g| g.confidence = 1.5)),
            "confidence",
        ),
        (
            "unknown metric",
            with(&|r| {
                r.overrides = overrides(&|g| {
                    g.target = Some(common::Target {
                        metric: "val_bogus".into(),
                        ..Default::default()
                    })
                })
            }),
            "val_bogus",
        ),
        (
            "NaN threshold",
            with(&|r| {
                r.overrides = overrides(&|g| {
                    g.target = Some(common::Target {
                        threshold: f64::NAN,
                        ..Default::default()
                    })
                })
            }),
            "finite",
        ),
        ("unknown strategy", with(&|r| r.strategy = 99), "strategy"),
        (
            "LLM URL without a scheme",
            with(&|r| {
                r.strategy = pb::Strategy::Llm as i32;
                r.llm = Some(pb::LlmSettings {
                    base_url: "localhost:8000".into(),
                    ..Default::default()
                });
            }),
            "http://",
        ),
        (
            "huge goal text",
            with(&|r| r.goal_text = "digits ".repeat(1000)),
            "4096",
        ),
    ];
    for (name, request, words) in cases {
        let error = planner.start_research(request).await.expect_err(name);
        assert_eq!(error.code(), Code::InvalidArgument, "{name}: {error:?}");
        assert!(
            error.message().contains(words),
            "{name}: {}",
            error.message()
        );
    }
    let error = planner
        .start_research(with(&|r| {
            r.overrides = overrides(&|g| g.dataset = "nope".into())
        }))
        .await
        .expect_err("unknown dataset override");
    assert_eq!(error.code(), Code::NotFound, "{error:?}");

    for (id, code) in [
        ("", Code::InvalidArgument),
        ("not-an-id", Code::InvalidArgument),
        ("exp_0190c1f0a0b07c3d8e4f5a6b7c8d9e0f", Code::NotFound),
    ] {
        let error = planner
            .get_research(pb::GetResearchRequest {
                research_id: id.into(),
            })
            .await
            .expect_err(id);
        assert_eq!(error.code(), code, "GetResearch {id:?}: {error:?}");
        let error = planner
            .resume_research(pb::ResumeResearchRequest {
                research_id: id.into(),
            })
            .await
            .expect_err(id);
        assert_eq!(error.code(), code, "ResumeResearch {id:?}: {error:?}");
        let error = planner
            .stop_research(pb::StopResearchRequest {
                research_id: id.into(),
                reason: String::new(),
            })
            .await
            .expect_err(id);
        assert_eq!(error.code(), code, "StopResearch {id:?}: {error:?}");
    }

    // ProposeCandidates: checked requests; proposals valid for the input and new.
    let input = common::InputSpec::from(&ra_spec::InputSpec::Tabular { features: 64 });
    let propose = |count: u32, input: Option<common::InputSpec>, strategy: pb::Strategy| {
        pb::ProposeCandidatesRequest {
            input,
            num_classes: 10,
            count,
            strategy: strategy as i32,
            seed: 3,
            ..Default::default()
        }
    };
    for (name, request) in [
        ("count 0", propose(0, Some(input), pb::Strategy::Random)),
        ("count 65", propose(65, Some(input), pb::Strategy::Random)),
        ("no input", propose(2, None, pb::Strategy::Random)),
    ] {
        let error = planner.propose_candidates(request).await.expect_err(name);
        assert_eq!(error.code(), Code::InvalidArgument, "{name}: {error:?}");
    }
    let first = planner
        .propose_candidates(propose(4, Some(input), pb::Strategy::Random))
        .await
        .expect("ProposeCandidates")
        .into_inner()
        .proposals;
    assert_eq!(first.len(), 4);
    let history: Vec<pb::HistoryEntry> = first
        .iter()
        .enumerate()
        .map(|(i, p)| pb::HistoryEntry {
            model: p.model.clone(),
            train: p.train,
            aggregate: Some(common::Aggregate {
                metric: "val_accuracy".into(),
                n: 3,
                mean: 0.5 + i as f64 * 0.1,
                ..Default::default()
            }),
            failure: String::new(),
        })
        .collect();
    let evolved = planner
        .propose_candidates(pb::ProposeCandidatesRequest {
            history: history.clone(),
            ..propose(3, Some(input), pb::Strategy::Evolution)
        })
        .await
        .expect("ProposeCandidates evolution")
        .into_inner()
        .proposals;
    assert_eq!(evolved.len(), 3);
    for proposal in &evolved {
        assert_eq!(proposal.strategy(), pb::Strategy::Evolution);
        let model = ra_spec::ModelSpec::try_from(proposal.model.as_ref().expect("model"))
            .expect("a valid model");
        ra_spec::validate_model(&model, &ra_spec::Budget::default()).expect("validates");
        assert!(
            first
                .iter()
                .all(|f| f.model != proposal.model || f.train != proposal.train),
            "no repeat of the history"
        );
    }

    // Nothing of the above was written.
    let experiments = registry
        .list_experiments(reg::ListExperimentsRequest::default())
        .await
        .expect("ListExperiments")
        .into_inner()
        .experiments;
    assert!(experiments.is_empty(), "{experiments:?}");

    // grpcurl reaches the planner through reflection.
    match ra_integration_tests::grpcurl() {
        None => skip_or_fail(test, "grpcurl is not installed (set RA_GRPCURL)"),
        Some(grpcurl) => {
            let output = tokio::process::Command::new(grpcurl)
                .args([
                    "-plaintext",
                    "-d",
                    r#"{"text": "MLP on titanic at least 0.8 accuracy within 20 candidates"}"#,
                    &stack.planner.to_string(),
                    "ra.planner.v1.PlannerService/ParseGoal",
                ])
                .output()
                .await
                .expect("run grpcurl");
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{stdout} {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let goal: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
            assert_eq!(goal["dataset"], "titanic");
            assert_eq!(goal["budget"]["maxCandidates"], 20);
        }
    }
    stack.stop().await.expect("stop the stack");
}

/// A valid answer for digits as the LLM would write it.
fn llm_answer(input: &ra_spec::InputSpec, hidden: u32, epochs: u32) -> String {
    serde_json::json!({
        "rationale": format!("a {hidden}-unit MLP is a strong baseline for 8x8 digits"),
        "model": {
            "name": format!("llm-mlp-{hidden}"),
            "input": input,
            "num_classes": 10,
            "layers": [
                {"type": "flatten"},
                {"type": "linear", "out_features": hidden},
                {"type": "activation", "function": "relu"},
                {"type": "linear", "out_features": 10}
            ]
        },
        "train": {"optimizer": {"type": "adam"}, "learning_rate": 0.01, "batch_size": 32, "epochs": epochs}
    })
    .to_string()
}

fn message_texts(request: &serde_json::Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_llm_strategy_gets_feedback_retries_and_falls_back() {
    let test = "the_llm_strategy_gets_feedback_retries_and_falls_back";
    let llm = planner_svc::config::LlmConfig {
        timeout_seconds: 2,
        max_retries: 3,
        request_attempts: 2,
        backoff_seconds: 0.1,
        strikes: 1,
        ..planner_svc::config::LlmConfig::default()
    };
    let Some((stack, _root)) = stack(test, Some(llm)).await else {
        return;
    };
    let mut planner = planner(&stack).await;
    let mut registry = registry(&stack).await;
    let mut datasets =
        ra_proto::dataset::v1::dataset_service_client::DatasetServiceClient::connect(
            stack.dataset_url(),
        )
        .await
        .expect("connect to dataset-svc");
    let mut prepared = datasets
        .prepare_dataset(ds::PrepareDatasetRequest {
            name: "digits".into(),
            options: Some(ds::PrepareOptions {
                offline: true,
                ..Default::default()
            }),
        })
        .await
        .expect("PrepareDataset")
        .into_inner();
    let mut manifest = None;
    while let Some(event) = prepared.message().await.expect("prepare event") {
        if let Some(ds::prepare_dataset_event::Event::Manifest(m)) = event.event {
            manifest = Some(m);
        }
    }
    let manifest = manifest.expect("manifest");
    let input_proto = manifest.input.expect("input");
    let input = ra_spec::InputSpec::try_from(&input_proto).expect("input spec");

    // ProposeCandidates with the llm strategy: not JSON, then wrong classes, then valid.
    let wrong_classes =
        llm_answer(&input, 32, 3).replace("\"out_features\":10", "\"out_features\":7");
    let server = ScriptedLlm::start(vec![
        Reply::Content("I would suggest a small convolutional network.".into()),
        Reply::Content(wrong_classes),
        Reply::Content(llm_answer(&input, 48, 3)),
    ])
    .await;
    let proposals = planner
        .propose_candidates(pb::ProposeCandidatesRequest {
            input: Some(input_proto),
            num_classes: 10,
            count: 1,
            strategy: pb::Strategy::Llm as i32,
            llm: Some(pb::LlmSettings {
                base_url: server.base_url.clone(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("ProposeCandidates llm")
        .into_inner()
        .proposals;
    assert_eq!(proposals.len(), 1);
    assert_eq!(proposals[0].strategy(), pb::Strategy::Llm);
    assert!(
        proposals[0].rationale.contains("48-unit MLP"),
        "{}",
        proposals[0].rationale
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "two refusals, then the valid answer");
    assert_eq!(requests[0]["response_format"]["type"], "json_schema");
    let second = message_texts(&requests[1]).join("\n");
    assert!(
        second.contains("refused") && second.contains("not JSON"),
        "{second}"
    );
    let third = message_texts(&requests[2]).join("\n");
    assert!(
        third.contains("layer"),
        "the validation error is fed back: {third}"
    );

    // hybrid with nothing listening at its URL: the built-in strategy proposes, and says so.
    let closed = format!("http://127.0.0.1:{}/v1", ra_integration_tests::free_port());
    let proposals = planner
        .propose_candidates(pb::ProposeCandidatesRequest {
            input: Some(input_proto),
            num_classes: 10,
            count: 2,
            strategy: pb::Strategy::Hybrid as i32,
            llm: Some(pb::LlmSettings {
                base_url: closed,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("ProposeCandidates hybrid")
        .into_inner()
        .proposals;
    assert_eq!(proposals.len(), 2);
    assert!(
        proposals
            .iter()
            .all(|p| p.strategy() == pb::Strategy::Evolution && p.rationale.contains("fallback")),
        "{proposals:#?}"
    );

    // A session: the LLM answers once (after a non-JSON answer), then stops answering in
    // time; the session falls back to evolution for good and records all of it.
    let server = ScriptedLlm::start(vec![
        Reply::Content("not json at all".into()),
        Reply::Content(llm_answer(&input, 64, 3)),
        Reply::Slow(Duration::from_secs(6), llm_answer(&input, 80, 3)),
    ])
    .await;
    let mut request = start_request(
        "an MLP on digits with at least 99.9% accuracy within 2 candidates",
        pb::Strategy::Llm,
    );
    request.llm = Some(pb::LlmSettings {
        base_url: server.base_url.clone(),
        model: "scripted-model".into(),
        ..Default::default()
    });
    request.overrides = Some(common::ResearchGoal {
        num_seeds: 2,
        max_seeds: 2,
        ..Default::default()
    });
    let started = planner
        .start_research(request)
        .await
        .expect("StartResearch llm")
        .into_inner();
    let id = started.research_id;
    let (events, status) = watch_to_end(&mut planner, &id).await;
    assert_eq!(
        status.state(),
        pb::ResearchState::Exhausted,
        "{}",
        status.message
    );
    let strategies: Vec<pb::Strategy> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(pb::research_event::Event::CandidateProposed(p)) => Some(p.strategy()),
            _ => None,
        })
        .collect();
    assert_eq!(strategies, [pb::Strategy::Llm, pb::Strategy::Evolution]);
    let recorded = candidates(&mut registry, &id).await;
    assert!(
        recorded[1].rationale.contains("fallback"),
        "{}",
        recorded[1].rationale
    );
    let log = decisions(&mut registry, &id).await;
    let exchanges: Vec<&reg::Decision> =
        log.iter().filter(|d| d.action == "llm_exchange").collect();
    assert_eq!(exchanges.len(), 3, "{log:#?}");
    let first: serde_json::Value = serde_json::from_str(&exchanges[0].inputs_json).expect("JSON");
    assert_eq!(first["accepted"], false);
    assert_eq!(first["prompt_tokens"], 321);
    assert!(first["latency_ms"].is_u64());
    assert!(
        exchanges[0].reasoning.contains("not json at all"),
        "raw response recorded"
    );
    assert!(exchanges[0].reasoning.contains("digits"), "prompt recorded");
    let second: serde_json::Value = serde_json::from_str(&exchanges[1].inputs_json).expect("JSON");
    assert_eq!(second["accepted"], true);
    let third: serde_json::Value = serde_json::from_str(&exchanges[2].inputs_json).expect("JSON");
    assert!(
        third["problem"]
            .as_str()
            .unwrap_or_default()
            .contains("timeout"),
        "{third}"
    );
    let fallback = log
        .iter()
        .find(|d| d.action == "fallback")
        .expect("a fallback decision");
    let inputs: serde_json::Value = serde_json::from_str(&fallback.inputs_json).expect("JSON");
    assert_eq!(inputs["unreachable"], true);
    assert_eq!(inputs["for_good"], true, "one strike is the limit here");
    let prompt = message_texts(&server.requests()[0]).join("\n");
    assert!(
        prompt.contains("0.999") && prompt.contains("parameters"),
        "goal and budget in the prompt: {prompt}"
    );
    stack.stop().await.expect("stop the stack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_session_pauses_and_resumes_with_fresh_seeds() {
    let test = "a_stopped_session_pauses_and_resumes_with_fresh_seeds";
    let Some((stack, _root)) = stack(test, None).await else {
        return;
    };
    let mut planner = planner(&stack).await;
    let mut registry = registry(&stack).await;
    let mut request = start_request(
        "an MLP on digits with at least 99.9% accuracy within 2 candidates",
        pb::Strategy::Random,
    );
    // 30 to 60 epochs per seed: long enough to be stopped mid-training.
    request.max_epochs = 60;
    request.overrides = Some(common::ResearchGoal {
        num_seeds: 2,
        max_seeds: 2,
        ..Default::default()
    });
    let id = planner
        .start_research(request)
        .await
        .expect("StartResearch")
        .into_inner()
        .research_id;
    let mut stream = planner
        .watch_research(pb::WatchResearchRequest {
            research_id: id.clone(),
            from_position: 0,
        })
        .await
        .expect("WatchResearch")
        .into_inner();
    let started_seed = loop {
        let event = stream
            .message()
            .await
            .expect("event")
            .expect("the session runs");
        if let Some(pb::research_event::Event::Evaluation(evaluation)) = event.event
            && let Some(ra_proto::evaluator::v1::evaluate_event::Event::SeedStarted(started)) =
                evaluation.event
        {
            break started;
        }
    };
    let stopped = planner
        .stop_research(pb::StopResearchRequest {
            research_id: id.clone(),
            reason: "the test stops it".into(),
        })
        .await
        .expect("StopResearch")
        .into_inner();
    assert_eq!(
        stopped.state(),
        pb::ResearchState::Paused,
        "{}",
        stopped.message
    );
    assert!(
        stopped.message.contains("the test stops it"),
        "{}",
        stopped.message
    );
    let experiment = registry
        .get_experiment(reg::GetExperimentRequest { id: id.clone() })
        .await
        .expect("GetExperiment")
        .into_inner();
    assert_eq!(experiment.status(), reg::ExperimentStatus::Paused);
    let before = trials(&mut registry, &id).await;
    let cancelled: Vec<&reg::Trial> = before
        .iter()
        .filter(|t| t.state() == common::TrialState::Cancelled)
        .collect();
    assert!(
        cancelled.iter().any(|t| t.id == started_seed.trial_id),
        "the running trial was cancelled: {before:#?}"
    );
    assert!(
        before.iter().all(|t| !matches!(
            t.state(),
            common::TrialState::Pending | common::TrialState::Running
        )),
        "StopResearch returns after the trials ended: {before:#?}"
    );

    let resumed = planner
        .resume_research(pb::ResumeResearchRequest {
            research_id: id.clone(),
        })
        .await
        .expect("ResumeResearch")
        .into_inner();
    assert_eq!(resumed.state(), pb::ResearchState::Running);
    let (_, status) = watch_to_end(&mut planner, &id).await;
    assert_eq!(
        status.state(),
        pb::ResearchState::Exhausted,
        "{}",
        status.message
    );
    let after = trials(&mut registry, &id).await;
    let recorded = candidates(&mut registry, &id).await;
    assert_eq!(recorded.len(), 2, "the budget of 2 candidates holds");
    let first = &recorded[0].id;
    let cancelled_seeds: Vec<u64> = cancelled.iter().map(|t| t.seed).collect();
    let finished: Vec<&reg::Trial> = after
        .iter()
        .filter(|t| &t.candidate_id == first && t.state() == common::TrialState::Succeeded)
        .collect();
    assert_eq!(
        finished.len(),
        2,
        "the stopped candidate finished on 2 seeds: {after:#?}"
    );
    assert!(
        finished.iter().all(|t| !cancelled_seeds.contains(&t.seed)),
        "cancelled seeds are replaced by fresh ones: {after:#?}"
    );
    for trial in &cancelled {
        let now = after.iter().find(|t| t.id == trial.id).expect("kept");
        assert_eq!(
            now.state(),
            common::TrialState::Cancelled,
            "history is not rewritten"
        );
    }
    let log = decisions(&mut registry, &id).await;
    for action in ["stop_paused", "resume", "stop_budget"] {
        assert!(
            log.iter().any(|d| d.action == action),
            "{action} recorded: {log:#?}"
        );
    }
    stack.stop().await.expect("stop the stack");
}
