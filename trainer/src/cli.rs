//! The `ra-trainer` command line: train a model spec on a prepared dataset and print the metrics
//! protocol, validate a spec and print its per-layer table, or benchmark against PyTorch. The
//! `ra-trainer` binary and the multi-call `research-agent` (which the sandbox mounts as its
//! trainer) both enter here through [`main_with_args`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::backend::{Backend, set_threads};
use crate::metrics::{EpochRecord, FinalRecord};
use crate::seeds::{ThreadSplit, train_seeds};
use crate::{Reporter, RunConfig, train};
use anyhow::Context;
use clap::{Parser, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL};
use ra_prepared::{PreparedDataset, Verify};
use ra_spec::{Budget, ModelSpec, TrainSpec, validate_model};
use serde::Deserialize;

/// Train models described as data (ModelSpec + TrainSpec) with Burn.
#[derive(Debug, Parser)]
#[command(name = "ra-trainer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train and print one JSON record per epoch, then a final record, on stdout.
    Train(TrainArgs),
    /// Training throughput of the reference CNN and MLP against PyTorch, in one run.
    Bench(crate::bench::BenchOptions),
    /// The training devices this trainer knows, fastest first, as JSON lines: each with whether
    /// it can run on this machine and, when not, what is missing.
    Devices,
    /// Validate a spec and print the per-layer shapes, parameters, FLOPs and memory.
    Validate {
        /// JSON file with {"model": …, "train": …}, or a bare ModelSpec.
        #[arg(long)]
        spec: PathBuf,
    },
}

/// The spec file: a model and how to train it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    model: ModelSpec,
    train: TrainSpec,
}

/// Prints records as JSON lines on stdout and log lines on stderr.
struct StdoutReporter;

impl Reporter for StdoutReporter {
    fn epoch(&mut self, record: &EpochRecord) {
        print_record(record);
    }

    fn log(&mut self, line: &str) {
        eprintln!("{line}");
    }
}

/// A record with the seed it belongs to (runs of several seeds in one process).
#[derive(serde::Serialize)]
struct Seeded<'a, R: serde::Serialize> {
    #[serde(flatten)]
    record: &'a R,
    seed: u64,
}

/// Prints one seed's records, tagged with it, and its log lines prefixed with it.
struct SeedReporter {
    seed: u64,
}

impl SeedReporter {
    fn print(&self, record: &impl serde::Serialize) {
        print_record(&Seeded {
            record,
            seed: self.seed,
        });
    }
}

impl Reporter for SeedReporter {
    fn epoch(&mut self, record: &EpochRecord) {
        self.print(record);
    }

    fn log(&mut self, line: &str) {
        eprintln!("[seed {}] {line}", self.seed);
    }

    fn finished(&mut self, record: &FinalRecord) {
        self.print(record);
    }

    fn failed(&mut self, error: &crate::TrainError) {
        eprintln!("[seed {}] failed: {error}", self.seed);
        print_record(&serde_json::json!({
            "event": "seed_failed",
            "seed": self.seed,
            "error": error.to_string(),
        }));
    }
}

fn print_record(record: &impl serde::Serialize) {
    if let Ok(line) = serde_json::to_string(record) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }
}

fn read_spec_file(path: &PathBuf) -> anyhow::Result<SpecFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a {{\"model\": …, \"train\": …}} spec",
            path.display()
        )
    })
}

/// What `train` is asked.
#[derive(Debug, clap::Args)]
struct TrainArgs {
    /// JSON file with {"model": ModelSpec, "train": TrainSpec}.
    #[arg(long)]
    spec: PathBuf,
    /// Prepared dataset directory (manifest.json + safetensors splits).
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Several seeds at once in this process (comma-separated): the dataset opened once,
    /// the cores split between them; every record carries its "seed", a seed that fails
    /// prints {"event":"seed_failed","seed":N,"error":…} and the others go on.
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with = "seed")]
    seeds: Vec<u64>,
    /// Directory for weights.safetensors and model.json (with --seeds: OUTPUT/seed-N/).
    #[arg(long)]
    output: Option<PathBuf>,
    /// CPU threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    backend: Backend,
    /// Check every file's sha256 before training.
    #[arg(long)]
    verify_checksums: bool,
}

fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    let spec = read_spec_file(&args.spec)?;
    let verify = if args.verify_checksums {
        Verify::Checksums
    } else {
        Verify::Sizes
    };
    let split = (!args.seeds.is_empty()).then(|| {
        let cores = match args.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads => threads,
        };
        ThreadSplit::new(cores, args.seeds.len())
    });
    // Before any tensor work: the global pools (LibTorch's is process-wide) at one seed's share.
    set_threads(split.as_ref().map_or(args.threads, ThreadSplit::per_seed));
    let dataset = PreparedDataset::open(&args.data, verify)?;
    let config = RunConfig {
        model: spec.model,
        train: spec.train,
        seed: args.seed,
        device: args.backend.device()?,
        output: args.output,
    };
    let Some(split) = split else {
        let outcome = train(&dataset, &config, &mut StdoutReporter)?;
        print_record(&outcome.final_record);
        return Ok(());
    };
    let reporter_for = |seed| Box::new(SeedReporter { seed }) as Box<dyn Reporter + Send>;
    let outcomes = train_seeds(&dataset, &config, &args.seeds, &split, &reporter_for);
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|(_, outcome)| outcome.is_err())
        .map(|(seed, _)| seed.to_string())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {} seeds failed: {}",
            failed.len(),
            outcomes.len(),
            failed.join(", ")
        )
    }
}

fn run_validate(path: PathBuf) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let (model, train) = match serde_json::from_str::<SpecFile>(&text) {
        Ok(file) => (file.model, Some(file.train)),
        Err(_) => (
            ModelSpec::from_json(&text)
                .with_context(|| format!("{} is not a model spec", path.display()))?,
            None,
        ),
    };
    if let Some(train) = &train
        && let Err(error) = train.validate()
    {
        eprintln!("refused: {error}");
        return Ok(false);
    }
    match validate_model(&model, &Budget::default()) {
        Ok(report) => {
            let mut table = Table::new();
            table.load_preset(UTF8_FULL).set_header([
                "layer",
                "type",
                "output",
                "parameters",
                "FLOPs",
                "activations (bytes)",
            ]);
            for layer in &report.layers {
                table.add_row([
                    layer.index.clone(),
                    layer.kind.to_owned(),
                    layer.output_shape.to_string(),
                    layer.parameters.to_string(),
                    layer.flops.to_string(),
                    layer.activation_bytes.to_string(),
                ]);
            }
            println!("{table}");
            println!(
                "total: {} parameters, {} FLOPs per sample, {} bytes of activations per sample",
                report.parameters, report.flops_per_sample, report.activation_bytes_per_sample
            );
            Ok(true)
        }
        Err(error) => {
            eprintln!("refused: {error}");
            Ok(false)
        }
    }
}

fn run_bench(options: &crate::bench::BenchOptions) -> anyhow::Result<()> {
    let report = crate::bench::run(options)?;
    println!("{report}");
    Ok(())
}

/// Runs the trainer's command line on `args` (the program name first) and returns its exit code:
/// 0 done, 2 a spec refused by `validate`, 1 an error (printed on stderr).
pub fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    if matches!(cli.command, Command::Train(_) | Command::Bench(_)) {
        crate::backend::keep_freed_memory();
    }
    let outcome = match cli.command {
        Command::Train(args) => run_train(args).map(|()| true),
        Command::Validate { spec } => run_validate(spec),
        Command::Devices => {
            for report in crate::backend::device_reports() {
                print_record(&report);
            }
            Ok(true)
        }
        Command::Bench(options) => {
            set_threads(options.threads);
            run_bench(&options).map(|()| true)
        }
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(error) => {
            eprintln!("ra-trainer: {error:#}");
            ExitCode::FAILURE
        }
    }
}
