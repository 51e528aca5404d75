//! Benchmark: PrepareDataset wall time over gRPC for the MNIST test set and for UCI Adult
//! (a fresh cache each repeat, so every run parses, preprocesses and writes), and StreamBatches
//! throughput over loopback gRPC against reading the same prepared split directly with the
//! same batch code, in one run. Prints a table with medians, ranges and ratios.
//!
//! `cargo run --release -p ra-bench --bin dataset-bench -- --data ../shared/data`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use comfy_table::{Table, presets::UTF8_FULL};
use dataset_svc::DatasetConfig;
use dataset_svc::service::{BatchRequest, batch, batch_count};
use futures::StreamExt;
use ra_prepared::{PreparedDataset, Verify};
use ra_proto::dataset::v1 as pb;
use ra_proto::dataset::v1::dataset_service_client::DatasetServiceClient;
use ra_serve::Shutdown;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, Parser)]
#[command(about = "dataset-svc: preparation wall time and batch-streaming throughput")]
struct Args {
    /// Folder with one sub-folder of originals per dataset (`../shared/data` has the layout).
    #[arg(long, env = "RA_TEST_DATA", default_value = "../shared/data")]
    data: PathBuf,
    /// Repeats of every measurement (medians are reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Samples of the `shapes` dataset streamed (3×32×32 bytes each).
    #[arg(long, default_value_t = 20_000)]
    stream_samples: u32,
    /// HTTP/2 frame size the streaming client accepts (the protocol default is 16 KiB;
    /// 256 KiB measured fastest here).
    #[arg(long, default_value_t = 256 * 1024)]
    max_frame_size: u32,
    /// Samples per streamed batch.
    #[arg(long, default_value_t = 256)]
    batch_size: u32,
}

/// One service on 127.0.0.1 and a client with large HTTP/2 windows.
struct Served {
    client: DatasetServiceClient<Channel>,
    shutdown: Shutdown,
}

async fn serve(data: &Path, cache: &Path, frame_size: Option<u32>) -> anyhow::Result<Served> {
    let mut config = DatasetConfig::default();
    config.data.data_dir = data.to_path_buf();
    config.data.cache_dir = cache.to_path_buf();
    config.data.offline = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let shutdown = Shutdown::new();
    let serving = shutdown.clone();
    tokio::spawn(async move { dataset_svc::run(&config, listener, serving).await });
    let channel = Endpoint::from_shared(format!("http://{address}"))?
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .max_frame_size(frame_size)
        .connect()
        .await?;
    let client = DatasetServiceClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    Ok(Served { client, shutdown })
}

async fn prepare(
    client: &mut DatasetServiceClient<Channel>,
    name: &str,
    options: pb::PrepareOptions,
) -> anyhow::Result<pb::Manifest> {
    let request = pb::PrepareDatasetRequest {
        name: name.into(),
        options: Some(options),
    };
    let mut stream = client.prepare_dataset(request).await?.into_inner();
    while let Some(event) = stream.next().await {
        if let Some(pb::prepare_dataset_event::Event::Manifest(manifest)) = event?.event {
            return Ok(manifest);
        }
    }
    anyhow::bail!("{name}: the stream ended without a manifest")
}

/// Median, fastest and slowest of `samples`.
fn summary(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    (median, samples[0], samples[samples.len() - 1])
}

/// Wall time of preparing `name` into a fresh cache, `repeats` times.
async fn time_prepare(
    data: &Path,
    name: &str,
    options: pb::PrepareOptions,
    repeats: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut seconds = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let cache = tempfile::tempdir()?;
        let mut served = serve(data, cache.path(), None).await?;
        let started = Instant::now();
        prepare(&mut served.client, name, options.clone()).await?;
        seconds.push(started.elapsed().as_secs_f64());
        served.shutdown.trigger();
    }
    Ok(seconds)
}

/// Bytes of `x` per second streamed over gRPC.
async fn stream_rate(
    client: &mut DatasetServiceClient<Channel>,
    request: pb::StreamBatchesRequest,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut stream = client.stream_batches(request).await?.into_inner();
    let mut bytes = 0usize;
    while let Some(batch) = stream.next().await {
        bytes += batch?.x.len();
    }
    Ok(bytes as f64 / started.elapsed().as_secs_f64())
}

/// Bytes of `x` per second made by the same batch code reading the file directly.
fn direct_rate(dir: &Path, request: &BatchRequest) -> anyhow::Result<f64> {
    let started = Instant::now();
    let dataset = PreparedDataset::open(dir, Verify::Sizes)?;
    let order: Vec<usize> = (0..dataset.split("train")?.len()).collect();
    let mut bytes = 0usize;
    for index in 0..batch_count(order.len(), request) {
        bytes += batch(&dataset, "train", &order, index, request)?.x.len();
    }
    Ok(bytes as f64 / started.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.repeats > 0, "--repeats must be at least 1");
    anyhow::ensure!(
        args.data.join("mnist").is_dir() && args.data.join("adult").is_dir(),
        "{} must hold mnist/ and adult/ (see ../shared/data/README.md)",
        args.data.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL).set_header([
            "measurement",
            "median",
            "range",
            "target",
            "ratio",
        ]);
        let mnist_options = pb::PrepareOptions {
            skip_checksums: true,
            ..Default::default()
        };
        for (label, name, options, target) in [
            (
                "PrepareDataset mnist (t10k, 10,000 images)",
                "mnist",
                mnist_options,
                Some(0.5),
            ),
            (
                "PrepareDataset adult (48,842 rows)",
                "adult",
                pb::PrepareOptions::default(),
                None,
            ),
        ] {
            let (median, low, high) =
                summary(time_prepare(&args.data, name, options, args.repeats).await?);
            table.add_row([
                label.to_owned(),
                format!("{median:.3} s"),
                format!("{low:.3}-{high:.3} s"),
                target.map_or("-".to_owned(), |t| format!("≤ {t} s")),
                target.map_or("-".to_owned(), |t| format!("{:.2} of target", median / t)),
            ]);
        }

        let cache = tempfile::tempdir()?;
        let mut served = serve(&args.data, cache.path(), Some(args.max_frame_size)).await?;
        let manifest = prepare(
            &mut served.client,
            "shapes",
            pb::PrepareOptions {
                val_fraction: 0.01,
                synthetic: Some(pb::SyntheticOptions {
                    num_samples: args.stream_samples,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await?;
        for normalize in [false, true] {
            let request = pb::StreamBatchesRequest {
                prepared_id: manifest.prepared_id.clone(),
                split: "train".into(),
                batch_size: args.batch_size,
                normalize,
                ..Default::default()
            };
            let local = BatchRequest {
                batch_size: args.batch_size as usize,
                shuffle_seed: None,
                normalize,
                max_batches: 0,
            };
            let (mut grpc, mut direct) = (Vec::new(), Vec::new());
            for _ in 0..args.repeats {
                grpc.push(stream_rate(&mut served.client, request.clone()).await?);
                direct.push(direct_rate(Path::new(&manifest.path), &local)?);
            }
            let (grpc, grpc_low, grpc_high) = summary(grpc);
            let (direct, direct_low, direct_high) = summary(direct);
            let kind = if normalize {
                "f32 normalised"
            } else {
                "u8 raw"
            };
            table.add_row([
                format!("direct batches, shapes train, {kind}"),
                format!("{:.2} GB/s", direct / 1e9),
                format!("{:.2}-{:.2}", direct_low / 1e9, direct_high / 1e9),
                "-".to_owned(),
                "1.00".to_owned(),
            ]);
            table.add_row([
                format!("StreamBatches gRPC, shapes train, {kind}"),
                format!("{:.2} GB/s", grpc / 1e9),
                format!("{:.2}-{:.2}", grpc_low / 1e9, grpc_high / 1e9),
                "≥ 1 GB/s, ≥ 0.40 of direct".to_owned(),
                format!("{:.2} of direct", grpc / direct),
            ]);
        }
        served.shutdown.trigger();
        tokio::time::sleep(Duration::from_millis(50)).await;
        println!("{table}");
        println!(
            "{} repeats; batches of {}; {} shapes samples of 3×32×32; client HTTP/2 frames of {} bytes",
            args.repeats, args.batch_size, args.stream_samples, args.max_frame_size
        );
        Ok(())
    })
}
