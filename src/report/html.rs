//! `--html FILE`: the self-contained HTML report. (Interface only; being
//! written.)

use super::FinalReport;

/// The whole report as one HTML document.
pub fn render(report: &FinalReport) -> String {
    format!(
        "<!DOCTYPE html><title>locusta report</title><p>{} requests</p>",
        report.stats.aggregated.num_requests
    )
}
