//! The key layout of the single `records` tree. One tree keeps every multi-record write a single
//! atomic sled batch. Ids are UUIDv7, so key order is creation order.
//!
//! | key | value |
//! | --- | --- |
//! | `e/{experiment}` | Experiment |
//! | `c/{candidate}` · `ec/{experiment}/{candidate}` | Candidate · index |
//! | `t/{trial}` · `et/{experiment}/{trial}` · `ct/{candidate}/{trial}` | Trial · indexes |
//! | `cs/{candidate}/{seed:020}` | trial id holding that seed |
//! | `d/{decision}` · `ed/{experiment}/{decision}` | Decision · index |
//! | `v/{evaluation}` · `ev/{experiment}/{evaluation}` | Evaluation · index |
//! | `m/{trial}/{metric}\0{sequence u64 BE}` | a chunk: (step, value, wall time) × n |
//! | `w/{experiment}/{position u64 BE}` | ExperimentEvent |
//! | `a/{sha256}` · `ea/{experiment}/{sha256}` | Artifact · the experiment's link to it |

pub fn experiment(id: &str) -> String {
    format!("e/{id}")
}
pub const EXPERIMENTS: &str = "e/";

pub fn candidate(id: &str) -> String {
    format!("c/{id}")
}
pub fn experiment_candidates(experiment: &str) -> String {
    format!("ec/{experiment}/")
}

pub fn trial(id: &str) -> String {
    format!("t/{id}")
}
pub fn experiment_trials(experiment: &str) -> String {
    format!("et/{experiment}/")
}
pub fn candidate_trials(candidate: &str) -> String {
    format!("ct/{candidate}/")
}
pub fn candidate_seed(candidate: &str, seed: u64) -> String {
    format!("cs/{candidate}/{seed:020}")
}

pub fn decision(id: &str) -> String {
    format!("d/{id}")
}
pub fn experiment_decisions(experiment: &str) -> String {
    format!("ed/{experiment}/")
}

pub fn evaluation(id: &str) -> String {
    format!("v/{id}")
}
pub fn experiment_evaluations(experiment: &str) -> String {
    format!("ev/{experiment}/")
}

pub fn trial_metrics(trial: &str) -> String {
    format!("m/{trial}/")
}
/// Prefix of every chunk of one metric of one trial.
pub fn metric_series(trial: &str, name: &str) -> Vec<u8> {
    let mut key = trial_metrics(trial).into_bytes();
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    key
}
/// One chunk of a series: the points one batch wrote for that metric, `sequence` increasing
/// with every write so that a later chunk overrides an earlier one at the same step.
pub fn metric_chunk(trial: &str, name: &str, sequence: u64) -> Vec<u8> {
    let mut key = metric_series(trial, name);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}
/// Splits the tail of a chunk key (after the trial prefix) into metric name and sequence.
pub fn parse_metric_tail(tail: &[u8]) -> Option<(&str, u64)> {
    let split = tail.iter().position(|b| *b == 0)?;
    let name = std::str::from_utf8(&tail[..split]).ok()?;
    let sequence = u64::from_be_bytes(tail.get(split + 1..)?.try_into().ok()?);
    Some((name, sequence))
}

pub fn experiment_events(experiment: &str) -> String {
    format!("w/{experiment}/")
}
pub fn event(experiment: &str, position: u64) -> Vec<u8> {
    let mut key = experiment_events(experiment).into_bytes();
    key.extend_from_slice(&position.to_be_bytes());
    key
}

pub fn artifact(sha256: &str) -> String {
    format!("a/{sha256}")
}
pub fn experiment_artifacts(experiment: &str) -> String {
    format!("ea/{experiment}/")
}

/// The last path segment of an index key: the id it points to.
pub fn last_segment(key: &[u8]) -> &[u8] {
    match key.iter().rposition(|b| *b == b'/') {
        Some(slash) => &key[slash + 1..],
        None => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_round_trip_and_sort_by_name_then_sequence() {
        let a = metric_chunk("trial_x", "loss", 2);
        let b = metric_chunk("trial_x", "loss", 10);
        let c = metric_chunk("trial_x", "loss2", 0);
        assert!(a < b && b < c);
        let prefix = trial_metrics("trial_x").len();
        assert_eq!(parse_metric_tail(&b[prefix..]), Some(("loss", 10)));
    }
}
