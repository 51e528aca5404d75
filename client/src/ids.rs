//! Record ids: a type prefix and a UUIDv7 in lower-case hex (`exp_0192…`), so ids sort by
//! creation time and a misplaced id ("a trial id where a candidate id belongs") is caught at
//! once. registry-svc checks them with [`is_well_formed`]; every service mints them here, so a
//! create retried after a lost answer carries the same id and finds its own record.

use uuid::Uuid;

/// What an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    Experiment,
    Candidate,
    Trial,
    Decision,
    Evaluation,
}

impl EntityKind {
    pub const ALL: [Self; 5] = [
        Self::Experiment,
        Self::Candidate,
        Self::Trial,
        Self::Decision,
        Self::Evaluation,
    ];

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

/// Whether `value` is exactly `<prefix of kind><32 lower-case hex digits>`.
pub fn is_well_formed(kind: EntityKind, value: &str) -> bool {
    value.strip_prefix(kind.prefix()).is_some_and(|rest| {
        rest.len() == 32
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_are_well_formed_and_sort_by_creation() {
        for kind in EntityKind::ALL {
            let first = kind.new_id();
            let second = kind.new_id();
            assert!(is_well_formed(kind, &first), "{first}");
            assert!(first < second);
        }
        assert!(!is_well_formed(
            EntityKind::Trial,
            &EntityKind::Experiment.new_id()
        ));
        assert!(!is_well_formed(
            EntityKind::Trial,
            &EntityKind::Trial.new_id().to_uppercase()
        ));
    }
}
