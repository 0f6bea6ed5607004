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

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{locusta, ok, status, temp_dir, wait_bounded, TestServer};
use serde_json::Value;

const PARSER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/web_metrics_support/parse.py"
);

/// Whether `prometheus_client` can be imported (else say how to get it).
fn parser_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "prometheus_client is missing: .ci/run must `pip install prometheus-client==0.21.1`"
        );
        eprintln!("skipped: pip install prometheus-client==0.21.1");
    }
    found
}

/// `parse.py` with `args`, `input` on stdin; its JSON answer.
fn python(args: &[&str], input: &str) -> Value {
    let mut child = Command::new("python3")
        .arg(PARSER)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = wait_bounded(child, Duration::from_secs(30));
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "parse.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parse.py prints JSON")
}

/// One sample as the Prometheus parser read it.
#[derive(Clone, Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// One scrape, parsed.
struct Scrape {
    /// Family name (as the parser names it: counters lose `_total`) → type.
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
    text: String,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let families = python(&["metrics"], &text);
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for f in families.as_array().unwrap() {
            types.insert(
                f["name"].as_str().unwrap().to_string(),
                f["type"].as_str().unwrap().to_string(),
            );
            for s in f["samples"].as_array().unwrap() {
                let value = match &s["value"] {
                    Value::Number(n) => n.as_f64().unwrap(),
                    other => panic!("not a finite number: {other}"),
                };
                let labels = s["labels"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                samples.push(Sample {
                    name: s["name"].as_str().unwrap().to_string(),
                    labels,
                    value,
                });
            }
        }
        Scrape {
            types,
            samples,
            text,
        }
    }

    fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// The value of the one sample `name` with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
            .collect();
        assert!(found.len() <= 1, "{name}{labels:?} twice:\n{}", self.text);
        found.first().copied()
    }

    fn sum(&self, name: &str) -> f64 {
        self.series(name).iter().map(|s| s.value).sum()
    }

    /// The state whose gauge is 1 (exactly one is).
    fn state(&self) -> String {
        let on: Vec<&Sample> = self
            .series("locusta_state")
            .into_iter()
            .filter(|s| s.value == 1.0)
            .collect();
        assert_eq!(on.len(), 1, "one state at a time:\n{}", self.text);
        assert_eq!(self.series("locusta_state").len(), 5, "{}", self.text);
        on[0].labels["state"].clone()
    }

    /// What holds in every scrape: the families and their types, and each
    /// histogram's buckets cumulative with `+Inf` equal to `_count`.
    fn check_shape(&self) {
        let types = [
            ("locusta_info", "gauge"),
            ("locusta_state", "gauge"),
            ("locusta_users", "gauge"),
            ("locusta_target_users", "gauge"),
            ("locusta_current_rps", "gauge"),
            ("locusta_current_fail_per_sec", "gauge"),
            ("locusta_requests", "counter"),
            ("locusta_failures", "counter"),
            ("locusta_request_duration_seconds", "histogram"),
            ("locusta_workers", "gauge"),
            ("locusta_worker_cpu_percent", "gauge"),
            ("locusta_worker_users", "gauge"),
        ];
        for (family, kind) in types {
            assert_eq!(
                self.types.get(family).map(String::as_str),
                Some(kind),
                "family {family}:\n{}",
                self.text
            );
        }
        let info = self.series("locusta_info");
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].value, 1.0);
        assert!(["io_uring", "epoll"].contains(&info[0].labels["io_driver"].as_str()));
        assert_eq!(info[0].labels["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(self.value("locusta_workers", &[]), Some(0.0));

        let les = [
            "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
            "5", "10", "+Inf",
        ];
        for count in self.series("locusta_request_duration_seconds_count") {
            let (method, name) = (&count.labels["method"], &count.labels["name"]);
            let mut last = 0.0;
            for le in les {
                let bucket = self
                    .value(
                        "locusta_request_duration_seconds_bucket",
                        &[("method", method), ("name", name), ("le", le)],
                    )
                    .unwrap_or_else(|| panic!("no bucket le={le} for {method} {name}"));
                assert!(bucket >= last, "{method} {name}: le={le} {bucket} < {last}");
                last = bucket;
            }
            assert_eq!(last, count.value, "{method} {name}: +Inf != _count");
            let sum = self
                .value(
                    "locusta_request_duration_seconds_sum",
                    &[("method", method), ("name", name)],
                )
                .unwrap();
            assert!(sum >= 0.0 && (count.value == 0.0) == (sum == 0.0), "{sum}");
        }
        let buckets = self.series("locusta_request_duration_seconds_bucket").len();
        assert_eq!(
            buckets,
            les.len() * self.series("locusta_request_duration_seconds_count").len()
        );
    }
}

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

/// A `locusta --web --web-port 0` process, its logs collected as they come.
struct WebRun {
    child: Option<Child>,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

impl WebRun {
    fn start(args: &[&str]) -> WebRun {
        let mut child = locusta()
            .args(["--headless", "--web", "--web-port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn locusta");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (err, sink) = (child.stderr.take().unwrap(), stderr.clone());
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        // Drained so that the final tables never fill the pipe.
        let mut out = child.stdout.take().unwrap();
        thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let mut run = WebRun {
            child: Some(child),
            port: 0,
            stderr,
        };
        let marker = "Web UI and API on http://127.0.0.1:";
        let line = run.wait_log(marker, Duration::from_secs(30));
        let port = line.split(marker).nth(1).unwrap();
        run.port = port.trim_end_matches('/').parse().unwrap();
        run
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The first log line holding `needle`, waiting for it up to `limit`.
    fn wait_log(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.stderr().lines().find(|l| l.contains(needle)) {
                return l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` within {limit:?}:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `method /metrics`: status, content type, body.
    fn request(&self, method: &str) -> (u16, String, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to /metrics");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "{method} /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("read the /metrics answer");
        let raw = String::from_utf8(raw).expect("UTF-8 answer");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a complete head");
        let code = head.split(' ').nth(1).unwrap().parse().unwrap();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        if method != "HEAD" {
            let length: usize = header("content-length").parse().expect("Content-Length");
            assert_eq!(length, body.len(), "whole body");
        }
        (code, header("content-type"), body.to_string())
    }

    fn scrape(&self) -> Scrape {
        let (code, content_type, body) = self.request("GET");
        assert_eq!(code, 200, "{body}");
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        let scrape = Scrape::parse(body);
        scrape.check_shape();
        scrape
    }

    /// Wait for the process to exit; its exit code.
    fn finish(&mut self) -> Option<i32> {
        let child = self.child.take().unwrap();
        let out = wait_bounded(child, Duration::from_secs(60));
        out.status.code()
    }
}

impl Drop for WebRun {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A FIFO at `path`: a writer's `open()` waits for a reader.
fn make_fifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// CSV rows (Python's csv module: quoted fields with commas stay whole).
fn csv(path: &Path) -> Vec<Vec<String>> {
    let rows = python(&["csv", path.to_str().unwrap()], "");
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

/// Header name → index.
fn column(rows: &[Vec<String>], name: &str) -> usize {
    rows[0]
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", rows[0]))
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
