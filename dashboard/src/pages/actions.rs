//! The forms that act on a session through planner-svc — inject a candidate, change the
//! budget, pause, resume — and the page that reports what an action did. The dashboard never
//! writes records itself: the planner records every action as a decision.

use maud::{Markup, html};
use ra_proto::registry::v1 as reg;

use super::layout;

/// The action forms of a session that is not finished.
pub fn panel(view: &crate::view::SessionView) -> Markup {
    let e = &view.experiment;
    let base = format!("/sessions/{}", e.id);
    html! {
        h2 { "Act on this session" }
        div.actions #actions {
            @match e.status() {
                reg::ExperimentStatus::Running => {
                    form #inject-form method="post" action={(base) "/inject"} {
                        h3 { "Inject a candidate" }
                        p.muted { "Evaluated next, validated like any proposal, recorded as yours. JSON: {\"model\": …, \"train\": …} — prefilled with the best candidate so far." }
                        textarea name="spec" rows="12" cols="70" spellcheck="false" { (starting_spec(view)) }
                        br;
                        input type="text" name="rationale" placeholder="why (recorded)" maxlength="4000" size="40";
                        " " input type="text" name="by" placeholder="your name" maxlength="256" size="14";
                        " " button type="submit" { "Inject" }
                    }
                    form #budget-form method="post" action={(base) "/budget"} {
                        h3 { "Budget" }
                        @let budget = view.budget();
                        label { "candidates " input type="number" name="max_candidates" min="1" max="10000" value=(budget.max_candidates); } br;
                        label { "seeds " input type="number" name="max_total_seeds" min="1" value=(budget.max_total_seeds); } br;
                        label { "minutes " input type="number" name="max_minutes" min="1" value=(budget.max_wall_seconds.div_ceil(60)); } br;
                        input type="text" name="by" placeholder="your name" maxlength="256" size="14";
                        " " button type="submit" { "Change budget" }
                    }
                    form #pause-form method="post" action={(base) "/pause"} {
                        h3 { "Pause" }
                        input type="text" name="reason" placeholder="why (recorded)" maxlength="1000";
                        " " button type="submit" { "Pause" }
                        p.muted { "Running trials are cancelled; the session can be resumed." }
                    }
                }
                reg::ExperimentStatus::Paused => {
                    form #resume-form method="post" action={(base) "/resume"} {
                        button type="submit" { "Resume" }
                        p.muted { "Continues from the registry without repeating finished trials." }
                    }
                }
                _ => {}
            }
        }
    }
}

/// The best candidate's spec (or the latest one's) as an injectable JSON document.
fn starting_spec(view: &crate::view::SessionView) -> String {
    let candidate = view
        .best()
        .map(|(c, _)| c)
        .or_else(|| view.candidates.last());
    let Some(candidate) = candidate else {
        return String::new();
    };
    let model = candidate
        .model
        .as_ref()
        .and_then(|m| ra_spec::ModelSpec::try_from(m).ok());
    let train = candidate
        .train
        .as_ref()
        .and_then(|t| ra_spec::TrainSpec::try_from(t).ok());
    match (model, train) {
        (Some(model), Some(train)) => ra_spec::CandidateSpec { model, train }.to_json_pretty(),
        _ => String::new(),
    }
}

/// What an action did, with the way back to the session.
pub fn done(experiment_id: &str, what: &str) -> Markup {
    layout::page(
        what,
        None,
        html! {
            h1 { (what) }
            p.verdict #action-result { (what) }
            p { a href={"/sessions/" (experiment_id)} { "Back to the session" } }
        },
    )
}
