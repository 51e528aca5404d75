//! Reading a job's output: bytes split into lines per stream (overlong lines cut into pieces),
//! and stdout lines that are metrics-protocol records (`{"event":"epoch",…}`,
//! `{"event":"final",…}`) told apart from log lines.

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
    Final(BTreeMap<String, f64>),
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
                return Line::Event(Event::Epoch {
                    epoch,
                    metrics,
                    seconds,
                });
            }
            Some("final") => return Line::Final(numbers(&object)),
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
            }) => {
                assert_eq!((epoch, seconds), (2, 1.5));
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
            Line::Final(metrics) => {
                assert_eq!(metrics.get("stopped_early"), Some(&1.0));
                assert_eq!(metrics.len(), 2);
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
