//! Export of one experiment: every record as a JSON document (protobuf JSON mapping, so the
//! field names match the contracts), and its metric points as CSV, trial by trial.

use prost::Message;
use ra_proto::registry::v1::{Candidate, Trial};
use serde_json::{Map, Value, json};

use crate::error::{RegistryError, Result};
use crate::keys;
use crate::schema::record_to_json;
use crate::store::Store;

/// Identifies the layout of the exported JSON document.
pub const EXPORT_FORMAT: &str = "research-agent.experiment-export.v1";

impl Store {
    /// The experiment and all of its records as one JSON document.
    pub fn export_json(&self, experiment_id: &str) -> Result<String> {
        let experiment_id = self.existing_experiment(experiment_id)?;
        let experiment = self.raw_json(
            "ra.registry.v1.Experiment",
            &keys::experiment(&experiment_id),
        )?;
        let candidates = self.indexed_json(
            &keys::experiment_candidates(&experiment_id),
            "ra.registry.v1.Candidate",
            keys::candidate,
        )?;
        let trials = self.indexed_json(
            &keys::experiment_trials(&experiment_id),
            "ra.registry.v1.Trial",
            keys::trial,
        )?;
        let decisions = self.indexed_json(
            &keys::experiment_decisions(&experiment_id),
            "ra.registry.v1.Decision",
            keys::decision,
        )?;
        let evaluations = self.indexed_json(
            &keys::experiment_evaluations(&experiment_id),
            "ra.registry.v1.Evaluation",
            keys::evaluation,
        )?;
        let mut artifacts = Vec::new();
        for entry in self
            .records
            .scan_prefix(keys::experiment_artifacts(&experiment_id).as_bytes())
        {
            let (key, value) = entry?;
            artifacts.push(to_json("ra.registry.v1.Artifact", &key, &value)?);
        }
        let mut metrics = Map::new();
        for trial in self.trials_of(&experiment_id)? {
            let points = self.all_points(&trial.id)?;
            let rendered: Vec<Value> = points
                .iter()
                .map(|point| {
                    let encoded = point.encode_to_vec();
                    record_to_json("ra.common.v1.MetricPoint", &encoded).unwrap_or(Value::Null)
                })
                .collect();
            metrics.insert(trial.id, Value::Array(rendered));
        }
        let document = json!({
            "format": EXPORT_FORMAT,
            "experiment": experiment,
            "candidates": candidates,
            "trials": trials,
            "decisions": decisions,
            "evaluations": evaluations,
            "artifacts": artifacts,
            "metrics": metrics,
        });
        serde_json::to_string_pretty(&document)
            .map_err(|error| RegistryError::Io(std::io::Error::other(error)))
    }

    /// Streams the experiment's metric points as CSV chunks.
    pub fn export_csv(&self, experiment_id: &str) -> Result<CsvExport<'_>> {
        let experiment_id = self.existing_experiment(experiment_id)?;
        let trials = self.trials_of(&experiment_id)?;
        Ok(CsvExport {
            store: self,
            trials: trials.into_iter(),
            header_sent: false,
        })
    }

    /// Every trial of an experiment, in creation order.
    pub(crate) fn trials_of(&self, experiment_id: &str) -> Result<Vec<Trial>> {
        self.records
            .scan_prefix(keys::experiment_trials(experiment_id).as_bytes())
            .map(|entry| {
                let (key, _) = entry?;
                self.follow_index(&key, keys::trial)
            })
            .collect()
    }

    /// Every candidate of an experiment, in creation order.
    pub(crate) fn candidates_of(&self, experiment_id: &str) -> Result<Vec<Candidate>> {
        self.records
            .scan_prefix(keys::experiment_candidates(experiment_id).as_bytes())
            .map(|entry| {
                let (key, _) = entry?;
                self.follow_index(&key, keys::candidate)
            })
            .collect()
    }

    fn raw_json(&self, full_name: &str, key: &str) -> Result<Value> {
        let bytes = self.records.get(key.as_bytes())?.ok_or_else(|| {
            RegistryError::NotFound(format!("record {key} disappeared during the export"))
        })?;
        to_json(full_name, key.as_bytes(), &bytes)
    }

    fn indexed_json(
        &self,
        prefix: &str,
        full_name: &str,
        record_key: fn(&str) -> String,
    ) -> Result<Vec<Value>> {
        self.records
            .scan_prefix(prefix.as_bytes())
            .map(|entry| {
                let (key, _) = entry?;
                let id = String::from_utf8_lossy(keys::last_segment(&key)).into_owned();
                self.raw_json(full_name, &record_key(&id))
            })
            .collect()
    }
}

fn to_json(full_name: &str, key: &[u8], bytes: &[u8]) -> Result<Value> {
    record_to_json(full_name, bytes).map_err(|source| RegistryError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: source.to_string(),
    })
}

/// CSV of an experiment's points, one chunk per trial.
#[derive(Debug)]
pub struct CsvExport<'a> {
    store: &'a Store,
    trials: std::vec::IntoIter<Trial>,
    header_sent: bool,
}

pub const CSV_HEADER: [&str; 7] = [
    "trial_id",
    "candidate_id",
    "seed",
    "metric",
    "step",
    "value",
    "wall_time",
];

impl CsvExport<'_> {
    /// The next chunk of CSV text, `None` when done. The first chunk starts with the header.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let csv_error = |error: csv::Error| RegistryError::Io(std::io::Error::other(error));
        if !self.header_sent {
            self.header_sent = true;
            writer.write_record(CSV_HEADER).map_err(csv_error)?;
        } else if self.trials.len() == 0 {
            return Ok(None);
        }
        if let Some(trial) = self.trials.next() {
            for point in self.store.all_points(&trial.id)? {
                let wall = point
                    .wall_time
                    .map(|time| format!("{}", time))
                    .unwrap_or_default();
                writer
                    .write_record([
                        trial.id.as_str(),
                        trial.candidate_id.as_str(),
                        &trial.seed.to_string(),
                        &point.name,
                        &point.step.to_string(),
                        &point.value.to_string(),
                        &wall,
                    ])
                    .map_err(csv_error)?;
            }
        }
        writer
            .into_inner()
            .map(Some)
            .map_err(|error| RegistryError::Io(std::io::Error::other(error.to_string())))
    }
}
