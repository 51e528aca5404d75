//! The sessions list: each session's goal, status, best mean ± CI, candidates and elapsed
//! time, filtered by status and text and sorted by any column — in the query string, so a
//! filtered list is a link.

use maud::{Markup, html};
use ra_proto::registry::v1 as reg;
use serde::Deserialize;

use super::layout::{self, number, seconds, status_badge, status_name};
use crate::error::{DashboardError, Result};
use crate::source::SessionSummary;
use crate::view::{elapsed_seconds, goal_text};

/// `?status=running&q=cifar&sort=best`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    /// A status name ("running", "succeeded", …) or empty for all.
    pub status: String,
    /// Words that the goal, name or dataset contain (case-insensitive).
    pub q: String,
    /// "newest" (default), "oldest", "best", "candidates", "elapsed", "goal".
    pub sort: String,
}

const SORTS: [&str; 6] = ["newest", "oldest", "best", "candidates", "elapsed", "goal"];

impl ListQuery {
    fn status(&self) -> Result<Option<reg::ExperimentStatus>> {
        if self.status.is_empty() || self.status == "all" {
            return Ok(None);
        }
        let name = format!("EXPERIMENT_STATUS_{}", self.status.to_uppercase());
        reg::ExperimentStatus::from_str_name(&name)
            .filter(|s| *s != reg::ExperimentStatus::Unspecified)
            .map(Some)
            .ok_or_else(|| {
                DashboardError::BadRequest(format!(
                    "status {:?} is not a session status: use running, paused, succeeded, exhausted, failed or cancelled",
                    self.status
                ))
            })
    }

    fn sort(&self) -> Result<&str> {
        match self.sort.as_str() {
            "" => Ok("newest"),
            sort if SORTS.contains(&sort) => Ok(sort),
            other => Err(DashboardError::BadRequest(format!(
                "sort {other:?} is not one of {}",
                SORTS.join(", ")
            ))),
        }
    }
}

fn elapsed(summary: &SessionSummary) -> f64 {
    elapsed_seconds(&summary.experiment).unwrap_or(f64::NAN)
}

/// The sessions that pass the filter, in the asked order.
pub fn select(mut sessions: Vec<SessionSummary>, query: &ListQuery) -> Result<Vec<SessionSummary>> {
    let status = query.status()?;
    let sort = query.sort()?;
    let words: Vec<String> = query.q.split_whitespace().map(str::to_lowercase).collect();
    sessions.retain(|s| {
        let e = &s.experiment;
        let haystack = format!(
            "{} {} {} {}",
            goal_text(e),
            e.name,
            e.goal.as_ref().map_or("", |g| g.dataset.as_str()),
            e.id
        )
        .to_lowercase();
        status.is_none_or(|st| e.status() == st) && words.iter().all(|w| haystack.contains(w))
    });
    let best = |s: &SessionSummary| {
        s.best
            .as_ref()
            .and_then(|e| e.aggregate.as_ref())
            .map_or(f64::NEG_INFINITY, |a| a.mean)
    };
    match sort {
        "oldest" => sessions.sort_by(|a, b| a.experiment.id.cmp(&b.experiment.id)),
        "best" => sessions.sort_by(|a, b| best(b).total_cmp(&best(a))),
        "candidates" => sessions.sort_by_key(|s| std::cmp::Reverse(s.candidates)),
        "elapsed" => sessions.sort_by(|a, b| {
            let (x, y) = (elapsed(a), elapsed(b));
            y.total_cmp(&x)
        }),
        "goal" => sessions.sort_by(|a, b| {
            goal_text(&a.experiment)
                .to_lowercase()
                .cmp(&goal_text(&b.experiment).to_lowercase())
        }),
        _ => sessions.sort_by(|a, b| b.experiment.id.cmp(&a.experiment.id)),
    }
    Ok(sessions)
}

pub fn render(sessions: &[SessionSummary], query: &ListQuery, total: usize) -> Markup {
    let statuses = [
        "running",
        "paused",
        "succeeded",
        "exhausted",
        "failed",
        "cancelled",
    ];
    layout::page(
        "Sessions",
        None,
        html! {
            h1 { "Research sessions" }
            form.filters method="get" action="/" {
                input type="search" name="q" value=(query.q) placeholder="goal, dataset or id";
                select name="status" {
                    option value="" { "any status" }
                    @for s in statuses {
                        option value=(s) selected[query.status == s] { (s) }
                    }
                }
                select name="sort" {
                    @for s in SORTS {
                        option value=(s) selected[query.sort == s || (query.sort.is_empty() && s == "newest")] { "sort: " (s) }
                    }
                }
                button type="submit" { "Apply" }
                span.muted #session-count { (sessions.len()) " of " (total) " sessions" }
            }
            @if sessions.is_empty() {
                p.empty { "No session matches. Start one with " code { "research-agent run --goal \"…\"" } "." }
            } @else {
                table #sessions {
                    thead { tr {
                        th { "goal" } th { "status" } th { "dataset" } th { "target" }
                        th.num { "best mean" } th.num { "CI" } th.num { "candidates" } th.num { "elapsed" } th { "started" }
                    } }
                    tbody {
                        @for s in sessions { (row(s)) }
                    }
                }
            }
        },
    )
}

fn row(s: &SessionSummary) -> Markup {
    let e = &s.experiment;
    let goal = e.goal.clone().unwrap_or_default();
    let target = goal.target.clone().unwrap_or_default();
    let best = s.best.as_ref().and_then(|b| b.aggregate.clone());
    html! {
        tr.session data-id=(e.id) data-status=(status_name(e.status())) {
            td { a href={"/sessions/" (e.id)} { (goal_text(e)) } }
            td { (status_badge(e.status())) }
            td { code { (goal.dataset) } }
            td { (layout::target_text(&target)) }
            @match &best {
                Some(a) => {
                    td.num.best-mean data-mean=(a.mean) { (number(a.mean)) }
                    td.num { "[" (number(a.ci_low)) ", " (number(a.ci_high)) "]" }
                }
                None => { td.num { "–" } td.num { "–" } }
            }
            td.num { (s.candidates) }
            td.num { (seconds(elapsed(s))) }
            td.muted { (layout::time(e.created_at.as_ref())) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ra_proto::common::v1 as common;

    fn summary(
        id: &str,
        text: &str,
        status: reg::ExperimentStatus,
        mean: Option<f64>,
    ) -> SessionSummary {
        SessionSummary {
            experiment: reg::Experiment {
                id: id.into(),
                status: status as i32,
                goal: Some(common::ResearchGoal {
                    text: text.into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            candidates: 1,
            best: mean.map(|mean| reg::Evaluation {
                aggregate: Some(common::Aggregate {
                    n: 3,
                    mean,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn filters_and_sorts() {
        let all = vec![
            summary(
                "exp_1",
                "MNIST cnn",
                reg::ExperimentStatus::Succeeded,
                Some(0.9),
            ),
            summary(
                "exp_2",
                "digits mlp",
                reg::ExperimentStatus::Running,
                Some(0.95),
            ),
            summary("exp_3", "mnist mlp", reg::ExperimentStatus::Exhausted, None),
        ];
        let ids = |list: Vec<SessionSummary>| -> Vec<String> {
            list.into_iter().map(|s| s.experiment.id).collect()
        };
        let query = |status: &str, q: &str, sort: &str| ListQuery {
            status: status.into(),
            q: q.into(),
            sort: sort.into(),
        };
        assert_eq!(
            ids(select(all.clone(), &query("", "", "")).expect("selected")),
            ["exp_3", "exp_2", "exp_1"]
        );
        assert_eq!(
            ids(select(all.clone(), &query("", "mnist", "oldest")).expect("selected")),
            ["exp_1", "exp_3"]
        );
        assert_eq!(
            ids(select(all.clone(), &query("running", "", "")).expect("selected")),
            ["exp_2"]
        );
        assert_eq!(
            ids(select(all.clone(), &query("", "", "best")).expect("selected")),
            ["exp_2", "exp_1", "exp_3"]
        );
        assert!(matches!(
            select(all.clone(), &query("done", "", "")),
            Err(DashboardError::BadRequest(_))
        ));
        assert!(matches!(
            select(all, &query("", "", "size")),
            Err(DashboardError::BadRequest(_))
        ));
    }
}
