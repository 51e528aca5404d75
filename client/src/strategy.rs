//! The proposal strategies by name, as configurations, flags and reports spell them, and as
//! the contract's `planner.v1.Strategy` enumerates them: one mapping for every program.

use ra_proto::planner::v1::Strategy;

/// Every strategy's name, in the contract's order.
pub const NAMES: [&str; 4] = ["random", "evolution", "llm", "hybrid"];

/// The name of a strategy; `None` for `STRATEGY_UNSPECIFIED` (the planner's default applies).
pub fn name(strategy: Strategy) -> Option<&'static str> {
    match strategy {
        Strategy::Unspecified => None,
        Strategy::Random => Some(NAMES[0]),
        Strategy::Evolution => Some(NAMES[1]),
        Strategy::Llm => Some(NAMES[2]),
        Strategy::Hybrid => Some(NAMES[3]),
    }
}

/// The strategy called `name`.
pub fn from_name(name: &str) -> Option<Strategy> {
    [
        Strategy::Random,
        Strategy::Evolution,
        Strategy::Llm,
        Strategy::Hybrid,
    ]
    .into_iter()
    .find(|strategy| self::name(*strategy) == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_the_enum_map_both_ways() {
        for name in NAMES {
            let strategy = from_name(name).expect(name);
            assert_eq!(self::name(strategy), Some(name));
        }
        assert_eq!(name(Strategy::Unspecified), None);
        assert_eq!(from_name("Random"), None);
        assert_eq!(from_name(""), None);
    }
}
