//! The pages' charts as inline SVG, drawn on the server: each candidate's mean and
//! confidence interval against the target, and learning curves with one line per seed
//! (pruned and failed seeds drawn differently). Every mark carries `data-*` attributes with
//! the values it shows, so a test (or a person's devtools) reads the numbers back exactly.

use maud::{Markup, html};

const WIDTH: f64 = 760.0;
const LABEL: f64 = 190.0;
const RIGHT: f64 = 20.0;
const ROW: f64 = 24.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 30.0;

/// One candidate's interval on the CI chart.
#[derive(Debug, Clone)]
pub struct CiRow {
    pub candidate_id: String,
    pub label: String,
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// The goal decision's name ("achieved", "not achieved", "undecided").
    pub decision: &'static str,
}

/// One seed's line on a learning-curve chart.
#[derive(Debug, Clone)]
pub struct Curve {
    pub trial_id: String,
    pub seed: u64,
    /// "succeeded", "pruned", "failed", "running", … (a CSS class: `state-…`).
    pub state: &'static str,
    pub points: Vec<(u64, f64)>,
}

/// A linear map from a value range onto a pixel range.
#[derive(Debug, Clone, Copy)]
struct Scale {
    from: (f64, f64),
    to: (f64, f64),
}

impl Scale {
    /// The range of `values` (finite ones), widened by 5% each side, and never empty.
    fn fitted(values: impl Iterator<Item = f64>, to: (f64, f64)) -> Self {
        let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
        for value in values.filter(|v| v.is_finite()) {
            low = low.min(value);
            high = high.max(value);
        }
        if !low.is_finite() {
            (low, high) = (0.0, 1.0);
        }
        let pad = if high > low {
            (high - low) * 0.05
        } else {
            low.abs().max(1.0) * 0.05
        };
        Self {
            from: (low - pad, high + pad),
            to,
        }
    }

    fn at(&self, value: f64) -> f64 {
        let (a, b) = self.from;
        let (p, q) = self.to;
        p + (value - a) / (b - a) * (q - p)
    }

    /// About `count` round tick values inside the range.
    fn ticks(&self, count: usize) -> Vec<f64> {
        let (low, high) = self.from;
        let raw = (high - low) / count.max(1) as f64;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(raw);
        let first = (low / step).ceil() as i64;
        let last = (high / step).floor() as i64;
        (first..=last).map(|i| i as f64 * step).collect()
    }
}

/// A number short enough for an axis label.
fn tick_label(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

fn px(value: f64) -> String {
    format!("{value:.1}")
}

/// Each candidate's mean (dot) and confidence interval (bar) against the target (line).
pub fn ci_chart(rows: &[CiRow], metric: &str, target: Option<f64>) -> Markup {
    if rows.is_empty() {
        return html! { p.empty { "No candidate has been evaluated yet." } };
    }
    let height = TOP + BOTTOM + ROW * rows.len() as f64;
    let scale = Scale::fitted(
        rows.iter()
            .flat_map(|r| [r.ci_low, r.ci_high, r.mean])
            .chain(target),
        (LABEL, WIDTH - RIGHT),
    );
    let axis_y = height - BOTTOM;
    html! {
        svg.chart.ci-chart xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (WIDTH) " " (height)}
            role="img" aria-label={"mean and confidence interval of " (metric) " per candidate"}
            data-metric=(metric) data-target=[target] {
            @for tick in scale.ticks(6) {
                line.grid x1=(px(scale.at(tick))) x2=(px(scale.at(tick))) y1=(TOP - 6.0) y2=(axis_y) {}
                text.tick x=(px(scale.at(tick))) y=(axis_y + 16.0) text-anchor="middle" { (tick_label(tick)) }
            }
            @if let Some(target) = target {
                line.target x1=(px(scale.at(target))) x2=(px(scale.at(target))) y1=(TOP - 14.0) y2=(axis_y)
                    data-value=(target) {}
                text.target-label x=(px(scale.at(target))) y=(TOP - 16.0) text-anchor="middle" {
                    "target " (tick_label(target))
                }
            }
            @for (i, row) in rows.iter().enumerate() {
                @let y = TOP + ROW * i as f64 + ROW / 2.0;
                @let finite = row.ci_low.is_finite() && row.ci_high.is_finite();
                g.ci-bar data-candidate=(row.candidate_id) data-mean=(row.mean)
                    data-ci-low=(row.ci_low) data-ci-high=(row.ci_high) data-decision=(row.decision) {
                    title {
                        (row.label) ": mean " (tick_label(row.mean)) ", CI [" (tick_label(row.ci_low))
                        ", " (tick_label(row.ci_high)) "], " (row.decision)
                    }
                    text.label x=(LABEL - 8.0) y=(y + 4.0) text-anchor="end" { (row.label) }
                    @if finite {
                        line class={"ci " (decision_class(row.decision))} x1=(px(scale.at(row.ci_low)))
                            x2=(px(scale.at(row.ci_high))) y1=(y) y2=(y) {}
                    }
                    circle class={"mean " (decision_class(row.decision))} cx=(px(scale.at(row.mean))) cy=(y) r="4" {}
                }
            }
        }
    }
}

fn decision_class(decision: &str) -> &'static str {
    match decision {
        "achieved" => "achieved",
        "not achieved" => "not-achieved",
        _ => "undecided",
    }
}

/// `metric` per epoch, one line per seed, with the target as a dashed line.
pub fn curves_chart(curves: &[Curve], metric: &str, target: Option<f64>) -> Markup {
    let drawn: Vec<&Curve> = curves.iter().filter(|c| !c.points.is_empty()).collect();
    if drawn.is_empty() {
        return html! { p.empty { "No " (metric) " recorded for this candidate yet." } };
    }
    let height = 240.0;
    let (left, top, bottom) = (56.0, 14.0, height - 28.0);
    let x = Scale::fitted(
        drawn
            .iter()
            .flat_map(|c| c.points.iter().map(|p| p.0 as f64)),
        (left, WIDTH - 70.0),
    );
    let y = Scale::fitted(
        drawn
            .iter()
            .flat_map(|c| c.points.iter().map(|p| p.1))
            .chain(target),
        (bottom, top),
    );
    html! {
        svg.chart.curves-chart xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (WIDTH) " " (height)}
            role="img" aria-label={(metric) " per epoch, one line per seed"} data-metric=(metric) {
            @for tick in y.ticks(5) {
                line.grid x1=(left) x2=(WIDTH - 70.0) y1=(px(y.at(tick))) y2=(px(y.at(tick))) {}
                text.tick x=(left - 6.0) y=(px(y.at(tick) + 4.0)) text-anchor="end" { (tick_label(tick)) }
            }
            @for tick in x.ticks(8).into_iter().filter(|t| t.fract() == 0.0) {
                text.tick x=(px(x.at(tick))) y=(bottom + 18.0) text-anchor="middle" { (tick_label(tick)) }
            }
            text.axis-label x=(WIDTH - 70.0) y=(bottom + 18.0) text-anchor="start" { " epoch" }
            @if let Some(target) = target {
                line.target x1=(left) x2=(WIDTH - 70.0) y1=(px(y.at(target))) y2=(px(y.at(target)))
                    data-value=(target) {}
            }
            @for curve in &drawn {
                @let points = curve.points.iter()
                    .map(|(step, value)| format!("{},{}", px(x.at(*step as f64)), px(y.at(*value))))
                    .collect::<Vec<_>>().join(" ");
                @let (last_step, last_value) = curve.points[curve.points.len() - 1];
                g class={"curve state-" (curve.state)} data-trial=(curve.trial_id) data-seed=(curve.seed)
                    data-state=(curve.state) data-points=(curve.points.len()) data-last=(last_value) {
                    title { "seed " (curve.seed) " (" (curve.state) "): " (tick_label(last_value)) " at epoch " (last_step) }
                    polyline points=(points) {}
                    @if curve.points.len() == 1 {
                        circle cx=(px(x.at(last_step as f64))) cy=(px(y.at(last_value))) r="3" {}
                    }
                    text.seed x=(px(x.at(last_step as f64) + 6.0)) y=(px(y.at(last_value) + 4.0)) {
                        "seed " (curve.seed) @if curve.state != "succeeded" { " · " (curve.state) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_map_ranges_and_round_ticks() {
        let scale = Scale::fitted([0.0, 1.0].into_iter(), (0.0, 110.0));
        assert!((scale.at(0.0) - 5.0).abs() < 1e-9);
        assert!((scale.at(1.0) - 105.0).abs() < 1e-9);
        assert_eq!(scale.ticks(5), vec![0.0, 0.5, 1.0]);
        assert_eq!(scale.ticks(10).len(), 6);
        // A single value still gets a non-empty range.
        let flat = Scale::fitted([0.5, 0.5].into_iter(), (0.0, 100.0));
        assert!(flat.at(0.5).is_finite());
        assert_eq!(tick_label(0.9), "0.9");
        assert_eq!(tick_label(-0.0), "0");
    }

    #[test]
    fn the_ci_chart_carries_each_candidates_numbers() {
        let svg = ci_chart(
            &[CiRow {
                candidate_id: "cand_1".into(),
                label: "<b>cand</b>".into(),
                mean: 0.9,
                ci_low: 0.85,
                ci_high: 0.95,
                decision: "achieved",
            }],
            "val_accuracy",
            Some(0.8),
        )
        .into_string();
        assert!(svg.contains(r#"data-candidate="cand_1""#), "{svg}");
        assert!(svg.contains(r#"data-ci-low="0.85""#), "{svg}");
        assert!(svg.contains(r#"class="target""#), "{svg}");
        // One class attribute per element (a second one would be ignored by browsers).
        assert!(svg.contains(r#"<line class="ci achieved""#), "{svg}");
        assert!(
            svg.contains("&lt;b&gt;cand&lt;/b&gt;"),
            "labels are escaped: {svg}"
        );
    }

    #[test]
    fn curves_mark_each_seed_with_its_state() {
        let svg = curves_chart(
            &[
                Curve {
                    trial_id: "trial_a".into(),
                    seed: 1,
                    state: "succeeded",
                    points: vec![(1, 0.5), (2, 0.7)],
                },
                Curve {
                    trial_id: "trial_b".into(),
                    seed: 2,
                    state: "pruned",
                    points: vec![(1, 0.3)],
                },
                Curve {
                    trial_id: "trial_c".into(),
                    seed: 3,
                    state: "failed",
                    points: vec![],
                },
            ],
            "val_accuracy",
            Some(0.8),
        )
        .into_string();
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains(r#"data-state="pruned""#), "{svg}");
        assert!(svg.contains(r#"<g class="curve state-pruned""#), "{svg}");
        assert!(svg.contains(r#"data-points="2""#), "{svg}");
    }
}
