//! One chat completion over HTTP: streamed (server-sent events, `timeout_seconds` between
//! tokens, progress logged as tokens arrive) or whole; `response_format` asks for the answer's
//! JSON schema — OpenAI's `json_schema`, else llama.cpp's `json_object` with a `schema` (a
//! grammar-constrained answer), else a plain `json_object`, each step taken once a server
//! refuses the one before; timeouts, refused connections, 429 and 5xx retried up to
//! `request_attempts` times with doubling backoff.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Message, clip};
use crate::config::LlmConfig;

/// The longest pause between tries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often a streamed answer's progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
struct Completion {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    delta: Option<Delta>,
}

#[derive(Debug, Default, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// An answer and how it came.
#[derive(Debug, Clone)]
pub struct Answered {
    pub content: String,
    pub usage: Usage,
    /// Milliseconds to the first token of a streamed answer.
    pub first_token_ms: Option<u64>,
    /// Requests sent for it (1 when the first try answered).
    pub tries: u32,
    /// Why the earlier tries failed.
    pub failed_tries: Vec<String>,
}

/// No answer after every try.
#[derive(Debug, Clone)]
pub struct Unanswered {
    pub reason: String,
    pub tries: u32,
    pub failed_tries: Vec<String>,
}

enum TryError {
    /// Worth another try (timeout, connection, 429, 5xx).
    Transient(String),
    Permanent(String),
    /// The server refused this `response_format`: the same try again with the next one.
    SchemaRefused(String),
}

#[derive(Debug)]
pub struct Transport {
    http: reqwest::Client,
    endpoint: String,
    model: String,
    api_key: Option<String>,
    temperature: f64,
    timeout: Duration,
    max_answer: Duration,
    attempts: u32,
    backoff: Duration,
    stream: bool,
    /// Whether to ask for the answer's schema at all (`json_schema`).
    structured: bool,
    /// Which `response_format` this server takes: [`OPENAI_SCHEMA`], [`LLAMA_CPP_SCHEMA`] or
    /// [`PLAIN_JSON`].
    format: AtomicU8,
}

const OPENAI_SCHEMA: u8 = 0;
const LLAMA_CPP_SCHEMA: u8 = 1;
const PLAIN_JSON: u8 = 2;

impl Transport {
    pub fn new(config: &LlmConfig, endpoint: String) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(config.timeout_seconds.clamp(1, 10)))
            .build()
            .map_err(|error| format!("HTTP client: {error}"))?;
        let api_key = std::env::var(&config.api_key_env)
            .ok()
            .filter(|key| !key.is_empty());
        Ok(Self {
            http,
            endpoint,
            model: config.model.clone(),
            api_key,
            temperature: config.temperature,
            timeout: Duration::from_secs(config.timeout_seconds.max(1)),
            max_answer: Duration::from_secs(
                config.max_answer_seconds.max(config.timeout_seconds).max(1),
            ),
            attempts: config.request_attempts.max(1),
            backoff: Duration::from_secs_f64(config.backoff_seconds.clamp(0.0, 300.0)),
            stream: config.stream,
            structured: config.json_schema,
            format: AtomicU8::new(if config.json_schema {
                OPENAI_SCHEMA
            } else {
                PLAIN_JSON
            }),
        })
    }

    /// One answer (of `schema`, where the server takes one), retrying transient failures with
    /// backoff.
    pub async fn complete(
        &self,
        messages: &[Message],
        schema: &serde_json::Value,
    ) -> Result<Answered, Unanswered> {
        let mut failed_tries = Vec::new();
        for attempt in 1..=self.attempts {
            let mut outcome = self.once(messages, schema).await;
            while let Err(TryError::SchemaRefused(reason)) = &outcome {
                let format = self.format.load(Ordering::Relaxed);
                if format >= PLAIN_JSON {
                    break;
                }
                tracing::info!(%reason, "the LLM server refused this response_format; asking in the next form");
                self.format.store(format + 1, Ordering::Relaxed);
                outcome = self.once(messages, schema).await;
            }
            match outcome {
                Ok((content, usage, first_token_ms)) => {
                    return Ok(Answered {
                        content,
                        usage,
                        first_token_ms,
                        tries: attempt,
                        failed_tries,
                    });
                }
                Err(TryError::Permanent(reason) | TryError::SchemaRefused(reason)) => {
                    failed_tries.push(reason.clone());
                    return Err(Unanswered {
                        reason,
                        tries: attempt,
                        failed_tries,
                    });
                }
                Err(TryError::Transient(reason)) => {
                    failed_tries.push(reason.clone());
                    if attempt == self.attempts {
                        return Err(Unanswered {
                            reason,
                            tries: attempt,
                            failed_tries,
                        });
                    }
                    let pause = self
                        .backoff
                        .saturating_mul(1 << (attempt - 1).min(16))
                        .min(MAX_BACKOFF);
                    tracing::warn!(%reason, attempt, ?pause, "LLM request failed; trying again");
                    tokio::time::sleep(pause).await;
                }
            }
        }
        Err(Unanswered {
            reason: "no request was sent".into(),
            tries: 0,
            failed_tries,
        })
    }

    fn body(&self, messages: &[Message], schema: &serde_json::Value) -> serde_json::Value {
        let format = self.format.load(Ordering::Relaxed);
        let response_format = match (self.structured, format) {
            (true, OPENAI_SCHEMA) => serde_json::json!({
                "type": "json_schema",
                "json_schema": {"name": "candidate", "schema": schema, "strict": false},
            }),
            (true, LLAMA_CPP_SCHEMA) => {
                serde_json::json!({"type": "json_object", "schema": schema})
            }
            _ => serde_json::json!({"type": "json_object"}),
        };
        serde_json::json!({
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "response_format": response_format,
            "stream": self.stream,
        })
    }

    async fn once(
        &self,
        messages: &[Message],
        schema: &serde_json::Value,
    ) -> Result<(String, Usage, Option<u64>), TryError> {
        let started = Instant::now();
        let body = self.body(messages, schema);
        let sent_schema = self.structured && self.format.load(Ordering::Relaxed) < PLAIN_JSON;
        let mut request = self.http.post(&self.endpoint).json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let seconds = self.timeout.as_secs();
        let response = match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => {
                return Err(TryError::Transient(format!(
                    "no answer within the timeout ({seconds} s)"
                )));
            }
            Ok(Err(error)) if error.is_connect() || error.is_timeout() => {
                return Err(TryError::Transient(format!("request failed: {error}")));
            }
            Ok(Err(error)) => return Err(TryError::Permanent(format!("request failed: {error}"))),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            let text = tokio::time::timeout(self.timeout, response.text())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let reason = format!("HTTP {status}: {}", clip(&text, 500));
            // Servers refuse a response_format they lack with 400 or 422, or (llama.cpp's)
            // with a 500 whose body names the field.
            let format_refused = sent_schema
                && (matches!(status.as_u16(), 400 | 422)
                    || (status.is_server_error() && text.contains("response_format")));
            return Err(if format_refused {
                TryError::SchemaRefused(reason)
            } else if status.as_u16() == 429 || status.is_server_error() {
                TryError::Transient(reason)
            } else {
                TryError::Permanent(reason)
            });
        }
        let event_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if event_stream {
            return self.read_stream(response, started).await;
        }
        let remaining = self.max_answer.saturating_sub(started.elapsed());
        let text = match tokio::time::timeout(self.timeout.min(remaining), response.text()).await {
            Err(_) => {
                return Err(TryError::Transient(format!(
                    "the answer did not arrive within the timeout ({seconds} s)"
                )));
            }
            Ok(Err(error)) => {
                return Err(TryError::Transient(format!(
                    "reading the answer failed: {error}"
                )));
            }
            Ok(Ok(text)) => text,
        };
        let completion: Completion = serde_json::from_str(&text).map_err(|error| {
            TryError::Permanent(format!(
                "the answer is not a chat completion ({error}): {}",
                clip(&text, 300)
            ))
        })?;
        let content = completion
            .choices
            .into_iter()
            .next()
            .and_then(|choice| choice.message)
            .map(|message| message.content)
            .ok_or_else(|| TryError::Permanent("the chat completion has no message".into()))?;
        Ok((content, completion.usage.unwrap_or_default(), None))
    }

    /// Server-sent events: `data: {chunk}` lines until `data: [DONE]`.
    async fn read_stream(
        &self,
        mut response: reqwest::Response,
        started: Instant,
    ) -> Result<(String, Usage, Option<u64>), TryError> {
        let seconds = self.timeout.as_secs();
        let mut pending = Vec::<u8>::new();
        let mut content = String::new();
        let mut usage = Usage::default();
        let mut chunks = 0u64;
        let mut first_token_ms = None;
        let mut last_report = Instant::now();
        loop {
            let remaining = self.max_answer.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                return Err(TryError::Transient(format!(
                    "the answer took longer than {} s ({} characters so far)",
                    self.max_answer.as_secs(),
                    content.len()
                )));
            }
            let bytes =
                match tokio::time::timeout(self.timeout.min(remaining), response.chunk()).await {
                    Err(_) => {
                        return Err(TryError::Transient(format!(
                            "no token for {seconds} s ({} characters so far)",
                            content.len()
                        )));
                    }
                    Ok(Err(error)) => {
                        return Err(TryError::Transient(format!("the stream broke: {error}")));
                    }
                    Ok(Ok(None)) => break,
                    Ok(Ok(Some(bytes))) => bytes,
                };
            pending.extend_from_slice(&bytes);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let Some(data) = line.trim().strip_prefix("data:") else {
                    continue;
                };
                let data = data.trim();
                if data == "[DONE]" {
                    return Ok((content, usage, first_token_ms));
                }
                let Ok(chunk) = serde_json::from_str::<Completion>(data) else {
                    continue;
                };
                if let Some(found) = chunk.usage {
                    usage = found;
                }
                for choice in chunk.choices {
                    let piece = choice
                        .delta
                        .and_then(|d| d.content)
                        .or_else(|| choice.message.map(|m| m.content));
                    if let Some(piece) = piece.filter(|p| !p.is_empty()) {
                        first_token_ms.get_or_insert_with(|| {
                            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
                        });
                        content.push_str(&piece);
                        chunks += 1;
                    }
                }
            }
            if last_report.elapsed() >= PROGRESS_EVERY {
                last_report = Instant::now();
                tracing::info!(
                    characters = content.len(),
                    tokens = chunks,
                    seconds = started.elapsed().as_secs(),
                    "the LLM is answering"
                );
            }
        }
        if usage.completion_tokens == 0 {
            usage.completion_tokens = chunks;
        }
        Ok((content, usage, first_token_ms))
    }
}
