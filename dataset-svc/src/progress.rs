//! Progress of a preparation as it goes: the stage, how far within it, bytes for downloads,
//! and a sentence for people. The gRPC adapter streams these as `PrepareProgress` events.

/// One progress report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// "download", "verify", "parse", "generate", "preprocess", "write" or "cache-hit".
    pub stage: &'static str,
    /// 0 to 1 within the stage.
    pub fraction: f64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub message: String,
}

impl Progress {
    /// `stage` is `fraction` done.
    pub fn at(stage: &'static str, fraction: f64, message: impl Into<String>) -> Self {
        Self {
            stage,
            fraction: fraction.clamp(0.0, 1.0),
            message: message.into(),
            ..Self::default()
        }
    }

    /// `done` of `total` bytes of `stage` (total 0 when unknown).
    pub fn bytes(stage: &'static str, done: u64, total: u64, message: impl Into<String>) -> Self {
        let fraction = if total > 0 {
            done as f64 / total as f64
        } else {
            0.0
        };
        Self {
            bytes_done: done,
            bytes_total: total,
            ..Self::at(stage, fraction, message)
        }
    }
}

/// Where a preparation sends its progress.
pub type Report<'a> = &'a mut dyn FnMut(Progress);
