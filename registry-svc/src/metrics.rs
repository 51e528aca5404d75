//! Metric series, stored as chunks: each batch writes one record per metric name holding its
//! (step, value, wall time) triples, so appending costs one key per metric per batch instead of
//! one per point. A point is identified by (trial, name, step); reads merge a series' chunks in
//! write order, the latest value of a step winning, so re-sending a batch after a lost
//! acknowledgement stores nothing twice.

use std::collections::BTreeMap;

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

/// Bytes of one stored point: step u64, value f64, wall time i64 (ns since the epoch).
const POINT_BYTES: usize = 24;
/// A chunk starts with its smallest and largest step, so readers skip it without decoding.
const CHUNK_HEADER_BYTES: usize = 16;

/// One merged series: step → (value, wall time in ns).
type Series = BTreeMap<u64, (f64, i64)>;

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
    mut points: Vec<MetricPoint>,
    max_points: usize,
    allow_empty: bool,
) -> Result<Option<PreparedPoints>> {
    if points.is_empty() {
        if allow_empty {
            return Ok(None);
        }
        return Err(RegistryError::invalid(
            "points is empty: send 1 or more metric points per batch",
        ));
    }
    if points.len() > max_points {
        return Err(RegistryError::ResourceExhausted(format!(
            "a batch holds {} points; at most {max_points} are allowed per batch (store.max_batch_points): split it",
            points.len()
        )));
    }
    let server_time = now();
    let mut last_valid_name: Option<&str> = None;
    for (index, point) in points.iter().enumerate() {
        // Batches usually repeat a few names: check each distinct run once.
        if last_valid_name != Some(point.name.as_str()) {
            validate::metric_name(&format!("points[{index}].name"), &point.name)?;
            last_valid_name = Some(point.name.as_str());
        }
        if !point.value.is_finite() {
            validate::finite(
                &format!("points[{index}].value ({})", point.name),
                point.value,
            )?;
        }
        if let Some(wall_time) = &point.wall_time {
            validate::timestamp(&format!("points[{index}].wall_time"), wall_time)?;
        }
    }
    for point in &mut points {
        point.wall_time.get_or_insert(server_time);
    }
    Ok(Some(PreparedPoints { points }))
}

fn nanos(time: &Timestamp) -> i64 {
    time.seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(time.nanos))
}

fn timestamp_from_nanos(nanos: i64) -> Timestamp {
    Timestamp {
        seconds: nanos.div_euclid(1_000_000_000),
        nanos: nanos.rem_euclid(1_000_000_000) as i32,
    }
}

/// Encodes the points of one metric (in batch order) as a chunk.
fn encode_chunk<'a>(points: impl Iterator<Item = &'a MetricPoint> + Clone) -> Vec<u8> {
    let (min_step, max_step) = points.clone().fold((u64::MAX, 0), |(low, high), point| {
        (low.min(point.step), high.max(point.step))
    });
    let mut bytes = Vec::with_capacity(CHUNK_HEADER_BYTES);
    bytes.extend_from_slice(&min_step.to_le_bytes());
    bytes.extend_from_slice(&max_step.to_le_bytes());
    for point in points {
        bytes.extend_from_slice(&point.step.to_le_bytes());
        bytes.extend_from_slice(&point.value.to_le_bytes());
        bytes.extend_from_slice(
            &point
                .wall_time
                .as_ref()
                .map(nanos)
                .unwrap_or_default()
                .to_le_bytes(),
        );
    }
    bytes
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

/// Which part of a series a read wants: steps after `after`, and only the `limit` smallest.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    after: Option<u64>,
    limit: Option<usize>,
}

/// Merges a chunk into a series: later writes of a step replace earlier ones. Steps outside the
/// window are dropped, so a page costs its own size, not the series' size.
fn merge_chunk(series: &mut Series, key: &[u8], chunk: &[u8], window: Window) -> Result<()> {
    if chunk.len() < CHUNK_HEADER_BYTES
        || !(chunk.len() - CHUNK_HEADER_BYTES).is_multiple_of(POINT_BYTES)
    {
        return Err(RegistryError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: format!(
                "metric chunk of {} bytes is not a header and whole points",
                chunk.len()
            ),
        });
    }
    let max_step = le_u64(&chunk[8..16]);
    if window.after.is_some_and(|after| max_step <= after) {
        return Ok(());
    }
    if let Some(limit) = window.limit
        && series.len() >= limit
        && series
            .last_key_value()
            .is_some_and(|(largest, _)| le_u64(&chunk[..8]) > *largest)
    {
        return Ok(());
    }
    for point in chunk[CHUNK_HEADER_BYTES..].chunks_exact(POINT_BYTES) {
        let step = le_u64(&point[0..8]);
        if window.after.is_some_and(|after| step <= after) {
            continue;
        }
        let value = f64::from_le_bytes(point[8..16].try_into().unwrap_or_default());
        let wall = i64::from_le_bytes(point[16..24].try_into().unwrap_or_default());
        series.insert(step, (value, wall));
        if let Some(limit) = window.limit
            && series.len() > limit
        {
            series.pop_last();
        }
    }
    Ok(())
}

/// A position inside a trial's points: (metric name, step).
fn encode_metric_token(name: &str, step: u64) -> String {
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0);
    bytes.extend_from_slice(&step.to_be_bytes());
    hex::encode(bytes)
}

fn decode_metric_token(token: &str) -> Result<(String, u64)> {
    let invalid = || {
        RegistryError::invalid(
            "page_token is not one this list returned: pass next_page_token from the previous page unchanged, or empty for the first page",
        )
    };
    let bytes = hex::decode(token).map_err(|_| invalid())?;
    let split = bytes.iter().position(|b| *b == 0).ok_or_else(invalid)?;
    let name = std::str::from_utf8(&bytes[..split])
        .map_err(|_| invalid())?
        .to_owned();
    let step = u64::from_be_bytes(
        bytes
            .get(split + 1..)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(invalid)?,
    );
    Ok((name, step))
}

impl Store {
    /// Appends one batch to a trial's series atomically (applied, not yet durable: the caller
    /// acknowledges after [`Store::sync`]). Returns the number of points written.
    pub fn append_metrics(&self, trial_id: &str, points: Vec<MetricPoint>) -> Result<usize> {
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

    /// Adds the batch's chunks (one per metric name) and its event to a write being assembled.
    pub(crate) fn stage_points(
        &self,
        write: &mut PendingWrite<'_>,
        trial: &Trial,
        prepared: PreparedPoints,
    ) -> Result<()> {
        let mut names: Vec<&str> = prepared.points.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let sequence = self.next_sequence()?;
            let chunk = encode_chunk(prepared.points.iter().filter(|p| p.name == name));
            write.put_raw(keys::metric_chunk(&trial.id, name, sequence), chunk);
        }
        let batch = AppendMetricsRequest {
            trial_id: trial.id.clone(),
            points: prepared.points,
        };
        write.event(&trial.experiment_id, Record::Metrics(batch))?;
        Ok(())
    }

    /// A trial's points ordered by name then step, optionally one metric only.
    pub fn list_metrics(
        &self,
        trial_id: &str,
        name: &str,
        page: &PageRequest,
    ) -> Result<Page<MetricPoint>> {
        let trial = self.get_trial(trial_id)?;
        if !name.is_empty() {
            validate::metric_name("name", name)?;
        }
        let size = page.checked_size()?;
        let after = match page.token.as_str() {
            "" => None,
            token => {
                let (token_name, step) = decode_metric_token(token)?;
                if !name.is_empty() && token_name != name {
                    return Err(RegistryError::invalid(
                        "page_token belongs to another metric's listing",
                    ));
                }
                Some((token_name, step))
            }
        };
        let start_name = after.as_ref().map(|(n, _)| n.as_str()).unwrap_or(name);
        let mut items = Vec::with_capacity(size.min(1024));
        let mut more = false;
        let mut reader = SeriesReader::new(self, &trial.id, start_name);
        loop {
            let series_after = after
                .as_ref()
                .filter(|(n, _)| Some(n.as_str()) == reader.peek_name())
                .map(|(_, step)| *step);
            let window = Window {
                after: series_after,
                limit: Some(size + 1 - items.len()),
            };
            let Some((series_name, series)) = reader.next_series(window)? else {
                break;
            };
            if !name.is_empty() && series_name != name {
                break;
            }
            for (step, (value, wall)) in series {
                if items.len() == size {
                    more = true;
                    break;
                }
                items.push(MetricPoint {
                    name: series_name.clone(),
                    step,
                    value,
                    wall_time: Some(timestamp_from_nanos(wall)),
                });
            }
            if more {
                break;
            }
        }
        let next_page_token = match (more, items.last()) {
            (true, Some(last)) => encode_metric_token(&last.name, last.step),
            _ => String::new(),
        };
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// Every point of a trial, ordered by name then step (export).
    pub(crate) fn all_points(&self, trial_id: &str) -> Result<Vec<MetricPoint>> {
        let mut points = Vec::new();
        let mut reader = SeriesReader::new(self, trial_id, "");
        while let Some((name, series)) = reader.next_series(Window::default())? {
            points.extend(series.into_iter().map(|(step, (value, wall))| MetricPoint {
                name: name.clone(),
                step,
                value,
                wall_time: Some(timestamp_from_nanos(wall)),
            }));
        }
        Ok(points)
    }
}

/// Walks a trial's series in name order, merging each one's chunks.
struct SeriesReader {
    prefix: String,
    chunks: std::iter::Peekable<sled::Iter>,
    peeked_name: Option<String>,
}

impl SeriesReader {
    fn new(store: &Store, trial_id: &str, start_name: &str) -> Self {
        let prefix = keys::trial_metrics(trial_id);
        let start = if start_name.is_empty() {
            prefix.clone().into_bytes()
        } else {
            keys::metric_series(trial_id, start_name)
        };
        let mut reader = Self {
            prefix,
            chunks: store.records.range(start..).peekable(),
            peeked_name: None,
        };
        reader.peeked_name = reader.name_of_next();
        reader
    }

    fn name_of_next(&mut self) -> Option<String> {
        let (key, _) = self.chunks.peek()?.as_ref().ok()?;
        let tail = key.strip_prefix(self.prefix.as_bytes())?;
        keys::parse_metric_tail(tail).map(|(name, _)| name.to_owned())
    }

    /// Name of the series the next call returns.
    fn peek_name(&self) -> Option<&str> {
        self.peeked_name.as_deref()
    }

    fn next_series(&mut self, window: Window) -> Result<Option<(String, Series)>> {
        let Some(name) = self.peeked_name.take() else {
            // Surface a storage error hidden behind `peek`, if that is why we stopped.
            if let Some(Err(error)) = self.chunks.next() {
                return Err(error.into());
            }
            return Ok(None);
        };
        let mut series = BTreeMap::new();
        while self.name_of_next().as_deref() == Some(name.as_str()) {
            let Some(entry) = self.chunks.next() else {
                break;
            };
            let (key, chunk) = entry?;
            merge_chunk(&mut series, &key, &chunk, window)?;
        }
        self.peeked_name = self.name_of_next();
        Ok(Some((name, series)))
    }
}
