//! Benchmark (not a test): the evaluator's reference workloads end to end — Evaluate over gRPC
//! through the embedded stack and the process sandbox — against the same ra-trainer runs called
//! directly (same seeds, same thread count, the same number at once), interleaved in one run,
//! and against PyTorch in-process (`bench/torch_reference.py --evaluate`: the same model, batch,
//! optimizer, epochs and splits, 2 threads) measured in the same run.
//!
//! (a) one seed on 64 synthetic `shapes` images; (b) three seeds of (a); (c) two seeds on 300
//! CIFAR-10 images (the subset in `../shared/data`); each with the trainer issue's reference
//! CNN (adapted to the input) for one epoch, batch 64, Adam. Target: Evaluate ≤ 1.5× PyTorch.
//!
//! `cargo run --release -p ra-bench --bin evaluator-bench -- --data ../shared/data` (as root, for
//! the sandbox's namespaces and cgroups); `--python` names a Python with torch and safetensors
//! (default `$RA_PYTHON`, else `python3`); `--json` prints the medians as one JSON object
//! after the table; `--device libtorch` with a `tch` build (`--features ra-cli/tch`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use comfy_table::{Table, presets::UTF8_FULL};
use ra_cli::{Stack, StackOptions};
use ra_proto::common::v1 as common;
use ra_proto::dataset::v1 as ds;
use ra_proto::dataset::v1::dataset_service_client::DatasetServiceClient;
use ra_proto::evaluator::v1 as pb;
use ra_proto::evaluator::v1::evaluator_service_client::EvaluatorServiceClient;
use ra_spec::examples::reference_cnn;
use ra_spec::{InputSpec, ModelSpec, TrainSpec};
use tokio::task::JoinSet;

#[derive(Debug, Parser)]
#[command(
    about = "evaluator-svc: reference workloads through gRPC and the sandbox vs direct ra-trainer runs"
)]
struct Args {
    /// Folder of the real datasets (holds cifar10_subset/).
    #[arg(long, env = "RA_TEST_DATA", default_value = "../shared/data")]
    data: PathBuf,
    /// Interleaved repeats of every workload.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Sandbox jobs (and direct runs) at once.
    #[arg(long, default_value_t = 2)]
    parallel: u32,
    /// Training device of every run: flex, or libtorch in a `tch` build.
    #[arg(long, default_value = "flex", value_parser = ["flex", "libtorch"])]
    device: String,
    /// Python with torch and safetensors for the PyTorch baseline.
    #[arg(long, env = "RA_PYTHON", default_value = "python3")]
    python: String,
    /// The PyTorch reference script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/torch_reference.py"))]
    torch_script: PathBuf,
    /// Threads of the PyTorch baseline (the sandbox's trainers share the machine's cores).
    #[arg(long, default_value_t = 2)]
    torch_threads: u32,
    /// Seeds of one candidate trained in one sandbox job (`evaluator.seeds_per_job`); 1: a job
    /// per seed, as before.
    #[arg(long, default_value_t = 8)]
    seeds_per_job: u32,
    /// Also print the medians (seconds) of every row, ours and PyTorch's, as one JSON object.
    #[arg(long)]
    json: bool,
}

/// The batch size of every workload, ours and PyTorch's.
const BATCH: u32 = 64;

fn one_epoch() -> TrainSpec {
    TrainSpec {
        epochs: 1,
        batch_size: BATCH,
        ..TrainSpec::default()
    }
}

struct Workload {
    name: &'static str,
    seeds: u64,
    manifest: ds::Manifest,
}

/// PyTorch's figures for one workload, or why there are none.
struct TorchTimes {
    seconds: Result<Vec<f64>, String>,
    version: Option<String>,
}

/// The workload in PyTorch in-process (`torch_reference.py --evaluate`), `repeats` times.
fn torch_times(args: &Args, workload: &Workload) -> TorchTimes {
    let output = std::process::Command::new(&args.python)
        .arg(&args.torch_script)
        .arg("--evaluate")
        .arg(&workload.manifest.path)
        .args(["--seeds", &workload.seeds.to_string()])
        .args(["--batch", &BATCH.to_string(), "--epochs", "1"])
        .args(["--threads", &args.torch_threads.to_string()])
        .args(["--repeats", &args.repeats.max(1).to_string()])
        .output();
    let parsed = output
        .map_err(|error| format!("cannot run {}: {error}", args.python))
        .and_then(|output| {
            if output.status.success() {
                serde_json::from_slice::<serde_json::Value>(&output.stdout)
                    .map_err(|error| format!("unreadable answer: {error}"))
            } else {
                let stderr = String::from_utf8_lossy(&output.stderr);
                Err(stderr.lines().last().unwrap_or("failed").to_owned())
            }
        });
    match parsed {
        Ok(value) => TorchTimes {
            seconds: value["seconds"]
                .as_array()
                .map(|values| {
                    values
                        .iter()
                        .filter_map(serde_json::Value::as_f64)
                        .collect()
                })
                .filter(|values: &Vec<f64>| !values.is_empty())
                .ok_or_else(|| "no seconds in the answer".to_owned()),
            version: value["torch"].as_str().map(str::to_owned),
        },
        Err(reason) => TorchTimes {
            seconds: Err(reason),
            version: None,
        },
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn span(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.3} – {max:.3}")
}

fn model_for(manifest: &ds::Manifest) -> anyhow::Result<ModelSpec> {
    let input = InputSpec::try_from(manifest.input.as_ref().context("manifest without input")?)?;
    Ok(reference_cnn(input, manifest.class_names.len() as u32))
}

/// The seeds of a workload run directly, `parallel` at once, as the sandbox would run them.
/// The workload's seeds as the evaluator groups them into jobs (`per_job` to one process).
fn seed_groups(workload: &Workload, per_job: u32) -> Vec<Vec<u64>> {
    let seeds: Vec<u64> = (0..workload.seeds).collect();
    seeds
        .chunks(per_job.max(1) as usize)
        .map(<[u64]>::to_vec)
        .collect()
}

async fn direct(
    workload: &Workload,
    spec_file: &Path,
    (parallel, per_job): (u32, u32),
    threads: u32,
    backend: &str,
) -> anyhow::Result<f64> {
    let trainer = sandbox_svc::process::init::locate_binary("ra-trainer")
        .context("ra-trainer is not built")?;
    let began = Instant::now();
    let mut pending = seed_groups(workload, per_job);
    let mut running = JoinSet::new();
    while !pending.is_empty() || !running.is_empty() {
        while running.len() < parallel as usize
            && let Some(group) = pending.pop()
        {
            let seeds: Vec<String> = group.iter().map(u64::to_string).collect();
            let seed_args = match seeds.as_slice() {
                [one] => ["--seed".to_owned(), one.clone()],
                several => ["--seeds".to_owned(), several.join(",")],
            };
            let mut command = tokio::process::Command::new(&trainer);
            command
                .arg0(sandbox_svc::multicall::TRAINER)
                .args(["train", "--spec"])
                .arg(spec_file)
                .arg("--data")
                .arg(&workload.manifest.path)
                .args(seed_args)
                .args(["--threads", &threads.to_string(), "--backend", backend])
                .env_clear()
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .env("LANG", "C.UTF-8")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            running.spawn(async move { command.status().await });
        }
        if let Some(joined) = running.join_next().await {
            let status = joined??;
            if !status.success() {
                bail!("ra-trainer failed: {status}");
            }
        }
    }
    Ok(began.elapsed().as_secs_f64())
}

async fn through_evaluator(
    client: &mut EvaluatorServiceClient<tonic::transport::Channel>,
    workload: &Workload,
    base_seed: u64,
    device: &str,
) -> anyhow::Result<f64> {
    let model = model_for(&workload.manifest)?;
    let began = Instant::now();
    let mut stream = client
        .evaluate(pb::EvaluateRequest {
            model: Some(common::ModelSpec::from(&model)),
            train: Some(common::TrainSpec::from(&one_epoch())),
            dataset: Some(pb::evaluate_request::Dataset::PreparedDatasetId(
                workload.manifest.prepared_id.clone(),
            )),
            seeds: Some(pb::evaluate_request::Seeds::SeedCount(pb::SeedCount {
                count: workload.seeds as u32,
                base_seed,
            })),
            target: Some(common::Target {
                metric: "val_accuracy".into(),
                threshold: 0.5,
                direction: 0,
                open_ended: false,
            }),
            device: device.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut marks = Vec::new();
    while let Some(event) = stream.message().await? {
        let name = match &event.event {
            Some(pb::evaluate_event::Event::SeedStarted(_)) => "started",
            Some(pb::evaluate_event::Event::SeedEpoch(_)) => "epoch",
            Some(pb::evaluate_event::Event::SeedFinished(_)) => "finished",
            _ => "result",
        };
        marks.push(format!(
            "{name} {:.0} ms",
            began.elapsed().as_secs_f64() * 1e3
        ));
        if let Some(pb::evaluate_event::Event::Result(result)) = event.event {
            anyhow::ensure!(
                result.failed_seeds == 0,
                "seeds failed: {}",
                result.explanation
            );
            if std::env::var_os("RA_BENCH_TRACE").is_some() {
                eprintln!("  {}", marks.join(", "));
            }
            return Ok(began.elapsed().as_secs_f64());
        }
    }
    bail!("no result")
}

async fn prepare(
    client: &mut DatasetServiceClient<tonic::transport::Channel>,
    request: ds::PrepareDatasetRequest,
) -> anyhow::Result<ds::Manifest> {
    let mut stream = client.prepare_dataset(request).await?.into_inner();
    while let Some(event) = stream.message().await? {
        if let Some(ds::prepare_dataset_event::Event::Manifest(manifest)) = event.event {
            return Ok(manifest);
        }
    }
    bail!("no manifest")
}

fn main() -> std::process::ExitCode {
    ra_cli::multicall::main(evaluator_bench)
}

#[tokio::main]
async fn evaluator_bench() -> anyhow::Result<()> {
    let args = Args::parse();
    let cifar = args.data.join("cifar10_subset");
    anyhow::ensure!(
        cifar.is_dir(),
        "{} is missing (give --data)",
        cifar.display()
    );
    let root = tempfile::tempdir()?;
    let stack = Stack::start(&StackOptions {
        root: root.path().to_path_buf(),
        data_dir: Some(args.data.clone()),
        offline: true,
        max_concurrent_jobs: args.parallel,
        docker: false,
        log_filter: "warn".into(),
        environment: vec![(
            "RA_EVALUATOR__SEEDS_PER_JOB".into(),
            args.seeds_per_job.to_string(),
        )],
        ..StackOptions::default()
    })
    .await?;
    let mut datasets = DatasetServiceClient::connect(stack.dataset_url()).await?;
    let synthetic = prepare(
        &mut datasets,
        ds::PrepareDatasetRequest {
            name: "shapes".into(),
            options: Some(ds::PrepareOptions {
                synthetic: Some(ds::SyntheticOptions {
                    num_samples: 64,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        },
    )
    .await?;
    // The CIFAR-10 subset holds batch files, not the release tarball: prepare it from them
    // straight into the stack's cache, which the sandbox reads.
    let raw = dataset_svc::sources::cifar10(&cifar, &["data_batch_1_first2000.bin"], &[])?;
    let options = dataset_svc::PrepareOptions {
        subset_size: Some(300),
        ..Default::default()
    };
    let prepared = dataset_svc::prepare(&raw, &options, &root.path().join("datasets"))?;
    let cifar_manifest = datasets
        .get_prepared(ds::GetPreparedRequest {
            prepared_id: prepared.manifest().prepared_id.clone(),
        })
        .await?
        .into_inner();
    let workloads = [
        Workload {
            name: "(a) 1 seed, 64 synthetic images",
            seeds: 1,
            manifest: synthetic.clone(),
        },
        Workload {
            name: "(b) 3 seeds, 64 synthetic images",
            seeds: 3,
            manifest: synthetic,
        },
        Workload {
            name: "(c) 2 seeds, 300 CIFAR-10 images",
            seeds: 2,
            manifest: cifar_manifest,
        },
    ];
    let specs = tempfile::tempdir()?;
    let mut evaluator = EvaluatorServiceClient::connect(stack.evaluator_url()).await?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    // As the sandbox splits the cores between the jobs that run at once.
    let threads_for = |workload: &Workload| {
        let jobs = seed_groups(workload, args.seeds_per_job).len() as u32;
        (cores / args.parallel.min(jobs).max(1)).max(1)
    };
    let backend = if args.device == "libtorch" {
        "tch"
    } else {
        "flex"
    };
    let run_direct = async |workload: &Workload, spec_file: &Path| {
        direct(
            workload,
            spec_file,
            (args.parallel, args.seeds_per_job),
            threads_for(workload),
            backend,
        )
        .await
    };
    let mut timings: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); workloads.len()];
    // Warm-up: page in ra-trainer and the datasets once.
    for (index, workload) in workloads.iter().enumerate() {
        let spec_file = specs.path().join(format!("spec-{index}.json"));
        let spec =
            serde_json::json!({"model": model_for(&workload.manifest)?, "train": one_epoch()});
        std::fs::write(&spec_file, serde_json::to_vec(&spec)?)?;
        run_direct(workload, &spec_file).await?;
        through_evaluator(&mut evaluator, workload, 1_000, &args.device).await?;
    }
    for repeat in 0..args.repeats {
        for (index, workload) in workloads.iter().enumerate() {
            let spec_file = specs.path().join(format!("spec-{index}.json"));
            let direct_seconds = run_direct(workload, &spec_file).await?;
            // Fresh seeds each time: a finished seed of a recorded candidate would be reused.
            let evaluated = through_evaluator(
                &mut evaluator,
                workload,
                10_000 * (repeat as u64 + 1),
                &args.device,
            )
            .await?;
            timings[index].0.push(direct_seconds);
            timings[index].1.push(evaluated);
            eprintln!(
                "repeat {repeat} {}: direct {direct_seconds:.3} s, Evaluate {evaluated:.3} s",
                workload.name
            );
        }
    }
    let torch: Vec<TorchTimes> = workloads
        .iter()
        .map(|workload| {
            let times = torch_times(&args, workload);
            match &times.seconds {
                Ok(seconds) => eprintln!("PyTorch {}: {seconds:.3?} s", workload.name),
                Err(reason) => eprintln!("PyTorch {}: not measured: {reason}", workload.name),
            }
            times
        })
        .collect();
    let mut table = Table::new();
    table.load_preset(UTF8_FULL);
    table.set_header([
        "workload",
        "direct ra-trainer (s)",
        "Evaluate via gRPC + sandbox (s)",
        "overhead",
        "PyTorch in-process (s)",
        "Evaluate / PyTorch",
    ]);
    let mut rows = Vec::new();
    for ((workload, (direct, evaluated)), torch) in workloads.iter().zip(&timings).zip(&torch) {
        let (d, e) = (median(direct), median(evaluated));
        let (torch_cell, ratio_cell, torch_median) = match &torch.seconds {
            Ok(seconds) => {
                let t = median(seconds);
                (
                    format!("{t:.3} ({})", span(seconds)),
                    format!("{:.2}×", e / t),
                    Some(t),
                )
            }
            Err(reason) => (format!("n/a: {reason}"), "n/a".to_owned(), None),
        };
        table.add_row([
            workload.name.to_owned(),
            format!("{d:.3} ({})", span(direct)),
            format!("{e:.3} ({})", span(evaluated)),
            format!("{:+.1}%", (e / d - 1.0) * 100.0),
            torch_cell,
            ratio_cell,
        ]);
        rows.push(serde_json::json!({
            "workload": workload.name,
            "seeds": workload.seeds,
            "direct_seconds": d,
            "evaluate_seconds": e,
            "pytorch_seconds": torch_median,
            "evaluate_over_pytorch": torch_median.map(|t| e / t),
        }));
    }
    let torch_version = torch.iter().find_map(|t| t.version.clone());
    println!(
        "{} repeats, medians (range); device {}; up to {} seeds per job, {} jobs at once, {cores} cores split between them; PyTorch {} in-process with {} threads; batch {BATCH}; target: Evaluate ≤ 1.5× PyTorch",
        args.repeats,
        args.device,
        args.seeds_per_job,
        args.parallel,
        torch_version.as_deref().unwrap_or("(not measured)"),
        args.torch_threads,
    );
    println!("{table}");
    if args.json {
        let summary = serde_json::json!({
            "device": args.device,
            "repeats": args.repeats,
            "parallel": args.parallel,
            "seeds_per_job": args.seeds_per_job,
            "torch": torch_version,
            "torch_threads": args.torch_threads,
            "batch": BATCH,
            "rows": rows,
        });
        println!("{summary}");
    }
    stack.stop().await?;
    Ok(())
}
