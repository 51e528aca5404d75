//! `research-agent`: a research goal in words taken to a statistically confirmed result.
//! `run` starts a session (embedded — all five services in this process on 127.0.0.1 with
//! real gRPC, state under `.research-agent/` — or against `--planner URL`) and follows it with
//! progress bars per candidate and seed, then prints the leaderboard; `serve`, `list`,
//! `status`, `report` and `resume` do what they say.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ra_proto::common::v1 as common;
use ra_proto::evaluator::v1 as ev;
use ra_proto::planner::v1 as pb;
use ra_proto::planner::v1::planner_service_client::PlannerServiceClient;
use ra_proto::registry::v1 as reg;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use tonic::transport::Channel;

use crate::stack::{Stack, StackOptions};

#[derive(Debug, Parser)]
#[command(
    name = "research-agent",
    version,
    about = "Research Agent: from a research goal to a statistically confirmed result"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter for the services (tracing syntax); warnings only by default.
    #[arg(long, global = true, default_value = "warn")]
    pub log_filter: String,
}

/// Where the services are: embedded in this process, or already running.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// A running planner-svc instead of the embedded services.
    #[arg(long, value_name = "URL")]
    pub planner: Option<String>,
    /// A running registry-svc (for `list` with --planner).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:50055")]
    pub registry: String,
    /// State folder of the embedded services: registry store, dataset cache, sandbox, reports.
    #[arg(long, value_name = "DIR", default_value = ".research-agent")]
    pub root: PathBuf,
    /// Folder of original dataset files for the embedded dataset-svc (default `<root>/data`).
    #[arg(long, value_name = "DIR", env = "RA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Never download datasets (the built-in `synthetic` and `shapes` need no files).
    #[arg(long)]
    pub offline: bool,
    /// TOML configuration: for the embedded services one file with their sections
    /// (`[store]`, `[data]`, `[sandbox]`, `[evaluator]`, `[planner]`, `[server]`); for
    /// `serve SERVICE` that service's own file. `RA_*` variables layer over it, flags over both.
    #[arg(long, value_name = "FILE", env = "RA_CONFIG")]
    pub config: Option<PathBuf>,
}

impl Connection {
    /// The embedded stack's options from these flags and the process environment.
    fn stack_options(&self, log_filter: &str) -> StackOptions {
        StackOptions {
            root: self.root.clone(),
            data_dir: self.data_dir.clone(),
            offline: self.offline,
            log_filter: log_filter.to_owned(),
            config_file: self.config.clone(),
            environment: std::env::vars().collect(),
            ..StackOptions::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    Random,
    Evolution,
    Llm,
    Hybrid,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The goal in words, e.g. "a CNN for shapes with at least 90% accuracy".
    #[arg(long)]
    pub goal: String,
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
    /// Seeds per candidate to start with (overrides the goal's words).
    #[arg(long)]
    pub num_seeds: Option<u32>,
    /// Seeds an undecided candidate may grow to.
    #[arg(long)]
    pub max_seeds: Option<u32>,
    #[arg(long)]
    pub max_candidates: Option<u32>,
    #[arg(long)]
    pub max_total_seeds: Option<u32>,
    /// Wall-time budget in minutes.
    #[arg(long)]
    pub max_minutes: Option<u64>,
    /// Required confidence, e.g. 0.95.
    #[arg(long)]
    pub confidence: Option<f64>,
    /// Dataset catalog name (overrides the goal's words).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Target metric (val_accuracy, val_loss, …) and threshold.
    #[arg(long)]
    pub metric: Option<String>,
    #[arg(long)]
    pub target: Option<f64>,
    /// OpenAI-compatible base URL for --strategy llm/hybrid (e.g. http://127.0.0.1:8000/v1).
    #[arg(long, value_name = "URL", env = "RA_LLM_URL")]
    pub llm_url: Option<String>,
    #[arg(long, env = "RA_LLM_MODEL")]
    pub llm_model: Option<String>,
    /// Seed of the strategy's randomness.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most epochs a proposed candidate may train (the planner's default otherwise).
    #[arg(long)]
    pub max_epochs: Option<u32>,
    /// Per-job timeout in seconds.
    #[arg(long)]
    pub timeout_seconds: Option<u64>,
    /// Print the final status as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceName {
    All,
    Planner,
    Evaluator,
    Sandbox,
    Dataset,
    Registry,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a research session and follow it to its end.
    Run(Box<RunArgs>),
    /// Serve one service, or all five, on the conventional ports until Ctrl-C.
    Serve {
        service: ServiceName,
        /// Address to bind; the conventional ports are 50051 (planner) to 50055 (registry).
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        #[command(flatten)]
        connection: Connection,
    },
    /// List research sessions.
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// Show a session's status and leaderboard.
    Status {
        research_id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Print a session's report (markdown) and where its files are.
    Report {
        research_id: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Continue a paused or interrupted session and follow it to its end.
    Resume {
        research_id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connection: Connection,
    },
}

/// Services for one command: the embedded stack (stopped at the end) or a remote planner.
struct Services {
    stack: Option<Stack>,
    planner: PlannerServiceClient<Channel>,
    registry_url: String,
}

impl Services {
    async fn open(connection: &Connection, log_filter: &str) -> anyhow::Result<Self> {
        let (stack, planner_url, registry_url) = match &connection.planner {
            Some(url) => (None, url.clone(), connection.registry.clone()),
            None => {
                let stack = Stack::start(&connection.stack_options(log_filter))
                    .await
                    .context("start the embedded services")?;
                let (planner, registry) = (stack.planner_url(), stack.registry_url());
                (Some(stack), planner, registry)
            }
        };
        let planner = PlannerServiceClient::connect(planner_url.clone())
            .await
            .with_context(|| format!("connect to planner-svc at {planner_url}"))?
            .max_decoding_message_size(64 << 20);
        Ok(Self {
            stack,
            planner,
            registry_url,
        })
    }

    async fn close(self) -> anyhow::Result<()> {
        if let Some(stack) = self.stack {
            stack.stop().await?;
        }
        Ok(())
    }
}

fn refused(what: &str, status: &tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what} refused ({:?}): {}", status.code(), status.message())
}

/// Runs the command; the exit code says how a session ended (see [`exit_code`]).
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => {
            let mut services = Services::open(&args.connection, &cli.log_filter).await?;
            let outcome = start_and_follow(&mut services, &args).await;
            services.close().await?;
            outcome
        }
        Command::Resume {
            research_id,
            json,
            connection,
        } => {
            let mut services = Services::open(&connection, &cli.log_filter).await?;
            let outcome = async {
                let status = services
                    .planner
                    .resume_research(pb::ResumeResearchRequest {
                        research_id: research_id.clone(),
                    })
                    .await
                    .map_err(|s| refused("ResumeResearch", &s))?
                    .into_inner();
                eprintln!("resumed {}", status.research_id);
                follow(&mut services.planner, &research_id, json).await
            }
            .await;
            services.close().await?;
            outcome
        }
        Command::Status {
            research_id,
            json,
            connection,
        } => {
            let mut services = Services::open(&connection, &cli.log_filter).await?;
            let outcome = services
                .planner
                .get_research(pb::GetResearchRequest { research_id })
                .await
                .map_err(|s| refused("GetResearch", &s));
            services.close().await?;
            let status = outcome?.into_inner();
            print_status(&status, json)?;
            Ok(0)
        }
        Command::Report {
            research_id,
            connection,
        } => {
            let mut services = Services::open(&connection, &cli.log_filter).await?;
            let outcome = services
                .planner
                .get_research(pb::GetResearchRequest { research_id })
                .await
                .map_err(|s| refused("GetResearch", &s));
            services.close().await?;
            let status = outcome?.into_inner();
            if status.report_path.is_empty() {
                bail!(
                    "research {} has no report yet ({}): reports are written when a session ends",
                    status.research_id,
                    status.message
                );
            }
            let path = PathBuf::from(&status.report_path).join("report.md");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("read {}", path.display()))?;
            println!("{text}");
            eprintln!("report folder: {}", status.report_path);
            Ok(0)
        }
        Command::List { connection } => {
            let services = Services::open(&connection, &cli.log_filter).await?;
            let outcome = list(&services.registry_url).await;
            services.close().await?;
            outcome.map(|()| 0)
        }
        Command::Serve {
            service,
            host,
            connection,
        } => serve(service, host, &connection, &cli.log_filter)
            .await
            .map(|()| 0),
    }
}

fn goal_overrides(args: &RunArgs) -> common::ResearchGoal {
    common::ResearchGoal {
        dataset: args.dataset.clone().unwrap_or_default(),
        target: (args.metric.is_some() || args.target.is_some()).then(|| common::Target {
            metric: args.metric.clone().unwrap_or_default(),
            threshold: args.target.unwrap_or(0.0),
            direction: 0,
        }),
        confidence: args.confidence.unwrap_or(0.0),
        num_seeds: args.num_seeds.unwrap_or(0),
        max_seeds: args.max_seeds.unwrap_or(0),
        budget: Some(common::Budget {
            max_candidates: args.max_candidates.unwrap_or(0),
            max_total_seeds: args.max_total_seeds.unwrap_or(0),
            max_wall_seconds: args.max_minutes.map_or(0, |m| m.saturating_mul(60)),
        }),
        ..Default::default()
    }
}

async fn start_and_follow(services: &mut Services, args: &RunArgs) -> anyhow::Result<u8> {
    let strategy = match args.strategy {
        None => pb::Strategy::Unspecified,
        Some(StrategyArg::Random) => pb::Strategy::Random,
        Some(StrategyArg::Evolution) => pb::Strategy::Evolution,
        Some(StrategyArg::Llm) => pb::Strategy::Llm,
        Some(StrategyArg::Hybrid) => pb::Strategy::Hybrid,
    };
    let request = pb::StartResearchRequest {
        goal_text: args.goal.clone(),
        overrides: Some(goal_overrides(args)),
        strategy: strategy as i32,
        llm: Some(pb::LlmSettings {
            base_url: args.llm_url.clone().unwrap_or_default(),
            model: args.llm_model.clone().unwrap_or_default(),
            ..Default::default()
        }),
        seed: args.seed,
        limits: args
            .timeout_seconds
            .map(|timeout_seconds| common::ResourceLimits {
                timeout_seconds,
                ..Default::default()
            }),
        early_stopping: None,
        max_epochs: args.max_epochs.unwrap_or(0),
    };
    let status = services
        .planner
        .start_research(request)
        .await
        .map_err(|s| refused("StartResearch", &s))?
        .into_inner();
    // On stderr even with --json: the id is what `status`, `report` and `resume` take.
    {
        let goal = status.goal.clone().unwrap_or_default();
        let target = goal.target.clone().unwrap_or_default();
        let budget = goal.budget.unwrap_or_default();
        eprintln!(
            "research {}: {} on {}, {} {} {} at {:.0}% confidence; {} → {} seeds per candidate; budget {} candidates, {} seeds, {} s",
            status.research_id,
            strategy_name(status.strategy),
            goal.dataset,
            target.metric,
            if target.direction == common::Direction::Minimize as i32 {
                "<"
            } else {
                ">"
            },
            target.threshold,
            goal.confidence * 100.0,
            goal.num_seeds,
            goal.max_seeds,
            budget.max_candidates,
            budget.max_total_seeds,
            budget.max_wall_seconds
        );
    }
    let id = status.research_id.clone();
    follow(&mut services.planner, &id, args.json).await
}

/// Follows a session's events to its end; Ctrl-C asks the planner to stop it (resumable).
async fn follow(
    planner: &mut PlannerServiceClient<Channel>,
    research_id: &str,
    json: bool,
) -> anyhow::Result<u8> {
    let mut stream = planner
        .watch_research(pb::WatchResearchRequest {
            research_id: research_id.to_owned(),
            from_position: 0,
        })
        .await
        .map_err(|s| refused("WatchResearch", &s))?
        .into_inner();
    let mut progress = Progress::new(json);
    let mut interrupted = false;
    let finished = loop {
        let event = tokio::select! {
            event = stream.message() => event,
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                progress.note("Ctrl-C: stopping the session (running trials are cancelled; resume later)…");
                let mut stopper = planner.clone();
                let id = research_id.to_owned();
                tokio::spawn(async move {
                    let _ = stopper.stop_research(pb::StopResearchRequest {
                        research_id: id,
                        reason: "interrupted with Ctrl-C".into(),
                    }).await;
                });
                continue;
            }
        };
        match event {
            Ok(Some(event)) => {
                if let Some(pb::research_event::Event::Finished(status)) = event.event {
                    break status;
                }
                progress.show(event);
            }
            Ok(None) => bail!("the planner ended the event stream before the session ended"),
            Err(status) => return Err(refused("WatchResearch", &status)),
        }
    };
    progress.clear();
    print_status(&finished, json)?;
    Ok(exit_code(finished.state()))
}

/// 0: goal achieved; 2: budget spent without it; 3: paused (resumable); 1: failed.
pub fn exit_code(state: pb::ResearchState) -> u8 {
    match state {
        pb::ResearchState::Succeeded => 0,
        pb::ResearchState::Exhausted => 2,
        pb::ResearchState::Paused | pb::ResearchState::Stopping | pb::ResearchState::Running => 3,
        _ => 1,
    }
}

/// Progress bars: one line per candidate, one bar per running seed.
struct Progress {
    bars: MultiProgress,
    /// Bars on a terminal; plain lines otherwise (logs, pipes); nothing with --json.
    terminal: bool,
    quiet: bool,
    seeds: HashMap<(String, u64), ProgressBar>,
    names: HashMap<String, (String, u32)>,
    current: String,
    metric: String,
    style: ProgressStyle,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        let bars = MultiProgress::new();
        let terminal = std::io::stderr().is_terminal();
        if quiet || !terminal {
            bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        Self {
            bars,
            terminal,
            quiet,
            seeds: HashMap::new(),
            names: HashMap::new(),
            current: String::new(),
            metric: String::new(),
            style: ProgressStyle::with_template(
                "  {prefix:>22} [{bar:25}] epoch {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        }
    }

    fn note(&self, line: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        if self.terminal {
            let _ = self.bars.println(line.as_ref());
        } else {
            eprintln!("{}", line.as_ref());
        }
    }

    fn show(&mut self, event: pb::ResearchEvent) {
        use pb::research_event::Event;
        match event.event {
            Some(Event::GoalParsed(goal)) => {
                self.metric = goal.target.map(|t| t.metric).unwrap_or_default();
            }
            Some(Event::CandidateProposed(proposed)) => {
                let model = proposed.model.unwrap_or_default();
                let epochs = proposed.train.map_or(0, |t| t.epochs);
                self.names
                    .insert(proposed.candidate_id.clone(), (model.name.clone(), epochs));
                self.current = proposed.candidate_id;
                self.note(format!(
                    "▶ {} ({}): {}",
                    model.name,
                    strategy_name(proposed.strategy),
                    first_line(&proposed.rationale, 160)
                ));
            }
            Some(Event::CandidateRejected(rejected)) => {
                self.note(format!(
                    "  ✗ rejected: {}",
                    first_line(&rejected.reason, 200)
                ));
            }
            Some(Event::Evaluation(evaluation)) => self.evaluation(evaluation),
            Some(Event::Decision(decision)) => {
                if decision.action != "continue" {
                    self.note(format!(
                        "  ◆ {}: {}",
                        decision.action,
                        first_line(&decision.reasoning, 200)
                    ));
                }
            }
            Some(Event::Finished(_)) | None => {}
        }
    }

    fn evaluation(&mut self, event: ev::EvaluateEvent) {
        use ev::evaluate_event::Event;
        let candidate = self.current.clone();
        let (name, epochs) = self
            .names
            .get(&candidate)
            .cloned()
            .unwrap_or_else(|| (candidate.clone(), 0));
        match event.event {
            Some(Event::SeedStarted(started)) => {
                let bar = self.bars.add(ProgressBar::new(u64::from(epochs)));
                bar.set_style(self.style.clone());
                bar.set_prefix(format!("{} seed {}", short(&name, 14), started.seed));
                bar.enable_steady_tick(Duration::from_millis(250));
                self.seeds.insert((candidate, started.seed), bar);
            }
            Some(Event::SeedEpoch(epoch)) => {
                if let Some(bar) = self.seeds.get(&(candidate, epoch.seed)) {
                    bar.set_position(epoch.epoch);
                    if let Some(value) = epoch.metrics.get(&self.metric) {
                        bar.set_message(format!("{} {value:.4}", self.metric));
                    }
                }
            }
            Some(Event::SeedFinished(finished)) => {
                if let Some(bar) = self.seeds.remove(&(candidate, finished.seed)) {
                    bar.finish_and_clear();
                }
                let state = common::TrialState::try_from(finished.state)
                    .map(|s| {
                        s.as_str_name()
                            .trim_start_matches("TRIAL_STATE_")
                            .to_lowercase()
                    })
                    .unwrap_or_default();
                let value = finished
                    .final_metrics
                    .get(&self.metric)
                    .map(|v| format!(" {} {v:.4}", self.metric))
                    .unwrap_or_default();
                let wall = finished.usage.map(|u| u.wall_seconds).unwrap_or(0.0);
                self.note(format!(
                    "    seed {}: {state}{value} ({wall:.1} s){}",
                    finished.seed,
                    if finished.message.is_empty() {
                        String::new()
                    } else {
                        format!(" — {}", first_line(&finished.message, 120))
                    }
                ));
            }
            Some(Event::Result(result)) => {
                let a = result.aggregate.unwrap_or_default();
                self.note(format!(
                    "  = {}: {} mean {:.4} over {} seeds, CI [{:.4}, {:.4}], p = {:.4}: {}",
                    name,
                    a.metric,
                    a.mean,
                    a.n,
                    a.ci_low,
                    a.ci_high,
                    result.p_value,
                    decision_name(result.decision)
                ));
            }
            None => {}
        }
    }

    fn clear(&self) {
        for bar in self.seeds.values() {
            bar.finish_and_clear();
        }
        let _ = self.bars.clear();
    }
}

fn short(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}

fn first_line(text: &str, limit: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > limit {
        format!("{}…", short(line, limit))
    } else {
        line.to_owned()
    }
}

pub fn strategy_name(strategy: i32) -> &'static str {
    match pb::Strategy::try_from(strategy).unwrap_or_default() {
        pb::Strategy::Random => "random",
        pb::Strategy::Evolution => "evolution",
        pb::Strategy::Llm => "llm",
        pb::Strategy::Hybrid => "hybrid",
        pb::Strategy::Unspecified => "default",
    }
}

pub fn state_name(state: i32) -> &'static str {
    match pb::ResearchState::try_from(state).unwrap_or_default() {
        pb::ResearchState::Running => "RUNNING",
        pb::ResearchState::Stopping => "STOPPING",
        pb::ResearchState::Paused => "PAUSED",
        pb::ResearchState::Succeeded => "SUCCEEDED",
        pb::ResearchState::Exhausted => "EXHAUSTED",
        pb::ResearchState::Failed => "FAILED",
        pb::ResearchState::Cancelled => "CANCELLED",
        pb::ResearchState::Unspecified => "UNKNOWN",
    }
}

fn decision_name(decision: i32) -> &'static str {
    planner_svc::report::decision_name(decision)
}

fn cell(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.4}")
    } else {
        "–".into()
    }
}

fn number(value: f64) -> serde_json::Value {
    serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// The status as JSON (NaN as null).
pub fn status_json(status: &pb::ResearchStatus) -> serde_json::Value {
    let goal = status.goal.clone().unwrap_or_default();
    let target = goal.target.clone().unwrap_or_default();
    serde_json::json!({
        "research_id": status.research_id,
        "state": state_name(status.state),
        "strategy": strategy_name(status.strategy),
        "dataset": goal.dataset,
        "metric": target.metric,
        "threshold": number(target.threshold),
        "confidence": number(goal.confidence),
        "candidates_evaluated": status.candidates_evaluated,
        "seeds_used": status.seeds_used,
        "elapsed_seconds": number(status.elapsed_seconds),
        "message": status.message,
        "report_path": status.report_path,
        "leaderboard": status.leaderboard.iter().map(|e| {
            let a = e.aggregate.clone().unwrap_or_default();
            serde_json::json!({
                "rank": e.rank,
                "candidate_id": e.candidate_id,
                "name": e.name,
                "n": a.n,
                "mean": number(a.mean),
                "ci_low": number(a.ci_low),
                "ci_high": number(a.ci_high),
                "p_value": number(e.p_value),
                "adjusted_p_value": number(e.adjusted_p_value),
                "decision": decision_name(e.decision),
            })
        }).collect::<Vec<_>>(),
    })
}

fn print_status(status: &pb::ResearchStatus, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&status_json(status))?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "rank",
        "candidate",
        "n",
        "mean",
        "CI low",
        "CI high",
        "p",
        "Holm p",
        "decision",
    ]);
    for entry in &status.leaderboard {
        let a = entry.aggregate.clone().unwrap_or_default();
        let stat = |value: f64| {
            if a.n == 0 {
                "–".to_owned()
            } else {
                cell(value)
            }
        };
        table.add_row([
            entry.rank.to_string(),
            entry.name.clone(),
            a.n.to_string(),
            stat(a.mean),
            stat(a.ci_low),
            stat(a.ci_high),
            cell(entry.p_value),
            cell(entry.adjusted_p_value),
            decision_name(entry.decision).to_owned(),
        ]);
    }
    println!("{table}");
    println!(
        "research {}: {} — {}",
        status.research_id,
        state_name(status.state),
        status.message
    );
    println!(
        "{} candidates evaluated, {} seeds, {:.1} s",
        status.candidates_evaluated, status.seeds_used, status.elapsed_seconds
    );
    if !status.report_path.is_empty() {
        println!("report: {}/report.md", status.report_path);
    }
    Ok(())
}

async fn list(registry_url: &str) -> anyhow::Result<()> {
    let mut client = RegistryServiceClient::connect(registry_url.to_owned())
        .await
        .with_context(|| format!("connect to registry-svc at {registry_url}"))?;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "research id",
        "status",
        "dataset",
        "goal",
        "created",
    ]);
    let mut page_token = String::new();
    let mut count = 0;
    loop {
        let page = client
            .list_experiments(reg::ListExperimentsRequest {
                status: 0,
                page_size: 500,
                page_token,
            })
            .await
            .map_err(|s| refused("ListExperiments", &s))?
            .into_inner();
        for experiment in &page.experiments {
            count += 1;
            let goal = experiment.goal.clone().unwrap_or_default();
            table.add_row([
                experiment.id.clone(),
                format!("{:?}", experiment.status()).to_uppercase(),
                goal.dataset,
                first_line(&goal.text, 60),
                experiment
                    .created_at
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ]);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    println!("{table}");
    println!("{count} experiments");
    Ok(())
}

async fn serve(
    service: ServiceName,
    host: IpAddr,
    connection: &Connection,
    log_filter: &str,
) -> anyhow::Result<()> {
    let args = ra_serve::ServiceArgs {
        listen: None,
        config: connection.config.clone(),
        log_format: None,
        log_filter: Some(log_filter.to_owned()),
    };
    // A configuration file says where to listen; otherwise the conventional port on `host`.
    let has_config = args.config.is_some();
    let listen = |port: u16| (!has_config).then(|| std::net::SocketAddr::new(host, port));
    // One service as its own binary would serve it, on its conventional port.
    macro_rules! serve {
        ($name:literal, $service:ident, $config:ident) => {
            Ok(ra_serve::serve_binary(
                $name,
                $service::$config::default(),
                &ra_serve::ServiceArgs {
                    listen: listen($service::config::DEFAULT_PORT),
                    ..args
                },
                |c, l, s| async move { $service::run(&c, l, s).await },
            )
            .await?)
        };
    }
    match service {
        ServiceName::All => {
            let stack = Stack::start(&StackOptions {
                conventional_ports: Some(host),
                ..connection.stack_options(log_filter)
            })
            .await?;
            eprintln!(
                "serving: planner {} evaluator {} sandbox {} dataset {} registry {} (Ctrl-C stops)",
                stack.planner_url(),
                stack.evaluator_url(),
                stack.sandbox_url(),
                stack.dataset_url(),
                stack.registry_url()
            );
            ra_serve::shutdown_signal().await;
            stack.stop().await
        }
        ServiceName::Planner => serve!("planner-svc", planner_svc, PlannerConfig),
        ServiceName::Evaluator => serve!("evaluator-svc", evaluator_svc, EvaluatorConfig),
        ServiceName::Sandbox => serve!("sandbox-svc", sandbox_svc, SandboxConfig),
        ServiceName::Dataset => serve!("dataset-svc", dataset_svc, DatasetConfig),
        ServiceName::Registry => serve!("registry-svc", registry_svc, RegistryConfig),
    }
}
