//! The run's cumulative stats, owned by the control thread.
//!
//! Owns [`RunStats`]: merging shard deltas into one row per `(method, name)`
//! plus the Aggregated row, one-second windows (closed by [`RunStats::tick`])
//! for current rates and the per-second [`HistoryPoint`]s, Locust's reset,
//! and computing a [`StatsView`]. A master's sparse buckets wait in
//! `run_pending` until the tick (or a read). It does not own recording (`shard`),
//! percentile reading (`view`) or any output format (`report`).
//!
//! Memory: one cumulative histogram (~190 KiB) per row. With `keep_window`
//! each row that saw traffic in the last 10 s also holds up to 12 more (the
//! open second, 10 closed ones and their running sum), so "current"
//! percentiles cost about 2.3 MiB per busy row; it is off by default.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use super::failure::Failure;
use super::history::{History, HistoryPoint};
use super::intervals::{IntervalDrain, IntervalTap};
use super::shard::{
    new_histogram, other_failure, Delta, EntryCounts, FastMap, Latencies, MAX_EXCEPTIONS,
    MAX_FAILURES, MAX_NAMES, OTHER_FAILURE, OTHER_NAME,
};
use super::view::{percentiles_ms, us_to_ms, EntryRow, ExceptionRow, FailureRow, StatsView};
use crate::http::Method;

// Reading one row alone (a script's `locusta.stats`).
#[path = "run_lookup.rs"]
mod lookup;
// Latencies a master's merge counts before recording them (see there why).
#[path = "run_pending.rs"]
mod pending;

use pending::Pending;

/// Closed one-second windows behind "current" rates and percentiles
/// (Locust's `current_rps` spans about 10 s).
pub const WINDOW_SECONDS: usize = 10;

/// A window shorter than this (two ticks at the same instant) is counted as
/// this long, so rates stay finite.
const MIN_WINDOW_SECONDS: f64 = 0.001;

/// Exceptions are shown where they ran; a single process is Locust's "local".
const LOCAL_NODE: &str = "local";

#[derive(Clone, Copy, Debug, Default)]
struct WindowCounts {
    requests: u64,
    failures: u64,
}

/// Per-second histograms of one row (only with `keep_window`).
#[derive(Default)]
struct SecondHistograms {
    /// The window being filled; taken from the pool on first use.
    open: Option<Histogram<u64>>,
    /// Closed windows, oldest first; `None` for a second without requests.
    closed: VecDeque<Option<Histogram<u64>>>,
    /// Running sum of `closed`, kept by add/subtract so reading "current"
    /// percentiles never merges ten histograms.
    sum: Option<Histogram<u64>>,
}

impl SecondHistograms {
    fn close(&mut self, closed: Option<Histogram<u64>>, pool: &mut Vec<Histogram<u64>>) {
        if let Some(h) = &closed {
            add(self.sum.get_or_insert_with(|| take(pool)), h);
        }
        self.closed.push_back(closed);
        if self.closed.len() > WINDOW_SECONDS {
            if let Some(mut oldest) = self.closed.pop_front().flatten() {
                if let Some(sum) = &mut self.sum {
                    if sum.subtract(&oldest).is_err() {
                        // Cannot happen with exact integer counts; rebuild
                        // rather than carry a wrong sum.
                        sum.reset();
                        for h in self.closed.iter().flatten() {
                            add(sum, h);
                        }
                    }
                }
                oldest.reset();
                pool.push(oldest);
            }
        }
    }

    fn clear(&mut self, pool: &mut Vec<Histogram<u64>>) {
        let all = self.open.take().into_iter().chain(self.sum.take());
        for mut h in all.chain(self.closed.drain(..).flatten()) {
            h.reset();
            pool.push(h);
        }
    }
}

/// One row of the run's table: an entry or the Aggregated row.
struct RunRow {
    method: Option<Method>,
    name: Arc<str>,
    /// Read it through [`RunRow::cumulative`]: `pending` is part of it.
    histogram: Histogram<u64>,
    /// Latencies merged but not yet in `histogram` (nor the open second).
    pending: Pending,
    counts: EntryCounts,
    open: WindowCounts,
    /// Ring of closed windows, slot `n % WINDOW_SECONDS` for window `n`.
    closed: [WindowCounts; WINDOW_SECONDS],
    seconds: Option<SecondHistograms>,
}

impl RunRow {
    fn new(method: Option<Method>, name: Arc<str>, keep_window: bool) -> Self {
        RunRow {
            method,
            name,
            histogram: new_histogram(),
            pending: Pending::default(),
            counts: EntryCounts::default(),
            open: WindowCounts::default(),
            closed: [WindowCounts::default(); WINDOW_SECONDS],
            seconds: keep_window.then(SecondHistograms::default),
        }
    }

    fn absorb<L: Latencies>(
        &mut self,
        latencies: &L,
        counts: &EntryCounts,
        pool: &mut Vec<Histogram<u64>>,
        aggregated_second: &mut Histogram<u64>,
    ) {
        self.absorb_counts(counts);
        let second = self
            .seconds
            .as_mut()
            .map(|s| s.open.get_or_insert_with(|| take(pool)));
        let direct = [Some(&mut self.histogram), second, Some(aggregated_second)];
        self.pending.absorb(latencies, direct);
    }

    fn absorb_counts(&mut self, counts: &EntryCounts) {
        self.counts.add(counts);
        self.open.requests += counts.requests;
        self.open.failures += counts.failures;
    }

    /// Roll the window ring; `second` is the histogram of the closing
    /// window when the caller keeps it outside the row (Aggregated does).
    fn close_window(
        &mut self,
        slot: usize,
        second: Option<Histogram<u64>>,
        pool: &mut Vec<Histogram<u64>>,
    ) {
        self.closed[slot] = std::mem::take(&mut self.open);
        if let Some(seconds) = &mut self.seconds {
            let open = second.or_else(|| seconds.open.take());
            seconds.close(open, pool);
        }
    }

    fn reset(&mut self, pool: &mut Vec<Histogram<u64>>) {
        self.histogram.reset();
        self.pending = Pending::default();
        self.counts = EntryCounts::default();
        self.open = WindowCounts::default();
        self.closed = [WindowCounts::default(); WINDOW_SECONDS];
        if let Some(seconds) = &mut self.seconds {
            seconds.clear(pool);
        }
    }
}

fn take(pool: &mut Vec<Histogram<u64>>) -> Histogram<u64> {
    pool.pop().unwrap_or_else(new_histogram)
}

/// `into += from` (see `Latencies for Histogram`).
fn add(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    from.add_to(into);
}

/// How often one exception happened, and on which nodes.
type ExceptionTally = (u64, BTreeSet<Arc<str>>);

struct FailureRecord {
    occurrences: u64,
    first_seen: SystemTime,
    last_seen: SystemTime,
}

/// The run's cumulative table. Single owner (the control thread); front
/// ends read [`RunStats::view`].
pub struct RunStats {
    keep_window: bool,
    start_time: SystemTime,
    /// Time of the latest delta that carried requests.
    last_request: Option<SystemTime>,
    /// Per method: name → index in `rows`.
    index: [FastMap<Arc<str>, usize>; Method::SLOTS],
    other_index: [Option<usize>; Method::SLOTS],
    named_rows: usize,
    /// [`MAX_NAMES`] (smaller in tests).
    name_cap: usize,
    rows: Vec<RunRow>,
    /// Its `histogram` holds closed windows only: the open window is in
    /// `aggregated_second` and folded in at each tick, so a merge costs one
    /// histogram add per entry for Aggregated, and usually a plain copy.
    aggregated: RunRow,
    /// Requests of the open window (history p50/p95, current percentiles),
    /// but for the rows' pending latencies (added at the tick).
    aggregated_second: Histogram<u64>,
    failures: HashMap<(Method, Arc<str>, Failure), FailureRecord>,
    /// [`MAX_FAILURES`]: distinct failure rows before a name's new errors
    /// fold into its `(other)` row (a cluster master merges what workers
    /// claim here, so this is also the bound against a hostile worker).
    failure_cap: usize,
    /// (message, traceback) → count and the nodes it happened on.
    exceptions: HashMap<(String, String), ExceptionTally>,
    /// [`MAX_EXCEPTIONS`], as `failure_cap`.
    exception_cap: usize,
    total_exceptions: u64,
    /// Length of each closed window, same ring slots as the rows'.
    window_seconds: [f64; WINDOW_SECONDS],
    windows_closed: u64,
    last_tick: Option<SystemTime>,
    /// Users running at the last tick: a window's user count is the most
    /// users at either end of it, so the second in which a run stopped
    /// still shows the users that made its requests.
    users_at_last_tick: u32,
    history: History,
    pool: Vec<Histogram<u64>>,
    /// `--hdr-log`'s tap; see [`RunStats::enable_intervals`].
    intervals: Option<IntervalTap>,
}

impl RunStats {
    /// Empty stats starting now. `keep_window`: keep per-second histograms
    /// for "current" percentiles (`--csv-full-history`, the dashboard).
    pub fn new(keep_window: bool) -> Self {
        Self::new_at(keep_window, SystemTime::now())
    }

    /// Empty stats whose run started at `start_time` (tests, replays).
    pub fn new_at(keep_window: bool, start_time: SystemTime) -> Self {
        RunStats {
            keep_window,
            start_time,
            last_request: None,
            index: std::array::from_fn(|_| Default::default()),
            other_index: [None; Method::SLOTS],
            named_rows: 0,
            name_cap: MAX_NAMES,
            rows: Vec::new(),
            aggregated: RunRow::new(None, "Aggregated".into(), keep_window),
            aggregated_second: new_histogram(),
            failures: HashMap::new(),
            failure_cap: MAX_FAILURES,
            exceptions: HashMap::new(),
            exception_cap: MAX_EXCEPTIONS,
            total_exceptions: 0,
            window_seconds: [0.0; WINDOW_SECONDS],
            windows_closed: 0,
            last_tick: None,
            users_at_last_tick: 0,
            history: History::new(),
            pool: Vec::new(),
            intervals: None,
        }
    }

    /// Start queueing each second's per-row histograms (see
    /// `intervals`): from now on until the end, surviving resets.
    pub fn enable_intervals(&mut self) {
        let since = self.last_tick.unwrap_or(self.start_time);
        self.intervals
            .get_or_insert_with(|| IntervalTap::new(since));
    }

    /// Start over with empty stats, no rows and no history (a new run),
    /// keeping the options and the interval tap; what the tap had open is
    /// closed first, so no request is lost from it.
    pub fn renew(&mut self) {
        let now = SystemTime::now();
        self.cut_intervals(now);
        let intervals = self.intervals.take();
        *self = RunStats::new_at(self.keep_window, now);
        self.intervals = intervals;
    }

    /// Close the tap's open interval now (the end of a run: requests
    /// merged since the last tick would otherwise wait for the next one).
    pub fn cut_intervals(&mut self, now: SystemTime) {
        let rows = &self.rows;
        if let Some(tap) = &mut self.intervals {
            tap.cut(now, |i| rows.get(i).map(|r| (r.method, r.name.to_string())));
        }
    }

    /// The closed intervals queued since the last call, oldest first.
    pub fn drain_intervals(&mut self) -> IntervalDrain {
        self.intervals
            .as_mut()
            .map_or_else(Default::default, IntervalTap::drain)
    }

    fn row_index(&mut self, method: Method, name: &Arc<str>) -> usize {
        if let Some(&i) = self.index[method.index()].get(&**name) {
            return i;
        }
        // A shard's own fold row joins ours, so "(other)" is one row.
        if self.named_rows >= self.name_cap || &**name == OTHER_NAME {
            if let Some(i) = self.other_index[method.index()] {
                return i;
            }
            let i = self.push_row(method, OTHER_NAME.into());
            self.other_index[method.index()] = Some(i);
            return i;
        }
        let i = self.push_row(method, name.clone());
        self.index[method.index()].insert(name.clone(), i);
        self.named_rows += 1;
        i
    }

    fn push_row(&mut self, method: Method, name: Arc<str>) -> usize {
        self.rows
            .push(RunRow::new(Some(method), name, self.keep_window));
        self.rows.len() - 1
    }

    /// Fold a shard's delta in. Afterwards the delta's histograms are reset
    /// and its counters zeroed (merging it again adds nothing), and its
    /// failure and exception lists are emptied: it is ready for
    /// `ShardStats::recycle`.
    pub fn merge<L: Latencies>(&mut self, delta: &mut Delta<L>) {
        let seen = delta.taken_at;
        for entry in &mut delta.entries {
            if entry.counts.requests == 0 {
                continue;
            }
            let i = self.row_index(entry.method, &entry.name);
            self.rows[i].absorb(
                &entry.histogram,
                &entry.counts,
                &mut self.pool,
                &mut self.aggregated_second,
            );
            if let Some(tap) = &mut self.intervals {
                tap.record(i, &entry.histogram);
            }
            self.aggregated.absorb_counts(&entry.counts);
            self.last_request = Some(self.last_request.map_or(seen, |t| t.max(seen)));
            entry.histogram.clear();
            entry.counts = EntryCounts::default();
        }
        for f in delta.failures.drain(..) {
            // Key by the row's name, so a name folded into "(other)" here
            // has its failures folded too.
            let i = self.row_index(f.method, &f.name);
            let mut key = (f.method, self.rows[i].name.clone(), f.failure);
            if self.failures.len() >= self.failure_cap && !self.failures.contains_key(&key) {
                key.2 = other_failure();
            }
            let record = self.failures.entry(key).or_insert(FailureRecord {
                occurrences: 0,
                first_seen: seen,
                last_seen: seen,
            });
            record.occurrences = record.occurrences.saturating_add(f.count);
            record.first_seen = record.first_seen.min(seen);
            record.last_seen = record.last_seen.max(seen);
        }
        for e in delta.exceptions.drain(..) {
            let mut key = (e.message, e.traceback);
            if self.exceptions.len() >= self.exception_cap && !self.exceptions.contains_key(&key) {
                key = (OTHER_FAILURE.to_string(), String::new());
            }
            let (count, nodes) = self.exceptions.entry(key).or_default();
            *count = count.saturating_add(e.count);
            nodes.insert(e.node.unwrap_or_else(|| LOCAL_NODE.into()));
            self.total_exceptions = self.total_exceptions.saturating_add(e.count);
        }
    }

    /// Close the one-second window: record a history point and roll the
    /// "current" rates and percentiles. Call once per second, with the
    /// users running now.
    pub fn tick(&mut self, now: SystemTime, user_count: u32) {
        let since = self.last_tick.unwrap_or(self.start_time);
        let seconds = now
            .duration_since(since)
            .map_or(0.0, |d| d.as_secs_f64())
            .max(MIN_WINDOW_SECONDS);
        for row in &mut self.rows {
            row.pending.add_to(&mut self.aggregated_second);
            row.flush(&mut self.pool);
        }
        let open = &self.aggregated.open;
        let counts = (open.requests, open.failures);
        let users = user_count.max(self.users_at_last_tick);
        self.users_at_last_tick = user_count;
        self.history.push(
            unix_seconds(now),
            users,
            seconds,
            counts,
            &self.aggregated_second,
        );

        let slot = (self.windows_closed % WINDOW_SECONDS as u64) as usize;
        for row in &mut self.rows {
            row.close_window(slot, None, &mut self.pool);
        }
        let closed_second = if self.aggregated_second.is_empty() {
            None
        } else {
            add(&mut self.aggregated.histogram, &self.aggregated_second);
            if self.keep_window {
                // The window ring keeps this one; fill a fresh one next.
                Some(std::mem::replace(
                    &mut self.aggregated_second,
                    take(&mut self.pool),
                ))
            } else {
                self.aggregated_second.reset();
                None
            }
        };
        self.aggregated
            .close_window(slot, closed_second, &mut self.pool);
        self.window_seconds[slot] = seconds;
        self.windows_closed += 1;
        self.last_tick = Some(now);
        self.cut_intervals(now);
    }

    /// Locust's "reset stats": zero every row (names stay, as in Locust),
    /// drop failures, exceptions and history; the run restarts now.
    pub fn reset(&mut self) {
        self.reset_at(SystemTime::now());
    }

    /// [`RunStats::reset`] with an explicit restart time.
    pub fn reset_at(&mut self, now: SystemTime) {
        self.start_time = now;
        self.last_request = None;
        for row in &mut self.rows {
            row.reset(&mut self.pool);
        }
        self.aggregated.reset(&mut self.pool);
        self.aggregated_second.reset();
        self.failures.clear();
        self.exceptions.clear();
        self.total_exceptions = 0;
        self.window_seconds = [0.0; WINDOW_SECONDS];
        self.windows_closed = 0;
        self.last_tick = None;
        self.users_at_last_tick = 0;
        self.history.clear();
    }

    /// The table as of the last merge and tick. `now` only caps timestamps
    /// that lie in its future (a clock stepped back mid-run).
    pub fn view(&self, now: SystemTime) -> StatsView {
        let last_request = self.last_request.map(|t| t.min(now));
        let elapsed = last_request
            .and_then(|t| t.duration_since(self.start_time).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        let mut entries: Vec<EntryRow> = self
            .rows
            .iter()
            .map(|r| self.row_view(r, &r.cumulative(), elapsed))
            .collect();
        entries.sort_by(|a, b| {
            (a.name.as_str(), a.method_str()).cmp(&(b.name.as_str(), b.method_str()))
        });

        let mut failures: Vec<FailureRow> = self
            .failures
            .iter()
            .map(|((method, name, failure), r)| FailureRow {
                method: *method,
                name: name.to_string(),
                error: failure.to_string(),
                occurrences: r.occurrences,
                first_seen: r.first_seen.min(now),
                last_seen: r.last_seen.min(now),
            })
            .collect();
        failures.sort_by(|a, b| {
            b.occurrences.cmp(&a.occurrences).then_with(|| {
                (&a.name, a.method.as_str(), &a.error).cmp(&(&b.name, b.method.as_str(), &b.error))
            })
        });

        let mut exceptions: Vec<ExceptionRow> = self
            .exceptions
            .iter()
            .map(|((message, traceback), (count, nodes))| ExceptionRow {
                count: *count,
                message: message.clone(),
                traceback: traceback.clone(),
                nodes: nodes.iter().map(|n| n.to_string()).collect(),
            })
            .collect();
        exceptions.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.message.cmp(&b.message))
        });

        StatsView {
            entries,
            aggregated: self.aggregated_view(elapsed),
            failures,
            exceptions,
            start_time: self.start_time,
            last_request,
            last_second: self.history.points().last().copied(),
        }
    }

    /// `cumulative`: the row's whole-run histogram (passed in because
    /// Aggregated's is assembled on the fly).
    fn row_view(&self, row: &RunRow, cumulative: &Histogram<u64>, elapsed: f64) -> EntryRow {
        let c = &row.counts;
        let n = c.requests;
        let per = |x: u64| if n > 0 { x as f64 / n as f64 } else { 0.0 };
        let rate = |x: u64| {
            if elapsed > 0.0 {
                x as f64 / elapsed
            } else {
                0.0
            }
        };
        // Requests without a response time (Locust workers) leave min unset.
        let (min_us, max_us) = if n > 0 && c.min_us != u64::MAX {
            (c.min_us, c.max_us)
        } else {
            (0, c.max_us)
        };
        let percentiles = percentiles_ms(cumulative, max_us);
        let windows = (self.windows_closed as usize).min(WINDOW_SECONDS);
        let window_seconds: f64 = self.window_seconds[..windows].iter().sum();
        let current = |pick: fn(&WindowCounts) -> u64| {
            let total: u64 = row.closed[..windows].iter().map(pick).sum();
            if window_seconds > 0.0 {
                total as f64 / window_seconds
            } else {
                0.0
            }
        };
        EntryRow {
            method: row.method,
            name: row.name.to_string(),
            num_requests: n,
            num_failures: c.failures,
            median_ms: percentiles[0],
            avg_ms: per(c.total_us) / 1000.0,
            min_ms: us_to_ms(min_us),
            max_ms: us_to_ms(max_us),
            avg_content_size: per(c.bytes),
            total_rps: rate(n),
            total_fail_per_sec: rate(c.failures),
            current_rps: current(|w| w.requests),
            current_fail_per_sec: current(|w| w.failures),
            percentiles_ms: percentiles,
            current_percentiles_ms: row.seconds.as_ref().map(|s| match &s.sum {
                Some(sum) => percentiles_ms(sum, max_us),
                None => [0.0; 11],
            }),
        }
    }

    /// Per-second points since the start or last reset, oldest first.
    pub fn history(&self) -> &[HistoryPoint] {
        self.history.points()
    }

    pub fn total_requests(&self) -> u64 {
        self.aggregated.counts.requests
    }

    pub fn total_failures(&self) -> u64 {
        self.aggregated.counts.failures
    }

    pub fn total_exceptions(&self) -> u64 {
        self.total_exceptions
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
#[path = "run_pending_tests.rs"]
mod pending_tests;
#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
