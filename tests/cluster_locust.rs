//! Interop with real Locust 2.47 (`pip install locust==2.47.0`, which
//! `.ci/run` does): a locusta worker under a `locust --master`, and a
//! `locust --worker` under a locusta master, both loading an in-process
//! HTTP server on 127.0.0.1. Without `locust` on PATH these tests say so
//! and pass, except under `CI=true`, where they fail.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;

use std::path::Path;
use std::time::Duration;

use cluster_common::*;
use common::*;

const LIMIT: Duration = Duration::from_secs(60);

const LOCUSTFILE: &str = r#"
from locust import HttpUser, task, constant

class Shopper(HttpUser):
    wait_time = constant(0.01)

    @task
    def index(self):
        self.client.get("/from-locust")
"#;

const SCRIPT: &str = r#"
local locusta = require "locusta"
local Shopper = locusta.user { name = "Shopper", wait_time = locusta.constant(0.01) }
Shopper:task(1, function(self) self.client:get("/from-locusta") end)
"#;

/// The `Request Count` of `name`'s row in a Locust-format stats CSV.
fn count(stats_csv: &Path, name: &str) -> u64 {
    let rows = csv_rows(stats_csv);
    let header = &rows[0];
    let col = header.iter().position(|h| h == "Request Count").unwrap();
    rows.iter()
        .find(|r| r.get(1).map(String::as_str) == Some(name))
        .map_or(0, |r| r[col].trim_matches('"').parse().unwrap())
}

#[test]
fn a_locusta_worker_joins_a_locust_master() {
    let Some(locust) = locust() else { return };
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("interop-locust-master");
    std::fs::write(dir.join("locustfile.py"), LOCUSTFILE).unwrap();
    std::fs::write(dir.join("shop.lua"), SCRIPT).unwrap();
    let port = free_port();
    let mut master = spawn_locust_master(
        locust,
        &dir,
        port,
        &[
            "-u",
            "4",
            "-r",
            "100",
            "-t",
            "6s",
            "--expect-workers",
            "1",
            "--csv",
            "locust",
            "-H",
            &server.url(""),
        ],
    );
    let mut w = Proc::spawn(
        &dir,
        "worker",
        locusta()
            .args([
                "--worker",
                "--shards",
                "1",
                "--master-port",
                &port.to_string(),
            ])
            .args(["-f", dir.join("shop.lua").to_str().unwrap()]),
    );
    master.wait(LIMIT);
    assert!(w.wait(LIMIT).success(), "{}", w.logs());
    let log = w.stderr();
    assert!(log.contains("Running 4 users (Shopper: 4)"), "{}", w.logs());
    let (sent, _) = worker_sent(&log);
    assert!(sent > 0, "{}", w.logs());
    // Locust's master counts exactly what our worker reported.
    let stats = dir.join("locust_stats.csv");
    let seen = count(&stats, "/from-locusta");
    assert_eq!(seen, sent, "{}\n{}", master.logs(), w.logs());
    assert_eq!(count(&stats, "Aggregated"), sent);
}

#[test]
fn a_locust_worker_joins_a_locusta_master() {
    let Some(mut locust) = locust() else { return };
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("interop-locusta-master");
    std::fs::write(dir.join("locustfile.py"), LOCUSTFILE).unwrap();
    std::fs::write(dir.join("shop.lua"), SCRIPT).unwrap();
    let port = free_port();
    let csv = dir.join("run");
    let mut master = Proc::spawn(
        &dir,
        "master",
        locusta()
            .args(["--master", "--headless", "--only-summary"])
            .args(["-f", dir.join("shop.lua").to_str().unwrap()])
            .args(["--master-bind-port", &port.to_string()])
            .args(["-u", "4", "-r", "100", "-t", "6s", "--expect-workers", "1"])
            .args(["-H", &server.url(""), "--csv", csv.to_str().unwrap()]),
    );
    locust
        .current_dir(&dir)
        .args(["-f", "locustfile.py", "--worker"])
        .args(["--master-host", "127.0.0.1", "--master-port"])
        .arg(port.to_string());
    let mut w = Proc::spawn(&dir, "locust-worker", &mut locust);
    assert!(
        master.wait(LIMIT).success(),
        "{}\n{}",
        master.logs(),
        w.logs()
    );
    w.wait(LIMIT);
    let seen = count(&dir.join("run_stats.csv"), "/from-locust");
    let arrived = server
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /from-locust "))
        .count() as u64;
    assert!(seen > 0, "{}\n{}", master.logs(), w.logs());
    // Requests cut off by the stop reach the server but are not reported.
    assert!(
        seen <= arrived && arrived <= seen + 4,
        "{seen} vs {arrived}"
    );
}
