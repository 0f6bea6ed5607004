//! `--json` and `--json-file` end to end: the real binary against an
//! in-process server on 127.0.0.1. The shape is checked against what real
//! Locust 2.47 prints for the same kind of run (skipped with a message
//! when `locust` is missing, except under `CI=true`); the numbers against
//! the `--csv` files of the same run.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

const LOCUSTFILE: &str = r#"
from locust import HttpUser, task, constant

class U(HttpUser):
    wait_time = constant(0.05)

    @task
    def index(self):
        self.client.get("/x")
"#;

/// Locust prints its JSON list first on stdout, then its tables.
fn locusts_json(stdout: &str) -> Value {
    let start = stdout.find("[\n").expect("a JSON list on Locust's stdout");
    let end = start + stdout[start..].find("\n]").expect("the list's end") + 2;
    serde_json::from_str(&stdout[start..end]).expect("Locust's JSON parses")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[test]
fn every_key_locust_emits_is_ours_with_the_same_type() {
    let Some(mut locust) = locust() else { return };
    let server = TestServer::start(|_| ok("hello"));
    let dir = temp_dir("json-vs-locust");
    std::fs::write(dir.join("locustfile.py"), LOCUSTFILE).unwrap();
    let theirs = run_bounded(
        locust
            .current_dir(&dir)
            .args(["-f", "locustfile.py", "--headless", "-u", "1", "-r", "1"])
            .args(["-t", "2s", "--json", "-H", &server.url("")]),
        LIMIT,
    );
    assert!(theirs.status.success(), "{}", text(&theirs.stderr));
    let theirs = locusts_json(&text(&theirs.stdout));

    let file = dir.join("sub/report.json");
    let ours = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "1",
                "-r",
                "1",
                "-t",
                "2s",
                "--shards",
                "1",
            ])
            .args(["--json", "--json-file", file.to_str().unwrap()])
            .arg(server.url("/x")),
        LIMIT,
    );
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    // With --json, stdout is the document and nothing else: the periodic
    // and final tables went to stderr.
    let stdout = text(&ours.stdout);
    let parsed: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}"));
    assert!(text(&ours.stderr).contains("Response time percentiles"));
    // --json-file FILE.json is written as named, with the same document.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), stdout);

    let (theirs, ours) = (&theirs[0], &parsed[0]);
    assert_eq!(theirs["name"], "/x");
    assert_eq!(ours["name"], "/x");
    let theirs = theirs.as_object().unwrap();
    let ours_map = ours.as_object().unwrap();
    for (key, value) in theirs {
        let mine = ours_map
            .get(key)
            .unwrap_or_else(|| panic!("Locust's key {key} is missing in ours: {ours}"));
        assert_eq!(
            kind(mine),
            kind(value),
            "type of {key}: ours {mine}, Locust's {value}"
        );
    }
    let percentiles = ours["percentiles"].as_object().unwrap();
    let keys: Vec<&str> = percentiles.keys().map(String::as_str).collect();
    let mut want = [
        "0.5", "0.66", "0.75", "0.8", "0.9", "0.95", "0.98", "0.99", "0.999", "0.9999", "1.0",
    ];
    want.sort_unstable();
    assert_eq!(keys, want, "serde_json sorts keys");
}

/// `_stats.csv` rows by name: column → cell.
fn csv_by_name(path: &Path) -> HashMap<String, HashMap<String, String>> {
    let rows = csv_rows(path);
    let header = rows[0].clone();
    rows[1..]
        .iter()
        .map(|r| {
            let cells = header.iter().cloned().zip(r.iter().cloned()).collect();
            (r[1].clone(), cells)
        })
        .collect()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn the_numbers_are_the_csvs_of_the_same_run() {
    let server = TestServer::start(|path| {
        if path.starts_with("/fail") {
            status(500, "Internal Server Error")
        } else {
            ok("twelve bytes")
        }
    });
    let dir = temp_dir("json-vs-csv");
    let prefix = dir.join("run");
    let json_flag = dir.join("out");
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "2",
                "-r",
                "10",
                "-t",
                "2s",
                "--shards",
                "1",
            ])
            .args(["--only-summary", "--csv", prefix.to_str().unwrap()])
            .args(["--json-file", json_flag.to_str().unwrap()])
            .args([server.url("/ok"), server.url("/fail")]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "failures: --exit-code-on-error");
    // Locust's naming: --json-file out writes out.json.
    assert!(!json_flag.exists());
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out.json")).unwrap()).unwrap();
    let csv = csv_by_name(&dir.join("run_stats.csv"));
    let entries = doc.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{doc}");
    let (mut requests, mut failures) = (0, 0);
    for e in entries {
        let name = e["name"].as_str().unwrap();
        let row = &csv[name];
        let cell = |c: &str| -> f64 { row[c].parse().unwrap() };
        let n = e["num_requests"].as_u64().unwrap();
        assert!(n > 0);
        assert_eq!(n as f64, cell("Request Count"), "{name}");
        assert_eq!(num(&e["num_failures"]), cell("Failure Count"), "{name}");
        assert_eq!(e["num_none_requests"], 0);
        assert_eq!(e["method"], row["Type"].as_str());
        assert_eq!(num(&e["min_response_time"]), cell("Min Response Time"));
        assert_eq!(num(&e["max_response_time"]), cell("Max Response Time"));
        let avg = num(&e["total_response_time"]) / n as f64;
        assert!(
            (avg - cell("Average Response Time")).abs() < 0.0006,
            "{name}: {avg}"
        );
        let size = num(&e["total_content_length"]) / n as f64;
        assert!(
            (size - cell("Average Content Size")).abs() < 0.001,
            "{name}"
        );
        // total_rps over the same span: last_request_timestamp - start_time.
        let span = num(&e["last_request_timestamp"]) - num(&e["start_time"]);
        let rps = n as f64 / span;
        assert!(
            (rps / cell("Requests/s") - 1.0).abs() < 1e-4,
            "{name}: {rps}"
        );
        for (q, col) in [
            ("0.5", "50%"),
            ("0.95", "95%"),
            ("0.99", "99%"),
            ("1.0", "100%"),
        ] {
            assert_eq!(num(&e["percentiles"][q]), cell(col), "{name} {col}");
        }
        let buckets: u64 = e["response_times"]
            .as_object()
            .unwrap()
            .values()
            .map(|c| c.as_u64().unwrap())
            .sum();
        assert_eq!(buckets, n, "{name}: every request is in one bucket");
        requests += n;
        failures += e["num_failures"].as_u64().unwrap();
    }
    let total = &csv["Aggregated"];
    assert_eq!(requests.to_string(), total["Request Count"]);
    assert_eq!(failures.to_string(), total["Failure Count"]);
    assert_eq!(
        failures,
        csv["/fail"]["Request Count"].parse::<u64>().unwrap()
    );
}

#[test]
fn an_unwritable_json_file_is_said_and_the_run_still_reports() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("json-unwritable");
    // A directory where the file should go: it cannot be created.
    std::fs::create_dir_all(dir.join("taken.json")).unwrap();
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "1",
                "-r",
                "10",
                "-t",
                "1s",
                "--shards",
                "1",
            ])
            .args(["--only-summary", "--json"])
            .args(["--json-file", dir.join("taken.json").to_str().unwrap()])
            .arg(server.url("/")),
        LIMIT,
    );
    let err = text(&out.stderr);
    assert!(err.contains("cannot write --json-file"), "{err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    let parsed: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert!(parsed[0]["num_requests"].as_u64().unwrap() > 0);
}
