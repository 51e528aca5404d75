//! The statistics of seeds, as plain functions over `f64` slices (no gRPC types): summaries,
//! Student-t confidence intervals, the one-sample t-test, Welch's t-test with Hedges' g, and
//! the Holm–Bonferroni adjustment. Every formula is checked against SciPy by
//! `tests/tests/evaluator_statistics.rs` (cases produced by `scipy/make_table.py`).
//!
//! Undefined quantities are NaN, never a made-up number: the spread of one value, an interval
//! or a test from fewer than two values.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean, spread and range of the values of one metric over seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); NaN for n < 2.
    pub std_dev: f64,
    pub min: f64,
    pub max: f64,
    /// std_dev / √n; NaN for n < 2.
    pub std_error: f64,
}

impl Summary {
    /// The summary of `values` (NaN mean for an empty slice).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Self {
                n,
                mean: f64::NAN,
                std_dev: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
                std_error: f64::NAN,
            };
        }
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // Identical values have exactly zero spread (summing them may not give the value back).
        let mean = if min == max {
            min
        } else {
            values.iter().sum::<f64>() / n as f64
        };
        // Two passes: the textbook one-pass formula loses digits when the spread is small
        // compared with the mean (accuracies of 0.951, 0.952, …).
        let (std_dev, std_error) = if n < 2 {
            (f64::NAN, f64::NAN)
        } else {
            let squares: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
            let std_dev = (squares / (n - 1) as f64).sqrt();
            (std_dev, std_dev / (n as f64).sqrt())
        };
        Self {
            n,
            mean,
            std_dev,
            min,
            max,
            std_error,
        }
    }

    /// Degrees of freedom of the one-sample t statistic.
    pub fn degrees_of_freedom(&self) -> f64 {
        self.n as f64 - 1.0
    }

    /// Whether every value is the same (a spread of exactly zero over at least two values).
    pub fn zero_spread(&self) -> bool {
        self.n >= 2 && self.std_dev == 0.0
    }
}

/// A closed interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    const UNDEFINED: Self = Self {
        low: f64::NAN,
        high: f64::NAN,
    };
}

/// The standard Student t distribution with `df` degrees of freedom (df > 0).
fn student(df: f64) -> Option<StudentsT> {
    StudentsT::new(0.0, 1.0, df).ok()
}

/// The two-sided quantile t such that P(|T| ≤ t) = confidence.
fn two_sided_quantile(df: f64, confidence: f64) -> f64 {
    student(df).map_or(f64::NAN, |t| t.inverse_cdf(0.5 + confidence / 2.0))
}

/// Two-sided Student-t confidence interval of the mean at `confidence` (in (0, 1)).
/// Undefined (NaN) for n < 2; a single point when every value is the same.
pub fn mean_interval(summary: &Summary, confidence: f64) -> Interval {
    if summary.n < 2 {
        return Interval::UNDEFINED;
    }
    if summary.zero_spread() {
        return Interval {
            low: summary.mean,
            high: summary.mean,
        };
    }
    let half = two_sided_quantile(summary.degrees_of_freedom(), confidence) * summary.std_error;
    Interval {
        low: summary.mean - half,
        high: summary.mean + half,
    }
}

/// A one-sample t-test of "the mean is greater than `threshold`".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneSampleTest {
    /// (mean − threshold) / standard error; ±∞ with zero spread.
    pub t: f64,
    pub df: f64,
    /// P(T ≥ t) under "mean = threshold": small when the mean is clearly above.
    pub p_greater: f64,
    /// P(T ≤ t): small when the mean is clearly below.
    pub p_less: f64,
}

/// The one-sample t-test against `threshold`; `None` for n < 2 (no spread to test with).
///
/// With zero spread the t statistic is infinite and the p-values are 0 or 1 (1 and 1 when
/// the mean equals the threshold): the test degenerates to comparing the mean itself.
pub fn one_sample(summary: &Summary, threshold: f64) -> Option<OneSampleTest> {
    if summary.n < 2 {
        return None;
    }
    let df = summary.degrees_of_freedom();
    let difference = summary.mean - threshold;
    if summary.zero_spread() {
        let (t, p_greater, p_less) = match difference.partial_cmp(&0.0) {
            Some(std::cmp::Ordering::Greater) => (f64::INFINITY, 0.0, 1.0),
            Some(std::cmp::Ordering::Less) => (f64::NEG_INFINITY, 1.0, 0.0),
            _ => (f64::NAN, 1.0, 1.0),
        };
        return Some(OneSampleTest {
            t,
            df,
            p_greater,
            p_less,
        });
    }
    let t = difference / summary.std_error;
    let distribution = student(df)?;
    Some(OneSampleTest {
        t,
        df,
        p_greater: distribution.sf(t),
        p_less: distribution.cdf(t),
    })
}

/// Welch's two-sample t-test of mean(a) − mean(b), with Hedges' g.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WelchTest {
    pub difference: f64,
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p_two_sided: f64,
    /// Confidence interval of the difference at the requested level.
    pub interval: Interval,
    /// Cohen's d on the pooled standard deviation times the small-sample correction
    /// J = 1 − 3 / (4 (n_a + n_b) − 9).
    pub hedges_g: f64,
}

/// Why two groups cannot be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompareError {
    #[error("group {group} has {n} value(s); Welch's t-test needs at least two per group")]
    TooFew { group: &'static str, n: usize },
}

/// Welch's t-test of a against b at `confidence`.
///
/// When both groups have zero spread the test degenerates: t is ±∞ (p = 0) when the means
/// differ and NaN (p = 1) when they are equal; the interval is the difference itself.
pub fn welch(a: &Summary, b: &Summary, confidence: f64) -> Result<WelchTest, CompareError> {
    for (group, summary) in [("a", a), ("b", b)] {
        if summary.n < 2 {
            return Err(CompareError::TooFew {
                group,
                n: summary.n,
            });
        }
    }
    let difference = a.mean - b.mean;
    let (na, nb) = (a.n as f64, b.n as f64);
    let (va, vb) = (a.std_dev * a.std_dev / na, b.std_dev * b.std_dev / nb);
    let pooled = (((na - 1.0) * a.std_dev * a.std_dev + (nb - 1.0) * b.std_dev * b.std_dev)
        / (na + nb - 2.0))
        .sqrt();
    let correction = 1.0 - 3.0 / (4.0 * (na + nb) - 9.0);
    let hedges_g = if pooled == 0.0 {
        if difference == 0.0 {
            0.0
        } else {
            difference.signum() * f64::INFINITY
        }
    } else {
        difference / pooled * correction
    };
    let standard_error = (va + vb).sqrt();
    if standard_error == 0.0 {
        let (t, p) = if difference == 0.0 {
            (f64::NAN, 1.0)
        } else {
            (difference.signum() * f64::INFINITY, 0.0)
        };
        return Ok(WelchTest {
            difference,
            t,
            df: na + nb - 2.0,
            p_two_sided: p,
            interval: Interval {
                low: difference,
                high: difference,
            },
            hedges_g,
        });
    }
    let df = (va + vb).powi(2) / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    let t = difference / standard_error;
    let (p_two_sided, half) = match student(df) {
        Some(distribution) => (
            (2.0 * distribution.sf(t.abs())).min(1.0),
            distribution.inverse_cdf(0.5 + confidence / 2.0) * standard_error,
        ),
        None => (f64::NAN, f64::NAN),
    };
    Ok(WelchTest {
        difference,
        t,
        df,
        p_two_sided,
        interval: Interval {
            low: difference - half,
            high: difference + half,
        },
        hedges_g,
    })
}

/// Holm–Bonferroni adjusted p-values, in the order given: sorted ascending, the i-th smallest
/// (0-based) becomes max over j ≤ i of min(1, (m − j) · p_(j)). Rejecting where the adjusted
/// value is below α keeps the family-wise error rate at or below α.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p_values[i].total_cmp(&p_values[j]));
    let mut adjusted = vec![0.0; m];
    let mut running_max: f64 = 0.0;
    for (rank, &index) in order.iter().enumerate() {
        let scaled = ((m - rank) as f64 * p_values[index]).min(1.0);
        running_max = running_max.max(scaled);
        adjusted[index] = running_max;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_values() {
        let summary = Summary::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(summary.n, 8);
        assert!((summary.mean - 5.0).abs() < 1e-12);
        assert!((summary.std_dev - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!((summary.min, summary.max), (2.0, 9.0));
    }

    #[test]
    fn one_value_has_no_spread_interval_or_test() {
        let summary = Summary::of(&[0.9]);
        assert!(summary.std_dev.is_nan() && summary.std_error.is_nan());
        let interval = mean_interval(&summary, 0.95);
        assert!(interval.low.is_nan() && interval.high.is_nan());
        assert!(one_sample(&summary, 0.5).is_none());
    }

    #[test]
    fn zero_spread_degenerates_honestly() {
        let summary = Summary::of(&[0.8, 0.8, 0.8]);
        assert_eq!(mean_interval(&summary, 0.95).low, 0.8);
        let above = one_sample(&summary, 0.7).expect("n = 3");
        assert_eq!((above.p_greater, above.p_less), (0.0, 1.0));
        let equal = one_sample(&summary, 0.8).expect("n = 3");
        assert!(equal.t.is_nan());
        assert_eq!((equal.p_greater, equal.p_less), (1.0, 1.0));
    }

    #[test]
    fn holm_is_monotone_and_capped() {
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.5]);
        assert!((adjusted[0] - 0.04).abs() < 1e-12);
        assert!((adjusted[2] - 0.09).abs() < 1e-12);
        assert!((adjusted[1] - 0.09).abs() < 1e-12);
        assert!((adjusted[3] - 0.5).abs() < 1e-12);
        assert_eq!(holm(&[0.9, 0.8]), vec![1.0, 1.0]);
    }

    #[test]
    fn welch_needs_two_per_group() {
        let one = Summary::of(&[1.0]);
        let two = Summary::of(&[1.0, 2.0]);
        assert!(matches!(
            welch(&one, &two, 0.95),
            Err(CompareError::TooFew { group: "a", n: 1 })
        ));
    }
}
