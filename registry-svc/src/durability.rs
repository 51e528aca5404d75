//! Group commit: a write is acknowledged only after an fsync that covers it, and concurrent
//! writers share fsyncs instead of queueing one each.
//!
//! Every writer takes a ticket after its batch is applied and wakes the flusher; the flusher
//! reads the newest ticket, flushes sled once, and publishes that ticket as durable. All writers
//! whose ticket it covers return together.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::error::{RegistryError, Result};

#[derive(Debug, Clone, Default)]
struct FlushState {
    /// Highest ticket known to be on disk.
    durable: u64,
    /// Highest ticket whose flush failed, with the error.
    failed: Option<(u64, String)>,
    closed: bool,
}

#[derive(Debug)]
pub struct GroupCommit {
    tickets: Arc<AtomicU64>,
    wake: Arc<Notify>,
    state: watch::Receiver<FlushState>,
    flushes: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommit {
    /// Starts the flusher task for `db` on the current tokio runtime.
    pub fn start(db: sled::Db) -> Self {
        let tickets = Arc::new(AtomicU64::new(0));
        let wake = Arc::new(Notify::new());
        let flushes = Arc::new(AtomicU64::new(0));
        let closing = Arc::new(AtomicBool::new(false));
        let (sender, state) = watch::channel(FlushState::default());
        let task = tokio::spawn(flusher(
            db,
            Arc::clone(&tickets),
            Arc::clone(&wake),
            sender,
            Arc::clone(&flushes),
            Arc::clone(&closing),
        ));
        Self {
            tickets,
            wake,
            state,
            flushes,
            closing,
            task: Mutex::new(Some(task)),
        }
    }

    /// Waits until everything applied before this call is on disk.
    pub async fn wait_durable(&self) -> Result<()> {
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        let mut state = self.state.clone();
        let reached = state
            .wait_for(|s| {
                s.durable >= ticket
                    || s.closed
                    || s.failed.as_ref().is_some_and(|(t, _)| *t >= ticket)
            })
            .await
            .map_err(|_| RegistryError::ShuttingDown)?;
        if reached.durable >= ticket {
            return Ok(());
        }
        if let Some((_, error)) = &reached.failed {
            return Err(RegistryError::Io(std::io::Error::other(format!(
                "flush to disk failed: {error}"
            ))));
        }
        Err(RegistryError::ShuttingDown)
    }

    /// How many fsyncs have run (for the benchmark and tests of grouping).
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Flushes what is pending and stops the flusher, releasing its handle on the database.
    pub async fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        let task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        // Lets the flusher exit (and drop its database handle) once nobody can wait on it.
        self.closing.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

async fn flusher(
    db: sled::Db,
    tickets: Arc<AtomicU64>,
    wake: Arc<Notify>,
    sender: watch::Sender<FlushState>,
    flushes: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
) {
    loop {
        wake.notified().await;
        let target = tickets.load(Ordering::SeqCst);
        let flush_db = db.clone();
        let outcome = tokio::task::spawn_blocking(move || flush_db.flush()).await;
        flushes.fetch_add(1, Ordering::Relaxed);
        sender.send_modify(|state| match outcome {
            Ok(Ok(_)) => state.durable = state.durable.max(target),
            Ok(Err(error)) => state.failed = Some((target, error.to_string())),
            Err(join_error) => state.failed = Some((target, join_error.to_string())),
        });
        if closing.load(Ordering::SeqCst) || sender.is_closed() {
            sender.send_modify(|state| state.closed = true);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_writers_share_flushes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("open");
        let commit = Arc::new(GroupCommit::start(db.clone()));
        let mut tasks = Vec::new();
        for writer in 0..64u32 {
            let db = db.clone();
            let commit = Arc::clone(&commit);
            tasks.push(tokio::spawn(async move {
                db.insert(writer.to_be_bytes(), b"x".to_vec())
                    .expect("insert");
                commit.wait_durable().await
            }));
        }
        for task in tasks {
            task.await.expect("join").expect("durable");
        }
        assert!(commit.flush_count() >= 1);
        assert!(
            commit.flush_count() <= 64,
            "never more flushes than writers"
        );
    }
}
