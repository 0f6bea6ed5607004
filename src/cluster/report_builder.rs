//! [`ReportBuilder`]: a worker's engine deltas accumulated between two
//! `stats` reports, then taken as Locust's payload (plus our HDR buckets).
//! Histograms are reset and reused, not dropped, so a worker reporting
//! every three seconds allocates nothing once warm.
//!
//! It does not own the payload's shape (`report`) or sending (`worker`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use hdrhistogram::Histogram;

use super::protocol::unix_secs_f64;
use super::report::*;
use crate::http::Method;
use crate::stats::locust_buckets;
use crate::stats::{
    new_histogram, EntryCounts, Failure, Latencies, SparseHistogram, StatsDelta, MAX_NAMES,
    OTHER_NAME,
};

/// One `(method, name)` row of a [`ReportBuilder`].
pub(super) struct BuilderRow {
    method: Method,
    name: Arc<str>,
    /// Taken from the pool on the first request after each take.
    pub(super) histogram: Option<Histogram<u64>>,
    counts: EntryCounts,
    /// `(unix second, requests, failures)`, seconds rising.
    seconds: Vec<(i64, u64, u64)>,
    last_request: Option<SystemTime>,
}

impl BuilderRow {
    fn count_second(&mut self, second: i64, requests: u64, failures: u64) {
        // Deltas arrive in time order, so the second is almost always the
        // last one or a new last one.
        let at = self.seconds.iter().rposition(|s| s.0 <= second);
        match at {
            Some(i) if self.seconds[i].0 == second => {
                self.seconds[i].1 += requests;
                self.seconds[i].2 += failures;
            }
            Some(i) => self.seconds.insert(i + 1, (second, requests, failures)),
            None => self.seconds.insert(0, (second, requests, failures)),
        }
    }
}

struct FailureRecord {
    occurrences: u64,
    first_seen: SystemTime,
    last_seen: SystemTime,
}

/// Accumulates a worker's engine deltas between two reports.
///
/// Rows are kept by `(method, name)` for the builder's life (their
/// histograms go back to a pool at each take, so a steady run allocates
/// none); past [`MAX_NAMES`] names new ones fold into [`OTHER_NAME`] per
/// method, as the shards and the run's table do.
pub struct ReportBuilder {
    /// Start of the period being accumulated: creation or the last take.
    since: SystemTime,
    /// Per method (indexed by `Method as usize`): name → row.
    index: [HashMap<Arc<str>, usize>; Method::SLOTS],
    other: [Option<usize>; Method::SLOTS],
    named: usize,
    pub(super) rows: Vec<BuilderRow>,
    pub(super) pool: Vec<Histogram<u64>>,
    failures: HashMap<(Method, Arc<str>, Failure), FailureRecord>,
    /// `(message, traceback)` → count, until [`ReportBuilder::take_exceptions`].
    exceptions: HashMap<(String, String), u64>,
}

impl Default for ReportBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ReportBuilder {
    pub fn new() -> Self {
        Self::new_at(SystemTime::now())
    }

    /// A builder whose first report starts at `since` (tests, and a worker
    /// whose test starts later than it was created).
    pub fn new_at(since: SystemTime) -> Self {
        ReportBuilder {
            since,
            index: std::array::from_fn(|_| Default::default()),
            other: [None; Method::SLOTS],
            named: 0,
            rows: Vec::new(),
            pool: Vec::new(),
            failures: HashMap::new(),
            exceptions: HashMap::new(),
        }
    }

    fn row_index(&mut self, method: Method, name: &Arc<str>) -> usize {
        if let Some(&i) = self.index[method.index()].get(&**name) {
            return i;
        }
        // A shard's own fold row joins ours, so "(other)" is one row.
        if self.named >= MAX_NAMES || &**name == OTHER_NAME {
            if let Some(i) = self.other[method.index()] {
                return i;
            }
            let i = self.push_row(method, OTHER_NAME.into());
            self.other[method.index()] = Some(i);
            return i;
        }
        let i = self.push_row(method, name.clone());
        self.index[method.index()].insert(name.clone(), i);
        self.named += 1;
        i
    }

    fn push_row(&mut self, method: Method, name: Arc<str>) -> usize {
        self.rows.push(BuilderRow {
            method,
            name,
            histogram: None,
            counts: EntryCounts::default(),
            seconds: Vec::new(),
            last_request: None,
        });
        self.rows.len() - 1
    }

    /// Fold one shard delta in (a copy from the engine's delta tap).
    ///
    /// Its requests are counted in the unix second `floor(taken_at − 0.5 s)`
    /// of `num_reqs_per_sec`: shards send deltas every second, so the
    /// requests happened mostly in the half second before `taken_at`.
    pub fn add(&mut self, delta: &StatsDelta) {
        let taken = delta.taken_at;
        let second = (unix_secs_f64(taken) - 0.5).floor() as i64;
        for e in &delta.entries {
            if e.counts.requests == 0 {
                continue;
            }
            let i = self.row_index(e.method, &e.name);
            let row = &mut self.rows[i];
            let pool = &mut self.pool;
            let histogram = row
                .histogram
                .get_or_insert_with(|| pool.pop().unwrap_or_else(new_histogram));
            e.histogram.add_to(histogram);
            row.counts.add(&e.counts);
            row.count_second(second, e.counts.requests, e.counts.failures);
            row.last_request = Some(row.last_request.map_or(taken, |t| t.max(taken)));
        }
        for f in &delta.failures {
            // Key by the row's name, so failures fold with their name.
            let i = self.row_index(f.method, &f.name);
            let key = (f.method, self.rows[i].name.clone(), f.failure.clone());
            let record = self.failures.entry(key).or_insert(FailureRecord {
                occurrences: 0,
                first_seen: taken,
                last_seen: taken,
            });
            record.occurrences += f.count;
            record.first_seen = record.first_seen.min(taken);
            record.last_seen = record.last_seen.max(taken);
        }
        for x in &delta.exceptions {
            *self
                .exceptions
                .entry((x.message.clone(), x.traceback.clone()))
                .or_insert(0) += x.count;
        }
    }

    /// Script errors since the last call as `(message, traceback, count)`,
    /// sorted; the worker sends one `exception` message each (with
    /// `count`). `take_report` leaves them alone.
    pub fn take_exceptions(&mut self) -> Vec<(String, String, u64)> {
        let mut out: Vec<_> = self
            .exceptions
            .drain()
            .map(|((message, traceback), count)| (message, traceback, count))
            .collect();
        out.sort();
        out
    }

    /// Forget everything accumulated (Locust clears its stats when a test
    /// starts); the next report starts at `now`.
    pub fn reset(&mut self, now: SystemTime) {
        let _ = self.take_report(now, Vec::new(), 0);
        self.exceptions.clear();
    }

    /// Everything since the last take, as Locust's payload; the builder is
    /// empty afterwards. Sent even when empty (Locust does).
    ///
    /// Entries (only those with requests, sorted by name then method) carry
    /// Locust's rounded `response_times` and our exact `hdr`; the total
    /// ("Aggregated", method "") is their sum without `hdr` (a locusta
    /// master builds its total from the entries). Times are ms floats.
    pub fn take_report(
        &mut self,
        now: SystemTime,
        user_classes_count: Vec<(String, u32)>,
        user_count: u32,
    ) -> WorkerReport {
        let start_time = unix_secs_f64(self.since);
        self.since = now;
        let mut stats = Vec::new();
        let mut total_counts = EntryCounts::default();
        let mut total_last: Option<SystemTime> = None;
        let mut total_times: BTreeMap<u64, u64> = BTreeMap::new();
        let mut total_seconds: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
        for row in &mut self.rows {
            let counts = std::mem::take(&mut row.counts);
            let histogram = row.histogram.take();
            let last_request = row.last_request.take();
            if counts.requests == 0 {
                row.seconds.clear();
                if let Some(h) = histogram {
                    self.pool.push(reset(h));
                }
                continue;
            }
            let (response_times, hdr) = match &histogram {
                Some(h) => (
                    locust_buckets(h, counts.min_us, counts.max_us),
                    Some(SparseHistogram::from_histogram(h)),
                ),
                None => (Vec::new(), None),
            };
            if let Some(h) = histogram {
                self.pool.push(reset(h));
            }
            for &(ms, n) in &response_times {
                *total_times.entry(ms).or_insert(0) += n;
            }
            for &(s, r, f) in &row.seconds {
                let t = total_seconds.entry(s).or_insert((0, 0));
                t.0 += r;
                t.1 += f;
            }
            total_counts.add(&counts);
            total_last = total_last.max(last_request);
            stats.push(ReportEntry {
                name: row.name.to_string(),
                method: row.method.as_str().to_string(),
                response_times,
                num_reqs_per_sec: row.seconds.iter().map(|s| (s.0, s.1)).collect(),
                num_fail_per_sec: row
                    .seconds
                    .iter()
                    .filter(|s| s.2 > 0)
                    .map(|s| (s.0, s.2))
                    .collect(),
                hdr,
                ..entry_from_counts(&counts, start_time, last_request)
            });
            row.seconds.clear();
        }
        stats.sort_by(|a, b| (&a.name, &a.method).cmp(&(&b.name, &b.method)));
        let stats_total = ReportEntry {
            name: "Aggregated".to_string(),
            method: String::new(),
            response_times: total_times.into_iter().collect(),
            num_reqs_per_sec: total_seconds.iter().map(|(&s, t)| (s, t.0)).collect(),
            num_fail_per_sec: total_seconds
                .iter()
                .filter(|(_, t)| t.1 > 0)
                .map(|(&s, t)| (s, t.1))
                .collect(),
            hdr: None,
            ..entry_from_counts(&total_counts, start_time, total_last)
        };
        let mut errors: Vec<ReportError> = self
            .failures
            .drain()
            .map(|((method, name, failure), r)| ReportError {
                method: method.as_str().to_string(),
                name: name.to_string(),
                error: failure.to_string(),
                occurrences: r.occurrences,
                first_seen: Some(unix_secs_f64(r.first_seen)),
                last_seen: Some(unix_secs_f64(r.last_seen)),
            })
            .collect();
        errors.sort_by(|a, b| (&a.name, &a.method, &a.error).cmp(&(&b.name, &b.method, &b.error)));
        WorkerReport {
            stats,
            stats_total,
            errors,
            user_classes_count,
            user_count,
            task_runs: Vec::new(),
            open_model: None,
            custom: Vec::new(),
        }
    }
}

fn reset(mut h: Histogram<u64>) -> Histogram<u64> {
    if !h.is_empty() {
        h.reset();
    }
    h
}

/// The counters of an entry (name, method and the maps left empty).
fn entry_from_counts(
    c: &EntryCounts,
    start_time: f64,
    last_request: Option<SystemTime>,
) -> ReportEntry {
    let timed = c.requests > 0;
    ReportEntry {
        name: String::new(),
        method: String::new(),
        last_request_timestamp: last_request.map(unix_secs_f64),
        start_time,
        num_requests: c.requests,
        num_none_requests: 0,
        num_failures: c.failures,
        total_response_time: us_to_ms(c.total_us),
        max_response_time: if timed { us_to_ms(c.max_us) } else { 0.0 },
        min_response_time: timed.then(|| us_to_ms(c.min_us)),
        total_content_length: c.bytes,
        response_times: Vec::new(),
        num_reqs_per_sec: Vec::new(),
        num_fail_per_sec: Vec::new(),
        hdr: None,
    }
}
