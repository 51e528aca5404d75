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
//! | `m/{trial}/{metric}\0{step u64 BE}` | value f64 LE + wall time ns i64 LE |
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
pub fn metric_series(trial: &str, name: &str) -> Vec<u8> {
    let mut key = trial_metrics(trial).into_bytes();
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    key
}
pub fn metric_point(trial: &str, name: &str, step: u64) -> Vec<u8> {
    let mut key = metric_series(trial, name);
    key.extend_from_slice(&step.to_be_bytes());
    key
}
/// Splits the tail of a metric key (after the trial prefix) into name and step.
pub fn parse_metric_tail(tail: &[u8]) -> Option<(&str, u64)> {
    let split = tail.iter().position(|b| *b == 0)?;
    let name = std::str::from_utf8(&tail[..split]).ok()?;
    let step = u64::from_be_bytes(tail.get(split + 1..)?.try_into().ok()?);
    Some((name, step))
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

/// Encodes a metric value and its wall time (ns since the epoch).
pub fn metric_value(value: f64, wall_time_nanos: i64) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&value.to_le_bytes());
    bytes[8..].copy_from_slice(&wall_time_nanos.to_le_bytes());
    bytes
}
pub fn parse_metric_value(bytes: &[u8]) -> Option<(f64, i64)> {
    let value = f64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let wall = i64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
    Some((value, wall))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_keys_round_trip_and_sort_by_name_then_step() {
        let a = metric_point("trial_x", "loss", 2);
        let b = metric_point("trial_x", "loss", 10);
        let c = metric_point("trial_x", "loss2", 0);
        assert!(a < b && b < c);
        let prefix = trial_metrics("trial_x").len();
        assert_eq!(parse_metric_tail(&b[prefix..]), Some(("loss", 10)));
        assert_eq!(parse_metric_value(&metric_value(0.25, 7)), Some((0.25, 7)));
    }
}
