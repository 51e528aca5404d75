//! sandbox-svc's jobs through real gRPC and the process sandbox: a ModelSpec trained by
//! ra-trainer on a prepared dataset (epochs streamed, weights returned), a user's command
//! speaking the metrics protocol, the queue (RESOURCE_EXHAUSTED when full, cancellation,
//! watching from the start), a RunJob caller going away, and bad requests.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Options, SandboxProcess, run_job, script_job};
use ra_proto::common::v1::{ExitReason, JobState, ResourceLimits};
use ra_proto::sandbox::v1 as pb;
use tokio_stream::StreamExt;
use tonic::Code;

/// A 16-feature, 4-class tabular dataset prepared under `cache`; its id.
fn prepared(cache: &Path) -> String {
    common::prepared_tabular(cache, 3)
}

fn train_job(dataset: &str, save_weights: bool) -> pb::JobSpec {
    common::mlp_train_job(dataset, 7, save_weights)
}

async fn service(options: Options) -> (SandboxProcess, tempfile::TempDir, String) {
    let root = tempfile::tempdir().expect("tempdir");
    let cache = root.path().join("datasets");
    let id = prepared(&cache);
    let service = SandboxProcess::start(
        root.path(),
        &Options {
            dataset_cache: Some(cache),
            ..options
        },
    )
    .await;
    (service, root, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spec_trains_in_the_sandbox_with_epochs_streamed_and_weights_returned() {
    let (service, _root, dataset) = service(Options::default()).await;
    let mut client = service.client().await;
    let outcome = run_job(&mut client, train_job(&dataset, true)).await;
    let result = outcome.result();
    assert_eq!(
        outcome.reason(),
        ExitReason::Completed,
        "{}",
        result.message
    );
    let epochs: Vec<&pb::EpochMetrics> = outcome
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Some(pb::job_event::Event::Epoch(epoch)) => Some(epoch),
            _ => None,
        })
        .collect();
    assert_eq!(
        epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(epochs[2].metrics["val_accuracy"] > 0.5, "{:?}", epochs[2]);
    assert!(result.final_metrics["val_accuracy"] > 0.5);
    let names: Vec<String> = result
        .outputs
        .iter()
        .map(|o| {
            Path::new(&o.path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    assert!(
        names.contains(&"weights.safetensors".to_owned()),
        "{names:?}"
    );
    for output in &result.outputs {
        let bytes = std::fs::read(&output.path).expect("the output was kept");
        assert_eq!(bytes.len() as u64, output.size_bytes);
        assert_eq!(output.sha256.len(), 64);
    }
    let enforcement = outcome.started().expect("a started event");
    assert!(enforcement.seccomp && enforcement.network_isolated);
    assert!(
        ["cgroup-v2", "cgroup-v1", "rlimit"].contains(&enforcement.resource_control.as_str()),
        "{enforcement:?}"
    );
    assert!(enforcement.namespaces.contains(&"pid".to_owned()));
    let usage = result.usage.expect("usage");
    assert!(
        usage.wall_seconds > 0.0 && usage.peak_rss_bytes > 0,
        "{usage:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_speaks_the_metrics_protocol_reads_the_dataset_and_leaves_outputs() {
    let (service, _root, dataset) = service(Options::default()).await;
    let mut client = service.client().await;
    let script = r#"
[[ -r $RA_DATASET_DIR/manifest.json ]] || { echo "no dataset" >&2; exit 4; }
echo "plain log line"
echo '{"event":"epoch","epoch":1,"val_accuracy":0.5,"train_loss":1.25,"seconds":0.1}'
echo '{"event":"epoch","epoch":2,"val_accuracy":0.75,"train_loss":0.5,"seconds":0.1}'
echo "a warning" >&2
echo hello > "$RA_OUTPUT_DIR/result.txt"
echo '{"event":"final","val_accuracy":0.75,"epochs":2}'
"#;
    let mut job = script_job(
        "train.sh",
        script,
        ResourceLimits::default(),
        pb::Backend::Process,
    );
    if let Some(pb::job_spec::Kind::Command(command)) = &mut job.kind {
        command.prepared_dataset_id = dataset;
    }
    let outcome = run_job(&mut client, job).await;
    let result = outcome.result();
    assert_eq!(
        outcome.reason(),
        ExitReason::Completed,
        "{}",
        result.message
    );
    assert_eq!(result.final_metrics.get("val_accuracy"), Some(&0.75));
    let logs = outcome.logs();
    assert!(logs.contains(&"plain log line".to_owned()) && logs.contains(&"a warning".to_owned()));
    let epochs = outcome
        .events
        .iter()
        .filter(|e| matches!(e.event, Some(pb::job_event::Event::Epoch(_))))
        .count();
    assert_eq!(epochs, 2);
    assert_eq!(result.outputs.len(), 1);
    assert_eq!(
        std::fs::read_to_string(&result.outputs[0].path).expect("kept"),
        "hello\n"
    );
    // A failing command: exit code and the end of its stderr in the message.
    let outcome = run_job(
        &mut client,
        script_job(
            "fail.sh",
            "echo 'went wrong' >&2; exit 3",
            ResourceLimits::default(),
            pb::Backend::Process,
        ),
    )
    .await;
    assert_eq!(outcome.reason(), ExitReason::Failed);
    assert_eq!(outcome.result().exit_code, 3);
    assert!(
        outcome.result().message.contains("went wrong"),
        "{}",
        outcome.result().message
    );
}

fn spin(seconds: u64) -> pb::JobSpec {
    script_job(
        "spin.sh",
        "echo started; while :; do :; done",
        ResourceLimits {
            timeout_seconds: seconds,
            ..Default::default()
        },
        pb::Backend::Process,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queue_holds_refuses_when_full_cancels_and_replays() {
    let (service, _root, _) = service(Options {
        max_concurrent_jobs: 1,
        max_queued_jobs: 1,
        ..Options::default()
    })
    .await;
    let mut client = service.client().await;
    let submit = |id: &str| pb::SubmitJobRequest {
        job: Some(spin(300)),
        job_id: id.into(),
    };
    let first = client
        .submit_job(submit("first"))
        .await
        .expect("first")
        .into_inner();
    assert_eq!(first.job_id, "first");
    // Wait until it runs, so that the next one queues.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = client
            .get_job(pb::GetJobRequest {
                job_id: "first".into(),
            })
            .await
            .expect("get")
            .into_inner();
        if status.state == JobState::Running as i32 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = client
        .submit_job(submit("second"))
        .await
        .expect("second")
        .into_inner();
    assert_eq!(second.state, JobState::Queued as i32);
    assert_eq!(second.queue_position, 1);
    // Resubmitting the same id and spec is idempotent; another spec under it is refused.
    assert_eq!(
        client
            .submit_job(submit("second"))
            .await
            .expect("again")
            .into_inner()
            .job_id,
        "second"
    );
    let conflict = client
        .submit_job(pb::SubmitJobRequest {
            job: Some(spin(5)),
            job_id: "second".into(),
        })
        .await
        .expect_err("conflict");
    assert_eq!(conflict.code(), Code::AlreadyExists);
    let full = client
        .submit_job(submit("third"))
        .await
        .expect_err("queue full");
    assert_eq!(full.code(), Code::ResourceExhausted, "{}", full.message());

    let cancelled = client
        .cancel_job(pb::CancelJobRequest {
            job_id: "second".into(),
            reason: "test".into(),
        })
        .await
        .expect("cancel queued")
        .into_inner();
    assert_eq!(cancelled.state, JobState::Cancelled as i32);
    let started = tokio::time::Instant::now();
    let cancelled = client
        .cancel_job(pb::CancelJobRequest {
            job_id: "first".into(),
            reason: "test".into(),
        })
        .await
        .expect("cancel running")
        .into_inner();
    assert_eq!(cancelled.state, JobState::Cancelled as i32, "{cancelled:?}");
    let result = cancelled.result.expect("result");
    assert_eq!(result.exit_reason, ExitReason::Cancelled as i32);
    eprintln!("cancel took {:?}", started.elapsed());

    // WatchJob replays the finished job from its first event.
    let events: Vec<pb::JobEvent> = client
        .watch_job(pb::WatchJobRequest {
            job_id: "first".into(),
        })
        .await
        .expect("watch")
        .into_inner()
        .map(|e| e.expect("event"))
        .collect()
        .await;
    assert!(matches!(
        events.first().and_then(|e| e.event.as_ref()),
        Some(pb::job_event::Event::Queued(_))
    ));
    assert!(
        events
            .iter()
            .any(|e| matches!(e.event, Some(pb::job_event::Event::Started(_))))
    );
    assert!(matches!(
        events.last().and_then(|e| e.event.as_ref()),
        Some(pb::job_event::Event::Finished(_))
    ));

    let listed = client
        .list_jobs(pb::ListJobsRequest {
            state: JobState::Cancelled as i32,
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.jobs.len(), 1);
    assert_eq!(listed.jobs[0].job_id, "first");
    let rest = client
        .list_jobs(pb::ListJobsRequest {
            state: JobState::Cancelled as i32,
            page_size: 1,
            page_token: listed.next_page_token,
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(rest.jobs[0].job_id, "second");
    assert!(rest.next_page_token.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runjob_caller_that_goes_away_cancels_its_job() {
    let (service, _root, _) = service(Options::default()).await;
    let mut client = service.client().await;
    let mut stream = client
        .run_job(pb::RunJobRequest {
            job: Some(spin(300)),
            job_id: "walked-away".into(),
        })
        .await
        .expect("run")
        .into_inner();
    while let Some(event) = stream.next().await {
        if matches!(
            event.expect("event").event,
            Some(pb::job_event::Event::Log(_))
        ) {
            break;
        }
    }
    drop(stream);
    let cancelled = common::eventually(20, || {
        std::fs::read_dir(service.root.join("jobs"))
            .map(|d| d.count() == 0)
            .unwrap_or(true)
    })
    .await;
    assert!(cancelled, "the job kept running after its caller left");
    let status = client
        .get_job(pb::GetJobRequest {
            job_id: "walked-away".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(status.state, JobState::Cancelled as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_get_clear_errors() {
    let (service, _root, dataset) = service(Options::default()).await;
    let mut client = service.client().await;
    let run = |job: Option<pb::JobSpec>, id: &str| pb::RunJobRequest {
        job,
        job_id: id.into(),
    };

    let missing = client.run_job(run(None, "")).await.expect_err("no job");
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert!(
        missing.message().contains("job is missing"),
        "{}",
        missing.message()
    );

    let curl = script_job("x.sh", "", ResourceLimits::default(), pb::Backend::Process);
    let mut curl = curl;
    if let Some(pb::job_spec::Kind::Command(command)) = &mut curl.kind {
        command.argv = vec!["/usr/bin/curl".into()];
    }
    let refused = client
        .run_job(run(Some(curl), ""))
        .await
        .expect_err("allowlist");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("command_allowlist"),
        "{}",
        refused.message()
    );

    let unknown = client
        .run_job(run(Some(train_job("no-such-dataset", false)), ""))
        .await
        .expect_err("dataset");
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(
        unknown.message().contains("dataset_missing"),
        "{}",
        unknown.message()
    );

    let bad_id = client
        .run_job(run(Some(train_job(&dataset, false)), "../etc"))
        .await
        .expect_err("id");
    assert_eq!(bad_id.code(), Code::InvalidArgument);

    let huge = pb::JobSpec {
        limits: Some(ResourceLimits {
            memory_bytes: u64::MAX,
            ..Default::default()
        }),
        ..train_job(&dataset, false)
    };
    let report = client
        .validate_job(pb::ValidateJobRequest { job: Some(huge) })
        .await
        .expect("validate")
        .into_inner();
    assert!(!report.ok);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.rule == "limit_cap" && v.value == u64::MAX.to_string())
    );
    let report = client
        .validate_job(pb::ValidateJobRequest {
            job: Some(train_job(&dataset, false)),
        })
        .await
        .expect("validate")
        .into_inner();
    assert!(report.ok, "{:?}", report.violations);
    assert_eq!(report.layers.len(), 3);
    assert_eq!(report.parameters, 16 * 32 + 32 + 32 * 4 + 4);

    let docker = pb::JobSpec {
        backend: 7,
        ..train_job(&dataset, false)
    };
    assert_eq!(
        client
            .run_job(run(Some(docker), ""))
            .await
            .expect_err("backend")
            .code(),
        Code::InvalidArgument
    );

    for code in [
        client
            .get_job(pb::GetJobRequest {
                job_id: "nope".into(),
            })
            .await
            .expect_err("get")
            .code(),
        client
            .cancel_job(pb::CancelJobRequest {
                job_id: "nope".into(),
                reason: String::new(),
            })
            .await
            .expect_err("cancel")
            .code(),
        client
            .watch_job(pb::WatchJobRequest {
                job_id: "nope".into(),
            })
            .await
            .expect_err("watch")
            .code(),
    ] {
        assert_eq!(code, Code::NotFound);
    }
    let token = client
        .list_jobs(pb::ListJobsRequest {
            state: 0,
            page_size: 0,
            page_token: "zz".into(),
        })
        .await
        .expect_err("token");
    assert_eq!(token.code(), Code::InvalidArgument);
    // With Docker disabled in this configuration, a Docker job is refused with the reason.
    let docker = pb::JobSpec {
        backend: pb::Backend::Docker as i32,
        ..train_job(&dataset, false)
    };
    let refused = client
        .run_job(run(Some(docker), ""))
        .await
        .expect_err("docker off");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("docker"),
        "{}",
        refused.message()
    );
}

/// The device a train job names: the capabilities list what the trainer has (asked once, at
/// start), `auto` runs on the fastest of them, a device this trainer lacks is refused with what
/// is missing before anything runs, and an unknown name is a bad request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_train_job_runs_on_a_device_it_has_and_is_refused_one_it_lacks() {
    let (service, _root, dataset) = service(Options::default()).await;
    let mut client = service.client().await;
    let capabilities = client
        .get_capabilities(pb::GetCapabilitiesRequest {})
        .await
        .expect("capabilities")
        .into_inner();
    let names: Vec<&str> = capabilities
        .devices
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["libtorch-cuda", "cuda", "libtorch", "flex"]);
    let device = |name: &str| {
        capabilities
            .devices
            .iter()
            .find(|d| d.name == name)
            .cloned()
            .expect("listed")
    };
    assert!(device("flex").available);
    let cuda = device("cuda");
    assert!(
        !cuda.available && cuda.unavailable_reason.contains("CubeCL"),
        "{cuda:?}"
    );
    let with_device = |name: &str| {
        let mut job = train_job(&dataset, false);
        if let Some(pb::job_spec::Kind::Train(train)) = &mut job.kind {
            train.device = name.into();
        }
        job
    };

    let refused = client
        .run_job(pb::RunJobRequest {
            job: Some(with_device("cuda")),
            ..Default::default()
        })
        .await
        .expect_err("no cuda here");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("device cuda is unavailable")
            && refused.message().contains("CubeCL"),
        "{}",
        refused.message()
    );
    let unknown = client
        .run_job(pb::RunJobRequest {
            job: Some(with_device("tpu")),
            ..Default::default()
        })
        .await
        .expect_err("unknown device");
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(
        unknown.message().contains("\"tpu\""),
        "{}",
        unknown.message()
    );
    // ValidateJob tells the device a job would run on, and refuses a missing one as RunJob does.
    let report = client
        .validate_job(pb::ValidateJobRequest {
            job: Some(with_device("auto")),
        })
        .await
        .expect("validated")
        .into_inner();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.device, "flex", "the fastest device this trainer has");
    let refused = client
        .validate_job(pb::ValidateJobRequest {
            job: Some(with_device("cuda")),
        })
        .await
        .expect_err("no cuda here");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let listed = client
        .list_jobs(pb::ListJobsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.jobs.is_empty(), "refused jobs ran: {listed:?}");

    let outcome = run_job(&mut client, with_device("auto")).await;
    assert_eq!(
        outcome.reason(),
        ExitReason::Completed,
        "{}",
        outcome.result().message
    );
}
