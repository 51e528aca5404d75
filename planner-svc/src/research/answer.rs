//! The answer to an open-ended goal ("lowest validation loss", "best accuracy"): when the
//! budget is spent, the best candidate found, its confidence interval, and whether it is
//! significantly better than the baseline (the session's first candidate) and than the
//! runner-up — each a Welch test from evaluator-svc's Compare, the two Holm-adjusted
//! together — in words, recorded as the session's `stop_completed` decision.

use super::*;

/// One comparison of the best candidate with another.
#[derive(Debug, Clone, PartialEq)]
pub struct Versus {
    /// "the baseline" or "the runner-up".
    pub role: &'static str,
    pub name: String,
    pub id: String,
    pub mean_difference: f64,
    pub p_value: f64,
    pub adjusted_p_value: f64,
    /// The best is significantly better (Holm-adjusted, in the goal's direction).
    pub significant: bool,
}

/// Holm–Bonferroni adjusted p-values, in the input's order.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p_values[*a].total_cmp(&p_values[*b]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, index) in order.into_iter().enumerate() {
        let value = ((m - rank) as f64 * p_values[index]).min(1.0);
        running = running.max(value);
        adjusted[index] = running;
    }
    adjusted
}

impl Research {
    pub(super) fn open_ended(&self) -> bool {
        self.goal.target.as_ref().is_some_and(|t| t.open_ended)
    }

    /// The end of an open-ended session whose budget is spent: `Completed` with the best
    /// candidate, or `Exhausted` when no candidate produced a result.
    pub(super) async fn answer(&mut self, reason: String) -> End {
        // The candidates with a result, best first (the leaderboard's order).
        let scored: Vec<&CandidateRecord> = self
            .leaderboard()
            .iter()
            .filter_map(|e| self.candidates.iter().find(|c| c.id == e.candidate_id))
            .filter(|c| c.score().is_some())
            .collect();
        let Some(&best_record) = scored.first() else {
            return End::Exhausted(format!("{reason}; no candidate produced a result"));
        };
        let baseline = self
            .candidates
            .iter()
            .find(|c| c.score().is_some())
            .filter(|c| c.id != best_record.id);
        let runner_up = scored
            .get(1)
            .copied()
            .filter(|c| baseline.is_none_or(|b| b.id != c.id));
        let mut others: Vec<(&'static str, &CandidateRecord)> = Vec::new();
        if let Some(baseline) = baseline {
            others.push(("the baseline", baseline));
        }
        if let Some(runner_up) = runner_up {
            others.push(("the runner-up", runner_up));
        }
        let mut comparisons = Vec::new();
        for (role, other) in &others {
            match self.compare(best_record, other).await {
                Ok(comparison) => comparisons.push((*role, *other, comparison)),
                Err(status) => tracing::warn!(
                    error = %status.message(),
                    "could not compare the best candidate with {role}"
                ),
            }
        }
        let adjusted = holm(
            &comparisons
                .iter()
                .map(|(_, _, c)| c.p_value)
                .collect::<Vec<_>>(),
        );
        let versus: Vec<Versus> = comparisons
            .iter()
            .zip(adjusted)
            .map(|((role, other, comparison), adjusted_p_value)| Versus {
                role,
                name: other.name.clone(),
                id: other.id.clone(),
                mean_difference: comparison.mean_difference,
                p_value: comparison.p_value,
                adjusted_p_value,
                significant: comparison.better == "a"
                    && adjusted_p_value < 1.0 - self.goal.confidence,
            })
            .collect();
        let message = self.answer_in_words(best_record, &versus, &reason);
        let best_id = best_record.id.clone();
        let inputs = json!({
            "best_candidate_id": best_id,
            "aggregate": best_record.aggregate.as_ref().map(|a| json!({
                "metric": a.metric, "n": a.n, "mean": a.mean,
                "ci_low": a.ci_low, "ci_high": a.ci_high, "confidence": a.confidence,
            })),
            "comparisons": versus.iter().map(|v| json!({
                "role": v.role, "candidate_id": v.id, "mean_difference": v.mean_difference,
                "p_value": v.p_value, "holm_p_value": v.adjusted_p_value,
                "significant": v.significant,
            })).collect::<Vec<_>>(),
            "budget": reason,
        });
        self.best_candidate_id = best_id.clone();
        if let Err(end) = self
            .decide("stop_completed", message.clone(), inputs, &best_id)
            .await
        {
            tracing::warn!(?end, "could not record the session's answer");
        }
        End::Completed(message)
    }

    async fn compare(
        &self,
        a: &CandidateRecord,
        b: &CandidateRecord,
    ) -> Result<ev::Comparison, Status> {
        let request = ev::CompareRequest {
            evaluation_a: a.evaluation_id.clone(),
            evaluation_b: b.evaluation_id.clone(),
            confidence: self.goal.confidence,
        };
        self.clients
            .evaluator
            .run(|mut client| {
                let request = request.clone();
                async move { client.compare(request).await }
            })
            .await
            .map(tonic::Response::into_inner)
    }

    fn answer_in_words(&self, best: &CandidateRecord, versus: &[Versus], reason: &str) -> String {
        let mut words = match &best.aggregate {
            Some(a) => format!(
                "best found: {} ({}) with {} {:.4}, {:.0}% CI [{:.4}, {:.4}] over {} seeds",
                best.name,
                best.id,
                a.metric,
                a.mean,
                a.confidence * 100.0,
                a.ci_low,
                a.ci_high,
                a.n
            ),
            None => format!("best found: {} ({})", best.name, best.id),
        };
        if versus.is_empty() {
            words.push_str(
                "; it is the only candidate with a result, so nothing to compare it with",
            );
        } else if !versus.iter().any(|v| v.role == "the baseline") {
            words.push_str("; it is the baseline itself (the session's first candidate)");
        }
        for v in versus {
            words.push_str(&format!(
                "; {} than {} {} ({:+.4}, Welch p = {:.3}, Holm-adjusted {:.3})",
                if v.significant {
                    "significantly better"
                } else {
                    "not significantly better"
                },
                v.role,
                v.name,
                v.mean_difference,
                v.p_value,
                v.adjusted_p_value
            ));
        }
        format!("{words} ({reason})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_adjusts_in_order_and_caps_at_one() {
        assert_eq!(holm(&[0.01, 0.04]), vec![0.02, 0.04]);
        assert_eq!(holm(&[0.04, 0.01]), vec![0.04, 0.02]);
        assert_eq!(holm(&[0.6, 0.7]), vec![1.0, 1.0]);
        assert!(holm(&[]).is_empty());
        // Monotone: a larger raw p never gets a smaller adjusted one.
        let adjusted = holm(&[0.03, 0.02, 0.5]);
        assert_eq!(adjusted, vec![0.06, 0.06, 0.5]);
    }
}
