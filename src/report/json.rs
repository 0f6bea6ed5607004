//! `--json` and `--json-file FILE`: the final stats as JSON in Locust's
//! shape (its `print_stats_json` / `save_stats_json`: a list of
//! `StatsEntry` dicts, indented by 4), plus locusta's exact percentiles.
//!
//! Owns the document and the file name Locust derives (`out` → `out.json`).
//! It does not own when or where it is written (`headless`) nor the
//! numbers themselves (`stats`).
//!
//! Per entry, Locust's fields (in its order): `name`, `method`,
//! `last_request_timestamp`, `start_time`, `num_requests`,
//! `num_none_requests`, `num_failures`, `total_response_time`,
//! `max_response_time`, `min_response_time`, `total_content_length`,
//! `response_times`, `num_reqs_per_sec`, `num_fail_per_sec`; then
//! `percentiles`. Where locusta keeps less than Locust (see README, JSON):
//! `last_request_timestamp` is the run's last request (what `total_rps` is
//! computed over), and the per-second dicts are empty.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use super::FinalReport;
use crate::http::Method;
use crate::stats::{locust_buckets, EntryRow, PERCENTILES};

/// The file `--json-file FILE` writes: Locust's `FILE.json`, or FILE
/// itself when it already ends in `.json`.
pub fn file_name(flag: &str) -> String {
    if flag.ends_with(".json") {
        flag.to_string()
    } else {
        format!("{flag}.json")
    }
}

/// The JSON document (ends with a newline).
pub fn render(report: &FinalReport) -> String {
    let histograms: HashMap<(Option<Method>, &str), &Histogram<u64>> = report
        .histograms
        .iter()
        .map(|h| ((h.method, h.name.as_str()), &h.histogram))
        .collect();
    let stats = &report.stats;
    let last_request = stats.last_request.map(unix_seconds);
    let start_time = unix_seconds(stats.start_time);
    let entries = stats
        .entries
        .iter()
        .filter(|e| e.num_requests > 0 || e.num_failures > 0)
        .map(|e| {
            let histogram = histograms.get(&(e.method, e.name.as_str())).copied();
            let mut json = entry(e, histogram, last_request, start_time);
            if let (Some(open), Json::Object(fields)) = (&report.open_model, &mut json) {
                fields.extend(open_model_fields(e, open));
            }
            json
        })
        .collect();
    let mut out = String::new();
    write_value(&mut out, &Json::Array(entries), 0);
    out.push('\n');
    out
}

fn entry(
    e: &EntryRow,
    histogram: Option<&Histogram<u64>>,
    last_request: Option<f64>,
    start_time: f64,
) -> Json {
    let n = e.num_requests;
    // Requests without a response time (a Locust worker's) are counted
    // but not in the histogram.
    let timed = histogram.map_or(n, |h| h.len().min(n));
    let percentiles = PERCENTILES
        .iter()
        .zip(e.percentiles_ms)
        .map(|(q, ms)| (format!("{q:?}"), Json::Number(ms)))
        .collect();
    Json::Object(vec![
        ("name".into(), Json::String(e.name.clone())),
        ("method".into(), Json::String(e.method_str().to_string())),
        (
            "last_request_timestamp".into(),
            last_request.map_or(Json::Null, Json::Number),
        ),
        ("start_time".into(), Json::Number(start_time)),
        ("num_requests".into(), Json::Integer(n)),
        ("num_none_requests".into(), Json::Integer(n - timed)),
        ("num_failures".into(), Json::Integer(e.num_failures)),
        (
            "total_response_time".into(),
            // avg × n is the exact µs total up to float rounding: round
            // back to whole µs.
            Json::Number((e.avg_ms * n as f64 * 1000.0).round() / 1000.0),
        ),
        ("max_response_time".into(), Json::Number(e.max_ms)),
        (
            "min_response_time".into(),
            if timed > 0 {
                Json::Number(e.min_ms)
            } else {
                Json::Null
            },
        ),
        (
            "total_content_length".into(),
            Json::Integer((e.avg_content_size * n as f64).round() as u64),
        ),
        (
            "response_times".into(),
            histogram.map_or(Json::Object(Vec::new()), |h| {
                // The row's raw bounds, back in whole µs.
                let us = |ms: f64| (ms * 1000.0).round() as u64;
                response_times(h, us(e.min_ms), us(e.max_ms))
            }),
        ),
        ("num_reqs_per_sec".into(), Json::Object(Vec::new())),
        ("num_fail_per_sec".into(), Json::Object(Vec::new())),
        ("percentiles".into(), Json::Object(percentiles)),
    ])
}

fn percentiles_object(percentiles_ms: &[f64; 11]) -> Json {
    Json::Object(
        PERCENTILES
            .iter()
            .zip(percentiles_ms)
            .map(|(q, ms)| (format!("{q:?}"), Json::Number(*ms)))
            .collect(),
    )
}

/// An open-model run's keys after Locust's (tools reading Locust's JSON
/// ignore them): the row's corrected percentiles and dropped iterations,
/// and `open_model`, the run's counters (the same object on every entry:
/// Locust's list has no place for run-wide numbers).
fn open_model_fields(e: &EntryRow, open: &super::OpenModel) -> Vec<(String, Json)> {
    let report = &open.report;
    let corrected = super::open_model::corrected_row(report, e)
        .filter(|c| c.num_requests > 0)
        .map_or(Json::Null, |c| percentiles_object(&c.percentiles_ms));
    let dropped = e.method.map_or(0, |m| report.dropped_of(m, &e.name));
    let i = &report.iterations;
    let aggregated = &report.corrected.aggregated;
    let totals = Json::Object(vec![
        ("target_rate".into(), Json::Number(report.target_rate)),
        ("achieved_rate".into(), Json::Number(open.achieved_rate)),
        (
            "max_users".into(),
            Json::Integer(u64::from(report.max_users)),
        ),
        ("intended_iterations".into(), Json::Integer(i.intended)),
        ("started_iterations".into(), Json::Integer(i.started)),
        ("late_iterations".into(), Json::Integer(i.late)),
        ("dropped_iterations".into(), Json::Integer(i.dropped)),
        (
            "corrected_percentiles".into(),
            if aggregated.num_requests > 0 {
                percentiles_object(&aggregated.percentiles_ms)
            } else {
                Json::Null
            },
        ),
    ]);
    vec![
        ("corrected_percentiles".into(), corrected),
        ("dropped_iterations".into(), Json::Integer(dropped)),
        ("open_model".into(), totals),
    ]
}

/// Locust's `response_times`: rounded response time (ms) → count, from
/// the HDR buckets, rounded as the cluster's reports round them.
fn response_times(histogram: &Histogram<u64>, min_us: u64, max_us: u64) -> Json {
    Json::Object(
        locust_buckets(histogram, min_us, max_us)
            .into_iter()
            .map(|(ms, count)| (ms.to_string(), Json::Integer(count)))
            .collect(),
    )
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The few JSON shapes the document needs, objects in insertion order
/// (serde_json's map sorts keys; Locust's order is the dict's).
enum Json {
    Null,
    Integer(u64),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Python's `json.dumps(indent=4)` layout.
fn write_value(out: &mut String, value: &Json, depth: usize) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Integer(n) => {
            let _ = write!(out, "{n}");
        }
        // serde_json writes non-finite numbers as null; ours are finite.
        Json::Number(x) => {
            out.push_str(&serde_json::to_string(x).unwrap_or_else(|_| "null".into()))
        }
        Json::String(s) => write_string(out, s),
        Json::Array(items) => write_container(out, '[', ']', items, depth, |out, item| {
            write_value(out, item, depth + 1)
        }),
        Json::Object(fields) => {
            write_container(out, '{', '}', fields, depth, |out, (key, value)| {
                write_string(out, key);
                out.push_str(": ");
                write_value(out, value, depth + 1);
            })
        }
    }
}

fn write_container<T>(
    out: &mut String,
    open: char,
    close: char,
    items: &[T],
    depth: usize,
    mut each: impl FnMut(&mut String, &T),
) {
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return;
    }
    for (i, item) in items.iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        indent(out, depth + 1);
        each(out, item);
    }
    out.push('\n');
    indent(out, depth);
    out.push(close);
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("    ");
    }
}

fn write_string(out: &mut String, s: &str) {
    // Serializing a str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_view::sample_view;
    use crate::stats::{new_histogram, EntryHistogram};

    fn report() -> FinalReport {
        let view = sample_view();
        let mut a = new_histogram();
        for v in [400u64, 400, 500, 145_000, 3_500] {
            a.record(v).unwrap();
        }
        // 9 of /a's 10 are timed: one came from a Locust worker without.
        for _ in 0..4 {
            a.record(600).unwrap();
        }
        let mut b = new_histogram();
        for _ in 0..5 {
            b.record(800).unwrap();
        }
        let histograms = vec![
            EntryHistogram {
                method: Some(Method::Get),
                name: "/a".into(),
                histogram: a,
            },
            EntryHistogram {
                method: Some(Method::Post),
                name: "/b?q=\"x\",y".into(),
                histogram: b,
            },
        ];
        let at = view.start_time;
        FinalReport {
            info: crate::report::RunInfo {
                version: "test",
                command_line: vec!["locusta".into()],
                started: at,
                ended: at,
                host: "http://127.0.0.1".into(),
                script: None,
                classes: Vec::new(),
                script_classes: Vec::new(),
                topology: crate::engine::Topology::Master {
                    workers: Vec::new(),
                },
                target_users: 1,
                spawn_rate: 1.0,
                run_time: None,
            },
            stats: view,
            history: Vec::new(),
            histograms,
            task_runs: Vec::new(),
            open_model: None,
        }
    }

    #[test]
    fn open_model_keys_follow_locusts_and_keep_the_list() {
        let mut r = report();
        let text = render(&r);
        assert!(
            !text.contains("corrected_percentiles"),
            "closed model: Locust's keys only"
        );
        r.open_model = Some(crate::report::OpenModel {
            report: crate::report::open_model::sample_open(),
            achieved_rate: 1.5,
        });
        let parsed: serde_json::Value = serde_json::from_str(&render(&r)).unwrap();
        let list = parsed.as_array().unwrap();
        assert_eq!(list.len(), 2, "still Locust's list of entries");
        let a = &list[0];
        assert_eq!(a["name"], "/a");
        assert_eq!(a["dropped_iterations"], 3);
        assert!(a["corrected_percentiles"]["0.99"].as_f64().unwrap() >= 500.0);
        assert_eq!(a["percentiles"]["0.99"], 2.0, "measured ones unchanged");
        assert!(
            list[1]["corrected_percentiles"].is_null(),
            "no corrected requests"
        );
        let totals = &a["open_model"];
        assert_eq!(totals["intended_iterations"], 6);
        assert_eq!(totals["started_iterations"], 2);
        assert_eq!(totals["late_iterations"], 1);
        assert_eq!(totals["dropped_iterations"], 3);
        assert_eq!(totals["target_rate"], 100.0);
        assert_eq!(totals["achieved_rate"], 1.5);
        assert_eq!(list[1]["open_model"], *totals);
    }

    #[test]
    fn locusts_fields_in_locusts_order_and_layout() {
        let text = render(&report());
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let list = parsed.as_array().unwrap();
        assert_eq!(
            list.len(),
            2,
            "/c had no requests, Aggregated is not listed"
        );
        let a = &list[0];
        assert_eq!(a["name"], "/a");
        assert_eq!(a["method"], "GET");
        assert_eq!(a["num_requests"], 10);
        assert_eq!(a["num_none_requests"], 1);
        assert_eq!(a["num_failures"], 1);
        assert_eq!(a["total_response_time"], 4.14);
        assert_eq!(a["max_response_time"], 3.5);
        assert_eq!(a["min_response_time"], 0.2);
        assert_eq!(a["total_content_length"], 15_000);
        assert_eq!(a["start_time"], 1_700_000_000.0);
        assert_eq!(a["last_request_timestamp"], 1_700_000_004.0);
        assert_eq!(
            a["response_times"],
            // The 140 ms value lies above the sample row's max (3.5 ms):
            // buckets are kept within the row's raw min and max.
            serde_json::json!({"0": 3, "1": 4, "4": 2})
        );
        assert_eq!(a["percentiles"]["0.5"], 0.4);
        assert_eq!(a["percentiles"]["0.9999"], 3.4);
        assert_eq!(a["percentiles"]["1.0"], 3.5);
        assert_eq!(a["num_reqs_per_sec"], serde_json::json!({}));
        assert_eq!(list[1]["name"], "/b?q=\"x\",y");
        let keys: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("        \""))
            .map(|l| l.trim().split('"').nth(1).unwrap())
            .take(15)
            .collect();
        assert_eq!(
            keys,
            [
                "name",
                "method",
                "last_request_timestamp",
                "start_time",
                "num_requests",
                "num_none_requests",
                "num_failures",
                "total_response_time",
                "max_response_time",
                "min_response_time",
                "total_content_length",
                "response_times",
                "num_reqs_per_sec",
                "num_fail_per_sec",
                "percentiles"
            ]
        );
        assert!(text.starts_with("[\n    {\n        \"name\": \"/a\",\n"));
        assert!(text.contains("        \"num_fail_per_sec\": {},\n"));
        assert!(text.ends_with("    }\n]\n"));
    }

    #[test]
    fn an_untimed_only_entry_has_no_minimum() {
        let mut r = report();
        r.histograms.clear();
        r.histograms.push(EntryHistogram {
            method: Some(Method::Get),
            name: "/a".into(),
            histogram: new_histogram(),
        });
        let parsed: serde_json::Value = serde_json::from_str(&render(&r)).unwrap();
        assert_eq!(parsed[0]["num_none_requests"], 10);
        assert_eq!(parsed[0]["min_response_time"], serde_json::Value::Null);
        assert_eq!(parsed[0]["response_times"], serde_json::json!({}));
        // No histogram at all (not expected): all counted as timed.
        assert_eq!(parsed[1]["num_none_requests"], 0);
    }

    #[test]
    fn nothing_to_report_is_an_empty_list() {
        let mut r = report();
        r.stats.entries.retain(|e| e.num_requests == 0);
        assert_eq!(render(&r), "[]\n");
    }

    #[test]
    fn json_file_names_as_locust_with_json_kept() {
        assert_eq!(file_name("out"), "out.json");
        assert_eq!(file_name("dir/run.1"), "dir/run.1.json");
        assert_eq!(file_name("report.json"), "report.json");
    }
}
