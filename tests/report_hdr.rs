//! `--hdr-log` end to end: the real binary against an in-process server on
//! 127.0.0.1; the log is read back with the hdrhistogram crate's
//! `IntervalLogIterator` and V2 deserializer, and its summed per-name
//! histograms are checked against the `--csv` stats of the same run.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use cluster_common::*;
use common::*;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

const LIMIT: Duration = Duration::from_secs(60);

/// Per tag (`None`: untagged, Aggregated): summed histogram and intervals.
struct Read {
    sums: HashMap<Option<String>, (Histogram<u64>, usize)>,
    start_time: bool,
    base_time: bool,
}

fn read_log(bytes: &[u8]) -> Read {
    let mut read = Read {
        sums: HashMap::new(),
        start_time: false,
        base_time: false,
    };
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(bytes) {
        match entry.expect("the log parses") {
            LogEntry::StartTime(_) => read.start_time = true,
            LogEntry::BaseTime(_) => read.base_time = true,
            LogEntry::Interval(i) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(i.encoded_histogram())
                    .expect("base64");
                let h: Histogram<u64> = deserializer
                    .deserialize(&mut &raw[..])
                    .expect("a V2 histogram");
                assert!(i.duration() <= Duration::from_secs(3), "about a second");
                let tag = i.tag().map(|t| t.as_str().to_string());
                let (sum, n) = read
                    .sums
                    .entry(tag)
                    .or_insert_with(|| (Histogram::new(3).unwrap(), 0));
                sum.add(&h).unwrap();
                *n += 1;
            }
        }
    }
    read
}

fn request_count(csv: &std::path::Path, name: &str) -> u64 {
    let rows = csv_rows(csv);
    let row = rows
        .iter()
        .find(|r| r[1] == name)
        .unwrap_or_else(|| panic!("no {name} row in {rows:?}"));
    row[2].parse().unwrap()
}

#[test]
fn the_log_round_trips_and_its_counts_are_the_csvs() {
    let server = TestServer::start(|path| {
        if path.starts_with("/slow") {
            std::thread::sleep(Duration::from_millis(3));
        }
        ok("hi")
    });
    let dir = temp_dir("hdr-log");
    let log = dir.join("logs/run.hlog");
    let prefix = dir.join("run");
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "2",
                "-r",
                "10",
                "-t",
                "3s",
                "--shards",
                "1",
            ])
            .args(["--only-summary", "--csv", prefix.to_str().unwrap()])
            .args(["--hdr-log", log.to_str().unwrap()])
            .args([server.url("/fast"), server.url("/slow")]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bytes = std::fs::read(&log).unwrap();
    let head = text(&bytes[..bytes.len().min(1_000)]);
    assert!(head.contains("#[StartTime: "), "{head}");
    assert!(head.contains("#[BaseTime: "), "{head}");
    assert!(head.contains(
        "\n\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n"
    ));
    let read = read_log(&bytes);
    assert!(read.start_time && read.base_time);
    let stats = dir.join("run_stats.csv");
    for (tag, name) in [
        (Some("GET:/fast"), "/fast"),
        (Some("GET:/slow"), "/slow"),
        (None, "Aggregated"),
    ] {
        let (sum, intervals) = &read.sums[&tag.map(str::to_string)];
        assert_eq!(sum.len(), request_count(&stats, name), "{name}");
        assert!(*intervals >= 2, "{name}: one interval per second");
    }
    assert_eq!(read.sums.len(), 3, "{:?}", read.sums.keys());
    // Latencies are µs: /slow's requests all took over 3 ms.
    let (slow, _) = &read.sums[&Some("GET:/slow".to_string())];
    assert!(slow.min() >= 3_000, "{}", slow.min());
}

#[test]
fn a_master_logs_what_its_workers_reported() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("hdr-log-master");
    let csv = dir.join("run");
    let log = dir.join("master.hlog");
    let port = free_port();
    let args = [
        "-u",
        "2",
        "-r",
        "100",
        "-t",
        "3s",
        "--expect-workers",
        "1",
        "--hdr-log",
        log.to_str().unwrap(),
    ];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master_cmd(port, &server.url("/m"), &args, &csv),
    );
    let mut w = Proc::spawn(&dir, "w", &mut worker_cmd(port));
    assert!(m.wait(LIMIT).success(), "{}", m.logs());
    assert!(w.wait(LIMIT).success(), "{}", w.logs());
    let read = read_log(&std::fs::read(&log).unwrap());
    let total = csv_total(&csv);
    assert!(total > 0);
    assert_eq!(read.sums[&None].0.len(), total, "{}", m.logs());
    // Raw mode names rows by path: -H's path is not a name.
    assert_eq!(read.sums[&Some("GET:/".to_string())].0.len(), total);
}

#[test]
fn hostile_names_get_legal_distinct_tags() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("hdr-log-names");
    let script = dir.join("names.lua");
    std::fs::write(
        &script,
        r#"
local locusta = require "locusta"
local U = locusta.user { name = "U", wait_time = locusta.constant(0.01) }
U:task(1, function(self)
  self.client:get("/a", { name = "a b,c" })
  self.client:get("/a", { name = "a_b_c" })
  self.client:get("/a", { name = "line\nbreak\tand %2C" })
end)
"#,
    )
    .unwrap();
    let log = dir.join("names.hlog");
    let prefix = dir.join("run");
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "1",
                "-r",
                "10",
                "-t",
                "2s",
                "--shards",
                "1",
            ])
            .args(["--only-summary", "--csv", prefix.to_str().unwrap()])
            .args(["--hdr-log", log.to_str().unwrap()])
            .args(["-f", script.to_str().unwrap(), "-H", &server.url("")]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let read = read_log(&std::fs::read(&log).unwrap());
    let mut tags: Vec<Option<String>> = read.sums.keys().cloned().collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            None,
            Some("GET:a%20b%2Cc".into()),
            Some("GET:a_b_c".into()),
            Some("GET:line%0Abreak%09and%20%252C".into()),
        ]
    );
    let total: u64 = read
        .sums
        .iter()
        .filter(|(t, _)| t.is_some())
        .map(|(_, (h, _))| h.len())
        .sum();
    assert_eq!(total, read.sums[&None].0.len());
}

#[test]
fn an_unwritable_log_stops_before_the_run() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("hdr-log-unwritable");
    // A directory where the file should go.
    std::fs::create_dir_all(dir.join("taken.hlog")).unwrap();
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "1",
                "-r",
                "10",
                "-t",
                "5s",
                "--shards",
                "1",
            ])
            .args(["--hdr-log", dir.join("taken.hlog").to_str().unwrap()])
            .arg(server.url("/")),
        LIMIT,
    );
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot create --hdr-log"), "{err}");
    assert_eq!(server.requests().len(), 0, "no load was sent");
}
