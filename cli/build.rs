//! With the `tch` feature, records libtorch's library folder as an rpath of `research-agent` and
//! `quick-evaluator` (which carry a LibTorch ra-trainer), as ra-trainer's own build script does
//! for its binary: a link argument reaches only the package's own binaries, and torch-sys reports
//! the folder (its `links = "tch"` metadata) only to packages that depend on it directly.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return;
    }
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
