//! Pending latencies: the master's merge counts each report's sparse
//! buckets into a small paged histogram per row and records them into the
//! dense histograms (the row's, and Aggregated's open second: the sum of
//! the rows' pending) once per tick (a child of `run`).
//!
//! Why: recording one bucket into a dense `Histogram<u64>` (`record_n`:
//! index, bounds, min/max, total) costs ~25 instructions and, with 50
//! names of ~190 KiB each, about one cache miss; a master with 1,000
//! workers records 50,000 buckets per name per second that way, twice
//! (the row and Aggregated's second). Counted here first, a bucket costs
//! an index and an add into a `u32` counter, and the tick records each
//! distinct bucket once however many reports hit it.
//!
//! Exact: recording is saturating addition, so order and grouping change
//! no counter, total, minimum or maximum (a bucket is recorded at its
//! highest value, which the dense histogram cannot tell from the value).
//! A count a `u32` counter cannot hold goes straight to the dense
//! histogram. Every reader goes through `RunRow::cumulative` and its
//! Aggregated twin, which add what is pending to a copy.
//!
//! Bounded by construction: a paged histogram holds at most ~94 KiB
//! however much is merged into it. It does not own the rows (`run`), the
//! paged histogram (`paged`) or the wire form (`sparse`).

use std::borrow::Cow;

use hdrhistogram::Histogram;

use super::super::paged::PagedHistogram;
use super::super::shard::Latencies;
use super::{take, RunRow};

/// Latencies merged but not yet recorded into a row's dense histograms.
#[derive(Default)]
pub(super) struct Pending {
    counts: PagedHistogram,
}

impl Pending {
    pub(super) fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Take `latencies` in: counted here when they are a bucket list,
    /// else (and for a count too large for a counter here) recorded now
    /// into each of `direct` (the row's cumulative histogram, its open
    /// second if it keeps one, Aggregated's open second).
    pub(super) fn absorb<L: Latencies>(
        &mut self,
        latencies: &L,
        mut direct: [Option<&mut Histogram<u64>>; 3],
    ) {
        let Some(buckets) = latencies.buckets() else {
            for h in direct.iter_mut().flatten() {
                latencies.add_to(h);
            }
            return;
        };
        for &(value, count) in buckets {
            if !self.counts.try_record_n(value, count) {
                for h in direct.iter_mut().flatten() {
                    h.saturating_record_n(value, count);
                }
            }
        }
    }

    /// `into += pending`, leaving it pending (a reader's copy).
    pub(super) fn add_to(&self, into: &mut Histogram<u64>) {
        self.counts.add_to(into);
    }

    /// Record what is pending into `cumulative` and, when the row keeps
    /// one, its open `second`; then nothing is pending.
    pub(super) fn flush_into(
        &mut self,
        cumulative: &mut Histogram<u64>,
        second: Option<&mut Histogram<u64>>,
    ) {
        if self.is_empty() {
            return;
        }
        self.counts.add_to(cumulative);
        if let Some(second) = second {
            self.counts.add_to(second);
        }
        self.counts.clear();
    }

    /// Bytes held (memory tests).
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        self.counts.heap_bytes()
    }
}

impl RunRow {
    /// Record the pending latencies (before the open second closes).
    pub(super) fn flush(&mut self, pool: &mut Vec<Histogram<u64>>) {
        if self.pending.is_empty() {
            return;
        }
        let second = self
            .seconds
            .as_mut()
            .map(|s| s.open.get_or_insert_with(|| take(pool)));
        self.pending.flush_into(&mut self.histogram, second);
    }

    /// The row's whole-run histogram, pending buckets included (a copy
    /// only while some are pending).
    pub(super) fn cumulative(&self) -> Cow<'_, Histogram<u64>> {
        if self.pending.is_empty() {
            return Cow::Borrowed(&self.histogram);
        }
        let mut h = self.histogram.clone();
        self.pending.add_to(&mut h);
        Cow::Owned(h)
    }
}
