//! Metric series: validation of point batches, their atomic staging next to the experiment's
//! event, and paged reads. A point is keyed by (trial, name, step), so re-sending a batch after
//! a lost acknowledgement stores nothing twice.

use prost_types::Timestamp;
use ra_proto::common::v1::MetricPoint;
use ra_proto::registry::v1::experiment_event::Record;
use ra_proto::registry::v1::{AppendMetricsRequest, Trial};

use crate::error::{RegistryError, Result};
use crate::ids::{EntityKind, parse_id};
use crate::keys;
use crate::records::is_terminal_trial;
use crate::store::{Page, PageRequest, PendingWrite, Store, now};
use crate::validate;

/// A validated batch, wall times filled in.
#[derive(Debug)]
pub struct PreparedPoints {
    points: Vec<MetricPoint>,
}

impl PreparedPoints {
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// Checks a batch; `None` for an empty one when `allow_empty`.
pub fn prepare_points(
    points: &[MetricPoint],
    max_points: usize,
    allow_empty: bool,
) -> Result<Option<PreparedPoints>> {
    if points.is_empty() {
        if allow_empty {
            return Ok(None);
        }
        return Err(RegistryError::invalid("points is empty: send 1 or more metric points per batch"));
    }
    if points.len() > max_points {
        return Err(RegistryError::ResourceExhausted(format!(
            "a batch holds {} points; at most {max_points} are allowed per batch (store.max_batch_points): split it",
            points.len()
        )));
    }
    let server_time = now();
    let mut prepared = Vec::with_capacity(points.len());
    for (index, point) in points.iter().enumerate() {
        validate::metric_name(&format!("points[{index}].name"), &point.name)?;
        validate::finite(&format!("points[{index}].value ({})", point.name), point.value)?;
        if let Some(wall_time) = &point.wall_time {
            validate::timestamp(&format!("points[{index}].wall_time"), wall_time)?;
        }
        let mut point = point.clone();
        point.wall_time.get_or_insert(server_time);
        prepared.push(point);
    }
    Ok(Some(PreparedPoints { points: prepared }))
}

fn nanos(time: &Timestamp) -> i64 {
    time.seconds.saturating_mul(1_000_000_000).saturating_add(i64::from(time.nanos))
}

fn timestamp_from_nanos(nanos: i64) -> Timestamp {
    Timestamp { seconds: nanos.div_euclid(1_000_000_000), nanos: nanos.rem_euclid(1_000_000_000) as i32 }
}

impl Store {
    /// Appends one batch to a trial's series atomically (applied, not yet durable: the caller
    /// acknowledges after [`Store::sync`]). Returns the number of points written.
    pub fn append_metrics(&self, trial_id: &str, points: &[MetricPoint]) -> Result<usize> {
        let trial_id = parse_id(EntityKind::Trial, "trial_id", trial_id)?;
        let Some(prepared) = prepare_points(points, self.settings.max_batch_points, false)? else {
            return Ok(0);
        };
        let count = prepared.len();
        self.write(|write| {
            let trial = self.get_trial(&trial_id)?;
            if is_terminal_trial(trial.state) {
                return Err(RegistryError::FailedPrecondition(format!(
                    "trial {trial_id} is {}; a finished trial takes no more metric points",
                    trial.state().as_str_name()
                )));
            }
            self.stage_points(write, &trial, prepared)
        })?;
        Ok(count)
    }

    /// Adds the points and their event to a write being assembled.
    pub(crate) fn stage_points(
        &self,
        write: &mut PendingWrite<'_>,
        trial: &Trial,
        prepared: PreparedPoints,
    ) -> Result<()> {
        for point in &prepared.points {
            let wall = point.wall_time.as_ref().map(nanos).unwrap_or_default();
            write.put_raw(
                keys::metric_point(&trial.id, &point.name, point.step),
                keys::metric_value(point.value, wall),
            );
        }
        let batch = AppendMetricsRequest { trial_id: trial.id.clone(), points: prepared.points };
        write.event(&trial.experiment_id, Record::Metrics(batch))?;
        Ok(())
    }

    /// A trial's points ordered by name then step, optionally one metric only.
    pub fn list_metrics(&self, trial_id: &str, name: &str, page: &PageRequest) -> Result<Page<MetricPoint>> {
        let trial = self.get_trial(trial_id)?;
        let prefix = keys::trial_metrics(&trial.id);
        let scan_prefix = if name.is_empty() {
            prefix.clone().into_bytes()
        } else {
            validate::metric_name("name", name)?;
            keys::metric_series(&trial.id, name)
        };
        let scan_prefix = String::from_utf8(scan_prefix)
            .map_err(|_| RegistryError::invalid("name must be UTF-8"))?;
        self.page(&scan_prefix, page, |key, value| decode_point(&prefix, key, value).map(Some))
    }

    /// Every point of a trial, in key order (export).
    pub(crate) fn all_points(&self, trial_id: &str) -> Result<Vec<MetricPoint>> {
        let prefix = keys::trial_metrics(trial_id);
        self.records
            .scan_prefix(prefix.as_bytes())
            .map(|entry| {
                let (key, value) = entry?;
                decode_point(&prefix, &key, &value)
            })
            .collect()
    }
}

fn decode_point(prefix: &str, key: &[u8], value: &[u8]) -> Result<MetricPoint> {
    let corrupt = || RegistryError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: "malformed metric point".to_owned(),
    };
    let (name, step) = keys::parse_metric_tail(&key[prefix.len()..]).ok_or_else(corrupt)?;
    let (value, wall) = keys::parse_metric_value(value).ok_or_else(corrupt)?;
    Ok(MetricPoint {
        name: name.to_owned(),
        step,
        value,
        wall_time: Some(timestamp_from_nanos(wall)),
    })
}
