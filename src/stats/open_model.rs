//! Open-model (arrival-rate) stats: how many iterations were intended,
//! started, started late and dropped, and every request's latency measured
//! from its iteration's intended start (coordinated-omission corrected, as
//! wrk2 does) beside the usual one measured from the actual send.
//!
//! The corrected latencies are a second [`RunStats`] table fed by deltas of
//! the same shape as the main one ([`OpenDelta::corrected`]), so merging,
//! percentiles and the cluster's sparse histograms are the same code, not a
//! copy. The rule a shard records by: a request's corrected latency is its
//! measured latency plus how late its iteration started (actual start minus
//! intended start). This module does not own the schedule (the engine's
//! open-model scheduler) nor how reports lay the numbers out (`report`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::history::HistoryPoint;
use super::run::RunStats;
use super::shard::{Delta, Latencies};
use super::view::{EntryHistogram, StatsView};
use super::PagedHistogram;
use crate::http::Method;

/// Most distinct rows of per-name dropped counts kept (a bound against a
/// hostile cluster peer; raw mode has one row per URL).
pub const MAX_DROPPED_ROWS: usize = super::MAX_NAMES;

/// Iterations of an open-model run. `intended` = `started` + `dropped` +
/// those still queued; `late` counts started iterations that found no free
/// user at their intended time and waited in the queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IterationCounts {
    pub intended: u64,
    pub started: u64,
    pub late: u64,
    pub dropped: u64,
}

impl IterationCounts {
    /// Saturating: a cluster master adds what workers claim.
    pub fn add(&mut self, other: &IterationCounts) {
        self.intended = self.intended.saturating_add(other.intended);
        self.started = self.started.saturating_add(other.started);
        self.late = self.late.saturating_add(other.late);
        self.dropped = self.dropped.saturating_add(other.dropped);
    }

    pub fn is_zero(&self) -> bool {
        *self == IterationCounts::default()
    }
}

/// What one shard (or one cluster worker) counted of the open model since
/// its previous report.
#[derive(Clone, Debug)]
pub struct OpenDelta<L = PagedHistogram> {
    pub iterations: IterationCounts,
    /// Raw mode, where an iteration is one request of a known URL: dropped
    /// iterations per `(method, name)` row. Empty for scripts (a dropped
    /// iteration never picked a task, so it has no name).
    pub dropped_by_name: Vec<(Method, Arc<str>, u64)>,
    /// Corrected latencies per row: the rows' counts and histograms as the
    /// main delta has them, with latencies from the intended start.
    /// Failures and exceptions stay empty (they are in the main delta).
    pub corrected: Delta<L>,
}

impl<L> OpenDelta<L> {
    pub fn empty(taken_at: SystemTime) -> Self {
        OpenDelta {
            iterations: IterationCounts::default(),
            dropped_by_name: Vec::new(),
            corrected: Delta::empty(taken_at),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.iterations.is_zero() && self.dropped_by_name.is_empty() && self.corrected.is_empty()
    }
}

/// The run's open-model table (control thread or cluster master).
pub struct OpenModelStats {
    target_rate: f64,
    max_users: u32,
    iterations: IterationCounts,
    dropped_by_name: HashMap<(Method, Arc<str>), u64>,
    corrected: RunStats,
}

/// What reports read: the counters, and the corrected table (rows and
/// Aggregated, with Locust's percentiles) in the main view's row order.
#[derive(Clone, Debug)]
pub struct OpenModelReport {
    /// Iterations per second asked for now.
    pub target_rate: f64,
    pub max_users: u32,
    pub iterations: IterationCounts,
    /// Raw mode's per-URL dropped iterations, sorted as the view's rows.
    pub dropped_by_name: Vec<(Method, String, u64)>,
    pub corrected: StatsView,
    /// Per second, the corrected p50/p95/p99 (the reports' charts).
    pub history: Vec<HistoryPoint>,
}

impl OpenModelReport {
    /// Dropped iterations of one row (0 for scripts' rows).
    pub fn dropped_of(&self, method: Method, name: &str) -> u64 {
        self.dropped_by_name
            .iter()
            .find(|(m, n, _)| *m == method && n == name)
            .map_or(0, |r| r.2)
    }
}

impl OpenModelStats {
    pub fn new(target_rate: f64, max_users: u32) -> Self {
        OpenModelStats {
            target_rate,
            max_users,
            iterations: IterationCounts::default(),
            dropped_by_name: HashMap::new(),
            corrected: RunStats::new(false),
        }
    }

    /// A new target rate (a ramping stage, or the user's change).
    pub fn set_rate(&mut self, rate: f64) {
        self.target_rate = rate;
    }

    pub fn target_rate(&self) -> f64 {
        self.target_rate
    }

    /// Fold a delta in; afterwards it is empty and ready to be recycled
    /// (see `RunStats::merge`).
    pub fn merge<L: Latencies>(&mut self, delta: &mut OpenDelta<L>) {
        self.iterations.add(&delta.iterations);
        delta.iterations = IterationCounts::default();
        for (method, name, n) in delta.dropped_by_name.drain(..) {
            let full = self.dropped_by_name.len() >= MAX_DROPPED_ROWS;
            let key = (method, name);
            if full && !self.dropped_by_name.contains_key(&key) {
                let other = (method, Arc::from(super::OTHER_NAME));
                let slot = self.dropped_by_name.entry(other).or_insert(0);
                *slot = slot.saturating_add(n);
                continue;
            }
            let slot = self.dropped_by_name.entry(key).or_insert(0);
            *slot = slot.saturating_add(n);
        }
        self.corrected.merge(&mut delta.corrected);
    }

    /// Close the one-second window of the corrected table (its history's
    /// p50/p95/p99), with the main table's tick.
    pub fn tick(&mut self, now: SystemTime, user_count: u32) {
        self.corrected.tick(now, user_count);
    }

    /// Locust's reset: counters and corrected latencies start over.
    pub fn reset(&mut self) {
        self.iterations = IterationCounts::default();
        self.dropped_by_name.clear();
        self.corrected.reset();
    }

    /// Requests in the corrected table (a cluster master's overflow bound).
    pub fn total_requests(&self) -> u64 {
        self.corrected.total_requests()
    }

    pub fn iterations(&self) -> IterationCounts {
        self.iterations
    }

    pub fn report(&self, now: SystemTime) -> OpenModelReport {
        let corrected = self.corrected.view(now);
        let mut dropped_by_name: Vec<(Method, String, u64)> = self
            .dropped_by_name
            .iter()
            .map(|((m, n), c)| (*m, n.to_string(), *c))
            .collect();
        dropped_by_name
            .sort_by(|a, b| (a.1.as_str(), a.0.as_str()).cmp(&(b.1.as_str(), b.0.as_str())));
        OpenModelReport {
            target_rate: self.target_rate,
            max_users: self.max_users,
            iterations: self.iterations,
            dropped_by_name,
            corrected,
            history: self.corrected.history().to_vec(),
        }
    }

    /// Corrected whole-run histograms per row, Aggregated last.
    pub fn histograms(&self) -> Vec<EntryHistogram> {
        self.corrected.histograms()
    }

    /// Per-second corrected p50/p95/p99 (charts).
    pub fn history(&self) -> &[HistoryPoint] {
        self.corrected.history()
    }
}

/// A test delta: GET `name` had a 1 ms and a 501 ms corrected request,
/// 3 iterations were dropped (on `name`), 1 started late, and `intended`
/// were intended (the stats', reports' and cluster's tests share it).
#[cfg(test)]
pub(crate) fn sample_delta(name: &str, intended: u64) -> OpenDelta {
    let mut shard = super::ShardStats::new();
    let id = shard.entry(Method::Get, name);
    shard.record(id, 1_000, 0);
    shard.record(id, 501_000, 0);
    OpenDelta {
        iterations: IterationCounts {
            intended,
            started: 2,
            late: 1,
            dropped: 3,
        },
        dropped_by_name: vec![(Method::Get, Arc::from(name), 3)],
        corrected: shard.take_delta(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_counts_dropped_rows_and_corrected_latency() {
        let mut delta = sample_delta("/", 5);
        let mut stats = OpenModelStats::new(100.0, 10);
        stats.merge(&mut delta);
        stats.merge(&mut delta); // merged deltas are empty: adds nothing
        let report = stats.report(SystemTime::now());
        assert_eq!(report.iterations.intended, 5);
        assert_eq!(report.iterations.dropped, 3);
        assert_eq!(report.dropped_of(Method::Get, "/"), 3);
        assert_eq!(report.corrected.aggregated.num_requests, 2);
        assert!(report.corrected.aggregated.max_ms >= 500.0);
        stats.reset();
        assert!(stats.report(SystemTime::now()).iterations.is_zero());
    }
}
