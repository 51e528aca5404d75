//! Record ids: a type prefix and a UUIDv7 (`exp_0192…`), so ids sort by creation time and a
//! misplaced id ("a trial id where a candidate id belongs") is caught at once.

use uuid::Uuid;

use crate::error::{RegistryError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Experiment,
    Candidate,
    Trial,
    Decision,
    Evaluation,
}

impl EntityKind {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Experiment => "exp_",
            Self::Candidate => "cand_",
            Self::Trial => "trial_",
            Self::Decision => "dec_",
            Self::Evaluation => "eval_",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Self::Experiment => "experiment",
            Self::Candidate => "candidate",
            Self::Trial => "trial",
            Self::Decision => "decision",
            Self::Evaluation => "evaluation",
        }
    }

    /// A fresh id of this kind.
    pub fn new_id(self) -> String {
        format!("{}{}", self.prefix(), Uuid::now_v7().simple())
    }
}

/// Checks that `value` is a well-formed id of `kind`; `field` names the request field.
pub fn parse_id(kind: EntityKind, field: &str, value: &str) -> Result<String> {
    if value.is_empty() {
        return Err(RegistryError::invalid(format!(
            "{field} is empty: give a {} id",
            kind.noun()
        )));
    }
    let well_formed = value
        .strip_prefix(kind.prefix())
        .and_then(|rest| {
            Uuid::try_parse(rest)
                .ok()
                .filter(|uuid| uuid.simple().to_string() == rest)
        })
        .is_some();
    if !well_formed {
        let shown: String = value.chars().take(80).collect();
        return Err(RegistryError::invalid(format!(
            "{field} {shown:?} is not a {} id: expected {}<32 lower-case hex digits>, e.g. {}",
            kind.noun(),
            kind.prefix(),
            kind.new_id()
        )));
    }
    Ok(value.to_owned())
}

/// An optional client-chosen id for a create, or a fresh one.
pub fn id_for_create(kind: EntityKind, requested: &str) -> Result<String> {
    if requested.is_empty() {
        Ok(kind.new_id())
    } else {
        parse_id(kind, "id", requested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_parse_and_sort_by_creation() {
        let first = EntityKind::Trial.new_id();
        let second = EntityKind::Trial.new_id();
        assert!(parse_id(EntityKind::Trial, "id", &first).is_ok());
        assert!(first < second, "{first} < {second}");
    }

    #[test]
    fn malformed_or_misplaced_ids_are_refused() {
        let trial = EntityKind::Trial.new_id();
        for bad in [
            "",
            "exp_",
            "exp_xyz",
            "EXP_0192",
            &trial,
            &trial.to_uppercase(),
        ] {
            let err = parse_id(EntityKind::Experiment, "experiment_id", bad).expect_err(bad);
            assert!(err.to_string().contains("experiment_id"), "{err}");
        }
        let hyphenated = format!("exp_{}", Uuid::now_v7().hyphenated());
        assert!(parse_id(EntityKind::Experiment, "id", &hyphenated).is_err());
    }
}
