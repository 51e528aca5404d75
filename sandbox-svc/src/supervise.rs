//! Watching a launched job until it ends, whatever the backend: output split into log lines
//! and metrics records and counted against the output cap, resource samples at an interval, the
//! wall-clock timeout, cancellation; then the exit classified into a reason people can act on.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::{Launched, RawExit};
use crate::events::{Event, ExitReason, OutputStream};
use crate::limits::Limits;
use crate::protocol::{Line, LineSplitter, interpret};

/// How long output may keep arriving after the exit before it is abandoned.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Lines of stderr kept for the message of a failed job.
const STDERR_TAIL: usize = 8;

/// What watching the job saw.
#[derive(Debug, Default)]
pub struct Watched {
    pub exit: RawExit,
    /// Set when the sandbox ended the job (timeout, output cap, cancellation).
    pub ended_for: Option<ExitReason>,
    pub final_metrics: BTreeMap<String, f64>,
    /// A job of several seeds: the final record of each seed that finished, and the error of
    /// each that failed.
    pub seed_finals: BTreeMap<u64, BTreeMap<String, f64>>,
    pub seed_errors: BTreeMap<u64, String>,
    pub output_bytes: u64,
    pub stderr_tail: VecDeque<String>,
    pub wall_seconds: f64,
    pub peak_rss_bytes: u64,
    pub cpu_seconds: f64,
}

/// Runs the watch loop; `emit` receives log, epoch and resource events as they happen.
pub async fn watch(
    launched: &mut Launched,
    limits: &Limits,
    sample_interval: Duration,
    cancel: &CancellationToken,
    emit: &mut (dyn FnMut(Event) + Send),
) -> Watched {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(limits.timeout_seconds);
    let mut ticker = tokio::time::interval(sample_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watched = Watched::default();
    let mut stdout = LineSplitter::default();
    let mut stderr = LineSplitter::default();
    let mut output_open = true;
    let mut exit: Option<RawExit> = None;
    let mut drain_until: Option<Instant> = None;
    loop {
        if exit.is_some() && (!output_open || drain_until.is_some_and(|t| Instant::now() >= t)) {
            break;
        }
        let drain_deadline = drain_until.unwrap_or(deadline);
        tokio::select! {
            chunk = launched.output.recv(), if output_open => match chunk {
                None => output_open = false,
                Some((stream, bytes)) => {
                    if watched.ended_for == Some(ExitReason::OutputLimit) {
                        continue;
                    }
                    let allowed = limits.max_output_bytes.saturating_sub(watched.output_bytes);
                    let kept = &bytes[..bytes.len().min(allowed as usize)];
                    watched.output_bytes += bytes.len() as u64;
                    let splitter = match stream {
                        OutputStream::Stdout => &mut stdout,
                        OutputStream::Stderr => &mut stderr,
                    };
                    for line in splitter.push(kept) {
                        handle(stream, line, &mut watched, emit);
                    }
                    if watched.output_bytes > limits.max_output_bytes && watched.ended_for.is_none() {
                        watched.ended_for = Some(ExitReason::OutputLimit);
                        launched.control.kill().await;
                    }
                }
            },
            raw = &mut launched.exit, if exit.is_none() => {
                exit = Some(raw.unwrap_or_else(|_| RawExit {
                    setup_error: Some("the backend lost track of the job".into()),
                    ..RawExit::default()
                }));
                drain_until = Some(Instant::now() + DRAIN_GRACE);
            }
            () = tokio::time::sleep_until(deadline), if watched.ended_for.is_none() && exit.is_none() => {
                watched.ended_for = Some(ExitReason::Timeout);
                launched.control.kill().await;
            }
            () = cancel.cancelled(), if watched.ended_for.is_none() && exit.is_none() => {
                watched.ended_for = Some(ExitReason::Cancelled);
                launched.control.kill().await;
            }
            () = tokio::time::sleep_until(drain_deadline), if drain_until.is_some() => {}
            _ = ticker.tick(), if exit.is_none() => {
                if let Some(sample) = launched.control.sample().await {
                    watched.peak_rss_bytes = watched.peak_rss_bytes.max(sample.peak_rss_bytes.max(sample.rss_bytes));
                    watched.cpu_seconds = watched.cpu_seconds.max(sample.cpu_seconds);
                    emit(Event::Resources(sample));
                }
            }
        }
    }
    for (stream, splitter) in [
        (OutputStream::Stdout, &mut stdout),
        (OutputStream::Stderr, &mut stderr),
    ] {
        if let Some(line) = splitter.finish() {
            handle(stream, line, &mut watched, emit);
        }
    }
    watched.exit = exit.unwrap_or_default();
    watched.wall_seconds = started.elapsed().as_secs_f64();
    watched
}

fn handle(
    stream: OutputStream,
    line: String,
    watched: &mut Watched,
    emit: &mut (dyn FnMut(Event) + Send),
) {
    if stream == OutputStream::Stderr {
        if watched.stderr_tail.len() == STDERR_TAIL {
            watched.stderr_tail.pop_front();
        }
        watched.stderr_tail.push_back(line.clone());
    }
    match interpret(stream, line) {
        Line::Event(event) => emit(event),
        Line::Final {
            metrics,
            seed: Some(seed),
        } => {
            watched.seed_finals.insert(seed, metrics);
        }
        Line::Final {
            metrics,
            seed: None,
        } => watched.final_metrics = metrics,
        Line::SeedFailed { seed, error } => {
            watched.seed_errors.insert(seed, error);
        }
    }
}

/// The reason and a message for people, from what was seen.
pub fn classify(watched: &Watched, limits: &Limits) -> (ExitReason, String) {
    let exit = &watched.exit;
    let tail = || {
        let lines: Vec<&str> = watched.stderr_tail.iter().map(String::as_str).collect();
        if lines.is_empty() {
            String::new()
        } else {
            format!("; last output: {}", lines.join(" | "))
        }
    };
    if let Some(reason) = watched.ended_for {
        let message = match reason {
            ExitReason::Timeout => format!(
                "timed out after {} s (limits.timeout_seconds); the whole process tree was killed",
                limits.timeout_seconds
            ),
            ExitReason::OutputLimit => format!(
                "wrote more than {} bytes to stdout and stderr (limits.max_output_bytes); ended",
                limits.max_output_bytes
            ),
            _ => "cancelled; the whole process tree was killed".to_owned(),
        };
        return (reason, message);
    }
    if exit.deadline_exceeded {
        return (
            ExitReason::Timeout,
            format!(
                "timed out: the cluster ended the trial at its deadline ({} s of limits.timeout_seconds and {} s of slack)",
                limits.timeout_seconds,
                crate::kubernetes::manifest::DEADLINE_SLACK_SECONDS
            ),
        );
    }
    if let Some(error) = &exit.setup_error {
        return (
            ExitReason::Rejected,
            format!("the sandbox could not start the job: {error}"),
        );
    }
    if exit.oom_killed {
        return (
            ExitReason::OutOfMemory,
            format!(
                "out of memory: killed at the memory limit of {} bytes (limits.memory_bytes){}",
                limits.memory_bytes,
                tail()
            ),
        );
    }
    match (exit.exit_code, exit.signal) {
        (Some(0), _) => (ExitReason::Completed, "completed".to_owned()),
        (Some(code), _) => (
            ExitReason::Failed,
            format!("exited with code {code}{}", tail()),
        ),
        (None, Some(signal)) => (
            ExitReason::Killed,
            format!(
                "killed by signal {signal} ({}){}",
                signal_name(signal),
                tail()
            ),
        ),
        (None, None) => (
            ExitReason::Failed,
            format!("ended without an exit status{}", tail()),
        ),
    }
}

fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_classified_with_the_limit_that_ended_them() {
        let limits = crate::limits::LimitPolicy::default().defaults;
        let with = |exit: RawExit, ended_for| Watched {
            exit,
            ended_for,
            ..Watched::default()
        };
        let code = |c| RawExit {
            exit_code: Some(c),
            ..RawExit::default()
        };
        assert_eq!(
            classify(&with(code(0), None), &limits).0,
            ExitReason::Completed
        );
        let mut failed = with(code(3), None);
        failed.stderr_tail.push_back("boom".into());
        let (reason, message) = classify(&failed, &limits);
        assert_eq!(reason, ExitReason::Failed);
        assert!(
            message.contains("code 3") && message.contains("boom"),
            "{message}"
        );
        let signalled = RawExit {
            signal: Some(9),
            ..RawExit::default()
        };
        let (reason, message) = classify(&with(signalled.clone(), None), &limits);
        assert_eq!(reason, ExitReason::Killed);
        assert!(message.contains("SIGKILL"), "{message}");
        let oom = RawExit {
            oom_killed: true,
            ..signalled.clone()
        };
        assert_eq!(
            classify(&with(oom, None), &limits).0,
            ExitReason::OutOfMemory
        );
        for reason in [
            ExitReason::Timeout,
            ExitReason::OutputLimit,
            ExitReason::Cancelled,
        ] {
            assert_eq!(
                classify(&with(signalled.clone(), Some(reason)), &limits).0,
                reason
            );
        }
        let setup = RawExit {
            setup_error: Some("cannot create namespaces".into()),
            ..RawExit::default()
        };
        assert_eq!(
            classify(&with(setup, None), &limits).0,
            ExitReason::Rejected
        );
    }
}
