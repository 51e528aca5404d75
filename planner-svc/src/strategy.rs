//! Proposal strategies behind one trait: each proposal is a ModelSpec + TrainSpec that passes
//! `ra-spec` validation within the session's budget, with its rationale in words.
//!
//! Built so far: `random` (the search spaces of [`crate::space`]) and `evolution` (regularised
//! evolution: a tournament among the most recent evaluated candidates, the winner mutated by
//! [`crate::mutate`]). `llm` and `hybrid` are to implement the same trait (issue 7, still to do).

use ra_spec::{Budget, InputSpec, ModelSpec, TrainSpec};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::space;

/// An evaluated (or failed) candidate of the session.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub model: ModelSpec,
    pub train: TrainSpec,
    /// Mean of the target metric over the seeds; `None` if it failed.
    pub score: Option<f64>,
    pub failure: Option<String>,
    /// Its validation curves were still improving at the last epoch: train it longer.
    pub improving: bool,
}

/// What a strategy proposes for.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub input: &'a InputSpec,
    pub num_classes: u32,
    /// "cnn", "resnet", "mlp" or "text" when the goal names one.
    pub family: Option<&'a str>,
    pub history: &'a [HistoryEntry],
    pub budget: &'a Budget,
    pub max_epochs: u32,
    /// Whether larger scores are better (accuracy) or smaller (loss).
    pub maximize: bool,
    /// Samples of the train split; 0 when unknown. Batch sizes are fitted to it.
    pub train_samples: u64,
}

impl Context<'_> {
    /// Whether score `a` is better than `b`.
    pub fn better(&self, a: f64, b: f64) -> bool {
        if self.maximize { a > b } else { a < b }
    }
}

/// One proposed candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub model: ModelSpec,
    pub train: TrainSpec,
    pub rationale: String,
    pub strategy: &'static str,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategyError {
    #[error("model family {family:?} does not fit {input} input; use one of: {}", fitting.join(", "))]
    FamilyMismatch {
        family: String,
        input: &'static str,
        fitting: Vec<&'static str>,
    },
    #[error("no valid new proposal after {tries} tries; last refusal: {last}")]
    Exhausted { tries: usize, last: String },
}

/// A way of proposing candidates.
pub trait Strategy: Send {
    fn name(&self) -> &'static str;
    /// `count` new proposals (none equal to an earlier candidate).
    fn propose(
        &mut self,
        context: &Context<'_>,
        count: usize,
    ) -> Result<Vec<Proposal>, StrategyError>;
}

/// Tries per proposal before giving up (the spaces are small; duplicates get likelier late).
const TRIES_PER_PROPOSAL: usize = 200;

pub fn input_kind(input: &InputSpec) -> &'static str {
    match input {
        InputSpec::Image { .. } => "image",
        InputSpec::Tabular { .. } => "tabular",
        InputSpec::Text { .. } => "text",
    }
}

/// The families to sample from: the goal's, if it fits the input, else all that fit.
pub fn families(context: &Context<'_>) -> Result<Vec<&'static str>, StrategyError> {
    let fitting = space::families_for(context.input);
    match context.family {
        None | Some("") => Ok(fitting.to_vec()),
        Some(family) => fitting
            .iter()
            .find(|f| **f == family)
            .map(|f| vec![*f])
            .ok_or_else(|| StrategyError::FamilyMismatch {
                family: family.to_owned(),
                input: input_kind(context.input),
                fitting: fitting.to_vec(),
            }),
    }
}

/// Whether `model` + `train` repeats a candidate already tried or proposed (names aside).
fn repeats(model: &ModelSpec, train: &TrainSpec, seen: &[(ModelSpec, TrainSpec)]) -> bool {
    seen.iter()
        .any(|(m, t)| m.layers == model.layers && m.input == model.input && t == train)
}

/// The candidates of `history`, for [`admit`]'s repeat check.
pub fn seen(history: &[HistoryEntry]) -> Vec<(ModelSpec, TrainSpec)> {
    history
        .iter()
        .map(|h| (h.model.clone(), h.train.clone()))
        .collect()
}

/// Accepts a candidate that validates within the budget and repeats nothing in `seen` (to
/// which it is then added); otherwise the reason.
pub fn admit(
    model: &ModelSpec,
    train: &TrainSpec,
    context: &Context<'_>,
    seen: &mut Vec<(ModelSpec, TrainSpec)>,
) -> Result<(), String> {
    ra_spec::validate_model(model, context.budget).map_err(|error| error.to_string())?;
    train.validate().map_err(|error| error.to_string())?;
    if repeats(model, train, seen) {
        return Err("a repeat of an earlier candidate".into());
    }
    seen.push((model.clone(), train.clone()));
    Ok(())
}

/// Draws candidates until `count` of them are admitted (see [`admit`]) or the tries run out.
/// `draw` gets the candidates seen so far and how many were accepted, and returns a proposal
/// or why it has none.
fn draw_until(
    context: &Context<'_>,
    count: usize,
    mut draw: impl FnMut(&[(ModelSpec, TrainSpec)], usize) -> Result<Proposal, String>,
) -> Result<Vec<Proposal>, StrategyError> {
    let mut seen = seen(context.history);
    let mut proposals = Vec::with_capacity(count);
    let mut last = String::from("none");
    let mut tries = 0;
    while proposals.len() < count {
        if tries >= TRIES_PER_PROPOSAL * count {
            return Err(StrategyError::Exhausted { tries, last });
        }
        tries += 1;
        let admitted = draw(&seen, proposals.len()).and_then(|proposal| {
            admit(&proposal.model, &proposal.train, context, &mut seen).map(|()| proposal)
        });
        match admitted {
            Ok(proposal) => proposals.push(proposal),
            Err(refusal) => last = refusal,
        }
    }
    Ok(proposals)
}

/// Uniform samples from the search spaces.
#[derive(Debug)]
pub struct RandomSearch {
    rng: StdRng,
}

impl RandomSearch {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl Strategy for RandomSearch {
    fn name(&self) -> &'static str {
        "random"
    }

    fn propose(
        &mut self,
        context: &Context<'_>,
        count: usize,
    ) -> Result<Vec<Proposal>, StrategyError> {
        let families = families(context)?;
        let name = self.name();
        draw_until(context, count, |_, _| {
            let family = families.choose(&mut self.rng).copied().unwrap_or("mlp");
            let model =
                space::sample_model(&mut self.rng, family, context.input, context.num_classes);
            let mut train = space::sample_train(&mut self.rng, context.max_epochs);
            let fitted = space::fit_batch(train.value.batch_size, context.train_samples);
            if fitted != train.value.batch_size {
                train.description = format!(
                    "{} (batch {fitted} for {} training samples)",
                    train.description, context.train_samples
                );
                train.value.batch_size = fitted;
            }
            let rationale = format!(
                "random search over the {family} space for {} input: {}; {}. Exploration: \
                 {} candidate(s) evaluated so far{}.",
                input_kind(context.input),
                model.description,
                train.description,
                context.history.len(),
                best_so_far(context)
            );
            Ok(Proposal {
                model: model.value,
                train: train.value,
                rationale,
                strategy: name,
            })
        })
    }
}

fn best_so_far(context: &Context<'_>) -> String {
    context
        .history
        .iter()
        .filter_map(|h| h.score)
        .fold(None, |best: Option<f64>, s| {
            Some(best.map_or(s, |b| if context.better(s, b) { s } else { b }))
        })
        .map(|best| format!(", best mean so far {best:.4}"))
        .unwrap_or_default()
}

/// The baseline of the input kind (`ra_spec::examples::baseline`, Adam at 1e-3, the most
/// epochs allowed) when the goal's family allows it: a known-good point to evolve from.
fn baseline(context: &Context<'_>) -> Option<Proposal> {
    let family = match context.input {
        InputSpec::Image { .. } => "cnn",
        InputSpec::Tabular { .. } => "mlp",
        InputSpec::Text { .. } => "text",
    };
    if !families(context).ok()?.contains(&family) {
        return None;
    }
    let model = ra_spec::examples::baseline(context.input, context.num_classes);
    let mut train = ra_spec::examples::baseline_train(context.max_epochs);
    train.batch_size = space::fit_batch(train.batch_size, context.train_samples);
    admit(&model, &train, context, &mut seen(context.history)).ok()?;
    Some(Proposal {
        rationale: format!(
            "evolution starts from the {family} baseline for {} input ({}, Adam at 1e-3, batch \
             {}{}, {} epochs): a known-good point that later candidates mutate or beat",
            input_kind(context.input),
            model.name,
            train.batch_size,
            if context.train_samples > 0 {
                format!(
                    " for {} training samples, {} steps per epoch",
                    context.train_samples,
                    context.train_samples.div_ceil(u64::from(train.batch_size))
                )
            } else {
                String::new()
            },
            train.epochs
        ),
        model,
        train,
        strategy: "evolution",
    })
}

/// Regularised evolution (Real et al. 2019): a tournament among the `population` most recent
/// evaluated candidates; the best of it is mutated once. Until `tournament` candidates have
/// been evaluated it proposes random samples, and says so.
#[derive(Debug)]
pub struct Evolution {
    rng: StdRng,
    warm_up: RandomSearch,
    pub tournament: usize,
    pub population: usize,
}

impl Evolution {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            warm_up: RandomSearch::new(seed ^ 0x5eed),
            tournament: 3,
            population: 10,
        }
    }
}

impl Strategy for Evolution {
    fn name(&self) -> &'static str {
        "evolution"
    }

    fn propose(
        &mut self,
        context: &Context<'_>,
        count: usize,
    ) -> Result<Vec<Proposal>, StrategyError> {
        families(context)?;
        let evaluated: Vec<(usize, &HistoryEntry)> = context
            .history
            .iter()
            .enumerate()
            .filter(|(_, h)| h.score.is_some_and(f64::is_finite))
            .collect();
        let mut proposals = Vec::with_capacity(count);
        if context.history.is_empty()
            && let Some(baseline) = baseline(context)
        {
            proposals.push(baseline);
        }
        if evaluated.len() < self.tournament {
            let more = self.warm_up.propose(context, count - proposals.len())?;
            let mut proposals: Vec<Proposal> = proposals.into_iter().chain(more).collect();
            for proposal in proposals.iter_mut().filter(|p| p.strategy != "evolution") {
                proposal.strategy = self.name();
                proposal.rationale = format!(
                    "evolution, warming up ({} of {} candidates needed for a tournament evaluated): {}",
                    evaluated.len(),
                    self.tournament,
                    proposal.rationale
                );
            }
            return Ok(proposals);
        }
        let recent = &evaluated[evaluated.len().saturating_sub(self.population)..];
        let name = self.name();
        draw_until(context, count, |seen, accepted| {
            let entrants: Vec<&(usize, &HistoryEntry)> = recent
                .choose_multiple(&mut self.rng, self.tournament)
                .collect();
            let &&(index, parent) = entrants
                .iter()
                .reduce(|best, entry| match (entry.1.score, best.1.score) {
                    (Some(a), Some(b)) if context.better(a, b) => entry,
                    _ => best,
                })
                .ok_or("an empty tournament")?;
            // One mutation, or a chain of up to three when the first ones only lead back to
            // candidates already tried (a single parent's neighbourhood is small).
            let mut child: Option<crate::mutate::Mutation> = None;
            for _ in 0..3 {
                let (model, train) = child
                    .as_ref()
                    .map_or((&parent.model, &parent.train), |c| (&c.model, &c.train));
                let lengthened = (child.is_none() && parent.improving && self.rng.random_bool(0.7))
                    .then(|| crate::mutate::lengthen(model, train, context.max_epochs))
                    .flatten();
                let Some(next) = lengthened.or_else(|| {
                    crate::mutate::mutate(
                        model,
                        train,
                        context.max_epochs,
                        context.train_samples,
                        &mut self.rng,
                    )
                }) else {
                    continue;
                };
                let change = match &child {
                    Some(previous) => format!("{}, then {}", previous.change, next.change),
                    None => next.change.clone(),
                };
                let fresh = !repeats(&next.model, &next.train, seen);
                child = Some(crate::mutate::Mutation { change, ..next });
                if fresh {
                    break;
                }
            }
            let child = child.ok_or("no mutation applies")?;
            let rationale = format!(
                "evolution: {} of candidate #{} (mean {:.4}, the best of a tournament of {} among \
                 the last {} evaluated){}.",
                child.change,
                index + 1,
                parent.score.unwrap_or(f64::NAN),
                entrants.len(),
                recent.len(),
                best_so_far(context)
            );
            let mut model = child.model;
            // "mlp-03f0-m4" → "mlp-03f0": one mutation suffix, the latest.
            let stem = match parent.model.name.rsplit_once("-m") {
                Some((stem, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => stem,
                _ => parent.model.name.as_str(),
            };
            model.name = format!("{stem}-m{}", context.history.len() + accepted + 1);
            Ok(Proposal {
                model,
                train: child.train,
                rationale,
                strategy: name,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context<'a>(
        input: &'a InputSpec,
        budget: &'a Budget,
        history: &'a [HistoryEntry],
    ) -> Context<'a> {
        Context {
            input,
            num_classes: 10,
            family: None,
            history,
            budget,
            max_epochs: 8,
            maximize: true,
            train_samples: 0,
        }
    }

    #[test]
    fn random_proposals_are_valid_for_every_input_kind() {
        let budget = Budget::default();
        let inputs = [
            InputSpec::Image {
                channels: 3,
                height: 32,
                width: 32,
            },
            InputSpec::Image {
                channels: 1,
                height: 8,
                width: 8,
            },
            InputSpec::Tabular { features: 64 },
            InputSpec::Text {
                vocab_size: 5000,
                sequence_length: 64,
            },
        ];
        for input in &inputs {
            let mut strategy = RandomSearch::new(7);
            let proposals = strategy
                .propose(&context(input, &budget, &[]), 20)
                .unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(proposals.len(), 20);
            // Every shape of the space passes validation: each variant shows up.
            let names: Vec<&str> = proposals
                .iter()
                .flat_map(|p| p.model.layers.iter().map(ra_spec::Layer::kind))
                .collect();
            let expected: &[&str] = match input {
                InputSpec::Image { .. } => &["residual", "conv2d", "pool2d"],
                InputSpec::Text { .. } => &["conv1d", "embedding"],
                InputSpec::Tabular { .. } => &["linear"],
            };
            for kind in expected {
                assert!(names.contains(kind), "{input:?}: no {kind} among {names:?}");
            }
            for proposal in &proposals {
                ra_spec::validate_model(&proposal.model, &budget).expect("valid model");
                proposal.train.validate().expect("valid recipe");
                assert!(proposal.train.epochs <= 8 && proposal.train.epochs >= 4);
                assert!(
                    proposal.rationale.starts_with("random search"),
                    "{}",
                    proposal.rationale
                );
            }
        }
    }

    #[test]
    fn the_same_seed_proposes_the_same_and_history_is_not_repeated() {
        let budget = Budget::default();
        let input = InputSpec::Tabular { features: 16 };
        let first = RandomSearch::new(3)
            .propose(&context(&input, &budget, &[]), 5)
            .expect("ok");
        let again = RandomSearch::new(3)
            .propose(&context(&input, &budget, &[]), 5)
            .expect("ok");
        assert_eq!(first, again);
        let history: Vec<HistoryEntry> = first
            .iter()
            .map(|p| HistoryEntry {
                model: p.model.clone(),
                train: p.train.clone(),
                score: Some(0.5),
                failure: None,
                improving: false,
            })
            .collect();
        let next = RandomSearch::new(3)
            .propose(&context(&input, &budget, &history), 5)
            .expect("ok");
        for proposal in &next {
            assert!(!repeats(
                &proposal.model,
                &proposal.train,
                &history
                    .iter()
                    .map(|h| (h.model.clone(), h.train.clone()))
                    .collect::<Vec<_>>()
            ));
            assert!(proposal.rationale.contains("best mean so far 0.5000"));
        }
    }

    #[test]
    fn a_family_that_does_not_fit_is_refused() {
        let budget = Budget::default();
        let input = InputSpec::Tabular { features: 16 };
        let mut with_family = context(&input, &budget, &[]);
        with_family.family = Some("cnn");
        let error = RandomSearch::new(1)
            .propose(&with_family, 1)
            .expect_err("cnn on tabular");
        assert!(
            error.to_string().contains("does not fit tabular input"),
            "{error}"
        );
        let tight = Budget {
            max_parameters: 10,
            ..Budget::default()
        };
        let error = RandomSearch::new(1)
            .propose(&context(&input, &tight, &[]), 1)
            .expect_err("no room");
        assert!(matches!(error, StrategyError::Exhausted { .. }), "{error}");
    }
}

#[cfg(test)]
mod evolution_tests {
    use super::*;

    fn history_of(proposals: &[Proposal], scores: &[f64]) -> Vec<HistoryEntry> {
        proposals
            .iter()
            .zip(scores)
            .map(|(p, score)| HistoryEntry {
                model: p.model.clone(),
                train: p.train.clone(),
                score: Some(*score),
                failure: None,
                improving: false,
            })
            .collect()
    }

    #[test]
    fn evolution_warms_up_then_mutates_tournament_winners() {
        let budget = Budget::default();
        for input in [
            InputSpec::Tabular { features: 20 },
            InputSpec::Image {
                channels: 3,
                height: 32,
                width: 32,
            },
            InputSpec::Text {
                vocab_size: 1000,
                sequence_length: 32,
            },
        ] {
            let mut evolution = Evolution::new(11);
            let mut context = Context {
                input: &input,
                num_classes: 4,
                family: None,
                history: &[],
                budget: &budget,
                max_epochs: 6,
                maximize: true,
                train_samples: 0,
            };
            let first = evolution.propose(&context, 3).expect("warm-up");
            // The input kind's baseline first, then random samples until a tournament fits.
            assert_eq!(
                first[0].model,
                ra_spec::examples::baseline(&input, 4),
                "{}",
                first[0].rationale
            );
            assert!(first[0].rationale.contains("baseline"));
            assert!(
                first[1..]
                    .iter()
                    .all(|p| p.rationale.starts_with("evolution, warming up"))
            );
            let history = history_of(&first, &[0.5, 0.9, 0.7]);
            context.history = &history;
            let children = evolution.propose(&context, 10).expect("children");
            assert_eq!(children.len(), 10);
            for child in &children {
                assert!(
                    child.rationale.starts_with("evolution: "),
                    "{}",
                    child.rationale
                );
                // With all three in every tournament, the winner is always candidate #2.
                assert!(
                    child.rationale.contains("candidate #2 (mean 0.9000"),
                    "{}",
                    child.rationale
                );
                ra_spec::validate_model(&child.model, &budget).expect("valid child");
                assert_ne!(
                    (&child.model.layers, &child.train),
                    (&first[1].model.layers, &first[1].train)
                );
            }
            // Minimising: the lowest score wins.
            context.maximize = false;
            let children = evolution.propose(&context, 3).expect("children");
            assert!(
                children
                    .iter()
                    .all(|c| c.rationale.contains("candidate #1 (mean 0.5000"))
            );
        }
    }
}
