//! Export of one experiment as TensorBoard event files, so that TensorBoard (and `wandb sync
//! --sync-tensorboard`) show a session next to the runs researchers already have:
//!
//! - `events.out.tfevents.…` at the top: the HParams experiment (every candidate setting that
//!   varies is a column, every metric a metric);
//! - one run per trial, `NN-<candidate name>/seed-<seed>/events.out.tfevents.…`: the trial's
//!   per-epoch scalars (each metric series under its own name, epoch = step), its hyper-
//!   parameters as an HParams session grouped by candidate (so the HParams tab aggregates a
//!   candidate's seeds), and its end state.
//!
//! The files are TFRecord framed (length, masked CRC-32C of the length, the `Event` bytes,
//! masked CRC-32C of those), written with the few TensorBoard protos they need, defined here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost::Message;
use ra_proto::common::v1 as common;
use ra_proto::registry::v1::{Candidate, Trial};

use crate::error::Result;
use crate::store::Store;

/// One exported file: its path under the export folder and its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFile {
    pub path: String,
    pub data: Vec<u8>,
}

// ---------------------------------------------------------------------------------------------
// TensorBoard's protos (tensorboard/compat/proto/event.proto, summary.proto and the hparams
// plugin's api.proto and plugin_data.proto): only the fields written here.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, PartialEq, Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
}

#[derive(Clone, PartialEq, Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

#[derive(Clone, PartialEq, Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
    #[prost(message, optional, tag = "8")]
    tensor: Option<TensorProto>,
    #[prost(message, optional, tag = "9")]
    metadata: Option<SummaryMetadata>,
}

/// The empty float tensor the HParams summaries carry (`metadata.NULL_TENSOR`).
#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    /// DT_FLOAT.
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(message, optional, tag = "2")]
    tensor_shape: Option<TensorShape>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorShape {
    #[prost(message, repeated, tag = "2")]
    dim: Vec<TensorDim>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorDim {
    #[prost(int64, tag = "1")]
    size: i64,
}

#[derive(Clone, PartialEq, Message)]
struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    plugin_data: Option<PluginData>,
}

#[derive(Clone, PartialEq, Message)]
struct PluginData {
    #[prost(string, tag = "1")]
    plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    content: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct HParamsPluginData {
    #[prost(int32, tag = "1")]
    version: i32,
    #[prost(message, optional, tag = "2")]
    experiment: Option<HParamsExperiment>,
    #[prost(message, optional, tag = "3")]
    session_start_info: Option<SessionStartInfo>,
    #[prost(message, optional, tag = "4")]
    session_end_info: Option<SessionEndInfo>,
}

#[derive(Clone, PartialEq, Message)]
struct HParamsExperiment {
    #[prost(string, tag = "1")]
    description: String,
    #[prost(double, tag = "3")]
    time_created_secs: f64,
    #[prost(message, repeated, tag = "4")]
    hparam_infos: Vec<HParamInfo>,
    #[prost(message, repeated, tag = "5")]
    metric_infos: Vec<MetricInfo>,
    #[prost(string, tag = "6")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct HParamInfo {
    #[prost(string, tag = "1")]
    name: String,
    /// DATA_TYPE_STRING = 1, DATA_TYPE_FLOAT64 = 3.
    #[prost(int32, tag = "4")]
    r#type: i32,
    #[prost(message, optional, tag = "5")]
    domain_discrete: Option<prost_types::ListValue>,
}

#[derive(Clone, PartialEq, Message)]
struct MetricInfo {
    #[prost(message, optional, tag = "1")]
    name: Option<MetricName>,
}

#[derive(Clone, PartialEq, Message)]
struct MetricName {
    #[prost(string, tag = "1")]
    group: String,
    #[prost(string, tag = "2")]
    tag: String,
}

#[derive(Clone, PartialEq, Message)]
struct SessionStartInfo {
    #[prost(map = "string, message", tag = "1")]
    hparams: HashMap<String, prost_types::Value>,
    #[prost(string, tag = "4")]
    group_name: String,
    #[prost(double, tag = "5")]
    start_time_secs: f64,
}

#[derive(Clone, PartialEq, Message)]
struct SessionEndInfo {
    /// STATUS_UNKNOWN 0, SUCCESS 1, FAILURE 2, RUNNING 3.
    #[prost(int32, tag = "1")]
    status: i32,
    #[prost(double, tag = "2")]
    end_time_secs: f64,
}

const FILE_VERSION: &str = "brain.Event:2";
const HPARAMS_PLUGIN: &str = "hparams";
const EXPERIMENT_TAG: &str = "_hparams_/experiment";
const SESSION_START_TAG: &str = "_hparams_/session_start_info";
const SESSION_END_TAG: &str = "_hparams_/session_end_info";

// ---------------------------------------------------------------------------------------------
// TFRecord framing.
// ---------------------------------------------------------------------------------------------

fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// An event file being written: its records framed one after the other.
struct EventWriter {
    data: Vec<u8>,
}

impl EventWriter {
    /// A file that starts with the version event TensorBoard expects first.
    fn new(wall_time: f64) -> Self {
        let mut writer = Self { data: Vec::new() };
        writer.write(&Event {
            wall_time,
            step: 0,
            file_version: Some(FILE_VERSION.to_owned()),
            summary: None,
        });
        writer
    }

    fn write(&mut self, event: &Event) {
        let payload = event.encode_to_vec();
        let length = (payload.len() as u64).to_le_bytes();
        self.data.extend_from_slice(&length);
        self.data
            .extend_from_slice(&masked_crc(&length).to_le_bytes());
        self.data.extend_from_slice(&payload);
        self.data
            .extend_from_slice(&masked_crc(&payload).to_le_bytes());
    }

    fn summary(&mut self, wall_time: f64, step: i64, value: SummaryValue) {
        self.write(&Event {
            wall_time,
            step,
            file_version: None,
            summary: Some(Summary { value: vec![value] }),
        });
    }

    fn hparams(&mut self, wall_time: f64, tag: &str, data: HParamsPluginData) {
        self.summary(
            wall_time,
            0,
            SummaryValue {
                tag: tag.to_owned(),
                simple_value: None,
                tensor: Some(TensorProto {
                    dtype: 1,
                    tensor_shape: Some(TensorShape {
                        dim: vec![TensorDim { size: 0 }],
                    }),
                }),
                metadata: Some(SummaryMetadata {
                    plugin_data: Some(PluginData {
                        plugin_name: HPARAMS_PLUGIN.to_owned(),
                        content: data.encode_to_vec(),
                    }),
                }),
            },
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The export.
// ---------------------------------------------------------------------------------------------

fn seconds(timestamp: Option<&prost_types::Timestamp>) -> f64 {
    timestamp.map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) * 1e-9)
}

/// A path component from a name: letters, digits, `-`, `_` and `.` kept, the rest `_`.
fn component(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match cleaned.trim_matches('.') {
        "" => "candidate".to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

fn string_value(value: impl Into<String>) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(value.into())),
    }
}

fn number_value(value: f64) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::NumberValue(value)),
    }
}

/// A candidate's hyperparameters as HParams values: what a person compares candidates by.
fn hparams_of(
    candidate: &Candidate,
    index: usize,
    seed: u64,
) -> BTreeMap<String, prost_types::Value> {
    let mut hparams = BTreeMap::new();
    hparams.insert(
        "candidate".to_owned(),
        string_value(format!("#{}", index + 1)),
    );
    hparams.insert(
        "strategy".to_owned(),
        string_value(candidate.strategy.clone()),
    );
    hparams.insert("seed".to_owned(), number_value(seed as f64));
    if let Some(model) = &candidate.model {
        hparams.insert("model".to_owned(), string_value(model.name.clone()));
        hparams.insert("layers".to_owned(), number_value(model.layers.len() as f64));
    }
    if let Some(train) = &candidate.train {
        hparams.insert(
            "learning_rate".to_owned(),
            number_value(train.learning_rate),
        );
        hparams.insert(
            "batch_size".to_owned(),
            number_value(f64::from(train.batch_size)),
        );
        hparams.insert("epochs".to_owned(), number_value(f64::from(train.epochs)));
        hparams.insert("weight_decay".to_owned(), number_value(train.weight_decay));
        let optimizer = train
            .optimizer
            .as_ref()
            .and_then(|o| o.kind.as_ref())
            .map_or("default", |kind| match kind {
                common::optimizer::Kind::Sgd(_) => "sgd",
                common::optimizer::Kind::Adam(_) => "adam",
                common::optimizer::Kind::Adamw(_) => "adamw",
            });
        hparams.insert("optimizer".to_owned(), string_value(optimizer));
    }
    hparams
}

fn end_status(state: common::TrialState) -> i32 {
    match state {
        common::TrialState::Succeeded => 1,
        common::TrialState::Failed | common::TrialState::Cancelled | common::TrialState::Pruned => {
            2
        }
        common::TrialState::Pending | common::TrialState::Running => 3,
        common::TrialState::Unspecified => 0,
    }
}

impl Store {
    /// The experiment as TensorBoard event files: the HParams experiment at the top, one run
    /// per trial.
    pub fn export_tensorboard(&self, experiment_id: &str) -> Result<Vec<EventFile>> {
        let experiment_id = self.existing_experiment(experiment_id)?;
        let experiment = self.get_experiment(&experiment_id)?;
        let candidates = self.candidates_of(&experiment_id)?;
        let trials = self.trials_of(&experiment_id)?;
        let created = seconds(experiment.created_at.as_ref());
        let stamp = experiment.created_at.as_ref().map_or(0, |t| t.seconds);
        let file_name = format!("events.out.tfevents.{stamp}.research-agent");
        let index: HashMap<&str, usize> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.as_str(), i))
            .collect();

        let mut files = Vec::new();
        let mut metric_names = BTreeSet::new();
        let mut hparam_values: BTreeMap<String, Vec<prost_types::Value>> = BTreeMap::new();
        let mut used_runs = BTreeSet::new();
        for trial in &trials {
            let Some((position, candidate)) = index
                .get(trial.candidate_id.as_str())
                .map(|&i| (i, &candidates[i]))
            else {
                continue;
            };
            let name = candidate
                .model
                .as_ref()
                .map_or_else(|| candidate.id.clone(), |m| m.name.clone());
            let mut run = format!(
                "{:02}-{}/seed-{}",
                position + 1,
                component(&name),
                trial.seed
            );
            if !used_runs.insert(run.clone()) {
                run = format!("{run}-{}", component(&trial.id));
                used_runs.insert(run.clone());
            }
            let start = seconds(trial.started_at.as_ref().or(trial.created_at.as_ref()));
            let mut writer = EventWriter::new(start);
            let hparams = hparams_of(candidate, position, trial.seed);
            for (key, value) in &hparams {
                let values = hparam_values.entry(key.clone()).or_default();
                if !values.contains(value) {
                    values.push(value.clone());
                }
            }
            writer.hparams(
                start,
                SESSION_START_TAG,
                HParamsPluginData {
                    version: 0,
                    session_start_info: Some(SessionStartInfo {
                        hparams: hparams.into_iter().collect(),
                        group_name: candidate.id.clone(),
                        start_time_secs: start,
                    }),
                    ..Default::default()
                },
            );
            self.write_scalars(&mut writer, trial, &mut metric_names)?;
            let end = seconds(trial.finished_at.as_ref()).max(start);
            writer.hparams(
                end,
                SESSION_END_TAG,
                HParamsPluginData {
                    version: 0,
                    session_end_info: Some(SessionEndInfo {
                        status: end_status(trial.state()),
                        end_time_secs: end,
                    }),
                    ..Default::default()
                },
            );
            files.push(EventFile {
                path: format!("{run}/{file_name}"),
                data: writer.data,
            });
        }

        let mut top = EventWriter::new(created);
        let goal = experiment.goal.clone().unwrap_or_default();
        top.hparams(
            created,
            EXPERIMENT_TAG,
            HParamsPluginData {
                version: 0,
                experiment: Some(HParamsExperiment {
                    name: experiment.name.clone(),
                    description: goal.text,
                    time_created_secs: created,
                    hparam_infos: hparam_values
                        .into_iter()
                        .map(|(name, values)| {
                            let numeric = values.iter().all(|v| {
                                matches!(v.kind, Some(prost_types::value::Kind::NumberValue(_)))
                            });
                            HParamInfo {
                                name,
                                r#type: if numeric { 3 } else { 1 },
                                domain_discrete: (!numeric)
                                    .then_some(prost_types::ListValue { values }),
                            }
                        })
                        .collect(),
                    metric_infos: metric_names
                        .into_iter()
                        .map(|tag| MetricInfo {
                            name: Some(MetricName {
                                group: String::new(),
                                tag,
                            }),
                        })
                        .collect(),
                }),
                ..Default::default()
            },
        );
        files.insert(
            0,
            EventFile {
                path: file_name,
                data: top.data,
            },
        );
        Ok(files)
    }

    /// A trial's metric points as scalars, epoch by epoch (one event per step).
    fn write_scalars(
        &self,
        writer: &mut EventWriter,
        trial: &Trial,
        names: &mut BTreeSet<String>,
    ) -> Result<()> {
        let mut by_step: BTreeMap<u64, Vec<common::MetricPoint>> = BTreeMap::new();
        for point in self.all_points(&trial.id)? {
            names.insert(point.name.clone());
            by_step.entry(point.step).or_default().push(point);
        }
        for (step, points) in by_step {
            let wall_time = points
                .iter()
                .map(|p| seconds(p.wall_time.as_ref()))
                .fold(0.0, f64::max);
            writer.write(&Event {
                wall_time,
                step: i64::try_from(step).unwrap_or(i64::MAX),
                file_version: None,
                summary: Some(Summary {
                    value: points
                        .into_iter()
                        .map(|p| SummaryValue {
                            tag: p.name,
                            simple_value: Some(p.value as f32),
                            tensor: None,
                            metadata: None,
                        })
                        .collect(),
                }),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads TFRecord frames back, checking both checksums of each.
    fn frames(data: &[u8]) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let length_bytes: [u8; 8] = data[at..at + 8].try_into().expect("8 bytes");
            let length = u64::from_le_bytes(length_bytes) as usize;
            let crc = u32::from_le_bytes(data[at + 8..at + 12].try_into().expect("4 bytes"));
            assert_eq!(crc, masked_crc(&length_bytes));
            let payload = &data[at + 12..at + 12 + length];
            let crc = u32::from_le_bytes(
                data[at + 12 + length..at + 16 + length]
                    .try_into()
                    .expect("4 bytes"),
            );
            assert_eq!(crc, masked_crc(payload));
            frames.push(payload.to_vec());
            at += 16 + length;
        }
        frames
    }

    #[test]
    fn records_are_framed_with_masked_crc32c() {
        // The CRC-32C check value of "123456789" is 0xE3069283.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let mut writer = EventWriter::new(1.5);
        writer.summary(
            2.0,
            3,
            SummaryValue {
                tag: "val_accuracy".into(),
                simple_value: Some(0.75),
                tensor: None,
                metadata: None,
            },
        );
        let frames = frames(&writer.data);
        assert_eq!(frames.len(), 2);
        let first = Event::decode(frames[0].as_slice()).expect("event");
        assert_eq!(first.file_version.as_deref(), Some(FILE_VERSION));
        let second = Event::decode(frames[1].as_slice()).expect("event");
        assert_eq!(second.step, 3);
        let value = &second.summary.expect("summary").value[0];
        assert_eq!(
            (value.tag.as_str(), value.simple_value),
            ("val_accuracy", Some(0.75))
        );
    }

    #[test]
    fn run_names_are_safe_path_components() {
        assert_eq!(component("c01-mlp-64"), "c01-mlp-64");
        assert_eq!(component("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(component("日本"), "__");
        assert_eq!(component(".."), "candidate");
    }
}
