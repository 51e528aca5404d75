//! The HTTP routes: pages, the live event stream of a session (server-sent events), artifact
//! downloads and actions; plus who may look (bearer tokens or a sign-in cookie, checked by
//! ra-serve's [`Gate`] when `server.auth.tokens_file` is set) and a same-origin rule for
//! every action.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures::{Stream, StreamExt};
use maud::Markup;
use ra_client::ids::EntityKind;
use ra_proto::planner::v1 as planner;
use ra_proto::registry::v1 as reg;
use ra_serve::auth::Gate;
use serde::Deserialize;

use crate::error::{DashboardError, Result};
use crate::pages::{actions, compare, session, sessions};
use crate::source::{Services, plausible_id, unknown_session};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub services: Arc<Services>,
    pub gate: Option<Gate>,
    /// Ends the live streams, so that a shutdown does not wait for open pages.
    pub shutdown: ra_serve::Shutdown,
}

/// The cookie the sign-in page sets (the token itself, HttpOnly, same-site strict).
const TOKEN_COOKIE: &str = "ra_token";

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(list))
        .route("/compare", get(compare_sessions))
        .route("/sessions/{id}", get(show))
        .route("/sessions/{id}/events", get(events))
        .route("/sessions/{id}/compare", get(compare_candidates))
        .route("/sessions/{id}/pause", post(pause))
        .route("/sessions/{id}/resume", post(resume))
        .route("/sessions/{id}/inject", post(inject))
        .route("/sessions/{id}/budget", post(budget))
        .route("/artifacts/{sha256}", get(artifact))
        .route("/healthz", get(|| async { "ok" }))
        .route("/login", get(login_form).post(login))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

async fn not_found(request: Request) -> DashboardError {
    DashboardError::NotFound(format!(
        "no page at {}",
        request.uri().path().chars().take(200).collect::<String>()
    ))
}

fn query<T>(query: std::result::Result<Query<T>, QueryRejection>) -> Result<T> {
    query
        .map(|Query(q)| q)
        .map_err(|rejection| DashboardError::BadRequest(rejection.body_text()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PageQuery {
    /// Only `<main>` (the live refresh).
    fragment: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    q: std::result::Result<Query<sessions::ListQuery>, QueryRejection>,
) -> Result<Markup> {
    let q = query(q)?;
    let all = state.services.sessions().await?;
    let total = all.len();
    let selected = sessions::select(all, &q)?;
    Ok(sessions::render(&selected, &q, total))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: std::result::Result<Query<PageQuery>, QueryRejection>,
) -> Result<Markup> {
    let fragment = query(q)?.fragment.is_some();
    let services = &state.services;
    // The records first: an unknown session is a 404 before anything else is asked.
    services.with_session(&id, |_| ()).await?;
    let assessment = services.assessment(&id).await;
    let interactive = services.interactive();
    services
        .with_session(&id, |view| {
            session::SessionPage {
                view,
                assessment: &assessment,
                interactive,
            }
            .render(fragment)
        })
        .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EventsQuery {
    /// Events after this position (the page's `data-position`).
    after: u64,
}

/// The session's records as they land: `record` events (id = position, data = the kind of
/// record), then `end` once the session reaches a final status.
async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: std::result::Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    let after = query(q)?.after;
    let stream = state.services.watch(&id, after).await?;
    let shutdown = state.shutdown.clone();
    let events = stream
        .take_until(async move { shutdown.requested().await })
        .map(|item| match item {
            Ok(event) => {
                let (kind, ended) = match &event.record {
                    Some(reg::experiment_event::Record::Experiment(e)) => {
                        ("experiment", session::terminal(e.status()))
                    }
                    Some(reg::experiment_event::Record::Candidate(_)) => ("candidate", false),
                    Some(reg::experiment_event::Record::Trial(_)) => ("trial", false),
                    Some(reg::experiment_event::Record::Metrics(_)) => ("metrics", false),
                    Some(reg::experiment_event::Record::Decision(_)) => ("decision", false),
                    Some(reg::experiment_event::Record::Evaluation(_)) => ("evaluation", false),
                    Some(reg::experiment_event::Record::Artifact(_)) => ("artifact", false),
                    None => ("unknown", false),
                };
                let record = Event::default()
                    .event("record")
                    .id(event.position.to_string())
                    .data(kind);
                if ended {
                    vec![record, Event::default().event("end").data("ended")]
                } else {
                    vec![record]
                }
            }
            Err(status) => vec![
                Event::default()
                    .event("error")
                    .data(status.message().replace(['\n', '\r'], " ")),
            ],
        })
        .flat_map(|events| futures::stream::iter(events.into_iter().map(Ok)));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

async fn compare_candidates(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: std::result::Result<Query<compare::CompareQuery>, QueryRejection>,
) -> Result<Markup> {
    let q = query(q)?;
    for (name, candidate) in [("a", &q.a), ("b", &q.b)] {
        if !plausible_id(candidate, EntityKind::Candidate) {
            return Err(DashboardError::BadRequest(format!(
                "{name} must be a candidate id of this session (cand_…), not {:?}",
                candidate.chars().take(80).collect::<String>()
            )));
        }
    }
    let sides = state
        .services
        .with_session(&id, |view| {
            let side = |candidate: &str| -> Result<compare::Side> {
                let number = view
                    .candidates
                    .iter()
                    .position(|c| c.id == candidate)
                    .ok_or_else(|| {
                        DashboardError::NotFound(format!(
                            "candidate {candidate} is not in session {id}"
                        ))
                    })?;
                let evaluation = view.latest_evaluation(candidate).cloned().ok_or_else(|| {
                    DashboardError::BadRequest(format!(
                        "candidate #{} has not been evaluated yet",
                        number + 1
                    ))
                })?;
                Ok(compare::Side {
                    label: format!(
                        "#{} ({})",
                        number + 1,
                        crate::pages::layout::short_id(candidate)
                    ),
                    link: format!("/sessions/{id}#{candidate}"),
                    evaluation,
                })
            };
            let confidence = view.experiment.goal.as_ref().map_or(0.0, |g| g.confidence);
            Ok::<_, DashboardError>((side(&q.a)?, side(&q.b)?, confidence))
        })
        .await??;
    let (a, b, confidence) = sides;
    let comparison = state
        .services
        .compare(&a.evaluation.id, &b.evaluation.id, confidence)
        .await?;
    Ok(compare::result(
        &format!("Candidate {} against {}", a.label, b.label),
        &a,
        &b,
        &comparison,
    ))
}

async fn compare_sessions(
    State(state): State<AppState>,
    q: std::result::Result<Query<compare::CompareQuery>, QueryRejection>,
) -> Result<Markup> {
    let q = query(q)?;
    let all = state.services.sessions().await?;
    if q.a.is_empty() && q.b.is_empty() {
        return Ok(compare::sessions_form(&all));
    }
    let side = |id: &str| -> Result<compare::Side> {
        let summary = all
            .iter()
            .find(|s| s.experiment.id == id)
            .ok_or_else(|| unknown_session(id))?;
        let evaluation = summary.best.clone().ok_or_else(|| {
            DashboardError::BadRequest(format!("session {id} has no evaluated candidate yet"))
        })?;
        Ok(compare::Side {
            label: crate::view::goal_text(&summary.experiment).to_owned(),
            link: format!("/sessions/{id}#{}", evaluation.candidate_id),
            evaluation,
        })
    };
    let (a, b) = (side(&q.a)?, side(&q.b)?);
    let confidence = all
        .iter()
        .find(|s| s.experiment.id == q.a)
        .and_then(|s| s.experiment.goal.as_ref())
        .map_or(0.0, |g| g.confidence);
    let comparison = state
        .services
        .compare(&a.evaluation.id, &b.evaluation.id, confidence)
        .await?;
    Ok(compare::result(
        "Best candidates of two sessions",
        &a,
        &b,
        &comparison,
    ))
}

/// An artifact's bytes, streamed from the registry as a download.
async fn artifact(State(state): State<AppState>, Path(sha256): Path<String>) -> Result<Response> {
    let (record, stream) = state.services.artifact(&sha256).await?;
    let content_type = HeaderValue::from_str(&record.content_type)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let name: String = record
        .name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(128)
        .collect();
    let name = if name.is_empty() {
        sha256.clone()
    } else {
        name
    };
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    let body = Body::from_stream(stream.map(|chunk| chunk.map(|c| c.data)));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PauseForm {
    reason: String,
}

fn planner_for_actions(services: &Services) -> Result<&ra_client::Peer<ra_client::PlannerClient>> {
    if services.read_only {
        return Err(DashboardError::Forbidden(
            "this dashboard is read-only (research-agent dashboard): act through the planner's dashboard or the CLI".into(),
        ));
    }
    services.planner.as_ref().ok_or_else(|| {
        DashboardError::Unavailable(
            "actions need planner-svc, and none is configured (dashboard.planner_url)".into(),
        )
    })
}

async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: std::result::Result<Form<PauseForm>, FormRejection>,
) -> Result<Markup> {
    let planner = planner_for_actions(&state.services)?;
    let Form(form) = form.map_err(|r| DashboardError::BadRequest(r.body_text()))?;
    if !plausible_id(&id, EntityKind::Experiment) {
        return Err(unknown_session(&id));
    }
    let reason = if form.reason.trim().is_empty() {
        "paused from the dashboard".to_owned()
    } else {
        form.reason.chars().take(1000).collect()
    };
    let request = planner::StopResearchRequest {
        research_id: id.clone(),
        reason,
    };
    let status = planner
        .call(|mut client| {
            let request = request.clone();
            async move { client.stop_research(request).await }
        })
        .await
        .map_err(|s| DashboardError::from_status("planner-svc", &s))?;
    Ok(actions::done(
        &id,
        &format!("Session {}", research_state(status.state())),
    ))
}

async fn resume(State(state): State<AppState>, Path(id): Path<String>) -> Result<Markup> {
    let planner = planner_for_actions(&state.services)?;
    if !plausible_id(&id, EntityKind::Experiment) {
        return Err(unknown_session(&id));
    }
    let request = planner::ResumeResearchRequest {
        research_id: id.clone(),
    };
    let status = planner
        .call(|mut client| {
            let request = request.clone();
            async move { client.resume_research(request).await }
        })
        .await
        .map_err(|s| DashboardError::from_status("planner-svc", &s))?;
    Ok(actions::done(
        &id,
        &format!("Session {}", research_state(status.state())),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InjectForm {
    spec: String,
    rationale: String,
    by: String,
}

async fn inject(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: std::result::Result<Form<InjectForm>, FormRejection>,
) -> Result<Markup> {
    let planner = planner_for_actions(&state.services)?;
    let Form(form) = form.map_err(|r| DashboardError::BadRequest(r.body_text()))?;
    if !plausible_id(&id, EntityKind::Experiment) {
        return Err(unknown_session(&id));
    }
    let document = ra_spec::CandidateSpec::from_json(&form.spec).map_err(|error| {
        DashboardError::BadRequest(format!(
            "the candidate is not a {{\"model\": ModelSpec, \"train\": TrainSpec}} document: {error}"
        ))
    })?;
    let request = planner::InjectCandidateRequest {
        research_id: id.clone(),
        model: Some((&document.model).into()),
        train: Some((&document.train).into()),
        rationale: form.rationale,
        proposed_by: if form.by.trim().is_empty() {
            "a dashboard user".into()
        } else {
            form.by
        },
    };
    let response = planner
        .call(|mut client| {
            let request = request.clone();
            async move { client.inject_candidate(request).await }
        })
        .await
        .map_err(|s| DashboardError::from_status("planner-svc", &s))?;
    Ok(actions::done(
        &id,
        &format!(
            "Candidate queued (position {} in the session's queue): it is evaluated next",
            response.queue_position
        ),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BudgetForm {
    max_candidates: String,
    max_total_seeds: String,
    max_minutes: String,
    by: String,
}

/// An optional whole number from a form field ("" → 0: unchanged).
fn form_number(field: &str, value: &str) -> Result<u64> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(0);
    }
    value.parse::<u64>().map_err(|_| {
        DashboardError::BadRequest(format!(
            "{field} = {:?} is not a whole number",
            value.chars().take(40).collect::<String>()
        ))
    })
}

async fn budget(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: std::result::Result<Form<BudgetForm>, FormRejection>,
) -> Result<Markup> {
    let planner = planner_for_actions(&state.services)?;
    let Form(form) = form.map_err(|r| DashboardError::BadRequest(r.body_text()))?;
    if !plausible_id(&id, EntityKind::Experiment) {
        return Err(unknown_session(&id));
    }
    let small = |field: &str, value: u64| {
        u32::try_from(value)
            .map_err(|_| DashboardError::BadRequest(format!("{field} = {value} is too large")))
    };
    let request = planner::UpdateBudgetRequest {
        research_id: id.clone(),
        budget: Some(ra_proto::common::v1::Budget {
            max_candidates: small(
                "max_candidates",
                form_number("max_candidates", &form.max_candidates)?,
            )?,
            max_total_seeds: small(
                "max_total_seeds",
                form_number("max_total_seeds", &form.max_total_seeds)?,
            )?,
            max_wall_seconds: form_number("max_minutes", &form.max_minutes)?.saturating_mul(60),
        }),
        requested_by: if form.by.trim().is_empty() {
            "a dashboard user".into()
        } else {
            form.by
        },
    };
    planner
        .call(|mut client| {
            let request = request.clone();
            async move { client.update_budget(request).await }
        })
        .await
        .map_err(|s| DashboardError::from_status("planner-svc", &s))?;
    Ok(actions::done(
        &id,
        "Budget change sent: the session applies it before its next candidate",
    ))
}

fn research_state(state: planner::ResearchState) -> String {
    state
        .as_str_name()
        .trim_start_matches("RESEARCH_STATE_")
        .to_lowercase()
}

// ---------------------------------------------------------------------------------------------
// Who may look, and where actions may come from.
// ---------------------------------------------------------------------------------------------

/// The token a request carries: `authorization: Bearer …`, or the sign-in cookie.
fn with_cookie_token(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    if headers.contains_key(header::AUTHORIZATION) {
        return headers;
    }
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == TOKEN_COOKIE)
        .map(|(_, value)| value.to_owned());
    if let Some(value) = token.and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok()) {
        headers.insert(header::AUTHORIZATION, value);
    }
    headers
}

/// An action (any POST but the sign-in) must come from a page of this dashboard: a browser
/// sends `Origin` with every cross-site POST, and it must name the host the request is for.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Not a browser form from another site (browsers always send Origin on POST).
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let is_post = request.method() == Method::POST;
    if is_post && path != "/login" && !same_origin(request.headers()) {
        return DashboardError::Forbidden(
            "actions are only taken from this dashboard's own pages (the request came from another site)".into(),
        )
        .into_response();
    }
    let Some(gate) = &state.gate else {
        return next.run(request).await;
    };
    if path == "/login" || path == "/healthz" {
        return next.run(request).await;
    }
    // The gate's allow table names "View" (pages) and "Act" (actions).
    let method = if is_post {
        "/ra.dashboard/Act"
    } else {
        "/ra.dashboard/View"
    };
    // A browser (no authorization header of its own) is sent to the sign-in page; a script
    // with a wrong bearer token gets 401.
    let browser = !request.headers().contains_key(header::AUTHORIZATION);
    let headers = with_cookie_token(request.headers());
    match gate.check(method, &headers, request.extensions()) {
        Ok(_) => next.run(request).await,
        Err(status) if status.code() == tonic::Code::Unauthenticated && !is_post && browser => {
            Redirect::to("/login").into_response()
        }
        Err(status) => DashboardError::from_status("dashboard", &status).into_response(),
    }
}

async fn login_form() -> Markup {
    crate::pages::layout::login_page(None)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LoginForm {
    token: String,
}

async fn login(
    State(state): State<AppState>,
    form: std::result::Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return crate::pages::layout::login_page(Some("the form could not be read"))
            .into_response();
    };
    let token = form.token.trim();
    let Some(gate) = &state.gate else {
        return Redirect::to("/").into_response();
    };
    let mut headers = HeaderMap::new();
    let accepted = HeaderValue::from_str(&format!("Bearer {token}"))
        .ok()
        .map(|value| {
            headers.insert(header::AUTHORIZATION, value);
            gate.check(
                "/ra.dashboard/View",
                &headers,
                &axum::http::Extensions::new(),
            )
            .is_ok()
        })
        .unwrap_or(false);
    if !accepted || token.contains(';') {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            crate::pages::layout::login_page(Some("that token is not one this dashboard knows")),
        )
            .into_response();
    }
    let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    match HeaderValue::from_str(&cookie) {
        Ok(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response(),
        Err(_) => crate::pages::layout::login_page(Some("that token cannot be kept in a cookie"))
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_site_posts_are_told_apart() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:50056"));
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:50056"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers));
    }

    #[test]
    fn the_sign_in_cookie_becomes_a_bearer_token() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("other=1; ra_token=abcdefghijklmnop"),
        );
        let with = with_cookie_token(&headers);
        assert_eq!(
            with.get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
            Some("Bearer abcdefghijklmnop")
        );
    }
}
