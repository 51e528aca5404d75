//! The container images as a platform runs them (deploy/docker): every image is FROM scratch
//! (no shell), runs as 65532:65532, and each service starts with a read-only root filesystem,
//! no capabilities and no new privileges, its state on a tmpfs, and answers on a private Docker
//! bridge network of its own where its peers are found by name: the planner parses a goal against dataset-svc's
//! catalog, through the evaluator's and the sandbox's health, end to end. Needs Docker and the
//! images built by `deploy/docker/build-images.sh` (tag `$RA_IMAGE_TAG`, default `dev`);
//! skips loudly without them (a failure in CI).

use std::process::Command;
use std::time::Duration;

use ra_integration_tests::skip_or_fail;
use ra_proto::planner::v1 as pb;

const IMAGES: [&str; 6] = [
    "registry-svc",
    "dataset-svc",
    "sandbox-svc",
    "evaluator-svc",
    "planner-svc",
    "trainer",
];

fn tag() -> String {
    std::env::var("RA_IMAGE_TAG").unwrap_or_else(|_| "dev".into())
}

fn docker(args: &[&str]) -> Result<String, String> {
    let output = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(format!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Containers and the network of one test, removed when it ends, however it ends.
struct Deployment {
    network: String,
    containers: Vec<String>,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for container in &self.containers {
            let _ = docker(&["rm", "-f", container]);
        }
        let _ = docker(&["network", "rm", &self.network]);
    }
}

impl Deployment {
    /// Starts `image` as `name` on the network, hardened, with `env`, publishing `port` on a
    /// free 127.0.0.1 port; that host port.
    fn start(&mut self, name: &str, image: &str, port: u16, env: &[(&str, String)]) -> u16 {
        let container = format!("{}-{name}", self.network);
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            &container,
            "--network",
            &self.network,
            "--network-alias",
            name,
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--tmpfs",
            "/state:uid=65532,gid=65532,mode=0700",
            "-p",
        ]
        .map(str::to_owned)
        .to_vec();
        args.push(format!("127.0.0.1::{port}"));
        for (key, value) in env {
            args.push("-e".into());
            args.push(format!("{key}={value}"));
        }
        args.push(format!("research-agent/{image}:{}", tag()));
        args.push("--listen".into());
        args.push(format!("0.0.0.0:{port}"));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = docker(&refs).expect("start the container");
        self.containers.push(id);
        let published = docker(&["port", &container, &format!("{port}/tcp")]).expect("its port");
        published
            .lines()
            .next()
            .and_then(|line| line.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no published port in {published:?}"))
    }

    fn logs(&self) -> String {
        self.containers
            .iter()
            .map(|c| docker(&["logs", c]).unwrap_or_else(|e| e))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[test]
fn every_image_is_scratch_and_non_root() {
    if docker(&["version"]).is_err() {
        return skip_or_fail(
            "every_image_is_scratch_and_non_root",
            "Docker is not available",
        );
    }
    for image in IMAGES {
        let reference = format!("research-agent/{image}:{}", tag());
        let Ok(user) = docker(&[
            "image",
            "inspect",
            "--format",
            "{{.Config.User}}",
            &reference,
        ]) else {
            return skip_or_fail(
                "every_image_is_scratch_and_non_root",
                &format!("{reference} is not built (deploy/docker/build-images.sh)"),
            );
        };
        assert_eq!(user, "65532:65532", "{reference}");
        let shell = docker(&[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/sh",
            &reference,
            "-c",
            "true",
        ]);
        assert!(shell.is_err(), "{reference} has a shell");
        let help = docker(&["run", "--rm", "--read-only", &reference, "--help"])
            .unwrap_or_else(|e| panic!("{reference} does not start: {e}"));
        assert!(help.contains("Usage"), "{reference}: {help}");
    }
}

#[tokio::test]
async fn the_services_serve_from_their_images_on_a_private_network() {
    let test = "the_services_serve_from_their_images_on_a_private_network";
    if docker(&["version"]).is_err() {
        return skip_or_fail(test, "Docker is not available");
    }
    if docker(&[
        "image",
        "inspect",
        &format!("research-agent/planner-svc:{}", tag()),
    ])
    .is_err()
    {
        return skip_or_fail(
            test,
            "the images are not built (deploy/docker/build-images.sh)",
        );
    }
    let network = format!("ra-images-{}", std::process::id());
    docker(&["network", "create", &network]).expect("a private network");
    let mut deployment = Deployment {
        network,
        containers: Vec::new(),
    };
    let registry = deployment.start(
        "registry",
        "registry-svc",
        50055,
        &[("RA_STORE__PATH", "/state/registry".into())],
    );
    let dataset = deployment.start(
        "dataset",
        "dataset-svc",
        50054,
        &[
            ("RA_DATA__CACHE_DIR", "/state/cache".into()),
            ("RA_DATA__DATA_DIR", "/state/originals".into()),
            ("RA_DATA__OFFLINE", "true".into()),
        ],
    );
    let sandbox = deployment.start(
        "sandbox",
        "sandbox-svc",
        50053,
        &[("RA_SANDBOX__WORK_DIR", "/state/jobs".into())],
    );
    let peer = |name: &str, port: u16| format!("http://{name}:{port}");
    let evaluator = deployment.start(
        "evaluator",
        "evaluator-svc",
        50052,
        &[
            ("RA_EVALUATOR__REGISTRY_URL", peer("registry", 50055)),
            ("RA_EVALUATOR__SANDBOX_URL", peer("sandbox", 50053)),
            ("RA_EVALUATOR__DATASET_URL", peer("dataset", 50054)),
        ],
    );
    let planner = deployment.start(
        "planner",
        "planner-svc",
        50051,
        &[
            ("RA_PLANNER__REGISTRY_URL", peer("registry", 50055)),
            ("RA_PLANNER__EVALUATOR_URL", peer("evaluator", 50052)),
            ("RA_PLANNER__SANDBOX_URL", peer("sandbox", 50053)),
            ("RA_PLANNER__DATASET_URL", peer("dataset", 50054)),
            ("RA_PLANNER__REPORTS_DIR", "/state/reports".into()),
        ],
    );
    let local = |port: u16| format!("http://127.0.0.1:{port}");
    for (port, service) in [
        (registry, ra_proto::service_names::REGISTRY),
        (dataset, ra_proto::service_names::DATASET),
    ] {
        let waited = ra_integration_tests::wait_serving(
            &local(port),
            service,
            Duration::from_secs(60),
            Duration::from_millis(200),
            |_| async { None },
        )
        .await;
        assert!(waited.is_ok(), "{waited:?}\n{}", deployment.logs());
    }
    // Without privileges the sandbox's process backend cannot make namespaces: it says so
    // (NOT_SERVING, with the reason), and so do the services that need it.
    let mut sandbox_client = ra_client::sandbox("sandbox", &local(sandbox))
        .expect("client")
        .client();
    let capabilities = sandbox_client
        .get_capabilities(ra_proto::sandbox::v1::GetCapabilitiesRequest {})
        .await
        .map_err(|s| format!("{s:?}\n{}", deployment.logs()))
        .expect("the sandbox answers")
        .into_inner();
    assert!(!capabilities.backends.is_empty(), "{capabilities:?}");
    for (port, service) in [
        (evaluator, ra_proto::service_names::EVALUATOR),
        (planner, ra_proto::service_names::PLANNER),
    ] {
        // Any answer (their peers decide SERVING); a container still starting is waited for.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let answered = loop {
            let answered = ra_client::health::check(&local(port), service).await;
            if answered.is_ok() || std::time::Instant::now() >= deadline {
                break answered;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(
            answered.is_ok(),
            "{service}: {answered:?}\n{}",
            deployment.logs()
        );
    }
    // The planner reaches dataset-svc by name for the catalog.
    let mut planner_client = ra_client::planner("planner", &local(planner))
        .expect("client")
        .client();
    let goal = planner_client
        .parse_goal(pb::ParseGoalRequest {
            text: "a CNN for shapes with at least 50% accuracy".into(),
        })
        .await
        .map_err(|s| format!("{s:?}\n{}", deployment.logs()))
        .expect("a goal parsed through dataset-svc's catalog")
        .into_inner();
    assert_eq!(goal.dataset, "shapes");
}
