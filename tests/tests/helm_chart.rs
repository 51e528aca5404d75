//! deploy/helm/research-agent checked as a platform's CI checks a chart: `helm lint --strict`,
//! and every rendered object validated against the schemas of Kubernetes 1.25 and 1.35
//! (`kubernetes-validate --strict`: unknown or misspelt fields fail) with the default values,
//! the local test cluster's values and a GPU configuration. Needs `helm` and
//! `kubernetes-validate` on PATH (`local-cluster install-tools`; `.ci/run` puts them there);
//! skips loudly without them (a failure in CI).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use ra_integration_tests::{output_text as text, skip_or_fail};

fn chart() -> PathBuf {
    ra_integration_tests::repo_path("deploy/helm/research-agent")
}

fn tools_present(test: &str) -> bool {
    for tool in ["helm", "kubernetes-validate"] {
        let found = Command::new(tool)
            .arg(if tool == "helm" { "version" } else { "--help" })
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            skip_or_fail(test, &format!("{tool} is not on PATH"));
            return false;
        }
    }
    true
}

fn helm(args: &[&str]) -> Output {
    Command::new("helm").args(args).output().expect("run helm")
}

/// The manifests `helm template` renders with `values` (extra `--set`/`-f` arguments).
fn render(values: &[&str]) -> String {
    let chart = chart().display().to_string();
    let mut args = vec!["template", "ra", &chart, "--namespace", "research"];
    args.extend_from_slice(values);
    let rendered = helm(&args);
    assert!(rendered.status.success(), "{}", text(&rendered));
    String::from_utf8_lossy(&rendered.stdout).into_owned()
}

fn validate(manifests: &str, version: &str) -> Output {
    let mut child = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", version, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubernetes-validate");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(manifests.as_bytes())
        .expect("write manifests");
    child.wait_with_output().expect("kubernetes-validate ends")
}

#[test]
fn the_chart_lints_strictly() {
    if !tools_present("the_chart_lints_strictly") {
        return;
    }
    let chart = chart().display().to_string();
    let local = format!("{chart}/values-local-cluster.yaml");
    for extra in [vec![], vec!["-f", &local]] {
        let mut args = vec!["lint", "--strict", &chart];
        args.extend_from_slice(&extra);
        let linted = helm(&args);
        assert!(linted.status.success(), "{extra:?}: {}", text(&linted));
    }
}

#[test]
fn every_rendered_object_is_valid_on_kubernetes_1_25_and_1_35() {
    if !tools_present("every_rendered_object_is_valid_on_kubernetes_1_25_and_1_35") {
        return;
    }
    let local = chart()
        .join("values-local-cluster.yaml")
        .display()
        .to_string();
    let configurations: [(&str, Vec<&str>); 4] = [
        ("default values", vec![]),
        ("without auth", vec!["--set", "auth.enabled=false"]),
        (
            "local cluster",
            vec!["-f", &local, "--set", "hostPathVolumes=/var/tmp/ra-volumes"],
        ),
        (
            "GPU trials",
            vec![
                "--set",
                "sandbox.trials.gpus=1",
                "--set-json",
                r#"sandbox.trials.tolerations=[{"key":"nvidia.com/gpu","operator":"Exists","effect":"NoSchedule"}]"#,
                "--set-json",
                r#"sandbox.trials.nodeSelector={"nvidia.com/gpu.present":"true"}"#,
            ],
        ),
    ];
    for (name, values) in &configurations {
        let manifests = render(values);
        for kind in [
            "kind: StatefulSet",
            "kind: Deployment",
            "kind: Service",
            "kind: ConfigMap",
            "kind: Role",
            "kind: RoleBinding",
            "kind: ServiceAccount",
            "kind: NetworkPolicy",
            "kind: PersistentVolumeClaim",
        ] {
            assert!(manifests.contains(kind), "{name}: no {kind}");
        }
        assert!(manifests.contains("checksum/config"), "{name}");
        for version in ["1.25.0", "1.35.0"] {
            let validated = validate(&manifests, version);
            assert!(
                validated.status.success(),
                "{name} on {version}: {}",
                text(&validated)
            );
        }
    }
}

#[test]
fn rendered_values_reach_the_services_configuration() {
    if !tools_present("rendered_values_reach_the_services_configuration") {
        return;
    }
    let defaults = render(&[]);
    // Peers through their Services' names over TLS; native gRPC probes on the plaintext
    // health ports; hardened pods.
    assert!(
        defaults
            .contains(r#"registry_url = "https://ra-research-agent-registry.research.svc:50055""#),
        "{defaults}"
    );
    assert!(
        defaults.contains("grpc:\n              port: 50155"),
        "{defaults}"
    );
    assert!(defaults.contains(r#"health_listen = "0.0.0.0:50155""#));
    assert!(defaults.contains("kind: Secret"));
    assert!(defaults.contains(r#"client_ca_file = "/etc/research-agent/auth/ca.crt""#));
    // The sandbox runs jobs for the evaluator alone; the planner may only ask and check.
    let sandbox = defaults
        .split("sandbox.toml: |")
        .nth(1)
        .and_then(|rest| rest.split("evaluator.toml: |").next())
        .expect("the sandbox's configuration");
    assert!(
        sandbox.contains("\"evaluator\" = [\"*\"]")
            && sandbox.contains("\"planner\" = [\"GetCapabilities\", \"ValidateJob\"]")
            && !sandbox.contains("researcher"),
        "{sandbox}"
    );
    let plain = render(&["--set", "auth.enabled=false"]);
    assert!(
        plain.contains(r#"registry_url = "http://ra-research-agent-registry.research.svc:50055""#)
    );
    assert!(!plain.contains("kind: Secret") && !plain.contains("[server.tls]"));
    assert!(defaults.contains("readOnlyRootFilesystem: true"));
    assert!(defaults.contains("type: RuntimeDefault"));
    assert!(defaults.contains("drop: [ALL]") || defaults.contains("- ALL"));
    // The sandbox's Role: Jobs and pod logs, nothing cluster-wide.
    assert!(!defaults.contains("kind: ClusterRole"));
    let local = chart()
        .join("values-local-cluster.yaml")
        .display()
        .to_string();
    let local = render(&["-f", &local, "--set", "hostPathVolumes=/var/tmp/ra-volumes"]);
    assert!(local.contains(r#"registry_url = "https://127.0.0.1:31055""#));
    assert!(local.contains("--probe"));
    assert!(local.contains("hostNetwork: true"));
    assert!(local.contains("kind: PersistentVolume\n"));
    let gpu = render(&["--set", "sandbox.trials.gpus=2"]);
    assert!(gpu.contains("gpus = 2"));
}
