//! A candidate as people write it down — `{"model": ModelSpec, "train": TrainSpec}` — the
//! document `research-agent inject --spec FILE` reads and the dashboard's inject form edits.

use serde::{Deserialize, Serialize};

use crate::{ModelSpec, TrainSpec};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CandidateSpec {
    pub model: ModelSpec,
    pub train: TrainSpec,
}

impl CandidateSpec {
    /// Parses the JSON form, with serde's message (line, column, field) on failure.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_round_trips_and_refuses_unknown_fields() {
        let input = crate::InputSpec::Tabular { features: 4 };
        let spec = CandidateSpec {
            model: crate::examples::baseline(&input, 3),
            train: crate::examples::baseline_train(2),
        };
        assert_eq!(
            CandidateSpec::from_json(&spec.to_json_pretty()).ok(),
            Some(spec)
        );
        assert!(CandidateSpec::from_json(r#"{"model": {}, "train": {}, "extra": 1}"#).is_err());
    }
}
