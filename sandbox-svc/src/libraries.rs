//! The shared libraries a dynamically linked program loads, as the system's dynamic linker
//! resolves them (`ldd`: rpaths, `$ORIGIN`, the loader cache — never a list kept by hand): the
//! files the docker backend's image carries, and the host folders the process sandbox makes
//! visible read-only (a trainer built against LibTorch loads `libtorch_cpu.so` and its CUDA
//! libraries from a Python venv that the sandbox's system folders do not cover).
//!
//! Each library's folder is taken both canonicalised (where the file is) and as the loader
//! spelled it (an rpath with `..` or a symbolic link in it must resolve inside too); folders
//! under the sandbox's read-only paths, or under another folder taken, are left out.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The system's own library and program folders: what every Linux root has.
pub const SYSTEM_FOLDERS: [&str; 6] = ["/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin"];

/// The folders outside `covered` that `binary`'s libraries load from; none for a static binary.
/// An error names a library the dynamic linker cannot find (the trainer cannot start anywhere).
pub fn folders(binary: &Path, covered: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    Ok(outside(&ldd(binary)?, covered))
}

/// Every library `binary` loads (the loader included), `.` and `..` resolved; none for a static
/// binary.
pub fn loaded(binary: &Path) -> Result<Vec<PathBuf>, String> {
    Ok(ldd(binary)?.iter().map(|path| normalise(path)).collect())
}

/// The libraries of `binary` as the dynamic linker spells them.
fn ldd(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let output = Command::new("ldd")
        .arg(binary)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("cannot run ldd on {}: {e}", binary.display()))?;
    let listing = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // "not a dynamic executable" (a static build) loads nothing.
        let said = String::from_utf8_lossy(&output.stderr);
        if said.contains("not a dynamic executable") || listing.contains("statically linked") {
            return Ok(Vec::new());
        }
        return Err(format!(
            "ldd {} failed ({}): {}",
            binary.display(),
            output.status,
            said.trim()
        ));
    }
    loaded_libraries(&listing).map_err(|missing| {
        format!(
            "{} needs {missing}, which the dynamic linker does not find",
            binary.display()
        )
    })
}

/// The absolute paths of the libraries in an `ldd` listing; `Err` with the first one it could
/// not find.
fn loaded_libraries(listing: &str) -> Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    for line in listing.lines().map(str::trim) {
        let resolved = match line.split_once(" => ") {
            Some((name, rest)) => {
                if rest.trim() == "not found" {
                    return Err(name.trim().to_owned());
                }
                rest
            }
            // The loader itself ("/lib64/ld-linux-x86-64.so.2 (0x…)") or the vDSO.
            None => line,
        };
        let path = resolved.split(" (0x").next().unwrap_or("").trim();
        if path.starts_with('/') {
            paths.push(PathBuf::from(path));
        }
    }
    Ok(paths)
}

/// Each library's folder, canonical and as spelt (normalised), that no `covered` path holds.
fn outside(libraries: &[PathBuf], covered: &[PathBuf]) -> Vec<PathBuf> {
    let candidates = libraries.iter().flat_map(|library| {
        let spelt = library.parent().map(normalise);
        let real = library
            .canonicalize()
            .ok()
            .and_then(|path| path.parent().map(Path::to_path_buf));
        [real, spelt].into_iter().flatten()
    });
    keep_outside(candidates, covered)
}

/// The folders (each canonicalised and as spelt) outside `covered`: library folders a device
/// loads from at run time, which no `ldd` listing shows.
pub fn outside_folders(folders: &[PathBuf], covered: &[PathBuf]) -> Vec<PathBuf> {
    let candidates = folders
        .iter()
        .filter(|folder| folder.is_absolute())
        .flat_map(|folder| [folder.canonicalize().ok(), Some(normalise(folder))])
        .flatten();
    keep_outside(candidates, covered)
}

/// The candidates not under a `covered` path, each once, outermost first, none inside another.
fn keep_outside(candidates: impl Iterator<Item = PathBuf>, covered: &[PathBuf]) -> Vec<PathBuf> {
    let covered: Vec<PathBuf> = covered
        .iter()
        .flat_map(|path| [normalise(path), path.canonicalize().unwrap_or_default()])
        .filter(|path| !path.as_os_str().is_empty())
        .collect();
    let mut folders: Vec<PathBuf> = Vec::new();
    for folder in candidates {
        if !covered.iter().any(|c| folder.starts_with(c)) && !folders.contains(&folder) {
            folders.push(folder);
        }
    }
    // Outermost first, so that a folder inside another one taken is dropped.
    folders.sort();
    let mut kept: Vec<PathBuf> = Vec::new();
    for folder in folders {
        if !kept.iter().any(|k| folder.starts_with(k)) {
            kept.push(folder);
        }
    }
    kept
}

/// `path` with `.` and `..` resolved by the letters (no file system access).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TORCH: &str = "\tlinux-vdso.so.1 (0x00007ffd5c9f3000)
\tlibtorch_cpu.so => /venv/torch/lib/libtorch_cpu.so (0x00007f0b2c000000)
\tlibcudart.so.12 => /venv/torch/lib/../../nvidia/cuda_runtime/lib/libcudart.so.12 (0x00007f0b2b000000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0b2a000000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f0b2e000000)
";

    #[test]
    fn a_listing_gives_every_resolved_library_and_names_a_missing_one() {
        let paths = loaded_libraries(TORCH).expect("all found");
        assert_eq!(paths.len(), 4, "{paths:?}");
        assert_eq!(
            paths[1],
            Path::new("/venv/torch/lib/../../nvidia/cuda_runtime/lib/libcudart.so.12")
        );
        assert_eq!(paths[3], Path::new("/lib64/ld-linux-x86-64.so.2"));
        let missing = "\tlibc10.so => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n";
        assert_eq!(loaded_libraries(missing), Err("libc10.so".into()));
    }

    #[test]
    fn folders_under_the_system_paths_are_left_out_and_dotdot_is_resolved() {
        let paths = loaded_libraries(TORCH).expect("all found");
        let covered = [
            PathBuf::from("/lib"),
            PathBuf::from("/lib64"),
            PathBuf::from("/usr"),
        ];
        // The files do not exist here: only the spelt folders, normalised, remain.
        assert_eq!(
            outside(&paths, &covered),
            [
                PathBuf::from("/venv/nvidia/cuda_runtime/lib"),
                PathBuf::from("/venv/torch/lib"),
            ]
        );
        let nested = [
            PathBuf::from("/opt/torch/lib/libc10.so"),
            PathBuf::from("/opt/torch/lib/sub/libx.so"),
        ];
        assert_eq!(
            outside(&nested, &covered),
            [PathBuf::from("/opt/torch/lib")]
        );
    }

    #[test]
    fn a_real_binary_resolves_through_the_dynamic_linker() {
        // This test's own executable: every library it loads is under the system folders.
        let me = std::env::current_exe().expect("test executable");
        let system = ["/usr", "/lib", "/lib64", "/lib32"].map(PathBuf::from);
        assert_eq!(folders(&me, &system), Ok(Vec::new()));
        let needs = folders(&me, &[]).expect("resolved");
        assert!(!needs.is_empty(), "libc is loaded from somewhere");
        let missing = folders(Path::new("/no/such/binary"), &system);
        assert!(missing.is_err(), "{missing:?}");
        let libraries = loaded(&me).expect("resolved");
        assert!(
            libraries
                .iter()
                .any(|l| l.to_string_lossy().contains("libc.so")),
            "{libraries:?}"
        );
    }
}
