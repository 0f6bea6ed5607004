//! One shard's stats since its last report, and the delta it sends.
//!
//! Owns [`ShardStats`] (single-threaded, no locks: the request hot path is
//! `entry` + `record`), [`StatsDelta`] (what a shard sends to the control
//! thread every report tick) and the histogram pool that lets a delta's
//! histograms come back and be reused, so a steady run allocates nothing.
//! It does not own merging, rates or percentiles (see `run` and `view`).
//!
//! Name cap: a script that puts ids in request names (`/item/1234`) would
//! create a row (and a cumulative histogram in the run) per id. Past
//! [`MAX_NAMES`] distinct names, new names are folded into one
//! [`OTHER_NAME`] entry per method (the run's table applies the same cap).
//! Locust has no cap; its fix for such scripts is grouping with `name=`,
//! which works here too. Failures and exceptions are capped the same way
//! (see [`MAX_FAILURES`], [`MAX_EXCEPTIONS`]): a script that puts an id in
//! its failure message, or a server that answers with a new error text
//! each time, gets one counted `(other)` row instead of a table per request.
//!
//! Memory: a row's histogram is a [`PagedHistogram`], which holds memory
//! only for the latency ranges it saw (~15 KiB for a name spread over
//! 1–10 ms, against ~190 KiB for a dense one).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::SystemTime;

use hdrhistogram::Histogram;

use super::failure::Failure;
use super::paged::PagedHistogram;
use crate::http::Method;

/// Index of a `(method, name)` row in one shard's table. Stable for the
/// life of the shard, so callers may cache it.
pub type EntryId = u32;

/// Distinct names a table (a shard's, or the run's) keeps before folding new
/// ones into [`OTHER_NAME`]. The run keeps one cumulative histogram of
/// ~190 KiB per name, so this bounds it to about 190 MiB.
pub const MAX_NAMES: usize = 1_000;

/// The name new names are folded into past the cap.
pub const OTHER_NAME: &str = "(other)";

/// Distinct `(method, name, error)` failure rows a table keeps (a shard's
/// per delta, the run's for the whole run); the rest of a name's failures
/// are counted in its [`OTHER_FAILURE`] row.
pub const MAX_FAILURES: usize = 1_000;

/// Distinct `(message, traceback)` exception rows a table keeps; the rest
/// are counted in one row whose message is [`OTHER_FAILURE`].
pub const MAX_EXCEPTIONS: usize = 200;

/// The error text (and exception message) of the fold rows.
pub const OTHER_FAILURE: &str = "(other)";

/// The fold row's key: a plain message, so a fold row that comes from a
/// cluster worker (as text) is the same row as ours.
pub fn other_failure() -> Failure {
    Failure::Message(OTHER_FAILURE.into())
}

/// Latencies are recorded in microseconds, from 1 µs to one hour.
pub const HISTOGRAM_MAX_US: u64 = 3_600_000_000;
/// Three significant digits: 0.1% resolution at any scale.
pub const HISTOGRAM_SIGFIG: u8 = 3;

/// A histogram as every part of locusta records latency: same bounds
/// everywhere, so `add` and `subtract` never fail for range reasons.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, HISTOGRAM_SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// Fx-style hasher for the name maps: names come from the user's own
/// script, not from an adversary, and SipHash would be most of the cost
/// of `entry` on the hot path.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("8-byte chunk")));
        }
        // Fold the tail into one word without a variable-length memcpy.
        let mut tail = chunks.remainder();
        let mut word = 0u64;
        if tail.len() >= 4 {
            word = u64::from(u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")));
            tail = &tail[4..];
        }
        for &b in tail {
            word = (word << 8) | u64::from(b);
        }
        if !chunks.remainder().is_empty() {
            self.write_u64(word);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        // FxHash's step: rotate, mix in, multiply by a large odd constant.
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Counters of one row; `min_us` is `u64::MAX` until a request is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryCounts {
    /// Requests, failed ones included (as Locust counts them).
    pub requests: u64,
    pub failures: u64,
    pub total_us: u64,
    pub min_us: u64,
    pub max_us: u64,
    pub bytes: u64,
}

impl Default for EntryCounts {
    fn default() -> Self {
        EntryCounts {
            requests: 0,
            failures: 0,
            total_us: 0,
            min_us: u64::MAX,
            max_us: 0,
            bytes: 0,
        }
    }
}

impl EntryCounts {
    #[inline]
    fn count(&mut self, latency_us: u64, bytes: u64) {
        self.requests += 1;
        self.total_us += latency_us;
        self.min_us = self.min_us.min(latency_us);
        self.max_us = self.max_us.max(latency_us);
        self.bytes += bytes;
    }

    /// Fold another row's counters into this one. Saturating: a cluster
    /// master adds what workers claim, and a hostile claim must not wrap.
    pub fn add(&mut self, other: &EntryCounts) {
        self.requests = self.requests.saturating_add(other.requests);
        self.failures = self.failures.saturating_add(other.failures);
        self.total_us = self.total_us.saturating_add(other.total_us);
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// Latencies a delta row carries: a shard's paged histogram, or the
/// sparse buckets a cluster worker sends (see `sparse`).
pub trait Latencies {
    /// `into += self`, bucket for bucket.
    fn add_to(&self, into: &mut Histogram<u64>);
    /// Forget every value (after a merge), keeping the allocation.
    fn clear(&mut self);
    /// The non-empty buckets as `(value, count)`, when the latencies are
    /// such a list already: a merge may then queue them (`run_pending`).
    fn buckets(&self) -> Option<&[(u64, u64)]> {
        None
    }
}

impl Latencies for Histogram<u64> {
    fn add_to(&self, into: &mut Histogram<u64>) {
        // Every histogram comes from `new_histogram` (same bounds, values
        // clamped on record), so this cannot fail; a failure would be a
        // bug, caught in tests, and not worth stopping a run for.
        let result = into.add(self);
        debug_assert!(result.is_ok(), "histogram add failed: {result:?}");
    }

    fn clear(&mut self) {
        if !self.is_empty() {
            self.reset();
        }
    }
}

/// One `(method, name)` row of a delta.
#[derive(Clone, Debug)]
pub struct DeltaEntry<L = PagedHistogram> {
    pub method: Method,
    pub name: Arc<str>,
    /// Latencies in µs; cleared once merged.
    pub histogram: L,
    pub counts: EntryCounts,
}

/// Failures of one `(method, name, failure)` key in a delta.
#[derive(Clone, Debug)]
pub struct DeltaFailure {
    pub method: Method,
    pub name: Arc<str>,
    pub failure: Failure,
    pub count: u64,
}

/// Script errors of one `(message, traceback)` key in a delta.
#[derive(Clone, Debug)]
pub struct DeltaException {
    pub message: String,
    pub traceback: String,
    pub count: u64,
    /// The worker it came from; `None` for this process ("local").
    pub node: Option<Arc<str>>,
}

/// Everything one shard (or one cluster worker) counted since its previous
/// delta. Only rows with at least one request are present.
#[derive(Clone, Debug)]
pub struct Delta<L = PagedHistogram> {
    /// When the shard took it: the merge uses it as the time of the last
    /// request and of the failures it brings (at most one tick late).
    pub taken_at: SystemTime,
    pub entries: Vec<DeltaEntry<L>>,
    pub failures: Vec<DeltaFailure>,
    pub exceptions: Vec<DeltaException>,
}

/// What a shard sends: rows with paged histograms.
pub type StatsDelta = Delta<PagedHistogram>;

impl<L> Delta<L> {
    /// An empty delta taken at `taken_at`.
    pub fn empty(taken_at: SystemTime) -> Self {
        Delta {
            taken_at,
            entries: Vec::new(),
            failures: Vec::new(),
            exceptions: Vec::new(),
        }
    }

    /// True when there is nothing to merge.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.failures.is_empty() && self.exceptions.is_empty()
    }
}

struct ShardEntry {
    method: Method,
    name: Arc<str>,
    /// Taken from the pool on the first request after each delta, so idle
    /// rows hold no histogram.
    histogram: Option<PagedHistogram>,
    counts: EntryCounts,
}

/// One shard's table of rows since the last [`ShardStats::take_delta`].
pub struct ShardStats {
    /// Per method (indexed by `Method as usize`): name → row.
    ids: [FastMap<Box<str>, EntryId>; Method::SLOTS],
    /// The fold row of each method, once the cap has been hit.
    other_ids: [Option<EntryId>; Method::SLOTS],
    entries: Vec<ShardEntry>,
    named_entries: usize,
    name_cap: usize,
    failures: FastMap<(EntryId, Failure), u64>,
    /// [`MAX_FAILURES`] (smaller in tests).
    failure_cap: usize,
    /// message → traceback → count: two-level so lookups borrow `&str`.
    exceptions: HashMap<String, HashMap<String, u64>>,
    /// Distinct `(message, traceback)` keys in `exceptions`.
    exception_rows: usize,
    /// [`MAX_EXCEPTIONS`] (smaller in tests).
    exception_cap: usize,
    /// Reset histograms ready for reuse.
    pool: Vec<PagedHistogram>,
    /// The vectors of the last recycled delta, kept for their capacity.
    spare_delta: Option<StatsDelta>,
    histograms_created: u64,
}

impl Default for ShardStats {
    fn default() -> Self {
        Self::new()
    }
}

impl ShardStats {
    pub fn new() -> Self {
        Self::with_name_cap(MAX_NAMES)
    }

    /// A table that folds names past `name_cap` (tests use a small cap).
    pub fn with_name_cap(name_cap: usize) -> Self {
        Self::with_caps(name_cap, MAX_FAILURES, MAX_EXCEPTIONS)
    }

    /// A table with its own caps on names, failure rows per delta and
    /// exception rows per delta (tests use small ones).
    pub fn with_caps(name_cap: usize, failure_cap: usize, exception_cap: usize) -> Self {
        ShardStats {
            ids: std::array::from_fn(|_| Default::default()),
            other_ids: [None; Method::SLOTS],
            entries: Vec::new(),
            named_entries: 0,
            name_cap,
            failures: FastMap::default(),
            failure_cap,
            exceptions: HashMap::new(),
            exception_rows: 0,
            exception_cap,
            pool: Vec::new(),
            spare_delta: None,
            histograms_created: 0,
        }
    }

    /// Id for `(method, name)`; allocates only the first time a name is seen.
    #[inline]
    pub fn entry(&mut self, method: Method, name: &str) -> EntryId {
        match self.ids[method.index()].get(name) {
            Some(&id) => id,
            None => self.new_entry(method, name),
        }
    }

    #[cold]
    fn new_entry(&mut self, method: Method, name: &str) -> EntryId {
        if self.named_entries >= self.name_cap {
            if let Some(id) = self.other_ids[method.index()] {
                return id;
            }
            let id = self.push_entry(method, OTHER_NAME);
            self.other_ids[method.index()] = Some(id);
            return id;
        }
        let id = self.push_entry(method, name);
        self.ids[method.index()].insert(name.into(), id);
        self.named_entries += 1;
        id
    }

    fn push_entry(&mut self, method: Method, name: &str) -> EntryId {
        let id = EntryId::try_from(self.entries.len()).expect("fewer than 2^32 rows");
        self.entries.push(ShardEntry {
            method,
            name: name.into(),
            histogram: None,
            counts: EntryCounts::default(),
        });
        id
    }

    /// Count one successful request on row `id`.
    #[inline]
    pub fn record(&mut self, id: EntryId, latency_us: u64, bytes: u64) {
        let entry = &mut self.entries[id as usize];
        let histogram = match &mut entry.histogram {
            Some(h) => h,
            slot => slot.insert(take_histogram(&mut self.pool, &mut self.histograms_created)),
        };
        histogram.record(latency_us);
        entry.counts.count(latency_us, bytes);
    }

    /// Count one failed request on row `id`: it is a request too (Locust
    /// counts failures within `# reqs`), and its failure is keyed by
    /// `(id, failure)`.
    pub fn record_failure(&mut self, id: EntryId, latency_us: u64, bytes: u64, failure: Failure) {
        self.record(id, latency_us, bytes);
        let counts = &mut self.entries[id as usize].counts;
        counts.failures = counts.failures.saturating_add(1);
        let count = if self.failures.len() < self.failure_cap {
            self.failures.entry((id, failure)).or_insert(0)
        } else {
            self.capped_failure(id, failure)
        };
        *count = count.saturating_add(1);
    }

    /// The counter of `(id, failure)` once the table is full: its own if it
    /// has one, else the name's fold row.
    #[cold]
    fn capped_failure(&mut self, id: EntryId, failure: Failure) -> &mut u64 {
        let mut key = (id, failure);
        if !self.failures.contains_key(&key) {
            key.1 = other_failure();
        }
        self.failures.entry(key).or_insert(0)
    }

    /// Count one error raised by a script task, keyed by `(message, traceback)`.
    /// Past [`MAX_EXCEPTIONS`] distinct keys in one delta, new keys are
    /// counted in the `(other)` row.
    pub fn record_exception(&mut self, message: &str, traceback: &str) {
        if let Some(count) = self
            .exceptions
            .get_mut(message)
            .and_then(|t| t.get_mut(traceback))
        {
            *count = count.saturating_add(1);
            return;
        }
        let (message, traceback) = if self.exception_rows < self.exception_cap {
            (message, traceback)
        } else {
            (OTHER_FAILURE, "")
        };
        let count = self
            .exceptions
            .entry(message.to_string())
            .or_default()
            .entry(traceback.to_string())
            .or_insert_with(|| {
                self.exception_rows += 1;
                0
            });
        *count = count.saturating_add(1);
    }

    /// Everything counted since the last take; the table is empty afterwards
    /// (row ids stay valid).
    pub fn take_delta(&mut self) -> StatsDelta {
        let mut delta = match self.spare_delta.take() {
            Some(mut d) => {
                d.taken_at = SystemTime::now();
                d
            }
            None => StatsDelta::empty(SystemTime::now()),
        };
        for entry in &mut self.entries {
            if entry.counts.requests == 0 {
                continue;
            }
            let counts = std::mem::take(&mut entry.counts);
            let Some(histogram) = entry.histogram.take() else {
                continue;
            };
            delta.entries.push(DeltaEntry {
                method: entry.method,
                name: entry.name.clone(),
                histogram,
                counts,
            });
        }
        for ((id, failure), count) in self.failures.drain() {
            let entry = &self.entries[id as usize];
            delta.failures.push(DeltaFailure {
                method: entry.method,
                name: entry.name.clone(),
                failure,
                count,
            });
        }
        self.exception_rows = 0;
        for (message, tracebacks) in self.exceptions.drain() {
            for (traceback, count) in tracebacks {
                delta.exceptions.push(DeltaException {
                    message: message.clone(),
                    traceback,
                    count,
                    node: None,
                });
            }
        }
        delta
    }

    /// Take back a delta (normally merged, so its histograms are already
    /// reset) and keep its histograms and vectors for the next ones. An
    /// unmerged delta (dropped after a stats reset) is reset here.
    pub fn recycle(&mut self, mut delta: StatsDelta) {
        for entry in delta.entries.drain(..) {
            let mut histogram = entry.histogram;
            if !histogram.is_empty() {
                histogram.clear();
            }
            self.pool.push(histogram);
        }
        delta.failures.clear();
        delta.exceptions.clear();
        self.spare_delta = Some(delta);
    }

    /// How many histograms this shard has allocated in its life: flat once
    /// the pool has warmed up (tests and diagnostics).
    pub fn histograms_created(&self) -> u64 {
        self.histograms_created
    }

    /// Rows in the table, fold rows included.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }
}

fn take_histogram(pool: &mut Vec<PagedHistogram>, created: &mut u64) -> PagedHistogram {
    pool.pop().unwrap_or_else(|| {
        *created += 1;
        PagedHistogram::new()
    })
}

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;
