//! With the `tch` feature, records libtorch's library folder as an rpath of every binary and
//! test of this crate, so that `ra-trainer` runs without `LD_LIBRARY_PATH`. torch-sys reports the
//! folder through its `links = "tch"` metadata.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return;
    }
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
