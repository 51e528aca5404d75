//! Benchmark: the dashboard's page load time and memory for a large session — by default 200
//! candidates × 5 seeds × 50 epochs (4 metrics an epoch, appended epoch by epoch as the
//! evaluator does) — against the baseline of the same records streamed raw from registry-svc
//! (WatchExperiment replay, what the page folds). registry-svc, evaluator-svc (Holm p-values)
//! and dashboard-svc run in this process on 127.0.0.1 ephemeral ports.
//!
//! `cargo run --release -p ra-bench --bin dashboard-bench`

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use comfy_table::{Table, presets::UTF8_FULL};
use futures::StreamExt;
use ra_proto::common::v1 as common;
use ra_proto::registry::v1 as pb;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use ra_serve::Shutdown;
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(
    about = "Dashboard page load time and memory for a large session, against the raw record stream"
)]
struct Args {
    #[arg(long, default_value_t = 200)]
    candidates: usize,
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    #[arg(long, default_value_t = 50)]
    epochs: u64,
    /// Warm page loads measured (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Trials written at once while filling the registry.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

const METRICS: [&str; 4] = ["train_loss", "val_loss", "val_accuracy", "learning_rate"];

/// This process's resident memory, from /proc (0 where there is none).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

async fn listener() -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    Ok((listener, address))
}

fn model() -> common::ModelSpec {
    let input = ra_spec::InputSpec::Tabular { features: 64 };
    (&ra_spec::examples::baseline(&input, 10)).into()
}

/// One trial as the evaluator writes it: created running, a batch of points per epoch, then
/// finished with its final metrics.
async fn write_trial(
    mut registry: RegistryServiceClient<Channel>,
    candidate_id: String,
    seed: u64,
    epochs: u64,
    quality: f64,
) -> anyhow::Result<(String, f64)> {
    let trial = registry
        .create_trial(pb::CreateTrialRequest {
            candidate_id,
            seed,
            state: common::TrialState::Running as i32,
            device: "flex".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut last = 0.0;
    for epoch in 1..=epochs {
        let progress = epoch as f64 / epochs as f64;
        let accuracy = quality * (0.5 + 0.5 * progress) + 0.002 * seed as f64;
        last = accuracy;
        let points = METRICS
            .iter()
            .map(|name| common::MetricPoint {
                name: (*name).into(),
                step: epoch,
                value: match *name {
                    "val_accuracy" => accuracy,
                    "learning_rate" => 0.001,
                    _ => 2.0 - accuracy,
                },
                wall_time: None,
            })
            .collect();
        registry
            .append_metrics(futures::stream::iter([pb::AppendMetricsRequest {
                trial_id: trial.id.clone(),
                points,
            }]))
            .await?;
    }
    registry
        .update_trial(pb::UpdateTrialRequest {
            id: trial.id.clone(),
            state: Some(common::TrialState::Succeeded as i32),
            usage: Some(common::ResourceUsage {
                wall_seconds: 10.0,
                cpu_seconds: 18.0,
                peak_rss_bytes: 200 << 20,
                output_bytes: 4096,
            }),
            final_metrics: HashMap::from([("val_accuracy".to_owned(), last)]),
            exit_reason: common::ExitReason::Completed as i32,
            ..Default::default()
        })
        .await?;
    Ok((trial.id, last))
}

async fn fill(registry: &RegistryServiceClient<Channel>, args: &Args) -> anyhow::Result<String> {
    let mut client = registry.clone();
    let target = common::Target {
        metric: "val_accuracy".into(),
        threshold: 0.95,
        direction: common::Direction::Maximize as i32,
        open_ended: false,
    };
    let experiment = client
        .create_experiment(pb::CreateExperimentRequest {
            name: "dashboard bench".into(),
            goal: Some(common::ResearchGoal {
                text: "a large session for the dashboard benchmark".into(),
                dataset: "synthetic-tabular".into(),
                target: Some(target.clone()),
                confidence: 0.95,
                num_seeds: args.seeds as u32,
                max_seeds: args.seeds as u32,
                budget: Some(common::Budget {
                    max_candidates: args.candidates as u32,
                    max_total_seeds: (args.candidates as u32) * (args.seeds as u32),
                    max_wall_seconds: 3600,
                }),
                model_family: String::new(),
            }),
            config_json: r#"{"strategy":"evolution"}"#.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    for index in 0..args.candidates {
        let candidate = client
            .create_candidate(pb::CreateCandidateRequest {
                experiment_id: experiment.id.clone(),
                model: Some(model()),
                train: Some((&ra_spec::examples::baseline_train(args.epochs as u32)).into()),
                rationale: format!("candidate {index}: a mutation of the best so far"),
                strategy: "evolution".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let quality = 0.6 + 0.35 * (index as f64 / args.candidates as f64);
        let trials: Vec<(String, f64)> = futures::stream::iter((0..args.seeds).map(|seed| {
            write_trial(
                registry.clone(),
                candidate.id.clone(),
                seed,
                args.epochs,
                quality,
            )
        }))
        .buffer_unordered(args.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
        let values: Vec<f64> = trials.iter().map(|t| t.1).collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let half = 2.776 * sd / n.sqrt();
        client
            .create_evaluation(pb::CreateEvaluationRequest {
                candidate_id: candidate.id.clone(),
                trial_ids: trials.into_iter().map(|t| t.0).collect(),
                target: Some(target.clone()),
                aggregate: Some(common::Aggregate {
                    metric: "val_accuracy".into(),
                    n: n as u32,
                    mean,
                    std_dev: sd,
                    min: values.iter().copied().fold(f64::INFINITY, f64::min),
                    max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    std_error: sd / n.sqrt(),
                    ci_low: mean - half,
                    ci_high: mean + half,
                    confidence: 0.95,
                }),
                decision: common::GoalDecision::NotAchieved as i32,
                p_value: 0.9,
                explanation: "below the target".into(),
                ..Default::default()
            })
            .await?;
        client
            .create_decision(pb::CreateDecisionRequest {
                experiment_id: experiment.id.clone(),
                action: "continue".into(),
                reasoning: format!("candidate {index} did not reach the goal; budget left"),
                inputs_json: "{}".into(),
                candidate_id: candidate.id.clone(),
                ..Default::default()
            })
            .await?;
    }
    Ok(experiment.id)
}

/// Every stored event of the experiment, streamed raw: the baseline.
async fn replay(
    registry: &RegistryServiceClient<Channel>,
    id: &str,
) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let mut stream = registry
        .clone()
        .watch_experiment(pb::WatchExperimentRequest {
            experiment_id: id.to_owned(),
            from_position: 0,
            replay_only: true,
        })
        .await?
        .into_inner();
    let mut events = 0;
    while let Some(event) = stream.next().await {
        event?;
        events += 1;
    }
    Ok((started.elapsed(), events))
}

async fn load(http: &reqwest::Client, url: &str) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let response = http.get(url).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    let body = response.bytes().await?;
    Ok((started.elapsed(), body.len()))
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let shutdown = Shutdown::new();

    let mut registry_config = registry_svc::RegistryConfig::default();
    registry_config.store.path = dir.path().join("registry");
    let (registry_listener, registry_address) = listener().await?;
    registry_config.server.listen = registry_address;
    let registry_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { registry_svc::run(&registry_config, registry_listener, shutdown).await }
    });
    let registry_url = format!("http://{registry_address}");
    ra_test_support::wait_serving(
        &registry_url,
        ra_proto::service_names::REGISTRY,
        Duration::from_secs(30),
        Duration::from_millis(20),
        |_| async { None },
    )
    .await?;

    let mut evaluator_config = evaluator_svc::EvaluatorConfig::default();
    let (evaluator_listener, evaluator_address) = listener().await?;
    evaluator_config.server.listen = evaluator_address;
    evaluator_config.evaluator.registry_url = registry_url.clone();
    let evaluator_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { evaluator_svc::run(&evaluator_config, evaluator_listener, shutdown).await }
    });

    let registry = RegistryServiceClient::connect(registry_url.clone())
        .await?
        .max_decoding_message_size(64 << 20);
    let filling = Instant::now();
    let id = fill(&registry, &args).await?;
    let filled = filling.elapsed();
    let (raw, events) = replay(&registry, &id).await?;

    let mut dashboard_config = dashboard_svc::DashboardConfig::default();
    let (dashboard_listener, dashboard_address) = listener().await?;
    dashboard_config.server.listen = dashboard_address;
    dashboard_config.dashboard.registry_url = registry_url;
    dashboard_config.dashboard.evaluator_url = format!("http://{evaluator_address}");
    dashboard_config.dashboard.planner_url = String::new();
    let dashboard_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { dashboard_svc::run(&dashboard_config, dashboard_listener, shutdown).await }
    });
    let base = format!("http://{dashboard_address}");
    let http = reqwest::Client::new();
    let before = rss_bytes();
    let page = format!("{base}/sessions/{id}");
    let (cold, size) = load(&http, &page).await?;
    let after = rss_bytes();
    let mut warm = Vec::new();
    for _ in 0..args.repeats {
        warm.push(load(&http, &page).await?.0);
    }
    let warm = median(warm);
    let mut lists = Vec::new();
    for _ in 0..args.repeats {
        lists.push(load(&http, &format!("{base}/")).await?.0);
    }
    let list = median(lists);

    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL)
        .set_header(["measure", "value", "ratio to the raw record stream"]);
    let ratio = |d: Duration| format!("{:.2}×", d.as_secs_f64() / raw.as_secs_f64());
    table.add_row([
        format!("records streamed raw (WatchExperiment replay, {events} events): baseline"),
        format!("{:.3} s", raw.as_secs_f64()),
        "1.00×".into(),
    ]);
    table.add_row([
        "session page, first load (fold + Holm + render)".into(),
        format!("{:.3} s", cold.as_secs_f64()),
        ratio(cold),
    ]);
    table.add_row([
        format!("session page, warm (median of {})", args.repeats),
        format!("{:.3} s", warm.as_secs_f64()),
        ratio(warm),
    ]);
    table.add_row([
        format!("sessions list (median of {})", args.repeats),
        format!("{:.3} s", list.as_secs_f64()),
        ratio(list),
    ]);
    table.add_row([
        "session page size".into(),
        format!("{:.1} MiB", size as f64 / (1 << 20) as f64),
        String::new(),
    ]);
    table.add_row([
        "process memory added by the first load (VmRSS)".into(),
        format!(
            "{:.1} MiB",
            after.saturating_sub(before) as f64 / (1 << 20) as f64
        ),
        String::new(),
    ]);
    println!(
        "{} candidates × {} seeds × {} epochs × {} metrics ({} points), filled in {:.1} s",
        args.candidates,
        args.seeds,
        args.epochs,
        METRICS.len(),
        args.candidates as u64 * args.seeds * args.epochs * METRICS.len() as u64,
        filled.as_secs_f64()
    );
    println!("{table}");

    shutdown.trigger();
    dashboard_task.await??;
    evaluator_task.await??;
    registry_task.await??;
    Ok(())
}
