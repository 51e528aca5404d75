//! planner-svc: research sessions — a goal in words turned into a ResearchGoal, candidates
//! proposed by a strategy, evaluated, recorded and decided until the goal is met or the budget
//! is spent.
//!
//! Built so far (issue 7 in progress):
//! - [`goal`]: free text such as "Design a CNN for CIFAR-10 with >75% accuracy" parsed into
//!   dataset, metric, threshold, direction, seeds, budget and model family, with a clear error
//!   that lists what was understood.
//! - [`space`], [`strategy`], [`mutate`]: search spaces per input kind and the `Strategy` trait
//!   with the `random` and `evolution` strategies; every proposal validated by `ra-spec` within the budget, with its
//!   rationale.

pub mod goal;
pub mod mutate;
pub mod space;
pub mod strategy;

pub use goal::{GoalError, ParsedGoal, parse_goal};
