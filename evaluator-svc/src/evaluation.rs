//! One evaluation from plan to result: the prepared dataset, the sandbox's static checks, the
//! registry records, the rounds of seeds (concurrent within a round, bounded), the failure
//! policy, the decision and the evaluation record.
//!
//! Failure policy (documented in the README): with DECIDE_ON_REMAINING (the default) failed
//! seeds are recorded with their reasons and the decision is made on the seeds that finished
//! if at least two did; with FAIL_FAST any failed seed stops the others. An evaluation that
//! cannot decide because of failures is recorded (decision UNDECIDED, explanation "evaluation
//! failed: …") and the call ends with ABORTED naming the evaluation and every failed seed.
//!
//! Seeds of a recorded candidate that already ended (an earlier, interrupted call) are reported
//! as they ended instead of trained again, so a restarted evaluator loses no finished trial;
//! trials a stopped evaluator left RUNNING are adopted and run again under a fresh job id.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::stream::{FuturesUnordered, StreamExt};
use ra_proto::common::v1 as common;
use ra_proto::dataset::v1 as ds;
use ra_proto::evaluator::v1 as pb;
use ra_proto::registry::v1 as reg;
use ra_proto::sandbox::v1 as sb;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::error::EvaluatorError;

use crate::config::EvaluatorSettings;
use crate::decision;
use crate::ledger::Ledger;
use crate::peers::Peers;
use crate::plan::{DatasetChoice, FailurePolicy, Plan};
use crate::pruning::CurveBook;
use crate::report;
use crate::seed::{EventSink, SeedContext};

/// The evaluator's state shared by every request.
#[derive(Clone)]
pub struct Evaluator {
    pub peers: Peers,
    pub ledger: Ledger,
    pub settings: Arc<EvaluatorSettings>,
    curves: Arc<CurveBook>,
    /// Candidates being evaluated in this process.
    active: Arc<Mutex<HashSet<String>>>,
}

/// A candidate's trials from earlier evaluations, by seed.
#[derive(Default)]
struct EarlierTrials {
    ended: BTreeMap<u64, pb::SeedResult>,
    adopt: HashMap<u64, String>,
}

/// Removes a candidate from the active set when its evaluation ends, however it ends.
struct ActiveGuard {
    active: Arc<Mutex<HashSet<String>>>,
    candidate_id: String,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.candidate_id);
    }
}

impl Evaluator {
    /// The evaluator, dialling its peers with `credentials` (`[server.client]`).
    pub fn new(
        settings: EvaluatorSettings,
        credentials: &ra_client::Credentials,
    ) -> Result<Self, String> {
        let peers = Peers::connect_lazy(&settings, credentials).map_err(|e| e.to_string())?;
        Ok(Self {
            ledger: Ledger::new(peers.registry.clone()),
            peers,
            settings: Arc::new(settings),
            curves: Arc::new(CurveBook::default()),
            active: Arc::new(Mutex::new(HashSet::new())),
        })
    }

    fn backend(&self) -> sb::Backend {
        match self.settings.backend.as_str() {
            "process" => sb::Backend::Process,
            "docker" => sb::Backend::Docker,
            "kubernetes" => sb::Backend::Kubernetes,
            _ => sb::Backend::Unspecified,
        }
    }

    /// Runs the evaluation of `plan`, sending progress to `events`; `cancelled` stops it.
    pub async fn evaluate(
        &self,
        plan: Plan,
        events: EventSink,
        cancelled: CancellationToken,
    ) -> Result<pb::EvaluationResult, EvaluatorError> {
        let prepared_dataset_id = self.prepared_dataset(&plan.dataset).await?;
        let recorded = match plan.candidate_id.as_str() {
            "" => None,
            id => Some(self.ledger.candidate(id).await?),
        };
        let (model, train) = specs(&plan, recorded.as_ref())?;
        let device = self
            .check_job(&model, &train, &prepared_dataset_id, &plan)
            .await?;
        let candidate = match recorded {
            Some(candidate) => candidate,
            None => {
                let experiment_id = match plan.experiment_id.as_str() {
                    "" => {
                        self.ledger
                            .create_experiment(
                                format!("evaluate {}", model.name),
                                research_goal(&plan, &prepared_dataset_id),
                            )
                            .await?
                            .id
                    }
                    id => self.ledger.experiment(id).await?.id,
                };
                self.ledger
                    .create_candidate(&experiment_id, model.clone(), train)
                    .await?
            }
        };
        let _guard = self.claim(&candidate.id)?;
        let evaluation_id = ra_client::ids::EntityKind::Evaluation.new_id();
        let context = Arc::new(SeedContext {
            peers: self.peers.clone(),
            ledger: self.ledger.clone(),
            experiment_id: candidate.experiment_id.clone(),
            candidate_id: candidate.id.clone(),
            evaluation_id: evaluation_id.clone(),
            model,
            train,
            prepared_dataset_id,
            limits: plan.limits,
            backend: self.backend(),
            device,
            goal: plan.goal.clone(),
            pruning: plan.pruning,
            curves: Arc::clone(&self.curves),
            events,
            cancelled,
            pruned: CancellationToken::new(),
            fail_fast: CancellationToken::new(),
            prune_reason: Mutex::new(None),
        });
        if plan.pruning.is_some() {
            self.load_curves(&context).await?;
        }
        let mut earlier = self.earlier_trials(&context, &plan).await?;
        let mut results: BTreeMap<u64, pb::SeedResult> = BTreeMap::new();
        let looks = plan.seeds.looks();
        let mut rounds = plan.seeds.rounds().into_iter().peekable();
        let verdict = loop {
            let round = rounds.next().unwrap_or_default();
            for seed_result in self
                .run_round(&context, &round, &mut earlier, plan.failure_policy)
                .await?
            {
                results.insert(seed_result.seed, seed_result);
            }
            if context.cancelled.is_cancelled() {
                return Err(EvaluatorError::Cancelled(
                    "the evaluation was cancelled: its caller went away".into(),
                ));
            }
            let values = report::succeeded_values(results.values(), &plan.goal.metric);
            let verdict = decision::decide(&values, &plan.goal, plan.confidence, looks);
            let failed = results
                .values()
                .any(|r| r.state == common::TrialState::Failed as i32);
            let undecided = verdict.decision == common::GoalDecision::Undecided;
            if !undecided || failed || context.pruned.is_cancelled() || rounds.peek().is_none() {
                break verdict;
            }
        };
        let outcome = report::Outcome {
            evaluation_id,
            experiment_id: candidate.experiment_id.clone(),
            candidate_id: candidate.id.clone(),
            seeds: results.into_values().collect(),
            target: plan.goal.clone(),
            verdict,
            prune_reason: context.prune_reason.lock().ok().and_then(|r| r.clone()),
            failure_policy: plan.failure_policy,
        };
        let (result, failure) = outcome.conclude();
        self.ledger
            .create_evaluation(report::record(&result))
            .await?;
        match failure {
            Some(message) => Err(EvaluatorError::Aborted(message)),
            None => Ok(result),
        }
    }

    fn claim(&self, candidate_id: &str) -> Result<ActiveGuard, EvaluatorError> {
        let mut active = self
            .active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !active.insert(candidate_id.to_owned()) {
            return Err(EvaluatorError::AlreadyBeingEvaluated {
                candidate_id: candidate_id.to_owned(),
            });
        }
        Ok(ActiveGuard {
            active: Arc::clone(&self.active),
            candidate_id: candidate_id.to_owned(),
        })
    }

    /// The prepared dataset id: given, or prepared now through dataset-svc.
    async fn prepared_dataset(&self, choice: &DatasetChoice) -> Result<String, EvaluatorError> {
        let (name, options) = match choice {
            DatasetChoice::Prepared(id) => return Ok(id.clone()),
            DatasetChoice::Prepare { name, options } => (name, options.as_ref()),
        };
        let request = ds::PrepareDatasetRequest {
            name: name.clone(),
            options: Some(options.clone()),
        };
        let peers = &self.peers;
        peers
            .dataset
            .run(|mut client| {
                let request = request.clone();
                async move {
                    let mut stream = client.prepare_dataset(request).await?.into_inner();
                    while let Some(event) = stream.message().await? {
                        if let Some(ds::prepare_dataset_event::Event::Manifest(manifest)) =
                            event.event
                        {
                            return Ok(manifest.prepared_id);
                        }
                    }
                    Err(Status::unavailable(
                        "the preparation stream ended without a manifest",
                    ))
                }
            })
            .await
            .map_err(EvaluatorError::from)
    }

    /// The sandbox's static checks (shapes against the dataset, budgets, limits) and the
    /// device every seed trains on: the request's, or `evaluator.device`, as the sandbox
    /// resolves it on the evaluator's backend (`auto` → the fastest present). A device the
    /// sandbox lacks comes back FAILED_PRECONDITION, before any record is created.
    async fn check_job(
        &self,
        model: &common::ModelSpec,
        train: &common::TrainSpec,
        prepared_dataset_id: &str,
        plan: &Plan,
    ) -> Result<String, EvaluatorError> {
        let device = match plan.device.as_str() {
            "" => self.settings.device.clone(),
            requested => requested.to_owned(),
        };
        let request = sb::ValidateJobRequest {
            job: Some(sb::JobSpec {
                kind: Some(sb::job_spec::Kind::Train(sb::TrainJob {
                    model: Some(model.clone()),
                    train: Some(*train),
                    prepared_dataset_id: prepared_dataset_id.to_owned(),
                    seed: 0,
                    save_weights: false,
                    device: device.clone(),
                    seeds: Vec::new(),
                })),
                limits: plan.limits,
                backend: self.backend() as i32,
                ..Default::default()
            }),
        };
        let peers = &self.peers;
        let report = peers
            .sandbox
            .run(|mut client| {
                let request = request.clone();
                async move { client.validate_job(request).await }
            })
            .await?
            .into_inner();
        if report.ok {
            // A sandbox that does not say (older than devices) is asked for the device as sent.
            return Ok(match report.device.as_str() {
                "" => device,
                resolved => resolved.to_owned(),
            });
        }
        let problems: Vec<String> = report
            .violations
            .iter()
            .map(|v| match v.layer.as_str() {
                "" => v.message.clone(),
                layer => format!("layer {layer}: {}", v.message),
            })
            .collect();
        Err(EvaluatorError::invalid(format!(
            "the candidate does not pass the sandbox's checks: {}",
            problems.join("; ")
        )))
    }

    /// The candidate's earlier trials of the requested seeds: those that ended are reported
    /// as they ended (the registry keeps one trial per candidate and seed, so a seed runs at
    /// most once to its end); those a stopped evaluator left PENDING or RUNNING are adopted and
    /// run again.
    async fn earlier_trials(
        &self,
        context: &SeedContext,
        plan: &Plan,
    ) -> Result<EarlierTrials, EvaluatorError> {
        let wanted: HashSet<u64> = plan
            .seeds
            .first
            .iter()
            .chain(&plan.seeds.more)
            .copied()
            .collect();
        let mut earlier = EarlierTrials::default();
        for trial in self.ledger.trials("", &context.candidate_id).await? {
            if !wanted.contains(&trial.seed) {
                continue;
            }
            match common::TrialState::try_from(trial.state).unwrap_or_default() {
                common::TrialState::Pending | common::TrialState::Running => {
                    earlier.adopt.insert(trial.seed, trial.id);
                }
                state => {
                    let note = match state {
                        common::TrialState::Succeeded => {
                            "reused: trial {id} already finished this seed"
                        }
                        _ => "recorded earlier in trial {id}",
                    }
                    .replace("{id}", &trial.id);
                    let mut result = report::seed_result(trial);
                    result.message = match result.message.as_str() {
                        "" => note,
                        message => format!("{note}: {message}"),
                    };
                    earlier.ended.insert(result.seed, result);
                }
            }
        }
        Ok(earlier)
    }

    /// Fills the curve book with the experiment's recorded curves, once per process.
    async fn load_curves(&self, context: &SeedContext) -> Result<(), EvaluatorError> {
        let metric = &context.goal.metric;
        if self.curves.knows(&context.experiment_id, metric) {
            return Ok(());
        }
        for trial in self.ledger.trials(&context.experiment_id, "").await? {
            if trial.candidate_id == context.candidate_id {
                continue;
            }
            for point in self.ledger.metric_series(&trial.id, metric).await? {
                self.curves.record(
                    &context.experiment_id,
                    metric,
                    &trial.candidate_id,
                    &trial.id,
                    point.step,
                    point.value,
                );
            }
        }
        self.curves.mark_loaded(&context.experiment_id, metric);
        Ok(())
    }

    /// Runs the seeds of one round, at most `max_parallel_seeds` jobs at once, new seeds
    /// `seeds_per_job` to a job (adopted ones alone). Reused seeds are reported at once; with
    /// FAIL_FAST the first failure stops the rest (a job of several seeds reports its failed
    /// seeds when it ends).
    async fn run_round(
        &self,
        context: &Arc<SeedContext>,
        seeds: &[u64],
        earlier: &mut EarlierTrials,
        policy: FailurePolicy,
    ) -> Result<Vec<pb::SeedResult>, EvaluatorError> {
        let mut results = Vec::with_capacity(seeds.len());
        let slots = Arc::new(Semaphore::new(self.settings.max_parallel_seeds as usize));
        let mut running = FuturesUnordered::new();
        let mut jobs: Vec<(Vec<u64>, Option<String>)> = Vec::new();
        let mut fresh: Vec<u64> = Vec::new();
        for &seed in seeds {
            if let Some(reused) = earlier.ended.remove(&seed) {
                context
                    .emit(pb::evaluate_event::Event::SeedFinished(reused.clone()))
                    .await;
                results.push(reused);
                continue;
            }
            match earlier.adopt.remove(&seed) {
                Some(adopted) => jobs.push((vec![seed], Some(adopted))),
                None => fresh.push(seed),
            }
        }
        let per_job = self.settings.seeds_per_job.max(1) as usize;
        jobs.extend(fresh.chunks(per_job).map(|chunk| (chunk.to_vec(), None)));
        for (job_seeds, adopted) in jobs {
            let context = Arc::clone(context);
            let slots = Arc::clone(&slots);
            running.push(tokio::spawn(async move {
                let _slot = slots.acquire_owned().await;
                if context.fail_fast.is_cancelled() {
                    return Ok(Vec::new());
                }
                match job_seeds.as_slice() {
                    [seed] => context.run_seed(*seed, adopted).await.map(|r| vec![r]),
                    several => context.run_seeds(several).await,
                }
            }));
        }
        let mut first_error = None;
        while let Some(joined) = running.next().await {
            let outcome = joined.map_err(|error| {
                EvaluatorError::Internal(format!("a seed task failed: {error}"))
            })?;
            match outcome {
                Ok(ended) => {
                    for result in ended {
                        if policy == FailurePolicy::FailFast
                            && result.state == common::TrialState::Failed as i32
                        {
                            context.fail_fast.cancel();
                        }
                        results.push(result);
                    }
                }
                Err(status) => {
                    // A peer failed for good: stop the other seeds, then report it.
                    context.cancelled.cancel();
                    first_error.get_or_insert(status);
                }
            }
        }
        match first_error {
            Some(status) => Err(status),
            None => Ok(results),
        }
    }
}

/// The model and training spec: the request's, or the recorded candidate's; both given must
/// agree.
fn specs(
    plan: &Plan,
    recorded: Option<&reg::Candidate>,
) -> Result<(common::ModelSpec, common::TrainSpec), EvaluatorError> {
    let Some(candidate) = recorded else {
        return match (&plan.model, &plan.train) {
            (Some(model), Some(train)) => Ok((model.clone(), *train)),
            _ => Err(EvaluatorError::invalid("model and train are required")),
        };
    };
    if !plan.experiment_id.is_empty() && plan.experiment_id != candidate.experiment_id {
        return Err(EvaluatorError::invalid(format!(
            "candidate {} belongs to experiment {}, not {}",
            candidate.id, candidate.experiment_id, plan.experiment_id
        )));
    }
    let model = candidate.model.clone().unwrap_or_default();
    let train = candidate.train.unwrap_or_default();
    if plan.model.as_ref().is_some_and(|m| *m != model) {
        return Err(EvaluatorError::invalid(format!(
            "model differs from the ModelSpec recorded for candidate {}: leave model empty to \
             use the recorded one, or evaluate a new candidate",
            candidate.id
        )));
    }
    if plan.train.as_ref().is_some_and(|t| *t != train) {
        return Err(EvaluatorError::invalid(format!(
            "train differs from the TrainSpec recorded for candidate {}",
            candidate.id
        )));
    }
    Ok((model, train))
}

fn research_goal(plan: &Plan, prepared_dataset_id: &str) -> common::ResearchGoal {
    let dataset = match &plan.dataset {
        DatasetChoice::Prepare { name, .. } => name.clone(),
        DatasetChoice::Prepared(_) => prepared_dataset_id.to_owned(),
    };
    common::ResearchGoal {
        text: format!(
            "evaluate one candidate: mean {} {} {}",
            plan.goal.metric,
            plan.goal.direction.comparison(),
            plan.goal.threshold
        ),
        dataset,
        target: Some(report::target_proto(&plan.goal)),
        confidence: plan.confidence,
        num_seeds: plan.seeds.first.len() as u32,
        max_seeds: plan.seeds.total() as u32,
        budget: None,
        model_family: String::new(),
    }
}
