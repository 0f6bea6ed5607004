//! `GET /metrics` end to end: a real `locusta --headless --web` run against
//! the in-process test server, scraped while it runs and once its users
//! stopped, every scrape parsed by Prometheus' own Python parser
//! (`prometheus_client`, see `web_metrics_support/parse.py`).
//!
//! To scrape after the users stopped and before the process exits, the run
//! writes `--json-file` into a FIFO: the final CSV files are written, then
//! the process waits in `open()` until the test reads the FIFO.
//!
//! Needs `pip install prometheus-client==0.21.1` (skipped with a message
//! when missing, a failure under CI=true).

mod common;
#[path = "web_metrics_support/mod.rs"]
mod web_metrics_support;

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use common::{ok, status, temp_dir, TestServer};
use serde_json::Value;
use web_metrics_support::{column, csv, make_fifo, parser_available, Scrape, WebRun};

/// Every counter series of `before` is still there in `after`, not lower.
fn check_counters_never_fall(before: &Scrape, after: &Scrape) {
    let counters = [
        "locusta_requests_total",
        "locusta_failures_total",
        "locusta_request_duration_seconds_bucket",
        "locusta_request_duration_seconds_sum",
        "locusta_request_duration_seconds_count",
    ];
    for name in counters {
        for s in before.series(name) {
            let labels: Vec<(&str, &str)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let now = after
                .value(name, &labels)
                .unwrap_or_else(|| panic!("{name}{labels:?} vanished"));
            assert!(
                now >= s.value,
                "{name}{labels:?} fell: {} -> {now}",
                s.value
            );
        }
    }
}

/// A run of `args` (plus `--csv`, the FIFO'd `--json-file`, and `urls`),
/// scraped every 1.5 s while it runs and once its users stopped; returns
/// the final scrape after checking it against the CSV files. `users`: the
/// per-class gauges expected once all users run.
fn scraped_run(test: &str, args: &[&str], urls: &[String], users: &[(&str, f64)]) -> Scrape {
    let dir = temp_dir(test);
    let prefix = dir.join("run");
    let hold: PathBuf = dir.join("hold.json");
    make_fifo(&hold);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--csv", prefix.to_str().unwrap()]);
    all.extend(["--json-file", hold.to_str().unwrap()]);
    all.extend(urls.iter().map(String::as_str));
    let mut run = WebRun::start(&all);

    // While the users run.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut scrapes: Vec<Scrape> = Vec::new();
    while !run.stderr().contains("--run-time limit reached") {
        assert!(Instant::now() < deadline, "no end:\n{}", run.stderr());
        let scrape = run.scrape();
        if let Some(before) = scrapes.last() {
            check_counters_never_fall(before, &scrape);
        }
        scrapes.push(scrape);
        thread::sleep(Duration::from_millis(1500));
    }
    let running: Vec<&Scrape> = scrapes.iter().filter(|s| s.state() == "running").collect();
    assert!(
        running.len() >= 2,
        "{} scrapes while running",
        running.len()
    );
    for pair in running.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let (ra, rb) = (
            a.sum("locusta_requests_total"),
            b.sum("locusta_requests_total"),
        );
        assert!(rb > ra, "requests did not grow over 1.5 s: {ra} -> {rb}");
        let (ca, cb) = (
            a.sum("locusta_request_duration_seconds_count"),
            b.sum("locusta_request_duration_seconds_count"),
        );
        assert!(cb > ca, "_count did not grow: {ca} -> {cb}");
    }
    let full = running.last().unwrap();
    for (class, n) in users {
        assert_eq!(
            full.value("locusta_users", &[("class", class)]),
            Some(*n),
            "users of {class}:\n{}",
            full.text
        );
    }
    assert!(
        !full.types.contains_key("locusta_iterations_started"),
        "open-model counters in a closed-model run:\n{}",
        full.text
    );
    let total: f64 = users.iter().map(|u| u.1).sum();
    assert_eq!(full.value("locusta_target_users", &[]), Some(total));
    assert!(full.value("locusta_current_rps", &[]).unwrap() > 0.0);

    // Users stopped; the process waits on the FIFO with its reports due.
    let deadline = Instant::now() + Duration::from_secs(30);
    let last = loop {
        let scrape = run.scrape();
        check_counters_never_fall(scrapes.last().unwrap(), &scrape);
        if scrape.state() == "stopped" {
            break scrape;
        }
        assert!(Instant::now() < deadline, "not stopped:\n{}", run.stderr());
        scrapes.push(scrape);
        thread::sleep(Duration::from_millis(100));
    };
    let reader = thread::spawn(move || std::fs::read_to_string(hold));
    let code = run.finish();
    let json = reader.join().unwrap().expect("read the JSON report");
    // Locust's --json: one object per row, as the scrape has them.
    let rows: Value = serde_json::from_str(&json).expect("a JSON report");
    for row in rows.as_array().unwrap() {
        let labels = [
            ("method", row["method"].as_str().unwrap()),
            ("name", row["name"].as_str().unwrap()),
        ];
        let requests = row["num_requests"].as_f64().unwrap();
        assert_eq!(
            last.value("locusta_requests_total", &labels),
            Some(requests)
        );
    }
    assert!(
        code == Some(0) || code == Some(1),
        "exit {code:?}:\n{}",
        run.stderr()
    );

    for (class, _) in users {
        assert_eq!(last.value("locusta_users", &[("class", class)]), Some(0.0));
    }
    compare_with_csv(&last, &prefix);
    last
}

/// The final scrape says what the final CSV files say, row for row.
fn compare_with_csv(last: &Scrape, prefix: &Path) {
    let stats = csv(&prefix.with_file_name("run_stats.csv"));
    let (ty, name) = (column(&stats, "Type"), column(&stats, "Name"));
    let (reqs, fails) = (
        column(&stats, "Request Count"),
        column(&stats, "Failure Count"),
    );
    let rows: Vec<&Vec<String>> = stats[1..]
        .iter()
        .filter(|r| r[name] != "Aggregated")
        .collect();
    assert_eq!(rows.len(), last.series("locusta_requests_total").len());
    for row in &rows {
        let labels = [("method", row[ty].as_str()), ("name", row[name].as_str())];
        let requests = last.value("locusta_requests_total", &labels);
        assert_eq!(requests, Some(row[reqs].parse().unwrap()), "{row:?}");
        assert_eq!(
            last.value("locusta_request_duration_seconds_count", &labels),
            requests,
            "_count of {row:?}"
        );
        let failures: f64 = last
            .series("locusta_failures_total")
            .iter()
            .filter(|s| s.labels["method"] == row[ty] && s.labels["name"] == row[name])
            .map(|s| s.value)
            .sum();
        assert_eq!(failures, row[fails].parse::<f64>().unwrap(), "{row:?}");
    }
    let failures = csv(&prefix.with_file_name("run_failures.csv"));
    assert_eq!(
        failures.len() - 1,
        last.series("locusta_failures_total").len()
    );
    let col = |n| column(&failures, n);
    let (m, n, e, o) = (col("Method"), col("Name"), col("Error"), col("Occurrences"));
    for row in &failures[1..] {
        let labels = [
            ("method", &*row[m]),
            ("name", &*row[n]),
            ("error", &*row[e]),
        ];
        assert_eq!(
            last.value("locusta_failures_total", &labels),
            Some(row[o].parse().unwrap()),
            "{row:?}"
        );
    }
}

#[test]
fn raw_run_counters_grow_and_end_as_the_csv_and_the_server_say() {
    if !parser_available() {
        return;
    }
    let server = TestServer::start(|path| match path {
        "/fail" => status(500, "Internal Server Error"),
        _ => ok("hello"),
    });
    let urls = [server.url("/ok"), server.url("/fail")];
    let args = [
        "-u",
        "2",
        "-r",
        "100",
        "-t",
        "6s",
        "--stop-timeout",
        "5s",
        "--shards",
        "1",
        "--only-summary",
    ];
    let last = scraped_run("web-metrics-raw", &args, &urls, &[("raw", 2.0)]);
    let seen = server.requests().len() as f64;
    assert_eq!(last.sum("locusta_requests_total"), seen, "server saw");
    let ok = last.value(
        "locusta_requests_total",
        &[("method", "GET"), ("name", "/ok")],
    );
    assert!(ok.unwrap() > 0.0);
    assert!(last.sum("locusta_failures_total") > 0.0);
}

const TWO_CLASSES: &str = r#"
local locusta = require "locusta"
local Shop = locusta.user { name = "Shop", weight = 3, wait_time = locusta.constant(0.02) }
Shop:task(1, function(self)
  self.client:get("/item/" .. math.random(1, 50), { name = "/item/:id" })
end)
local Broken = locusta.user { name = "Broken", weight = 1, wait_time = locusta.constant(0.02) }
Broken:task(1, function(self) self.client:get("/missing") end)
"#;

#[test]
fn script_run_with_two_classes_and_a_failure() {
    if !parser_available() {
        return;
    }
    let server = TestServer::start(|path| match path {
        "/missing" => status(404, "Not Found"),
        _ => ok("{}"),
    });
    let dir = temp_dir("web-metrics-lua-script");
    let script = dir.join("two.lua");
    std::fs::write(&script, TWO_CLASSES).unwrap();
    let host = server.url("");
    let args = [
        "-f",
        script.to_str().unwrap(),
        "-H",
        &host,
        "-u",
        "4",
        "-r",
        "100",
        "-t",
        "6s",
        "--stop-timeout",
        "5s",
        "--shards",
        "1",
        "--only-summary",
    ];
    let last = scraped_run(
        "web-metrics-lua",
        &args,
        &[],
        &[("Shop", 3.0), ("Broken", 1.0)],
    );
    let item = [("method", "GET"), ("name", "/item/:id")];
    assert!(last.value("locusta_requests_total", &item).unwrap() > 0.0);
    let missing = [("method", "GET"), ("name", "/missing")];
    let requests = last.value("locusta_requests_total", &missing).unwrap();
    let failures = last.series("locusta_failures_total");
    assert_eq!(failures.len(), 1, "{}", last.text);
    assert_eq!(failures[0].labels["name"], "/missing");
    assert!(
        failures[0].labels["error"].contains("404"),
        "{:?}",
        failures[0]
    );
    assert_eq!(failures[0].value, requests, "every /missing failed");
    assert_eq!(
        last.sum("locusta_requests_total"),
        server.requests().len() as f64
    );
}

#[test]
fn label_values_with_quote_backslash_and_newline_survive_the_parser() {
    if !parser_available() {
        return;
    }
    let server = TestServer::start(|_| status(503, "Service Unavailable"));
    let dir = temp_dir("web-metrics-escape");
    let script = dir.join("odd.lua");
    std::fs::write(
        &script,
        r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0.05) }
U:task(1, function(self) self.client:get("/x", { name = "we\"ird\\pa\nth" }) end)
"#,
    )
    .unwrap();
    let host = server.url("");
    let mut run = WebRun::start(&[
        "-f",
        script.to_str().unwrap(),
        "-H",
        &host,
        "-u",
        "1",
        "-t",
        "4s",
        "--shards",
        "1",
        "--only-summary",
    ]);
    let odd = "we\"ird\\pa\nth";
    let deadline = Instant::now() + Duration::from_secs(20);
    let scrape = loop {
        let scrape = run.scrape();
        if !scrape.series("locusta_failures_total").is_empty() {
            break scrape;
        }
        assert!(Instant::now() < deadline, "no requests:\n{}", run.stderr());
        thread::sleep(Duration::from_millis(200));
    };
    assert!(
        scrape.text.contains(r#"name="we\"ird\\pa\nth""#),
        "escaped on the wire:\n{}",
        scrape.text
    );
    let requests = scrape.series("locusta_requests_total");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].labels["name"], odd);
    let failure = &scrape.series("locusta_failures_total")[0];
    assert_eq!(failure.labels["name"], odd);
    let count = scrape.series("locusta_request_duration_seconds_count");
    assert_eq!(count[0].labels["name"], odd);

    // Only GET (and HEAD) read metrics.
    let (code, _, body) = run.request("POST");
    assert_eq!(code, 405, "{body}");
    let (code, _, _) = run.request("HEAD");
    assert_eq!(code, 200);
    assert_eq!(run.finish(), Some(1), "{}", run.stderr());
}

#[test]
fn open_model_run_counts_intended_started_and_dropped_iterations() {
    if !parser_available() {
        return;
    }
    // 2 users answered after 50 ms manage 40 iterations/s of the 200 asked.
    let server = TestServer::start(|_| {
        thread::sleep(Duration::from_millis(50));
        ok("slow")
    });
    let url = server.url("/slow");
    let run = WebRun::start(&[
        "--rate",
        "200",
        "-u",
        "2",
        "-t",
        "5s",
        "--shards",
        "1",
        "--only-summary",
        &url,
    ]);
    let counters = |s: &Scrape| {
        let get = |name| {
            s.value(name, &[])
                .unwrap_or_else(|| panic!("{name}:\n{}", s.text))
        };
        (
            get("locusta_iterations_intended_total"),
            get("locusta_iterations_started_total"),
            get("locusta_iterations_dropped_total"),
        )
    };
    thread::sleep(Duration::from_millis(1500));
    let first = run.scrape();
    thread::sleep(Duration::from_millis(1500));
    let second = run.scrape();
    for s in [&first, &second] {
        assert_eq!(s.types["locusta_iterations_intended"], "counter");
        let (intended, started, dropped) = counters(s);
        assert!(started + dropped <= intended, "{}", s.text);
        // Users come as iterations need them: no per-class split.
        assert!(
            s.value("locusta_users", &[("class", "")]).is_some(),
            "{}",
            s.text
        );
    }
    let (i1, s1, d1) = counters(&first);
    let (i2, s2, d2) = counters(&second);
    assert!(
        i2 > i1 && s2 > s1 && d2 >= d1,
        "{:?} -> {:?}",
        (i1, s1, d1),
        (i2, s2, d2)
    );
    assert!(
        d2 > 0.0,
        "200/s asked of 2 users at 50 ms each: some must drop"
    );
    assert!(s2 > 0.0 && s2 < i2, "{}", second.text);
}
