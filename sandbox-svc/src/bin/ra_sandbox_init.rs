//! `ra-sandbox-init`: started by sandbox-svc's process backend to put one job into its sandbox
//! (see `sandbox_svc::process::init`). Not meant to be run by hand.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    std::process::exit(sandbox_svc::process::init::main_with_args(&args));
}
