//! The open model's reports (an arrival-rate run): the console table of
//! corrected and measured p50/p95/p99 side by side, the counters line
//! (target and achieved rate, intended, started, late, dropped
//! iterations), and the text of `PREFIX_open_model.csv`.
//!
//! Corrected latency (from each iteration's intended start) is the
//! headline, so it comes first. Closed-model runs never call anything
//! here: their console and CSV files stay exactly as they were.
//!
//! It does not own the numbers (`stats::OpenModelStats`), when to print
//! or write (`headless`), nor the JSON/HTML parts (`json`, `html`).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::console::format_ms;
use super::csv::{percentile_cells, push_record, EOL};
use crate::stats::{EntryRow, OpenModelReport, StatsView};

/// `PREFIX_open_model.csv` header: Locust's percentile headers, the
/// corrected latencies in ms.
pub const OPEN_MODEL_HEADER: &str =
    "Type,Name,Intended,Started,Dropped,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%";

/// Indexes of p50, p95 and p99 in `EntryRow::percentiles_ms`.
const P50_P95_P99: [usize; 3] = [0, 5, 7];

/// The corrected row of a main-table row (same method and name).
pub fn corrected_row<'a>(open: &'a OpenModelReport, row: &EntryRow) -> Option<&'a EntryRow> {
    if row.method.is_none() {
        return Some(&open.corrected.aggregated);
    }
    open.corrected
        .entries
        .iter()
        .find(|c| c.method == row.method && c.name == row.name)
}

/// Iterations started per second since the stats started (or were reset).
pub fn achieved_rate(open: &OpenModelReport, since: SystemTime, now: SystemTime) -> f64 {
    let secs = now
        .duration_since(since)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64();
    if secs < 1e-3 {
        return 0.0;
    }
    open.iterations.started as f64 / secs
}

/// `Open model: target 200.00/s, achieved 199.87/s; iterations intended …`
pub fn counters_line(open: &OpenModelReport, achieved: f64) -> String {
    let i = &open.iterations;
    format!(
        "Open model: target {:.2} iterations/s, achieved {achieved:.2}/s; iterations: intended {}, started {}, late {}, dropped {}\n",
        open.target_rate, i.intended, i.started, i.late, i.dropped
    )
}

/// Per row (then Aggregated): requests, corrected p50/p95/p99 and
/// measured p50/p95/p99, then the counters line.
pub fn latency_table(view: &StatsView, open: &OpenModelReport, achieved: f64) -> String {
    let cells = |r: &EntryRow| -> [String; 7] {
        let corrected = corrected_row(open, r);
        let mut c: [String; 7] = Default::default();
        c[0] = r.num_requests.to_string();
        for (k, &p) in P50_P95_P99.iter().enumerate() {
            c[1 + k] = match corrected {
                Some(row) if row.num_requests > 0 => format_ms(row.percentiles_ms[p]),
                _ => "N/A".to_string(),
            };
            c[4 + k] = if r.num_requests > 0 {
                format_ms(r.percentiles_ms[p])
            } else {
                "N/A".to_string()
            };
        }
        c
    };
    let header = ["# reqs", "p50", "p95", "p99", "p50", "p95", "p99"].map(String::from);
    let rows: Vec<(&EntryRow, [String; 7])> = view
        .entries
        .iter()
        .chain(std::iter::once(&view.aggregated))
        .map(|r| (r, cells(r)))
        .collect();
    let w: [usize; 7] = std::array::from_fn(|i| {
        rows.iter()
            .map(|(_, c)| c[i].len())
            .chain([header[i].len(), 7])
            .max()
            .unwrap_or(7)
    });
    let line = |kind: &str, name: &str, c: &[String; 7]| {
        let mut s = format!("{kind:<8} {name:<72} {:>w0$} |", c[0], w0 = w[0]);
        for (i, cell) in c.iter().enumerate().skip(1) {
            let _ = write!(s, " {cell:>width$}", width = w[i]);
            if i == 3 {
                s.push_str(" |");
            }
        }
        s + "\n"
    };
    let corrected_w = w[1] + w[2] + w[3] + 2;
    let mut out = String::from(
        "Response times (ms): corrected = from each iteration's intended start, measured = from the send\n",
    );
    let _ = writeln!(
        out,
        "{:<8} {:<72} {:>w0$} | {:^cw$} | {:^cw$}",
        "",
        "",
        "",
        "corrected",
        "measured",
        w0 = w[0],
        cw = corrected_w
    );
    out += &line("Type", "Name", &header);
    let separator = "-".repeat(out.lines().last().map_or(0, str::len)) + "\n";
    out += &separator;
    for (r, c) in &rows {
        if r.method.is_none() {
            out += &separator;
        }
        let name: String = r.name.chars().take(72).collect();
        out += &line(r.method_str(), &name, c);
    }
    out += &counters_line(open, achieved);
    out
}

/// The whole `PREFIX_open_model.csv`: one row per name in stats.csv's
/// order, Aggregated last. A name row's Started is its requests made in
/// iterations (the corrected table's count), Dropped its dropped
/// iterations (raw mode; 0 for scripts' rows), Intended their sum; the
/// Aggregated row has the run's iteration counters.
pub fn open_model_csv(view: &StatsView, open: &OpenModelReport) -> String {
    let mut out = String::from(OPEN_MODEL_HEADER) + EOL;
    for row in view.entries.iter().chain(std::iter::once(&view.aggregated)) {
        let corrected = corrected_row(open, row);
        let (intended, started, dropped) = match row.method {
            Some(method) => {
                let started = corrected.map_or(0, |c| c.num_requests);
                let dropped = open.dropped_of(method, &row.name);
                (started.saturating_add(dropped), started, dropped)
            }
            None => {
                let i = &open.iterations;
                (i.intended, i.started, i.dropped)
            }
        };
        let mut cells = vec![
            row.method_str().to_string(),
            row.name.clone(),
            intended.to_string(),
            started.to_string(),
            dropped.to_string(),
        ];
        match corrected {
            Some(c) => cells.extend(percentile_cells(c, &c.percentiles_ms)),
            None => cells.extend(std::iter::repeat_n("N/A".to_string(), 11)),
        }
        push_record(&mut out, cells);
    }
    out
}

/// An open-model table whose "/a" row had two requests (1 ms and
/// 501 ms from their intended start) and 3 dropped iterations.
#[cfg(test)]
pub(crate) fn sample_open() -> OpenModelReport {
    let mut delta = crate::stats::sample_delta("/a", 6);
    let mut stats = crate::stats::OpenModelStats::new(100.0, 10);
    stats.merge(&mut delta);
    stats.report(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_view::sample_view;

    #[test]
    fn csv_rows_follow_stats_csv_with_aggregated_counters_last() {
        let text = open_model_csv(&sample_view(), &sample_open());
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], OPEN_MODEL_HEADER);
        let a: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(&a[..5], ["GET", "/a", "5", "2", "3"]);
        // The corrected p100 is the 501 ms request (3 significant digits).
        let p100: f64 = a[15].parse().unwrap();
        assert!((500.0..=502.0).contains(&p100), "{p100}");
        assert!(lines[2].starts_with("POST,\"/b?q=\"\"x\"\",y\",0,0,0,N/A"));
        assert!(lines[3].starts_with("GET,/c,0,0,0,N/A"));
        assert!(lines[4].starts_with(",Aggregated,6,2,3,"), "{}", lines[4]);
        assert_eq!(lines[5], "");
        assert_eq!(lines.len(), 6);
    }

    #[test]
    fn console_table_puts_corrected_first_and_counts() {
        let text = latency_table(&sample_view(), &sample_open(), 1.5);
        assert!(text.contains("corrected"));
        let a = text
            .lines()
            .find(|l| l.starts_with("GET ") && l.contains("/a"))
            .unwrap();
        let cells: Vec<&str> = a.split_whitespace().filter(|c| *c != "|").collect();
        // GET /a 10 | c50 c95 c99 | m50 m95 m99
        assert_eq!(cells[2], "10");
        assert_eq!(cells[6], "0.40", "measured p50 from the main table");
        let c99: f64 = cells[5].parse().unwrap();
        assert!(c99 >= 500.0, "corrected p99 shows the late request: {a}");
        assert!(text.contains("intended 6, started 2, late 1, dropped 3"));
        assert!(text.contains("achieved 1.50/s"));
    }

    #[test]
    fn achieved_rate_is_started_over_elapsed() {
        let open = sample_open();
        let now = SystemTime::now();
        let rate = achieved_rate(&open, now - Duration::from_secs(2), now);
        assert!((rate - 1.0).abs() < 1e-9);
        assert_eq!(achieved_rate(&open, now, now), 0.0);
    }
}
