//! Resuming a session from the registry: its candidates, evaluations and decisions read back
//! into history, the seeds already used, the seeds a half-evaluated candidate still needs, and
//! waiting for an evaluation the evaluator is still winding down.

use super::*;

impl Research {
    /// Reads the session's candidates, evaluations, decisions and trials from the registry.
    pub(super) async fn load_history(&mut self) -> Result<(), End> {
        let records = &self.clients.records;
        let id = self.handle.id.clone();
        let candidates = records
            .candidates(&id)
            .await
            .map_err(|s| session_error("reading the session's candidates", &s))?;
        let evaluations = records
            .registry
            .evaluations(&id)
            .await
            .map_err(|s| session_error("reading the session's evaluations", &s))?;
        let decisions = records
            .decisions(&id)
            .await
            .map_err(|s| session_error("reading the session's decisions", &s))?;
        let mut latest: HashMap<String, reg::Evaluation> = HashMap::new();
        for evaluation in evaluations {
            match latest.get(&evaluation.candidate_id) {
                Some(kept) if kept.id > evaluation.id => {}
                _ => {
                    latest.insert(evaluation.candidate_id.clone(), evaluation);
                }
            }
        }
        // Candidates set aside without an evaluation: refused by the sandbox, or whose
        // evaluation was refused; they are history, not interrupted work.
        let rejected: HashMap<String, String> = decisions
            .into_iter()
            .filter(|d| d.action == "reject" || d.action == "evaluation_failed")
            .map(|d| (d.candidate_id, d.reasoning))
            .collect();
        self.candidates = candidates
            .into_iter()
            .filter_map(|candidate| {
                let model = ModelSpec::try_from(candidate.model.as_ref()?).ok()?;
                let train = TrainSpec::try_from(candidate.train.as_ref()?).ok()?;
                let mut record = CandidateRecord {
                    id: candidate.id.clone(),
                    name: model.name.clone(),
                    model,
                    train,
                    strategy: candidate.strategy,
                    rationale: candidate.rationale,
                    evaluation_id: String::new(),
                    aggregate: None,
                    p_value: 1.0,
                    decision: common::GoalDecision::Undecided,
                    explanation: String::new(),
                    failure: Some(INTERRUPTED.into()),
                    adjusted_p_value: 1.0,
                    improving: false,
                };
                if let Some(evaluation) = latest.get(&candidate.id) {
                    apply_evaluation(&mut record, evaluation);
                } else if let Some(reason) = rejected.get(&candidate.id) {
                    record.failure = Some(reason.clone());
                }
                Some(record)
            })
            .collect();
        self.refresh_seeds_used().await?;
        Ok(())
    }

    pub(super) async fn refresh_seeds_used(&mut self) -> Result<(), End> {
        let trials = self
            .clients
            .records
            .registry
            .trials(&self.handle.id, "")
            .await
            .map_err(|s| session_error("reading the session's trials", &s))?;
        self.seeds_used = trials.len() as u32;
        let seeds_used = self.seeds_used;
        let evaluated = self
            .candidates
            .iter()
            .filter(|c| !c.evaluation_id.is_empty())
            .count() as u32;
        self.handle.update_status(|status| {
            status.seeds_used = seeds_used;
            status.candidates_evaluated = evaluated;
        });
        Ok(())
    }

    /// Seeds of an interrupted candidate: those that finished or are still running (reused
    /// and adopted by the evaluator), topped up with seeds it never used.
    pub(super) async fn resumed_seeds(&self, candidate_id: &str) -> Result<Vec<u64>, End> {
        let trials = self
            .clients
            .records
            .registry
            .trials("", candidate_id)
            .await
            .map_err(|s| session_error("reading the candidate's trials", &s))?;
        let usable = |state: i32| {
            [
                common::TrialState::Succeeded,
                common::TrialState::Pending,
                common::TrialState::Running,
            ]
            .iter()
            .any(|s| *s as i32 == state)
        };
        let mut seeds: Vec<u64> = trials
            .iter()
            .filter(|t| usable(t.state))
            .map(|t| t.seed)
            .collect();
        let taken: Vec<u64> = trials.iter().map(|t| t.seed).collect();
        let mut next = 0;
        while seeds.len() < self.goal.num_seeds as usize {
            if !taken.contains(&next) {
                seeds.push(next);
            }
            next += 1;
        }
        seeds.sort_unstable();
        Ok(seeds)
    }

    /// Waits (up to 20 s) until no trial of the candidate is pending or running: the
    /// evaluator records the cancelled ones after the caller went away.
    pub(super) async fn settle(&self, candidate_id: &str) {
        let registry = &self.clients.records.registry;
        for _ in 0..80 {
            let open = match registry.trials("", candidate_id).await {
                Ok(trials) => trials.iter().any(|t| {
                    matches!(
                        t.state(),
                        common::TrialState::Pending | common::TrialState::Running
                    )
                }),
                Err(_) => false,
            };
            if !open {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tracing::warn!(candidate = %candidate_id, "trials still open 20 s after the evaluation was stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[tokio::test]
    async fn an_unreachable_registry_leaves_the_session_resumable() {
        let mut research = fixture::research(fixture::goal(common::Direction::Maximize));
        match research.load_history().await {
            Err(End::Failed { message, resumable }) => {
                assert!(resumable, "{message}");
                assert!(
                    message.contains("registry-svc at http://127.0.0.1:"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(research.candidates.is_empty(), "nothing half-loaded");
    }
}
