//! Where the pages' data comes from: registry-svc (records, folded per session into a cached
//! [`SessionView`] that each page load brings up to date from the last event position),
//! evaluator-svc (Holm-adjusted p-values, Welch comparisons) and planner-svc (actions). Only
//! through `ra-client`: the dashboard links no other service.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use ra_client::ids::EntityKind;
use ra_client::{Credentials, EvaluatorClient, Peer, PlannerClient, RegistryClient};
use ra_proto::evaluator::v1 as ev;
use ra_proto::registry::v1 as reg;
use tokio::sync::Mutex;

use crate::config::DashboardSettings;
use crate::error::{DashboardError, Result};
use crate::view::SessionView;

const REGISTRY: &str = "registry-svc";
const EVALUATOR: &str = "evaluator-svc";

/// The services behind the pages; cheap to share.
#[derive(Debug)]
pub struct Services {
    pub registry: Peer<RegistryClient>,
    pub evaluator: Option<Peer<EvaluatorClient>>,
    pub planner: Option<Peer<PlannerClient>>,
    pub read_only: bool,
    cache: std::sync::Mutex<Cache>,
}

/// Session views by experiment id, least recently used dropped beyond the capacity.
#[derive(Debug)]
struct Cache {
    capacity: usize,
    clock: u64,
    entries: HashMap<String, (u64, Arc<Mutex<SessionView>>)>,
}

impl Cache {
    fn entry(&mut self, id: &str) -> Arc<Mutex<SessionView>> {
        self.clock += 1;
        let clock = self.clock;
        if let Some((used, view)) = self.entries.get_mut(id) {
            *used = clock;
            return Arc::clone(view);
        }
        if self.entries.len() >= self.capacity
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(id, _)| id.clone())
        {
            self.entries.remove(&oldest);
        }
        let view = Arc::new(Mutex::new(SessionView::default()));
        self.entries
            .insert(id.to_owned(), (clock, Arc::clone(&view)));
        view
    }

    fn forget(&mut self, id: &str) {
        self.entries.remove(id);
    }
}

/// A session's line on the sessions list.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub experiment: reg::Experiment,
    pub candidates: usize,
    /// The best evaluated candidate's latest evaluation.
    pub best: Option<reg::Evaluation>,
}

/// Whether `id` is shaped as the registry writes ids of `kind`: anything else cannot exist,
/// and is answered as unknown without a call.
pub fn plausible_id(id: &str, kind: EntityKind) -> bool {
    ra_client::ids::is_well_formed(kind, id)
}

impl Services {
    pub fn connect(
        settings: &DashboardSettings,
        credentials: &Credentials,
    ) -> Result<Self, String> {
        let registry = ra_client::registry_with(
            "dashboard.registry_url",
            &settings.registry_url,
            credentials,
        )
        .map_err(|e| e.to_string())?;
        let evaluator = (!settings.evaluator_url.is_empty())
            .then(|| {
                ra_client::evaluator_with(
                    "dashboard.evaluator_url",
                    &settings.evaluator_url,
                    credentials,
                )
            })
            .transpose()
            .map_err(|e| e.to_string())?;
        let planner = (!settings.planner_url.is_empty())
            .then(|| {
                ra_client::planner_with("dashboard.planner_url", &settings.planner_url, credentials)
            })
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            registry,
            evaluator,
            planner,
            read_only: settings.read_only,
            cache: std::sync::Mutex::new(Cache {
                capacity: settings.cached_sessions.max(1),
                clock: 0,
                entries: HashMap::new(),
            }),
        })
    }

    /// Whether pages offer actions (inject, budget, pause, resume).
    pub fn interactive(&self) -> bool {
        self.planner.is_some() && !self.read_only
    }

    fn cached(&self, id: &str) -> Arc<Mutex<SessionView>> {
        match self.cache.lock() {
            Ok(mut cache) => cache.entry(id),
            // A panic while holding the cache only loses the cache.
            Err(poisoned) => {
                let mut cache = poisoned.into_inner();
                cache.entries.clear();
                cache.entry(id)
            }
        }
    }

    fn forget(&self, id: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.forget(id);
        }
    }

    /// Runs `read` on the session `id` brought up to date with the registry.
    pub async fn with_session<T>(
        &self,
        id: &str,
        read: impl FnOnce(&SessionView) -> T,
    ) -> Result<T> {
        if !plausible_id(id, EntityKind::Experiment) {
            return Err(unknown_session(id));
        }
        let view = self.cached(id);
        let mut view = view.lock().await;
        if let Err(error) = self.catch_up(id, &mut view).await {
            if view.position == 0 {
                drop(view);
                self.forget(id);
            }
            return Err(match error {
                DashboardError::NotFound(_) => unknown_session(id),
                other => other,
            });
        }
        Ok(read(&view))
    }

    /// Replays the events after the view's position into it.
    async fn catch_up(&self, id: &str, view: &mut SessionView) -> Result<()> {
        let request = reg::WatchExperimentRequest {
            experiment_id: id.to_owned(),
            from_position: view.position,
            replay_only: true,
        };
        let mut stream = self
            .registry
            .client()
            .watch_experiment(request)
            .await
            .map_err(|s| DashboardError::from_status(REGISTRY, &s))?
            .into_inner();
        while let Some(event) = stream.next().await {
            view.apply(event.map_err(|s| DashboardError::from_status(REGISTRY, &s))?);
        }
        Ok(())
    }

    /// The live events of a session after `from` (not replay-only): what a live page follows.
    pub async fn watch(
        &self,
        id: &str,
        from: u64,
    ) -> Result<tonic::Streaming<reg::ExperimentEvent>> {
        if !plausible_id(id, EntityKind::Experiment) {
            return Err(unknown_session(id));
        }
        let request = reg::WatchExperimentRequest {
            experiment_id: id.to_owned(),
            from_position: from,
            replay_only: false,
        };
        Ok(self
            .registry
            .client()
            .watch_experiment(request)
            .await
            .map_err(|s| DashboardError::from_status(REGISTRY, &s))?
            .into_inner())
    }

    /// Every session with its candidate count and best evaluation, newest first.
    pub async fn sessions(&self) -> Result<Vec<SessionSummary>> {
        let experiments = self
            .registry
            .all_pages(|mut client, page_token| {
                let request = reg::ListExperimentsRequest {
                    status: 0,
                    page_size: ra_client::PAGE,
                    page_token,
                };
                async move {
                    let page = client.list_experiments(request).await?.into_inner();
                    Ok((page.experiments, page.next_page_token))
                }
            })
            .await
            .map_err(|s| DashboardError::from_status(REGISTRY, &s))?;
        let summaries = futures::stream::iter(
            experiments
                .into_iter()
                .map(|experiment| async move { self.summary(experiment).await }),
        )
        .buffered(8)
        .collect::<Vec<_>>()
        .await;
        let mut summaries = summaries.into_iter().collect::<Result<Vec<_>>>()?;
        summaries.sort_by(|a, b| b.experiment.id.cmp(&a.experiment.id));
        Ok(summaries)
    }

    async fn summary(&self, experiment: reg::Experiment) -> Result<SessionSummary> {
        let status = |s: tonic::Status| DashboardError::from_status(REGISTRY, &s);
        let evaluations = self
            .registry
            .evaluations(&experiment.id)
            .await
            .map_err(status)?;
        let candidates = self
            .registry
            .all_pages(|mut client, page_token| {
                let request = reg::ListCandidatesRequest {
                    experiment_id: experiment.id.clone(),
                    page_size: ra_client::PAGE,
                    page_token,
                };
                async move {
                    let page = client.list_candidates(request).await?.into_inner();
                    Ok((vec![page.candidates.len()], page.next_page_token))
                }
            })
            .await
            .map_err(status)?
            .into_iter()
            .sum();
        let maximise = crate::view::maximises(&experiment);
        // The latest evaluation of each candidate, then the best of those.
        let mut latest: HashMap<&str, &reg::Evaluation> = HashMap::new();
        for evaluation in &evaluations {
            latest.insert(&evaluation.candidate_id, evaluation);
        }
        let best = latest
            .into_values()
            .filter(|e| {
                e.aggregate
                    .as_ref()
                    .is_some_and(|a| a.n > 0 && a.mean.is_finite())
            })
            .max_by(|a, b| {
                let (x, y) = (mean(a), mean(b));
                if maximise {
                    x.total_cmp(&y)
                } else {
                    y.total_cmp(&x)
                }
            })
            .cloned();
        Ok(SessionSummary {
            experiment,
            candidates,
            best,
        })
    }

    /// Holm-adjusted p-values of a session's candidates (evaluator-svc's AssessExperiment),
    /// or why there are none.
    pub async fn assessment(&self, id: &str) -> Result<ev::ExperimentAssessment, String> {
        let Some(evaluator) = &self.evaluator else {
            return Err("no evaluator-svc configured (dashboard.evaluator_url)".into());
        };
        let request = ev::AssessExperimentRequest {
            experiment_id: id.to_owned(),
            confidence: 0.0,
        };
        evaluator
            .call(|mut client| {
                let request = request.clone();
                async move { client.assess_experiment(request).await }
            })
            .await
            .map_err(|s| format!("{EVALUATOR}: {}", s.message()))
    }

    /// Welch's t-test and Hedges' g of two evaluations (evaluator-svc's Compare).
    pub async fn compare(&self, a: &str, b: &str, confidence: f64) -> Result<ev::Comparison> {
        let Some(evaluator) = &self.evaluator else {
            return Err(DashboardError::Unavailable(
                "comparisons need evaluator-svc, and none is configured (dashboard.evaluator_url)"
                    .into(),
            ));
        };
        let request = ev::CompareRequest {
            evaluation_a: a.to_owned(),
            evaluation_b: b.to_owned(),
            confidence,
        };
        evaluator
            .call(|mut client| {
                let request = request.clone();
                async move { client.compare(request).await }
            })
            .await
            .map_err(|s| DashboardError::from_status(EVALUATOR, &s))
    }

    /// An artifact's record and its content as a stream of chunks.
    pub async fn artifact(
        &self,
        sha256: &str,
    ) -> Result<(
        reg::Artifact,
        tonic::Streaming<reg::DownloadArtifactResponse>,
    )> {
        let unknown =
            || DashboardError::NotFound(format!("no artifact {sha256:?} in the registry"));
        if sha256.len() != 64 || !sha256.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
            return Err(unknown());
        }
        let request = reg::GetArtifactRequest {
            sha256: sha256.to_owned(),
        };
        let artifact = self
            .registry
            .call(|mut client| {
                let request = request.clone();
                async move { client.get_artifact(request).await }
            })
            .await
            .map_err(|s| match DashboardError::from_status(REGISTRY, &s) {
                DashboardError::NotFound(_) => unknown(),
                other => other,
            })?;
        let stream = self
            .registry
            .client()
            .download_artifact(reg::DownloadArtifactRequest {
                sha256: sha256.to_owned(),
            })
            .await
            .map_err(|s| DashboardError::from_status(REGISTRY, &s))?
            .into_inner();
        Ok((artifact, stream))
    }
}

fn mean(evaluation: &reg::Evaluation) -> f64 {
    evaluation.aggregate.as_ref().map_or(f64::NAN, |a| a.mean)
}

pub fn unknown_session(id: &str) -> DashboardError {
    DashboardError::NotFound(format!("no research session {id:?} in the registry"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registry_shaped_ids_are_looked_up() {
        assert!(plausible_id(
            &EntityKind::Experiment.new_id(),
            EntityKind::Experiment
        ));
        for bad in [
            "",
            "exp_",
            "cand_0193",
            "exp_<script>",
            "exp_../../etc",
            "exp_日本",
            &format!("exp_{}", "a".repeat(80)),
        ] {
            assert!(!plausible_id(bad, EntityKind::Experiment), "{bad}");
        }
    }

    #[test]
    fn the_cache_drops_the_least_recently_used_session() {
        let mut cache = Cache {
            capacity: 2,
            clock: 0,
            entries: HashMap::new(),
        };
        let a = cache.entry("a");
        cache.entry("b");
        assert!(Arc::ptr_eq(&a, &cache.entry("a")));
        cache.entry("c");
        assert!(cache.entries.contains_key("a"));
        assert!(!cache.entries.contains_key("b"));
        assert_eq!(cache.entries.len(), 2);
    }
}
