//! The crate graph's rules, read from `cargo metadata`: services meet only through `ra-proto`
//! and `ra-client`, so no service crate depends on another (not even for its tests), and the
//! shared crates depend on no service. See ARCHITECTURE.md.

use std::collections::BTreeMap;

use serde_json::Value;

/// Crates that no service and no shared crate may depend on.
fn is_service(name: &str) -> bool {
    name.ends_with("-svc")
}

const SHARED: [&str; 6] = [
    "ra-proto",
    "ra-client",
    "ra-spec",
    "ra-prepared",
    "ra-serve",
    "ra-test-support",
];

/// The trial program: no service in what it is built from (its tests prepare real datasets
/// with dataset-svc's library).
const TRAINER: &str = "ra-trainer";

/// Crates that link every service: only the binaries' and tests' own crates may use them.
const EVERYTHING: [&str; 2] = ["ra-cli", "ra-integration-tests"];

fn workspace_dependencies() -> BTreeMap<String, Vec<(String, String)>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    let members: Vec<&str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|package| {
            let name = package["name"].as_str().expect("name").to_owned();
            let deps = package["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter_map(|dep| {
                    let dep_name = dep["name"].as_str()?;
                    members.contains(&dep_name).then(|| {
                        (
                            dep_name.to_owned(),
                            dep["kind"].as_str().unwrap_or("normal").to_owned(),
                        )
                    })
                })
                .collect();
            (name, deps)
        })
        .collect()
}

#[test]
fn no_service_depends_on_another_and_shared_crates_on_none() {
    let graph = workspace_dependencies();
    let services: Vec<&String> = graph.keys().filter(|n| is_service(n)).collect();
    assert_eq!(
        services.len(),
        6,
        "the five gRPC services and the dashboard: {services:?}"
    );
    let mut broken = Vec::new();
    for (package, deps) in &graph {
        let restricted = is_service(package) || SHARED.contains(&package.as_str());
        if !restricted && package != TRAINER {
            continue;
        }
        for (dep, kind) in deps {
            let tests_only = kind == "dev" && package == TRAINER;
            let forbidden = is_service(dep) && !tests_only || EVERYTHING.contains(&dep.as_str());
            if forbidden {
                broken.push(format!("{package} → {dep} ({kind})"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "forbidden edges in the crate graph (services meet only through ra-proto and ra-client; \
         cross-service tests live in tests/): {broken:?}"
    );
    for shared in SHARED {
        assert!(graph.contains_key(shared), "{shared} is a workspace member");
    }
}
