//! A live session as the service sees it: its status, its numbered event log (replayed by
//! WatchResearch from any position), its stop request, and what people ask of it while it
//! runs (injected candidates, a new budget). The research loop writes the log and takes the
//! requests; the RPCs read the log and leave requests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use ra_proto::common::v1 as common;
use ra_spec::{ModelSpec, TrainSpec};

use ra_proto::planner::v1 as pb;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Events kept per session (older ones are dropped from the replay; the registry keeps all).
const MAX_EVENTS: usize = 100_000;

struct Log {
    status: pb::ResearchStatus,
    events: Vec<pb::ResearchEvent>,
    /// Position of `events[0]`.
    first_position: u64,
    finished: bool,
}

/// One running (or just ended) session.
pub struct SessionHandle {
    pub id: String,
    log: Mutex<Log>,
    /// The last position written; watchers wait on changes.
    written: watch::Sender<u64>,
    /// Triggered by StopResearch (or the service shutting down).
    pub stop: CancellationToken,
    stop_reason: Mutex<String>,
    requests: Mutex<Requests>,
}

/// A candidate a person proposed, waiting for the loop to take it.
#[derive(Debug, Clone)]
pub struct Injection {
    pub model: ModelSpec,
    pub train: TrainSpec,
    pub rationale: String,
    pub proposed_by: String,
}

/// A budget change waiting for the loop: the new limits and who asked.
#[derive(Debug, Clone)]
pub struct BudgetChange {
    pub budget: common::Budget,
    pub requested_by: String,
}

#[derive(Debug, Default)]
struct Requests {
    injected: VecDeque<Injection>,
    budget: Option<BudgetChange>,
}

/// Injected candidates a session keeps waiting at most.
pub const MAX_QUEUED_INJECTIONS: usize = 64;

impl SessionHandle {
    pub fn new(status: pb::ResearchStatus) -> Arc<Self> {
        let (written, _) = watch::channel(0);
        Arc::new(Self {
            id: status.research_id.clone(),
            log: Mutex::new(Log {
                status,
                events: Vec::new(),
                first_position: 1,
                finished: false,
            }),
            written,
            stop: CancellationToken::new(),
            stop_reason: Mutex::new(String::new()),
            requests: Mutex::new(Requests::default()),
        })
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends an event; a `finished` event also replaces the status and ends the log.
    pub fn emit(&self, event: pb::research_event::Event) {
        let position = {
            let mut log = self.log();
            if log.finished {
                return;
            }
            if let pb::research_event::Event::Finished(status) = &event {
                log.status = status.clone();
                log.finished = true;
            }
            let position = log.first_position + log.events.len() as u64;
            log.events.push(pb::ResearchEvent {
                position,
                time: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
                event: Some(event),
            });
            if log.events.len() > MAX_EVENTS {
                let excess = log.events.len() - MAX_EVENTS;
                log.events.drain(..excess);
                log.first_position += excess as u64;
            }
            position
        };
        self.written.send_replace(position);
    }

    pub fn status(&self) -> pb::ResearchStatus {
        self.log().status.clone()
    }

    pub fn update_status(&self, change: impl FnOnce(&mut pb::ResearchStatus)) {
        change(&mut self.log().status);
    }

    pub fn is_finished(&self) -> bool {
        self.log().finished
    }

    /// Events with a position above `after`, and whether the log has ended.
    pub fn events_after(&self, after: u64) -> (Vec<pb::ResearchEvent>, bool) {
        let log = self.log();
        let skip = after.saturating_sub(log.first_position.saturating_sub(1));
        let events = log
            .events
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .cloned()
            .collect();
        (events, log.finished)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    pub fn request_stop(&self, reason: &str) {
        {
            let mut kept = self
                .stop_reason
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if kept.is_empty() {
                *kept = reason.to_owned();
            }
        }
        self.update_status(|status| {
            if status.state == pb::ResearchState::Running as i32 {
                status.state = pb::ResearchState::Stopping as i32;
            }
        });
        self.stop.cancel();
    }

    fn requests(&self) -> MutexGuard<'_, Requests> {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a person's candidate; its place in the queue (1 = next), or `None` when the
    /// queue is full.
    pub fn inject(&self, injection: Injection) -> Option<usize> {
        let mut requests = self.requests();
        if requests.injected.len() >= MAX_QUEUED_INJECTIONS {
            return None;
        }
        requests.injected.push_back(injection);
        Some(requests.injected.len())
    }

    /// The next injected candidate, for the loop.
    pub fn take_injection(&self) -> Option<Injection> {
        self.requests().injected.pop_front()
    }

    /// Leaves a budget change for the loop (a later one replaces one not yet applied).
    pub fn change_budget(&self, change: BudgetChange) {
        self.requests().budget = Some(change);
    }

    /// The budget change to apply, for the loop.
    pub fn take_budget_change(&self) -> Option<BudgetChange> {
        self.requests().budget.take()
    }

    pub fn stop_reason(&self) -> String {
        self.stop_reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
