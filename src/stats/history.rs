//! The run's per-second history: what the dashboard charts and what the
//! history CSV stamps its rows with.
//!
//! Owns [`HistoryPoint`] and [`History`]: at most one point per wall-clock
//! second, strictly rising. Windows closed within one second (a late tick
//! followed by a prompt one) are combined into that second's point, with
//! the rates and p50/p95 of all its requests; a second in which no window
//! closed (a stalled control thread) has no point: gaps stay gaps. It does
//! not own closing windows (`run`) nor writing rows (`report::csv`).

use hdrhistogram::Histogram;

use super::shard::{new_histogram, Latencies};
use super::view::us_to_ms;

/// Per-second history points kept: 24 h. Older points are dropped in
/// chunks of a tenth so trimming stays amortized O(1).
pub const HISTORY_CAP: usize = 86_400;

/// One wall-clock second of the whole run (charts and the history CSV).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HistoryPoint {
    /// Unix seconds at the tick that closed the window; strictly rising
    /// along the history.
    pub unix_time: u64,
    pub user_count: u32,
    pub rps: f64,
    pub fail_per_sec: f64,
    /// p50, p95 and p99 of the requests merged in that second; 0 if none.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// The points, and what the last one was computed from (so a window
/// closing in the same second can be added to it).
pub(super) struct History {
    points: Vec<HistoryPoint>,
    /// Requests of the windows behind the last point.
    second: Histogram<u64>,
    requests: u64,
    failures: u64,
    seconds: f64,
}

impl History {
    pub(super) fn new() -> Self {
        History {
            points: Vec::new(),
            second: new_histogram(),
            requests: 0,
            failures: 0,
            seconds: 0.0,
        }
    }

    /// Add a closed window of `seconds` (> 0) ending at `unix_time`: a new
    /// point for a new second, or combined into the last point when that
    /// is for the same second (or a later one: the clock stepped back).
    pub(super) fn push(
        &mut self,
        unix_time: u64,
        user_count: u32,
        seconds: f64,
        (requests, failures): (u64, u64),
        latencies: &Histogram<u64>,
    ) {
        let same_second = self.points.last().is_some_and(|p| p.unix_time >= unix_time);
        if !same_second {
            self.clear_second();
        }
        self.requests = self.requests.saturating_add(requests);
        self.failures = self.failures.saturating_add(failures);
        self.seconds += seconds;
        if !latencies.is_empty() {
            latencies.add_to(&mut self.second);
        }
        let [p50_ms, p95_ms, p99_ms] = if self.second.is_empty() {
            [0.0; 3]
        } else {
            let max = self.second.max();
            let mut q = self.second.value_at_quantiles([0.5, 0.95, 0.99]);
            [(); 3].map(|()| us_to_ms(q.next().unwrap_or(0).min(max)))
        };
        let mut point = HistoryPoint {
            unix_time,
            user_count,
            rps: self.requests as f64 / self.seconds,
            fail_per_sec: self.failures as f64 / self.seconds,
            p50_ms,
            p95_ms,
            p99_ms,
        };
        match self.points.last_mut() {
            Some(last) if same_second => {
                point.unix_time = last.unix_time;
                *last = point;
            }
            _ => {
                if self.points.len() >= HISTORY_CAP {
                    self.points.drain(..HISTORY_CAP / 10);
                }
                self.points.push(point);
            }
        }
    }

    pub(super) fn points(&self) -> &[HistoryPoint] {
        &self.points
    }

    pub(super) fn clear(&mut self) {
        self.points.clear();
        self.clear_second();
    }

    fn clear_second(&mut self) {
        if !self.second.is_empty() {
            self.second.reset();
        }
        self.requests = 0;
        self.failures = 0;
        self.seconds = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latencies(values: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for &v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn one_point_per_second_combining_windows_of_the_same_second() {
        let mut h = History::new();
        h.push(100, 1, 1.0, (10, 1), &latencies(&[1_000; 10]));
        // Two windows closing in second 101 (a late tick, then a prompt
        // one): one point with the rates and percentiles of both.
        h.push(101, 2, 0.5, (5, 0), &latencies(&[2_000; 5]));
        h.push(101, 3, 0.5, (15, 5), &latencies(&[1_500; 15]));
        // A stall: nothing closed in 102..=104; then a clock step back.
        h.push(105, 3, 4.0, (8, 0), &latencies(&[1_000; 8]));
        h.push(104, 3, 1.0, (2, 0), &latencies(&[1_000; 2]));
        let p = h.points();
        let stamps: Vec<_> = p.iter().map(|p| p.unix_time).collect();
        assert_eq!(stamps, [100, 101, 105]);
        assert_eq!(p[1].user_count, 3, "the latest window's users");
        assert_eq!(p[1].rps, 20.0);
        assert_eq!(p[1].fail_per_sec, 5.0);
        assert_eq!(p[1].p50_ms, 1.5);
        assert_eq!(p[2].rps, 2.0, "10 requests over 5 s");
        assert_eq!(p[0].rps, 10.0);
        assert_eq!(p[0].p95_ms, 1.0);
    }

    #[test]
    fn capped_and_cleared() {
        let mut h = History::new();
        let empty = new_histogram();
        for s in 1..=(HISTORY_CAP as u64 + 5) {
            h.push(s, 0, 1.0, (0, 0), &empty);
        }
        assert!(h.points().len() <= HISTORY_CAP);
        assert_eq!(h.points().last().unwrap().unix_time, HISTORY_CAP as u64 + 5);
        h.clear();
        assert!(h.points().is_empty());
        h.push(3, 1, 1.0, (1, 0), &latencies(&[7]));
        assert_eq!(h.points().len(), 1);
        assert_eq!(h.points()[0].rps, 1.0);
    }
}
