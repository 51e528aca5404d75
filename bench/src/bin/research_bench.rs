//! research-bench: trials-to-goal and time-to-goal of the `random` and `evolution` strategies
//! on fixed goals (digits, Titanic, shapes, iris, and Titanic's CSV read as a researcher's own
//! `csv:` file), several repetitions each, in one run through the embedded services (real
//! gRPC, the process sandbox), printed as a table with ratios.
//!
//! A benchmark, not a test: the numbers go into the README and the closing note.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use ra_cli::{Stack, StackOptions};
use ra_proto::common::v1 as common;
use ra_proto::planner::v1 as pb;
use ra_proto::planner::v1::planner_service_client::PlannerServiceClient;

#[derive(Debug, Parser)]
#[command(about = "Trials-to-goal and time-to-goal of random vs evolution on fixed goals")]
struct Args {
    /// Folder of the original dataset files (digits/, titanic/).
    #[arg(long, default_value = "../shared/data")]
    data: PathBuf,
    /// Sessions per goal and strategy.
    #[arg(long, default_value_t = 5)]
    repeats: u64,
    #[arg(long, default_value_t = 3)]
    max_epochs: u32,
    /// Largest model a proposal may be, in forward FLOPs per sample (keeps random CNNs on
    /// `shapes` to seconds per epoch on a laptop CPU; the baseline CNN needs ~3.5 M).
    #[arg(long, default_value_t = 5_000_000)]
    max_flops_per_sample: u64,
    /// Only the goals whose key is listed (digits, titanic, shapes, iris, local-csv).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "digits,titanic,shapes,iris,local-csv"
    )]
    goals: Vec<String>,
}

/// (key, goal, candidate budget, epoch cap): a session that does not reach its goal counts its
/// whole budget. Shapes trains CNNs on 3,000 images, so its budget is smaller. An epoch cap of
/// 0 leaves it to the planner, which scales it to the training set (small tables train
/// longer); `{data}` is the data folder.
const GOALS: &[(&str, &str, u32, Option<u32>)] = &[
    (
        "digits",
        "an MLP on digits with at least 95% accuracy",
        10,
        None,
    ),
    (
        "titanic",
        "a model for titanic with at least 80% accuracy",
        10,
        None,
    ),
    (
        "shapes",
        "a CNN for shapes with at least 50% accuracy",
        3,
        None,
    ),
    (
        "iris",
        "an MLP on iris with at least 93% accuracy",
        4,
        Some(0),
    ),
    (
        "local-csv",
        "a model on csv:{data}/titanic/train.csv#label=Survived with at least 80% accuracy",
        10,
        Some(0),
    ),
];

#[derive(Debug, Clone, Copy)]
struct Session {
    reached: bool,
    candidates: u32,
    seeds: u32,
    seconds: f64,
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

async fn session(
    planner: &mut PlannerServiceClient<tonic::transport::Channel>,
    goal: &str,
    strategy: pb::Strategy,
    seed: u64,
    max_candidates: u32,
    max_epochs: u32,
) -> anyhow::Result<Session> {
    let started = planner
        .start_research(pb::StartResearchRequest {
            goal_text: goal.into(),
            strategy: strategy as i32,
            seed,
            max_epochs,
            overrides: Some(common::ResearchGoal {
                budget: Some(common::Budget {
                    max_candidates,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut stream = planner
        .watch_research(pb::WatchResearchRequest {
            research_id: started.research_id.clone(),
            from_position: 0,
        })
        .await?
        .into_inner();
    while let Some(event) = stream.message().await? {
        if let Some(pb::research_event::Event::Finished(status)) = event.event {
            if matches!(
                status.state(),
                pb::ResearchState::Failed | pb::ResearchState::Paused
            ) {
                anyhow::bail!("session {} failed: {}", status.research_id, status.message);
            }
            return Ok(Session {
                reached: status.state() == pb::ResearchState::Succeeded,
                candidates: status.leaderboard.len() as u32,
                seeds: status.seeds_used,
                seconds: status.elapsed_seconds,
            });
        }
    }
    anyhow::bail!("the event stream ended early")
}

fn main() -> std::process::ExitCode {
    ra_cli::multicall::main(research_bench)
}

#[tokio::main]
async fn research_bench() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = tempfile::tempdir()?;
    let stack = Stack::start(&StackOptions {
        root: root.path().to_path_buf(),
        data_dir: Some(args.data.clone()),
        offline: true,
        session_defaults: Some(planner_svc::config::SessionDefaults {
            max_flops_per_sample: args.max_flops_per_sample,
            ..planner_svc::config::SessionDefaults::default()
        }),
        ..StackOptions::default()
    })
    .await
    .context("start the embedded services")?;
    let mut planner = PlannerServiceClient::connect(stack.planner_url()).await?;
    let strategies = [
        ("random", pb::Strategy::Random),
        ("evolution", pb::Strategy::Evolution),
    ];
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "goal",
        "strategy",
        "reached",
        "mean candidates to goal",
        "mean seeds",
        "mean time (s)",
        "candidates vs random",
        "time vs random",
    ]);
    let data = std::path::absolute(&args.data).context("the data folder")?;
    for (dataset, goal, budget, epochs) in GOALS
        .iter()
        .filter(|(d, _, _, _)| args.goals.iter().any(|g| g == d))
    {
        let goal = goal.replace("{data}", &data.display().to_string());
        let max_epochs = epochs.unwrap_or(args.max_epochs);
        let mut baseline: Option<(f64, f64)> = None;
        for (name, strategy) in strategies {
            let mut sessions = Vec::new();
            for seed in 0..args.repeats {
                let outcome =
                    session(&mut planner, &goal, strategy, seed, *budget, max_epochs).await?;
                eprintln!("{dataset} {name} seed {seed}: {outcome:?}");
                sessions.push(outcome);
            }
            let reached = sessions.iter().filter(|s| s.reached).count();
            let values = |f: fn(&Session) -> f64| sessions.iter().map(f).collect::<Vec<f64>>();
            let candidates = mean(&values(|s| f64::from(s.candidates)));
            let seeds = mean(&values(|s| f64::from(s.seeds)));
            let seconds = mean(&values(|s| s.seconds));
            let (candidate_ratio, time_ratio) = match baseline {
                None => {
                    baseline = Some((candidates, seconds));
                    ("1.00×".to_owned(), "1.00×".to_owned())
                }
                Some((c, t)) => (
                    format!("{:.2}×", candidates / c),
                    format!("{:.2}×", seconds / t),
                ),
            };
            table.add_row([
                (*dataset).to_owned(),
                name.to_owned(),
                format!("{reached}/{}", sessions.len()),
                format!("{candidates:.1}"),
                format!("{seeds:.1}"),
                format!("{seconds:.1}"),
                candidate_ratio,
                time_ratio,
            ]);
        }
    }
    println!("{table}");
    println!(
        "goals: {}",
        GOALS
            .iter()
            .map(|(d, g, b, e)| format!(
                "{d}: \"{g}\" ({b} candidates, {})",
                match e {
                    Some(0) => "epoch cap scaled to the training set".to_owned(),
                    Some(n) => format!("≤ {n} epochs"),
                    None => format!("≤ {} epochs", args.max_epochs),
                }
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    println!(
        "≤ {} FLOPs per sample per candidate, {} sessions per goal and strategy (strategy seeds 0..{}); a session that does not reach its goal counts its whole budget",
        args.max_flops_per_sample, args.repeats, args.repeats
    );
    tokio::time::timeout(Duration::from_secs(60), stack.stop())
        .await
        .context("stop the services")??;
    Ok(())
}
