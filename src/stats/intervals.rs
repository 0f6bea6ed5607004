//! The interval tap: per-row latency histograms of each closed interval
//! (one second, cut at each `RunStats::tick`), queued for a front end that
//! writes them out (`--hdr-log`).
//!
//! Owns [`IntervalTap`] (opt-in, off unless `RunStats::enable_intervals`),
//! [`IntervalSet`] and the bound on what waits in the queue. It does not own
//! the cumulative stats or their windows (`run`), nor any file format
//! (`report::hdr_log`).
//!
//! Cost when on: two more histogram adds per merged delta row (the row's
//! and Aggregated's interval histograms), and one ~190 KiB histogram per
//! row that had requests in a second, handed to the front end.

use std::collections::VecDeque;
use std::time::SystemTime;

use hdrhistogram::Histogram;

use super::shard::{new_histogram, Latencies};
use super::view::EntryHistogram;
use crate::http::Method;

/// Interval sets kept while nobody drains them (a front end drains every
/// second; this is a minute of stall).
pub const MAX_QUEUED_SETS: usize = 60;

/// Histograms kept in the queue at most (~190 KiB each); the newest set is
/// always kept, however many rows it has.
pub const MAX_QUEUED_HISTOGRAMS: usize = 1_024;

/// One closed interval: the histogram of every row that had requests in
/// it, sorted by `(name, method)`, and Aggregated's last (`method` `None`).
#[derive(Clone, Debug)]
pub struct IntervalSet {
    pub start: SystemTime,
    pub end: SystemTime,
    pub rows: Vec<EntryHistogram>,
}

/// What [`IntervalTap::drain`] hands over.
#[derive(Clone, Debug, Default)]
pub struct IntervalDrain {
    /// Oldest first.
    pub sets: Vec<IntervalSet>,
    /// Sets dropped (oldest first) because the queue was full, since the
    /// last drain.
    pub dropped: u64,
}

/// The open interval's histograms and the closed intervals not yet drained.
pub(super) struct IntervalTap {
    /// Where the open interval began (the run's start, or the last cut).
    open_since: SystemTime,
    /// By `RunStats` row index; `None` for a row without requests yet.
    rows: Vec<Option<Histogram<u64>>>,
    aggregated: Option<Histogram<u64>>,
    queue: VecDeque<IntervalSet>,
    queued_histograms: usize,
    dropped: u64,
}

impl IntervalTap {
    pub(super) fn new(open_since: SystemTime) -> Self {
        IntervalTap {
            open_since,
            rows: Vec::new(),
            aggregated: None,
            queue: VecDeque::new(),
            queued_histograms: 0,
            dropped: 0,
        }
    }

    /// Add a merged delta row's latencies to row `index`'s open interval.
    pub(super) fn record<L: Latencies>(&mut self, index: usize, latencies: &L) {
        if self.rows.len() <= index {
            self.rows.resize_with(index + 1, || None);
        }
        latencies.add_to(self.rows[index].get_or_insert_with(new_histogram));
        latencies.add_to(self.aggregated.get_or_insert_with(new_histogram));
    }

    /// Close the open interval at `now` and queue it, unless it had no
    /// requests. `row_key(i)`: row `i`'s method and name (`None`: no such
    /// row, its requests then count in Aggregated only).
    pub(super) fn cut(
        &mut self,
        now: SystemTime,
        row_key: impl Fn(usize) -> Option<(Option<Method>, String)>,
    ) {
        let start = std::mem::replace(&mut self.open_since, now);
        let Some(aggregated) = self.aggregated.take().filter(|h| !h.is_empty()) else {
            return;
        };
        let mut rows: Vec<EntryHistogram> = self
            .rows
            .iter_mut()
            .enumerate()
            .filter_map(|(i, h)| {
                let h = h.take().filter(|h| !h.is_empty())?;
                let (method, name) = row_key(i)?;
                Some(EntryHistogram {
                    method,
                    name,
                    histogram: h,
                })
            })
            .collect();
        rows.sort_by(|a, b| {
            let key = |e: &EntryHistogram| (e.name.clone(), e.method.map_or("", Method::as_str));
            key(a).cmp(&key(b))
        });
        rows.push(EntryHistogram {
            method: None,
            name: "Aggregated".to_string(),
            histogram: aggregated,
        });
        self.queued_histograms += rows.len();
        self.queue.push_back(IntervalSet {
            start,
            end: now.max(start),
            rows,
        });
        while self.queue.len() > 1
            && (self.queue.len() > MAX_QUEUED_SETS
                || self.queued_histograms > MAX_QUEUED_HISTOGRAMS)
        {
            if let Some(old) = self.queue.pop_front() {
                self.queued_histograms -= old.rows.len();
                self.dropped += 1;
            }
        }
    }

    pub(super) fn drain(&mut self) -> IntervalDrain {
        self.queued_histograms = 0;
        IntervalDrain {
            sets: self.queue.drain(..).collect(),
            dropped: std::mem::take(&mut self.dropped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn histogram(values: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for &v in values {
            h.record(v).unwrap();
        }
        h
    }

    fn key(i: usize) -> Option<(Option<Method>, String)> {
        Some((Some(Method::Get), format!("/r{i}")))
    }

    #[test]
    fn a_cut_queues_rows_with_requests_and_aggregated_last() {
        let mut tap = IntervalTap::new(at(0));
        tap.record(2, &histogram(&[100, 200]));
        tap.record(0, &histogram(&[300]));
        tap.cut(at(1), key);
        // A second without requests queues nothing.
        tap.cut(at(2), key);
        tap.record(2, &histogram(&[5]));
        tap.cut(at(3), key);
        let d = tap.drain();
        assert_eq!(d.dropped, 0);
        assert_eq!(d.sets.len(), 2);
        let first = &d.sets[0];
        assert_eq!((first.start, first.end), (at(0), at(1)));
        let names: Vec<_> = first.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["/r0", "/r2", "Aggregated"]);
        assert_eq!(first.rows[2].histogram.len(), 3);
        assert_eq!(first.rows[2].method, None);
        assert_eq!(d.sets[1].start, at(2), "the empty second still moved on");
        assert_eq!(d.sets[1].rows.len(), 2);
        assert!(tap.drain().sets.is_empty());
    }

    #[test]
    fn an_undrained_queue_drops_its_oldest_and_counts_them() {
        let mut tap = IntervalTap::new(at(0));
        for s in 1..=(MAX_QUEUED_SETS as u64 + 5) {
            tap.record(0, &histogram(&[s]));
            tap.cut(at(s), key);
        }
        let d = tap.drain();
        assert_eq!(d.dropped, 5);
        assert_eq!(d.sets.len(), MAX_QUEUED_SETS);
        assert_eq!(d.sets[0].end, at(6));

        // Many rows per second: bounded by histograms, the newest kept.
        let rows = MAX_QUEUED_HISTOGRAMS;
        for s in 0..3 {
            for i in 0..rows {
                tap.record(i, &histogram(&[1]));
            }
            tap.cut(at(100 + s), key);
        }
        let d = tap.drain();
        assert_eq!(d.sets.len(), 1);
        assert_eq!(d.dropped, 2);
        assert_eq!(d.sets[0].rows.len(), rows + 1);
    }
}
