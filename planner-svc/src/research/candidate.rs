//! One candidate's way through a session: the dataset prepared once, the strategy's brief,
//! the proposal recorded with its rationale, ValidateJob in the sandbox, and the evaluation
//! streamed from evaluator-svc with the session's budgets and stop applied while it runs.

use super::*;

impl Research {
    pub(super) async fn prepare_dataset(&mut self) -> Result<(), End> {
        let request = ds::PrepareDatasetRequest {
            name: self.goal.dataset.clone(),
            options: Some(ds::PrepareOptions {
                offline: self.config.offline,
                ..Default::default()
            }),
        };
        let mut client = self.clients.dataset.client();
        let mut stream = client
            .prepare_dataset(request)
            .await
            .map_err(|s| session_error(&format!("preparing dataset {}", self.goal.dataset), &s))?
            .into_inner();
        let mut manifest = None;
        while let Some(event) = stream.next().await {
            let event = event.map_err(|s| {
                session_error(&format!("preparing dataset {}", self.goal.dataset), &s)
            })?;
            if let Some(ds::prepare_dataset_event::Event::Manifest(m)) = event.event {
                manifest = Some(m);
            }
        }
        let manifest = manifest.ok_or_else(|| End::Failed {
            message: format!(
                "dataset-svc ended the preparation of {} without a manifest",
                self.goal.dataset
            ),
            resumable: true,
        })?;
        let input = manifest
            .input
            .as_ref()
            .ok_or("no input")
            .and_then(|i| InputSpec::try_from(i).map_err(|_| "bad input"))
            .map_err(|problem| End::Failed {
                message: format!(
                    "the manifest of {} has {problem} description",
                    manifest.prepared_id
                ),
                resumable: false,
            })?;
        let sizes: Vec<String> = manifest
            .splits
            .iter()
            .map(|s| format!("{} {}", s.name, s.num_samples))
            .collect();
        let mut classes: Vec<&str> = manifest
            .class_names
            .iter()
            .take(12)
            .map(String::as_str)
            .collect();
        if manifest.class_names.len() > 12 {
            classes.push("…");
        }
        let description = format!(
            "{} input, {} classes ({}), samples: {}",
            serde_json::to_string(&input).unwrap_or_default(),
            manifest.class_names.len(),
            classes.join(", "),
            sizes.join(", ")
        );
        let train_samples = manifest
            .splits
            .iter()
            .find(|s| s.name == "train")
            .map_or(0, |s| s.num_samples);
        // Small training sets are cheap per epoch and need more of them: unless the request
        // fixed it, the epoch cap grows to about 20,000 sample-epochs (at most 40 epochs).
        if !self.config.max_epochs_explicit {
            let scaled = crate::space::epochs_for(train_samples, self.config.max_epochs);
            if scaled != self.config.max_epochs {
                tracing::info!(
                    research = %self.handle.id,
                    train_samples,
                    from = self.config.max_epochs,
                    to = scaled,
                    "epoch cap scaled to the training set"
                );
                self.config.max_epochs = scaled;
            }
        }
        self.dataset = Some(DatasetFacts {
            prepared_id: manifest.prepared_id.clone(),
            input,
            num_classes: manifest.class_names.len() as u32,
            description,
            train_samples,
        });
        Ok(())
    }

    pub(super) fn dataset(&self) -> Result<&DatasetFacts, End> {
        self.dataset.as_ref().ok_or_else(|| End::Failed {
            message: "the dataset is not prepared".into(),
            resumable: true,
        })
    }

    pub(super) fn brief(&self, facts: &DatasetFacts) -> Brief {
        let target = self.goal.target.clone().unwrap_or_default();
        let history = self
            .candidates
            .iter()
            .map(|c| {
                let result = c
                    .aggregate
                    .as_ref()
                    .filter(|a| a.n > 0 && c.failure.is_none())
                    .map(|a| (a.mean, a.ci_low, a.ci_high, a.n));
                let outcome = c.failure.clone().unwrap_or_else(|| {
                    format!("{:?} (p = {:.3})", c.decision, c.p_value).to_lowercase()
                });
                crate::llm::PastCandidate {
                    name: c.name.clone(),
                    strategy: c.strategy.clone(),
                    result,
                    outcome: crate::llm::clip(&outcome.replace('\n', " "), 160),
                    ..crate::llm::PastCandidate::new(&c.model, &c.train)
                }
            })
            .collect();
        Brief {
            goal_text: self.goal.text.clone(),
            target: if target.open_ended {
                format!(
                    "{} as {} as possible (open-ended)",
                    target.metric,
                    if maximize(&self.goal) { "high" } else { "low" }
                )
            } else {
                format!(
                    "{} {} {} at {:.0}% confidence",
                    target.metric,
                    if maximize(&self.goal) { ">" } else { "<" },
                    target.threshold,
                    self.goal.confidence * 100.0
                )
            },
            dataset: self.goal.dataset.clone(),
            dataset_description: facts.description.clone(),
            history,
        }
    }

    /// Proposes, records and announces the next candidate — a person's injected one first,
    /// else the strategy's; returns its index.
    pub(super) async fn propose(&mut self, proposer: &mut Proposer) -> Result<usize, End> {
        if let Some(injection) = self.handle.take_injection() {
            return self.record_injection(injection).await;
        }
        let facts = self.dataset()?.clone();
        let history: Vec<HistoryEntry> = self
            .candidates
            .iter()
            .map(|c| HistoryEntry {
                model: c.model.clone(),
                train: c.train.clone(),
                score: c.score(),
                failure: c.failure.clone(),
                improving: c.improving,
            })
            .collect();
        let budget = ra_spec::Budget {
            max_parameters: self.config.max_parameters,
            max_flops_per_sample: self.config.max_flops_per_sample,
            ..ra_spec::Budget::default()
        };
        let context = Context {
            input: &facts.input,
            num_classes: facts.num_classes,
            family: Some(self.goal.model_family.as_str()).filter(|f| !f.is_empty()),
            history: &history,
            budget: &budget,
            max_epochs: self.config.max_epochs,
            maximize: maximize(&self.goal),
            train_samples: facts.train_samples,
        };
        let brief = self.brief(&facts);
        let (proposal, notes) =
            proposer
                .next(&context, &brief)
                .await
                .map_err(|error| End::Failed {
                    message: format!("the strategy has no proposal: {error}"),
                    resumable: false,
                })?;
        for note in notes {
            let reasoning = note.reasoning.clone();
            self.decide(note.action, reasoning, note.inputs, "").await?;
            if note.action == "fallback" {
                self.handle
                    .emit(pb::research_event::Event::Decision(pb::DecisionMade {
                        decision_id: String::new(),
                        action: note.action.into(),
                        reasoning: note.reasoning,
                    }));
            }
        }
        self.record_candidate(proposal).await
    }

    pub(super) async fn record_candidate(&mut self, proposal: Proposal) -> Result<usize, End> {
        let mut model = proposal.model;
        // "c04-…": the candidate's place in the session, replacing a parent's place.
        let bare = match model.name.split_once('-') {
            Some((place, rest))
                if place.len() > 1
                    && place.starts_with('c')
                    && place[1..].chars().all(|c| c.is_ascii_digit()) =>
            {
                rest.to_owned()
            }
            _ => model.name.clone(),
        };
        model.name = format!("c{:02}-{bare}", self.candidates.len() + 1);
        let model_proto = common::ModelSpec::from(&model);
        let train_proto = common::TrainSpec::from(&proposal.train);
        let candidate = self
            .clients
            .records
            .create_candidate(
                &self.handle.id,
                model_proto.clone(),
                train_proto,
                proposal.rationale.clone(),
                proposal.strategy,
                String::new(),
            )
            .await
            .map_err(|s| session_error("recording the candidate", &s))?;
        self.decide(
            "propose",
            proposal.rationale.clone(),
            json!({"strategy": proposal.strategy, "history": self.candidates.len()}),
            &candidate.id,
        )
        .await?;
        tracing::info!(research = %self.handle.id, candidate = %candidate.id, name = %model.name, strategy = proposal.strategy, "candidate proposed");
        self.handle
            .emit(pb::research_event::Event::CandidateProposed(
                pb::CandidateProposed {
                    candidate_id: candidate.id.clone(),
                    model: Some(model_proto),
                    train: Some(train_proto),
                    rationale: proposal.rationale.clone(),
                    strategy: strategy_enum(proposal.strategy) as i32,
                },
            ));
        self.candidates.push(CandidateRecord {
            id: candidate.id,
            name: model.name.clone(),
            model,
            train: proposal.train,
            strategy: proposal.strategy.into(),
            rationale: proposal.rationale,
            evaluation_id: String::new(),
            aggregate: None,
            p_value: 1.0,
            decision: common::GoalDecision::Undecided,
            explanation: String::new(),
            failure: Some(INTERRUPTED.into()),
            adjusted_p_value: 1.0,
            improving: false,
        });
        Ok(self.candidates.len() - 1)
    }

    pub(super) fn limits(&self) -> Option<common::ResourceLimits> {
        self.config.limits
    }

    /// The candidate against the dataset (a person's injected spec may not fit it), then
    /// ValidateJob in the sandbox; a refusal is recorded and the candidate set aside.
    pub(super) async fn validate(&mut self, index: usize) -> Result<bool, End> {
        let facts = self.dataset()?.clone();
        let candidate = &self.candidates[index];
        let mut misfits = Vec::new();
        if candidate.model.input != facts.input {
            misfits.push(format!(
                "input: the model expects {}, the dataset gives {}",
                serde_json::to_string(&candidate.model.input).unwrap_or_default(),
                serde_json::to_string(&facts.input).unwrap_or_default()
            ));
        }
        if candidate.model.num_classes != facts.num_classes {
            misfits.push(format!(
                "num_classes: the model has {}, the dataset {}",
                candidate.model.num_classes, facts.num_classes
            ));
        }
        if !misfits.is_empty() {
            let reason = format!(
                "does not fit dataset {}: {}",
                self.goal.dataset,
                misfits.join("; ")
            );
            self.reject(index, reason, misfits).await?;
            return Ok(false);
        }
        let request = sb::ValidateJobRequest {
            job: Some(sb::JobSpec {
                kind: Some(sb::job_spec::Kind::Train(sb::TrainJob {
                    model: Some(common::ModelSpec::from(&candidate.model)),
                    train: Some(common::TrainSpec::from(&candidate.train)),
                    prepared_dataset_id: facts.prepared_id.clone(),
                    seed: 0,
                    save_weights: false,
                    device: String::new(),
                    seeds: Vec::new(),
                })),
                limits: self.limits(),
                ..Default::default()
            }),
        };
        let peers = &self.clients;
        let report = peers
            .sandbox
            .run(|mut client| {
                let request = request.clone();
                async move { client.validate_job(request).await }
            })
            .await
            .map_err(|s| session_error("validating the candidate", &s))?
            .into_inner();
        if report.ok {
            return Ok(true);
        }
        let problems: Vec<String> = report
            .violations
            .iter()
            .map(|v| match v.layer.as_str() {
                "" => format!("{}: {}", v.rule, v.message),
                layer => format!("{} at layer {layer}: {}", v.rule, v.message),
            })
            .collect();
        let reason = format!("rejected by the sandbox: {}", problems.join("; "));
        self.reject(index, reason, problems).await?;
        Ok(false)
    }

    /// Sets candidate `index` aside: recorded as a "reject" decision and announced.
    async fn reject(
        &mut self,
        index: usize,
        reason: String,
        problems: Vec<String>,
    ) -> Result<(), End> {
        let candidate_id = self.candidates[index].id.clone();
        self.candidates[index].failure = Some(reason.clone());
        self.decide(
            "reject",
            reason.clone(),
            json!({"violations": problems}),
            &candidate_id,
        )
        .await?;
        self.handle
            .emit(pb::research_event::Event::CandidateRejected(
                pb::CandidateRejected {
                    reason,
                    strategy: strategy_enum(&self.candidates[index].strategy) as i32,
                },
            ));
        Ok(())
    }

    /// Evaluates candidate `index`; `Some(end)` when the session must end meanwhile (stop,
    /// wall time).
    pub(super) async fn evaluate(
        &mut self,
        index: usize,
        resumed: bool,
    ) -> Result<Option<End>, End> {
        let facts = self.dataset()?.clone();
        let candidate_id = self.candidates[index].id.clone();
        let budget = self.budget();
        let remaining = budget.max_total_seeds.saturating_sub(self.seeds_used);
        let wall_left = (budget.max_wall_seconds as f64 - self.elapsed()).max(0.0);
        let deadline = tokio::time::sleep(Duration::from_secs_f64(wall_left));
        tokio::pin!(deadline);
        let stop = self.handle.stop.clone();
        enum Step {
            Stop,
            Deadline,
            Event(Box<Option<Result<ev::EvaluateEvent, Status>>>),
        }
        let mut busy_tries = 0;
        let metric = self
            .goal
            .target
            .as_ref()
            .map(|t| t.metric.clone())
            .unwrap_or_default();
        // The target metric per seed and epoch, to tell whether training was still improving.
        let mut curves: HashMap<u64, Vec<f64>> = HashMap::new();
        let result = 'evaluation: loop {
            let seeds = if resumed {
                ev::evaluate_request::Seeds::SeedList(ev::SeedList {
                    seeds: self.resumed_seeds(&candidate_id).await?,
                })
            } else {
                ev::evaluate_request::Seeds::Adaptive(ev::AdaptiveSeeding {
                    initial_seeds: self.goal.num_seeds,
                    max_seeds: self.goal.max_seeds.min(remaining).max(self.goal.num_seeds),
                })
            };
            let request = ev::EvaluateRequest {
                dataset: Some(ev::evaluate_request::Dataset::PreparedDatasetId(
                    facts.prepared_id.clone(),
                )),
                seeds: Some(seeds),
                target: self.goal.target.clone(),
                confidence: self.goal.confidence,
                experiment_id: self.handle.id.clone(),
                candidate_id: candidate_id.clone(),
                limits: self.limits(),
                failure_policy: ev::FailurePolicy::DecideOnRemaining as i32,
                early_stopping: self.config.early_stopping,
                device: self.config.device.clone(),
                ..Default::default()
            };
            let mut client = self.clients.evaluator.client();
            let mut stream = client
                .evaluate(request)
                .await
                .map_err(|s| session_error("starting the evaluation", &s))?
                .into_inner();
            let mut received = false;
            loop {
                let step = tokio::select! {
                    () = stop.cancelled() => Step::Stop,
                    () = &mut deadline => Step::Deadline,
                    event = stream.next() => Step::Event(Box::new(event)),
                };
                match step {
                    // Dropping the stream makes the evaluator cancel the candidate's jobs;
                    // the session ends once they are recorded as ended.
                    Step::Stop => {
                        drop(stream);
                        self.settle(&candidate_id).await;
                        return Ok(Some(self.paused()));
                    }
                    Step::Deadline => {
                        drop(stream);
                        self.settle(&candidate_id).await;
                        return Ok(Some(End::Exhausted(format!(
                            "wall-time budget spent ({} s) while evaluating {}",
                            budget.max_wall_seconds, self.candidates[index].name
                        ))));
                    }
                    Step::Event(event) => match *event {
                        None => {
                            break 'evaluation Err(Status::unavailable(
                                "the evaluation stream ended without a result",
                            ));
                        }
                        // A stopped evaluation of this candidate is still winding down in the
                        // evaluator (a stop and a resume in quick succession): wait for it.
                        Some(Err(status))
                            if !received
                                && busy_tries < 120
                                && ra_client::reason::of(&status)
                                    == Some(ra_client::reason::Reason::AlreadyBeingEvaluated) =>
                        {
                            busy_tries += 1;
                            tokio::time::sleep(Duration::from_millis(250)).await;
                            continue 'evaluation;
                        }
                        Some(Err(status)) => break 'evaluation Err(status),
                        Some(Ok(event)) => {
                            received = true;
                            if let Some(ev::evaluate_event::Event::Result(result)) = &event.event {
                                let result = result.clone();
                                self.handle
                                    .emit(pb::research_event::Event::Evaluation(event));
                                break 'evaluation Ok(result);
                            }
                            if let Some(ev::evaluate_event::Event::SeedEpoch(epoch)) = &event.event
                                && let Some(value) = epoch.metrics.get(&metric)
                            {
                                curves.entry(epoch.seed).or_default().push(*value);
                            }
                            if let Some(ev::evaluate_event::Event::SeedStarted(started)) =
                                &event.event
                            {
                                tracing::info!(research = %self.handle.id, candidate = %candidate_id, seed = started.seed, trial = %started.trial_id, "seed started");
                                self.handle.update_status(|s| s.seeds_used += 1);
                            }
                            self.handle
                                .emit(pb::research_event::Event::Evaluation(event));
                        }
                    },
                }
            }
        };
        match result {
            Ok(result) => {
                tracing::info!(research = %self.handle.id, candidate = %candidate_id, decision = ?result.decision(), p = result.p_value, "candidate evaluated");
                let record = &mut self.candidates[index];
                record.evaluation_id = result.evaluation_id.clone();
                record.aggregate = result.aggregate.clone();
                record.p_value = result.p_value;
                record.decision = result.decision();
                record.explanation = result.explanation.clone();
                record.failure = None;
                record.improving = still_improving(&curves, maximize(&self.goal));
            }
            // The evaluation itself failed (its seeds failed): recorded by the evaluator; the
            // candidate is history with its failure.
            Err(status) if matches!(status.code(), Code::Aborted | Code::InvalidArgument) => {
                self.candidates[index].failure = Some(status.message().to_owned());
                let name = self.candidates[index].name.clone();
                self.decide(
                    "evaluation_failed",
                    format!("{name} failed: {}", status.message()),
                    json!({"code": format!("{:?}", status.code())}),
                    &candidate_id,
                )
                .await?;
            }
            Err(status) => return Err(session_error("evaluating the candidate", &status)),
        }
        self.refresh_seeds_used().await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[tokio::test]
    async fn jobs_carry_the_session_limits_and_nothing_runs_before_the_dataset() {
        let mut research = fixture::research(fixture::goal(common::Direction::Maximize));
        assert_eq!(research.limits(), None, "the sandbox's defaults");
        let limits = common::ResourceLimits {
            memory_bytes: 256 << 20,
            ..Default::default()
        };
        research.config.limits = Some(limits);
        assert_eq!(research.limits(), Some(limits));
        assert!(
            matches!(research.dataset(), Err(End::Failed { message, .. }) if message.contains("not prepared")),
            "no candidate before the dataset is prepared"
        );
        match research.prepare_dataset().await {
            Err(End::Failed { message, resumable }) => {
                assert!(resumable, "an unreachable dataset-svc: {message}");
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Whether the seeds' curves were still improving at their end: the mean curve's last epoch
/// is its best, or better than the mean of the three before it by more than 0.5 %.
pub(crate) fn still_improving(curves: &HashMap<u64, Vec<f64>>, maximize: bool) -> bool {
    let epochs = curves.values().map(Vec::len).min().unwrap_or(0);
    if epochs < 3 {
        return false;
    }
    let mean: Vec<f64> = (0..epochs)
        .map(|e| curves.values().map(|c| c[e]).sum::<f64>() / curves.len() as f64)
        .collect();
    let better = |a: f64, b: f64| if maximize { a > b } else { a < b };
    let last = mean[epochs - 1];
    let best_before = mean[..epochs - 1]
        .iter()
        .copied()
        .reduce(|a, b| if better(a, b) { a } else { b })
        .unwrap_or(last);
    let window = &mean[epochs.saturating_sub(4)..epochs - 1];
    let recent = window.iter().sum::<f64>() / window.len().max(1) as f64;
    let margin = recent.abs().max(1e-9) * 0.005;
    better(last, best_before)
        || (if maximize {
            last - recent
        } else {
            recent - last
        }) > margin
}

#[cfg(test)]
mod improving_tests {
    use super::*;

    #[test]
    fn curves_that_still_climb_ask_for_longer_training() {
        let rising = HashMap::from([
            (1, vec![0.5, 0.6, 0.7, 0.8]),
            (2, vec![0.4, 0.6, 0.7, 0.75]),
        ]);
        assert!(still_improving(&rising, true));
        let flat = HashMap::from([
            (1, vec![0.5, 0.9, 0.9, 0.9, 0.9]),
            (2, vec![0.5, 0.9, 0.91, 0.9, 0.89]),
        ]);
        assert!(!still_improving(&flat, true));
        let falling_loss = HashMap::from([(1, vec![1.0, 0.8, 0.6, 0.5])]);
        assert!(still_improving(&falling_loss, false));
        assert!(!still_improving(&HashMap::new(), true));
    }
}
