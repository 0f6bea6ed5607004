//! A worker's `stats` report in Locust's format, built from engine deltas,
//! and turned back into a delta at the master.
//!
//! Locust's fields and units: response times in ms as floats, per-second
//! maps keyed by unix seconds, `response_times` bucketed the way Locust
//! rounds (exact below 100 ms, 2 significant digits above), every entry a
//! delta since the last report. Between locusta peers each entry also
//! carries `hdr`: the exact non-empty buckets of its HDR histogram
//! ([`SparseHistogram`], msgpack `bin`), which a Locust master ignores and a
//! locusta master merges instead of the rounded buckets.
//!
//! Owns the payload's shape and both conversions. It does not own sending
//! (`worker`) or merging into the run (`stats::RunStats::merge`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use super::protocol::{
    class_counts_value, count_of, describe, map_value, str_value, task_runs_value, Fields,
    ProtocolError, Value,
};
use crate::engine::TaskRuns;
use crate::http::Method;
pub use crate::stats::locust_bucket_ms;
use crate::stats::{Delta, DeltaEntry, DeltaFailure, EntryCounts, Failure, SparseHistogram};

/// The message type reports travel in (and errors name).
const KIND: &str = "stats";

/// One `StatsEntry` of a report (Locust's `serialize()` keys).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportEntry {
    pub name: String,
    /// "GET", …; "" for the total.
    pub method: String,
    pub last_request_timestamp: Option<f64>,
    pub start_time: f64,
    pub num_requests: u64,
    pub num_none_requests: u64,
    pub num_failures: u64,
    /// Sum of response times, ms.
    pub total_response_time: f64,
    pub max_response_time: f64,
    pub min_response_time: Option<f64>,
    pub total_content_length: u64,
    /// Locust's rounded ms bucket → count.
    pub response_times: Vec<(u64, u64)>,
    pub num_reqs_per_sec: Vec<(i64, u64)>,
    pub num_fail_per_sec: Vec<(i64, u64)>,
    /// Our extension: exact µs buckets.
    pub hdr: Option<SparseHistogram>,
}

/// One `StatsErrorDict`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportError {
    pub method: String,
    pub name: String,
    pub error: String,
    pub occurrences: u64,
    pub first_seen: Option<f64>,
    pub last_seen: Option<f64>,
}

/// The whole `stats` data.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerReport {
    pub stats: Vec<ReportEntry>,
    pub stats_total: ReportEntry,
    pub errors: Vec<ReportError>,
    pub user_classes_count: Vec<(String, u32)>,
    pub user_count: u32,
    /// locusta workers: each task's runs since the start or last reset
    /// (cumulative, so a lost report loses nothing); empty from Locust.
    pub task_runs: Vec<TaskRuns>,
    /// locusta workers in an open-model run: what the open model did
    /// since the previous report; `None` otherwise.
    pub open_model: Option<super::open_report::OpenReport>,
    /// Top-level keys of the message this side does not know (a script's
    /// custom data), with their values, in message order; `to_value`
    /// appends them. Keys that are not strings are dropped.
    pub custom: Vec<(String, Value)>,
}

impl ReportEntry {
    /// Locust's `StatsEntry.serialize()` keys, in its order, plus `hdr`.
    pub fn to_value(&self) -> Value {
        let mut pairs = vec![
            ("name", str_value(&self.name)),
            ("method", str_value(&self.method)),
            (
                "last_request_timestamp",
                self.last_request_timestamp.map_or(Value::Nil, Value::F64),
            ),
            ("start_time", Value::F64(self.start_time)),
            ("num_requests", Value::from(self.num_requests)),
            ("num_none_requests", Value::from(self.num_none_requests)),
            ("num_failures", Value::from(self.num_failures)),
            ("total_response_time", Value::F64(self.total_response_time)),
            ("max_response_time", Value::F64(self.max_response_time)),
            (
                "min_response_time",
                self.min_response_time.map_or(Value::Nil, Value::F64),
            ),
            (
                "total_content_length",
                Value::from(self.total_content_length),
            ),
            ("response_times", int_map(&self.response_times)),
            ("num_reqs_per_sec", int_map(&self.num_reqs_per_sec)),
            ("num_fail_per_sec", int_map(&self.num_fail_per_sec)),
        ];
        if let Some(hdr) = &self.hdr {
            let mut bytes = Vec::new();
            hdr.encode(&mut bytes);
            pairs.push(("hdr", Value::Binary(bytes)));
        }
        map_value(pairs)
    }

    /// Read one entry; `path` ("stats[2].") names it in errors.
    ///
    /// Required: Locust's keys (every Locust 2.x worker and boomer send
    /// them). `last_request_timestamp`, `min_response_time` and `hdr` may
    /// be nil or absent. Times must be finite and not negative.
    pub(super) fn from_value(path: String, v: &Value) -> Result<ReportEntry, ProtocolError> {
        let f = Fields::at(KIND, path, v)?;
        let hdr = match f.get("hdr") {
            None => None,
            Some(Value::Binary(bytes)) => Some(
                SparseHistogram::decode(bytes)
                    .map_err(|e| f.error("hdr", &format!("is not a histogram: {e}")))?,
            ),
            Some(other) => return Err(f.mistyped("hdr", other, "binary")),
        };
        Ok(ReportEntry {
            name: f.str("name")?.to_string(),
            method: f.str("method")?.to_string(),
            last_request_timestamp: f.opt_non_negative("last_request_timestamp")?,
            start_time: f.non_negative("start_time")?,
            num_requests: f.count("num_requests")?,
            num_none_requests: f.count("num_none_requests")?,
            num_failures: f.count("num_failures")?,
            total_response_time: f.ms("total_response_time")?,
            max_response_time: f.ms("max_response_time")?,
            min_response_time: f.opt_ms("min_response_time")?,
            total_content_length: f.count("total_content_length")?,
            response_times: count_map(&f, "response_times", count_of)?,
            num_reqs_per_sec: count_map(&f, "num_reqs_per_sec", unix_second_of)?,
            num_fail_per_sec: count_map(&f, "num_fail_per_sec", unix_second_of)?,
            hdr,
        })
    }
}

/// `{int: int}` with msgpack integer keys (Locust's `strict_map_key=False`).
fn int_map<K: Copy + Into<Value>>(pairs: &[(K, u64)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|&(k, n)| (k.into(), Value::from(n)))
            .collect(),
    )
}

/// A `{number: count}` map; keys may be ints or floats (rounded).
fn count_map<K>(
    f: &Fields<'_>,
    key: &str,
    read_key: impl Fn(&Value) -> Option<K>,
) -> Result<Vec<(K, u64)>, ProtocolError> {
    let v = f.required(key)?;
    let Value::Map(map) = v else {
        return Err(f.mistyped(key, v, "a map"));
    };
    map.iter()
        .map(|(k, n)| {
            let k =
                read_key(k).ok_or_else(|| f.error(key, &format!("has the key {}", describe(k))))?;
            let n = count_of(n)
                .ok_or_else(|| f.error(key, &format!("has the count {}", describe(n))))?;
            Ok((k, n))
        })
        .collect()
}

/// A unix second: a non-negative integer (a float is rounded).
fn unix_second_of(v: &Value) -> Option<i64> {
    count_of(v).and_then(|n| i64::try_from(n).ok())
}

impl ReportError {
    fn to_value(&self) -> Value {
        map_value(vec![
            ("method", str_value(&self.method)),
            ("name", str_value(&self.name)),
            ("error", str_value(&self.error)),
            ("occurrences", Value::from(self.occurrences)),
            ("first_seen", self.first_seen.map_or(Value::Nil, Value::F64)),
            ("last_seen", self.last_seen.map_or(Value::Nil, Value::F64)),
        ])
    }

    fn from_value(path: String, v: &Value) -> Result<ReportError, ProtocolError> {
        let f = Fields::at(KIND, path, v)?;
        Ok(ReportError {
            method: f.str("method")?.to_string(),
            name: f.str("name")?.to_string(),
            error: f.str("error")?.to_string(),
            occurrences: f.count("occurrences")?,
            first_seen: f.opt_non_negative("first_seen")?,
            last_seen: f.opt_non_negative("last_seen")?,
        })
    }
}

/// The key of an error in the `errors` map: the 128-bit FNV-1a of
/// `"{method}.{name}.{error}"` in hex. Locust uses the sha256 of the same
/// text (with `repr(error)`), but its master only needs a key that is the
/// same for the same error in every report, and merges by it.
pub fn error_key(method: &str, name: &str, error: &str) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    let mut hash = OFFSET;
    let parts: [&[u8]; 5] = [
        method.as_bytes(),
        b".",
        name.as_bytes(),
        b".",
        error.as_bytes(),
    ];
    for byte in parts.into_iter().flatten() {
        hash ^= u128::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    format!("{hash:032x}")
}

/// Milliseconds (validated finite, ≥ 0) to whole microseconds.
fn ms_to_us(ms: f64) -> u64 {
    // `as` saturates (and maps NaN to 0), so a bad value cannot panic.
    (ms * 1000.0).round() as u64
}

pub(super) fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Locust's rounded ms buckets as µs buckets: sorted, duplicates merged.
fn buckets_to_sparse(response_times: &[(u64, u64)]) -> SparseHistogram {
    let mut buckets: Vec<(u64, u64)> = response_times
        .iter()
        .filter(|b| b.1 > 0)
        .map(|&(ms, n)| (ms.saturating_mul(1000), n))
        .collect();
    buckets.sort_unstable_by_key(|b| b.0);
    let mut sparse = SparseHistogram::default();
    let mut pending: Option<(u64, u64)> = None;
    for (us, n) in buckets {
        pending = match pending {
            Some((p, m)) if p == us => Some((p, m.saturating_add(n))),
            Some((p, m)) => {
                sparse.push(p, m);
                Some((us, n))
            }
            None => Some((us, n)),
        };
    }
    if let Some((p, m)) = pending {
        sparse.push(p, m);
    }
    sparse
}

/// Our key for [`WorkerReport::task_runs`] (a Locust master ignores it).
const TASK_RUNS_KEY: &str = "locusta_task_runs";

/// The top-level keys [`WorkerReport`] has fields for; any other goes to
/// [`WorkerReport::custom`].
pub(super) const KNOWN_KEYS: [&str; 7] = [
    "stats",
    "stats_total",
    "errors",
    "user_classes_count",
    "user_count",
    TASK_RUNS_KEY,
    super::open_report::OPEN_MODEL_KEY,
];

impl WorkerReport {
    /// The msgpack map Locust's master reads.
    pub fn to_value(&self) -> Value {
        let errors = self
            .errors
            .iter()
            .map(|e| {
                (
                    Value::from(error_key(&e.method, &e.name, &e.error)),
                    e.to_value(),
                )
            })
            .collect();
        let mut fields = vec![
            (
                "stats",
                Value::Array(self.stats.iter().map(ReportEntry::to_value).collect()),
            ),
            ("stats_total", self.stats_total.to_value()),
            ("errors", Value::Map(errors)),
            (
                "user_classes_count",
                class_counts_value(&self.user_classes_count),
            ),
            ("user_count", Value::from(self.user_count)),
        ];
        // Only where there are tasks: raw mode's payload stays Locust's.
        if !self.task_runs.is_empty() {
            fields.push((TASK_RUNS_KEY, task_runs_value(&self.task_runs)));
        }
        if let Some(open) = &self.open_model {
            fields.push((super::open_report::OPEN_MODEL_KEY, open.to_value()));
        }
        let Value::Map(mut pairs) = map_value(fields) else {
            unreachable!("map_value makes a map")
        };
        pairs.extend(self.custom.iter().map(|(k, v)| (str_value(k), v.clone())));
        Value::Map(pairs)
    }

    /// Read a report from any worker (locusta or Locust); extra keys are
    /// ignored, missing required ones are an error.
    pub fn from_value(data: &Value) -> Result<WorkerReport, ProtocolError> {
        let f = Fields::of(KIND, data)?;
        let v = f.required("stats")?;
        let Value::Array(entries) = v else {
            return Err(f.mistyped("stats", v, "an array"));
        };
        let stats = entries
            .iter()
            .enumerate()
            .map(|(i, e)| ReportEntry::from_value(format!("stats[{i}]."), e))
            .collect::<Result<_, _>>()?;
        let stats_total =
            ReportEntry::from_value("stats_total.".to_string(), f.required("stats_total")?)?;
        let v = f.required("errors")?;
        let Value::Map(errors) = v else {
            return Err(f.mistyped("errors", v, "a map"));
        };
        let errors = errors
            .iter()
            .enumerate()
            .map(|(i, (_, e))| ReportError::from_value(format!("errors[{i}]."), e))
            .collect::<Result<_, _>>()?;
        let mut report = WorkerReport {
            stats,
            stats_total,
            errors,
            ..WorkerReport::default()
        };
        report.read_small_fields(&f)?;
        Ok(report)
    }

    /// Fill everything but `stats`, `stats_total` and `errors` from the
    /// top-level map `f` (the streaming decoder in `report_decode` reads
    /// those three itself and hands the rest here).
    pub(super) fn read_small_fields(&mut self, f: &Fields<'_>) -> Result<(), ProtocolError> {
        self.user_classes_count = f.class_counts("user_classes_count")?;
        self.user_count = f.u32("user_count")?;
        self.task_runs = f.task_runs(TASK_RUNS_KEY)?;
        self.open_model = f
            .get(super::open_report::OPEN_MODEL_KEY)
            .map(|v| super::open_report::OpenReport::from_value(KIND, v))
            .transpose()?;
        self.custom = f
            .pairs()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?, v)))
            .filter(|(k, _)| !KNOWN_KEYS.contains(k))
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Ok(())
    }

    /// The report as a delta the master merges: HDR buckets when the worker
    /// sent them, else Locust's rounded ms buckets (at their value in µs).
    /// Entries whose request type cannot be registered (a bad name, or
    /// past the process's bound on custom types, see [`Method::intern`])
    /// are left out and named in the second value, for a warning.
    ///
    /// `counts.requests` is `num_requests`, `num_none_requests` included
    /// (as Locust counts them); the histogram holds only the timed ones.
    /// An entry without a `min_response_time` has `min_us = u64::MAX`.
    /// Errors become [`Failure::Message`] with Locust's error text.
    pub fn to_delta(&self, received_at: SystemTime) -> (Delta<SparseHistogram>, Vec<String>) {
        self.clone().take_delta(received_at)
    }

    /// [`WorkerReport::to_delta`] that moves each entry's `hdr` buckets
    /// into the delta instead of copying them (the master's way: a report
    /// is merged once).
    pub fn take_delta(&mut self, received_at: SystemTime) -> (Delta<SparseHistogram>, Vec<String>) {
        let (mut delta, mut unknown) = entries_to_delta(&mut self.stats, received_at);
        for e in &self.errors {
            let Ok(method) = Method::intern(&e.method) else {
                unknown.push(format!("{} {}", e.method, e.name));
                continue;
            };
            delta.failures.push(DeltaFailure {
                method,
                name: Arc::from(e.name.as_str()),
                failure: Failure::Message(e.error.as_str().into()),
                count: e.occurrences,
            });
        }
        unknown.sort();
        unknown.dedup();
        (delta, unknown)
    }
}

/// Report entries as a delta's entries: HDR buckets when the worker sent
/// them (moved out of `entries`), else Locust's rounded ms buckets (at
/// their value in µs). Entries whose request type cannot be registered are
/// left out and named (sorted) in the second value.
pub(super) fn entries_to_delta(
    entries: &mut [ReportEntry],
    received_at: SystemTime,
) -> (Delta<SparseHistogram>, Vec<String>) {
    let mut delta = Delta::empty(received_at);
    delta.entries.reserve_exact(entries.len());
    let mut unknown = BTreeSet::new();
    for e in entries {
        let Ok(method) = Method::intern(&e.method) else {
            unknown.insert(format!("{} {}", e.method, e.name));
            continue;
        };
        let histogram = match e.hdr.take() {
            Some(hdr) => hdr,
            None => buckets_to_sparse(&e.response_times),
        };
        delta.entries.push(DeltaEntry {
            method,
            name: Arc::from(e.name.as_str()),
            histogram,
            counts: EntryCounts {
                requests: e.num_requests,
                failures: e.num_failures,
                total_us: ms_to_us(e.total_response_time),
                min_us: e.min_response_time.map_or(u64::MAX, ms_to_us),
                max_us: ms_to_us(e.max_response_time),
                bytes: e.total_content_length,
            },
        });
    }
    (delta, unknown.into_iter().collect())
}

/// Distinct refused request types the master names one by one in its
/// log (later ones are rate-limited).
pub(super) const MAX_WARNED_NAMES: usize = 256;

/// The warning for a row [`WorkerReport::to_delta`] left out.
pub(super) fn unknown_type_line(from: &str, name: &str) -> String {
    format!(
        "worker {from} reported `{name}`, whose request type locusta cannot record \
         (not printable, longer than {} bytes, or past {} custom types): not counted",
        crate::http::method::MAX_CUSTOM_LEN,
        crate::http::method::MAX_CUSTOM
    )
}

pub use super::report_builder::ReportBuilder;

#[cfg(test)]
#[path = "report_builder_tests.rs"]
mod builder_tests;
#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
