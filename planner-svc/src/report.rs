//! The final report of a session, written into `<reports_dir>/<research id>/` and uploaded to
//! the registry as artifacts of the experiment: `report.md` (outcome, best candidate with its
//! spec, CI and p-values, the leaderboard, the decision log), `candidates.svg` (each
//! candidate's mean with its confidence interval against the target) and `learning_curves.svg`
//! (the best candidate's target metric per epoch, one line per seed).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use ra_proto::common::v1 as common;
use ra_proto::planner::v1 as pb;

use crate::research::{CandidateRecord, Research};

const WIDTH: u32 = 900;
const HEIGHT: u32 = 480;

/// Writes the report files, uploads them, and returns the report's folder.
pub async fn write(research: &Research, status: &pb::ResearchStatus) -> Result<PathBuf, String> {
    let folder = research.reports_dir.join(&research.handle.id);
    std::fs::create_dir_all(&folder)
        .map_err(|error| format!("create {}: {error}", folder.display()))?;
    let target = research.goal.target.clone().unwrap_or_default();
    let best = best_candidate(research, status);
    let curves = match best {
        Some(best) => learning_curves(research, best, &target.metric).await,
        None => Vec::new(),
    };
    plot_candidates(
        &folder.join("candidates.svg"),
        &research.candidates,
        &target,
    )?;
    plot_curves(&folder.join("learning_curves.svg"), &curves, &target, best)?;
    let decisions = research
        .clients
        .records
        .decisions(&research.handle.id)
        .await
        .map_err(|status| format!("reading the decision log: {}", status.message()))?;
    let markdown = markdown(research, status, best, &decisions);
    let report_path = folder.join("report.md");
    std::fs::write(&report_path, &markdown)
        .map_err(|error| format!("write {}: {error}", report_path.display()))?;
    for (name, content_type) in [
        ("report.md", "text/markdown"),
        ("candidates.svg", "image/svg+xml"),
        ("learning_curves.svg", "image/svg+xml"),
    ] {
        let content = std::fs::read(folder.join(name))
            .map_err(|error| format!("read back {name}: {error}"))?;
        research
            .clients
            .records
            .upload(&research.handle.id, name, content_type, content)
            .await
            .map_err(|status| format!("upload {name} to the registry: {}", status.message()))?;
    }
    Ok(folder)
}

/// The candidate that reached the goal, else the best mean of those evaluated.
fn best_candidate<'a>(
    research: &'a Research,
    status: &pb::ResearchStatus,
) -> Option<&'a CandidateRecord> {
    research.achieving_candidate().or_else(|| {
        let first = status.leaderboard.first()?;
        research
            .candidates
            .iter()
            .find(|c| c.id == first.candidate_id)
            .filter(|c| c.failure.is_none())
    })
}

/// (seed, [(epoch, value)]) of the best candidate's trials.
async fn learning_curves(
    research: &Research,
    best: &CandidateRecord,
    metric: &str,
) -> Vec<(u64, Vec<(f64, f64)>)> {
    let registry = &research.clients.records.registry;
    let Ok(trials) = registry.trials("", &best.id).await else {
        return Vec::new();
    };
    let mut curves = Vec::new();
    for trial in trials {
        if let Ok(points) = registry.metric_series(&trial.id, metric).await {
            let curve: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.value.is_finite())
                .map(|p| (p.step as f64, p.value))
                .collect();
            if !curve.is_empty() {
                curves.push((trial.seed, curve));
            }
        }
    }
    curves.sort_by_key(|(seed, _)| *seed);
    curves
}

fn draw_error(error: impl std::fmt::Display) -> String {
    format!("drawing a plot: {error}")
}

/// The y range of a chart: the values and the target line (none for open-ended goals).
fn value_range(values: impl Iterator<Item = f64>, threshold: Option<f64>) -> (f64, f64) {
    let start = threshold.map_or((f64::INFINITY, f64::NEG_INFINITY), |t| (t, t));
    let (low, high) = values
        .filter(|v| v.is_finite())
        .fold(start, |(lo, hi), v| (lo.min(v), hi.max(v)));
    if low > high {
        return (0.0, 1.0);
    }
    let pad = ((high - low) * 0.1).max(0.01);
    (low - pad, high + pad)
}

/// The target line's value, `None` for an open-ended goal (nothing to reach).
fn target_line(target: &common::Target) -> Option<f64> {
    (!target.open_ended).then_some(target.threshold)
}

fn plot_candidates(
    path: &Path,
    candidates: &[CandidateRecord],
    target: &common::Target,
) -> Result<(), String> {
    let evaluated: Vec<(usize, &CandidateRecord, &common::Aggregate)> = candidates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            c.aggregate
                .as_ref()
                .filter(|a| a.n > 0 && a.mean.is_finite())
                .map(|a| (i + 1, c, a))
        })
        .collect();
    let (low, high) = value_range(
        evaluated
            .iter()
            .flat_map(|(_, _, a)| [a.mean, a.ci_low, a.ci_high]),
        target_line(target),
    );
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let count = candidates.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{} per candidate (mean, CI) vs target", target.metric),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5..count + 0.5, low..high)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("candidate #")
        .y_desc(target.metric.as_str())
        .x_labels(candidates.len().clamp(1, 20))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(draw_error)?;
    if let Some(threshold) = target_line(target) {
        chart
            .draw_series(LineSeries::new(
                [(0.5, threshold), (count + 0.5, threshold)],
                RED.stroke_width(2),
            ))
            .map_err(draw_error)?
            .label(format!("target {threshold}"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
    }
    chart
        .draw_series(evaluated.iter().map(|(x, c, a)| {
            let color = if c.decision == common::GoalDecision::Achieved {
                GREEN.stroke_width(2)
            } else {
                BLUE.stroke_width(2)
            };
            let (ci_low, ci_high) = if a.ci_low.is_finite() && a.ci_high.is_finite() {
                (a.ci_low, a.ci_high)
            } else {
                (a.mean, a.mean)
            };
            ErrorBar::new_vertical(*x as f64, ci_low, a.mean, ci_high, color, 10)
        }))
        .map_err(draw_error)?
        .label("mean with confidence interval")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_error)?;
    root.present().map_err(draw_error)
}

fn plot_curves(
    path: &Path,
    curves: &[(u64, Vec<(f64, f64)>)],
    target: &common::Target,
    best: Option<&CandidateRecord>,
) -> Result<(), String> {
    let epochs = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|(x, _)| *x))
        .fold(1.0, f64::max);
    let (low, high) = value_range(
        curves.iter().flat_map(|(_, c)| c.iter().map(|(_, y)| *y)),
        target_line(target),
    );
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let title = match best {
        Some(best) => format!(
            "{} per epoch of the best candidate, {}",
            target.metric, best.name
        ),
        None => "no evaluated candidate: no learning curves".to_owned(),
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..epochs, low..high)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(target.metric.as_str())
        .x_labels((epochs as usize + 1).min(21))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(draw_error)?;
    if let Some(threshold) = target_line(target) {
        chart
            .draw_series(LineSeries::new(
                [(0.0, threshold), (epochs, threshold)],
                RED.stroke_width(2),
            ))
            .map_err(draw_error)?
            .label("target")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
    }
    for (index, (seed, curve)) in curves.iter().enumerate() {
        // Palette colours from the third on: the first is the target's red.
        let color = Palette99::pick(index + 2).stroke_width(2);
        chart
            .draw_series(LineSeries::new(curve.iter().copied(), color))
            .map_err(draw_error)?
            .label(format!("seed {seed}"))
            .legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], Palette99::pick(index + 2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_error)?;
    root.present().map_err(draw_error)
}

fn number(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.4}")
    } else {
        "–".into()
    }
}

fn state_name(state: i32) -> &'static str {
    match pb::ResearchState::try_from(state).unwrap_or_default() {
        pb::ResearchState::Running => "running",
        pb::ResearchState::Stopping => "stopping",
        pb::ResearchState::Paused => "paused",
        pb::ResearchState::Succeeded => "succeeded",
        pb::ResearchState::Exhausted => "exhausted",
        pb::ResearchState::Completed => "completed",
        pb::ResearchState::Failed => "failed",
        pb::ResearchState::Cancelled => "cancelled",
        pb::ResearchState::Unspecified => "unknown",
    }
}

pub fn decision_name(decision: i32) -> &'static str {
    match common::GoalDecision::try_from(decision).unwrap_or_default() {
        common::GoalDecision::Achieved => "achieved",
        common::GoalDecision::NotAchieved => "not achieved",
        common::GoalDecision::Undecided => "undecided",
        common::GoalDecision::Unspecified => "–",
    }
}

fn one_line(text: &str, limit: usize) -> String {
    let line = text.lines().next().unwrap_or("").replace('|', "/");
    match line.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line,
    }
}

/// The leaderboard's mean, CI, p and Holm p cells; "–" for all four when no seed finished (no
/// mean and no interval, not zeros).
fn stat_cells(a: &common::Aggregate, p: f64, holm: f64) -> [String; 4] {
    if a.n == 0 {
        return ["–", "–", "–", "–"].map(str::to_owned);
    }
    [
        number(a.mean),
        format!("[{}, {}]", number(a.ci_low), number(a.ci_high)),
        number(p),
        number(holm),
    ]
}

fn markdown(
    research: &Research,
    status: &pb::ResearchStatus,
    best: Option<&CandidateRecord>,
    decisions: &[ra_proto::registry::v1::Decision],
) -> String {
    let goal = &research.goal;
    let target = goal.target.clone().unwrap_or_default();
    let budget = goal.budget.unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "# Research report {}\n", research.handle.id);
    let _ = writeln!(out, "**Goal:** {}\n", goal.text);
    let _ = writeln!(
        out,
        "- dataset `{}`, target `{}` {} at {:.0}% confidence ({})",
        goal.dataset,
        target.metric,
        ra_client::goal::target_words(&target),
        goal.confidence * 100.0,
        if target.open_ended {
            "open-ended: the best candidate found, compared with the baseline and the runner-up by Welch's t-test, Holm-adjusted"
        } else {
            "one-sided t-test, Holm–Bonferroni across candidates"
        }
    );
    let _ = writeln!(
        out,
        "- strategy `{}`, {} → {} seeds per candidate; budget {} candidates, {} seeds, {} s",
        research.config.strategy,
        goal.num_seeds,
        goal.max_seeds,
        budget.max_candidates,
        budget.max_total_seeds,
        budget.max_wall_seconds
    );
    let _ = writeln!(
        out,
        "- outcome: **{}** — {}",
        state_name(status.state),
        status.message
    );
    let _ = writeln!(
        out,
        "- {} candidates proposed, {} evaluated, {} seeds, {:.1} s\n",
        research.candidates.len(),
        status.candidates_evaluated,
        status.seeds_used,
        status.elapsed_seconds
    );
    let _ = writeln!(out, "## Best candidate\n");
    match best {
        Some(best) => {
            let aggregate = best.aggregate.clone().unwrap_or_default();
            let _ = writeln!(
                out,
                "`{}` ({}, strategy {}): mean {} over {} seeds, CI [{}, {}], p = {}, Holm-adjusted p = {}, {}.\n",
                best.name,
                best.id,
                best.strategy,
                number(aggregate.mean),
                aggregate.n,
                number(aggregate.ci_low),
                number(aggregate.ci_high),
                number(best.p_value),
                number(best.adjusted_p_value),
                decision_name(best.decision as i32)
            );
            let _ = writeln!(out, "{}\n", best.explanation);
            let _ = writeln!(out, "Why it was proposed: {}\n", best.rationale);
            let _ = writeln!(
                out,
                "```json\n{}\n```\n\n```json\n{}\n```\n",
                best.model.to_json_pretty(),
                serde_json::to_string_pretty(&best.train).unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(out, "No candidate was evaluated successfully.\n");
        }
    }
    let _ = writeln!(out, "![candidates](candidates.svg)\n");
    let _ = writeln!(out, "![learning curves](learning_curves.svg)\n");
    let _ = writeln!(out, "## Leaderboard\n");
    let _ = writeln!(
        out,
        "| rank | candidate | strategy | n | mean | CI | p | Holm p | decision | note |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for entry in &status.leaderboard {
        let Some(c) = research
            .candidates
            .iter()
            .find(|c| c.id == entry.candidate_id)
        else {
            continue;
        };
        let a = c.aggregate.clone().unwrap_or_default();
        let [mean, ci, p, holm] = stat_cells(&a, c.p_value, c.adjusted_p_value);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            entry.rank,
            c.name,
            c.strategy,
            a.n,
            mean,
            ci,
            p,
            holm,
            decision_name(c.decision as i32),
            one_line(c.failure.as_deref().unwrap_or(""), 100)
        );
    }
    let _ = writeln!(out, "\n## Decision log\n");
    let _ = writeln!(
        out,
        "| time | action | candidate | reasoning |\n|---|---|---|---|"
    );
    for decision in decisions {
        let time = decision
            .created_at
            .as_ref()
            .map(|t| t.to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            time,
            decision.action,
            decision.candidate_id,
            one_line(&decision.reasoning, 200)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_without_finished_seeds_shows_dashes_not_zeros() {
        let none = common::Aggregate::default();
        assert_eq!(stat_cells(&none, 0.0, 0.0), ["–", "–", "–", "–"]);
        let some = common::Aggregate {
            n: 3,
            mean: 0.61,
            ci_low: 0.55,
            ci_high: 0.67,
            ..Default::default()
        };
        assert_eq!(
            stat_cells(&some, 0.0123, 0.0369),
            ["0.6100", "[0.5500, 0.6700]", "0.0123", "0.0369"]
        );
    }
}
