//! One session: the goal and the decision in words, the leaderboard (mean, CI, p, Holm p,
//! decision), the CI chart against the target, each candidate (spec with parameters and
//! FLOPs, parent, rationale, learning curves per seed, trials with exit reasons and resource
//! use), the decision log with every LLM exchange readable, and the artifacts.

use std::collections::HashMap;

use maud::{Markup, html};
use ra_proto::evaluator::v1 as ev;
use ra_proto::registry::v1 as reg;

use super::layout::{
    self, bytes, decision_name, exit_reason, number, p_value, seconds, short_id, status_badge,
    trial_state,
};
use crate::charts::{self, CiRow, Curve};
use crate::view::{SessionView, goal_text};

/// What the page shows besides the session's records.
#[derive(Debug)]
pub struct SessionPage<'a> {
    pub view: &'a SessionView,
    /// evaluator-svc's Holm–Bonferroni assessment, or why there is none.
    pub assessment: &'a Result<ev::ExperimentAssessment, String>,
    /// Whether the actions (inject, budget, pause, resume) are offered.
    pub interactive: bool,
}

/// "#3": candidates numbered in the order they were proposed.
fn numbers(view: &SessionView) -> HashMap<&str, usize> {
    view.candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i + 1))
        .collect()
}

impl SessionPage<'_> {
    fn holm(&self) -> HashMap<&str, &ev::CandidateAssessment> {
        match self.assessment {
            Ok(a) => a
                .candidates
                .iter()
                .map(|c| (c.candidate_id.as_str(), c))
                .collect(),
            Err(_) => HashMap::new(),
        }
    }

    /// The whole page (`fragment`: only what `<main>` holds, for the live refresh).
    pub fn render(&self, fragment: bool) -> Markup {
        let view = self.view;
        let e = &view.experiment;
        let title = goal_text(e);
        let body = html! {
            (self.header())
            (self.leaderboard())
            (self.candidates())
            (self.decision_log())
            (self.artifacts())
        };
        let events = format!("/sessions/{}/events", e.id);
        let live = (!terminal(e.status())).then_some((events.as_str(), view.position));
        if fragment {
            html! {
                @match live {
                    Some((events, position)) => main data-live=(events) data-position=(position) { (body) },
                    None => main data-position=(view.position) { (body) },
                }
            }
        } else {
            layout::page(title, live, body)
        }
    }

    fn header(&self) -> Markup {
        let view = self.view;
        let e = &view.experiment;
        let goal = e.goal.clone().unwrap_or_default();
        let target = view.target();
        let budget = view.budget();
        let config: serde_json::Value =
            serde_json::from_str(&e.config_json).unwrap_or(serde_json::Value::Null);
        let strategy = config
            .get("strategy")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("–")
            .to_owned();
        let verdict = if e.summary.is_empty() {
            view.decisions
                .iter()
                .rev()
                .find(|d| d.action != "llm_exchange")
                .map(|d| d.reasoning.clone())
                .unwrap_or_else(|| "No decision yet.".into())
        } else {
            e.summary.clone()
        };
        html! {
            h1 #goal { (goal_text(e)) }
            p { (status_badge(e.status())) " " span.muted { code #experiment-id { (e.id) } } }
            div.facts {
                div { span { "dataset" } code #dataset { (goal.dataset) } }
                div { span { "target" } b #target data-metric=(target.metric) data-threshold=(target.threshold) { (layout::target_text(&target)) } }
                div { span { "confidence" } (number(goal.confidence)) }
                div { span { "seeds per candidate" } (goal.num_seeds) " (up to " (goal.max_seeds) ")" }
                div { span { "budget" } (budget.max_candidates) " candidates · " (budget.max_total_seeds) " seeds · " (seconds(budget.max_wall_seconds as f64)) }
                div { span { "strategy" } (strategy) }
                div { span { "started" } (layout::time(e.created_at.as_ref())) }
                div { span { "elapsed" } (view.elapsed_seconds().map_or("–".into(), seconds)) }
            }
            h2 { "Decision" }
            div.verdict #verdict { (verdict) }
            @if self.interactive && !terminal(e.status()) {
                (super::actions::panel(view))
            }
        }
    }

    fn leaderboard(&self) -> Markup {
        let view = self.view;
        let numbers = numbers(view);
        let holm = self.holm();
        let target = view.target();
        let ranked = view.ranked();
        let best = view.best().map(|(c, _)| c.id.clone());
        let rows: Vec<CiRow> = ranked
            .iter()
            .filter_map(|(c, e)| {
                let e = (*e)?;
                let a = e.aggregate.as_ref().filter(|a| a.n > 0)?;
                Some(CiRow {
                    candidate_id: c.id.clone(),
                    label: format!("#{} {}", numbers[c.id.as_str()], c.strategy),
                    mean: a.mean,
                    ci_low: a.ci_low,
                    ci_high: a.ci_high,
                    decision: decision_name(e.decision()),
                })
            })
            .collect();
        let evaluated: Vec<&reg::Candidate> = ranked
            .iter()
            .filter(|(_, e)| e.is_some())
            .map(|(c, _)| *c)
            .collect();
        html! {
            h2 { "Leaderboard" }
            @if let Err(why) = self.assessment {
                p.muted #holm-note { "Holm-adjusted p-values unavailable: " (why) }
            }
            @if ranked.is_empty() {
                p.empty { "No candidate yet." }
            } @else {
                table #leaderboard {
                    thead { tr {
                        th.num { "rank" } th { "candidate" } th { "strategy" } th { "parent" } th.num { "n" }
                        th.num { "mean " (target.metric) } th.num { "CI" } th.num { "p" } th.num { "Holm p" } th { "decision" }
                    } }
                    tbody {
                        @for (rank, (c, e)) in ranked.iter().enumerate() {
                            @let a = e.and_then(|e| e.aggregate.clone()).filter(|a| a.n > 0);
                            @let assessed = holm.get(c.id.as_str());
                            tr.candidate-row.best[best.as_deref() == Some(c.id.as_str())]
                                data-candidate=(c.id)
                                data-mean=[a.as_ref().map(|a| a.mean)]
                                data-ci-low=[a.as_ref().map(|a| a.ci_low)]
                                data-ci-high=[a.as_ref().map(|a| a.ci_high)]
                                data-p=[e.map(|e| e.p_value)]
                                data-holm-p=[assessed.map(|h| h.adjusted_p_value)] {
                                td.num { (rank + 1) }
                                td { a href={"#" (c.id)} { "#" (numbers[c.id.as_str()]) " " code { (short_id(&c.id)) } } }
                                td { (c.strategy) }
                                td { @if let Some(n) = numbers.get(c.parent_id.as_str()) { a href={"#" (c.parent_id)} { "#" (n) } } @else { "–" } }
                                @match (&a, e) {
                                    (Some(a), Some(e)) => {
                                        td.num { (a.n) }
                                        td.num { (number(a.mean)) }
                                        td.num { "[" (number(a.ci_low)) ", " (number(a.ci_high)) "]" }
                                        td.num { (p_value(e.p_value)) }
                                        td.num { (assessed.map_or("–".into(), |h| p_value(h.adjusted_p_value))) }
                                        td { span class={"decision-" (decision_name(e.decision()).replace(' ', "-"))} { (decision_name(e.decision())) } }
                                    }
                                    _ => {
                                        td.num { "0" } td.num { "–" } td.num { "–" } td.num { "–" } td.num { "–" }
                                        td.muted { (if e.is_some() { "no seed finished" } else { "not evaluated yet" }) }
                                    }
                                }
                            }
                        }
                    }
                }
                (charts::ci_chart(&rows, &target.metric, (!target.open_ended).then_some(target.threshold)))
                @if evaluated.len() >= 2 {
                    form.filters #compare-candidates method="get" action={"/sessions/" (view.experiment.id) "/compare"} {
                        span { "Compare" }
                        select name="a" { @for (i, c) in evaluated.iter().enumerate() { option value=(c.id) selected[i == 0] { "#" (numbers[c.id.as_str()]) " " (short_id(&c.id)) } } }
                        span { "with" }
                        select name="b" { @for (i, c) in evaluated.iter().enumerate() { option value=(c.id) selected[i == 1] { "#" (numbers[c.id.as_str()]) " " (short_id(&c.id)) } } }
                        button type="submit" { "Welch test" }
                    }
                }
            }
        }
    }

    fn candidates(&self) -> Markup {
        let view = self.view;
        let numbers = numbers(view);
        let target = view.target();
        html! {
            h2 { "Candidates" }
            @for c in &view.candidates {
                section.candidate id=(c.id) {
                    h3 {
                        "#" (numbers[c.id.as_str()]) " · " (c.strategy) " · " code { (c.id) }
                        @if let Some(n) = numbers.get(c.parent_id.as_str()) {
                            " · derived from " a.parent href={"#" (c.parent_id)} { "#" (n) }
                        }
                    }
                    @if !c.rationale.is_empty() {
                        details id={(c.id) "-rationale"} { summary { "Rationale" } pre { (c.rationale) } }
                    }
                    (spec_table(c))
                    @let curves: Vec<Curve> = view.curves(&c.id, &target.metric).into_iter().map(|(t, points)| Curve {
                        trial_id: t.id.clone(),
                        seed: t.seed,
                        state: trial_state(t.state()),
                        points,
                    }).collect();
                    (charts::curves_chart(&curves, &target.metric, (!target.open_ended).then_some(target.threshold)))
                    (trials_table(view.trials_of(&c.id), &target.metric))
                }
            }
        }
    }

    fn decision_log(&self) -> Markup {
        let view = self.view;
        let numbers = numbers(view);
        html! {
            h2 { "Decision log" }
            @if view.decisions.is_empty() {
                p.empty { "No decision recorded yet." }
            } @else {
                table #decisions {
                    thead { tr { th { "time" } th { "action" } th { "candidate" } th { "reasoning" } } }
                    tbody {
                        @for d in &view.decisions {
                            tr.decision data-action=(d.action) data-id=(d.id) {
                                td.muted { (layout::time(d.created_at.as_ref())) }
                                td { code { (d.action) } }
                                td { @if let Some(n) = numbers.get(d.candidate_id.as_str()) { a href={"#" (d.candidate_id)} { "#" (n) } } }
                                td { (reasoning(d)) }
                            }
                        }
                    }
                }
            }
        }
    }

    fn artifacts(&self) -> Markup {
        let view = self.view;
        html! {
            h2 { "Artifacts" }
            @if view.artifacts.is_empty() {
                p.empty { "No artifact yet." }
            } @else {
                table #artifacts {
                    thead { tr { th { "name" } th { "type" } th.num { "size" } th { "trial" } th { "sha256" } } }
                    tbody {
                        @for a in &view.artifacts {
                            tr {
                                td { a href={"/artifacts/" (a.sha256)} download=(a.name) { (a.name) } }
                                td { (a.content_type) }
                                td.num { (bytes(a.size_bytes)) }
                                td { code { (short_id(&a.trial_id)) } }
                                td.muted { code { (a.sha256.get(..16).unwrap_or(&a.sha256)) "…" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn terminal(status: reg::ExperimentStatus) -> bool {
    matches!(
        status,
        reg::ExperimentStatus::Succeeded
            | reg::ExperimentStatus::Exhausted
            | reg::ExperimentStatus::Completed
            | reg::ExperimentStatus::Failed
            | reg::ExperimentStatus::Cancelled
    )
}

/// The layers with their output shapes, parameters and FLOPs (from `ra-spec`'s shape
/// inference), and the training recipe.
fn spec_table(c: &reg::Candidate) -> Markup {
    let model = c.model.as_ref().map(ra_spec::ModelSpec::try_from);
    let train = c.train.as_ref().map(ra_spec::TrainSpec::try_from);
    let report = match &model {
        Some(Ok(spec)) => Some(
            ra_spec::validate_model(spec, &ra_spec::Budget::unlimited()).map_err(|e| e.to_string()),
        ),
        _ => None,
    };
    html! {
        @match (&model, &report) {
            (Some(Ok(spec)), Some(Ok(report))) => {
                p.spec-summary data-parameters=(report.parameters) data-flops=(report.flops_per_sample) {
                    b { (report.parameters) } " parameters · " b { (report.flops_per_sample) } " FLOPs per sample · "
                    (spec.layers.len()) " layers · output " (report.output_shape.to_string())
                }
                details id={(c.id) "-layers"} {
                    summary { "Layers" }
                    table.layers {
                        thead { tr { th { "#" } th { "layer" } th { "output" } th.num { "parameters" } th.num { "FLOPs" } } }
                        tbody {
                            @for layer in &report.layers {
                                tr { td { (layer.index) } td { (layer.kind) } td { (layer.output_shape.to_string()) } td.num { (layer.parameters) } td.num { (layer.flops) } }
                            }
                        }
                    }
                    pre { (spec.to_json_pretty()) }
                }
            }
            (Some(Err(error)), _) => { p.muted { "The model spec cannot be read: " (error.to_string()) } }
            (_, Some(Err(error))) => { p.muted { "The model spec does not validate: " (error) } }
            _ => { p.muted { "No model spec recorded." } }
        }
        @match &train {
            Some(Ok(train)) => {
                details id={(c.id) "-train"} {
                    summary { "Training: " (train.epochs) " epochs, batch " (train.batch_size) ", learning rate " (number(train.learning_rate)) }
                    pre { (serde_json::to_string_pretty(train).unwrap_or_default()) }
                }
            }
            Some(Err(error)) => { p.muted { "The training spec cannot be read: " (error.to_string()) } }
            None => {}
        }
    }
}

fn trials_table<'a>(trials: impl Iterator<Item = &'a reg::Trial>, metric: &str) -> Markup {
    let trials: Vec<&reg::Trial> = trials.collect();
    html! {
        @if trials.is_empty() {
            p.empty { "No trial yet." }
        } @else {
            table.trials {
                thead { tr {
                    th.num { "seed" } th { "state" } th { "exit" } th { "device" } th.num { "final " (metric) }
                    th.num { "wall" } th.num { "CPU" } th.num { "peak memory" } th { "message" }
                } }
                tbody {
                    @for t in trials {
                        @let usage = t.usage.unwrap_or_default();
                        tr.trial data-trial=(t.id) data-seed=(t.seed) data-state=(trial_state(t.state())) {
                            td.num { (t.seed) }
                            td { span class={"state-" (trial_state(t.state()))} { (trial_state(t.state())) } }
                            td { (exit_reason(t.exit_reason())) }
                            td { (if t.device.is_empty() { "–" } else { t.device.as_str() }) }
                            td.num { (t.final_metrics.get(metric).map_or("–".into(), |v| number(*v))) }
                            td.num { (seconds(usage.wall_seconds)) }
                            td.num { (if usage.cpu_seconds > 0.0 { seconds(usage.cpu_seconds) } else { "–".into() }) }
                            td.num { (bytes(usage.peak_rss_bytes)) }
                            td { (t.message) }
                        }
                    }
                }
            }
        }
    }
}

/// A decision's reasoning; an LLM exchange shows its figures and folds its prompt and answer.
fn reasoning(d: &reg::Decision) -> Markup {
    let inputs: serde_json::Value =
        serde_json::from_str(&d.inputs_json).unwrap_or(serde_json::Value::Null);
    let field = |name: &str| inputs.get(name).cloned().unwrap_or(serde_json::Value::Null);
    let head = d.reasoning.lines().next().unwrap_or("");
    html! {
        @if d.action == "llm_exchange" {
            div.llm-exchange {
                (head) br;
                span.muted {
                    "tokens " (field("prompt_tokens")) " → " (field("completion_tokens"))
                    " · " (field("latency_ms")) " ms"
                    @if let Some(problem) = inputs.get("problem").and_then(serde_json::Value::as_str) { " · refused: " (problem) }
                }
                details id={(d.id) "-exchange"} { summary { "Prompt and answer" } pre { (d.reasoning) } }
            }
        } @else {
            div { (d.reasoning) }
        }
        @if !inputs.is_null() && inputs.as_object().is_some_and(|o| !o.is_empty()) {
            details id={(d.id) "-inputs"} {
                summary.muted { "inputs" }
                pre { (serde_json::to_string_pretty(&inputs).unwrap_or_default()) }
            }
        }
    }
}
