//! Comparisons: two candidates of a session, or the best candidates of two sessions, by
//! Welch's t-test and Hedges' g (evaluator-svc's Compare on their latest evaluations), each
//! side shown with its mean and confidence interval.

use maud::{Markup, html};
use ra_proto::evaluator::v1 as ev;
use ra_proto::registry::v1 as reg;
use serde::Deserialize;

use super::layout::{self, number, p_value, short_id};
use crate::source::SessionSummary;

/// `?a=…&b=…`: two candidate ids (session compare) or two session ids.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CompareQuery {
    pub a: String,
    pub b: String,
}

/// One side of a comparison: what it is, where it links, and its evaluation.
#[derive(Debug)]
pub struct Side {
    pub label: String,
    pub link: String,
    pub evaluation: reg::Evaluation,
}

fn side(name: &str, side: &Side) -> Markup {
    let a = side.evaluation.aggregate.clone().unwrap_or_default();
    html! {
        tr.side data-side=(name) data-evaluation=(side.evaluation.id) data-mean=(a.mean) data-n=(a.n) {
            td { (name) } td { a href=(side.link) { (side.label) } }
            td.num { (a.n) } td.num { (number(a.mean)) } td.num { (number(a.std_dev)) }
            td.num { "[" (number(a.ci_low)) ", " (number(a.ci_high)) "]" }
        }
    }
}

/// The result of a comparison of `a` and `b`.
pub fn result(title: &str, a: &Side, b: &Side, comparison: &ev::Comparison) -> Markup {
    let better = match comparison.better.as_str() {
        "a" => format!("{} is better", a.label),
        "b" => format!("{} is better", b.label),
        _ => "no significant difference".to_owned(),
    };
    layout::page(
        title,
        None,
        html! {
            h1 { (title) }
            table #sides {
                thead { tr { th { "" } th { "" } th.num { "n" } th.num { "mean " (comparison.metric) } th.num { "std dev" } th.num { "CI" } } }
                tbody { (side("a", a)) (side("b", b)) }
            }
            h2 { "Welch's t-test" }
            table #comparison data-p=(comparison.p_value) data-hedges-g=(comparison.hedges_g)
                data-better=(comparison.better) data-mean-difference=(comparison.mean_difference) {
                tbody {
                    tr { th { "mean difference (a − b)" } td.num { (number(comparison.mean_difference)) } }
                    tr { th { "CI of the difference" } td.num { "[" (number(comparison.ci_low)) ", " (number(comparison.ci_high)) "]" } }
                    tr { th { "t" } td.num { (number(comparison.t_statistic)) } }
                    tr { th { "degrees of freedom (Welch–Satterthwaite)" } td.num { (number(comparison.degrees_of_freedom)) } }
                    tr { th { "p (two-sided)" } td.num { (p_value(comparison.p_value)) } }
                    tr { th { "effect size (Hedges' g)" } td.num { (number(comparison.hedges_g)) } }
                    tr { th { "verdict" } td #verdict { b { (better) } } }
                }
            }
            p.verdict { (comparison.explanation) }
        },
    )
}

/// The form that picks two sessions (their best candidates are compared).
pub fn sessions_form(sessions: &[SessionSummary]) -> Markup {
    let evaluated: Vec<&SessionSummary> = sessions.iter().filter(|s| s.best.is_some()).collect();
    let label = |s: &SessionSummary| {
        format!(
            "{} ({})",
            crate::view::goal_text(&s.experiment),
            short_id(&s.experiment.id)
        )
    };
    layout::page(
        "Compare sessions",
        None,
        html! {
            h1 { "Compare two sessions" }
            p.muted { "Each session is represented by its best candidate's latest evaluation; two candidates of one session are compared from the session's page." }
            @if evaluated.len() < 2 {
                p.empty { "Comparisons need two sessions with an evaluated candidate." }
            } @else {
                form.filters #compare-sessions method="get" action="/compare" {
                    select name="a" { @for (i, s) in evaluated.iter().enumerate() { option value=(s.experiment.id) selected[i == 0] { (label(s)) } } }
                    span { "with" }
                    select name="b" { @for (i, s) in evaluated.iter().enumerate() { option value=(s.experiment.id) selected[i == 1] { (label(s)) } } }
                    button type="submit" { "Welch test" }
                }
            }
        },
    )
}
