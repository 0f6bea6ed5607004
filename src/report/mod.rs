//! Reports rendered from a [`crate::stats::StatsView`]: Locust's console
//! tables ([`request_table`], [`percentile_table`], [`failures_table`],
//! [`exceptions_table`]) and Locust's `--csv` files ([`CsvWriter`]), and
//! console output that never panics ([`print`], [`eprint_line`]).
//!
//! Everything here is a pure function of the view (plus the clock for CSV
//! timestamps), so every report shows the same numbers. This module does
//! not own computing stats (`stats`) or deciding when to print or write
//! (the front ends).
//!
//! The end-of-run reports render one [`FinalReport`]: the HTML report
//! ([`html`]), Locust's JSON ([`json`]) and the thresholds' verdicts
//! ([`threshold`]). Beside them: the HDR interval log written every second
//! ([`hdr_log`]) and the headless progress line ([`progress`]).

mod console;
mod csv;
mod final_report;
pub mod hdr_log;
pub mod html;
pub mod json;
pub mod open_model;
mod output;
pub mod progress;
pub mod threshold;

pub use self::console::{
    exceptions_table, failures_table, format_ms, percent_label, percentile_table, request_table,
};
pub use self::csv::{
    exceptions_csv, failures_csv, history_points_csv, history_rows, stats_csv, utc_timestamp,
    CsvWriter, EXCEPTIONS_HEADER, FAILURES_HEADER, HISTORY_HEADER, STATS_HEADER,
};
pub use self::final_report::{FinalReport, OpenModel, RunInfo};
pub use self::output::{eprint_line, print};

/// A small, fixed view for the report tests: three entries (one with a
/// name that needs CSV quoting, one with no requests), one failure, one
/// exception.
#[cfg(test)]
pub(crate) mod test_view {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use crate::http::Method;
    use crate::stats::{EntryRow, ExceptionRow, FailureRow, StatsView};

    fn row(method: Option<Method>, name: &str, requests: u64, failures: u64) -> EntryRow {
        EntryRow {
            method,
            name: name.to_string(),
            num_requests: requests,
            num_failures: failures,
            median_ms: 0.0,
            avg_ms: 0.0,
            min_ms: 0.0,
            max_ms: 0.0,
            avg_content_size: 0.0,
            total_rps: 0.0,
            total_fail_per_sec: 0.0,
            current_rps: 0.0,
            current_fail_per_sec: 0.0,
            percentiles_ms: [0.0; 11],
            current_percentiles_ms: Some([0.0; 11]),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    pub(crate) fn sample_view() -> StatsView {
        let a = EntryRow {
            median_ms: 0.4,
            avg_ms: 0.414,
            min_ms: 0.2,
            max_ms: 3.5,
            avg_content_size: 1500.0,
            total_rps: 2.5,
            total_fail_per_sec: 0.25,
            current_rps: 2.0,
            current_fail_per_sec: 0.1,
            percentiles_ms: [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 2.0, 3.0, 3.4, 3.5],
            current_percentiles_ms: Some([9.0; 11]),
            ..row(Some(Method::Get), "/a", 10, 1)
        };
        let b = EntryRow {
            median_ms: 0.6,
            avg_ms: 0.8,
            min_ms: 0.3,
            max_ms: 1.2,
            avg_content_size: 0.0,
            total_rps: 1.25,
            current_rps: 1.0,
            percentiles_ms: [0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.2, 1.2, 1.2, 1.2],
            ..row(Some(Method::Post), "/b?q=\"x\",y", 5, 0)
        };
        let c = row(Some(Method::Get), "/c", 0, 0);
        let aggregated = EntryRow {
            median_ms: 0.5,
            avg_ms: 0.6,
            min_ms: 0.2,
            max_ms: 3.5,
            avg_content_size: 1000.0,
            total_rps: 3.75,
            total_fail_per_sec: 0.25,
            current_rps: 12.3456789,
            current_fail_per_sec: 0.1,
            percentiles_ms: [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 2.0, 3.0, 3.4, 3.5],
            ..row(None, "Aggregated", 15, 1)
        };
        StatsView {
            entries: vec![a, b, c],
            aggregated,
            failures: vec![FailureRow {
                method: Method::Get,
                name: "/a".to_string(),
                error: "HTTP 503 Service Unavailable".to_string(),
                occurrences: 1,
                first_seen: at(0),
                last_seen: at(5),
            }],
            exceptions: vec![ExceptionRow {
                count: 2,
                message: "attempt to index a nil value".to_string(),
                traceback: "stack traceback:\ntask.lua:3: in function".to_string(),
                nodes: vec!["local".to_string(), "w1".to_string()],
            }],
            start_time: at(0),
            last_request: Some(at(4)),
            last_second: None,
        }
    }
}
