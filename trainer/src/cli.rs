//! The `ra-trainer` command line: train a model spec on a prepared dataset and print the metrics
//! protocol, validate a spec and print its per-layer table, or benchmark against PyTorch. The
//! `ra-trainer` binary and the multi-call `research-agent` (which the sandbox mounts as its
//! trainer) both enter here through [`main_with_args`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::backend::{Backend, set_threads};
use crate::metrics::EpochRecord;
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
    Train {
        /// JSON file with {"model": ModelSpec, "train": TrainSpec}.
        #[arg(long)]
        spec: PathBuf,
        /// Prepared dataset directory (manifest.json + safetensors splits).
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Directory for weights.safetensors and model.json.
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
    },
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

fn run_train(
    spec: PathBuf,
    data: PathBuf,
    seed: u64,
    output: Option<PathBuf>,
    backend: Backend,
    verify_checksums: bool,
) -> anyhow::Result<()> {
    let spec = read_spec_file(&spec)?;
    let verify = if verify_checksums {
        Verify::Checksums
    } else {
        Verify::Sizes
    };
    let dataset = PreparedDataset::open(&data, verify)?;
    let config = RunConfig {
        model: spec.model,
        train: spec.train,
        seed,
        device: backend.device()?,
        output,
    };
    let outcome = train(&dataset, &config, &mut StdoutReporter)?;
    print_record(&outcome.final_record);
    Ok(())
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
    let outcome = match cli.command {
        Command::Train {
            spec,
            data,
            seed,
            output,
            threads,
            backend,
            verify_checksums,
        } => {
            set_threads(threads);
            run_train(spec, data, seed, output, backend, verify_checksums).map(|()| true)
        }
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
