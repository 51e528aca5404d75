//! What people ask of a running session, applied by its loop between candidates: a candidate
//! a person injected (proposed before the strategy's next one, recorded with who proposed it)
//! and a new budget (recorded as a decision and kept in the experiment's
//! [`BUDGET_LABEL`], so a resumed session keeps it).

use ra_client::goal::{BUDGET_LABEL, budget_label};

use super::*;
use crate::session::{BudgetChange, Injection};

impl Research {
    /// Records a person's candidate as the session's next one (strategy "user").
    pub(super) async fn record_injection(&mut self, injection: Injection) -> Result<usize, End> {
        let rationale = if injection.rationale.trim().is_empty() {
            format!("proposed by {}", injection.proposed_by)
        } else {
            format!(
                "proposed by {}: {}",
                injection.proposed_by, injection.rationale
            )
        };
        let index = self
            .record_candidate(Proposal {
                model: injection.model,
                train: injection.train,
                rationale,
                strategy: "user",
            })
            .await?;
        let candidate_id = self.candidates[index].id.clone();
        let reasoning = format!(
            "{} injected candidate {} into the session",
            injection.proposed_by, self.candidates[index].name
        );
        self.decide(
            "inject",
            reasoning.clone(),
            json!({"proposed_by": injection.proposed_by}),
            &candidate_id,
        )
        .await?;
        self.handle
            .emit(pb::research_event::Event::Decision(pb::DecisionMade {
                decision_id: String::new(),
                action: "inject".into(),
                reasoning,
            }));
        Ok(index)
    }

    /// Applies a budget change left by UpdateBudget, if there is one.
    pub(super) async fn apply_budget_change(&mut self) -> Result<(), End> {
        let Some(BudgetChange {
            budget: change,
            requested_by,
        }) = self.handle.take_budget_change()
        else {
            return Ok(());
        };
        let before = self.budget();
        let pick = |new: u64, old: u64| if new == 0 { old } else { new };
        let after = common::Budget {
            max_candidates: pick(change.max_candidates.into(), before.max_candidates.into())
                .try_into()
                .unwrap_or(before.max_candidates),
            max_total_seeds: pick(change.max_total_seeds.into(), before.max_total_seeds.into())
                .try_into()
                .unwrap_or(before.max_total_seeds),
            max_wall_seconds: pick(change.max_wall_seconds, before.max_wall_seconds),
        };
        self.goal.budget = Some(after);
        self.handle.update_status(|status| {
            if let Some(goal) = status.goal.as_mut() {
                goal.budget = Some(after);
            }
        });
        self.clients
            .records
            .update_experiment(
                self.id(),
                None,
                None,
                HashMap::from([(BUDGET_LABEL.to_owned(), budget_label(&after))]),
            )
            .await
            .map_err(|s| session_error("recording the new budget", &s))?;
        let reasoning = format!(
            "{requested_by} changed the budget: candidates {} → {}, seeds {} → {}, wall time {} s → {} s",
            before.max_candidates,
            after.max_candidates,
            before.max_total_seeds,
            after.max_total_seeds,
            before.max_wall_seconds,
            after.max_wall_seconds
        );
        self.decide(
            "budget",
            reasoning.clone(),
            json!({
                "requested_by": requested_by,
                "before": budget_label(&before),
                "after": budget_label(&after),
            }),
            "",
        )
        .await?;
        self.handle
            .emit(pb::research_event::Event::Decision(pb::DecisionMade {
                decision_id: String::new(),
                action: "budget".into(),
                reasoning,
            }));
        Ok(())
    }
}
