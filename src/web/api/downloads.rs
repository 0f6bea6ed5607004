//! The API's downloads: Locust's CSV files (`/stats/requests/csv`,
//! `/stats/requests_full_history/csv`, `/stats/failures/csv`,
//! `/exceptions/csv`) and the HTML report (`/stats/report`), with
//! Locust's `Content-Disposition` file names.
//!
//! The bytes come from the same code that writes `--csv` and `--html`
//! (`report::csv`, `report::html`, the final report `headless::gather`
//! builds), so a download equals the file a run writes. This module owns
//! only the HTTP side: names, headers, and where the history comes from.

use std::time::SystemTime;

use crate::engine::Workload;
use crate::report;

use super::super::{WebContext, WebRequest, WebResponse};
use super::parse_form;

/// Locust's `Locust_<start>_<locustfile>_<host>_<what>.csv` (or `.html`),
/// with the start in UTC (`2026-12-07-13h05`) and every character a file
/// name or a header could trip on replaced by `_`.
pub fn file_name(ctx: &WebContext, start: SystemTime, what: &str, ext: &str) -> String {
    let stamp = report::utc_timestamp(start); // 2026-12-07T13:05:09Z
    let stamp = format!(
        "{}-{}h{}",
        stamp.get(..10).unwrap_or("1970-01-01"),
        stamp.get(11..13).unwrap_or("00"),
        stamp.get(14..16).unwrap_or("00")
    );
    let script = match &ctx.cfg.workload {
        Workload::Script { source, .. } => source
            .path
            .file_name()
            .map_or_else(|| "locustfile".into(), |f| f.to_string_lossy().into_owned()),
        Workload::Raw { .. } => "raw".into(),
    };
    let host = crate::headless::target_host(&ctx.cfg);
    let what = if what.is_empty() {
        String::new()
    } else {
        format!("_{what}")
    };
    let name = format!("Locust_{stamp}_{script}_{host}{what}");
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.{ext}")
}

fn csv_download(ctx: &WebContext, body: String, what: &str) -> WebResponse {
    let start = ctx.control.snapshot().stats.start_time;
    let mut r = WebResponse::new(200, "text/csv; charset=utf-8", body);
    r.headers.push((
        "Content-Disposition",
        format!("attachment;filename={}", file_name(ctx, start, what, "csv")),
    ));
    r
}

pub fn requests_csv(_req: &WebRequest, ctx: &WebContext) -> WebResponse {
    let view = ctx.control.snapshot().stats;
    csv_download(ctx, report::stats_csv(&view), "requests")
}

pub fn failures_csv(_req: &WebRequest, ctx: &WebContext) -> WebResponse {
    let view = ctx.control.snapshot().stats;
    csv_download(ctx, report::failures_csv(&view), "failures")
}

pub fn exceptions_csv(_req: &WebRequest, ctx: &WebContext) -> WebResponse {
    let view = ctx.control.snapshot().stats;
    csv_download(ctx, report::exceptions_csv(&view), "exceptions")
}

/// The `--csv` run's `PREFIX_stats_history.csv` as written so far (every
/// row with `--csv-full-history`, as Locust serves it); without `--csv`,
/// the Aggregated rows of the run's per-second history (Locust answers
/// 404 there; locusta keeps that history anyway).
pub fn full_history_csv(_req: &WebRequest, ctx: &WebContext) -> WebResponse {
    if let Some(prefix) = &ctx.cfg.csv_prefix {
        let path = format!("{prefix}_stats_history.csv");
        return match std::fs::read_to_string(&path) {
            Ok(text) => csv_download(ctx, text, "requests_full_history"),
            Err(e) => {
                log::warn!("web API: cannot read {path}: {e}");
                WebResponse::text(500, format!("cannot read {path}: {e}"))
            }
        };
    }
    let body = report::history_points_csv(&ctx.control.history());
    csv_download(ctx, body, "requests_full_history")
}

/// `GET /stats/report`: the HTML report of the run so far, the same page
/// `--html` writes at the end; `?download=1` makes it an attachment.
pub fn report(req: &WebRequest, ctx: &WebContext) -> WebResponse {
    let download = match parse_form(req.query.as_bytes()) {
        Ok(q) => q.iter().any(|(k, v)| k == "download" && !v.is_empty()),
        Err(e) => return WebResponse::bad_request(format!("query string: {e}")),
    };
    let final_report = crate::headless::gather(&ctx.cfg, &*ctx.control);
    let start = final_report.info.started;
    let mut r = WebResponse::new(
        200,
        "text/html; charset=utf-8",
        report::html::render(&final_report),
    );
    if download {
        r.headers.push((
            "Content-Disposition",
            format!("attachment;filename={}", file_name(ctx, start, "", "html")),
        ));
    }
    r
}
