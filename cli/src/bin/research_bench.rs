//! research-bench: trials-to-goal and time-to-goal of the `random` and `evolution` strategies
//! on fixed goals (digits, Titanic, shapes), several repetitions each, in one run through the
//! embedded services (real gRPC, the process sandbox), printed as a table with ratios.
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
    /// Candidate budget per session (a session that does not reach the goal counts as this).
    #[arg(long, default_value_t = 8)]
    max_candidates: u32,
    #[arg(long, default_value_t = 3)]
    max_epochs: u32,
    /// Only the goals whose dataset is listed (digits, titanic, shapes).
    #[arg(long, value_delimiter = ',', default_value = "digits,titanic,shapes")]
    goals: Vec<String>,
}

const GOALS: &[(&str, &str)] = &[
    ("digits", "an MLP on digits with at least 96% accuracy"),
    ("titanic", "a model for titanic with at least 81% accuracy"),
    ("shapes", "a CNN for shapes with at least 60% accuracy"),
];

#[derive(Debug, Clone, Copy)]
struct Session {
    reached: bool,
    candidates: u32,
    seeds: u32,
    seconds: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

async fn session(
    planner: &mut PlannerServiceClient<tonic::transport::Channel>,
    goal: &str,
    strategy: pb::Strategy,
    seed: u64,
    args: &Args,
) -> anyhow::Result<Session> {
    let started = planner
        .start_research(pb::StartResearchRequest {
            goal_text: goal.into(),
            strategy: strategy as i32,
            seed,
            max_epochs: args.max_epochs,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
    let strategies = [
        ("random", pb::Strategy::Random),
        ("evolution", pb::Strategy::Evolution),
    ];
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "goal",
        "strategy",
        "reached",
        "median candidates (all sessions)",
        "median seeds",
        "median time (s)",
        "candidates vs random",
        "time vs random",
    ]);
    for (dataset, goal) in GOALS
        .iter()
        .filter(|(d, _)| args.goals.iter().any(|g| g == d))
    {
        let mut baseline: Option<(f64, f64)> = None;
        for (name, strategy) in strategies {
            let mut sessions = Vec::new();
            for seed in 0..args.repeats {
                let outcome = session(&mut planner, goal, strategy, seed, &args).await?;
                eprintln!("{dataset} {name} seed {seed}: {outcome:?}");
                sessions.push(outcome);
            }
            let reached = sessions.iter().filter(|s| s.reached).count();
            let candidates = median(sessions.iter().map(|s| f64::from(s.candidates)).collect());
            let seeds = median(sessions.iter().map(|s| f64::from(s.seeds)).collect());
            let seconds = median(sessions.iter().map(|s| s.seconds).collect());
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
            .map(|(d, g)| format!("{d}: \"{g}\""))
            .collect::<Vec<_>>()
            .join("; ")
    );
    println!(
        "budget {} candidates per session, ≤ {} epochs per candidate; a session that does not reach its goal counts its whole budget",
        args.max_candidates, args.max_epochs
    );
    tokio::time::timeout(Duration::from_secs(60), stack.stop())
        .await
        .context("stop the services")??;
    Ok(())
}
