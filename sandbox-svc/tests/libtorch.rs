//! A LibTorch trainer (ra-trainer built with `--features tch`, against the torch venv of the
//! README's libtorch set-up) inside the sandbox: the process backend makes the folders its
//! libraries load from visible (found by the dynamic linker, not listed by hand), the docker
//! backend's image carries them; `libtorch` and `auto` train there with the same metrics for
//! the same seed in both, and `libtorch-cuda` is refused before anything runs on a machine
//! without a GPU. Runs with `--features sandbox-svc/tch` (CI's libtorch step).

#![cfg(feature = "tch")]

mod common;

use std::path::Path;

use common::{Options, SandboxProcess, run_job};
use ra_proto::common::v1::ExitReason;
use ra_proto::sandbox::v1 as pb;
use tonic::Code;

fn train_job(dataset: &str, device: &str, backend: pb::Backend) -> pb::JobSpec {
    let mut job = common::mlp_train_job(dataset, 11, false);
    if let Some(pb::job_spec::Kind::Train(train)) = &mut job.kind {
        train.device = device.into();
    }
    pb::JobSpec {
        backend: backend as i32,
        limits: Some(ra_proto::common::v1::ResourceLimits {
            // LibTorch maps a few hundred MiB of libraries.
            memory_bytes: 2 << 30,
            timeout_seconds: 300,
            ..Default::default()
        }),
        ..job
    }
}

async fn service(root: &Path) -> (SandboxProcess, String) {
    let cache = root.join("datasets");
    let dataset = common::prepared_tabular(&cache, 5);
    let trainer = ra_test_support::workspace_binary_with("ra-trainer", "ra-trainer/tch");
    let service = SandboxProcess::start(
        root,
        &Options {
            docker: true,
            dataset_cache: Some(cache),
            trainer: Some(trainer),
            ..Options::default()
        },
    )
    .await;
    (service, dataset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn libtorch_trains_in_the_process_and_docker_sandboxes_with_the_same_metrics() {
    const TEST: &str = "libtorch_trains_in_the_process_and_docker_sandboxes_with_the_same_metrics";
    let root = tempfile::tempdir().expect("tempdir");
    let (service, dataset) = service(root.path()).await;
    let mut client = service.client().await;

    let capabilities = client
        .get_capabilities(pb::GetCapabilitiesRequest {})
        .await
        .expect("capabilities")
        .into_inner();
    let docker = capabilities
        .backends
        .iter()
        .find(|b| b.backend == pb::Backend::Docker as i32)
        .expect("docker listed");
    if !docker.available {
        ra_test_support::skip_or_fail(
            TEST,
            &format!("the docker backend ({})", docker.unavailable_reason),
        );
        return;
    }
    let libtorch = capabilities
        .devices
        .iter()
        .find(|d| d.name == "libtorch")
        .expect("listed");
    assert!(libtorch.available, "{libtorch:?}");

    // auto on the process backend is the fastest device present: libtorch (no GPU here).
    let report = client
        .validate_job(pb::ValidateJobRequest {
            job: Some(train_job(&dataset, "auto", pb::Backend::Process)),
        })
        .await
        .expect("validated")
        .into_inner();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.device, "libtorch");

    let mut metrics = Vec::new();
    for backend in [pb::Backend::Process, pb::Backend::Docker] {
        let outcome = run_job(&mut client, train_job(&dataset, "libtorch", backend)).await;
        let result = outcome.result();
        assert_eq!(
            outcome.reason(),
            ExitReason::Completed,
            "{backend:?}: {}\n{}",
            result.message,
            outcome.logs().join("\n")
        );
        let accuracy = result.final_metrics["val_accuracy"];
        assert!(accuracy > 0.5, "{backend:?}: val_accuracy {accuracy}");
        // What training decides (not its time or memory).
        let learned: Vec<(String, f64)> = ["val_accuracy", "val_loss", "epochs", "parameters"]
            .iter()
            .map(|name| ((*name).to_owned(), result.final_metrics[*name]))
            .collect();
        metrics.push(learned);
    }
    assert_eq!(
        metrics[0], metrics[1],
        "the same seed on the same device gives the same metrics in both sandboxes"
    );

    let refused = client
        .run_job(pb::RunJobRequest {
            job: Some(train_job(&dataset, "libtorch-cuda", pb::Backend::Process)),
            ..Default::default()
        })
        .await
        .expect_err("no GPU here");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("libtorch-cuda") && refused.message().contains("CUDA"),
        "{}",
        refused.message()
    );
}
