//! The stats tables' bounds through the real binary on 127.0.0.1: a run
//! where every failure and every script error has its own text keeps at
//! most the capped rows plus their `(other)` rows, with exact totals, and
//! so does a master fed by a hostile worker; and the history CSV has one
//! row per second of the run, even when the process is stalled, and none
//! at 0 users after the stop.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use cluster_common::*;
use common::*;
use locusta::cluster::protocol::{MasterMessage, WorkerMessage};
use locusta::cluster::report::ReportBuilder;
use locusta::cluster::sim::SimWorker;
use locusta::http::Method;
use locusta::stats::{Failure, ShardStats, MAX_EXCEPTIONS, MAX_FAILURES};

/// Each task: one request failed with a message of its own, then an error
/// raised with a message of its own.
const FLOOD: &str = r#"
local locusta = require "locusta"
local n = 0
local Flood = locusta.user { wait_time = locusta.constant(0) }
Flood:task(1, function(self)
  n = n + 1
  local id = n
  self.client:get("/x", { catch_response = true }, function(r)
    r:failure("bad answer " .. id)
  end)
  error("task failed " .. id)
end)
"#;

/// The first cell of each record of a CSV file whose later cells may hold
/// quoted commas and newlines (tracebacks), header excluded.
fn first_cells(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn distinct_failures_and_errors_are_capped_with_exact_totals() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("stats-caps");
    let script = dir.join("flood.lua");
    std::fs::write(&script, FLOOD).unwrap();
    let prefix = dir.join("run");
    // The final tables (a thousand failure rows) would fill a pipe nobody
    // reads while the run is bounded: stdout goes nowhere.
    let child = locusta()
        .args(["-f", script.to_str().unwrap(), "-H", &server.url("")])
        .args(["--headless", "--only-summary", "-u", "4", "-r", "100"])
        .args([
            "-t",
            "4s",
            "--shards",
            "2",
            "--csv",
            prefix.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let agg = aggregated(&dir.join("run_stats.csv"));
    let requests: u64 = agg["Request Count"].parse().unwrap();
    assert_eq!(
        agg["Failure Count"], agg["Request Count"],
        "every request failed"
    );
    assert!(
        requests > 2 * MAX_FAILURES as u64,
        "only {requests} requests: too few to pass the cap"
    );

    let failures = csv_rows(&dir.join("run_failures.csv"));
    let rows = &failures[1..];
    // One named row, so at most one fold row.
    assert!(
        rows.len() <= MAX_FAILURES + 1,
        "{} failure rows",
        rows.len()
    );
    let other: Vec<_> = rows.iter().filter(|r| r[2] == "(other)").collect();
    assert_eq!(other.len(), 1, "one (other) row for GET /x");
    assert_eq!(&other[0][..2], ["GET", "/x"]);
    let occurrences: u64 = rows.iter().map(|r| r[3].parse::<u64>().unwrap()).sum();
    assert_eq!(occurrences, requests, "failure rows add up to the failures");

    let counts = first_cells(&dir.join("run_exceptions.csv"));
    assert!(
        counts.len() <= MAX_EXCEPTIONS + 1,
        "{} exception rows",
        counts.len()
    );
    let errors: u64 = counts.iter().map(|c| c.parse::<u64>().unwrap()).sum();
    // A task cut by the stop after its request raises nothing.
    assert!(
        errors <= requests && errors + 4 >= requests,
        "{errors} errors for {requests} tasks"
    );
    let exceptions = std::fs::read_to_string(dir.join("run_exceptions.csv")).unwrap();
    assert!(exceptions.contains("\r\n") && exceptions.contains(",(other),"));
}

#[test]
fn history_has_one_row_per_second_across_a_stall_and_none_after_the_stop() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("stats-history");
    let prefix = dir.join("h");
    let child = locusta()
        .args(["--headless", "--only-summary", "-u", "2", "-r", "10"])
        .args([
            "-t",
            "7s",
            "--csv",
            prefix.to_str().unwrap(),
            &server.url("/"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2_000));
    // Stall the whole process for 3 s, as a master blocked on a huge
    // message or a swapped-out box would be.
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(3_000));
    unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
    let out = wait_bounded(child, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let history = csv_rows(&dir.join("h_stats_history.csv"));
    let rows = &history[1..];
    // Seconds in which the control thread got no tick have no point (gaps
    // stay gaps), and on a loaded CI box that can be most of the 4 s the
    // run had users outside the stall: two rows is what is certain.
    assert!(rows.len() >= 2, "{rows:?}");
    let stamps: Vec<u64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "timestamps must rise, one row per second: {stamps:?}"
    );
    assert!(
        rows.iter().all(|r| r[1] != "0"),
        "no row at 0 users: {rows:?}"
    );
}

/// Distinct failure texts and script errors a hostile worker claims: three
/// times the caps.
const CLAIMED_FAILURES: u64 = 3 * MAX_FAILURES as u64;
const CLAIMED_ERRORS: u64 = 3 * MAX_EXCEPTIONS as u64;

/// A registered worker (this process, the real protocol) that answers the
/// first spawn with reports full of distinct failures and one `exception`
/// message per distinct error, then behaves until the master says quit.
fn hostile_worker(port: u16) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let ctx = zmq::Context::new();
        let sim = SimWorker::connect(&ctx, "127.0.0.1", port).unwrap();
        assert!(sim.join(Duration::from_secs(10)), "no ack");
        let mut reported = false;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            sim.send(WorkerMessage::Heartbeat {
                state: "running".into(),
                cpu_percent: 1.0,
                memory_bytes: None,
            });
            match sim.recv(Duration::from_millis(500)) {
                Some(MasterMessage::Spawn {
                    user_classes_count, ..
                }) if !reported => {
                    // One report per thousand texts, each a size a real
                    // worker's report can have.
                    for batch in 0..CLAIMED_FAILURES / 1_000 {
                        let mut shard = ShardStats::new();
                        let id = shard.entry(Method::Get, "/x");
                        for i in 0..1_000 {
                            let text = format!("error {}", batch * 1_000 + i);
                            shard.record_failure(id, 100, 0, Failure::Message(text.into()));
                        }
                        let mut builder = ReportBuilder::new();
                        builder.add(&shard.take_delta());
                        let counts = user_classes_count.clone();
                        let report = builder.take_report(SystemTime::now(), counts, 1);
                        sim.send(WorkerMessage::Stats(Box::new(report)));
                    }
                    for i in 0..CLAIMED_ERRORS {
                        sim.send(WorkerMessage::Exception {
                            msg: format!("boom {i}"),
                            traceback: "tb".into(),
                            count: 2,
                        });
                    }
                    reported = true;
                }
                Some(MasterMessage::Stop) => sim.send(WorkerMessage::ClientStopped),
                Some(MasterMessage::Quit) => return sim.send(WorkerMessage::Quit),
                _ => {}
            }
        }
        panic!("the master never said quit");
    })
}

#[test]
fn a_master_keeps_the_caps_against_a_worker_claiming_distinct_failures() {
    let dir = temp_dir("stats-hostile");
    let csv = dir.join("run");
    let port = free_port();
    let mut cmd = locusta();
    cmd.args(["--master", "--headless", "--only-summary"])
        .args([
            "-H",
            "http://127.0.0.1:9",
            "--master-bind-port",
            &port.to_string(),
        ])
        .args(["-u", "1", "-r", "100", "-t", "3s", "--expect-workers", "1"])
        .args(["--csv", csv.to_str().unwrap()]);
    let mut master = Proc::spawn(&dir, "master", &mut cmd);
    let worker = hostile_worker(port);
    assert_eq!(
        master.wait(Duration::from_secs(40)).code(),
        Some(1),
        "{}",
        master.logs()
    );
    worker.join().unwrap();

    let failures = csv_rows(&dir.join("run_failures.csv"));
    let rows = &failures[1..];
    assert!(
        rows.len() <= MAX_FAILURES + 1,
        "{} failure rows",
        rows.len()
    );
    let occurrences: u64 = rows.iter().map(|r| r[3].parse::<u64>().unwrap()).sum();
    assert_eq!(occurrences, CLAIMED_FAILURES, "totals stay exact");
    assert!(rows.iter().any(|r| r[2] == "(other)"));
    let agg = aggregated(&dir.join("run_stats.csv"));
    assert_eq!(agg["Failure Count"], CLAIMED_FAILURES.to_string());

    let counts = first_cells(&dir.join("run_exceptions.csv"));
    assert!(
        counts.len() <= MAX_EXCEPTIONS + 1,
        "{} exception rows",
        counts.len()
    );
    let errors: u64 = counts.iter().map(|c| c.parse::<u64>().unwrap()).sum();
    assert_eq!(errors, 2 * CLAIMED_ERRORS);
}
