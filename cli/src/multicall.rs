//! `research-agent` as a multi-call program: besides its own command line it is the process
//! sandbox's `ra-sandbox-init` (started under that name) and the trainer the sandbox mounts at
//! `/opt/ra/ra-trainer` (started under that name), so that one copied file runs the laptop
//! mode. `research-agent trainer …` and `research-agent sandbox-init …` reach the same roles by
//! hand.

use std::ffi::OsString;
use std::process::ExitCode;

use sandbox_svc::multicall::{INIT, TRAINER, started_as};

/// The hidden first argument that selects the trainer.
pub const TRAINER_ARG: &str = "trainer";
/// The hidden first argument that selects the sandbox init.
pub const INIT_ARG: &str = "sandbox-init";

/// What this process is to be, with the arguments that role reads (program name first).
#[derive(Debug, PartialEq)]
pub enum Role {
    SandboxInit(Vec<String>),
    Trainer(Vec<OsString>),
    ResearchAgent,
}

/// The role chosen by `argv[0]`'s file name, else by a hidden first argument.
pub fn role_of(args: Vec<OsString>) -> Role {
    match started_as(args.first().map(OsString::as_os_str), &[INIT, TRAINER]) {
        Some(INIT) => return Role::SandboxInit(lossy(args)),
        Some(_) => return Role::Trainer(args),
        None => {}
    }
    match args.get(1).and_then(|a| a.to_str()) {
        Some(TRAINER_ARG) => {
            let mut rest = args;
            rest.remove(0);
            rest[0] = TRAINER.into();
            Role::Trainer(rest)
        }
        Some(INIT_ARG) => {
            let mut rest = args;
            rest.remove(0);
            rest[0] = INIT.into();
            Role::SandboxInit(lossy(rest))
        }
        _ => Role::ResearchAgent,
    }
}

fn lossy(args: Vec<OsString>) -> Vec<String> {
    args.into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// The `main` of every program of this crate that starts the embedded sandbox: the init or the
/// trainer when started as one, else `program` with the helpers declared.
pub fn main<T: std::process::Termination>(program: impl FnOnce() -> T) -> ExitCode {
    match role_of(std::env::args_os().collect()) {
        Role::SandboxInit(args) => sandbox_init(&args),
        Role::Trainer(args) => ra_trainer::cli::main_with_args(args),
        Role::ResearchAgent => {
            provide_helpers();
            program().report()
        }
    }
}

/// Runs the sandbox init on `args`.
pub fn sandbox_init(args: &[String]) -> ExitCode {
    let code = sandbox_svc::process::init::main_with_args(args);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Declares that this executable carries the init and the trainer, so that the embedded
/// sandbox uses it for both.
pub fn provide_helpers() {
    sandbox_svc::multicall::provide(&[INIT, TRAINER]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn roles_by_name_and_by_hidden_argument() {
        assert_eq!(
            role_of(args(&["/opt/ra/ra-trainer", "train", "--seed", "3"])),
            Role::Trainer(args(&["/opt/ra/ra-trainer", "train", "--seed", "3"]))
        );
        assert_eq!(
            role_of(args(&["ra-sandbox-init", "{}"])),
            Role::SandboxInit(vec!["ra-sandbox-init".into(), "{}".into()])
        );
        assert_eq!(
            role_of(args(&[
                "research-agent",
                "trainer",
                "validate",
                "--spec",
                "s.json"
            ])),
            Role::Trainer(args(&["ra-trainer", "validate", "--spec", "s.json"]))
        );
        assert_eq!(
            role_of(args(&["./research-agent", "sandbox-init", "{}"])),
            Role::SandboxInit(vec!["ra-sandbox-init".into(), "{}".into()])
        );
        assert_eq!(
            role_of(args(&["research-agent", "run", "--goal", "trainer"])),
            Role::ResearchAgent
        );
        assert_eq!(role_of(args(&["research-agent"])), Role::ResearchAgent);
    }
}
