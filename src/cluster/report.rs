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

use std::time::SystemTime;

use super::protocol::{ProtocolError, Value};
use crate::stats::{Delta, SparseHistogram, StatsDelta};

/// One `StatsEntry` of a report (Locust's `serialize()` keys).
#[derive(Clone, Debug, PartialEq)]
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
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerReport {
    pub stats: Vec<ReportEntry>,
    pub stats_total: ReportEntry,
    pub errors: Vec<ReportError>,
    pub user_classes_count: Vec<(String, u32)>,
    pub user_count: u32,
}

impl WorkerReport {
    /// The msgpack map Locust's master reads.
    pub fn to_value(&self) -> Value {
        todo!()
    }

    /// Read a report from any worker (locusta or Locust); extra keys are
    /// ignored, missing required ones are an error.
    pub fn from_value(data: &Value) -> Result<WorkerReport, ProtocolError> {
        todo!()
    }

    /// The report as a delta the master merges: HDR buckets when the worker
    /// sent them, else Locust's rounded ms buckets (at their value in µs).
    /// Entries whose method is not an HTTP method locusta knows are left
    /// out and named in the second value, for one warning per name.
    pub fn to_delta(&self, received_at: SystemTime) -> (Delta<SparseHistogram>, Vec<String>) {
        todo!()
    }
}

/// Accumulates a worker's engine deltas between two reports.
#[derive(Default)]
pub struct ReportBuilder {
    // filled in by the implementation
}

impl ReportBuilder {
    pub fn new() -> Self {
        todo!()
    }

    /// Fold one shard delta in (a copy from the engine's delta tap).
    pub fn add(&mut self, delta: &StatsDelta) {
        todo!()
    }

    /// Everything since the last take, as Locust's payload; the builder is
    /// empty afterwards. Sent even when empty (Locust does).
    pub fn take_report(
        &mut self,
        now: SystemTime,
        user_classes_count: Vec<(String, u32)>,
        user_count: u32,
    ) -> WorkerReport {
        todo!()
    }
}
