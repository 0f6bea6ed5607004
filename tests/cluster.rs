//! The cluster as users run it: a real `locusta --master` and real
//! `locusta --worker` processes over ZeroMQ on 127.0.0.1, loading an
//! in-process HTTP server. Scripted workers (`cluster::sim`, a real DEALER
//! in this process) send reports whose histograms the test knows, and
//! malformed or refused messages. Every run is bounded by `-t`.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use cluster_common::*;
use common::*;
use locusta::cluster::protocol::{MasterMessage, PeerVersion, WorkerMessage};
use locusta::cluster::report::ReportBuilder;
use locusta::cluster::sim::SimWorker;
use locusta::http::Method;
use locusta::stats::{RunStats, ShardStats};

const LIMIT: Duration = Duration::from_secs(40);

fn master(port: u16, host: &str, args: &[&str], csv: &Path) -> Command {
    let mut c = locusta();
    c.args(["--master", "--headless", "--only-summary", "-H", host])
        .args(["--master-bind-port", &port.to_string()])
        .args(["--csv", csv.to_str().unwrap()])
        .args(args);
    c
}

fn worker(port: u16) -> Command {
    let mut c = locusta();
    c.args([
        "--worker",
        "--shards",
        "1",
        "--master-port",
        &port.to_string(),
    ]);
    c
}

fn master_total(csv: &Path) -> u64 {
    let stats = csv.with_file_name(format!(
        "{}_stats.csv",
        csv.file_name().unwrap().to_str().unwrap()
    ));
    aggregated(&stats)["Request Count"].parse().unwrap()
}

#[test]
fn two_workers_share_the_users_and_the_master_counts_what_they_sent() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("cluster-two");
    let csv = dir.join("run");
    let port = free_port();
    let args = ["-u", "6", "-r", "100", "-t", "4s", "--expect-workers", "2"];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master(port, &server.url("/"), &args, &csv),
    );
    let mut w1 = Proc::spawn(&dir, "w1", &mut worker(port));
    let mut w2 = Proc::spawn(&dir, "w2", &mut worker(port));
    assert!(m.wait(LIMIT).success(), "{}", m.logs());
    assert!(w1.wait(LIMIT).success(), "{}", w1.logs());
    assert!(w2.wait(LIMIT).success(), "{}", w2.logs());
    // Locust's line, per class, as a local run logs it.
    assert!(
        m.stderr()
            .contains(r#"All users spawned: {"raw": 6} (6 total users) on 2 workers"#),
        "{}",
        m.logs()
    );
    for w in [&w1, &w2] {
        assert!(
            w.stderr().contains("Running 3 users (raw: 3)"),
            "{}",
            w.logs()
        );
    }
    let (s1, f1) = worker_sent(&w1.stderr());
    let (s2, f2) = worker_sent(&w2.stderr());
    assert!(s1 > 0 && s2 > 0, "{}\n{}", w1.logs(), w2.logs());
    assert_eq!((f1, f2), (0, 0));
    let total = master_total(&csv);
    assert_eq!(total, s1 + s2, "{}", m.logs());
    // Requests cut short by the stop reach the server but are not counted.
    let arrived = server.requests().len() as u64;
    assert!(
        arrived >= total && arrived <= total + 6,
        "{arrived} vs {total}"
    );
}

#[test]
fn a_killed_worker_goes_missing_and_the_survivor_takes_its_users() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("cluster-kill");
    let csv = dir.join("run");
    let port = free_port();
    let args = ["-u", "4", "-r", "100", "-t", "9s", "--expect-workers", "2"];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master(port, &server.url("/"), &args, &csv),
    );
    let mut victim = Proc::spawn(&dir, "victim", &mut worker(port));
    let mut survivor = Proc::spawn(&dir, "survivor", &mut worker(port));
    victim.wait_log("Running 2 users", 1, LIMIT);
    survivor.wait_log("Running 2 users", 1, LIMIT);
    std::thread::sleep(Duration::from_millis(3500));
    victim.kill9();
    m.wait_log("missing", 1, Duration::from_secs(8));
    survivor.wait_log("Running 4 users", 1, Duration::from_secs(5));
    assert!(m.wait(LIMIT).success(), "{}", m.logs());
    assert!(survivor.wait(LIMIT).success(), "{}", survivor.logs());
    let (sent, _) = worker_sent(&survivor.stderr());
    let total = master_total(&csv);
    // The victim's first reports count too; its last seconds died with it.
    assert!(
        total > sent,
        "master {total}, survivor {sent}\n{}",
        m.logs()
    );
}

#[test]
fn a_worker_joining_mid_run_gets_its_share() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("cluster-join");
    let csv = dir.join("run");
    let port = free_port();
    let args = ["-u", "4", "-r", "100", "-t", "7s", "--expect-workers", "1"];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master(port, &server.url("/"), &args, &csv),
    );
    let mut first = Proc::spawn(&dir, "first", &mut worker(port));
    first.wait_log("Running 4 users", 1, LIMIT);
    let mut late = Proc::spawn(&dir, "late", &mut worker(port));
    late.wait_log("Running 2 users", 1, Duration::from_secs(10));
    first.wait_log("Running 2 users", 1, Duration::from_secs(5));
    assert!(m.wait(LIMIT).success(), "{}", m.logs());
    assert!(first.wait(LIMIT).success() && late.wait(LIMIT).success());
    let (a, _) = worker_sent(&first.stderr());
    let (b, _) = worker_sent(&late.stderr());
    assert!(b > 0, "{}", late.logs());
    assert_eq!(master_total(&csv), a + b, "{}", m.logs());
}

#[test]
fn workers_rejoin_a_restarted_master() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("cluster-restart");
    let port = free_port();
    let host = server.url("/");
    let first_csv = dir.join("first");
    let args = ["-u", "2", "-r", "100", "-t", "60s", "--expect-workers", "2"];
    let mut first = Proc::spawn(&dir, "first", &mut master(port, &host, &args, &first_csv));
    let mut w1 = Proc::spawn(&dir, "w1", &mut worker(port));
    let mut w2 = Proc::spawn(&dir, "w2", &mut worker(port));
    w1.wait_log("Running 1 users", 1, LIMIT);
    w2.wait_log("Running 1 users", 1, LIMIT);
    first.kill9();
    let csv = dir.join("second");
    let args = [
        "-u",
        "4",
        "-r",
        "100",
        "-t",
        "3s",
        "--expect-workers",
        "2",
        "--expect-workers-max-wait",
        "30",
    ];
    let mut second = Proc::spawn(&dir, "second", &mut master(port, &host, &args, &csv));
    assert!(second.wait(LIMIT).success(), "{}", second.logs());
    assert!(w1.wait(LIMIT).success() && w2.wait(LIMIT).success());
    for w in [&w1, &w2] {
        let log = w.stderr();
        assert!(log.contains("silent"), "{}", w.logs());
        assert_eq!(
            log.matches("Connected to the master").count(),
            2,
            "{}",
            w.logs()
        );
        assert!(log.contains("Running 2 users"), "{}", w.logs());
    }
    assert!(master_total(&csv) > 0, "{}", second.logs());
}

/// A scripted worker that joins, answers the master like a locusta worker
/// and sends one report of `latencies_us` on `/exact`.
fn scripted_worker(port: u16, latencies_us: Vec<u64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let ctx = zmq::Context::new();
        let sim = SimWorker::connect(&ctx, "127.0.0.1", port).unwrap();
        assert!(sim.join(Duration::from_secs(10)), "no ack");
        let mut shard = ShardStats::new();
        let id = shard.entry(Method::Get, "/exact");
        for us in &latencies_us {
            shard.record(id, *us, 10);
        }
        let mut builder = ReportBuilder::new();
        builder.add(&shard.take_delta());
        let mut reported = false;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let heartbeat = WorkerMessage::Heartbeat {
                state: "running".into(),
                cpu_percent: 1.0,
                memory_bytes: None,
            };
            sim.send(heartbeat);
            match sim.recv(Duration::from_millis(500)) {
                Some(MasterMessage::Spawn {
                    user_classes_count, ..
                }) if !reported => {
                    let report = builder.take_report(SystemTime::now(), user_classes_count, 1);
                    sim.send(WorkerMessage::Stats(Box::new(report)));
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
fn master_percentiles_are_the_exact_merge_of_worker_histograms() {
    let dir = temp_dir("cluster-exact");
    let csv = dir.join("run");
    let port = free_port();
    // Two different shapes; Locust's rounded buckets would move these.
    let fast: Vec<u64> = (0..2000).map(|i| 1_000 + i * 7 % 48_000).collect();
    let slow: Vec<u64> = (0..700).map(|i| 120_000 + i * 131 % 380_000).collect();
    let args = ["-u", "2", "-r", "100", "-t", "3s", "--expect-workers", "2"];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master(port, "http://127.0.0.1:9", &args, &csv),
    );
    let a = scripted_worker(port, fast.clone());
    let b = scripted_worker(port, slow.clone());
    assert!(m.wait(LIMIT).success(), "{}", m.logs());
    a.join().unwrap();
    b.join().unwrap();

    let mut expected = RunStats::new(false);
    for lat in [&fast, &slow] {
        let mut shard = ShardStats::new();
        let id = shard.entry(Method::Get, "/exact");
        lat.iter().for_each(|us| shard.record(id, *us, 10));
        expected.merge(&mut shard.take_delta());
    }
    let want = locusta::report::stats_csv(&expected.view(SystemTime::now()));
    let got = std::fs::read_to_string(dir.join("run_stats.csv")).unwrap();
    let row = |csv: &str| -> Vec<String> {
        let line = csv
            .lines()
            .find(|l| l.starts_with("GET,/exact,"))
            .unwrap()
            .to_string();
        let cells: Vec<String> = line.split(',').map(str::to_string).collect();
        // Everything but Requests/s and Failures/s (they depend on time).
        cells
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 9 && *i != 10)
            .map(|(_, c)| c.clone())
            .collect()
    };
    assert_eq!(row(&got), row(&want), "master:\n{got}\nexpected:\n{want}");
}

#[test]
fn bad_messages_are_dropped_and_incompatible_workers_refused() {
    let dir = temp_dir("cluster-bad");
    let csv = dir.join("run");
    let port = free_port();
    let args = ["-u", "1", "-r", "100", "-t", "3s", "--expect-workers", "1"];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master(port, "http://127.0.0.1:9", &args, &csv),
    );
    let ctx = zmq::Context::new();

    let future = SimWorker::connect(&ctx, "127.0.0.1", port).unwrap();
    let version = PeerVersion::Locusta {
        version: "9.0.0".into(),
        protocol: 99,
        shards: 1,
    };
    match future.join_as(version, Duration::from_secs(10)) {
        Some(MasterMessage::Refused { reason }) => {
            assert!(reason.contains("protocol 99"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        future.recv(Duration::from_secs(2)),
        Some(MasterMessage::Quit)
    );

    let noisy = SimWorker::connect(&ctx, "127.0.0.1", port).unwrap();
    noisy.send_bytes(b"\xc1 not msgpack");
    noisy.send_bytes(&[0xdd, 0xff, 0xff, 0xff, 0xff]); // a 4-billion-element array
    assert!(
        noisy.join(Duration::from_secs(10)),
        "the master stopped answering"
    );
    noisy.send(WorkerMessage::Other("custom_thing".into()));
    for _ in 0..2 {
        noisy.send(WorkerMessage::Heartbeat {
            state: "running".into(),
            cpu_percent: 95.0,
            memory_bytes: None,
        });
    }
    let garbage_stats = locusta::cluster::protocol::Message {
        kind: "stats".into(),
        data: locusta::cluster::protocol::Value::from("not a map"),
        node_id: noisy.node_id.clone(),
    };
    noisy.send_bytes(&locusta::cluster::protocol::encode(&garbage_stats));
    loop {
        match noisy.recv(Duration::from_secs(20)) {
            Some(MasterMessage::Stop) => noisy.send(WorkerMessage::ClientStopped),
            Some(MasterMessage::Quit) => break,
            Some(_) => {}
            None => panic!("the master never said quit\n{}", m.logs()),
        }
    }
    assert!(m.wait(LIMIT).success(), "{}", m.logs());
    let log = m.stderr();
    assert!(log.contains("Refused worker"), "{log}");
    assert!(log.contains("dropped a malformed message"), "{log}");
    assert!(log.contains("unknown type `custom_thing`"), "{log}");
    assert!(log.contains("bad `stats` message"), "{log}");
    assert_eq!(log.matches("is at 95% CPU").count(), 1, "{log}");
}

#[test]
fn sigterm_on_a_worker_hands_its_users_over_and_on_the_master_writes_reports() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("cluster-sigterm");
    let csv = dir.join("run");
    let port = free_port();
    let args = ["-u", "4", "-r", "100", "-t", "60s", "--expect-workers", "2"];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master(port, &server.url("/"), &args, &csv),
    );
    let mut leaving = Proc::spawn(&dir, "leaving", &mut worker(port));
    let mut staying = Proc::spawn(&dir, "staying", &mut worker(port));
    leaving.wait_log("Running 2 users", 1, LIMIT);
    staying.wait_log("Running 2 users", 1, LIMIT);
    std::thread::sleep(Duration::from_secs(1));
    leaving.signal(libc::SIGTERM);
    assert!(leaving.wait(LIMIT).success(), "{}", leaving.logs());
    m.wait_log("quit; 1 connected", 1, Duration::from_secs(5));
    staying.wait_log("Running 4 users", 1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(1));
    m.signal(libc::SIGTERM);
    assert!(m.wait(LIMIT).success(), "{}", m.logs());
    assert!(staying.wait(LIMIT).success(), "{}", staying.logs());
    let (a, _) = worker_sent(&leaving.stderr());
    let (b, _) = worker_sent(&staying.stderr());
    assert!(a > 0 && b > 0);
    assert_eq!(master_total(&csv), a + b, "{}", m.logs());
}

#[test]
fn script_errors_on_workers_reach_the_master_with_their_node() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("cluster-exceptions");
    let script = dir.join("broken.lua");
    std::fs::write(
        &script,
        "local locusta = require \"locusta\"\n\
         local U = locusta.user { name = \"Broken\", wait_time = locusta.constant(0.05) }\n\
         U:task(1, function(self)\n  self.client:get(\"/\")\n  error(\"cart is empty\")\nend)\n",
    )
    .unwrap();
    let csv = dir.join("run");
    let port = free_port();
    let args = ["-u", "2", "-r", "100", "-t", "4s", "--expect-workers", "1"];
    let mut cmd = master(port, &server.url(""), &args, &csv);
    cmd.args(["-f", script.to_str().unwrap()]);
    let mut m = Proc::spawn(&dir, "master", &mut cmd);
    let mut w = Proc::spawn(
        &dir,
        "worker",
        worker(port).args(["-f", script.to_str().unwrap()]),
    );
    // Script errors fail the run, as they do locally.
    assert_eq!(m.wait(LIMIT).code(), Some(1), "{}", m.logs());
    assert!(w.wait(LIMIT).success(), "{}", w.logs());
    let node = w
        .stderr()
        .lines()
        .find_map(|l| {
            l.split(" as ")
                .nth(1)
                .map(|r| r.split(',').next().unwrap().to_string())
        })
        .expect("node id in the worker's first line");
    let exceptions = std::fs::read_to_string(dir.join("run_exceptions.csv")).unwrap();
    assert!(exceptions.contains("cart is empty"), "{exceptions}");
    assert!(exceptions.contains("broken.lua:5"), "{exceptions}");
    assert!(exceptions.contains(&node), "{node} not in\n{exceptions}");
}

#[test]
fn a_worker_without_the_masters_classes_runs_its_own_by_weight() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("cluster-classes");
    let master_script = dir.join("master.lua");
    std::fs::write(
        &master_script,
        "local locusta = require \"locusta\"\n\
         local A = locusta.user { name = \"Alpha\" }\n\
         A:task(1, function(self) self.client:get(\"/alpha\") end)\n",
    )
    .unwrap();
    let worker_script = dir.join("worker.lua");
    std::fs::write(
        &worker_script,
        "local locusta = require \"locusta\"\n\
         local B = locusta.user { name = \"Beta\", weight = 3, wait_time = locusta.constant(0.01) }\n\
         B:task(1, function(self) self.client:get(\"/beta\") end)\n\
         local G = locusta.user { name = \"Gamma\", weight = 1, wait_time = locusta.constant(0.01) }\n\
         G:task(1, function(self) self.client:get(\"/gamma\") end)\n",
    )
    .unwrap();
    let csv = dir.join("run");
    let port = free_port();
    let args = ["-u", "8", "-r", "100", "-t", "3s", "--expect-workers", "1"];
    let mut cmd = master(port, &server.url(""), &args, &csv);
    cmd.args(["-f", master_script.to_str().unwrap()]);
    let mut m = Proc::spawn(&dir, "master", &mut cmd);
    let mut w = Proc::spawn(
        &dir,
        "worker",
        worker(port).args(["-f", worker_script.to_str().unwrap()]),
    );
    assert!(m.wait(LIMIT).success(), "{}", m.logs());
    assert!(w.wait(LIMIT).success(), "{}", w.logs());
    let log = w.stderr();
    assert_eq!(log.matches("does not have (Alpha)").count(), 1, "{log}");
    assert!(log.contains("Running 8 users (Beta: 6, Gamma: 2)"), "{log}");
    let stats = std::fs::read_to_string(dir.join("run_stats.csv")).unwrap();
    assert!(
        stats.contains("GET,/beta,") && stats.contains("GET,/gamma,"),
        "{stats}"
    );
}

#[test]
fn a_master_gives_up_on_missing_workers_and_workers_wait_for_a_late_master() {
    let dir = temp_dir("cluster-wait");
    let port = free_port();
    let args = [
        "-u",
        "2",
        "-t",
        "2s",
        "--expect-workers",
        "2",
        "--expect-workers-max-wait",
        "1",
    ];
    let mut lonely = Proc::spawn(
        &dir,
        "lonely",
        &mut master(port, "http://127.0.0.1:9", &args, &dir.join("a")),
    );
    assert_eq!(lonely.wait(LIMIT).code(), Some(1), "{}", lonely.logs());
    assert!(
        lonely
            .stderr()
            .contains("gave up waiting for workers: 0 of 2"),
        "{}",
        lonely.logs()
    );

    // A worker started first keeps knocking until its master is up.
    let server = TestServer::start(|_| ok("hi"));
    let port = free_port();
    let mut early = Proc::spawn(&dir, "early", &mut worker(port));
    std::thread::sleep(Duration::from_secs(2));
    let args = ["-u", "2", "-r", "100", "-t", "2s", "--expect-workers", "1"];
    let csv = dir.join("late");
    let mut late = Proc::spawn(
        &dir,
        "late",
        &mut master(port, &server.url("/"), &args, &csv),
    );
    assert!(late.wait(LIMIT).success(), "{}", late.logs());
    assert!(early.wait(LIMIT).success(), "{}", early.logs());
    assert_eq!(master_total(&csv), worker_sent(&early.stderr()).0);
}
