//! One seed of an evaluation: a registry trial, a sandbox train job, its epochs streamed to the
//! caller and the registry as they arrive, early stopping, and the trial's final state with
//! the reason it ended.
//!
//! A broken job stream (the sandbox restarted, the network blinked) is re-attached with
//! WatchJob, or the job is submitted again under the same id if the sandbox lost it, within
//! the retry budget; epochs already recorded are not recorded twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ra_proto::common::v1 as common;
use ra_proto::evaluator::v1 as pb;
use ra_proto::registry::v1 as reg;
use ra_proto::sandbox::v1 as sb;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status, Streaming};

use crate::decision::Goal;
use crate::error::EvaluatorError;
use crate::ledger::Ledger;
use crate::peers::Peers;
use crate::plan::PruningRule;
use crate::pruning::CurveBook;
use ra_client::retry::is_transient;

/// Where evaluation events go (the caller's stream).
pub type EventSink = mpsc::Sender<Result<pb::EvaluateEvent, Status>>;

/// Everything the seeds of one evaluation share.
pub struct SeedContext {
    pub peers: Peers,
    pub ledger: Ledger,
    pub experiment_id: String,
    pub candidate_id: String,
    pub evaluation_id: String,
    pub model: common::ModelSpec,
    pub train: common::TrainSpec,
    pub prepared_dataset_id: String,
    pub limits: Option<common::ResourceLimits>,
    pub backend: sb::Backend,
    /// The training device every seed runs on, as the sandbox resolved it.
    pub device: String,
    pub goal: Goal,
    pub pruning: Option<PruningRule>,
    pub curves: Arc<CurveBook>,
    pub events: EventSink,
    /// The caller went away: stop every seed.
    pub cancelled: CancellationToken,
    /// A seed was pruned: the candidate stops.
    pub pruned: CancellationToken,
    /// A seed failed under FAIL_FAST: the others stop.
    pub fail_fast: CancellationToken,
    pub prune_reason: Mutex<Option<String>>,
}

/// A seed, its trial and the job that runs it.
struct SeedTrial {
    seed: u64,
    trial_id: String,
    job_id: String,
}

impl SeedTrial {
    /// A trial as the registry recorded it, with the job it names.
    fn recorded(trial: reg::Trial) -> Self {
        Self {
            seed: trial.seed,
            trial_id: trial.id,
            job_id: trial.job_id,
        }
    }
}

/// One seed's share of the result of a job of several seeds: its own final record, or its own
/// failure; when it has neither, the job's end (a timeout, a cancellation). The job's CPU time
/// is shared equally; wall time and peak memory are the job's.
fn seed_share(result: &sb::JobResult, seed: u64, seeds: usize) -> sb::JobResult {
    let usage = result.usage.map(|usage| common::ResourceUsage {
        cpu_seconds: usage.cpu_seconds / seeds.max(1) as f64,
        ..usage
    });
    let job_reason = common::ExitReason::try_from(result.exit_reason).unwrap_or_default();
    let outcome = result.seeds.iter().find(|outcome| outcome.seed == seed);
    let (exit_reason, message, final_metrics) = match outcome {
        Some(outcome) if !outcome.final_metrics.is_empty() => (
            common::ExitReason::Completed,
            String::new(),
            outcome.final_metrics.clone(),
        ),
        // The trainer said why this seed failed (it exits 1 when any seed fails).
        Some(outcome)
            if matches!(
                job_reason,
                common::ExitReason::Completed | common::ExitReason::Failed
            ) =>
        {
            (
                common::ExitReason::Failed,
                outcome.error.clone(),
                HashMap::new(),
            )
        }
        Some(_) => (job_reason, result.message.clone(), HashMap::new()),
        None if job_reason == common::ExitReason::Completed => (
            common::ExitReason::Failed,
            format!("the sandbox reported no result for seed {seed}"),
            HashMap::new(),
        ),
        None => (job_reason, result.message.clone(), HashMap::new()),
    };
    let state = if exit_reason == common::ExitReason::Completed {
        common::JobState::Succeeded
    } else {
        common::JobState::Failed
    };
    sb::JobResult {
        state: state as i32,
        exit_reason: exit_reason as i32,
        message,
        final_metrics,
        usage,
        seeds: Vec::new(),
        ..result.clone()
    }
}

/// The limits of a job of `seeds` seeds from limits meant for one: memory and time scale with
/// the seeds (each has its own model, and the job's threads are shared between them); the rest
/// (processes, files, output, scratch, CPU) are the job's as asked. Unset (0) stays unset: the
/// sandbox's default for the whole job.
fn per_job(limits: common::ResourceLimits, seeds: usize) -> common::ResourceLimits {
    let seeds = seeds.max(1) as u64;
    common::ResourceLimits {
        memory_bytes: limits.memory_bytes.saturating_mul(seeds),
        timeout_seconds: limits.timeout_seconds.saturating_mul(seeds),
        ..limits
    }
}

/// Why the evaluator itself stopped a job.
#[derive(Debug, Clone, PartialEq)]
enum Stop {
    Pruned(String),
    Cancelled,
    FailFast,
}

impl SeedContext {
    pub async fn emit(&self, event: pb::evaluate_event::Event) {
        let _ = self
            .events
            .send(Ok(pb::EvaluateEvent { event: Some(event) }))
            .await;
    }

    /// The sandbox job of `trials`: one seed as `seed`, several as `seeds` — with the request's
    /// memory and time limits, which are per seed, multiplied by their number.
    fn job_spec(&self, trials: &[SeedTrial]) -> sb::JobSpec {
        let seeds: Vec<u64> = trials.iter().map(|t| t.seed).collect();
        let first = trials.first();
        sb::JobSpec {
            kind: Some(sb::job_spec::Kind::Train(sb::TrainJob {
                model: Some(self.model.clone()),
                train: Some(self.train),
                prepared_dataset_id: self.prepared_dataset_id.clone(),
                seed: seeds.first().copied().unwrap_or_default(),
                seeds: if seeds.len() > 1 { seeds } else { Vec::new() },
                save_weights: false,
                device: self.device.clone(),
            })),
            limits: self.limits.map(|limits| per_job(limits, trials.len())),
            backend: self.backend as i32,
            labels: HashMap::from([
                ("evaluation".to_owned(), self.evaluation_id.clone()),
                ("candidate".to_owned(), self.candidate_id.clone()),
                (
                    "trial".to_owned(),
                    first.map(|t| t.trial_id.clone()).unwrap_or_default(),
                ),
            ]),
            artifact_trial_id: String::new(),
        }
    }

    fn prune_reason(&self) -> Option<String> {
        self.prune_reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Records the first prune reason and stops the candidate.
    fn prune(&self, seed: u64, reason: String) {
        let mut slot = self
            .prune_reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(format!("seed {seed} {reason}"));
        }
        self.pruned.cancel();
    }

    async fn start_job(
        &self,
        job_id: &str,
        spec: &sb::JobSpec,
    ) -> Result<Streaming<sb::JobEvent>, EvaluatorError> {
        let request = sb::RunJobRequest {
            job: Some(spec.clone()),
            job_id: job_id.to_owned(),
        };
        self.peers
            .sandbox
            .run(|mut client| {
                let request = request.clone();
                async move { client.run_job(request).await }
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(EvaluatorError::from)
    }

    /// Follows a job again after its stream broke: WatchJob, or RunJob anew if the sandbox no
    /// longer knows it.
    async fn reattach(
        &self,
        job_id: &str,
        spec: &sb::JobSpec,
    ) -> Result<Streaming<sb::JobEvent>, EvaluatorError> {
        let watched = self
            .peers
            .sandbox
            .run(|mut client| {
                let job_id = job_id.to_owned();
                async move { client.watch_job(sb::WatchJobRequest { job_id }).await }
            })
            .await;
        match watched {
            Ok(stream) => Ok(stream.into_inner()),
            Err(status) if status.code() == Code::NotFound => self.start_job(job_id, spec).await,
            Err(status) => Err(status.into()),
        }
    }

    fn cancel_job(&self, job_id: &str, reason: &str) {
        let mut client = self.peers.sandbox.client();
        let request = sb::CancelJobRequest {
            job_id: job_id.to_owned(),
            reason: reason.to_owned(),
        };
        tokio::spawn(async move {
            if let Err(status) = client.cancel_job(request).await {
                tracing::warn!(error = %status.message(), "cancelling a job failed");
            }
        });
    }

    /// Runs `seed` to its end, in a new trial or in `adopted` (a trial a stopped evaluator
    /// left unfinished; it runs again under a fresh job id). `Err` only when a peer fails for
    /// good (the evaluation then fails); a job that fails is an `Ok` result in state FAILED
    /// with its reason.
    pub async fn run_seed(
        &self,
        seed: u64,
        adopted: Option<String>,
    ) -> Result<pb::SeedResult, EvaluatorError> {
        let trial = match adopted {
            None => {
                let trial = self
                    .ledger
                    .create_trial(&self.candidate_id, seed, &self.device, None)
                    .await?;
                SeedTrial::recorded(trial)
            }
            Some(trial_id) => {
                let fresh = uuid::Uuid::now_v7().simple().to_string();
                let job_id = format!("{trial_id}-{}", &fresh[fresh.len() - 12..]);
                self.ledger
                    .update_trial(reg::UpdateTrialRequest {
                        id: trial_id.clone(),
                        job_id: Some(job_id.clone()),
                        ..Default::default()
                    })
                    .await?;
                SeedTrial {
                    seed,
                    trial_id,
                    job_id,
                }
            }
        };
        let mut results = self.run_job(&[trial]).await?;
        results
            .pop()
            .ok_or_else(|| EvaluatorError::Internal(format!("seed {seed} ended without a result")))
    }

    /// Runs `seeds` (two or more, none adopted) in one sandbox job: one trainer process, the
    /// dataset opened once, the job's threads split between them; each seed in a trial of its
    /// own, recorded exactly as when it runs alone.
    pub async fn run_seeds(&self, seeds: &[u64]) -> Result<Vec<pb::SeedResult>, EvaluatorError> {
        let mut trials: Vec<SeedTrial> = Vec::with_capacity(seeds.len());
        for &seed in seeds {
            // Every trial of the job names the job, which carries the first trial's id.
            let job_id = trials.first().map(|first| first.job_id.clone());
            let trial = self
                .ledger
                .create_trial(&self.candidate_id, seed, &self.device, job_id.as_deref())
                .await?;
            trials.push(SeedTrial::recorded(trial));
        }
        self.run_job(&trials).await
    }

    /// Runs the job of `trials` (one, or several seeds under one job id) to its end and
    /// finishes every trial.
    async fn run_job(&self, trials: &[SeedTrial]) -> Result<Vec<pb::SeedResult>, EvaluatorError> {
        let Some(first) = trials.first() else {
            return Ok(Vec::new());
        };
        let job_id = first.job_id.clone();
        for trial in trials {
            self.emit(pb::evaluate_event::Event::SeedStarted(pb::SeedStarted {
                seed: trial.seed,
                trial_id: trial.trial_id.clone(),
                job_id: job_id.clone(),
            }))
            .await;
        }
        if self.cancelled.is_cancelled() || self.pruned.is_cancelled() {
            let stop = if self.cancelled.is_cancelled() {
                Stop::Cancelled
            } else {
                Stop::Pruned(self.prune_reason().unwrap_or_default())
            };
            return self.finish_all(trials, None, Some(stop)).await;
        }
        let spec = self.job_spec(trials);
        let mut stream = self.start_job(&job_id, &spec).await?;
        let mut reattached = 0;
        let mut last_epochs: HashMap<u64, u64> = HashMap::new();
        let mut stop: Option<Stop> = None;
        let result = loop {
            let message = tokio::select! {
                () = self.cancelled.cancelled(), if stop.is_none() => {
                    stop = Some(Stop::Cancelled);
                    self.cancel_job(&job_id, "the evaluation's caller went away");
                    continue;
                }
                () = self.pruned.cancelled(), if stop.is_none() => {
                    let reason = self.prune_reason().unwrap_or_default();
                    self.cancel_job(&job_id, &reason);
                    stop = Some(Stop::Pruned(reason));
                    continue;
                }
                () = self.fail_fast.cancelled(), if stop.is_none() => {
                    self.cancel_job(&job_id, "another seed failed (FAIL_FAST)");
                    stop = Some(Stop::FailFast);
                    continue;
                }
                message = stream.message() => message,
            };
            match message {
                Ok(Some(event)) => match event.event {
                    Some(sb::job_event::Event::Started(_)) => {
                        for trial in trials {
                            self.ledger
                                .update_trial(reg::UpdateTrialRequest {
                                    id: trial.trial_id.clone(),
                                    state: Some(common::TrialState::Running as i32),
                                    ..Default::default()
                                })
                                .await?;
                        }
                    }
                    Some(sb::job_event::Event::Epoch(epoch)) => {
                        // One seed's records carry no seed; a job of several names it.
                        let owner = match (trials, epoch.seed) {
                            ([only], _) => Some(only),
                            (_, Some(seed)) => trials.iter().find(|t| t.seed == seed),
                            (_, None) => None,
                        };
                        if let Some(trial) = owner {
                            let last = last_epochs.entry(trial.seed).or_default();
                            if epoch.epoch > *last {
                                *last = epoch.epoch;
                                self.record_epoch(trial.seed, &trial.trial_id, epoch)
                                    .await?;
                            }
                        }
                    }
                    Some(sb::job_event::Event::Finished(result)) => break Some(result),
                    _ => {}
                },
                Err(status) if !is_transient(&status) => break self.rejected(&status),
                broken => {
                    if reattached >= self.peers.sandbox.retry().attempts {
                        let why = broken.err().map_or_else(
                            || "the stream kept ending before the job finished".to_owned(),
                            |status| status.message().to_owned(),
                        );
                        return Err(EvaluatorError::PeerLost(format!(
                            "{}: lost job {job_id} {reattached} times; last: {why}",
                            self.peers.sandbox.name()
                        )));
                    }
                    reattached += 1;
                    tokio::time::sleep(self.peers.sandbox.retry().backoff(reattached + 1)).await;
                    stream = self.reattach(&job_id, &spec).await?;
                }
            }
        };
        self.finish_all(trials, result, stop).await
    }

    /// Finishes each trial of a job with its own share of the job's result.
    async fn finish_all(
        &self,
        trials: &[SeedTrial],
        result: Option<sb::JobResult>,
        stop: Option<Stop>,
    ) -> Result<Vec<pb::SeedResult>, EvaluatorError> {
        let mut results = Vec::with_capacity(trials.len());
        for trial in trials {
            let own = match (&result, trials.len()) {
                (Some(result), several) if several > 1 => {
                    Some(seed_share(result, trial.seed, several))
                }
                (result, _) => result.clone(),
            };
            results.push(
                self.finish(trial.seed, &trial.trial_id, own, stop.clone())
                    .await?,
            );
        }
        Ok(results)
    }

    /// A job the sandbox refused (for example a dataset that vanished): a failed seed.
    fn rejected(&self, status: &Status) -> Option<sb::JobResult> {
        Some(sb::JobResult {
            state: common::JobState::Failed as i32,
            exit_reason: common::ExitReason::Rejected as i32,
            message: format!("the sandbox refused the job: {}", status.message()),
            ..Default::default()
        })
    }

    async fn record_epoch(
        &self,
        seed: u64,
        trial_id: &str,
        epoch: sb::EpochMetrics,
    ) -> Result<(), EvaluatorError> {
        let finite: HashMap<String, f64> = epoch
            .metrics
            .into_iter()
            .filter(|(_, value)| value.is_finite())
            .collect();
        let points = finite
            .iter()
            .map(|(name, value)| common::MetricPoint {
                name: name.clone(),
                step: epoch.epoch,
                value: *value,
                wall_time: None,
            })
            .collect();
        self.ledger
            .update_trial(reg::UpdateTrialRequest {
                id: trial_id.to_owned(),
                points,
                ..Default::default()
            })
            .await?;
        self.emit(pb::evaluate_event::Event::SeedEpoch(pb::SeedEpoch {
            seed,
            trial_id: trial_id.to_owned(),
            epoch: epoch.epoch,
            metrics: finite.clone(),
        }))
        .await;
        let Some(&value) = finite.get(&self.goal.metric) else {
            return Ok(());
        };
        self.curves.record(
            &self.experiment_id,
            &self.goal.metric,
            &self.candidate_id,
            trial_id,
            epoch.epoch,
            value,
        );
        if let Some(rule) = &self.pruning
            && let Some(reason) = self.curves.verdict(
                &self.experiment_id,
                &self.goal,
                &self.candidate_id,
                epoch.epoch,
                value,
                rule,
            )
        {
            self.prune(seed, reason);
        }
        Ok(())
    }

    /// Classifies the end of the job, records it on the trial and tells the caller.
    async fn finish(
        &self,
        seed: u64,
        trial_id: &str,
        result: Option<sb::JobResult>,
        stop: Option<Stop>,
    ) -> Result<pb::SeedResult, EvaluatorError> {
        let result = result.unwrap_or_default();
        let exit_reason = common::ExitReason::try_from(result.exit_reason).unwrap_or_default();
        let metric = &self.goal.metric;
        let final_metrics: HashMap<String, f64> = result
            .final_metrics
            .iter()
            .filter(|(_, value)| value.is_finite())
            .map(|(name, value)| (name.clone(), *value))
            .collect();
        let (state, message) = match (&stop, exit_reason) {
            (_, common::ExitReason::Completed) if final_metrics.contains_key(metric) => {
                (common::TrialState::Succeeded, String::new())
            }
            (Some(Stop::Pruned(reason)), _) => (common::TrialState::Pruned, reason.clone()),
            (Some(Stop::Cancelled), _) => (
                common::TrialState::Cancelled,
                "cancelled: the evaluation's caller went away".to_owned(),
            ),
            (Some(Stop::FailFast), _) => (
                common::TrialState::Cancelled,
                "stopped: another seed failed and the failure policy is FAIL_FAST".to_owned(),
            ),
            (None, common::ExitReason::Completed) => {
                let mut reported: Vec<&str> = final_metrics.keys().map(String::as_str).collect();
                reported.sort_unstable();
                (
                    common::TrialState::Failed,
                    format!(
                        "the job finished without reporting {metric} (it reported: {})",
                        reported.join(", ")
                    ),
                )
            }
            (None, reason) => (common::TrialState::Failed, failure_message(reason, &result)),
        };
        self.ledger
            .update_trial(reg::UpdateTrialRequest {
                id: trial_id.to_owned(),
                state: Some(state as i32),
                job_id: None,
                usage: result.usage,
                final_metrics: final_metrics.clone(),
                exit_reason: result.exit_reason,
                message: Some(message.chars().take(4000).collect()),
                points: Vec::new(),
            })
            .await?;
        let seed_result = pb::SeedResult {
            seed,
            trial_id: trial_id.to_owned(),
            state: state as i32,
            exit_reason: result.exit_reason,
            final_metrics,
            usage: result.usage,
            message,
            device: self.device.clone(),
        };
        self.emit(pb::evaluate_event::Event::SeedFinished(seed_result.clone()))
            .await;
        Ok(seed_result)
    }
}

/// Why a job failed, in words, with the sandbox's own message.
pub fn failure_message(reason: common::ExitReason, result: &sb::JobResult) -> String {
    let what = match reason {
        common::ExitReason::Timeout => "timed out",
        common::ExitReason::OutOfMemory => "ran out of memory",
        common::ExitReason::OutputLimit => "exceeded the output limit",
        common::ExitReason::Killed => "was killed",
        common::ExitReason::Cancelled => "was cancelled",
        common::ExitReason::Rejected => "was rejected",
        common::ExitReason::Failed => "failed",
        _ => "ended without a result",
    };
    if result.message.is_empty() {
        format!("the job {what}")
    } else {
        format!("the job {what}: {}", result.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_result(reason: common::ExitReason, seeds: Vec<sb::SeedOutcome>) -> sb::JobResult {
        sb::JobResult {
            exit_reason: reason as i32,
            message: "the job's own message".into(),
            usage: Some(common::ResourceUsage {
                cpu_seconds: 9.0,
                wall_seconds: 4.0,
                ..Default::default()
            }),
            seeds,
            ..Default::default()
        }
    }

    fn outcome(seed: u64, accuracy: Option<f64>, error: &str) -> sb::SeedOutcome {
        sb::SeedOutcome {
            seed,
            final_metrics: accuracy
                .map(|a| HashMap::from([("val_accuracy".to_owned(), a)]))
                .unwrap_or_default(),
            error: error.into(),
        }
    }

    #[test]
    fn each_seed_gets_its_own_end_of_a_shared_job() {
        // The trainer exits 1 when one seed fails: the others keep their final records.
        let result = job_result(
            common::ExitReason::Failed,
            vec![
                outcome(1, Some(0.9), ""),
                outcome(2, None, "the loss became NaN at epoch 2"),
            ],
        );
        let first = seed_share(&result, 1, 3);
        assert_eq!(first.exit_reason, common::ExitReason::Completed as i32);
        assert_eq!(first.state, common::JobState::Succeeded as i32);
        assert_eq!(first.final_metrics["val_accuracy"], 0.9);
        assert_eq!(
            first.usage.map(|u| (u.cpu_seconds, u.wall_seconds)),
            Some((3.0, 4.0))
        );
        let second = seed_share(&result, 2, 3);
        assert_eq!(second.exit_reason, common::ExitReason::Failed as i32);
        assert_eq!(second.message, "the loss became NaN at epoch 2");
        assert!(second.final_metrics.is_empty() && second.seeds.is_empty());
        // A seed the sandbox does not mention in a completed job failed; in a timed-out job
        // it shares the job's end.
        let missing = seed_share(&result, 3, 3);
        assert_eq!(missing.exit_reason, common::ExitReason::Failed as i32);
        let completed = job_result(common::ExitReason::Completed, Vec::new());
        assert!(
            seed_share(&completed, 3, 3)
                .message
                .contains("no result for seed 3")
        );
        let timed_out = job_result(
            common::ExitReason::Timeout,
            vec![outcome(1, Some(0.8), ""), outcome(2, None, "ended first")],
        );
        assert_eq!(
            seed_share(&timed_out, 1, 2).exit_reason,
            common::ExitReason::Completed as i32
        );
        let late = seed_share(&timed_out, 2, 2);
        assert_eq!(late.exit_reason, common::ExitReason::Timeout as i32);
        assert_eq!(late.message, "the job's own message");
    }

    #[test]
    fn memory_and_time_scale_with_the_seeds_of_a_job() {
        let one = common::ResourceLimits {
            memory_bytes: 1 << 30,
            timeout_seconds: 60,
            cpu_millis: 2_000,
            ..Default::default()
        };
        let three = per_job(one, 3);
        assert_eq!(
            (three.memory_bytes, three.timeout_seconds, three.cpu_millis),
            (3 << 30, 180, 2_000)
        );
        assert_eq!(per_job(one, 1), one);
        let unset = per_job(common::ResourceLimits::default(), 4);
        assert_eq!((unset.memory_bytes, unset.timeout_seconds), (0, 0));
    }
}
