//! Record ids as registry-svc checks them: the kinds, prefixes and minting are ra-client's
//! ([`ra_client::ids`]); a malformed or misplaced id is refused here with the field's name.

pub use ra_client::ids::EntityKind;
use ra_client::ids::is_well_formed;

use crate::error::{RegistryError, Result};

/// Checks that `value` is a well-formed id of `kind`; `field` names the request field.
pub fn parse_id(kind: EntityKind, field: &str, value: &str) -> Result<String> {
    if value.is_empty() {
        return Err(RegistryError::invalid(format!(
            "{field} is empty: give a {} id",
            kind.noun()
        )));
    }
    if !is_well_formed(kind, value) {
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
    use uuid::Uuid;

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

/// Ids arrive from every client: arbitrary Unicode gets an answer, never a panic, and only the
/// exact form `<prefix><32 lower-case hex>` is accepted.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    const KINDS: [EntityKind; 5] = EntityKind::ALL;

    proptest::proptest! {
        #[test]
        fn any_text_is_answered(value in "\\PC*|.*|(exp_|cand_|trial_)[0-9a-fA-F\u{660}-\u{669}-]{0,40}") {
            for kind in KINDS {
                match parse_id(kind, "the_id", &value) {
                    Ok(id) => {
                        let hex = id.strip_prefix(kind.prefix());
                        prop_assert!(hex.is_some_and(|hex| hex.len() == 32
                            && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))));
                    }
                    Err(error) => {
                        let message = error.to_string();
                        prop_assert!(message.contains("the_id"), "{message}");
                        prop_assert!(message.chars().count() < 300, "{message}");
                    }
                }
            }
        }

        #[test]
        fn well_formed_ids_of_the_kind_only(bits in any::<u128>(), kind in 0..5usize, other in 0..5usize) {
            let (kind, other) = (KINDS[kind], KINDS[other]);
            let id = format!("{}{}", kind.prefix(), Uuid::from_u128(bits).simple());
            prop_assert_eq!(parse_id(kind, "id", &id).ok(), Some(id.clone()));
            prop_assert_eq!(parse_id(other, "id", &id).is_ok(), kind == other);
            prop_assert!(parse_id(kind, "id", &id.to_uppercase()).is_err());
            let spaced = format!(" {}", id);
            prop_assert!(parse_id(kind, "id", &spaced).is_err());
        }
    }
}
