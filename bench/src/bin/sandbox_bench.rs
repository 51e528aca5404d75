//! Benchmark (not a test): job start latency (RunJob call → `started` event) per backend, and
//! the overhead of the same ra-trainer run inside the sandbox against outside it, per backend,
//! interleaved in one run. Prints a table with medians, ranges and ratios.
//!
//! `cargo run --release -p ra-bench --bin sandbox-bench` (as root, for the namespaces and
//! cgroups; with a running Docker Engine for the docker rows; `--kubernetes` adds the kubernetes
//! backend's rows on the cluster of `KUBECONFIG`, e.g. `local-cluster up` + its `env`: trials
//! as Jobs in a namespace of the benchmark's own, deleted at the end).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use comfy_table::{Table, presets::UTF8_FULL};
use dataset_svc::config::DataSettings;
use dataset_svc::service::{Datasets, Origin};
use dataset_svc::{DatasetConfig, PrepareOptions};
use futures::StreamExt;
use ra_proto::common::v1::{ExitReason, ResourceLimits};
use ra_proto::sandbox::v1 as pb;
use ra_proto::sandbox::v1::sandbox_service_client::SandboxServiceClient;
use ra_serve::Shutdown;
use ra_spec::{InputSpec, Layer, ModelSpec, TrainSpec};
use ra_test_support::cluster::{DATASET_CLAIM, TrialNamespace, WORK_CLAIM};
use sandbox_svc::SandboxConfig;
use sandbox_svc::kubernetes::KubernetesSettings;
use sandbox_svc::process::plan::TRAINER_MOUNT;
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(about = "sandbox-svc: job start latency and sandbox overhead per backend")]
struct Args {
    /// Trivial jobs per backend for the start latency.
    #[arg(long, default_value_t = 20)]
    start_samples: usize,
    /// Interleaved repeats of the training run (direct, process, docker).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Epochs of the training run (the `shapes` dataset, a two-convolution CNN).
    #[arg(long, default_value_t = 2)]
    epochs: u32,
    /// Skip the docker rows.
    #[arg(long)]
    no_docker: bool,
    /// Add the kubernetes rows (a cluster through KUBECONFIG, the trial image built with the
    /// local Docker Engine, which the cluster's kubelet must use).
    #[arg(long)]
    kubernetes: bool,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn range(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.3} – {max:.3}")
}

fn cnn() -> ModelSpec {
    ModelSpec {
        name: "shapes-cnn".into(),
        input: InputSpec::Image {
            channels: 3,
            height: 32,
            width: 32,
        },
        num_classes: 5,
        layers: vec![
            Layer::conv2d(16, 3, 1, 1),
            Layer::relu(),
            Layer::max_pool(2),
            Layer::conv2d(32, 3, 1, 1),
            Layer::relu(),
            Layer::max_pool(2),
            Layer::Flatten,
            Layer::linear(64),
            Layer::relu(),
            Layer::linear(5),
        ],
    }
}

fn train_spec(epochs: u32) -> TrainSpec {
    TrainSpec {
        epochs,
        batch_size: 64,
        learning_rate: 0.002,
        ..TrainSpec::default()
    }
}

async fn run(
    client: &mut SandboxServiceClient<Channel>,
    job: pb::JobSpec,
) -> anyhow::Result<(f64, f64)> {
    let began = Instant::now();
    let mut stream = client
        .run_job(pb::RunJobRequest {
            job: Some(job),
            job_id: String::new(),
        })
        .await?
        .into_inner();
    let mut started = None;
    while let Some(event) = stream.next().await {
        match event?.event {
            Some(pb::job_event::Event::Started(_)) => started = Some(began.elapsed()),
            Some(pb::job_event::Event::Finished(result)) => {
                anyhow::ensure!(
                    result.exit_reason == ExitReason::Completed as i32,
                    "job failed: {}",
                    result.message
                );
            }
            _ => {}
        }
    }
    let started = started.ok_or_else(|| anyhow::anyhow!("no started event"))?;
    Ok((started.as_secs_f64(), began.elapsed().as_secs_f64()))
}

fn trivial(backend: pb::Backend) -> pb::JobSpec {
    pb::JobSpec {
        kind: Some(pb::job_spec::Kind::Command(pb::CommandJob {
            argv: vec!["bash".into(), "job.sh".into()],
            files: vec![pb::InputFile {
                path: "job.sh".into(),
                content: b"echo ok".to_vec(),
                executable: false,
            }],
            ..Default::default()
        })),
        backend: backend as i32,
        ..Default::default()
    }
}

fn train(dataset: &str, epochs: u32, backend: pb::Backend) -> pb::JobSpec {
    pb::JobSpec {
        kind: Some(pb::job_spec::Kind::Train(pb::TrainJob {
            model: Some((&cnn()).into()),
            train: Some((&train_spec(epochs)).into()),
            prepared_dataset_id: dataset.into(),
            seed: 1,
            save_weights: false,
            device: String::new(),
            seeds: Vec::new(),
        })),
        limits: Some(ResourceLimits {
            timeout_seconds: 3_600,
            ..Default::default()
        }),
        backend: backend as i32,
        ..Default::default()
    }
}

/// ra-trainer outside any sandbox, with the environment a sandboxed job gets (so that only the
/// isolation differs); `inherit_env` keeps this program's environment instead.
fn direct(
    trainer: &Path,
    dataset: &Path,
    spec_file: &Path,
    threads: u32,
    inherit_env: bool,
) -> anyhow::Result<f64> {
    let began = Instant::now();
    let mut command = std::process::Command::new(trainer);
    if !inherit_env {
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8");
    }
    let output = command
        .args(["train", "--spec"])
        .arg(spec_file)
        .arg("--data")
        .arg(dataset)
        .args(["--seed", "1", "--threads", &threads.to_string()])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "ra-trainer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(began.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = tempfile::tempdir()?;
    let cache = root.path().join("datasets");
    let datasets = Datasets::new(DataSettings {
        cache_dir: cache.clone(),
        ..DatasetConfig::default().data
    });
    let prepared = datasets.prepare(
        "shapes",
        &Origin::default(),
        &PrepareOptions {
            seed: 1,
            ..PrepareOptions::default()
        },
        &mut |_| {},
    )?;
    let dataset_id = prepared.manifest().prepared_id.clone();
    let dataset_dir: PathBuf = cache.join(&dataset_id);

    let mut config = SandboxConfig::default();
    config.sandbox.work_dir = root.path().join("jobs");
    config.sandbox.outputs_dir = root.path().join("outputs");
    config.sandbox.dataset_cache_dir = cache.clone();
    config.sandbox.docker_enabled = !args.no_docker;
    config.sandbox.max_concurrent_jobs = 1;
    config.sandbox.policy.command_allowlist = vec!["bash".into()];
    let cluster = if args.kubernetes {
        let namespace = TrialNamespace::create(root.path(), "sandbox-bench")
            .await
            .map_err(anyhow::Error::msg)?;
        let image = sandbox_svc::docker::DockerBackend::new(
            &sandbox_svc::docker::DockerSettings::default(),
            sandbox_svc::process::init::locate_binary("ra-trainer").as_deref(),
            &[],
            "sandbox-bench",
        )
        .await
        .map_err(anyhow::Error::msg)?
        .image()
        .to_owned();
        config.sandbox.kubernetes = KubernetesSettings {
            enabled: true,
            namespace: namespace.name.clone(),
            image,
            image_pull_policy: "Never".into(),
            trainer_in_image: TRAINER_MOUNT.into(),
            work_claim: WORK_CLAIM.into(),
            work_root: root.path().to_owned(),
            dataset_claim: DATASET_CLAIM.into(),
            ttl_seconds_after_finished: 0,
            network_isolated: false,
            ..KubernetesSettings::default()
        };
        Some(namespace)
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let shutdown = Shutdown::new();
    let serving = shutdown.clone();
    let served = config.clone();
    tokio::spawn(async move { sandbox_svc::run(&served, listener, serving).await });
    let mut client = loop {
        if let Ok(client) = SandboxServiceClient::connect(format!("http://{address}")).await {
            break client;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut backends = vec![pb::Backend::Process];
    if !args.no_docker {
        match run(&mut client, trivial(pb::Backend::Docker)).await {
            Ok(_) => backends.push(pb::Backend::Docker),
            Err(error) => eprintln!("docker rows skipped: {error}"),
        }
    }
    if cluster.is_some() {
        backends.push(pb::Backend::Kubernetes);
    }

    let mut table = Table::new();
    table.load_preset(UTF8_FULL);
    table.set_header(["measurement", "median", "range", "ratio / target"]);
    for &backend in &backends {
        let mut starts = Vec::new();
        let mut totals = Vec::new();
        run(&mut client, trivial(backend)).await?;
        for _ in 0..args.start_samples {
            let (start, total) = run(&mut client, trivial(backend)).await?;
            starts.push(start * 1e3);
            totals.push(total * 1e3);
        }
        let target = match backend {
            pb::Backend::Process => 20.0,
            pb::Backend::Kubernetes => 5_000.0,
            _ => 1_500.0,
        };
        let start = median(&mut starts);
        table.add_row([
            format!("{backend:?} start latency, ms (submit → started)"),
            format!("{start:.1}"),
            range(&starts),
            format!(
                "target ≤ {target} ms: {}",
                if start <= target { "met" } else { "NOT met" }
            ),
        ]);
        table.add_row([
            format!("{backend:?} trivial job end to end, ms"),
            format!("{:.1}", median(&mut totals)),
            range(&totals),
            String::new(),
        ]);
    }

    let trainer = sandbox_svc::process::init::locate_binary("ra-trainer").ok_or_else(|| {
        anyhow::anyhow!("ra-trainer not found beside this binary; build the workspace")
    })?;
    let spec_file = root.path().join("spec.json");
    std::fs::write(
        &spec_file,
        serde_json::to_vec(&serde_json::json!({"model": cnn(), "train": train_spec(args.epochs)}))?,
    )?;
    let threads = config
        .sandbox
        .policy
        .limits
        .defaults
        .cpu_millis
        .div_ceil(1_000);
    let mut direct_runs = Vec::new();
    let mut inherited_runs = Vec::new();
    let mut single_runs = Vec::new();
    let mut sandboxed: Vec<Vec<f64>> = vec![Vec::new(); backends.len()];
    for _ in 0..args.repeats {
        direct_runs.push(direct(&trainer, &dataset_dir, &spec_file, threads, false)?);
        inherited_runs.push(direct(&trainer, &dataset_dir, &spec_file, threads, true)?);
        single_runs.push(direct(&trainer, &dataset_dir, &spec_file, 1, false)?);
        for (i, &backend) in backends.iter().enumerate() {
            let (_, total) = run(&mut client, train(&dataset_id, args.epochs, backend)).await?;
            sandboxed[i].push(total);
        }
    }
    let base = median(&mut direct_runs.clone());
    table.add_row([
        format!(
            "ra-trainer direct, s ({} epochs, shapes 3000×3×32×32, CNN)",
            args.epochs
        ),
        format!("{base:.3}"),
        range(&direct_runs),
        "1.00 (baseline)".into(),
    ]);
    let inherited = median(&mut inherited_runs.clone());
    table.add_row([
        "ra-trainer direct, this program's environment, s".to_owned(),
        format!("{inherited:.3}"),
        range(&inherited_runs),
        format!("{:.3}", inherited / base),
    ]);
    let single = median(&mut single_runs.clone());
    table.add_row([
        "ra-trainer direct, --threads 1, s".to_owned(),
        format!("{single:.3}"),
        range(&single_runs),
        format!("{:.3}", single / base),
    ]);
    for (i, &backend) in backends.iter().enumerate() {
        let value = median(&mut sandboxed[i].clone());
        let ratio = value / base;
        table.add_row([
            format!("ra-trainer in {backend:?} sandbox, s (RunJob end to end)"),
            format!("{value:.3}"),
            range(&sandboxed[i]),
            format!(
                "{ratio:.3}; overhead {:+.1}% (target ≤ 5%: {})",
                (ratio - 1.0) * 100.0,
                if ratio <= 1.05 { "met" } else { "NOT met" }
            ),
        ]);
    }
    println!("{table}");
    shutdown.trigger();
    // The namespace goes after the service (which deletes its Jobs as it stops).
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(cluster);
    Ok(())
}
