//! The HTML report's open-model section (arrival-rate runs only): the
//! iteration counters, and measured beside corrected percentiles per row.
//! Its charts (corrected p99 per second, the corrected Aggregated's
//! spectrum) are in the blob (`data`). It does not own the numbers.

use std::fmt::Write as _;

use super::{escape, name_cells};
use crate::report::open_model::corrected_row;
use crate::report::{format_ms, FinalReport};

/// p50, p95, p99, p99.9 and p100 in `EntryRow::percentiles_ms`.
const SHOWN: [(usize, &str); 5] = [
    (0, "p50"),
    (5, "p95"),
    (7, "p99"),
    (8, "p99.9"),
    (10, "max"),
];

pub(super) fn section(out: &mut String, report: &FinalReport) {
    let Some(open) = &report.open_model else {
        return;
    };
    let r = &open.report;
    let i = &r.iterations;
    out.push_str(
        "<section id=\"open-model\"><h2>Open model (arrival rate)</h2>\n\
         <p class=\"note\">Iterations start on a fixed schedule however slow the server \
         gets. <b>Corrected</b> latency is measured from each iteration's intended start \
         (coordinated omission corrected, as wrk2 does); <b>measured</b> from the actual \
         send.</p>\n<table class=\"info\">\n",
    );
    let rows = [
        ("Target rate", format!("{:.2} iterations/s", r.target_rate)),
        (
            "Achieved rate",
            format!("{:.2} iterations/s", open.achieved_rate),
        ),
        ("Pool (max users)", r.max_users.to_string()),
        ("Intended iterations", i.intended.to_string()),
        ("Started", i.started.to_string()),
        ("Started late", i.late.to_string()),
        ("Dropped", i.dropped.to_string()),
    ];
    for (key, value) in rows {
        let _ = writeln!(out, "<tr><th>{key}</th><td>{}</td></tr>", escape(&value));
    }
    out.push_str("</table>\n<table class=\"stats\"><tr><th>Type</th><th>Name</th>");
    for (_, label) in SHOWN {
        let _ = write!(out, "<th>corrected {label}</th>");
    }
    for (_, label) in SHOWN {
        let _ = write!(out, "<th>measured {label}</th>");
    }
    out.push_str("<th>dropped</th></tr>\n");
    let stats = &report.stats;
    let with_requests = stats.entries.iter().filter(|e| e.num_requests > 0);
    for e in with_requests.chain([&stats.aggregated]) {
        let class = if e.method.is_none() {
            " class=\"total\""
        } else {
            ""
        };
        let _ = write!(out, "<tr{class}>{}", name_cells(e));
        let corrected = corrected_row(r, e).filter(|c| c.num_requests > 0);
        for (k, _) in SHOWN {
            let cell = corrected.map_or("N/A".to_string(), |c| format_ms(c.percentiles_ms[k]));
            let _ = write!(out, "<td>{cell}</td>");
        }
        for (k, _) in SHOWN {
            let _ = write!(out, "<td>{}</td>", format_ms(e.percentiles_ms[k]));
        }
        let dropped = e.method.map_or(i.dropped, |m| r.dropped_of(m, &e.name));
        let _ = writeln!(out, "<td>{dropped}</td></tr>");
    }
    out.push_str("</table></section>\n");
}
