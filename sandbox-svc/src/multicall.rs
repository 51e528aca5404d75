//! Programs that carry the sandbox's helpers inside themselves. `research-agent` is one file that
//! is also `ra-sandbox-init` (the process backend starts it under that name) and `ra-trainer`
//! (the sandbox mounts it at the trainer's path, so it runs under that name); `sandbox-svc` is
//! also `ra-sandbox-init`. Such a program declares at start-up what it provides, and the
//! sandbox then uses the running executable instead of looking for separate binaries.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The name the process backend starts its init under.
pub const INIT: &str = "ra-sandbox-init";
/// The name the trainer runs under inside a sandbox.
pub const TRAINER: &str = "ra-trainer";

static PROVIDED: OnceLock<Vec<&'static str>> = OnceLock::new();

/// Declares the helper programs this executable is (call once, first thing in `main`).
pub fn provide(names: &[&'static str]) {
    let _ = PROVIDED.set(names.to_vec());
}

/// Whether this executable declared that it is `name`.
pub fn provides(name: &str) -> bool {
    PROVIDED.get().is_some_and(|names| names.contains(&name))
}

/// The running executable, resolved to its real path, when it provides `name`.
pub fn this_program_as(name: &str) -> Option<PathBuf> {
    if !provides(name) {
        return None;
    }
    std::env::current_exe().and_then(std::fs::canonicalize).ok()
}

/// The helper program this process was started as: the file name of `argv[0]` when it is one
/// of `names` (`/opt/ra/ra-trainer train …` → `ra-trainer`).
pub fn started_as<'a>(argv0: Option<&std::ffi::OsStr>, names: &[&'a str]) -> Option<&'a str> {
    let file = std::path::Path::new(argv0?).file_name()?.to_str()?;
    names.iter().copied().find(|name| *name == file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn argv0_names_the_helper_by_file_name_only() {
        let names = [INIT, TRAINER];
        assert_eq!(
            started_as(Some(OsStr::new("/opt/ra/ra-trainer")), &names),
            Some(TRAINER)
        );
        assert_eq!(started_as(Some(OsStr::new(INIT)), &names), Some(INIT));
        assert_eq!(
            started_as(Some(OsStr::new("/usr/bin/research-agent")), &names),
            None
        );
        assert_eq!(started_as(Some(OsStr::new("ra-trainer-old")), &names), None);
        assert_eq!(started_as(None, &names), None);
    }
}
