//! Locust's console tables, rendered from a [`StatsView`].
//!
//! Owns the text of the request table, the percentile table, the error
//! report and the exception report, laid out like Locust's `print_stats`,
//! `print_percentile_stats` and `print_error_report` with the widths Locust
//! uses off a terminal (name column 80). It does not own when to print or
//! where (the headless front end does).
//!
//! Where we differ from Locust, on purpose:
//! - Times keep decimals when small (`0.41`, `12.3`, `145`): a load
//!   generator this fast often answers in well under a millisecond.
//! - Numeric columns widen (every row alike) when a value does not fit,
//!   and names longer than the name column are cut with `...`, so the
//!   columns always line up; Locust lets both push the row out of line.

use std::borrow::Cow;
use std::fmt::Write;

use crate::stats::{EntryRow, StatsView, PERCENTILES};

/// Locust's `STATS_TYPE_WIDTH`.
const TYPE_WIDTH: usize = 8;
/// Locust's `STATS_NAME_WIDTH` when stdout is not a terminal.
const NAME_WIDTH: usize = 80;
/// The request table gives the name column 4 more than the type column
/// takes from it, as Locust's `get_stats_summary` does.
const REQUEST_NAME_WIDTH: usize = NAME_WIDTH - TYPE_WIDTH + 4;
/// Width of Locust's error report separator.
const ERROR_REPORT_WIDTH: usize = NAME_WIDTH + 80;

/// A time in ms the way the tables show it: 2 decimals under 10 ms, 1 under
/// 100 ms, whole milliseconds above. One rule for console and dashboard;
/// the dashboard crate owns it because it cannot depend on this one.
pub fn format_ms(ms: f64) -> String {
    locusta_tui::format::ms(ms)
}

/// `name` cut to `width` characters, ending in `...` when cut.
fn fit_name(name: &str, width: usize) -> Cow<'_, str> {
    if name.chars().count() <= width {
        return Cow::Borrowed(name);
    }
    let keep: String = name.chars().take(width.saturating_sub(3)).collect();
    Cow::Owned(keep + "...")
}

/// Widest of `min` and every cell of column `col`.
fn column_width<const N: usize>(rows: &[[String; N]], col: usize, min: usize) -> usize {
    rows.iter()
        .map(|r| r[col].chars().count())
        .fold(min, usize::max)
}

/// The requests table: one row per entry, then the Aggregated row.
/// `current`: the req/s columns show the last ~10 s (periodic print)
/// rather than the whole run (final print), as in Locust.
pub fn request_table(view: &StatsView, current: bool) -> String {
    let cells = |r: &EntryRow| -> [String; 8] {
        let (rps, fps) = if current {
            (r.current_rps, r.current_fail_per_sec)
        } else {
            (r.total_rps, r.total_fail_per_sec)
        };
        [
            r.num_requests.to_string(),
            format!("{}({:.2}%)", r.num_failures, r.fail_ratio() * 100.0),
            format_ms(r.avg_ms),
            format_ms(r.min_ms),
            format_ms(r.max_ms),
            format_ms(r.median_ms),
            format!("{rps:.2}"),
            format!("{fps:.2}"),
        ]
    };
    let header = [
        "# reqs",
        "# fails",
        "Avg",
        "Min",
        "Max",
        "Med",
        "req/s",
        "failures/s",
    ]
    .map(String::from);
    let body: Vec<[String; 8]> = view.entries.iter().map(cells).collect();
    let total = cells(&view.aggregated);
    let all: Vec<[String; 8]> = body.iter().chain([&total, &header]).cloned().collect();
    // Locust's minimum widths; "Med" follows "Max" with no space, so it
    // always keeps one column of padding.
    let mins = [7, 12, 7, 7, 7, 7, 7, 11];
    let mut w: [usize; 8] = std::array::from_fn(|i| column_width(&all, i, mins[i]));
    w[5] = w[5].max(column_width(&all, 5, 0) + 1);

    let line = |kind: &str, name: &str, c: &[String; 8]| {
        format!(
            "{kind:<tw$} {name:<nw$} {:>w0$} {:>w1$} |{:>w2$} {:>w3$} {:>w4$}{:>w5$} | {:>w6$} {:>w7$}\n",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            tw = TYPE_WIDTH, nw = REQUEST_NAME_WIDTH,
            w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7],
        )
    };
    // Each separator dash run covers a column plus the space that precedes
    // the next pipe, so pipes fall exactly under the data rows' spaces.
    let dashes = [
        TYPE_WIDTH,
        REQUEST_NAME_WIDTH,
        w[0],
        w[1] + 1,
        w[2],
        w[3],
        w[4],
        w[5],
        w[6] + 1,
        w[7],
    ];
    let separator = dashes.map(|n| "-".repeat(n)).join("|") + "\n";

    let mut out = line("Type", "Name", &header);
    out += &separator;
    for (row, c) in view.entries.iter().zip(&body) {
        let kind = format!("{} ", row.method_str());
        out += &line(&kind, &fit_name(&row.name, REQUEST_NAME_WIDTH), c);
    }
    out += &separator;
    out += &line(
        "",
        &fit_name(&view.aggregated.name, REQUEST_NAME_WIDTH),
        &total,
    );
    out
}

/// "Response time percentiles (approximated)": rows with requests, then
/// Aggregated. As in Locust, the first percentile column is 8 wide and
/// `# reqs` comes last.
pub fn percentile_table(view: &StatsView) -> String {
    const COLS: usize = PERCENTILES.len() + 1;
    let cells = |r: &EntryRow| -> [String; COLS] {
        std::array::from_fn(|i| match r.percentiles_ms.get(i) {
            Some(&ms) => format_ms(ms),
            None => r.num_requests.to_string(),
        })
    };
    let header: [String; COLS] = std::array::from_fn(|i| match PERCENTILES.get(i) {
        Some(&q) => percent_label(q),
        None => "# reqs".to_string(),
    });
    let rows: Vec<&EntryRow> = view.entries.iter().filter(|r| r.num_requests > 0).collect();
    let body: Vec<[String; COLS]> = rows.iter().map(|r| cells(r)).collect();
    let has_total = view.aggregated.num_requests > 0;
    let total = cells(&view.aggregated);
    let mut all = body.clone();
    all.push(header.clone());
    if has_total {
        all.push(total.clone());
    }
    let w: [usize; COLS] =
        std::array::from_fn(|i| column_width(&all, i, if i == 0 { 8 } else { 6 }));

    let line = |kind: &str, name: &str, c: &[String; COLS]| {
        let mut s = format!("{kind:<TYPE_WIDTH$} {name:<NAME_WIDTH$}");
        for (cell, width) in c.iter().zip(w) {
            let _ = write!(s, " {cell:>width$}");
        }
        s + "\n"
    };
    let separator = [TYPE_WIDTH, NAME_WIDTH]
        .into_iter()
        .chain(w)
        .map(|n| "-".repeat(n))
        .collect::<Vec<_>>()
        .join("|")
        + "\n";

    let mut out = String::from("Response time percentiles (approximated)\n");
    out += &line("Type", "Name", &header);
    out += &separator;
    for (row, c) in rows.iter().zip(&body) {
        out += &line(row.method_str(), &fit_name(&row.name, NAME_WIDTH), c);
    }
    out += &separator;
    if has_total {
        out += &line("", &fit_name(&view.aggregated.name, NAME_WIDTH), &total);
    }
    out
}

/// Locust's `get_readable_percentiles`: `50%`, `99.9%`, `100%`.
pub fn percent_label(q: f64) -> String {
    let pct = q * 100.0;
    if (pct - pct.round()).abs() < 1e-9 {
        format!("{}%", pct.round() as u64)
    } else {
        // Six decimals at most, trailing zeros dropped (Python's round(x, 6)).
        let s = format!("{pct:.6}");
        format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// "Error report": `# occurrences` and `METHOD name: error`, most frequent
/// first. Empty when nothing failed (Locust prints nothing then either).
pub fn failures_table(view: &StatsView) -> String {
    if view.failures.is_empty() {
        return String::new();
    }
    let separator = format!(
        "{}|{}\n",
        "-".repeat(18),
        "-".repeat(ERROR_REPORT_WIDTH - 19)
    );
    let mut out = String::from("Error report\n");
    let _ = writeln!(out, "{:<18} {:<100}", "# occurrences", "Error");
    out += &separator;
    for f in &view.failures {
        let error = format!("{} {}: {}", f.method, f.name, f.error);
        let _ = writeln!(out, "{:<18} {:<100}", f.occurrences, error);
    }
    out += &separator;
    out
}

/// "Exception report": count and message, the traceback indented under it.
/// Empty when no script raised an error. (Locust shows these only in its
/// web UI and CSV; the layout follows the error report.)
pub fn exceptions_table(view: &StatsView) -> String {
    if view.exceptions.is_empty() {
        return String::new();
    }
    let separator = format!(
        "{}|{}\n",
        "-".repeat(18),
        "-".repeat(ERROR_REPORT_WIDTH - 19)
    );
    let mut out = String::from("Exception report\n");
    let _ = writeln!(out, "{:<18} Message / traceback", "# occurrences");
    out += &separator;
    for e in &view.exceptions {
        let _ = writeln!(out, "{:<18} {}", e.count, e.message);
        for line in e.traceback.lines().filter(|l| !l.trim().is_empty()) {
            // Lua indents traceback lines with tabs; spaces keep the
            // indent the same in every terminal.
            let line = line.trim_end().replace('\t', "  ");
            let _ = writeln!(out, "{:<18}   {line}", "");
        }
    }
    out += &separator;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_view::sample_view;

    #[test]
    fn request_table_lines_up_and_has_the_aggregated_row() {
        let view = sample_view();
        for current in [true, false] {
            let table = request_table(&view, current);
            let widths: Vec<usize> = table.lines().map(|l| l.chars().count()).collect();
            assert!(widths.iter().all(|&w| w == widths[0]), "{table}");
            let lines: Vec<&str> = table.lines().collect();
            assert!(lines[0].starts_with("Type     Name "));
            assert!(lines.last().unwrap().starts_with("         Aggregated "));
            assert_eq!(lines.len(), 2 + view.entries.len() + 2);
            // Pipes of the separator sit exactly on the rows' pipes.
            for (i, ch) in lines[1].char_indices() {
                if ch == '|' && lines[2].as_bytes()[i] != b'|' {
                    assert_eq!(lines[2].as_bytes()[i], b' ', "col {i}\n{table}");
                }
            }
        }
    }

    #[test]
    fn request_table_matches_locusts_widths_for_ordinary_values() {
        let table = request_table(&sample_view(), false);
        let header = table.lines().next().unwrap();
        let locust = format!(
            "{:<8} {:<76} {:>7} {:>12} |{:>7} {:>7} {:>7}{:>7} | {:>7} {:>11}",
            "Type", "Name", "# reqs", "# fails", "Avg", "Min", "Max", "Med", "req/s", "failures/s"
        );
        assert_eq!(header, locust);
        assert_eq!(table.lines().nth(1).unwrap().len(), 160);
        let get_a = table.lines().nth(2).unwrap();
        assert!(get_a.starts_with("GET      /a "), "{get_a}");
        assert!(get_a.contains("     10    1(10.00%) |"), "{get_a}");
        assert!(
            get_a.contains("   0.41 "),
            "small times keep decimals: {get_a}"
        );
    }

    #[test]
    fn huge_numbers_widen_columns_instead_of_breaking_them() {
        let mut view = sample_view();
        view.aggregated.num_requests = 123_456_789_012;
        view.aggregated.max_ms = 98_765_432.0;
        view.aggregated.median_ms = 1_234_567.0;
        let table = request_table(&view, true);
        let widths: Vec<usize> = table.lines().map(|l| l.chars().count()).collect();
        assert!(widths.iter().all(|&w| w == widths[0]), "{table}");
        assert!(table.contains("98765432 1234567 |"), "{table}");
    }

    #[test]
    fn long_names_are_cut() {
        let mut view = sample_view();
        view.entries[0].name = "/x".repeat(100);
        let table = request_table(&view, true);
        let row = table.lines().nth(2).unwrap();
        assert!(row.contains(&format!("{}/... ", "/x".repeat(36))), "{row}");
        assert_eq!(
            row.chars().count(),
            table.lines().next().unwrap().chars().count()
        );
        assert_eq!(fit_name("abc", 3), "abc");
        assert_eq!(fit_name("abcd", 3), "...");
    }

    #[test]
    fn percentile_table_layout() {
        let table = percentile_table(&sample_view());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "Response time percentiles (approximated)");
        let locust_header = format!(
            "{:<8} {:<80} {:>8} {}",
            "Type",
            "Name",
            "50%",
            [
                "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%",
                "# reqs"
            ]
            .map(|h| format!("{h:>6}"))
            .join(" ")
        );
        assert_eq!(lines[1], locust_header);
        assert_eq!(lines[2].len(), lines[1].len());
        // Only rows with requests; Aggregated after the separator.
        assert_eq!(lines.len(), 3 + 2 + 2);
        assert!(lines[3].starts_with("GET      /a "));
        assert!(lines[3].ends_with("    10"), "{}", lines[3]);
        assert!(lines[6].starts_with("         Aggregated "));
        assert!(lines.iter().skip(1).all(|l| l.len() == lines[1].len()));
    }

    #[test]
    fn failure_and_exception_reports() {
        let view = sample_view();
        let failures = failures_table(&view);
        let lines: Vec<&str> = failures.lines().collect();
        assert_eq!(lines[0], "Error report");
        assert!(lines[1].starts_with("# occurrences      Error"));
        assert_eq!(lines[2].len(), 160);
        assert!(lines[3].starts_with("1                  GET /a: HTTP 503 Service Unavailable"));
        let exceptions = exceptions_table(&view);
        assert!(exceptions.contains("2                  attempt to index a nil value\n"));
        assert!(exceptions.contains(&format!("\n{}task.lua:3: in function\n", " ".repeat(21))));

        let mut empty = view.clone();
        empty.failures.clear();
        empty.exceptions.clear();
        assert_eq!(failures_table(&empty), "");
        assert_eq!(exceptions_table(&empty), "");
    }

    #[test]
    fn number_formats() {
        assert_eq!(format_ms(0.0), "0");
        assert_eq!(format_ms(0.414), "0.41");
        assert_eq!(format_ms(12.34), "12.3");
        assert_eq!(format_ms(145.4), "145");
        let labels: Vec<String> = PERCENTILES.iter().map(|&q| percent_label(q)).collect();
        assert_eq!(
            labels,
            ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
        );
    }
}
