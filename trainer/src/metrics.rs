//! The metrics protocol: one JSON object per line on stdout. Every record has an `"event"`
//! field; anything else a program prints on stdout is a log line.
//!
//! ```text
//! {"event":"epoch","epoch":1,"train_loss":0.41,"val_loss":0.22,"val_accuracy":0.94,"seconds":3.1,"samples_per_second":5200.0,"learning_rate":0.001}
//! {"event":"final","epochs":10,"val_loss":0.1,"val_accuracy":0.97,"test_loss":0.11,"test_accuracy":0.96,"parameters":206922,"peak_rss_bytes":81723392,"stopped_early":false}
//! ```

use serde::Serialize;

/// One epoch's record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochRecord {
    pub event: &'static str,
    /// 1-based.
    pub epoch: u32,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    /// Present when the train split is imbalanced (largest class over smallest above 1.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_macro_f1: Option<f64>,
    pub learning_rate: f64,
    pub seconds: f64,
    pub samples_per_second: f64,
}

/// The last record of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinalRecord {
    pub event: &'static str,
    pub epochs: u32,
    pub val_loss: f64,
    pub val_accuracy: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_macro_f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_macro_f1: Option<f64>,
    pub parameters: u64,
    pub peak_rss_bytes: u64,
    pub stopped_early: bool,
    pub seconds: f64,
}

/// Loss, accuracy and macro-F1 over a split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub macro_f1: f64,
}

/// Accuracy and macro-F1 (mean over classes that occur in labels or predictions).
pub fn classification_scores(labels: &[i64], predictions: &[i64], classes: usize) -> (f64, f64) {
    let mut true_positive = vec![0u64; classes];
    let mut predicted = vec![0u64; classes];
    let mut actual = vec![0u64; classes];
    let mut correct = 0u64;
    for (label, prediction) in labels.iter().zip(predictions) {
        let (label, prediction) = (*label as usize, *prediction as usize);
        if label < classes {
            actual[label] += 1;
        }
        if prediction < classes {
            predicted[prediction] += 1;
        }
        if label == prediction {
            correct += 1;
            if label < classes {
                true_positive[label] += 1;
            }
        }
    }
    let accuracy = if labels.is_empty() {
        0.0
    } else {
        correct as f64 / labels.len() as f64
    };
    let f1s: Vec<f64> = (0..classes)
        .filter(|c| actual[*c] + predicted[*c] > 0)
        .map(|c| 2.0 * true_positive[c] as f64 / (actual[c] + predicted[c]) as f64)
        .collect();
    let macro_f1 = if f1s.is_empty() {
        0.0
    } else {
        f1s.iter().sum::<f64>() / f1s.len() as f64
    };
    (accuracy, macro_f1)
}

/// Peak resident set size of this process (Linux `VmHWM`), 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_hand_computed_values() {
        let (accuracy, f1) = classification_scores(&[0, 0, 1, 1], &[0, 1, 1, 1], 2);
        assert!((accuracy - 0.75).abs() < 1e-12);
        // class 0: tp 1, actual 2, predicted 1 → 2/3; class 1: tp 2, actual 2, predicted 3 → 0.8
        assert!((f1 - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12);
    }
}
