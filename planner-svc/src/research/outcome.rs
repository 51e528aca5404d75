//! What a session concludes and reports: the Holm–Bonferroni assessment, the decisions
//! recorded, the leaderboard and status, the budget check, and the end — the experiment's
//! final status, summary and report.

use super::*;

impl Research {
    /// AssessExperiment (Holm–Bonferroni across the session's candidates), applied to the
    /// candidates' adjusted p-values; nothing is recorded.
    pub(super) async fn fetch_assessment(
        &mut self,
    ) -> Result<ev::ExperimentAssessment, PlannerError> {
        let request = ev::AssessExperimentRequest {
            experiment_id: self.handle.id.clone(),
            confidence: self.goal.confidence,
        };
        let assessment = self
            .clients
            .evaluator
            .run(|mut client| {
                let request = request.clone();
                async move { client.assess_experiment(request).await }
            })
            .await?
            .into_inner();
        for assessed in &assessment.candidates {
            if let Some(record) = self
                .candidates
                .iter_mut()
                .find(|c| c.id == assessed.candidate_id)
            {
                record.adjusted_p_value = assessed.adjusted_p_value;
            }
        }
        // An open-ended goal has nothing to achieve: its answer comes when the budget is spent.
        self.any_achieved = assessment.any_achieved && !self.open_ended();
        self.best_candidate_id = assessment.best_candidate_id.clone();
        Ok(assessment)
    }

    /// The session's records and assessment for a status, read-only.
    pub async fn load_for_status(&mut self) -> Result<(), PlannerError> {
        self.load_history().await.map_err(|end| match end {
            End::Failed { message, .. } => PlannerError::Unavailable(message),
            other => PlannerError::Internal(format!("{other:?}")),
        })?;
        if !self.candidates.is_empty() {
            self.fetch_assessment().await?;
        }
        Ok(())
    }

    /// Decides after an evaluation: stop on success, else continue; recorded and announced.
    pub(super) async fn assess(&mut self) -> Result<(), End> {
        let assessment = self
            .fetch_assessment()
            .await
            .map_err(|e| session_error("assessing the session's candidates", &e.into_status()))?;
        let leaderboard = self.leaderboard();
        let explanation = if self.open_ended() {
            match leaderboard
                .first()
                .and_then(|e| e.aggregate.as_ref().map(|a| (e, a)))
            {
                Some((entry, a)) => format!(
                    "Open-ended goal: the best so far is {} with {} {:.4} (CI [{:.4}, {:.4}]).",
                    entry.name, a.metric, a.mean, a.ci_low, a.ci_high
                ),
                None => "Open-ended goal: no result yet.".to_owned(),
            }
        } else {
            assessment.explanation.clone()
        };
        self.handle.update_status(|s| s.leaderboard = leaderboard);
        let (action, reasoning) = if self.any_achieved {
            ("stop_success", explanation)
        } else {
            (
                "continue",
                format!(
                    "{} {}",
                    explanation,
                    self.budget_spent()
                        .map_or("Budget left: propose another candidate.".to_owned(), |b| {
                            format!("But the {b}.")
                        })
                ),
            )
        };
        let decision = self
            .decide(
                action,
                reasoning.clone(),
                json!({
                    "candidates": assessment.candidates.len(),
                    "best_candidate_id": assessment.best_candidate_id,
                    "any_achieved": assessment.any_achieved,
                }),
                &assessment.best_candidate_id,
            )
            .await?;
        self.handle
            .emit(pb::research_event::Event::Decision(pb::DecisionMade {
                decision_id: decision.id,
                action: action.into(),
                reasoning,
            }));
        Ok(())
    }

    /// The session's wall time so far, kept in the experiment's labels for a resume.
    pub(super) async fn record_progress(&self) -> Result<(), End> {
        self.clients
            .records
            .update_experiment(
                self.id(),
                None,
                None,
                HashMap::from([(
                    "elapsed_seconds".to_owned(),
                    format!("{:.1}", self.elapsed()),
                )]),
            )
            .await
            .map_err(|s| session_error("recording progress", &s))?;
        Ok(())
    }

    pub(super) async fn decide(
        &self,
        action: &str,
        reasoning: String,
        inputs: serde_json::Value,
        candidate_id: &str,
    ) -> Result<reg::Decision, End> {
        self.clients
            .records
            .decide(self.id(), action, reasoning, inputs, candidate_id)
            .await
            .map_err(|s| session_error(&format!("recording the decision {action:?}"), &s))
    }

    /// Candidates with a result, best first in the goal's direction; failures last.
    pub fn leaderboard(&self) -> Vec<pb::LeaderboardEntry> {
        let mut ranked: Vec<&CandidateRecord> = self.candidates.iter().collect();
        let sign = if maximize(&self.goal) { -1.0 } else { 1.0 };
        ranked.sort_by(|a, b| {
            let key = |c: &CandidateRecord| c.score().map_or(f64::INFINITY, |s| sign * s);
            key(a).total_cmp(&key(b))
        });
        ranked
            .into_iter()
            .enumerate()
            .map(|(rank, c)| pb::LeaderboardEntry {
                rank: rank as u32 + 1,
                candidate_id: c.id.clone(),
                name: c.name.clone(),
                aggregate: c.aggregate.clone(),
                decision: c.decision as i32,
                p_value: c.p_value,
                adjusted_p_value: c.adjusted_p_value,
            })
            .collect()
    }

    /// The status as it stands, in `state`, with `message`.
    pub fn status(&self, state: pb::ResearchState, message: String) -> pb::ResearchStatus {
        let mut status = self.handle.status();
        status.state = state as i32;
        status.goal = Some(self.goal.clone());
        status.candidates_evaluated = self
            .candidates
            .iter()
            .filter(|c| !c.evaluation_id.is_empty())
            .count() as u32;
        status.seeds_used = self.seeds_used;
        status.elapsed_seconds = self.elapsed();
        status.leaderboard = self.leaderboard();
        status.message = message;
        status
    }

    pub(super) async fn finish(mut self, end: End) {
        let (state, registry_status, message) = match &end {
            End::Succeeded(m) => (
                pb::ResearchState::Succeeded,
                reg::ExperimentStatus::Succeeded,
                m.clone(),
            ),
            End::Exhausted(m) => (
                pb::ResearchState::Exhausted,
                reg::ExperimentStatus::Exhausted,
                format!("goal not achieved: {m}"),
            ),
            End::Completed(m) => (
                pb::ResearchState::Completed,
                reg::ExperimentStatus::Completed,
                m.clone(),
            ),
            End::Paused(m) => (
                pb::ResearchState::Paused,
                reg::ExperimentStatus::Paused,
                format!(
                    "{m}; resume with ResumeResearch (research-agent resume {})",
                    self.id()
                ),
            ),
            End::Failed { message, resumable } => (
                pb::ResearchState::Failed,
                if *resumable {
                    reg::ExperimentStatus::Paused
                } else {
                    reg::ExperimentStatus::Failed
                },
                if *resumable {
                    format!(
                        "failed: {message}; resume with ResumeResearch (research-agent resume {}) once the cause is fixed",
                        self.id()
                    )
                } else {
                    format!("failed: {message}")
                },
            ),
        };
        tracing::info!(research = %self.id(), ?state, %message, "research session ended");
        // The decision log gets the end, then the report is written from the registry.
        let action = match &end {
            End::Succeeded(_) => "stop_success",
            End::Exhausted(_) => "stop_budget",
            End::Completed(_) => "stop_completed",
            End::Paused(_) => "stop_paused",
            End::Failed { .. } => "stop_failed",
        };
        // Success and an open-ended answer recorded their own decisions already.
        if !matches!(end, End::Succeeded(_) | End::Completed(_))
            && let Err(error) = self
                .decide(
                    action,
                    message.clone(),
                    json!({"elapsed_seconds": self.elapsed()}),
                    "",
                )
                .await
        {
            tracing::warn!(?error, "could not record the session's end");
        }
        let mut status = self.status(state, message.clone());
        match report::write(&self, &status).await {
            Ok(path) => {
                status.report_path = path.display().to_string();
            }
            Err(error) => {
                tracing::warn!(%error, "could not write the report");
                status.message = format!("{message} (report not written: {error})");
            }
        }
        let labels = HashMap::from([
            (
                "elapsed_seconds".to_owned(),
                format!("{:.1}", self.elapsed()),
            ),
            ("report_path".to_owned(), status.report_path.clone()),
        ]);
        if let Err(error) = self
            .clients
            .records
            .update_experiment(
                self.id(),
                Some(registry_status),
                Some(crate::records::clip_bytes(status.message.clone(), 60_000)),
                labels,
            )
            .await
        {
            tracing::warn!(error = %error.message(), "could not record the session's status");
            status.message = format!(
                "{} (the registry could not record the end: {})",
                status.message,
                error.message()
            );
        }
        self.dataset = None;
        self.handle
            .emit(pb::research_event::Event::Finished(status));
    }

    pub(super) fn paused(&self) -> End {
        let reason = self.handle.stop_reason();
        End::Paused(if reason.is_empty() {
            "stopped on request".into()
        } else {
            format!("stopped: {reason}")
        })
    }

    pub(super) fn success(&self) -> End {
        let best = self
            .candidates
            .iter()
            .find(|c| c.id == self.best_candidate_id);
        End::Succeeded(match best {
            Some(best) => format!(
                "goal achieved by {} ({}): {}",
                best.name, best.id, best.explanation
            ),
            None => "goal achieved".into(),
        })
    }

    /// Why the budget is spent, if it is.
    pub(super) fn budget_spent(&self) -> Option<String> {
        let budget = self.budget();
        if self.candidates.len() as u32 >= budget.max_candidates {
            return Some(format!(
                "candidate budget spent: {} of {} candidates proposed",
                self.candidates.len(),
                budget.max_candidates
            ));
        }
        let remaining = budget.max_total_seeds.saturating_sub(self.seeds_used);
        if remaining < self.goal.num_seeds {
            return Some(format!(
                "seed budget spent: {} of {} seeds used, fewer than the {} a candidate needs",
                self.seeds_used, budget.max_total_seeds, self.goal.num_seeds
            ));
        }
        let elapsed = self.elapsed();
        if elapsed >= budget.max_wall_seconds as f64 {
            return Some(format!(
                "wall-time budget spent: {elapsed:.0} s of {} s",
                budget.max_wall_seconds
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[tokio::test]
    async fn the_leaderboard_ranks_by_the_goal_direction_with_unscored_last() {
        for (direction, order) in [
            (common::Direction::Maximize, ["high", "low", "none"]),
            (common::Direction::Minimize, ["low", "high", "none"]),
        ] {
            let mut research = fixture::research(fixture::goal(direction));
            research.candidates = vec![
                fixture::candidate("none", None),
                fixture::candidate("low", Some(0.2)),
                fixture::candidate("high", Some(0.9)),
            ];
            let board = research.leaderboard();
            let names: Vec<&str> = board.iter().map(|e| e.name.as_str()).collect();
            assert_eq!(names, order, "{direction:?}");
            assert_eq!(board.iter().map(|e| e.rank).collect::<Vec<_>>(), [1, 2, 3]);
        }
    }

    #[tokio::test]
    async fn budgets_are_spent_by_candidates_seeds_or_wall_time() {
        let mut research = fixture::research(fixture::goal(common::Direction::Maximize));
        assert_eq!(research.budget_spent(), None);
        research.seeds_used = 8;
        let seeds = research.budget_spent().expect("seed budget");
        assert!(seeds.starts_with("seed budget spent: 8 of 10"), "{seeds}");
        research.seeds_used = 0;
        research.elapsed_before = 3_600.0;
        let wall = research.budget_spent().expect("wall budget");
        assert!(wall.starts_with("wall-time budget spent"), "{wall}");
        research.elapsed_before = 0.0;
        research.candidates = (0..3)
            .map(|i| fixture::candidate(&format!("c{i}"), None))
            .collect();
        let candidates = research.budget_spent().expect("candidate budget");
        assert!(
            candidates.starts_with("candidate budget spent: 3 of 3"),
            "{candidates}"
        );
    }
}
