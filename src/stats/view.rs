//! The computed stats table front ends read, and how its numbers come out of
//! histograms.
//!
//! Owns [`StatsView`] and its rows (plain, cloneable, all in milliseconds),
//! the list of reported [`PERCENTILES`] and the one routine that reads them
//! from an HDR histogram, so the console, CSV, dashboard and later HTML/JSON
//! show the same number. It does not own keeping or merging stats (`run`)
//! nor how any front end lays the table out (`report`).

use std::time::SystemTime;

use hdrhistogram::Histogram;

use super::history::HistoryPoint;
use crate::http::Method;

/// Locust's `PERCENTILES_TO_REPORT`.
pub const PERCENTILES: [f64; 11] = [
    0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0,
];

/// One row of the requests table: an entry, or the Aggregated row.
#[derive(Clone, Debug)]
pub struct EntryRow {
    /// `None` for the Aggregated row.
    pub method: Option<Method>,
    pub name: String,
    /// Requests, failed ones included.
    pub num_requests: u64,
    pub num_failures: u64,
    /// The HDR p50 (not Locust's lower median of buckets).
    pub median_ms: f64,
    pub avg_ms: f64,
    /// Raw minimum; 0 when there are no requests.
    pub min_ms: f64,
    /// Raw maximum; 0 when there are no requests.
    pub max_ms: f64,
    /// Mean response body bytes per request.
    pub avg_content_size: f64,
    /// Requests / (last request − start), as Locust's `total_rps`.
    pub total_rps: f64,
    pub total_fail_per_sec: f64,
    /// Mean over the last (up to) 10 completed one-second windows.
    pub current_rps: f64,
    pub current_fail_per_sec: f64,
    /// Cumulative, at [`PERCENTILES`]; all 0 when there are no requests.
    pub percentiles_ms: [f64; 11],
    /// Over the last (up to) 10 completed windows; `None` unless the run
    /// keeps per-second histograms (`RunStats::new(true)`).
    pub current_percentiles_ms: Option<[f64; 11]>,
}

impl EntryRow {
    /// The type column: the method, or empty for Aggregated.
    pub fn method_str(&self) -> &'static str {
        self.method.map_or("", Method::as_str)
    }

    /// Failures as a fraction of requests (Locust's `fail_ratio`).
    pub fn fail_ratio(&self) -> f64 {
        if self.num_requests > 0 {
            self.num_failures as f64 / self.num_requests as f64
        } else if self.num_failures > 0 {
            1.0
        } else {
            0.0
        }
    }
}

/// One distinct failure: `(method, name, error)` with its count.
#[derive(Clone, Debug)]
pub struct FailureRow {
    pub method: Method,
    pub name: String,
    pub error: String,
    pub occurrences: u64,
    /// Time of the report that first brought it (at most a tick late).
    pub first_seen: SystemTime,
    pub last_seen: SystemTime,
}

/// One distinct script error.
#[derive(Clone, Debug)]
pub struct ExceptionRow {
    pub count: u64,
    pub message: String,
    pub traceback: String,
    /// Where it happened: `local`, or worker ids in a cluster.
    pub nodes: Vec<String>,
}

/// The whole stats table at one moment.
#[derive(Clone, Debug)]
pub struct StatsView {
    /// Sorted by `(name, method)` like Locust; rows with no requests since a
    /// reset stay (with zeros), as in Locust.
    pub entries: Vec<EntryRow>,
    pub aggregated: EntryRow,
    /// Most occurrences first.
    pub failures: Vec<FailureRow>,
    /// Most occurrences first.
    pub exceptions: Vec<ExceptionRow>,
    /// Creation of the stats or their last reset.
    pub start_time: SystemTime,
    pub last_request: Option<SystemTime>,
    /// The latest closed second of the history (`None` before the first
    /// tick): the history CSV writes one row per such second, with its
    /// time and user count.
    pub last_second: Option<HistoryPoint>,
}

/// One row's whole-run latency histogram in µs (`method` `None`: the
/// Aggregated row).
#[derive(Clone, Debug)]
pub struct EntryHistogram {
    pub method: Option<Method>,
    pub name: String,
    pub histogram: Histogram<u64>,
}

/// Microseconds as fractional milliseconds.
pub fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// All [`PERCENTILES`] of `histogram` in µs (0 when it is empty), in one
/// scan of the buckets (the dashboard and the CSV writer read 11 per row
/// for every row, every second).
///
/// Each is what `value_at_quantile` gives: the highest value equivalent to
/// the bucket holding rank `ceil(q·n)`. That edge can lie up to 0.1% above
/// the true maximum, so results are capped at `max_us`: "p100 > max" would
/// be a needless puzzle for readers.
pub fn percentiles_us(histogram: &Histogram<u64>, max_us: u64) -> [u64; 11] {
    let mut out = [0; 11];
    if histogram.is_empty() {
        return out;
    }
    // PERCENTILES rise, as the single scan requires.
    for (slot, v) in out
        .iter_mut()
        .zip(histogram.value_at_quantiles(PERCENTILES))
    {
        *slot = v.min(max_us);
    }
    out
}

/// [`percentiles_us`] in milliseconds.
pub fn percentiles_ms(histogram: &Histogram<u64>, max_us: u64) -> [f64; 11] {
    percentiles_us(histogram, max_us).map(us_to_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::shard::new_histogram;

    #[test]
    fn one_scan_gives_what_each_quantile_would() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for n in [1u64, 2, 7, 100, 5_000] {
            let mut h = new_histogram();
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                h.record(1 + x % 3_000_000).unwrap();
            }
            let max = h.max();
            let each = PERCENTILES.map(|q| h.value_at_quantile(q).min(max));
            assert_eq!(percentiles_us(&h, max), each, "{n} values");
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        // 1..=10_000 µs once each: p50 = 5 ms, p99 = 9.9 ms, within 0.1%.
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let p = percentiles_ms(&h, 10_000);
        let expect = [5.0, 6.6, 7.5, 8.0, 9.0, 9.5, 9.8, 9.9, 9.99, 9.999, 10.0];
        for (got, want) in p.iter().zip(expect) {
            assert!(
                (got - want).abs() <= want * 0.001 + 0.001,
                "got {got}, want {want}"
            );
        }
        // Exact below 2048 µs (one value per bucket at 3 digits).
        let mut small = new_histogram();
        for v in [100u64, 200, 300, 400] {
            small.record(v).unwrap();
        }
        assert_eq!(percentiles_us(&small, 400)[0], 200);
        assert_eq!(percentiles_us(&small, 400)[10], 400);
    }

    #[test]
    fn p100_is_capped_at_the_raw_max() {
        let mut h = new_histogram();
        h.record(1_000_001).unwrap();
        assert!(
            h.value_at_quantile(1.0) > 1_000_001,
            "bucket edge is above the value"
        );
        assert_eq!(percentiles_us(&h, 1_000_001)[10], 1_000_001);
    }

    #[test]
    fn empty_histogram_gives_zeros() {
        assert_eq!(percentiles_ms(&new_histogram(), 0), [0.0; 11]);
    }
}
