//! `--json` and `--json-file FILE`: the final stats as JSON in Locust's
//! shape. (Interface only; being written.)

use super::FinalReport;

/// The JSON document (ends with a newline).
pub fn render(report: &FinalReport) -> String {
    format!("[{}]\n", report.stats.entries.len())
}
