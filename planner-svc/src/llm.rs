//! The `llm` strategy's client: an OpenAI-compatible chat-completions endpoint asked for one
//! ModelSpec + TrainSpec as a JSON object (`response_format` with the specs' JSON schema,
//! [`transport`]: streamed, retried with backoff). The prompt ([`prompt`], full or compact)
//! holds the goal, the dataset, the budget and the history; an answer that is not JSON, does
//! not parse as the specs, or fails `ra-spec` validation is sent back with the reason and
//! asked for again, up to `max_retries` times. Every exchange (messages, raw answer, tokens, latency, what was wrong)
//! is returned so that the session records it as a decision.

mod prompt;
mod transport;

use std::time::Instant;

use ra_spec::{ModelSpec, TrainSpec};
use serde::{Deserialize, Serialize};

pub use prompt::{PastCandidate, model_summary, train_summary};
use transport::Transport;

use crate::config::LlmConfig;
use crate::strategy::{self, Context, Proposal};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_owned(),
            content: content.into(),
        }
    }
}

/// One request and its answer.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// 1-based try within the proposal.
    pub attempt: u32,
    pub messages: Vec<Message>,
    /// The answer's content as received (or the HTTP error body).
    pub raw_response: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms: u64,
    /// Milliseconds to the first token of a streamed answer.
    pub first_token_ms: Option<u64>,
    /// HTTP requests sent for this answer (retries after timeouts and 5xx included), and why
    /// the failed ones failed.
    pub requests: u32,
    pub failed_requests: Vec<String>,
    /// Why the answer was refused; `None` when it was accepted.
    pub problem: Option<String>,
}

/// Why the LLM gave no proposal.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmFailure {
    #[error("the LLM at {endpoint} is unreachable: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("no valid proposal in {attempts} answers; the last was refused because: {last}")]
    Invalid { attempts: u32, last: String },
}

/// The proposal (or why there is none) and every exchange that led to it.
#[derive(Debug)]
pub struct LlmOutcome {
    pub proposal: Result<Proposal, LlmFailure>,
    pub exchanges: Vec<Exchange>,
}

/// What the prompt tells the model about the session, besides the [`Context`].
#[derive(Debug, Clone, Default)]
pub struct Brief {
    pub goal_text: String,
    /// "val_accuracy ≥ 0.9 at 95 % confidence".
    pub target: String,
    pub dataset: String,
    /// Input, classes, sizes, in words.
    pub dataset_description: String,
    /// The candidates so far, in order (the prompt shows the best and the latest).
    pub history: Vec<PastCandidate>,
}

/// The JSON object the model must answer with (its schema goes to the model).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Answer {
    /// Why this candidate, given the history.
    #[serde(default)]
    rationale: String,
    model: ModelSpec,
    train: TrainSpec,
}

/// An OpenAI-compatible chat-completions client.
#[derive(Debug)]
pub struct LlmClient {
    transport: Transport,
    endpoint: String,
    max_retries: u32,
    compact: bool,
}

impl LlmClient {
    pub fn new(config: &LlmConfig) -> Result<Self, String> {
        let base = config.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "llm base_url {:?} must start with http:// or https:// (e.g. https://api.openai.com/v1)",
                config.base_url
            ));
        }
        let endpoint = format!("{base}/chat/completions");
        Ok(Self {
            transport: Transport::new(config, endpoint.clone())?,
            endpoint,
            max_retries: config.max_retries,
            compact: config.prompt == "compact",
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Asks for one proposal, with up to `max_retries` corrections.
    pub async fn propose(&self, brief: &Brief, context: &Context<'_>) -> LlmOutcome {
        let mut messages = vec![
            Message::new("system", prompt::system(context, self.compact)),
            Message::new("user", prompt::user(brief, context, self.compact)),
        ];
        let schema = prompt::answer_schema_for(context);
        let mut exchanges = Vec::new();
        let attempts = self.max_retries + 1;
        let mut last = String::new();
        for attempt in 1..=attempts {
            let started = Instant::now();
            let answer = self.transport.complete(&messages, &schema).await;
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let answered = match answer {
                Ok(answered) => answered,
                Err(unanswered) => {
                    exchanges.push(Exchange {
                        attempt,
                        messages: messages.clone(),
                        raw_response: String::new(),
                        prompt_tokens: 0,
                        completion_tokens: 0,
                        latency_ms,
                        first_token_ms: None,
                        requests: unanswered.tries,
                        failed_requests: unanswered.failed_tries,
                        problem: Some(unanswered.reason.clone()),
                    });
                    return LlmOutcome {
                        proposal: Err(LlmFailure::Unreachable {
                            endpoint: self.endpoint.clone(),
                            reason: format!(
                                "{} (after {} request(s))",
                                unanswered.reason, unanswered.tries
                            ),
                        }),
                        exchanges,
                    };
                }
            };
            let content = answered.content;
            let checked = check_answer(&content, context);
            exchanges.push(Exchange {
                attempt,
                messages: messages.clone(),
                raw_response: content.clone(),
                prompt_tokens: answered.usage.prompt_tokens,
                completion_tokens: answered.usage.completion_tokens,
                latency_ms,
                first_token_ms: answered.first_token_ms,
                requests: answered.tries,
                failed_requests: answered.failed_tries,
                problem: checked.as_ref().err().cloned(),
            });
            match checked {
                Ok(proposal) => {
                    return LlmOutcome {
                        proposal: Ok(proposal),
                        exchanges,
                    };
                }
                Err(problem) => {
                    messages.push(Message::new("assistant", content));
                    messages.push(Message::new(
                        "user",
                        format!(
                            "That answer was refused: {problem}\nAnswer again with one JSON object \
                             {{\"rationale\": …, \"model\": …, \"train\": …}} that fixes this."
                        ),
                    ));
                    last = problem;
                }
            }
        }
        LlmOutcome {
            proposal: Err(LlmFailure::Invalid { attempts, last }),
            exchanges,
        }
    }
}

/// `text` cut to `limit` characters, with an ellipsis when cut.
pub fn clip(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The answer as a proposal, or what is wrong with it (in words the model can act on).
pub fn check_answer(content: &str, context: &Context<'_>) -> Result<Proposal, String> {
    let json = strip_code_fence(content);
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|error| format!("the answer is not JSON ({error})"))?;
    let mut answer: Answer = serde_json::from_value(value).map_err(|error| {
        format!(
            "the JSON does not match {{rationale, model: ModelSpec, train: TrainSpec}}: {error}"
        )
    })?;
    // The input and the class count are the dataset's, not the model's to choose: set here
    // (and said in the rationale), so that a small model's answer is judged on its layers
    // and recipe; a last layer of the wrong width is still refused with the reason.
    let mut set = Vec::new();
    if answer.model.input != *context.input {
        answer.model.input = context.input.clone();
        set.push("model.input");
    }
    if answer.model.num_classes != context.num_classes {
        answer.model.num_classes = context.num_classes;
        set.push("model.num_classes");
    }
    if answer.train.epochs > context.max_epochs {
        return Err(format!(
            "train.epochs = {} exceeds the session's limit of {} epochs",
            answer.train.epochs, context.max_epochs
        ));
    }
    let mut seen = strategy::seen(context.history);
    strategy::admit(&answer.model, &answer.train, context, &mut seen)?;
    let mut rationale = match answer.rationale.trim() {
        "" => "LLM: (no rationale given)".to_owned(),
        text => format!("LLM: {text}"),
    };
    if !set.is_empty() {
        rationale.push_str(&format!(
            " [{} set to the dataset's by the planner]",
            set.join(" and ")
        ));
    }
    Ok(Proposal {
        model: answer.model,
        train: answer.train,
        rationale,
        strategy: "llm",
    })
}

/// Models often wrap JSON in a Markdown code fence even in JSON mode.
fn strip_code_fence(content: &str) -> &str {
    let trimmed = content.trim();
    let Some(inner) = trimmed.strip_prefix("```") else {
        return trimmed;
    };
    let inner = inner.strip_prefix("json").unwrap_or(inner);
    inner.strip_suffix("```").unwrap_or(inner).trim()
}

fn json_of<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use ra_spec::{Budget, InputSpec};

    use super::*;

    fn context<'a>(input: &'a InputSpec, budget: &'a Budget) -> Context<'a> {
        Context {
            input,
            num_classes: 3,
            family: None,
            history: &[],
            budget,
            max_epochs: 5,
            maximize: true,
            train_samples: 0,
        }
    }

    #[test]
    fn answers_are_checked_with_reasons() {
        let input = InputSpec::Tabular { features: 4 };
        let budget = Budget::default();
        let context = context(&input, &budget);
        let good = r#"```json
        {"rationale": "small MLP", "model": {"name": "m", "input": {"kind": "tabular", "features": 4},
         "num_classes": 3, "layers": [{"type": "linear", "out_features": 8},
         {"type": "activation", "function": "relu"}, {"type": "linear", "out_features": 3}]},
         "train": {"learning_rate": 0.01, "batch_size": 16, "epochs": 3}}
        ```"#;
        let proposal = check_answer(good, &context).expect("valid answer");
        assert_eq!(proposal.strategy, "llm");
        assert!(proposal.rationale.contains("small MLP"));

        let not_json = check_answer("I suggest a CNN.", &context).expect_err("not JSON");
        assert!(not_json.contains("not JSON"), "{not_json}");

        let wrong_classes = good.replace("\"out_features\": 3", "\"out_features\": 5");
        let refused = check_answer(&wrong_classes, &context).expect_err("wrong classes");
        assert!(refused.contains("layer"), "{refused}");

        let too_long = good.replace("\"epochs\": 3", "\"epochs\": 50");
        let refused = check_answer(&too_long, &context).expect_err("too many epochs");
        assert!(refused.contains("epochs"), "{refused}");

        let wrong_input = good.replace("\"features\": 4", "\"features\": 7");
        let fixed = check_answer(&wrong_input, &context).expect("the input is the dataset's");
        assert_eq!(fixed.model.input, input);
        assert!(
            fixed.rationale.contains("model.input set to the dataset's"),
            "{}",
            fixed.rationale
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// Whatever a model answers — any Unicode, fences, half-JSON — gives a proposal or a
        /// reason, never a panic.
        #[test]
        fn any_answer_gives_a_proposal_or_a_reason(
            prefix in "\\PC{0,40}",
            body in proptest::sample::select(vec![
                "", "{", "}", "{\"rationale\": \"é—☃\"}", "```json\n{}\n```", "[1, 2]",
                "{\"rationale\": 1, \"model\": null, \"train\": {}}",
                "{\"model\": {\"layers\": [{\"type\": \"linear\", \"out_features\": -1}]}}",
            ]),
            suffix in "\\PC{0,40}",
        ) {
            let input = InputSpec::Tabular { features: 4 };
            let budget = Budget::default();
            let _ = check_answer(&format!("{prefix}{body}{suffix}"), &context(&input, &budget));
        }
    }
}
