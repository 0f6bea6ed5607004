//! Requests of custom types and events across a cluster, with real
//! processes over ZeroMQ on 127.0.0.1: rows a script fires on locusta
//! workers reach a locusta master and a Locust 2.47 master (`pip install
//! locust==2.47.0`; without it the Locust tests say so and pass, except
//! under `CI=true`). Every run is bounded by `-t`.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;

use std::path::Path;
use std::time::Duration;

use cluster_common::*;
use common::*;

const LIMIT: Duration = Duration::from_secs(60);

/// Each user fires exactly 50 `WS send chat` requests (5 of them failed),
/// then idles.
const CHAT: &str = r#"
local locusta = require "locusta"
local U = locusta.user { name = "Chatter", wait_time = locusta.constant(0.01) }
function U:on_start() self.sent = 0 end
U:task(1, function(self)
  if self.sent >= 50 then return locusta.sleep(0.2) end
  self.sent = self.sent + 1
  locusta.events.request:fire{
    request_type = "WS", name = "send chat", response_time = self.sent, response_length = 7,
    exception = (self.sent % 10 == 0) and "connection closed" or nil,
  }
end)
"#;

/// `(Request Count, Failure Count)` of the `kind name` row of a stats CSV
/// (Locust quotes its fields; locusta does not).
fn counts(stats_csv: &Path, kind: &str, name: &str) -> Option<(u64, u64)> {
    let rows = csv_rows(stats_csv);
    let header: Vec<String> = rows[0].iter().map(|h| h.trim_matches('"').into()).collect();
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let (reqs, fails) = (col("Request Count"), col("Failure Count"));
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|f| f.trim_matches('"').to_string())
                .collect::<Vec<_>>()
        })
        .find(|r| r[0] == kind && r[1] == name)
        .map(|r| (r[reqs].parse().unwrap(), r[fails].parse().unwrap()))
}

#[test]
fn custom_types_from_locusta_workers_reach_a_locusta_master() {
    let dir = temp_dir("cluster-events-custom");
    let script = dir.join("chat.lua");
    std::fs::write(&script, CHAT).unwrap();
    let csv = dir.join("run");
    let port = free_port();
    let args = ["-u", "2", "-r", "100", "-t", "3s", "--expect-workers", "2"];
    let mut cmd = master_cmd(port, "http://127.0.0.1:1", &args, &csv);
    cmd.args(["-f", script.to_str().unwrap()]);
    let mut m = Proc::spawn(&dir, "master", &mut cmd);
    let script = script.to_str().unwrap();
    let mut w1 = Proc::spawn(&dir, "worker1", worker_cmd(port).args(["-f", script]));
    let mut w2 = Proc::spawn(&dir, "worker2", worker_cmd(port).args(["-f", script]));
    // Failed requests: exit code 1.
    assert_eq!(m.wait(LIMIT).code(), Some(1), "{}", m.logs());
    assert!(w1.wait(LIMIT).success(), "{}", w1.logs());
    assert!(w2.wait(LIMIT).success(), "{}", w2.logs());
    let stats = dir.join("run_stats.csv");
    assert_eq!(
        counts(&stats, "WS", "send chat"),
        Some((100, 10)),
        "{}",
        m.logs()
    );
    let failures = std::fs::read_to_string(dir.join("run_failures.csv")).unwrap();
    assert!(
        failures.contains("WS,send chat,connection closed,10"),
        "{failures}"
    );
}

#[test]
fn a_custom_event_on_a_locusta_worker_shows_in_a_locust_master() {
    let Some(locust) = locust() else { return };
    let dir = temp_dir("cluster-events-locust");
    std::fs::write(
        dir.join("locustfile.py"),
        "from locust import User, task, constant\n\n\
         class Chatter(User):\n    wait_time = constant(1)\n\n    @task\n    def idle(self):\n        pass\n",
    )
    .unwrap();
    std::fs::write(dir.join("chat.lua"), CHAT).unwrap();
    let port = free_port();
    let mut master = spawn_locust_master(
        locust,
        &dir,
        port,
        &[
            "-u",
            "2",
            "-r",
            "100",
            "-t",
            "5s",
            "--expect-workers",
            "1",
            "--csv",
            "locust",
            "-H",
            "http://127.0.0.1:1",
        ],
    );
    let mut w = Proc::spawn(
        &dir,
        "worker",
        worker_cmd(port).args(["-f", dir.join("chat.lua").to_str().unwrap()]),
    );
    master.wait(LIMIT);
    assert!(w.wait(LIMIT).success(), "{}", w.logs());
    let stats = dir.join("locust_stats.csv");
    assert_eq!(
        counts(&stats, "WS", "send chat"),
        Some((100, 10)),
        "{}\n{}",
        master.logs(),
        w.logs()
    );
}

/// A worker that names 1,000 distinct request types (and one with a
/// newline): the master records 64 custom types at most, warns, and runs on.
#[test]
fn a_worker_naming_a_thousand_request_types_is_bounded() {
    use locusta::cluster::protocol::{MasterMessage, WorkerMessage};
    use locusta::cluster::report::ReportBuilder;
    use locusta::cluster::sim::SimWorker;
    use locusta::http::Method;
    use locusta::stats::ShardStats;
    use std::time::SystemTime;

    let dir = temp_dir("cluster-events-hostile");
    let csv = dir.join("run");
    let port = free_port();
    let args = ["-u", "1", "-r", "100", "-t", "3s", "--expect-workers", "1"];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master_cmd(port, "http://127.0.0.1:9", &args, &csv),
    );
    let sim_thread = std::thread::spawn(move || {
        let ctx = zmq::Context::new();
        let sim = SimWorker::connect(&ctx, "127.0.0.1", port).unwrap();
        assert!(sim.join(Duration::from_secs(10)), "no ack");
        let mut shard = ShardStats::new();
        for i in 0..1001 {
            let id = shard.entry(Method::Get, &format!("/n{i}"));
            shard.record(id, 1_000, 1);
        }
        let mut builder = ReportBuilder::new();
        builder.add(&shard.take_delta());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut reported = false;
        while std::time::Instant::now() < deadline {
            sim.send(WorkerMessage::Heartbeat {
                state: "running".into(),
                cpu_percent: 1.0,
                memory_bytes: None,
            });
            match sim.recv(Duration::from_millis(500)) {
                Some(MasterMessage::Spawn {
                    user_classes_count, ..
                }) if !reported => {
                    let mut report = builder.take_report(SystemTime::now(), user_classes_count, 1);
                    for (i, e) in report.stats.iter_mut().enumerate() {
                        e.method = if i == 1000 {
                            "W\nS".into()
                        } else {
                            format!("T{i}")
                        };
                    }
                    sim.send(WorkerMessage::Stats(Box::new(report)));
                    reported = true;
                }
                Some(MasterMessage::Stop) => sim.send(WorkerMessage::ClientStopped),
                Some(MasterMessage::Quit) => return sim.send(WorkerMessage::Quit),
                _ => {}
            }
        }
        panic!("the master never said quit");
    });
    assert!(m.wait(LIMIT).success(), "{}", m.logs());
    sim_thread.join().unwrap();
    let rows = csv_rows(&dir.join("run_stats.csv"));
    let custom = rows[1..].iter().filter(|r| r[0].starts_with('T')).count();
    assert_eq!(custom, 64, "{rows:?}");
    let log = m.stderr();
    assert!(
        log.contains("whose request type locusta cannot record"),
        "{log}"
    );
    let lines = log.lines().filter(|l| l.contains("cannot record")).count();
    assert!(lines <= 257, "{lines} warning lines");
}
