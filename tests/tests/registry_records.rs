//! registry-svc over real gRPC: creates, reads, lists with pages, updates, atomic trial
//! completion, concurrent writers, watching, export.

use std::collections::{BTreeSet, HashMap};

use ra_integration_tests::RegistryUnderTest;
use ra_integration_tests::fixtures::{adam, mlp, point};
use ra_proto::common::v1 as common;
use ra_proto::registry::v1 as pb;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

type Client = RegistryServiceClient<Channel>;

async fn experiment(client: &mut Client, name: &str) -> pb::Experiment {
    client
        .create_experiment(pb::CreateExperimentRequest {
            name: name.into(),
            goal: Some(common::ResearchGoal {
                text: "MLP on iris above 0.9 accuracy".into(),
                dataset: "iris".into(),
                target: Some(common::Target {
                    metric: "val_accuracy".into(),
                    threshold: 0.9,
                    direction: common::Direction::Maximize as i32,
                    open_ended: false,
                }),
                confidence: 0.95,
                num_seeds: 3,
                ..Default::default()
            }),
            config_json: r#"{"strategy":"random"}"#.into(),
            ..Default::default()
        })
        .await
        .expect("create experiment")
        .into_inner()
}

async fn candidate(client: &mut Client, experiment_id: &str, parent: &str) -> pb::Candidate {
    client
        .create_candidate(pb::CreateCandidateRequest {
            experiment_id: experiment_id.into(),
            model: Some(mlp()),
            train: Some(adam(1e-3)),
            rationale: "a small MLP is a sound baseline for 4 features".into(),
            parent_id: parent.into(),
            strategy: "random".into(),
            ..Default::default()
        })
        .await
        .expect("create candidate")
        .into_inner()
}

async fn trial(client: &mut Client, candidate_id: &str, seed: u64) -> pb::Trial {
    client
        .create_trial(pb::CreateTrialRequest {
            candidate_id: candidate_id.into(),
            seed,
            ..Default::default()
        })
        .await
        .expect("create trial")
        .into_inner()
}

async fn all_points(client: &mut Client, trial_id: &str) -> Vec<common::MetricPoint> {
    let mut points = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_metrics(pb::ListMetricsRequest {
                trial_id: trial_id.into(),
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list metrics")
            .into_inner();
        points.extend(page.points);
        if page.next_page_token.is_empty() {
            return points;
        }
        token = page.next_page_token;
    }
}

async fn replay(client: &mut Client, experiment_id: &str, from: u64) -> Vec<pb::ExperimentEvent> {
    let mut stream = client
        .watch_experiment(pb::WatchExperimentRequest {
            experiment_id: experiment_id.into(),
            from_position: from,
            replay_only: true,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event.expect("event"));
    }
    events
}

#[tokio::test]
async fn experiments_page_update_and_keep_terminal_status() {
    let registry = RegistryUnderTest::start().await;
    let mut client = registry.client().await;
    let mut created = Vec::new();
    for index in 0..5 {
        created.push(experiment(&mut client, &format!("sweep {index}")).await.id);
    }
    let fetched = client
        .get_experiment(pb::GetExperimentRequest {
            id: created[2].clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(fetched.name, "sweep 2");
    assert_eq!(fetched.status(), pb::ExperimentStatus::Running);
    assert_eq!(
        fetched.goal.as_ref().map(|g| g.dataset.as_str()),
        Some("iris")
    );

    let mut listed = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_experiments(pb::ListExperimentsRequest {
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        pages += 1;
        assert!(page.experiments.len() <= 2);
        listed.extend(page.experiments.into_iter().map(|e| e.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(listed, created, "every experiment once, in creation order");
    assert_eq!(pages, 3);

    let mut labels = HashMap::new();
    labels.insert("team".to_owned(), "vision".to_owned());
    let updated = client
        .update_experiment(pb::UpdateExperimentRequest {
            id: created[0].clone(),
            status: Some(pb::ExperimentStatus::Succeeded as i32),
            summary: Some("reached 0.93 ± 0.01".into()),
            labels,
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.status(), pb::ExperimentStatus::Succeeded);
    assert_eq!(
        updated.labels.get("team").map(String::as_str),
        Some("vision")
    );
    let seconds = |t: &Option<prost_types::Timestamp>| t.as_ref().map(|t| (t.seconds, t.nanos));
    assert!(seconds(&updated.updated_at) >= seconds(&updated.created_at));

    let succeeded = client
        .list_experiments(pb::ListExperimentsRequest {
            status: pb::ExperimentStatus::Succeeded as i32,
            ..Default::default()
        })
        .await
        .expect("filtered list")
        .into_inner();
    assert_eq!(succeeded.experiments.len(), 1);

    let reopened = client
        .update_experiment(pb::UpdateExperimentRequest {
            id: created[0].clone(),
            status: Some(pb::ExperimentStatus::Running as i32),
            ..Default::default()
        })
        .await
        .expect_err("a finished experiment keeps its status");
    assert_eq!(reopened.code(), tonic::Code::FailedPrecondition);
    registry.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_trial_finishes_atomically_with_its_metrics_and_everything_is_exported() {
    let registry = RegistryUnderTest::start().await;
    let mut client = registry.client().await;
    let exp = experiment(&mut client, "iris mlp").await;
    let parent = candidate(&mut client, &exp.id, "").await;
    let child = candidate(&mut client, &exp.id, &parent.id).await;
    assert_eq!(child.parent_id, parent.id);

    let first = trial(&mut client, &child.id, 1).await;
    assert_eq!(first.state(), common::TrialState::Pending);
    assert_eq!(first.experiment_id, exp.id);
    let duplicate = client
        .create_trial(pb::CreateTrialRequest {
            candidate_id: child.id.clone(),
            seed: 1,
            ..Default::default()
        })
        .await
        .expect_err("one trial per candidate and seed");
    assert_eq!(duplicate.code(), tonic::Code::AlreadyExists);
    assert!(
        duplicate.message().contains(&first.id),
        "{}",
        duplicate.message()
    );

    let running = client
        .update_trial(pb::UpdateTrialRequest {
            id: first.id.clone(),
            state: Some(common::TrialState::Running as i32),
            job_id: Some("job-1".into()),
            ..Default::default()
        })
        .await
        .expect("running")
        .into_inner();
    assert!(running.started_at.is_some());

    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    sender
        .send(pb::AppendMetricsRequest {
            trial_id: first.id.clone(),
            points: (0..3)
                .map(|epoch| point("train_loss", epoch, 1.0 / (epoch + 1) as f64))
                .collect(),
        })
        .await
        .expect("queue batch");
    drop(sender);
    let appended = client
        .append_metrics(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .expect("append")
        .into_inner();
    assert_eq!((appended.batches_written, appended.points_written), (1, 3));

    let finished = client
        .update_trial(pb::UpdateTrialRequest {
            id: first.id.clone(),
            state: Some(common::TrialState::Succeeded as i32),
            usage: Some(common::ResourceUsage {
                wall_seconds: 4.5,
                cpu_seconds: 8.0,
                peak_rss_bytes: 1 << 26,
                output_bytes: 10,
            }),
            final_metrics: [("val_accuracy".to_owned(), 0.93)].into_iter().collect(),
            exit_reason: common::ExitReason::Completed as i32,
            points: vec![point("val_accuracy", 2, 0.93)],
            ..Default::default()
        })
        .await
        .expect("finish")
        .into_inner();
    assert_eq!(finished.state(), common::TrialState::Succeeded);
    assert!(finished.finished_at.is_some());
    assert_eq!(all_points(&mut client, &first.id).await.len(), 4);

    let late = client
        .update_trial(pb::UpdateTrialRequest {
            id: first.id.clone(),
            final_metrics: [("val_accuracy".to_owned(), 0.99)].into_iter().collect(),
            ..Default::default()
        })
        .await
        .expect_err("a finished trial is final");
    assert_eq!(late.code(), tonic::Code::FailedPrecondition);

    let second = trial(&mut client, &child.id, 2).await;
    let evaluation = client
        .create_evaluation(pb::CreateEvaluationRequest {
            candidate_id: child.id.clone(),
            trial_ids: vec![first.id.clone(), second.id.clone()],
            target: Some(common::Target {
                metric: "val_accuracy".into(),
                threshold: 0.9,
                direction: 1,
                open_ended: false,
            }),
            aggregate: Some(common::Aggregate {
                metric: "val_accuracy".into(),
                n: 2,
                mean: 0.93,
                std_dev: 0.01,
                min: 0.92,
                max: 0.94,
                std_error: 0.007,
                ci_low: 0.84,
                ci_high: 1.0,
                confidence: 0.95,
            }),
            decision: common::GoalDecision::Undecided as i32,
            p_value: 0.07,
            explanation: "n = 2: the interval still crosses the target".into(),
            ..Default::default()
        })
        .await
        .expect("evaluation")
        .into_inner();
    let decision = client
        .create_decision(pb::CreateDecisionRequest {
            experiment_id: exp.id.clone(),
            action: "add_seeds".into(),
            reasoning: "undecided at n = 2".into(),
            inputs_json: format!(r#"{{"evaluation":"{}"}}"#, evaluation.id),
            candidate_id: child.id.clone(),
            ..Default::default()
        })
        .await
        .expect("decision")
        .into_inner();
    let listed = client
        .list_trials(pb::ListTrialsRequest {
            candidate_id: child.id.clone(),
            ..Default::default()
        })
        .await
        .expect("trials")
        .into_inner();
    assert_eq!(listed.trials.len(), 2);
    let succeeded = client
        .list_trials(pb::ListTrialsRequest {
            experiment_id: exp.id.clone(),
            state: common::TrialState::Succeeded as i32,
            ..Default::default()
        })
        .await
        .expect("filtered trials")
        .into_inner();
    assert_eq!(
        succeeded
            .trials
            .iter()
            .map(|t| t.id.clone())
            .collect::<Vec<_>>(),
        vec![first.id.clone()]
    );

    let export = client
        .export_experiment(pb::ExportExperimentRequest {
            experiment_id: exp.id.clone(),
        })
        .await
        .expect("export")
        .into_inner();
    let document: serde_json::Value = serde_json::from_str(&export.json).expect("export is JSON");
    assert_eq!(document["experiment"]["id"], exp.id);
    assert_eq!(document["candidates"].as_array().map(Vec::len), Some(2));
    assert_eq!(document["trials"].as_array().map(Vec::len), Some(2));
    assert_eq!(document["evaluations"][0]["id"], evaluation.id);
    assert_eq!(document["decisions"][0]["id"], decision.id);
    assert_eq!(document["decisions"][0]["action"], "add_seeds");
    assert_eq!(
        document["metrics"][first.id.as_str()]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    assert_eq!(document["candidates"][0]["model"]["numClasses"], 3);

    let mut csv_stream = client
        .export_metrics_csv(pb::ExportMetricsCsvRequest {
            experiment_id: exp.id.clone(),
        })
        .await
        .expect("csv")
        .into_inner();
    let mut csv = Vec::new();
    while let Some(chunk) = csv_stream.next().await {
        csv.extend(chunk.expect("chunk").data);
    }
    let csv = String::from_utf8(csv).expect("utf-8");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "trial_id,candidate_id,seed,metric,step,value,wall_time"
    );
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(
        lines
            .iter()
            .any(|line| line.contains(",val_accuracy,2,0.93,")),
        "{csv}"
    );

    let events = replay(&mut client, &exp.id, 0).await;
    let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=positions.len() as u64).collect::<Vec<_>>());
    let resumed = replay(&mut client, &exp.id, 3).await;
    assert_eq!(resumed.first().map(|e| e.position), Some(4));
    assert_eq!(resumed.len(), events.len() - 3);
    registry.stop().await.expect("clean stop");
}

#[tokio::test]
async fn watch_streams_records_as_they_land() {
    let registry = RegistryUnderTest::start().await;
    let mut client = registry.client().await;
    let exp = experiment(&mut client, "watched").await;
    let mut watch = client
        .watch_experiment(pb::WatchExperimentRequest {
            experiment_id: exp.id.clone(),
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let first = watch.next().await.expect("first event").expect("ok");
    assert!(matches!(
        first.record,
        Some(pb::experiment_event::Record::Experiment(_))
    ));

    let cand = candidate(&mut client, &exp.id, "").await;
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
        .await
        .expect("a new record arrives while watching")
        .expect("event")
        .expect("ok");
    assert_eq!(next.position, 2);
    match next.record {
        Some(pb::experiment_event::Record::Candidate(seen)) => assert_eq!(seen.id, cand.id),
        other => panic!("expected the candidate, got {other:?}"),
    }
    // A graceful shutdown ends open watches instead of waiting for the client.
    drop(client);
    registry
        .stop()
        .await
        .expect("watch does not hold up shutdown");
    assert!(watch.next().await.is_none_or(|item| item.is_err()));
}

#[tokio::test]
async fn sixteen_concurrent_writers_lose_and_duplicate_nothing() {
    const WRITERS: u64 = 16;
    const BATCHES: u64 = 25;
    const POINTS_PER_BATCH: u64 = 40;
    let registry = RegistryUnderTest::start().await;
    let mut client = registry.client().await;
    let exp = experiment(&mut client, "concurrency").await;
    let cand = candidate(&mut client, &exp.id, "").await;

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let mut client = registry.client().await;
        let candidate_id = cand.id.clone();
        let experiment_id = exp.id.clone();
        writers.push(tokio::spawn(async move {
            let trial = trial(&mut client, &candidate_id, writer).await;
            for batch in 0..BATCHES {
                let points = (0..POINTS_PER_BATCH)
                    .map(|i| {
                        point(
                            "loss",
                            batch * POINTS_PER_BATCH + i,
                            (writer * 1000 + batch) as f64,
                        )
                    })
                    .collect();
                let request = pb::AppendMetricsRequest {
                    trial_id: trial.id.clone(),
                    points,
                };
                let response = client
                    .append_metrics(tokio_stream::iter(vec![request]))
                    .await
                    .expect("append")
                    .into_inner();
                assert_eq!(response.points_written, POINTS_PER_BATCH);
                client
                    .create_decision(pb::CreateDecisionRequest {
                        experiment_id: experiment_id.clone(),
                        action: "observe".into(),
                        reasoning: format!("writer {writer} batch {batch}"),
                        ..Default::default()
                    })
                    .await
                    .expect("decision");
            }
            trial.id
        }));
    }
    let mut trial_ids = Vec::new();
    for writer in writers {
        trial_ids.push(writer.await.expect("writer task"));
    }
    for trial_id in &trial_ids {
        let points = all_points(&mut client, trial_id).await;
        let steps: BTreeSet<u64> = points.iter().map(|p| p.step).collect();
        assert_eq!(
            points.len() as u64,
            BATCHES * POINTS_PER_BATCH,
            "{trial_id}"
        );
        assert_eq!(
            steps.len() as u64,
            BATCHES * POINTS_PER_BATCH,
            "no duplicate steps"
        );
    }
    let mut reasons = BTreeSet::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_decisions(pb::ListDecisionsRequest {
                experiment_id: exp.id.clone(),
                page_size: 97,
                page_token: token,
            })
            .await
            .expect("decisions")
            .into_inner();
        for decision in page.decisions {
            assert!(
                reasons.insert(decision.reasoning),
                "a decision listed twice"
            );
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(reasons.len() as u64, WRITERS * BATCHES);

    let events = replay(&mut client, &exp.id, 0).await;
    let expected_events = 1 + 1 + WRITERS + 2 * WRITERS * BATCHES;
    assert_eq!(events.len() as u64, expected_events);
    assert!(
        events
            .iter()
            .zip(1..)
            .all(|(event, position)| event.position == position),
        "gap-free positions"
    );
    registry.stop().await.expect("clean stop");
}
