//! Crash safety: registry-svc runs as a child process while a client streams metric batches;
//! the child is SIGKILLed at a random moment, restarted on the same directory, and every point
//! whose batch was acknowledged must be there, with the store opening cleanly — many rounds.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ra_proto::common::v1 as common;
use ra_proto::registry::v1 as pb;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use rand::Rng;
use tonic::transport::Channel;

const ROUNDS: usize = 12;
const POINTS_PER_BATCH: u64 = 50;
const BATCHES_PER_STREAM: u64 = 4;

/// Starts the real binary on an ephemeral port and reads the address from its JSON log.
fn start_registry(store: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_registry-svc"))
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("RA_STORE__PATH", store)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start registry-svc");
    let stderr = child.stderr.take().expect("stderr");
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent
                && let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line)
                && entry["message"] == "serving grpc"
                && let Some(address) = entry["address"].as_str()
            {
                let _ = address_tx.send(address.to_owned());
                sent = true;
            }
            if !sent {
                eprintln!("registry-svc: {line}");
            }
        }
    });
    let address = address_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("registry-svc printed its address");
    (child, format!("http://{address}"))
}

async fn connect(endpoint: &str) -> RegistryServiceClient<Channel> {
    for _ in 0..200 {
        if let Ok(client) = RegistryServiceClient::connect(endpoint.to_owned()).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("cannot connect to {endpoint}");
}

fn batch(trial_id: &str, first_step: u64) -> pb::AppendMetricsRequest {
    pb::AppendMetricsRequest {
        trial_id: trial_id.to_owned(),
        points: (first_step..first_step + POINTS_PER_BATCH)
            .map(|step| common::MetricPoint {
                name: "loss".into(),
                step,
                value: step as f64 * 0.5,
                wall_time: None,
            })
            .collect(),
    }
}

async fn stored_steps(
    client: &mut RegistryServiceClient<Channel>,
    trial_id: &str,
) -> BTreeSet<u64> {
    let mut steps = BTreeSet::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_metrics(pb::ListMetricsRequest {
                trial_id: trial_id.to_owned(),
                name: "loss".into(),
                page_size: 1000,
                page_token: token,
            })
            .await
            .expect("list metrics")
            .into_inner();
        for point in page.points {
            assert_eq!(
                point.value,
                point.step as f64 * 0.5,
                "a point's value survived intact"
            );
            steps.insert(point.step);
        }
        if page.next_page_token.is_empty() {
            return steps;
        }
        token = page.next_page_token;
    }
}

async fn running_trial(client: &mut RegistryServiceClient<Channel>) -> (String, String) {
    let experiment = client
        .create_experiment(pb::CreateExperimentRequest {
            name: "crash".into(),
            ..Default::default()
        })
        .await
        .expect("experiment")
        .into_inner();
    let model = common::ModelSpec {
        name: "linear".into(),
        input: Some(common::InputSpec {
            kind: Some(common::input_spec::Kind::Tabular(common::TabularInput {
                features: 2,
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
    };
    let candidate = client
        .create_candidate(pb::CreateCandidateRequest {
            experiment_id: experiment.id.clone(),
            model: Some(model),
            train: Some(common::TrainSpec::default()),
            ..Default::default()
        })
        .await
        .expect("candidate")
        .into_inner();
    let trial = client
        .create_trial(pb::CreateTrialRequest {
            candidate_id: candidate.id,
            seed: 1,
            state: common::TrialState::Running as i32,
            ..Default::default()
        })
        .await
        .expect("trial")
        .into_inner();
    (experiment.id, trial.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_points_survive_kill_9_at_random_moments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("registry");
    let (mut child, endpoint) = start_registry(&store);
    let mut client = connect(&endpoint).await;
    let (experiment_id, trial_id) = running_trial(&mut client).await;

    let mut acknowledged: BTreeSet<u64> = BTreeSet::new();
    let next_step = Arc::new(AtomicU64::new(0));
    let mut kills_during_writes = 0;
    for round in 0..ROUNDS {
        let kill_after = Duration::from_millis(rand::rng().random_range(20..400));
        let writer = {
            let mut client = client.clone();
            let trial_id = trial_id.clone();
            let next_step = Arc::clone(&next_step);
            tokio::spawn(async move {
                let mut acked = Vec::new();
                loop {
                    let span = POINTS_PER_BATCH * BATCHES_PER_STREAM;
                    let first = next_step.fetch_add(span, Ordering::SeqCst);
                    let batches: Vec<_> = (0..BATCHES_PER_STREAM)
                        .map(|index| batch(&trial_id, first + index * POINTS_PER_BATCH))
                        .collect();
                    match client.append_metrics(tokio_stream::iter(batches)).await {
                        Ok(_) => acked.extend(first..first + span),
                        Err(_) => return acked,
                    }
                }
            })
        };
        tokio::time::sleep(kill_after).await;
        child.kill().expect("SIGKILL registry-svc");
        child.wait().expect("reap");
        let acked = writer.await.expect("writer task");
        if !acked.is_empty() {
            kills_during_writes += 1;
        }
        acknowledged.extend(acked);

        let restart_began = std::time::Instant::now();
        let (restarted, endpoint) = start_registry(&store);
        let restart_took = restart_began.elapsed();
        child = restarted;
        client = connect(&endpoint).await;
        let read_began = std::time::Instant::now();
        let stored = stored_steps(&mut client, &trial_id).await;
        let read_took = read_began.elapsed();
        let missing: Vec<u64> = acknowledged.difference(&stored).take(10).copied().collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged steps lost after kill -9: {missing:?}…"
        );
        let reread = client
            .get_trial(pb::GetTrialRequest {
                id: trial_id.clone(),
            })
            .await
            .expect("the trial survived")
            .into_inner();
        assert_eq!(reread.state(), common::TrialState::Running);
        eprintln!(
            "round {round}: killed after {kill_after:?}; restart {restart_took:?}, read-back {read_took:?}; {} points acknowledged so far, {} stored",
            acknowledged.len(),
            stored.len()
        );
    }
    assert!(
        kills_during_writes >= ROUNDS / 2,
        "most kills must land while points are being written"
    );
    let mut events = client
        .watch_experiment(pb::WatchExperimentRequest {
            experiment_id,
            from_position: 0,
            replay_only: true,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut position = 0;
    while let Some(event) = tokio_stream::StreamExt::next(&mut events).await {
        let event = event.expect("event decodes after crashes");
        position += 1;
        assert_eq!(
            event.position, position,
            "the event log has no gaps after crashes"
        );
    }
    child.kill().expect("stop");
    child.wait().expect("reap");
}
