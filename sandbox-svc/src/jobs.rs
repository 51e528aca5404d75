//! The job table and queue: jobs submitted (detached or for one RunJob call) wait for one of
//! `max_concurrent_jobs` slots in submission order, run through the [`Executor`], and keep
//! their event history so that WatchJob can replay it from the start and follow it live.
//! A full queue refuses new jobs; cancelling a queued or running job ends it promptly.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::devices::DeviceRefusal;
use crate::events::{BackendKind, Event, ExitReason, JobResult};
use crate::executor::{Executor, Placement};
use crate::job::{Job, JobKind};

/// Log lines kept per job in its history; later ones are counted, not kept.
const MAX_KEPT_LOG_EVENTS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    /// The state a job ends in, from its result.
    pub fn of(result: &JobResult) -> Self {
        match result.reason {
            ExitReason::Completed => JobState::Succeeded,
            ExitReason::Cancelled => JobState::Cancelled,
            _ => JobState::Failed,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("job id {0:?} must be 1 to 64 characters of letters, digits, '-', '_' or '.'")]
    BadId(String),
    #[error("job {0:?} exists with a different spec; pick another id")]
    Conflict(String),
    #[error("the queue is full ({0} jobs waiting); retry later or raise sandbox.max_queued_jobs")]
    QueueFull(usize),
    #[error("no job {0:?} (finished jobs are forgotten after sandbox.max_finished_jobs)")]
    NotFound(String),
    #[error("the job is refused: {0}")]
    Invalid(String),
    #[error("{0}")]
    BackendUnavailable(String),
    #[error("the job is refused: {0}")]
    DeviceUnavailable(String),
}

#[derive(Debug, Clone)]
pub struct TimedEvent {
    pub time: SystemTime,
    pub event: Event,
}

#[derive(Debug)]
struct Progress {
    state: JobState,
    events: Vec<TimedEvent>,
    kept_logs: usize,
    dropped_logs: u64,
    started_at: Option<SystemTime>,
    finished_at: Option<SystemTime>,
    result: Option<JobResult>,
}

/// One job and everything known about it.
#[derive(Debug)]
pub struct JobEntry {
    pub id: String,
    pub job: Job,
    pub backend: Option<BackendKind>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub created_at: SystemTime,
    cancel: CancellationToken,
    progress: Mutex<Progress>,
    /// Bumped on every new event; watchers wait on it.
    version: watch::Sender<u64>,
}

/// A consistent copy of a job's state.
#[derive(Debug, Clone)]
pub struct JobSnapshot {
    pub state: JobState,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub result: Option<JobResult>,
    pub queue_position: u32,
}

impl JobEntry {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, event: Event) {
        let mut progress = self.lock();
        if let Event::Log { .. } = event {
            if progress.kept_logs >= MAX_KEPT_LOG_EVENTS {
                progress.dropped_logs += 1;
                return;
            }
            progress.kept_logs += 1;
        }
        match &event {
            Event::Started(_) => {
                progress.state = JobState::Running;
                progress.started_at = Some(SystemTime::now());
            }
            Event::Finished(result) => {
                progress.state = JobState::of(result);
                progress.finished_at = Some(SystemTime::now());
                progress.result = Some(result.clone());
            }
            _ => {}
        }
        progress.events.push(TimedEvent {
            time: SystemTime::now(),
            event,
        });
        let count = progress.events.len() as u64;
        drop(progress);
        self.version.send_replace(count);
    }

    pub fn snapshot(&self, queue_position: u32) -> JobSnapshot {
        let progress = self.lock();
        JobSnapshot {
            state: progress.state,
            started_at: progress.started_at,
            finished_at: progress.finished_at,
            result: progress.result.clone(),
            queue_position,
        }
    }

    /// Events from `from` on, and whether the job has finished.
    pub fn events_since(&self, from: usize) -> (Vec<TimedEvent>, bool) {
        let progress = self.lock();
        let events = progress.events.get(from..).unwrap_or_default().to_vec();
        (events, progress.state.finished())
    }

    /// Waits until there are more than `seen` events (returns at once if there are).
    pub async fn wait_beyond(&self, seen: usize) {
        let mut receiver = self.version.subscribe();
        let _ = receiver.wait_for(|&count| count as usize > seen).await;
    }

    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    pub fn is_finished(&self) -> bool {
        self.lock().state.finished()
    }
}

#[derive(Debug, Default)]
struct Table {
    jobs: HashMap<String, Arc<JobEntry>>,
    /// Submission order, for listing and forgetting the oldest finished jobs.
    order: VecDeque<String>,
    /// Jobs waiting for a slot, in order.
    waiting: VecDeque<String>,
}

impl Table {
    /// 1-based place of `id` among the waiting jobs; 0 when it is not waiting.
    fn queue_position(&self, id: &str) -> u32 {
        self.waiting
            .iter()
            .position(|w| w == id)
            .map_or(0, |p| p as u32 + 1)
    }
}

/// The service's jobs.
#[derive(Debug, Clone)]
pub struct Jobs {
    executor: Arc<Executor>,
    slots: Arc<Semaphore>,
    table: Arc<Mutex<Table>>,
}

impl Jobs {
    pub fn new(executor: Executor) -> Self {
        let slots = Arc::new(Semaphore::new(executor.settings.concurrency()));
        Self {
            executor: Arc::new(executor),
            slots,
            table: Arc::default(),
        }
    }

    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Resolves a train job's device for `backend` (`auto` → the fastest one present, "" →
    /// flex): an unknown name is a bad request, a device this sandbox lacks a precondition.
    /// Other jobs are left as they are.
    pub fn resolve_device(
        &self,
        job: &mut Job,
        backend: Option<BackendKind>,
    ) -> Result<(), JobsError> {
        let kind = self.executor.backend_kind(backend);
        if let JobKind::Train(train) = &mut job.kind {
            train.device = match self.executor.devices.choose(&train.device, kind) {
                Ok(device) => device,
                Err(refusal @ DeviceRefusal::Unknown(_)) => {
                    return Err(JobsError::Invalid(refusal.to_string()));
                }
                Err(refusal @ DeviceRefusal::Unavailable { .. }) => {
                    return Err(JobsError::DeviceUnavailable(refusal.to_string()));
                }
            };
        }
        Ok(())
    }

    /// Checks and queues a job; returns the existing entry for a repeated id with the same
    /// spec (idempotent retries).
    pub fn submit(
        &self,
        id: Option<String>,
        mut job: Job,
        backend: Option<BackendKind>,
        labels: std::collections::BTreeMap<String, String>,
    ) -> Result<Arc<JobEntry>, JobsError> {
        let id = match id {
            Some(id) => {
                let plain = (1..=64).contains(&id.len())
                    && !id.starts_with('.')
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !plain {
                    return Err(JobsError::BadId(id));
                }
                id
            }
            None => uuid::Uuid::now_v7().to_string(),
        };
        let validation = self.executor.validate(&job);
        if !validation.ok() {
            let reasons: Vec<String> = validation
                .violations
                .iter()
                .map(|v| {
                    format!(
                        "{} ({}): {}",
                        v.rule,
                        v.layer.as_deref().unwrap_or("-"),
                        v.message
                    )
                })
                .collect();
            return Err(JobsError::Invalid(reasons.join("; ")));
        }
        let kind = self.executor.backend_kind(backend);
        if let Some(why) = self.executor.unavailable(kind) {
            return Err(JobsError::BackendUnavailable(format!(
                "the {} backend is unavailable: {why}",
                kind.label()
            )));
        }
        // The device it runs on, `auto` resolved; one this sandbox lacks is refused before
        // anything runs.
        self.resolve_device(&mut job, backend)?;
        let mut table = self.table();
        if let Some(existing) = table.jobs.get(&id) {
            return if existing.job == job && existing.backend == backend {
                Ok(existing.clone())
            } else {
                Err(JobsError::Conflict(id))
            };
        }
        let max_queued = self.executor.settings.max_queued_jobs as usize;
        if table.waiting.len() >= max_queued {
            return Err(JobsError::QueueFull(table.waiting.len()));
        }
        let entry = Arc::new(JobEntry {
            id: id.clone(),
            job,
            backend,
            labels,
            created_at: SystemTime::now(),
            cancel: CancellationToken::new(),
            progress: Mutex::new(Progress {
                state: JobState::Queued,
                events: Vec::new(),
                kept_logs: 0,
                dropped_logs: 0,
                started_at: None,
                finished_at: None,
                result: None,
            }),
            version: watch::Sender::new(0),
        });
        table.jobs.insert(id.clone(), entry.clone());
        table.order.push_back(id.clone());
        table.waiting.push_back(id);
        let position = table.waiting.len() as u32;
        self.forget_old(&mut table);
        drop(table);
        entry.record(Event::Queued { position });
        tokio::spawn(self.clone().run(entry.clone(), kind));
        Ok(entry)
    }

    async fn run(self, entry: Arc<JobEntry>, kind: BackendKind) {
        // A GPU job first waits for a GPU (the cluster schedules those of kubernetes jobs).
        let gpu = if entry.job.on_gpu() && kind != BackendKind::Kubernetes {
            tokio::select! {
                lease = self.executor.gpus.acquire() => Some(lease),
                () = entry.cancel.cancelled() => None,
            }
        } else {
            Some(None)
        };
        let permit = match gpu {
            Some(_) => tokio::select! {
                permit = self.slots.clone().acquire_owned() => permit.ok(),
                () = entry.cancel.cancelled() => None,
            },
            None => None,
        };
        let gpu = gpu.flatten();
        // The jobs that share the cores as this one starts: those holding a slot, itself
        // among them, and those about to (waiting), at most as many as run at once.
        let concurrency = self.executor.settings.concurrency();
        let running = concurrency.saturating_sub(self.slots.available_permits());
        let waiting = self.table().waiting.len().saturating_sub(1);
        let sharing = (running + waiting).clamp(1, concurrency.max(1)) as u32;
        self.table().waiting.retain(|id| id != &entry.id);
        let Some(_permit) = permit else {
            let mut result = JobResult::rejected("cancelled while queued");
            result.reason = ExitReason::Cancelled;
            entry.record(Event::Finished(result));
            return;
        };
        let recorder = entry.clone();
        let mut emit = move |event: Event| recorder.record(event);
        let span = tracing::info_span!("job", id = %entry.id, backend = ?kind);
        let result = self
            .executor
            .execute(
                &entry.id,
                &entry.job,
                kind,
                Placement {
                    gpu: gpu.as_ref().map(|lease| lease.index),
                    sharing,
                },
                &entry.cancel,
                &mut emit,
            )
            .instrument(span)
            .await;
        tracing::info!(job = %entry.id, reason = ?result.reason, message = %result.message, "job ended");
    }

    /// Forgets the oldest finished jobs beyond `max_finished_jobs`.
    fn forget_old(&self, table: &mut Table) {
        let keep = self.executor.settings.max_finished_jobs as usize;
        let finished: Vec<String> = table
            .order
            .iter()
            .filter(|id| table.jobs.get(*id).is_some_and(|j| j.is_finished()))
            .cloned()
            .collect();
        if finished.len() > keep {
            for id in &finished[..finished.len() - keep] {
                table.jobs.remove(id);
                table.order.retain(|o| o != id);
            }
        }
    }

    pub fn get(&self, id: &str) -> Result<(Arc<JobEntry>, u32), JobsError> {
        let table = self.table();
        let entry = table
            .jobs
            .get(id)
            .cloned()
            .ok_or_else(|| JobsError::NotFound(id.to_owned()))?;
        let position = table.queue_position(id);
        Ok((entry, position))
    }

    /// Jobs in submission order, optionally only those in `state`.
    pub fn list(&self, state: Option<JobState>) -> Vec<(Arc<JobEntry>, u32)> {
        let table = self.table();
        table
            .order
            .iter()
            .filter_map(|id| table.jobs.get(id))
            .filter(|entry| state.is_none_or(|s| entry.snapshot(0).state == s))
            .map(|entry| (entry.clone(), table.queue_position(&entry.id)))
            .collect()
    }

    /// Cancels every job (service shutdown).
    pub fn cancel_all(&self) {
        for entry in self.table().jobs.values() {
            entry.cancel();
        }
    }
}
