//! Several seeds of one candidate trained in one process: the dataset opened once, the cores
//! split between the seeds that run at once (each on a rayon pool of its own share, so their
//! kernels never contend for one pool), the rest queued. Each seed runs exactly as it would
//! alone — its parameters drawn under the initialisation lock, its dropout and shuffles from its
//! own streams — so a seed's metrics do not depend on the company it keeps.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ra_prepared::PreparedDataset;

use crate::metrics::FinalRecord;
use crate::train::{Reporter, RunConfig, TrainError, train};

/// How the cores are shared: `workers` seeds at once, worker `i` with `threads[i]` threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSplit {
    pub threads: Vec<usize>,
}

impl ThreadSplit {
    /// `cores` split between at most `seeds` workers, as evenly as whole threads allow (the
    /// shares add up to `cores`; never more workers than cores, never fewer than one thread).
    pub fn new(cores: usize, seeds: usize) -> Self {
        let cores = cores.max(1);
        let workers = seeds.clamp(1, cores);
        let (share, extra) = (cores / workers, cores % workers);
        Self {
            threads: (0..workers)
                .map(|i| share + usize::from(i < extra))
                .collect(),
        }
    }

    /// The threads of one seed when they are spread like this: the smallest share.
    pub fn per_seed(&self) -> usize {
        self.threads.iter().copied().min().unwrap_or(1)
    }
}

/// Where seed `seed`'s weights go under the job's output folder.
pub fn seed_output(output: &Path, seed: u64) -> PathBuf {
    output.join(format!("seed-{seed}"))
}

/// Trains each of `seeds` with `base` (its `seed` and `output` replaced per seed: weights under
/// `base.output/seed-N`), `split.threads.len()` at a time, reporting through the reporter that
/// `reporter_for` makes for each seed. Returns each seed's final record or error, in `seeds`'
/// order; one seed failing does not stop the others.
pub fn train_seeds(
    dataset: &PreparedDataset,
    base: &RunConfig,
    seeds: &[u64],
    split: &ThreadSplit,
    reporter_for: &(dyn Fn(u64) -> Box<dyn Reporter + Send> + Sync),
) -> Vec<(u64, Result<FinalRecord, TrainError>)> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<FinalRecord, TrainError>>>> =
        Mutex::new(seeds.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for &threads in &split.threads {
            let (next, results) = (&next, &results);
            scope.spawn(move || {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("ra-seed-{i}"))
                    .build();
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&seed) = seeds.get(index) else {
                        break;
                    };
                    let config = RunConfig {
                        seed,
                        output: base
                            .output
                            .as_deref()
                            .map(|output| seed_output(output, seed)),
                        ..base.clone()
                    };
                    let mut reporter = reporter_for(seed);
                    let mut run = || {
                        // A panic in one seed (a backend's assertion) fails that seed only.
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            train(dataset, &config, reporter.as_mut())
                        }))
                        .unwrap_or_else(|panic| Err(TrainError::Panicked(panic_message(&panic))))
                    };
                    let outcome = match &pool {
                        Ok(pool) => pool.install(run),
                        // No pool of our own (threads could not be started): the global one.
                        Err(_) => run(),
                    };
                    let record = outcome.map(|outcome| outcome.final_record);
                    match &record {
                        Ok(record) => reporter.finished(record),
                        Err(error) => reporter.failed(error),
                    }
                    results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)[index] = Some(record);
                }
            });
        }
    });
    let results = results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    seeds
        .iter()
        .zip(results)
        .map(|(&seed, result)| {
            let never_ran = || Err(TrainError::Panicked("its worker ended first".into()));
            (seed, result.unwrap_or_else(never_ran))
        })
        .collect()
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shares_add_up_to_the_cores() {
        assert_eq!(ThreadSplit::new(2, 3).threads, [1, 1]);
        assert_eq!(ThreadSplit::new(2, 1).threads, [2]);
        assert_eq!(ThreadSplit::new(16, 3).threads, [6, 5, 5]);
        assert_eq!(ThreadSplit::new(0, 0).threads, [1]);
        assert_eq!(ThreadSplit::new(16, 3).per_seed(), 5);
        for cores in 1..20 {
            for seeds in 1..8 {
                let split = ThreadSplit::new(cores, seeds);
                assert_eq!(split.threads.iter().sum::<usize>(), cores);
                assert!(split.threads.len() <= seeds && split.threads.iter().all(|t| *t >= 1));
            }
        }
    }
}
