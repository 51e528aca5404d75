//! A scripted OpenAI-compatible chat-completions server on 127.0.0.1 (real HTTP, axum) for
//! the `llm` and `hybrid` strategies' tests: it answers from a script — content, an HTTP
//! error, content after a delay, content streamed as server-sent events, or a refusal of
//! `response_format` `json_schema` — repeats the last entry when the script runs out, and keeps
//! every request body for the test to inspect.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A chat completion whose message content is this text.
    Content(String),
    /// An HTTP error with this body.
    Error(u16, String),
    /// A completion with this content after this delay.
    Slow(Duration, String),
    /// This content streamed as chat-completion chunks (server-sent events), one piece per
    /// event with this gap between them.
    Streamed(Vec<String>, Duration),
    /// HTTP 400 when the request asks for `json_schema`, else this content (as a server
    /// without structured output answers).
    NoSchema(String),
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    last: Option<Reply>,
    requests: Vec<Value>,
}

type Shared = Arc<Mutex<Script>>;

pub struct ScriptedLlm {
    /// Base URL up to `/v1`.
    pub base_url: String,
    script: Shared,
    task: JoinHandle<()>,
}

impl ScriptedLlm {
    pub async fn start(replies: Vec<Reply>) -> Self {
        let script: Shared = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            ..Script::default()
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the scripted LLM");
        let address = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url: format!("http://{address}/v1"),
            script,
            task,
        }
    }

    /// The request bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.script
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }
}

impl Drop for ScriptedLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn complete(State(script): State<Shared>, Json(body): Json<Value>) -> Response {
    let asked_schema = body["response_format"]["type"] == "json_schema";
    let reply = {
        let Ok(mut script) = script.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        script.requests.push(body);
        let next = script.replies.pop_front().or_else(|| script.last.clone());
        script.last = next.clone();
        next
    };
    let completion = |content: String| {
        Json(json!({
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "model": "scripted",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 321, "completion_tokens": 45, "total_tokens": 366}
        }))
        .into_response()
    };
    match reply {
        None => (StatusCode::SERVICE_UNAVAILABLE, "script is empty").into_response(),
        Some(Reply::Content(content)) => completion(content),
        Some(Reply::Error(code, body)) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
            .into_response(),
        Some(Reply::Slow(delay, content)) => {
            tokio::time::sleep(delay).await;
            completion(content)
        }
        Some(Reply::NoSchema(_)) if asked_schema => (
            StatusCode::BAD_REQUEST,
            "response_format json_schema is not supported",
        )
            .into_response(),
        Some(Reply::NoSchema(content)) => completion(content),
        Some(Reply::Streamed(pieces, gap)) => {
            let events = futures::stream::iter(pieces.into_iter().map(Some).chain([None])).then(
                move |piece| async move {
                    tokio::time::sleep(gap).await;
                    let line = match piece {
                        Some(piece) => format!(
                            "data: {}\n\n",
                            json!({"choices": [{"index": 0, "delta": {"content": piece}}]})
                        ),
                        None => "data: [DONE]\n\n".to_owned(),
                    };
                    Ok::<_, std::convert::Infallible>(line)
                },
            );
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(axum::body::Body::from_stream(events))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}
