//! The `llm` strategy's transport against a scripted OpenAI-compatible server on 127.0.0.1
//! (real HTTP): answers streamed as server-sent events are read token by token, a 503 is
//! retried with backoff, a server that refuses `json_schema` is asked for a JSON object, the
//! answer's JSON schema (generated from the spec types) goes out with the request, and a
//! session counts strikes — turns without an answer — before falling back for good.
//! Opt-in: `RA_LLM_URL` runs one session against a real local model as well.

use std::time::Duration;

use ra_integration_tests::records::{SessionRecords, watch_to_end};
use ra_integration_tests::scripted_llm::{Reply, ScriptedLlm};
use ra_proto::common::v1 as common;
use ra_proto::planner::v1 as pb;
use ra_proto::planner::v1::planner_service_client::PlannerServiceClient;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;

/// The features of the built-in `synthetic-tabular` (its default options).
fn tabular() -> ra_spec::InputSpec {
    ra_spec::InputSpec::Tabular { features: 20 }
}

fn answer(hidden: u32, classes: u32) -> String {
    serde_json::json!({
        "rationale": format!("a {hidden}-unit MLP"),
        "model": {
            "name": format!("llm-mlp-{hidden}"),
            "input": tabular(),
            "num_classes": classes,
            "layers": [
                {"type": "linear", "out_features": hidden},
                {"type": "activation", "function": "relu"},
                {"type": "linear", "out_features": classes}
            ]
        },
        "train": {"optimizer": {"type": "adam"}, "learning_rate": 0.01, "batch_size": 32, "epochs": 2}
    })
    .to_string()
}

async fn stack(llm: planner_svc::config::LlmConfig) -> (ra_cli::Stack, tempfile::TempDir) {
    ra_integration_tests::offline_stack(|options| {
        options.max_concurrent_jobs = 2;
        options.llm = Some(llm);
        options.session_defaults = Some(ra_integration_tests::short_sessions());
    })
    .await
}

async fn propose(
    planner: &mut PlannerServiceClient<tonic::transport::Channel>,
    base_url: &str,
) -> pb::Proposal {
    let mut proposals = planner
        .propose_candidates(pb::ProposeCandidatesRequest {
            input: Some((&tabular()).into()),
            num_classes: 4,
            count: 1,
            strategy: pb::Strategy::Llm as i32,
            llm: Some(pb::LlmSettings {
                base_url: base_url.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("ProposeCandidates")
        .into_inner()
        .proposals;
    proposals.pop().expect("one proposal")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streamed_answers_retries_and_structured_output() {
    let (stack, _root) = stack(planner_svc::config::LlmConfig {
        timeout_seconds: 5,
        backoff_seconds: 0.05,
        ..planner_svc::config::LlmConfig::default()
    })
    .await;
    let mut planner = PlannerServiceClient::connect(stack.planner_url())
        .await
        .expect("planner");

    // A 503, then the answer streamed in small pieces.
    let text = answer(24, 4);
    let pieces: Vec<String> = text
        .as_bytes()
        .chunks(7)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let server = ScriptedLlm::start(vec![
        Reply::Error(503, "loading the model".into()),
        Reply::Streamed(pieces, Duration::from_millis(5)),
    ])
    .await;
    let proposal = propose(&mut planner, &server.base_url).await;
    assert_eq!(proposal.strategy(), pb::Strategy::Llm);
    assert!(
        proposal.rationale.contains("24-unit MLP"),
        "{}",
        proposal.rationale
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "the 503 is retried");
    assert_eq!(requests[1]["stream"], true);
    let format = &requests[0]["response_format"];
    assert_eq!(format["type"], "json_schema");
    let schema = format["json_schema"]["schema"].to_string();
    for name in ["ModelSpec", "TrainSpec", "out_features", "learning_rate"] {
        assert!(schema.contains(name), "{name} in the schema: {schema}");
    }

    // A server without structured output: the same question again as a JSON object.
    let server = ScriptedLlm::start(vec![Reply::NoSchema(answer(40, 4))]).await;
    let proposal = propose(&mut planner, &server.base_url).await;
    assert!(
        proposal.rationale.contains("40-unit MLP"),
        "{}",
        proposal.rationale
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(requests[0]["response_format"]["type"], "json_schema");
    assert_eq!(requests[1]["response_format"]["type"], "json_object");
    stack.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_model_costs_strikes_before_the_fallback_is_for_good() {
    let (stack, _root) = stack(planner_svc::config::LlmConfig {
        timeout_seconds: 1,
        request_attempts: 2,
        backoff_seconds: 0.05,
        strikes: 2,
        ..planner_svc::config::LlmConfig::default()
    })
    .await;
    let mut planner = PlannerServiceClient::connect(stack.planner_url())
        .await
        .expect("planner");
    let mut registry = RegistryServiceClient::connect(stack.registry_url())
        .await
        .expect("registry");
    let server = ScriptedLlm::start(vec![Reply::Slow(Duration::from_secs(3), answer(16, 4))]).await;
    let started = planner
        .start_research(pb::StartResearchRequest {
            goal_text:
                "an MLP for synthetic-tabular with at least 99.9% accuracy within 3 candidates"
                    .into(),
            strategy: pb::Strategy::Llm as i32,
            llm: Some(pb::LlmSettings {
                base_url: server.base_url.clone(),
                ..Default::default()
            }),
            overrides: Some(common::ResearchGoal {
                num_seeds: 2,
                max_seeds: 2,
                ..Default::default()
            }),
            seed: 2,
            ..Default::default()
        })
        .await
        .expect("StartResearch")
        .into_inner();
    let id = started.research_id;
    let (_, status) = watch_to_end(&mut planner, &id).await;
    assert_eq!(
        status.state(),
        pb::ResearchState::Exhausted,
        "{}",
        status.message
    );
    // Two turns asked (two requests each), the third proposed by evolution without asking.
    assert_eq!(server.requests().len(), 4);
    let records = SessionRecords::read(&mut registry, &id).await;
    let fallbacks: Vec<&str> = records
        .decisions
        .iter()
        .filter(|d| d.action == "fallback")
        .map(|d| d.reasoning.as_str())
        .collect();
    assert_eq!(fallbacks.len(), 2, "{fallbacks:#?}");
    assert!(fallbacks[0].contains("strike 1 of 2"), "{}", fallbacks[0]);
    assert!(fallbacks[1].contains("from now on"), "{}", fallbacks[1]);
    let exchange = records
        .decisions
        .iter()
        .find(|d| d.action == "llm_exchange")
        .expect("an exchange");
    let inputs: serde_json::Value = serde_json::from_str(&exchange.inputs_json).expect("JSON");
    assert_eq!(inputs["requests"], 2, "{inputs}");
    assert_eq!(inputs["answered"], false, "{inputs}");
    assert!(
        records
            .candidates
            .iter()
            .all(|c| !c.rationale.starts_with("LLM")),
        "no candidate came from the LLM"
    );
    stack.stop().await.expect("stop");
}

/// Opt-in: a session against a real OpenAI-compatible server (`RA_LLM_URL`, e.g. llama.cpp's
/// server with SmolLM2-135M-Instruct; `tests/scripts/llm-server.sh` starts one). Every LLM
/// turn is recorded with its latency; the model answers at least once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_local_model_proposes_in_a_session() {
    let Ok(url) = std::env::var("RA_LLM_URL") else {
        eprintln!(
            "SKIPPED a_real_local_model_proposes_in_a_session: set RA_LLM_URL to an OpenAI-compatible server (tests/scripts/llm-server.sh starts one)"
        );
        return;
    };
    let (stack, _root) = stack(planner_svc::config::LlmConfig {
        timeout_seconds: 300,
        prompt: "compact".into(),
        ..planner_svc::config::LlmConfig::default()
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
                "an MLP for synthetic-tabular with at least 99.9% accuracy within 2 candidates"
                    .into(),
            strategy: pb::Strategy::Llm as i32,
            llm: Some(pb::LlmSettings {
                base_url: url,
                model: std::env::var("RA_LLM_MODEL").unwrap_or_default(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("StartResearch")
        .into_inner();
    let (_, status) = watch_to_end(&mut planner, &started.research_id).await;
    assert_eq!(
        status.state(),
        pb::ResearchState::Exhausted,
        "{}",
        status.message
    );
    let records = SessionRecords::read(&mut registry, &started.research_id).await;
    let exchanges: Vec<serde_json::Value> = records
        .decisions
        .iter()
        .filter(|d| d.action == "llm_exchange")
        .map(|d| serde_json::from_str(&d.inputs_json).expect("JSON"))
        .collect();
    assert!(!exchanges.is_empty());
    assert!(
        exchanges.iter().any(|e| e["answered"] == true),
        "{exchanges:#?}"
    );
    assert!(exchanges.iter().all(|e| e["latency_ms"].is_u64()));
    stack.stop().await.expect("stop");
}
