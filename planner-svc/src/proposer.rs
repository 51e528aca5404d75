//! The session's choice of strategy, made into one `next proposal` call: `random` and
//! `evolution` directly; `llm` asks the model and falls back to evolution for a turn when no
//! valid answer came, or for the rest of the session after `strikes` turns in a row without
//! any answer (each turn's request already retried with backoff);
//! `hybrid` lets the LLM propose on every other turn (and whenever nothing has succeeded yet)
//! and evolution refine the best in between. Every LLM exchange and every fallback comes back
//! as a [`Note`] for the registry's decision log.

use serde_json::json;

use crate::config::LlmConfig;
use crate::llm::{Brief, LlmClient, LlmFailure};
use crate::strategy::{Context, Evolution, Proposal, RandomSearch, Strategy, StrategyError};

/// A decision to record about how a proposal came about.
#[derive(Debug, Clone)]
pub struct Note {
    pub action: &'static str,
    pub reasoning: String,
    pub inputs: serde_json::Value,
}

enum Kind {
    Builtin(Box<dyn Strategy>),
    Llm { client: LlmClient, hybrid: bool },
}

/// The strategy of one session.
pub struct Proposer {
    kind: Kind,
    /// The built-in strategy for hybrid refinement and fallback.
    evolution: Evolution,
    /// Set once the LLM was unreachable `strikes` turns in a row: the built-in strategy from
    /// then on.
    fell_back: bool,
    /// LLM turns in a row without an answer, and how many end its part.
    strikes: u32,
    max_strikes: u32,
    turn: usize,
}

impl Proposer {
    /// `strategy` is one of `config::STRATEGIES`; `seed` seeds the built-in randomness.
    pub fn new(strategy: &str, seed: u64, llm: &LlmConfig) -> Result<Self, String> {
        let kind = match strategy {
            "random" => Kind::Builtin(Box::new(RandomSearch::new(seed))),
            "evolution" => Kind::Builtin(Box::new(Evolution::new(seed))),
            "llm" | "hybrid" => Kind::Llm {
                client: LlmClient::new(llm)?,
                hybrid: strategy == "hybrid",
            },
            other => {
                return Err(format!(
                    "unknown strategy {other:?}: use random, evolution, llm or hybrid"
                ));
            }
        };
        Ok(Self {
            kind,
            evolution: Evolution::new(seed.wrapping_add(1)),
            fell_back: false,
            strikes: 0,
            max_strikes: llm.strikes.max(1),
            turn: 0,
        })
    }

    /// The next proposal and the notes to record, or why there is none.
    pub async fn next(
        &mut self,
        context: &Context<'_>,
        brief: &Brief,
    ) -> Result<(Proposal, Vec<Note>), StrategyError> {
        self.turn += 1;
        let (client, hybrid) = match &mut self.kind {
            Kind::Builtin(strategy) => {
                return one(strategy.propose(context, 1)?).map(|p| (p, Vec::new()));
            }
            Kind::Llm { client, hybrid } => (&*client, *hybrid),
        };
        let anything_succeeded = context.history.iter().any(|h| h.score.is_some());
        let llm_turn = !hybrid || !anything_succeeded || self.turn % 2 == 1;
        if self.fell_back || !llm_turn {
            let mut proposal = one(self.evolution.propose(context, 1)?)?;
            proposal.rationale = if self.fell_back {
                format!(
                    "fallback to the built-in strategy (the LLM was unreachable earlier): {}",
                    proposal.rationale
                )
            } else {
                format!("hybrid, evolution refines: {}", proposal.rationale)
            };
            return Ok((proposal, Vec::new()));
        }
        let outcome = client.propose(brief, context).await;
        let mut notes: Vec<Note> = outcome
            .exchanges
            .iter()
            .map(|exchange| Note {
                action: "llm_exchange",
                reasoning: format!(
                    "LLM try {}: {}\n\n--- prompt ---\n{}\n\n--- response ---\n{}",
                    exchange.attempt,
                    exchange
                        .problem
                        .as_deref()
                        .map_or("accepted".to_owned(), |p| format!("refused: {p}")),
                    exchange
                        .messages
                        .iter()
                        .map(|m| format!("[{}]\n{}", m.role, m.content))
                        .collect::<Vec<_>>()
                        .join("\n\n"),
                    exchange.raw_response
                ),
                inputs: json!({
                    "endpoint": client.endpoint(),
                    "attempt": exchange.attempt,
                    "prompt_tokens": exchange.prompt_tokens,
                    "completion_tokens": exchange.completion_tokens,
                    "latency_ms": exchange.latency_ms,
                    "first_token_ms": exchange.first_token_ms,
                    "requests": exchange.requests,
                    "failed_requests": exchange.failed_requests,
                    "accepted": exchange.problem.is_none(),
                    "answered": !exchange.raw_response.is_empty(),
                    "problem": exchange.problem,
                }),
            })
            .collect();
        let unreachable = matches!(outcome.proposal, Err(LlmFailure::Unreachable { .. }));
        self.strikes = if unreachable { self.strikes + 1 } else { 0 };
        match outcome.proposal {
            Ok(proposal) => Ok((proposal, notes)),
            Err(failure) => {
                let for_good = self.strikes >= self.max_strikes;
                if for_good {
                    self.fell_back = true;
                }
                let mut proposal = one(self.evolution.propose(context, 1)?)?;
                proposal.rationale = format!(
                    "fallback to the built-in strategy ({}): {}",
                    if for_good {
                        "for the rest of the session"
                    } else {
                        "for this turn"
                    },
                    proposal.rationale
                );
                notes.push(Note {
                    action: "fallback",
                    reasoning: format!(
                        "{failure}; the built-in evolution strategy proposes {}",
                        if for_good {
                            format!(
                                "from now on ({} turns in a row without an answer)",
                                self.strikes
                            )
                        } else if unreachable {
                            format!(
                                "this candidate (strike {} of {}: the LLM is asked again next turn)",
                                self.strikes, self.max_strikes
                            )
                        } else {
                            "this candidate".to_owned()
                        }
                    ),
                    inputs: json!({
                        "endpoint": client.endpoint(),
                        "unreachable": unreachable,
                        "strikes": self.strikes,
                        "max_strikes": self.max_strikes,
                        "for_good": for_good,
                        "error": failure.to_string(),
                    }),
                });
                Ok((proposal, notes))
            }
        }
    }
}

fn one(mut proposals: Vec<Proposal>) -> Result<Proposal, StrategyError> {
    proposals.pop().ok_or(StrategyError::Exhausted {
        tries: 0,
        last: "the strategy returned nothing".into(),
    })
}
