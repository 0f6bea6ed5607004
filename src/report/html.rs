//! `--html FILE`: the self-contained HTML report, and Locust's `{u}`,
//! `{r}`, `{t}` in its file name.
//!
//! One file that opens offline: the run's details, the same request and
//! percentile tables as the console's final print (from the same
//! `StatsView` rows), failures, exceptions with tracebacks and the task
//! ratios are HTML written here, every outside string escaped; the charts
//! are drawn in the browser by uPlot (vendored under `assets/`, embedded
//! with its MIT license) from the JSON blob `html_data` builds. This module
//! does not own the numbers (`stats`), where the file goes (`headless`),
//! nor the chart data (`data`).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{format_ms, percent_label, utc_timestamp, FinalReport};
use crate::engine::Topology;
use crate::stats::{EntryRow, PERCENTILES};
use crate::task_ratio;

mod data;
mod open;

const UPLOT_JS: &str = include_str!("assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("assets/uPlot.LICENSE");
const REPORT_JS: &str = include_str!("assets/report.js");
const REPORT_CSS: &str = include_str!("assets/report.css");

/// Locust's `process_html_filename`: `{u}` users, `{r}` spawn rate, `{t}`
/// run time in seconds (each as an integer when whole); `{t}` stays when
/// no run time was given.
pub fn file_name(
    template: &str,
    users: u32,
    spawn_rate: f64,
    run_time: Option<Duration>,
) -> String {
    let rate = if spawn_rate.fract() == 0.0 && spawn_rate.abs() < 1e15 {
        format!("{}", spawn_rate as i64)
    } else {
        format!("{spawn_rate}")
    };
    let mut name = template
        .replace("{u}", &users.to_string())
        .replace("{r}", &rate);
    if let Some(t) = run_time {
        name = name.replace("{t}", &t.as_secs().to_string());
    }
    name
}

/// Text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole report as one HTML document.
pub fn render(report: &FinalReport) -> String {
    let info = &report.info;
    let mut out = String::with_capacity(UPLOT_JS.len() + 64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>locusta report: {} at {}</title>\n\
         <!-- Charts: uPlot 1.6.31, https://github.com/leeoniya/uPlot\n{}-->\n\
         <style>{UPLOT_CSS}\n{REPORT_CSS}</style></head>\n<body>\n",
        escape(&info.host),
        utc_timestamp(info.started),
        UPLOT_LICENSE.replace("--", "- -"),
    );
    let _ = writeln!(out, "<h1>locusta test report</h1>");
    run_section(&mut out, report);
    stats_sections(&mut out, report);
    open::section(&mut out, report);
    charts_section(&mut out, report);
    errors_sections(&mut out, report);
    tasks_section(&mut out, report);
    let _ = write!(
        out,
        "<script type=\"application/json\" id=\"report-data\">{}</script>\n\
         <script>{UPLOT_JS}</script>\n<script>{REPORT_JS}</script>\n</body></html>\n",
        data::blob(report)
    );
    out
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A time in UTC, and the reader's local time filled in by the page's
/// script from the epoch (the report is read where the run was not).
fn time_cell(t: SystemTime) -> String {
    format!(
        "{} <span class=\"local\" data-epoch=\"{}\"></span>",
        utc_timestamp(t),
        epoch(t)
    )
}

fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, _) => format!("{:.1} s", d.as_secs_f64()),
        (0, m, sec) => format!("{m} min {sec} s"),
        (h, m, sec) => format!("{h} h {m} min {sec} s"),
    }
}

/// Arguments joined as a shell would need them: quoted when they hold
/// anything but plain characters.
fn command_line(args: &[String]) -> String {
    let plain = |a: &str| {
        !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
    };
    args.iter()
        .map(|a| {
            if plain(a) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn row(out: &mut String, key: &str, value_html: &str) {
    let _ = writeln!(out, "<tr><th>{key}</th><td>{value_html}</td></tr>");
}

fn run_section(out: &mut String, report: &FinalReport) {
    let info = &report.info;
    out.push_str("<section id=\"run\"><h2>Run</h2><table class=\"info\">\n");
    row(out, "Start", &time_cell(info.started));
    row(out, "End", &time_cell(info.ended));
    let took = info.ended.duration_since(info.started).unwrap_or_default();
    row(out, "Duration", &duration_text(took));
    row(out, "Host", &escape(&info.host));
    let script = info.script.as_deref().unwrap_or("none (raw mode)");
    row(out, "Script", &escape(script));
    let classes: Vec<String> = info
        .classes
        .iter()
        .map(|c| match c.fixed_count.filter(|n| *n > 0) {
            Some(n) => format!("{} (fixed_count {n})", c.name),
            None => format!("{} (weight {})", c.name, c.weight),
        })
        .collect();
    row(out, "User classes", &escape(&classes.join(", ")));
    row(out, "locusta version", &escape(info.version));
    match &info.topology {
        Topology::Local { shards, io_driver } => row(
            out,
            "Engine",
            &format!("{shards} shard(s), I/O driver {}", io_driver.as_str()),
        ),
        Topology::Master { workers } => {
            let mut cell = format!("master of {} worker(s)", workers.len());
            if !workers.is_empty() {
                cell += "<table class=\"workers\"><tr><th>Worker</th><th>State</th>\
                         <th>Users</th><th>CPU %</th><th>Memory MiB</th></tr>";
                for w in workers {
                    let _ = write!(
                        cell,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td></tr>",
                        escape(&w.id),
                        escape(&w.state),
                        w.users,
                        w.cpu_percent,
                        w.memory_bytes as f64 / (1024.0 * 1024.0)
                    );
                }
                cell += "</table>";
            }
            row(out, "Engine", &cell);
        }
    }
    row(out, "Target users", &info.target_users.to_string());
    row(out, "Spawn rate", &format!("{} users/s", info.spawn_rate));
    let limit = info.run_time.map_or("none".to_string(), duration_text);
    row(out, "Run time limit", &limit);
    row(
        out,
        "Command line",
        &format!("<code>{}</code>", escape(&command_line(&info.command_line))),
    );
    out.push_str("</table></section>\n");
}

fn name_cells(r: &EntryRow) -> String {
    format!(
        "<td>{}</td><td class=\"name\">{}</td>",
        r.method_str(),
        escape(&r.name)
    )
}

/// The console's final tables: requests (whole-run req/s) and percentiles
/// (rows with requests only), Aggregated last.
fn stats_sections(out: &mut String, report: &FinalReport) {
    let stats = &report.stats;
    out.push_str("<section id=\"requests\"><h2>Request statistics</h2>\n");
    if stats.aggregated.num_requests == 0 {
        out.push_str("<p class=\"empty\">No requests were made during this run.</p>\n");
    }
    out.push_str(
        "<table class=\"stats\"><tr><th>Type</th><th>Name</th><th># reqs</th>\
         <th># fails</th><th>Avg (ms)</th><th>Min (ms)</th><th>Max (ms)</th>\
         <th>Med (ms)</th><th>req/s</th><th>failures/s</th></tr>\n",
    );
    for r in stats.entries.iter().chain([&stats.aggregated]) {
        let class = if r.method.is_none() {
            " class=\"total\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<tr{class}>{}<td>{}</td><td>{}({:.2}%)</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td></tr>",
            name_cells(r),
            r.num_requests,
            r.num_failures,
            r.fail_ratio() * 100.0,
            format_ms(r.avg_ms),
            format_ms(r.min_ms),
            format_ms(r.max_ms),
            format_ms(r.median_ms),
            r.total_rps,
            r.total_fail_per_sec,
        );
    }
    out.push_str("</table></section>\n");

    out.push_str("<section id=\"percentiles\"><h2>Response time percentiles (ms)</h2>\n");
    out.push_str("<table class=\"stats\"><tr><th>Type</th><th>Name</th>");
    for q in PERCENTILES {
        let _ = write!(out, "<th>{}</th>", percent_label(q));
    }
    out.push_str("<th># reqs</th></tr>\n");
    let with_requests = stats.entries.iter().filter(|r| r.num_requests > 0);
    let total = Some(&stats.aggregated).filter(|r| r.num_requests > 0);
    for r in with_requests.chain(total) {
        let class = if r.method.is_none() {
            " class=\"total\""
        } else {
            ""
        };
        let _ = write!(out, "<tr{class}>{}", name_cells(r));
        for ms in r.percentiles_ms {
            let _ = write!(out, "<td>{}</td>", format_ms(ms));
        }
        let _ = writeln!(out, "<td>{}</td></tr>", r.num_requests);
    }
    out.push_str("</table></section>\n");
}

/// Chart containers; `report.js` draws into them. The counts are in the
/// page so the script (and a test) know how many charts to expect.
fn charts_section(out: &mut String, report: &FinalReport) {
    let spectra =
        data::spectrum_rows(report).len() + usize::from(data::corrected_spectrum(report).is_some());
    let _ = writeln!(
        out,
        "<section id=\"charts\"><h2>Charts</h2>\n\
         <p class=\"note\">Per second over the whole run; times on the axes are \
         the reader's local time.</p>\n\
         <div id=\"history-charts\"></div>\n\
         <h3>Latency distribution</h3>\n\
         <p class=\"note\">HdrHistogram's percentile spectrum of the whole run for the \
         {} busiest request names and Aggregated: x is the percentile on a log scale \
         of 1/(1-q), y the response time in ms.</p>\n\
         <div id=\"spectrum-charts\" data-expected=\"{spectra}\"></div>\n</section>",
        data::SPECTRUM_NAMES
    );
    if spectra == 0 {
        out.push_str("<p class=\"empty\">No requests: no latency distribution.</p>\n");
    }
}

fn errors_sections(out: &mut String, report: &FinalReport) {
    let stats = &report.stats;
    out.push_str("<section id=\"failures\"><h2>Failures</h2>\n");
    if stats.failures.is_empty() {
        out.push_str("<p class=\"empty\">No failures.</p>\n");
    } else {
        out.push_str(
            "<table class=\"stats\"><tr><th># occurrences</th><th>Type</th><th>Name</th>\
             <th>Error</th><th>First seen</th><th>Last seen</th></tr>\n",
        );
        for f in &stats.failures {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"name\">{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td></tr>",
                f.occurrences,
                f.method.as_str(),
                escape(&f.name),
                escape(&f.error),
                utc_timestamp(f.first_seen),
                utc_timestamp(f.last_seen),
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</section>\n<section id=\"exceptions\"><h2>Exceptions</h2>\n");
    if stats.exceptions.is_empty() {
        out.push_str("<p class=\"empty\">No exceptions.</p>\n");
    } else {
        out.push_str(
            "<table class=\"stats\"><tr><th>Count</th><th>Message</th>\
             <th>Traceback</th><th>Nodes</th></tr>\n",
        );
        for e in &stats.exceptions {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td><pre>{}</pre></td><td>{}</td></tr>",
                e.count,
                escape(&e.message),
                escape(&e.traceback.replace('\t', "  ")),
                escape(&e.nodes.join(", ")),
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</section>\n");
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Locust's "Tasks" tab: each class's share of users and each task's
/// configured share (`--show-task-ratio`'s numbers), beside how often each
/// task actually ran.
fn tasks_section(out: &mut String, report: &FinalReport) {
    let info = &report.info;
    let users = Some(info.target_users);
    let per_class = task_ratio::ratios(&info.classes, &info.script_classes, users, false);
    let total = task_ratio::ratios(&info.classes, &info.script_classes, users, true);
    let runs = &report.task_runs;
    let all_runs: u64 = runs.iter().map(|t| t.runs).sum();
    out.push_str(
        "<section id=\"tasks\"><h2>Tasks</h2>\n<table class=\"stats\"><tr><th>Class / task</th>\
         <th>Configured (of class)</th><th>Configured (of total)</th><th>Runs</th>\
         <th>Actual (of class)</th><th>Actual (of total)</th></tr>\n",
    );
    let not_counted = "<td colspan=\"3\" class=\"empty\">not counted</td>";
    for (class, class_total) in per_class.iter().zip(&total) {
        let class_runs: u64 = runs
            .iter()
            .filter(|t| t.class == class.name)
            .map(|t| t.runs)
            .sum();
        let actual = if runs.is_empty() {
            not_counted.to_string()
        } else {
            format!(
                "<td>{class_runs}</td><td></td><td>{}</td>",
                pct(share(class_runs, all_runs))
            )
        };
        let _ = writeln!(
            out,
            "<tr class=\"class\"><td>{}</td><td></td><td>{}</td>{actual}</tr>",
            escape(&class.name),
            pct(class.ratio),
        );
        for (task, task_total) in class.tasks.iter().zip(&class_total.tasks) {
            let task_runs: u64 = runs
                .iter()
                .filter(|t| t.class == class.name && t.task == task.name)
                .map(|t| t.runs)
                .sum();
            let actual = if runs.is_empty() {
                not_counted.to_string()
            } else {
                format!(
                    "<td>{task_runs}</td><td>{}</td><td>{}</td>",
                    pct(share(task_runs, class_runs)),
                    pct(share(task_runs, all_runs))
                )
            };
            let _ = writeln!(
                out,
                "<tr><td class=\"task\">{}</td><td>{}</td><td>{}</td>{actual}</tr>",
                escape(&task.name),
                pct(task.ratio),
                pct(task_total.ratio),
            );
        }
    }
    out.push_str("</table>\n");
    if runs.is_empty() {
        out.push_str("<p class=\"note\">Task runs were not counted in this run.</p>\n");
    }
    out.push_str("</section>\n");
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests;
