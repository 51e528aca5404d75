//! evaluator-svc's statistics against SciPy, and simulations of its error rates.
//!
//! - Every formula is checked against `evaluator-svc/scipy/stats_table.json`, the committed
//!   output of `evaluator-svc/scipy/make_table.py`; where Python with SciPy is available (always
//!   in CI) the script is run again and must reproduce the table.
//! - Simulated sessions whose true mean equals the target show that the false "achieved" rate
//!   stays at or below α — with a fixed number of seeds, with adaptive seeding, and across 20
//!   candidates with the Holm–Bonferroni correction (and that without it the family-wise rate
//!   is far above α, so the check can fail).

use std::path::PathBuf;
use std::process::Command;

use evaluator_svc::decision::{Direction, Goal, decide};
use evaluator_svc::plan::SeedRounds;
use evaluator_svc::stats::{self, Summary};
use ra_integration_tests::skip_or_fail;
use ra_proto::common::v1::GoalDecision;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use serde_json::Value;

fn table_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../evaluator-svc/scipy/stats_table.json")
}

fn load(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read the SciPy table");
    serde_json::from_str(&text).expect("the SciPy table is JSON")
}

fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

fn number(case: &Value, key: &str) -> f64 {
    case[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {case}"))
}

/// Relative closeness, with an absolute floor for values near zero.
#[track_caller]
fn close(what: &str, ours: f64, scipy: f64, tolerance: f64) {
    let scale = scipy.abs().max(1e-3);
    assert!(
        (ours - scipy).abs() <= tolerance * scale,
        "{what}: ours {ours:e}, SciPy {scipy:e} (difference {:e})",
        (ours - scipy).abs()
    );
}

const TOLERANCE: f64 = 1e-9;

#[test]
fn one_sample_statistics_match_scipy() {
    let table = load(&table_path());
    let cases = table["one_sample"].as_array().expect("one_sample cases");
    assert!(cases.len() >= 20, "the table holds too few cases");
    for case in cases {
        let values = numbers(&case["values"]);
        let threshold = number(case, "threshold");
        let confidence = number(case, "confidence");
        let summary = Summary::of(&values);
        let label = format!("n={} threshold={threshold}", values.len());
        close(
            &format!("{label} mean"),
            summary.mean,
            number(case, "mean"),
            TOLERANCE,
        );
        close(
            &format!("{label} sd"),
            summary.std_dev,
            number(case, "std_dev"),
            TOLERANCE,
        );
        close(
            &format!("{label} se"),
            summary.std_error,
            number(case, "std_error"),
            TOLERANCE,
        );
        let interval = stats::mean_interval(&summary, confidence);
        close(
            &format!("{label} ci_low"),
            interval.low,
            number(case, "ci_low"),
            TOLERANCE,
        );
        close(
            &format!("{label} ci_high"),
            interval.high,
            number(case, "ci_high"),
            TOLERANCE,
        );
        let test = stats::one_sample(&summary, threshold).expect("n ≥ 2");
        close(&format!("{label} t"), test.t, number(case, "t"), TOLERANCE);
        assert_eq!(test.df, number(case, "df"));
        close(
            &format!("{label} p>"),
            test.p_greater,
            number(case, "p_greater"),
            1e-8,
        );
        close(
            &format!("{label} p<"),
            test.p_less,
            number(case, "p_less"),
            1e-8,
        );
    }
}

#[test]
fn welch_and_hedges_match_scipy() {
    let table = load(&table_path());
    for case in table["welch"].as_array().expect("welch cases") {
        let (a, b) = (numbers(&case["a"]), numbers(&case["b"]));
        let label = format!("welch n={}/{}", a.len(), b.len());
        let test = stats::welch(
            &Summary::of(&a),
            &Summary::of(&b),
            number(case, "confidence"),
        )
        .expect("two per group");
        close(
            &format!("{label} difference"),
            test.difference,
            number(case, "difference"),
            TOLERANCE,
        );
        close(&format!("{label} t"), test.t, number(case, "t"), TOLERANCE);
        close(
            &format!("{label} df"),
            test.df,
            number(case, "df"),
            TOLERANCE,
        );
        close(
            &format!("{label} p"),
            test.p_two_sided,
            number(case, "p_two_sided"),
            1e-8,
        );
        close(
            &format!("{label} ci_low"),
            test.interval.low,
            number(case, "ci_low"),
            1e-8,
        );
        close(
            &format!("{label} ci_high"),
            test.interval.high,
            number(case, "ci_high"),
            1e-8,
        );
        close(
            &format!("{label} g"),
            test.hedges_g,
            number(case, "hedges_g"),
            TOLERANCE,
        );
    }
}

#[test]
fn holm_and_quantiles_match_the_reference() {
    let table = load(&table_path());
    for case in table["holm"].as_array().expect("holm cases") {
        let adjusted = stats::holm(&numbers(&case["p_values"]));
        for (ours, reference) in adjusted.iter().zip(numbers(&case["adjusted"])) {
            close("holm", *ours, reference, 1e-12);
        }
    }
    for case in table["t_quantile"].as_array().expect("quantile cases") {
        let (df, confidence) = (number(case, "df"), number(case, "confidence"));
        // A one-value-spread sample makes the interval half-width exactly the quantile × se.
        let summary = Summary {
            n: df as usize + 1,
            mean: 0.0,
            std_dev: 1.0,
            min: 0.0,
            max: 0.0,
            std_error: 1.0,
        };
        let interval = stats::mean_interval(&summary, confidence);
        close(
            &format!("t quantile df={df} c={confidence}"),
            interval.high,
            number(case, "quantile"),
            1e-8,
        );
    }
}

#[test]
fn the_script_reproduces_the_committed_table() {
    let Some(python) = ra_integration_tests::python_with(&["scipy", "numpy"]) else {
        skip_or_fail(
            "the_script_reproduces_the_committed_table",
            "no Python with SciPy (set RA_PYTHON to a python that can import scipy)",
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let fresh = dir.path().join("table.json");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../evaluator-svc/scipy/make_table.py");
    let output = Command::new(python)
        .arg(&script)
        .arg(&fresh)
        .output()
        .expect("run make_table.py");
    assert!(
        output.status.success(),
        "make_table.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (mut fresh, mut committed) = (load(&fresh), load(&table_path()));
    // The SciPy version may differ; the numbers may not (beyond rounding).
    fresh["scipy"] = Value::Null;
    committed["scipy"] = Value::Null;
    compare_json("table", &fresh, &committed);
}

fn compare_json(path: &str, a: &Value, b: &Value) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            assert!(
                (x - y).abs() <= 1e-10 * y.abs().max(1e-3),
                "{path}: {x} vs {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths differ");
            for (index, (x, y)) in x.iter().zip(y).enumerate() {
                compare_json(&format!("{path}[{index}]"), x, y);
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: keys differ");
            for (key, x) in x {
                compare_json(&format!("{path}.{key}"), x, &y[key]);
            }
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

const ALPHA: f64 = 0.05;

fn goal_at(threshold: f64) -> Goal {
    Goal {
        metric: "val_accuracy".into(),
        threshold,
        direction: Direction::Maximize,
    }
}

/// The rate of "achieved" over `sessions`, each drawing seeds from N(target, sd) until the
/// rounds of `rounds` decide; `looks` is the Bonferroni factor the decision uses.
fn false_success_rate(rng: &mut StdRng, sessions: usize, rounds: &SeedRounds, looks: u32) -> f64 {
    let target = 0.9;
    let noise = Normal::new(target, 0.02).expect("a normal distribution");
    let mut successes = 0;
    for _ in 0..sessions {
        let mut values = Vec::new();
        for round in rounds.rounds() {
            values.extend(round.iter().map(|_| noise.sample(rng)));
            let verdict = decide(&values, &goal_at(target), 1.0 - ALPHA, looks);
            if verdict.decision != GoalDecision::Undecided {
                successes += usize::from(verdict.decision == GoalDecision::Achieved);
                break;
            }
        }
    }
    successes as f64 / sessions as f64
}

/// α plus three Monte-Carlo standard errors: the simulation's own noise, not slack in the test.
fn bound(sessions: usize) -> f64 {
    ALPHA + 3.0 * (ALPHA * (1.0 - ALPHA) / sessions as f64).sqrt()
}

#[test]
fn false_success_rate_stays_at_alpha_with_fixed_and_adaptive_seeds() {
    let mut rng = StdRng::seed_from_u64(20261127);
    let sessions = 20_000;
    let fixed = SeedRounds {
        first: (0..5).collect(),
        more: Vec::new(),
        step: 1,
    };
    let rate = false_success_rate(&mut rng, sessions, &fixed, fixed.looks());
    println!(
        "fixed 5 seeds: false 'achieved' rate {rate:.4} over {sessions} sessions (α = {ALPHA})"
    );
    assert!(rate <= bound(sessions), "fixed seeds: {rate} > α");
    assert!(
        rate > 0.02,
        "the simulation should come close to α, got {rate}"
    );

    let adaptive = SeedRounds {
        first: (0..3).collect(),
        more: (3..10).collect(),
        step: 2,
    };
    let rate = false_success_rate(&mut rng, sessions, &adaptive, adaptive.looks());
    println!(
        "adaptive 3→10 seeds ({} looks): false 'achieved' rate {rate:.4}",
        adaptive.looks()
    );
    assert!(rate <= bound(sessions), "adaptive seeding: {rate} > α");
    // Testing every look at the full α would not be safe: the check above can fail.
    let naive = false_success_rate(&mut rng, sessions, &adaptive, 1);
    println!("adaptive without the looks correction: {naive:.4}");
    assert!(
        naive > bound(sessions),
        "the uncorrected rate {naive} should exceed α"
    );
}

#[test]
fn holm_keeps_the_family_wise_rate_across_twenty_candidates() {
    let mut rng = StdRng::seed_from_u64(7);
    let sessions = 5_000;
    let candidates = 20;
    let target = 0.9;
    let noise = Normal::new(target, 0.02).expect("a normal distribution");
    let (mut corrected, mut uncorrected) = (0, 0);
    for _ in 0..sessions {
        let p_values: Vec<f64> = (0..candidates)
            .map(|_| {
                let values: Vec<f64> = (0..5).map(|_| noise.sample(&mut rng)).collect();
                decide(&values, &goal_at(target), 1.0 - ALPHA, 1).p_value
            })
            .collect();
        uncorrected += usize::from(p_values.iter().any(|p| *p < ALPHA));
        corrected += usize::from(stats::holm(&p_values).iter().any(|p| *p < ALPHA));
    }
    let corrected = corrected as f64 / sessions as f64;
    let uncorrected = uncorrected as f64 / sessions as f64;
    println!(
        "20 null candidates: family-wise false success {corrected:.4} with Holm, {uncorrected:.4} without"
    );
    assert!(corrected <= bound(sessions), "Holm: {corrected} > α");
    assert!(
        uncorrected > 0.5,
        "without correction the rate should be near 1 − 0.95^20 ≈ 0.64"
    );
}
