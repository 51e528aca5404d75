//! Reading a job's output: bytes split into lines per stream (overlong lines cut into pieces),
//! and stdout lines that are metrics-protocol records (`{"event":"epoch",…}`,
//! `{"event":"final",…}`, and in a job of several seeds `{"event":"seed_failed",…}`, each with
//! its `"seed"`) told apart from log lines.

use std::collections::BTreeMap;

use crate::events::{Event, OutputStream};

/// Longest line kept whole; longer output is split.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Splits one stream's bytes into lines.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; returns the complete lines.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &byte in bytes {
            if byte == b'\n' {
                lines.push(self.take());
            } else {
                self.pending.push(byte);
                if self.pending.len() >= MAX_LINE_BYTES {
                    lines.push(self.take());
                }
            }
        }
        lines
    }

    /// The unterminated last line, if any.
    pub fn finish(&mut self) -> Option<String> {
        (!self.pending.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.pending)
            .trim_end_matches('\r')
            .to_owned();
        self.pending.clear();
        line
    }
}

/// What one line of output means.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Event(Event),
    /// A final record, with the seed it names (a job of several seeds).
    Final {
        metrics: BTreeMap<String, f64>,
        seed: Option<u64>,
    },
    /// One seed of a job of several seeds failed; the others go on.
    SeedFailed {
        seed: u64,
        error: String,
    },
}

/// A record's `"seed"`, taken out of its numbers: a whole number ≥ 0 that fits a u64.
fn take_seed(metrics: &mut BTreeMap<String, f64>) -> Option<u64> {
    let value = metrics.remove("seed")?;
    (value >= 0.0 && value.fract() == 0.0 && value < u64::MAX as f64).then_some(value as u64)
}

/// Numeric fields of a record (booleans as 0/1), without `event`.
fn numbers(object: &serde_json::Map<String, serde_json::Value>) -> BTreeMap<String, f64> {
    object
        .iter()
        .filter(|(key, _)| key.as_str() != "event")
        .filter_map(|(key, value)| {
            let number = match value {
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::Bool(b) => Some(f64::from(u8::from(*b))),
                _ => None,
            }?;
            number.is_finite().then(|| (key.clone(), number))
        })
        .collect()
}

/// Interprets a line of `stream`.
pub fn interpret(stream: OutputStream, line: String) -> Line {
    if stream == OutputStream::Stdout
        && line.starts_with('{')
        && let Ok(serde_json::Value::Object(object)) = serde_json::from_str(&line)
    {
        match object.get("event").and_then(|e| e.as_str()) {
            Some("epoch") => {
                let mut metrics = numbers(&object);
                let epoch = metrics.remove("epoch").unwrap_or(0.0).max(0.0) as u64;
                let seconds = metrics.remove("seconds").unwrap_or(0.0);
                let seed = take_seed(&mut metrics);
                return Line::Event(Event::Epoch {
                    epoch,
                    metrics,
                    seconds,
                    seed,
                });
            }
            Some("final") => {
                let mut metrics = numbers(&object);
                let seed = take_seed(&mut metrics);
                return Line::Final { metrics, seed };
            }
            Some("seed_failed") => {
                if let Some(seed) = take_seed(&mut numbers(&object)) {
                    let error = object.get("error").and_then(|e| e.as_str()).unwrap_or("");
                    return Line::SeedFailed {
                        seed,
                        error: error.chars().take(4000).collect(),
                    };
                }
            }
            _ => {}
        }
    }
    Line::Event(Event::Log { stream, line })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_and_records_are_recognised() {
        let mut splitter = LineSplitter::default();
        assert!(splitter.push(b"{\"event\":\"epo").is_empty());
        let lines =
            splitter.push(b"ch\",\"epoch\":2,\"val_accuracy\":0.5,\"seconds\":1.5}\nhello\r\nrest");
        assert_eq!(lines.len(), 2);
        assert_eq!(splitter.finish().as_deref(), Some("rest"));
        match interpret(OutputStream::Stdout, lines[0].clone()) {
            Line::Event(Event::Epoch {
                epoch,
                metrics,
                seconds,
                seed,
            }) => {
                assert_eq!((epoch, seconds, seed), (2, 1.5, None));
                assert_eq!(metrics.get("val_accuracy"), Some(&0.5));
            }
            other => panic!("not an epoch: {other:?}"),
        }
        assert_eq!(
            interpret(OutputStream::Stdout, lines[1].clone()),
            Line::Event(Event::Log {
                stream: OutputStream::Stdout,
                line: "hello".into()
            })
        );
        let record = r#"{"event":"final","val_accuracy":0.9,"stopped_early":true,"name":"x"}"#;
        match interpret(OutputStream::Stdout, record.into()) {
            Line::Final { metrics, seed } => {
                assert_eq!(metrics.get("stopped_early"), Some(&1.0));
                assert_eq!((metrics.len(), seed), (2, None));
            }
            other => panic!("not final: {other:?}"),
        }
        // On stderr a record is just a log line.
        assert!(matches!(
            interpret(OutputStream::Stderr, record.into()),
            Line::Event(Event::Log { .. })
        ));
        let long = vec![b'x'; MAX_LINE_BYTES * 2 + 5];
        assert_eq!(splitter.push(&long).len(), 2);
    }

    #[test]
    fn the_records_of_a_job_of_several_seeds_name_their_seed() {
        let epoch = r#"{"event":"epoch","epoch":1,"seed":7,"val_accuracy":0.5,"seconds":1}"#;
        assert!(matches!(
            interpret(OutputStream::Stdout, epoch.into()),
            Line::Event(Event::Epoch { seed: Some(7), metrics, .. }) if !metrics.contains_key("seed")
        ));
        let last = r#"{"event":"final","seed":7,"val_accuracy":0.9}"#;
        assert!(matches!(
            interpret(OutputStream::Stdout, last.into()),
            Line::Final { seed: Some(7), metrics } if metrics.len() == 1
        ));
        let failed = r#"{"event":"seed_failed","seed":3,"error":"the loss became NaN"}"#;
        assert_eq!(
            interpret(OutputStream::Stdout, failed.into()),
            Line::SeedFailed {
                seed: 3,
                error: "the loss became NaN".into()
            }
        );
        // A seed that is not a whole number ≥ 0 is no seed; a failure without one is a log line.
        for bad in ["-1", "1.5", "1e30"] {
            let line = format!(r#"{{"event":"final","seed":{bad},"val_accuracy":0.9}}"#);
            assert!(matches!(
                interpret(OutputStream::Stdout, line),
                Line::Final { seed: None, .. }
            ));
        }
        assert!(matches!(
            interpret(OutputStream::Stdout, r#"{"event":"seed_failed"}"#.into()),
            Line::Event(Event::Log { .. })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// Any bytes a job prints, in any chunks, split into lines no longer than the cap, each
        /// read as a record or a log line without a panic.
        #[test]
        fn any_output_is_split_and_read_without_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096),
            chunk in 1usize..97,
        ) {
            let mut splitter = LineSplitter::default();
            let mut lines = Vec::new();
            for piece in bytes.chunks(chunk) {
                lines.extend(splitter.push(piece));
            }
            lines.extend(splitter.finish());
            for line in lines {
                // Invalid UTF-8 becomes U+FFFD (3 bytes per byte at most).
                proptest::prop_assert!(line.len() <= 3 * MAX_LINE_BYTES);
                let _ = interpret(OutputStream::Stdout, line);
            }
        }

        /// Records with any Unicode keys and values.
        #[test]
        fn any_unicode_record_is_read(key in "\\PC{0,12}", value in "\\PC{0,12}", n in proptest::num::f64::ANY) {
            let mut record = serde_json::Map::new();
            record.insert("event".into(), "epoch".into());
            record.insert(key.clone(), serde_json::json!(n));
            record.insert("note".into(), value.clone().into());
            let line = serde_json::Value::Object(record).to_string();
            let _ = interpret(OutputStream::Stdout, line);
            let _ = interpret(OutputStream::Stdout, format!("{{\"event\":\"final\",\"{key}\":{value}}}"));
        }
    }
}
