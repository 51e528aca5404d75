//! Field rules shared by every request: lengths, character sets, JSON objects, finite numbers.
//! Each refusal names the field, the value (shortened) and what is allowed.

use std::collections::HashMap;

use prost_types::Timestamp;

use crate::error::{RegistryError, Result};
use crate::schema;

pub const MAX_NAME_CHARS: usize = 256;
pub const MAX_SUMMARY_BYTES: usize = 64 * 1024;
pub const MAX_RATIONALE_BYTES: usize = 64 * 1024;
pub const MAX_REASONING_BYTES: usize = 256 * 1024;
pub const MAX_JSON_BYTES: usize = 1024 * 1024;
pub const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_KEY_CHARS: usize = 63;
pub const MAX_LABEL_VALUE_CHARS: usize = 256;
pub const MAX_METRIC_NAME_CHARS: usize = 128;
pub const MAX_WORD_CHARS: usize = 64;
pub const MAX_TRIAL_IDS: usize = 10_000;

/// A required single-line name.
pub fn name(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(RegistryError::invalid(format!(
            "{field} is empty: give a short name"
        )));
    }
    bounded_line(field, value, MAX_NAME_CHARS)
}

/// An optional single-line text of at most `max_chars` characters, no control characters.
pub fn bounded_line(field: &str, value: &str, max_chars: usize) -> Result<()> {
    let count = value.chars().count();
    if count > max_chars {
        return Err(RegistryError::invalid(format!(
            "{field} has {count} characters; at most {max_chars} are allowed"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(RegistryError::invalid(format!(
            "{field} {:?} contains control characters; use a single line of text",
            shorten(value)
        )));
    }
    Ok(())
}

/// Free text (newlines allowed) of at most `max_bytes` bytes.
pub fn text(field: &str, value: &str, max_bytes: usize) -> Result<()> {
    if value.len() > max_bytes {
        return Err(RegistryError::ResourceExhausted(format!(
            "{field} is {} bytes; at most {max_bytes} are allowed",
            value.len()
        )));
    }
    if value.contains('\0') {
        return Err(RegistryError::invalid(format!(
            "{field} contains a NUL character"
        )));
    }
    Ok(())
}

/// Empty, or a JSON object of at most [`MAX_JSON_BYTES`].
pub fn json_object(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Ok(());
    }
    text(field, value, MAX_JSON_BYTES)?;
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(RegistryError::invalid(format!(
            "{field} must be a JSON object ({{\"key\": …}}), not another JSON value"
        ))),
        Err(error) => Err(RegistryError::invalid(format!(
            "{field} is not valid JSON: {error}"
        ))),
    }
}

/// A lower-case identifier word: `[a-z0-9_-]`, 1 to 64 characters ("add_seeds").
pub fn word(field: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= MAX_WORD_CHARS
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RegistryError::invalid(format!(
            "{field} {:?} must be 1-{MAX_WORD_CHARS} characters of a-z, 0-9, '_' or '-'",
            shorten(value)
        )))
    }
}

/// A metric name: 1-128 characters of `[A-Za-z0-9_.-/]`.
pub fn metric_name(field: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= MAX_METRIC_NAME_CHARS
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::invalid(format!(
            "{field} {:?} must be 1-{MAX_METRIC_NAME_CHARS} characters of A-Z, a-z, 0-9, '_', '.', '-' or '/'",
            shorten(value)
        )))
    }
}

pub fn finite(field: &str, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(RegistryError::invalid(format!(
            "{field} is {value}; only finite numbers are stored"
        )))
    }
}

/// Labels: at most 64, keys `[a-z0-9_.-/]` up to 63 characters, single-line values.
pub fn labels(field: &str, labels: &HashMap<String, String>) -> Result<()> {
    if labels.len() > MAX_LABELS {
        return Err(RegistryError::invalid(format!(
            "{field} has {} entries; at most {MAX_LABELS} are allowed",
            labels.len()
        )));
    }
    for (key, value) in labels {
        let key_ok = !key.is_empty()
            && key.len() <= MAX_LABEL_KEY_CHARS
            && key.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'.' | b'-' | b'/')
            });
        if !key_ok {
            return Err(RegistryError::invalid(format!(
                "{field} key {:?} must be 1-{MAX_LABEL_KEY_CHARS} characters of a-z, 0-9, '_', '.', '-' or '/'",
                shorten(key)
            )));
        }
        bounded_line(&format!("{field}[{key:?}]"), value, MAX_LABEL_VALUE_CHARS)?;
    }
    Ok(())
}

/// Refuses any NaN or infinity anywhere inside a message of type `full_name`.
pub fn all_finite(field: &str, full_name: &str, message: &impl prost::Message) -> Result<()> {
    match schema::first_non_finite(full_name, message) {
        None => Ok(()),
        Some(path) => Err(RegistryError::invalid(format!(
            "{field}.{path} is not a finite number; NaN and infinity are not stored"
        ))),
    }
}

/// A record must fit the store's per-record bound.
pub fn record_size(field: &str, message: &impl prost::Message) -> Result<()> {
    let size = message.encoded_len();
    if size > MAX_RECORD_BYTES {
        return Err(RegistryError::ResourceExhausted(format!(
            "{field} encodes to {size} bytes; one record may hold at most {MAX_RECORD_BYTES}"
        )));
    }
    Ok(())
}

pub fn timestamp(field: &str, value: &Timestamp) -> Result<()> {
    if !(0..1_000_000_000).contains(&value.nanos) || !(0..=253_402_300_799).contains(&value.seconds)
    {
        return Err(RegistryError::invalid(format!(
            "{field} ({}s, {}ns) is not a valid time between 1970 and 9999",
            value.seconds, value.nanos
        )));
    }
    Ok(())
}

pub fn shorten(value: &str) -> String {
    const SHOWN: usize = 60;
    if value.chars().count() <= SHOWN {
        value.to_owned()
    } else {
        format!("{}…", value.chars().take(SHOWN).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_refuse_what_they_should() {
        assert!(name("name", "resnet sweep").is_ok());
        assert!(name("name", "  ").is_err());
        assert!(name("name", &"x".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(name("name", "two\nlines").is_err());
        assert!(json_object("config_json", "").is_ok());
        assert!(json_object("config_json", "{\"a\":1}").is_ok());
        assert!(json_object("config_json", "[1]").is_err());
        assert!(json_object("config_json", "{oops").is_err());
        assert!(word("action", "add_seeds").is_ok());
        assert!(word("action", "Add Seeds").is_err());
        assert!(metric_name("name", "val/accuracy-top.1").is_ok());
        assert!(metric_name("name", "val accuracy").is_err());
        assert!(finite("value", f64::NAN).is_err());
        assert!(finite("value", f64::NEG_INFINITY).is_err());
        let mut ok = HashMap::new();
        ok.insert("team".to_owned(), "vision".to_owned());
        assert!(labels("labels", &ok).is_ok());
        ok.insert("Bad Key".to_owned(), "x".to_owned());
        assert!(labels("labels", &ok).is_err());
        assert!(
            timestamp(
                "t",
                &Timestamp {
                    seconds: 1,
                    nanos: 2_000_000_000
                }
            )
            .is_err()
        );
    }
}

/// Every rule over arbitrary Unicode: an answer, never a panic, and a refusal that names the
/// field and shows at most a shortened value.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn message(result: Result<()>) -> Option<String> {
        result.err().map(|error| error.to_string())
    }

    proptest::proptest! {
        #[test]
        fn text_rules_answer_any_unicode(value in "\\PC*|.*", control in any::<char>()) {
            let with_control = format!("{value}{control}");
            for value in [value.as_str(), with_control.as_str()] {
                for refusal in [
                    message(name("the_field", value)),
                    message(bounded_line("the_field", value, 16)),
                    message(text("the_field", value, 64)),
                    message(json_object("the_field", value)),
                    message(word("the_field", value)),
                    message(metric_name("the_field", value)),
                ]
                .into_iter()
                .flatten()
                {
                    prop_assert!(refusal.contains("the_field"), "{refusal}");
                    prop_assert!(refusal.chars().count() < 400, "{refusal}");
                }
                let shown = shorten(value);
                prop_assert!(shown.chars().count() <= 61);
                prop_assert!(value.starts_with(shown.trim_end_matches('…')));
            }
        }

        #[test]
        fn labels_answer_any_unicode(
            entries in proptest::collection::hash_map("\\PC{0,70}", "\\PC{0,300}", 0..70)
        ) {
            if let Err(error) = labels("labels", &entries) {
                prop_assert!(error.to_string().contains("labels"), "{error}");
            }
        }
    }
}
