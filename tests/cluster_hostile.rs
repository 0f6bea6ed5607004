//! Hostile workers against a real `locusta --master` process: scripted
//! DEALERs (`cluster::sim`) in this process that join and then lie, flood
//! or send what no real worker would. The master must keep running, keep
//! its real workers, finish on time and write its reports. Every run is
//! bounded by `-t` and every flood by a count.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;

use std::time::{Duration, Instant, SystemTime};

use cluster_common::*;
use common::*;
use locusta::cluster::protocol::{MasterMessage, WorkerMessage};
use locusta::cluster::report::{ReportBuilder, WorkerReport};
use locusta::cluster::sim::SimWorker;
use locusta::http::Method;
use locusta::stats::ShardStats;

const LIMIT: Duration = Duration::from_secs(40);

/// A real report of `n` requests on `GET /lie`, to be tampered with.
fn honest_report(n: u64) -> WorkerReport {
    let mut shard = ShardStats::new();
    let id = shard.entry(Method::Get, "/lie");
    for i in 0..n {
        shard.record(id, 1_000 + i, 10);
    }
    let mut builder = ReportBuilder::new();
    builder.add(&shard.take_delta());
    builder.take_report(SystemTime::now(), vec![("raw".into(), 1)], 1)
}

/// A scripted worker that joins, heartbeats, calls `on_spawn` once at the
/// first `spawn`, and answers `stop`/`quit` until the master says quit.
fn hostile_worker(
    port: u16,
    on_spawn: impl FnOnce(&SimWorker) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let ctx = zmq::Context::new();
        let sim = SimWorker::connect(&ctx, "127.0.0.1", port).unwrap();
        assert!(sim.join(Duration::from_secs(10)), "no ack");
        let mut on_spawn = Some(on_spawn);
        let deadline = Instant::now() + LIMIT;
        while Instant::now() < deadline {
            sim.send(WorkerMessage::Heartbeat {
                state: "running".into(),
                cpu_percent: 1.0,
                memory_bytes: None,
            });
            match sim.recv(Duration::from_millis(500)) {
                Some(MasterMessage::Spawn { .. }) => {
                    if let Some(f) = on_spawn.take() {
                        f(&sim);
                    }
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
fn a_report_with_overflowing_counts_is_dropped_and_the_run_completes() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("hostile-overflow");
    let csv = dir.join("run");
    let port = free_port();
    let args = ["-u", "2", "-r", "100", "-t", "4s", "--expect-workers", "2"];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master_cmd(port, &server.url("/"), &args, &csv),
    );
    let mut real = Proc::spawn(&dir, "real", &mut worker_cmd(port));
    let liar = hostile_worker(port, |sim| {
        // Well-typed, and each number alone fits: 2^63 twice in one map.
        let mut report = honest_report(3);
        let entry = &mut report.stats[0];
        entry.num_requests = u64::MAX;
        entry.hdr = None;
        entry.response_times = vec![(100, 1 << 63), (200, 1 << 63)];
        for _ in 0..3 {
            sim.send(WorkerMessage::Stats(Box::new(report.clone())));
        }
        // One honest report after the lies still counts.
        sim.send(WorkerMessage::Stats(Box::new(honest_report(5))));
    });
    let status = m.wait(LIMIT);
    liar.join().unwrap();
    assert!(real.wait(LIMIT).success(), "{}", real.logs());
    assert!(status.success(), "{}", m.logs());
    let log = m.stderr();
    assert_eq!(
        log.matches("dropped a report").count(),
        1,
        "one rate-limited warning\n{log}"
    );
    let (sent, _) = worker_sent(&real.stderr());
    assert!(sent > 0, "{}", real.logs());
    assert_eq!(csv_total(&csv), sent + 5, "{}", m.logs());
}

/// A raw DEALER that has not joined (any identity), sending blocking, so
/// a flood is delivered whole rather than dropped at the high-water mark.
fn stranger(ctx: &zmq::Context, port: u16) -> zmq::Socket {
    let s = ctx.socket(zmq::DEALER).unwrap();
    s.set_identity(format!("stranger_{}", std::process::id()).as_bytes())
        .unwrap();
    s.set_linger(2_000).unwrap();
    s.set_sndhwm(0).unwrap();
    s.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    s
}

/// A msgpack array of `n` nils: the most `Value`s per byte.
fn nils(n: usize) -> Vec<u8> {
    let mut bytes = vec![0xdd];
    bytes.extend_from_slice(&(n as u32).to_be_bytes());
    bytes.resize(5 + n, 0xc0);
    bytes
}

#[test]
fn huge_messages_do_not_stall_the_master_or_cost_the_workers_their_users() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("hostile-huge");
    let csv = dir.join("run");
    let port = free_port();
    let args = ["-u", "2", "-r", "100", "-t", "10s", "--expect-workers", "2"];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master_cmd(port, &server.url("/"), &args, &csv),
    );
    let mut real = Proc::spawn(&dir, "real", &mut worker_cmd(port));
    // A joined worker sends 4 MiB of nils (under the size cap: decoded
    // aside, while the master goes on), and a stranger 60 MiB twice (over
    // it: refused by libzmq before it is read).
    let joined = hostile_worker(port, |sim| sim.send_bytes(&nils(4 << 20)));
    real.wait_log("Running 1 users", 1, LIMIT);
    let ctx = zmq::Context::new();
    let s = stranger(&ctx, port);
    for _ in 0..2 {
        s.send(nils(60 << 20), 0).unwrap();
    }
    let status = m.wait(LIMIT);
    joined.join().unwrap();
    assert!(real.wait(LIMIT).success(), "{}", real.logs());
    assert!(status.success(), "{}", m.logs());
    let (log, wlog) = (m.stderr(), real.stderr());
    assert!(!log.contains("missing"), "{log}");
    assert!(log.contains("an array of 4194304 elements"), "{log}");
    assert!(!wlog.contains("silent"), "{wlog}");
    assert_eq!(wlog.matches("Running ").count(), 1, "{wlog}");
    assert_eq!(csv_total(&csv), worker_sent(&wlog).0, "{log}");
}

#[test]
fn floods_of_bad_messages_log_a_few_lines_with_counts() {
    let dir = temp_dir("hostile-flood");
    let csv = dir.join("run");
    let port = free_port();
    let args = ["-u", "1", "-r", "100", "-t", "3s", "--expect-workers", "1"];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master_cmd(port, "http://127.0.0.1:9", &args, &csv),
    );
    const FLOOD: u64 = 20_000;
    let liar = hostile_worker(port, |sim| {
        for _ in 0..50 {
            sim.send(WorkerMessage::Heartbeat {
                state: "running".into(),
                cpu_percent: 1e308,
                memory_bytes: None,
            });
        }
    });
    let ctx = zmq::Context::new();
    let s = stranger(&ctx, port);
    for _ in 0..FLOOD {
        s.send(&b"\xc1 not msgpack"[..], 0).unwrap();
    }
    assert!(m.wait(LIMIT).success(), "{}", m.logs());
    liar.join().unwrap();
    let log = m.stderr();
    let lines = log.matches("dropped a malformed message").count() as u64;
    let suppressed: u64 = log
        .lines()
        .filter(|l| l.contains("more `malformed message` warnings suppressed"))
        .map(|l| {
            let n = l.split("… ").nth(1).unwrap().split(' ').next().unwrap();
            n.parse::<u64>().unwrap()
        })
        .sum();
    assert!(lines <= 3, "{lines} lines\n{log}");
    assert_eq!(lines + suppressed, FLOOD, "{log}");
    // The CPU claim is clamped: one warning, no 309-digit number.
    assert!(log.contains("claims 1.000e308% CPU"), "{log}");
    assert!(log.matches("claims").count() <= 2, "{log}");
    assert!(log.contains("is at 100% CPU"), "{log}");
    assert!(log.lines().all(|l| l.len() < 400), "{log}");
}

#[test]
fn a_master_on_port_0_logs_the_port_it_got_and_workers_can_use_it() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("hostile-port0");
    let csv = dir.join("run");
    let args = ["-u", "1", "-r", "100", "-t", "2s", "--expect-workers", "1"];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master_cmd(0, &server.url("/"), &args, &csv),
    );
    m.wait_log("Starting locusta master", 1, LIMIT);
    let log = m.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("Starting locusta master"))
        .unwrap();
    let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    assert_ne!(port, 0, "{line}");
    let mut w = Proc::spawn(&dir, "worker", &mut worker_cmd(port));
    assert!(m.wait(LIMIT).success(), "{}", m.logs());
    assert!(w.wait(LIMIT).success(), "{}", w.logs());
    assert_eq!(csv_total(&csv), worker_sent(&w.stderr()).0);
}
