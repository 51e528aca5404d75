//! Benchmark: metric points per second written into registry-svc, over gRPC (client stream,
//! one acknowledgement at the end; and one acknowledgement per batch) and straight into the
//! store, with batches of 1, 100 and 1000 points. Prints a table with the gRPC/direct ratio.
//!
//! `cargo run --release -p ra-bench --bin registry-bench`

use std::time::{Duration, Instant};

use clap::Parser;
use comfy_table::{Table, presets::UTF8_FULL};
use ra_proto::common::v1 as common;
use ra_proto::registry::v1 as pb;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use ra_serve::Shutdown;
use registry_svc::{RegistryConfig, Store, StoreSettings};
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, Parser)]
#[command(about = "Metric-append throughput of registry-svc: gRPC against the store itself")]
struct Args {
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    batch_sizes: Vec<usize>,
    /// Points written per measurement for batches of 100 and more.
    #[arg(long, default_value_t = 300_000)]
    points: usize,
    /// Points written per measurement for batches smaller than 100 (per-message cost dominates).
    #[arg(long, default_value_t = 30_000)]
    small_batch_points: usize,
    /// Batches written when every batch waits for its own acknowledgement (fsync each).
    #[arg(long, default_value_t = 200)]
    acked_batches: usize,
}

fn batches(trial_id: &str, batch_size: usize, total: usize) -> Vec<pb::AppendMetricsRequest> {
    (0..total.div_ceil(batch_size))
        .map(|batch| pb::AppendMetricsRequest {
            trial_id: trial_id.to_owned(),
            points: (0..batch_size)
                .map(|i| common::MetricPoint {
                    name: "train_loss".into(),
                    step: (batch * batch_size + i) as u64,
                    value: 1.0 / (1.0 + (batch * batch_size + i) as f64),
                    wall_time: None,
                })
                .collect(),
        })
        .collect()
}

/// A one-layer candidate: the benchmark measures metric writes, not the spec.
fn bench_candidate(experiment_id: String) -> pb::CreateCandidateRequest {
    pb::CreateCandidateRequest {
        experiment_id,
        model: Some(common::ModelSpec {
            name: "bench".into(),
            input: Some(common::InputSpec {
                kind: Some(common::input_spec::Kind::Tabular(common::TabularInput {
                    features: 1,
                })),
            }),
            num_classes: 2,
            layers: vec![common::Layer {
                kind: Some(common::layer::Kind::Linear(common::LinearLayer {
                    out_features: 2,
                    bias: true,
                    ..Default::default()
                })),
            }],
        }),
        train: Some(common::TrainSpec::default()),
        ..Default::default()
    }
}

fn bench_experiment() -> pb::CreateExperimentRequest {
    pb::CreateExperimentRequest {
        name: "bench".into(),
        ..Default::default()
    }
}

fn bench_trial(candidate_id: String) -> pb::CreateTrialRequest {
    pb::CreateTrialRequest {
        candidate_id,
        seed: 0,
        ..Default::default()
    }
}

async fn new_trial(store: &Store) -> anyhow::Result<String> {
    let experiment = store.create_experiment(bench_experiment()).await?;
    let candidate = store
        .create_candidate(bench_candidate(experiment.id))
        .await?;
    Ok(store.create_trial(bench_trial(candidate.id)).await?.id)
}

fn rate(points: usize, elapsed: Duration) -> f64 {
    points as f64 / elapsed.as_secs_f64()
}

/// Appends straight into a store: the same batches, one fsync at the end.
async fn direct(batch_size: usize, total: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreSettings::at(dir.path()))?;
    let trial_id = new_trial(&store).await?;
    let requests = batches(&trial_id, batch_size, total);
    let points: usize = requests.iter().map(|r| r.points.len()).sum();
    let start = Instant::now();
    for request in requests {
        store.append_metrics(&request.trial_id, request.points)?;
    }
    store.sync().await?;
    let elapsed = start.elapsed();
    store.close().await?;
    Ok(rate(points, elapsed))
}

struct Served {
    client: RegistryServiceClient<Channel>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), registry_svc::RunError>>,
    trial_id: String,
    _dir: tempfile::TempDir,
}

async fn serve() -> anyhow::Result<Served> {
    let dir = tempfile::tempdir()?;
    let mut config = RegistryConfig::default();
    config.store.path = dir.path().to_path_buf();
    config.server.max_message_bytes = 64 * 1024 * 1024;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let shutdown = Shutdown::new();
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { registry_svc::run(&config, listener, shutdown).await }
    });
    let endpoint = Endpoint::from_shared(format!("http://{address}"))?
        .initial_stream_window_size(ra_serve::server::HTTP2_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(ra_serve::server::HTTP2_CONNECTION_WINDOW_BYTES)
        .tcp_nodelay(true);
    let mut client = loop {
        match endpoint.connect().await {
            Ok(channel) => {
                break RegistryServiceClient::new(channel).max_decoding_message_size(64 << 20);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    let experiment = client
        .create_experiment(bench_experiment())
        .await?
        .into_inner();
    let trial_id = grpc_trial(&mut client, experiment.id).await?;
    Ok(Served {
        client,
        shutdown,
        task,
        trial_id,
        _dir: dir,
    })
}

async fn grpc_trial(
    client: &mut RegistryServiceClient<Channel>,
    experiment_id: String,
) -> anyhow::Result<String> {
    let candidate = client
        .create_candidate(bench_candidate(experiment_id))
        .await?
        .into_inner();
    Ok(client
        .create_trial(bench_trial(candidate.id))
        .await?
        .into_inner()
        .id)
}

impl Served {
    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        self.task.await??;
        Ok(())
    }
}

/// One client stream carrying every batch, acknowledged once (after the fsync).
async fn grpc_stream(batch_size: usize, total: usize) -> anyhow::Result<f64> {
    let mut served = serve().await?;
    let requests = batches(&served.trial_id, batch_size, total);
    let points: usize = requests.iter().map(|r| r.points.len()).sum();
    let start = Instant::now();
    let response = served
        .client
        .append_metrics(tokio_stream::iter(requests))
        .await?
        .into_inner();
    let elapsed = start.elapsed();
    anyhow::ensure!(
        response.points_written as usize == points,
        "server wrote {} of {points}",
        response.points_written
    );
    served.stop().await?;
    Ok(rate(points, elapsed))
}

/// Every batch its own call, waiting for its own durable acknowledgement.
async fn grpc_acked_each(batch_size: usize, count: usize) -> anyhow::Result<f64> {
    let mut served = serve().await?;
    let requests = batches(&served.trial_id, batch_size, batch_size * count);
    let points: usize = requests.iter().map(|r| r.points.len()).sum();
    let start = Instant::now();
    for request in requests {
        served
            .client
            .append_metrics(tokio_stream::iter([request]))
            .await?;
    }
    let elapsed = start.elapsed();
    served.stop().await?;
    Ok(rate(points, elapsed))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL).set_header([
            "batch size",
            "points",
            "store direct (points/s)",
            "gRPC stream (points/s)",
            "gRPC / direct",
            "gRPC, ack per batch (points/s)",
        ]);
        for &batch_size in &args.batch_sizes {
            let total = if batch_size < 100 { args.small_batch_points } else { args.points };
            let direct_rate = direct(batch_size, total).await?;
            let grpc_rate = grpc_stream(batch_size, total).await?;
            let acked_rate = grpc_acked_each(batch_size, args.acked_batches).await?;
            table.add_row([
                batch_size.to_string(),
                total.to_string(),
                format!("{direct_rate:.0}"),
                format!("{grpc_rate:.0}"),
                format!("{:.2}", grpc_rate / direct_rate),
                format!("{acked_rate:.0}"),
            ]);
            eprintln!("batch {batch_size}: direct {direct_rate:.0}/s, gRPC {grpc_rate:.0}/s, acked each {acked_rate:.0}/s");
        }
        println!("{table}");
        anyhow::Ok(())
    })
}
