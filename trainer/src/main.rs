//! `ra-trainer`: train a model spec on a prepared dataset and print the metrics protocol, or
//! validate a spec and print its per-layer table (see [`ra_trainer::cli`]).

fn main() -> std::process::ExitCode {
    ra_trainer::cli::main_with_args(std::env::args_os())
}
