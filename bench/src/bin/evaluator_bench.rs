//! Benchmark (not a test): the evaluator's reference workloads end to end — Evaluate over gRPC
//! through the embedded stack and the process sandbox — against the same ra-trainer runs called
//! directly (same seeds, same thread count, the same number at once), interleaved in one run.
//!
//! (a) one seed on 64 synthetic `shapes` images; (b) three seeds of (a); (c) two seeds on 300
//! CIFAR-10 images (the subset in `../shared/data`); each with the trainer issue's reference
//! CNN (adapted to the input) for one epoch. The Python original reported 0.4 s, 1.1 s and
//! 3.5 s.
//!
//! `cargo run --release -p ra-bench --bin evaluator-bench -- --data ../shared/data` (as root, for
//! the sandbox's namespaces and cgroups).

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
}

fn one_epoch() -> TrainSpec {
    TrainSpec {
        epochs: 1,
        batch_size: 32,
        ..TrainSpec::default()
    }
}

struct Workload {
    name: &'static str,
    python_seconds: f64,
    seeds: u64,
    manifest: ds::Manifest,
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
async fn direct(
    workload: &Workload,
    spec_file: &Path,
    parallel: u32,
    threads: u32,
) -> anyhow::Result<f64> {
    let trainer = sandbox_svc::process::init::locate_binary("ra-trainer")
        .context("ra-trainer is not built")?;
    let began = Instant::now();
    let mut pending: Vec<u64> = (0..workload.seeds).collect();
    let mut running = JoinSet::new();
    while !pending.is_empty() || !running.is_empty() {
        while running.len() < parallel as usize
            && let Some(seed) = pending.pop()
        {
            let mut command = tokio::process::Command::new(&trainer);
            command
                .arg0(sandbox_svc::multicall::TRAINER)
                .args(["train", "--spec"])
                .arg(spec_file)
                .arg("--data")
                .arg(&workload.manifest.path)
                .args([
                    "--seed",
                    &seed.to_string(),
                    "--threads",
                    &threads.to_string(),
                ])
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
            }),
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
            python_seconds: 0.4,
            seeds: 1,
            manifest: synthetic.clone(),
        },
        Workload {
            name: "(b) 3 seeds, 64 synthetic images",
            python_seconds: 1.1,
            seeds: 3,
            manifest: synthetic,
        },
        Workload {
            name: "(c) 2 seeds, 300 CIFAR-10 images",
            python_seconds: 3.5,
            seeds: 2,
            manifest: cifar_manifest,
        },
    ];
    let specs = tempfile::tempdir()?;
    let mut evaluator = EvaluatorServiceClient::connect(stack.evaluator_url()).await?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let mut timings: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); workloads.len()];
    // Warm-up: page in ra-trainer and the datasets once.
    for (index, workload) in workloads.iter().enumerate() {
        let spec_file = specs.path().join(format!("spec-{index}.json"));
        let spec =
            serde_json::json!({"model": model_for(&workload.manifest)?, "train": one_epoch()});
        std::fs::write(&spec_file, serde_json::to_vec(&spec)?)?;
        direct(workload, &spec_file, args.parallel, threads).await?;
        through_evaluator(&mut evaluator, workload, 1_000).await?;
    }
    for repeat in 0..args.repeats {
        for (index, workload) in workloads.iter().enumerate() {
            let spec_file = specs.path().join(format!("spec-{index}.json"));
            let direct_seconds = direct(workload, &spec_file, args.parallel, threads).await?;
            // Fresh seeds each time: a finished seed of a recorded candidate would be reused.
            let evaluated =
                through_evaluator(&mut evaluator, workload, 10_000 * (repeat as u64 + 1)).await?;
            timings[index].0.push(direct_seconds);
            timings[index].1.push(evaluated);
            eprintln!(
                "repeat {repeat} {}: direct {direct_seconds:.3} s, Evaluate {evaluated:.3} s",
                workload.name
            );
        }
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL);
    table.set_header([
        "workload",
        "direct ra-trainer (s)",
        "Evaluate via gRPC + sandbox (s)",
        "overhead",
        "Python original (s)",
        "speed-up vs Python",
    ]);
    for (workload, (direct, evaluated)) in workloads.iter().zip(&timings) {
        let (d, e) = (median(direct), median(evaluated));
        table.add_row([
            workload.name.to_owned(),
            format!("{d:.3} ({})", span(direct)),
            format!("{e:.3} ({})", span(evaluated)),
            format!("{:+.1}%", (e / d - 1.0) * 100.0),
            format!("{}", workload.python_seconds),
            format!("{:.1}×", workload.python_seconds / e),
        ]);
    }
    println!(
        "{} repeats, medians (range); {} seeds at once, {threads} trainer threads; targets: ≥ 10× faster than Python, overhead ≤ 10%",
        args.repeats, args.parallel
    );
    println!("{table}");
    stack.stop().await?;
    Ok(())
}
