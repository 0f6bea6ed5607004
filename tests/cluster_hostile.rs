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
