//! `research-agent`'s command line: the subcommands, the connection (embedded or remote), the
//! run flags, and the goal fields they override.

use super::*;

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
    /// The dataset-svc that --planner's sessions read from: your own files (`csv:…`, a path in
    /// the goal) are uploaded to it first.
    #[arg(long, value_name = "URL", default_value = ra_client::ports::LOCAL_DATASET)]
    pub dataset_service: String,
    /// A running registry-svc (for `list` with --planner).
    #[arg(long, value_name = "URL", default_value = ra_client::ports::LOCAL_REGISTRY)]
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
    /// CA that signs the certificates of `https://` services (with --planner).
    #[arg(long, value_name = "FILE", env = "RA_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key for services that identify callers by certificate.
    #[arg(long, value_name = "FILE", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// File holding the bearer token sent to the services (also `RA_TOKEN_FILE`).
    #[arg(long, value_name = "FILE", env = "RA_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl Connection {
    /// The credentials these flags name (none: plaintext, no token).
    pub(super) fn credentials(&self) -> anyhow::Result<ra_client::Credentials> {
        let settings = ra_client::ClientSettings {
            ca_file: self.ca_file.clone().unwrap_or_default(),
            cert_file: self.cert_file.clone().unwrap_or_default(),
            key_file: self.key_file.clone().unwrap_or_default(),
            token_file: self.token_file.clone().unwrap_or_default(),
        };
        ra_client::Credentials::from_settings(&settings, "--ca-file/--cert-file/--token-file")
            .map_err(anyhow::Error::msg)
    }

    /// The embedded stack's options from these flags and the process environment.
    pub(super) fn stack_options(&self, log_filter: &str) -> StackOptions {
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
    /// Dataset (overrides the goal's words): a catalog name, or your own files: csv:PATH,
    /// tsv:PATH, parquet:PATH (label column: #label=NAME), images:DIR (a folder per class;
    /// #size=32), text:PATH (TSV/CSV/JSONL; #text=COLUMN,label=COLUMN).
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
    /// Seconds to wait for the LLM's first token and between tokens (`[planner.llm]
    /// timeout_seconds`, 60); small local models on a CPU need several minutes.
    #[arg(long, value_name = "SECONDS", env = "RA_LLM_TIMEOUT")]
    pub llm_timeout: Option<u32>,
    /// LLM turns in a row without an answer before falling back to evolution for good
    /// (`[planner.llm] strikes`, 3).
    #[arg(long, value_name = "N")]
    pub llm_strikes: Option<u32>,
    /// The prompt: full, or compact for small local models (`[planner.llm] prompt`).
    #[arg(long, value_parser = ["full", "compact"])]
    pub llm_prompt: Option<String>,
    /// Seed of the strategy's randomness.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most epochs a proposed candidate may train (the planner's default otherwise).
    #[arg(long)]
    pub max_epochs: Option<u32>,
    /// Per-job timeout in seconds.
    #[arg(long)]
    pub timeout_seconds: Option<u64>,
    /// Training device of every candidate: auto (the fastest the sandbox has), libtorch-cuda,
    /// cuda, libtorch or flex; the evaluator's default (`[evaluator] device`, flex) otherwise.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(ra_spec::device::CHOICES))]
    pub device: Option<String>,
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
    Dashboard,
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
    /// The sessions of a state folder in the browser (read-only), until Ctrl-C.
    Dashboard {
        /// Address the dashboard binds (port 50056).
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        #[command(flatten)]
        connection: Connection,
    },
    /// Export a session's records: TensorBoard event files (one run per trial, with the
    /// HParams tab comparing candidates) and/or the JSON document of every record.
    Export {
        research_id: String,
        /// Folder for the TensorBoard event files (`tensorboard --logdir DIR`).
        #[arg(long, value_name = "DIR", required_unless_present = "json")]
        tensorboard: Option<PathBuf>,
        /// File for every record as one JSON document.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
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
    /// Queue your own candidate in a running session (it is evaluated next, validated like
    /// any proposal, and recorded as proposed by you).
    Inject {
        research_id: String,
        /// JSON file: {"model": ModelSpec, "train": TrainSpec} (the README shows one).
        #[arg(long, value_name = "FILE")]
        spec: PathBuf,
        /// Why, recorded as the candidate's rationale.
        #[arg(long, default_value = "")]
        rationale: String,
        /// Your name for the record (default: $USER).
        #[arg(long, value_name = "NAME", env = "USER")]
        by: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Change a running session's budget (recorded; kept when it is resumed).
    Budget {
        research_id: String,
        #[arg(long)]
        max_candidates: Option<u32>,
        #[arg(long)]
        max_total_seeds: Option<u32>,
        #[arg(long)]
        max_minutes: Option<u64>,
        /// Your name for the record (default: $USER).
        #[arg(long, value_name = "NAME", env = "USER")]
        by: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Pause a running session (its running trials are cancelled; `resume` continues it).
    Pause {
        research_id: String,
        #[arg(long, default_value = "paused from the command line")]
        reason: String,
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent_and_run_flags_become_goal_fields() {
        Cli::command().debug_assert();
        for arg in StrategyArg::value_variants() {
            let name = arg.to_possible_value().map(|v| v.get_name().to_owned());
            assert!(
                name.as_deref()
                    .and_then(ra_client::strategy::from_name)
                    .is_some(),
                "--strategy {name:?} is a strategy the contract knows"
            );
        }
        let cli = Cli::try_parse_from([
            "research-agent",
            "run",
            "--offline",
            "--max-minutes",
            "3",
            "--seed",
            "4",
            "--goal",
            "a model for synthetic-text with at least 90% accuracy",
        ])
        .expect("the README's command parses");
        let Command::Run(args) = cli.command else {
            panic!("not run: {:?}", cli.command);
        };
        assert!(args.connection.offline);
        let goal = super::super::commands::goal_overrides(&args);
        assert_eq!(goal.budget.map(|b| b.max_wall_seconds), Some(180));
        assert_eq!(goal.target, None, "the goal text decides the target");
        let refused = Cli::try_parse_from(["research-agent", "run", "--max-minutes", "soon"]);
        assert!(refused.is_err());
    }
}
