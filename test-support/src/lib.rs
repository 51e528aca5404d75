//! What every package's tests share without linking any service: loud skips of missing tools
//! and data (failures under `RA_REQUIRE_TEST_DEPS=1`), the shared datasets folder, free
//! ports, health checks, the workspace's binaries built on demand, and a namespace of a real
//! Kubernetes cluster for the kubernetes backend ([`cluster`]). Light on purpose: a
//! leaf crate's tests depend on this, not on `ra-integration-tests` (which links every
//! service), so `cargo test -p sandbox-svc` builds sandbox-svc and what it needs.

use std::path::PathBuf;

pub mod cluster;

pub use ra_client::health::{ServingStatus, WaitError, wait_serving};

/// Set to `1` to turn every "skipped: missing tool or data" into a failure.
pub const REQUIRE_DEPS_VAR: &str = "RA_REQUIRE_TEST_DEPS";
/// Folder of the real datasets (default `../shared/data` beside the checkout).
pub const TEST_DATA_VAR: &str = "RA_TEST_DATA";

/// A finished command's stdout then stderr, as text (for assertion messages).
pub fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A path inside the repository, given from its root (`deploy/compose.yaml`).
pub fn repo_path(relative: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The image tag the deployment tests use: `$RA_IMAGE_TAG`, default `dev` (what
/// `deploy/docker/build-images.sh` tags).
pub fn image_tag() -> String {
    std::env::var("RA_IMAGE_TAG").unwrap_or_else(|_| "dev".into())
}

/// The health status of `service` at `endpoint`, `None` if it cannot be asked.
pub async fn health_status(endpoint: &str, service: &str) -> Option<ServingStatus> {
    ra_client::health::check(endpoint, service).await.ok()
}

/// Whether missing test tools and data fail tests (CI) instead of skipping them.
pub fn deps_required() -> bool {
    std::env::var(REQUIRE_DEPS_VAR).is_ok_and(|value| value == "1")
}

/// Reports a missing dependency: panics under [`REQUIRE_DEPS_VAR`], otherwise prints a loud skip.
pub fn skip_or_fail(test: &str, what: &str) {
    if deps_required() {
        panic!("{test}: {what}, and {REQUIRE_DEPS_VAR}=1 forbids skipping");
    }
    eprintln!(
        "\n==== SKIPPED {test}: {what} (set {REQUIRE_DEPS_VAR}=1 to make this a failure) ====\n"
    );
}

/// The grpcurl binary: `$RA_GRPCURL`, else `grpcurl` on the PATH.
pub fn grpcurl() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RA_GRPCURL") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("grpcurl"))
            .find(|candidate| candidate.is_file())
    })
}

/// The folder of real datasets: `$RA_TEST_DATA`, else `../shared/data` beside the workspace.
pub fn test_data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os(TEST_DATA_VAR) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    };
    dir.is_dir().then_some(dir)
}

/// [`test_data_dir`], or a loud skip of `test` (a failure under [`REQUIRE_DEPS_VAR`]).
pub fn shared_data_or_skip(test: &str) -> Option<PathBuf> {
    let dir = test_data_dir();
    if dir.is_none() {
        skip_or_fail(
            test,
            "the shared datasets folder is missing (set RA_TEST_DATA)",
        );
    }
    dir
}

/// Python that can import every one of `modules`: `$RA_PYTHON`, else `python3`; `None` when
/// it cannot (the caller skips or fails through [`skip_or_fail`]).
pub fn python_with(modules: &[&str]) -> Option<PathBuf> {
    let python =
        std::env::var_os("RA_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    let works = std::process::Command::new(&python)
        .args(["-c", &format!("import {}", modules.join(", "))])
        .output()
        .is_ok_and(|output| output.status.success());
    works.then_some(python)
}

/// A 127.0.0.1 port nobody listens on right now (for a process the test starts itself, or to
/// point a client at a closed port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A binary of this workspace's build, built first when needed: the first call for `name` in a
/// test process runs `cargo build --workspace --bin NAME` (a no-op when it is fresh) with the
/// cargo and profile that built the test, so `cargo test` never runs a missing or stale binary
/// of another package (cargo builds a package's binaries only for that package's own tests),
/// and a leaf's tests build only the binaries they run.
pub fn workspace_binary(name: &str) -> PathBuf {
    workspace_binary_with(name, "")
}

/// [`workspace_binary`] built with cargo `features` (`"ra-trainer/tch"`: the LibTorch trainer,
/// which needs the README's libtorch set-up in the environment).
pub fn workspace_binary_with(name: &str, features: &str) -> PathBuf {
    type Built = Vec<((String, String), Result<PathBuf, String>)>;
    static BUILT: std::sync::Mutex<Built> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = (name.to_owned(), features.to_owned());
    let result = match built.iter().find(|(k, _)| *k == key) {
        Some((_, result)) => result.clone(),
        None => {
            let result = build_workspace_binary(name, features);
            built.push((key, result.clone()));
            result
        }
    };
    drop(built);
    let binary = match result {
        Ok(binary) => binary,
        Err(error) => panic!("cannot build the workspace's binary {name}: {error}"),
    };
    assert!(
        binary.is_file(),
        "{} is missing after `cargo build --workspace --bin {name}`",
        binary.display()
    );
    binary
}

/// Builds binary `name` into the folder above the test executable's `deps/`.
fn build_workspace_binary(name: &str, features: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the test executable: {e}"))?;
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .ok_or("the test executable is not in a target folder")?
        .to_path_buf();
    let profile = dir
        .file_name()
        .and_then(|p| p.to_str())
        .ok_or("the target folder has no profile name")?;
    // Under `cargo test` CARGO names the cargo that runs us; by hand, the one on PATH.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .args(["build", "--workspace", "--bin", name, "--quiet"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile != "debug" {
        command.args(["--profile", profile]);
    }
    if !features.is_empty() {
        command.args(["--features", features]);
    }
    // Only the target folder's parent is ours to choose: a CARGO_TARGET_DIR elsewhere is kept.
    if let Some(target) = dir.parent() {
        command.env("CARGO_TARGET_DIR", target);
    }
    // The environment of the shell that ran `cargo test`, not the one cargo gives a test: build
    // scripts that track variables (burn-tch, torch-sys) would otherwise see a change and
    // rebuild LibTorch's dependents twice per run, once for the test and once for this binary.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        let set_for_tests = name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_EXE_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_TARGET_TMPDIR",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&name.as_str());
        if set_for_tests {
            command.env_remove(&name);
        }
    }
    // Cargo prepends the target folder's and the toolchain's library folders for tests.
    if let Some(paths) = std::env::var_os("LD_LIBRARY_PATH") {
        let toolchain = std::env::var_os("RUSTUP_HOME").map(PathBuf::from);
        let kept: Vec<PathBuf> = std::env::split_paths(&paths)
            .filter(|p| !dir.parent().is_some_and(|target| p.starts_with(target)))
            .filter(|p| !toolchain.as_ref().is_some_and(|t| p.starts_with(t)))
            .filter(|p| !p.components().any(|c| c.as_os_str() == ".rustup"))
            .collect();
        match std::env::join_paths(&kept) {
            Ok(joined) if !kept.is_empty() => command.env("LD_LIBRARY_PATH", joined),
            _ => command.env_remove("LD_LIBRARY_PATH"),
        };
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build --workspace --bin {name} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(dir.join(name))
}
