//! Every refused request gets the right code and an actionable message, and leaves the store
//! exactly as it was.

use futures::future::BoxFuture;
use ra_integration_tests::RegistryUnderTest;
use ra_integration_tests::fixtures::{adam as train, mlp as model};
use ra_proto::common::v1 as common;
use ra_proto::registry::v1 as pb;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

type Client = RegistryServiceClient<Channel>;
type Case = (
    &'static str,
    Code,
    BoxFuture<'static, Result<(), tonic::Status>>,
);

const MISSING_EXPERIMENT: &str = "exp_0192f0c1a2b37c4d8e9f001122334455";
const MISSING_CANDIDATE: &str = "cand_0192f0c1a2b37c4d8e9f001122334455";
const MISSING_TRIAL: &str = "trial_0192f0c1a2b37c4d8e9f001122334455";
const MAX_BATCH_POINTS: usize = 1000;
const MAX_ARTIFACT_BYTES: u64 = 64 * 1024;

fn candidate_request(experiment_id: &str) -> pb::CreateCandidateRequest {
    pb::CreateCandidateRequest {
        experiment_id: experiment_id.into(),
        model: Some(model()),
        train: Some(train(0.01)),
        ..Default::default()
    }
}

fn points(count: usize, value: f64, name: &str) -> Vec<common::MetricPoint> {
    (0..count)
        .map(|step| common::MetricPoint {
            name: name.into(),
            step: step as u64,
            value,
            wall_time: None,
        })
        .collect()
}

fn evaluation(
    candidate_id: &str,
    trial_ids: Vec<String>,
    p_value: f64,
) -> pb::CreateEvaluationRequest {
    pb::CreateEvaluationRequest {
        candidate_id: candidate_id.into(),
        trial_ids,
        target: Some(common::Target {
            metric: "val_accuracy".into(),
            threshold: 0.9,
            direction: 1,
            open_ended: false,
        }),
        aggregate: Some(common::Aggregate {
            metric: "val_accuracy".into(),
            n: 1,
            mean: 0.9,
            ..Default::default()
        }),
        decision: common::GoalDecision::Undecided as i32,
        p_value,
        ..Default::default()
    }
}

async fn snapshot(client: &mut Client, experiment_id: &str) -> (String, usize, usize) {
    let export = client
        .export_experiment(pb::ExportExperimentRequest {
            experiment_id: experiment_id.into(),
        })
        .await
        .expect("export")
        .into_inner()
        .json;
    let mut events = 0;
    let mut stream = client
        .watch_experiment(pb::WatchExperimentRequest {
            experiment_id: experiment_id.into(),
            from_position: 0,
            replay_only: true,
        })
        .await
        .expect("watch")
        .into_inner();
    while let Some(event) = stream.next().await {
        event.expect("event");
        events += 1;
    }
    let experiments = client
        .list_experiments(pb::ListExperimentsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .experiments
        .len();
    (export, events, experiments)
}

/// One table row: the request is built here, the call runs later.
macro_rules! case {
    ($client:ident, $name:expr, $code:expr, $method:ident, $request:expr) => {{
        let mut client = $client.clone();
        let request = $request;
        let future: BoxFuture<'static, Result<(), tonic::Status>> =
            Box::pin(async move { client.$method(request).await.map(|_| ()) });
        ($name, $code, future)
    }};
}

#[tokio::test]
async fn bad_requests_are_refused_with_the_right_code_and_change_nothing() {
    let registry = RegistryUnderTest::start_with(|config| {
        config.store.max_batch_points = MAX_BATCH_POINTS;
        config.store.max_artifact_bytes = MAX_ARTIFACT_BYTES;
        config.server.max_message_bytes = 1024 * 1024;
    })
    .await;
    let mut client = registry.client().await;
    let exp = client
        .create_experiment(pb::CreateExperimentRequest {
            name: "table".into(),
            ..Default::default()
        })
        .await
        .expect("experiment")
        .into_inner();
    let other_exp = client
        .create_experiment(pb::CreateExperimentRequest {
            name: "other".into(),
            ..Default::default()
        })
        .await
        .expect("experiment")
        .into_inner();
    let cand = client
        .create_candidate(candidate_request(&exp.id))
        .await
        .expect("candidate")
        .into_inner();
    let other_cand = client
        .create_candidate(candidate_request(&other_exp.id))
        .await
        .expect("candidate")
        .into_inner();
    let trial = client
        .create_trial(pb::CreateTrialRequest {
            candidate_id: cand.id.clone(),
            seed: 7,
            state: common::TrialState::Running as i32,
            ..Default::default()
        })
        .await
        .expect("trial")
        .into_inner();
    let other_trial = client
        .create_trial(pb::CreateTrialRequest {
            candidate_id: other_cand.id.clone(),
            seed: 1,
            ..Default::default()
        })
        .await
        .expect("trial")
        .into_inner();
    let before = snapshot(&mut client, &exp.id).await;

    let (e, c, t) = (exp.id.clone(), cand.id.clone(), trial.id.clone());
    let big_upload_experiment = e.clone();
    let cases: Vec<Case> = vec![
        case!(
            client,
            "empty id",
            Code::InvalidArgument,
            get_experiment,
            pb::GetExperimentRequest { id: String::new() }
        ),
        case!(
            client,
            "malformed id",
            Code::InvalidArgument,
            get_experiment,
            pb::GetExperimentRequest {
                id: "exp_123".into()
            }
        ),
        case!(
            client,
            "trial id as experiment id",
            Code::InvalidArgument,
            get_experiment,
            pb::GetExperimentRequest { id: t.clone() }
        ),
        case!(
            client,
            "unknown experiment",
            Code::NotFound,
            get_experiment,
            pb::GetExperimentRequest {
                id: MISSING_EXPERIMENT.into()
            }
        ),
        case!(
            client,
            "empty name",
            Code::InvalidArgument,
            create_experiment,
            pb::CreateExperimentRequest {
                name: " ".into(),
                ..Default::default()
            }
        ),
        case!(
            client,
            "oversized name",
            Code::InvalidArgument,
            create_experiment,
            pb::CreateExperimentRequest {
                name: "x".repeat(10_000),
                ..Default::default()
            }
        ),
        case!(
            client,
            "config not an object",
            Code::InvalidArgument,
            create_experiment,
            pb::CreateExperimentRequest {
                name: "n".into(),
                config_json: "[1,2]".into(),
                ..Default::default()
            }
        ),
        case!(
            client,
            "config not JSON",
            Code::InvalidArgument,
            create_experiment,
            pb::CreateExperimentRequest {
                name: "n".into(),
                config_json: "{oops".into(),
                ..Default::default()
            }
        ),
        case!(
            client,
            "confidence out of range",
            Code::InvalidArgument,
            create_experiment,
            pb::CreateExperimentRequest {
                name: "n".into(),
                goal: Some(common::ResearchGoal {
                    confidence: 1.5,
                    ..Default::default()
                }),
                ..Default::default()
            }
        ),
        case!(
            client,
            "NaN threshold in goal",
            Code::InvalidArgument,
            create_experiment,
            pb::CreateExperimentRequest {
                name: "n".into(),
                goal: Some(common::ResearchGoal {
                    target: Some(common::Target {
                        metric: "m".into(),
                        threshold: f64::NAN,
                        direction: 1,
                        open_ended: false,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }
        ),
        case!(
            client,
            "duplicate experiment id",
            Code::AlreadyExists,
            create_experiment,
            pb::CreateExperimentRequest {
                id: e.clone(),
                name: "again".into(),
                ..Default::default()
            }
        ),
        case!(
            client,
            "bad label key",
            Code::InvalidArgument,
            create_experiment,
            pb::CreateExperimentRequest {
                name: "n".into(),
                labels: [("Bad Key".to_owned(), "v".to_owned())]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }
        ),
        case!(
            client,
            "candidate of unknown experiment",
            Code::NotFound,
            create_candidate,
            candidate_request(MISSING_EXPERIMENT)
        ),
        case!(
            client,
            "candidate without model",
            Code::InvalidArgument,
            create_candidate,
            pb::CreateCandidateRequest {
                model: None,
                ..candidate_request(&e)
            }
        ),
        case!(
            client,
            "candidate with no layers",
            Code::InvalidArgument,
            create_candidate,
            pb::CreateCandidateRequest {
                model: Some(common::ModelSpec {
                    layers: vec![],
                    ..model()
                }),
                ..candidate_request(&e)
            }
        ),
        case!(
            client,
            "NaN learning rate",
            Code::InvalidArgument,
            create_candidate,
            pb::CreateCandidateRequest {
                train: Some(train(f64::NAN)),
                ..candidate_request(&e)
            }
        ),
        case!(
            client,
            "infinite learning rate",
            Code::InvalidArgument,
            create_candidate,
            pb::CreateCandidateRequest {
                train: Some(train(f64::INFINITY)),
                ..candidate_request(&e)
            }
        ),
        case!(
            client,
            "missing parent",
            Code::NotFound,
            create_candidate,
            pb::CreateCandidateRequest {
                parent_id: MISSING_CANDIDATE.into(),
                ..candidate_request(&e)
            }
        ),
        case!(
            client,
            "parent from another experiment",
            Code::InvalidArgument,
            create_candidate,
            pb::CreateCandidateRequest {
                parent_id: other_cand.id.clone(),
                ..candidate_request(&e)
            }
        ),
        case!(
            client,
            "huge rationale",
            Code::ResourceExhausted,
            create_candidate,
            pb::CreateCandidateRequest {
                rationale: "r".repeat(70_000),
                ..candidate_request(&e)
            }
        ),
        case!(
            client,
            "trial of unknown candidate",
            Code::NotFound,
            create_trial,
            pb::CreateTrialRequest {
                candidate_id: MISSING_CANDIDATE.into(),
                ..Default::default()
            }
        ),
        case!(
            client,
            "trial created finished",
            Code::InvalidArgument,
            create_trial,
            pb::CreateTrialRequest {
                candidate_id: c.clone(),
                seed: 99,
                state: common::TrialState::Succeeded as i32,
                ..Default::default()
            }
        ),
        case!(
            client,
            "duplicate seed",
            Code::AlreadyExists,
            create_trial,
            pb::CreateTrialRequest {
                candidate_id: c.clone(),
                seed: 7,
                ..Default::default()
            }
        ),
        case!(
            client,
            "trial back to pending",
            Code::FailedPrecondition,
            update_trial,
            pb::UpdateTrialRequest {
                id: t.clone(),
                state: Some(common::TrialState::Pending as i32),
                ..Default::default()
            }
        ),
        case!(
            client,
            "explicit unspecified state",
            Code::InvalidArgument,
            update_trial,
            pb::UpdateTrialRequest {
                id: t.clone(),
                state: Some(0),
                ..Default::default()
            }
        ),
        case!(
            client,
            "NaN final metric",
            Code::InvalidArgument,
            update_trial,
            pb::UpdateTrialRequest {
                id: t.clone(),
                final_metrics: [("val_accuracy".to_owned(), f64::NAN)]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }
        ),
        case!(
            client,
            "finish with a NaN point is all or nothing",
            Code::InvalidArgument,
            update_trial,
            pb::UpdateTrialRequest {
                id: t.clone(),
                state: Some(common::TrialState::Succeeded as i32),
                points: points(2, f64::NAN, "loss"),
                ..Default::default()
            }
        ),
        case!(
            client,
            "NaN metric value",
            Code::InvalidArgument,
            append_metrics,
            tokio_stream::iter(vec![pb::AppendMetricsRequest {
                trial_id: t.clone(),
                points: points(3, f64::NAN, "loss")
            }])
        ),
        case!(
            client,
            "infinite metric value",
            Code::InvalidArgument,
            append_metrics,
            tokio_stream::iter(vec![pb::AppendMetricsRequest {
                trial_id: t.clone(),
                points: points(3, f64::INFINITY, "loss")
            }])
        ),
        case!(
            client,
            "empty batch",
            Code::InvalidArgument,
            append_metrics,
            tokio_stream::iter(vec![pb::AppendMetricsRequest {
                trial_id: t.clone(),
                points: vec![]
            }])
        ),
        case!(
            client,
            "oversized batch",
            Code::ResourceExhausted,
            append_metrics,
            tokio_stream::iter(vec![pb::AppendMetricsRequest {
                trial_id: t.clone(),
                points: points(MAX_BATCH_POINTS + 1, 1.0, "loss")
            }])
        ),
        case!(
            client,
            "bad metric name",
            Code::InvalidArgument,
            append_metrics,
            tokio_stream::iter(vec![pb::AppendMetricsRequest {
                trial_id: t.clone(),
                points: points(1, 1.0, "val accuracy")
            }])
        ),
        case!(
            client,
            "metrics for unknown trial",
            Code::NotFound,
            append_metrics,
            tokio_stream::iter(vec![pb::AppendMetricsRequest {
                trial_id: MISSING_TRIAL.into(),
                points: points(1, 1.0, "loss")
            }])
        ),
        case!(
            client,
            "message over the size limit",
            Code::OutOfRange,
            append_metrics,
            tokio_stream::iter(vec![pb::AppendMetricsRequest {
                trial_id: t.clone(),
                points: points(40_000, 1.0, "a_rather_long_metric_name_to_fill_bytes")
            }])
        ),
        case!(
            client,
            "NaN p-value",
            Code::InvalidArgument,
            create_evaluation,
            evaluation(&c, vec![t.clone()], f64::NAN)
        ),
        case!(
            client,
            "p-value above one",
            Code::InvalidArgument,
            create_evaluation,
            evaluation(&c, vec![t.clone()], 1.5)
        ),
        case!(
            client,
            "evaluation with a foreign trial",
            Code::InvalidArgument,
            create_evaluation,
            evaluation(&c, vec![other_trial.id.clone()], 0.5)
        ),
        case!(
            client,
            "evaluation listing a trial twice",
            Code::InvalidArgument,
            create_evaluation,
            evaluation(&c, vec![t.clone(), t.clone()], 0.5)
        ),
        case!(
            client,
            "evaluation without decision",
            Code::InvalidArgument,
            create_evaluation,
            pb::CreateEvaluationRequest {
                decision: 0,
                ..evaluation(&c, vec![t.clone()], 0.5)
            }
        ),
        case!(
            client,
            "decision action with spaces",
            Code::InvalidArgument,
            create_decision,
            pb::CreateDecisionRequest {
                experiment_id: e.clone(),
                action: "Add Seeds".into(),
                ..Default::default()
            }
        ),
        case!(
            client,
            "decision about a foreign candidate",
            Code::InvalidArgument,
            create_decision,
            pb::CreateDecisionRequest {
                experiment_id: e.clone(),
                action: "propose".into(),
                candidate_id: other_cand.id.clone(),
                ..Default::default()
            }
        ),
        case!(
            client,
            "list trials without a parent",
            Code::InvalidArgument,
            list_trials,
            pb::ListTrialsRequest::default()
        ),
        case!(
            client,
            "page too large",
            Code::InvalidArgument,
            list_experiments,
            pb::ListExperimentsRequest {
                page_size: 5000,
                ..Default::default()
            }
        ),
        case!(
            client,
            "forged page token",
            Code::InvalidArgument,
            list_experiments,
            pb::ListExperimentsRequest {
                page_token: "zz-not-hex".into(),
                ..Default::default()
            }
        ),
        case!(
            client,
            "page token of another list",
            Code::InvalidArgument,
            list_candidates,
            pb::ListCandidatesRequest {
                experiment_id: e.clone(),
                page_token: hex::encode("e/exp_x"),
                ..Default::default()
            }
        ),
        case!(
            client,
            "malformed sha256",
            Code::InvalidArgument,
            get_artifact,
            pb::GetArtifactRequest {
                sha256: "abc".into()
            }
        ),
        case!(
            client,
            "unknown artifact",
            Code::NotFound,
            get_artifact,
            pb::GetArtifactRequest {
                sha256: "0".repeat(64)
            }
        ),
        case!(
            client,
            "upload without metadata",
            Code::InvalidArgument,
            upload_artifact,
            tokio_stream::iter(vec![pb::UploadArtifactRequest {
                metadata: None,
                data: vec![1, 2, 3]
            }])
        ),
        case!(
            client,
            "upload over the size limit",
            Code::ResourceExhausted,
            upload_artifact,
            tokio_stream::iter(
                (0..3)
                    .map(move |index| pb::UploadArtifactRequest {
                        metadata: (index == 0).then(|| pb::ArtifactMetadata {
                            name: "big.bin".into(),
                            experiment_id: big_upload_experiment.clone(),
                            ..Default::default()
                        }),
                        data: vec![7; 30 * 1024]
                    })
                    .collect::<Vec<_>>()
            )
        ),
        case!(
            client,
            "upload with a wrong expected hash",
            Code::DataLoss,
            upload_artifact,
            tokio_stream::iter(vec![pb::UploadArtifactRequest {
                metadata: Some(pb::ArtifactMetadata {
                    name: "w.bin".into(),
                    experiment_id: e.clone(),
                    expected_sha256: "a".repeat(64),
                    ..Default::default()
                }),
                data: vec![1, 2, 3]
            }])
        ),
        case!(
            client,
            "upload linked to unknown experiment",
            Code::NotFound,
            upload_artifact,
            tokio_stream::iter(vec![pb::UploadArtifactRequest {
                metadata: Some(pb::ArtifactMetadata {
                    name: "w.bin".into(),
                    experiment_id: MISSING_EXPERIMENT.into(),
                    ..Default::default()
                }),
                data: vec![1]
            }])
        ),
        case!(
            client,
            "watch unknown experiment",
            Code::NotFound,
            watch_experiment,
            pb::WatchExperimentRequest {
                experiment_id: MISSING_EXPERIMENT.into(),
                ..Default::default()
            }
        ),
        case!(
            client,
            "export unknown experiment",
            Code::NotFound,
            export_experiment,
            pb::ExportExperimentRequest {
                experiment_id: MISSING_EXPERIMENT.into()
            }
        ),
    ];
    let mut failures = Vec::new();
    for (name, expected, call) in cases {
        match call.await {
            Ok(()) => failures.push(format!("{name}: accepted, expected {expected:?}")),
            Err(status) if status.code() != expected => failures.push(format!(
                "{name}: {:?} ({}), expected {expected:?}",
                status.code(),
                status.message()
            )),
            Err(status) if status.message().trim().len() < 10 => failures.push(format!(
                "{name}: message {:?} says nothing a person can act on",
                status.message()
            )),
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "wrong answers:\n{}",
        failures.join("\n")
    );

    let after = snapshot(&mut client, &exp.id).await;
    assert_eq!(
        before.1, after.1,
        "no event was appended by a refused request"
    );
    assert_eq!(
        before.2, after.2,
        "no experiment was created by a refused request"
    );
    assert_eq!(before.0, after.0, "the experiment's records are unchanged");
    let temp_uploads = std::fs::read_dir(registry.config.store.path.join("artifacts/tmp"))
        .expect("artifact temp dir")
        .count();
    assert_eq!(temp_uploads, 0, "refused uploads leave no temporary file");
    registry.stop().await.expect("clean stop");
}
