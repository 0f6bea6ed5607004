//! The open model in a cluster: a locusta master splits an arrival rate
//! over locusta workers, which run their shares and report their open
//! deltas; a connected Python (Locust) worker makes an open-model start
//! fail, naming it. Real processes, a real test server on 127.0.0.1.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;

use std::time::{Duration, Instant, SystemTime};

use cluster_common::*;
use common::*;
use locusta::cluster::open_report::OpenReport;
use locusta::cluster::protocol::{MasterMessage, WorkerMessage};
use locusta::cluster::report::ReportBuilder;
use locusta::cluster::sim::SimWorker;
use locusta::stats::IterationCounts;

const LIMIT: Duration = Duration::from_secs(60);

/// The value of `column` in the Aggregated row of a CSV.
fn aggregated_cell(path: &std::path::Path, column: &str) -> String {
    let rows = csv_rows(path);
    let col = rows[0].iter().position(|h| h == column).unwrap();
    let row = rows.iter().find(|r| r[1] == "Aggregated").unwrap();
    row[col].clone()
}

#[test]
fn two_locusta_workers_share_a_fixed_rate() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("cluster-open-rate");
    let csv = dir.join("run");
    let port = free_port();
    // 200 iterations/s for 5 s over two workers (100/s each).
    let args = [
        "--arrival-rate",
        "200",
        "-u",
        "20",
        "-t",
        "5s",
        "--expect-workers",
        "2",
    ];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master_cmd(port, &server.url("/"), &args, &csv),
    );
    let mut w1 = Proc::spawn(&dir, "w1", &mut worker_cmd(port));
    let mut w2 = Proc::spawn(&dir, "w2", &mut worker_cmd(port));
    assert!(m.wait(LIMIT).success(), "{}", m.logs());
    assert!(w1.wait(LIMIT).success(), "{}", w1.logs());
    assert!(w2.wait(LIMIT).success(), "{}", w2.logs());
    let log = m.stderr();
    assert!(log.contains("split over 2 workers"), "{log}");
    // Each worker ran half the rate.
    for w in [&w1, &w2] {
        assert!(
            w.stderr().contains("Open model: 100.000 iterations/s"),
            "{}",
            w.logs()
        );
    }
    let open_csv = dir.join("run_open_model.csv");
    let rows = csv_rows(&open_csv);
    assert_eq!(
        rows[0].join(","),
        "Type,Name,Intended,Started,Dropped,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
    );
    let started: u64 = aggregated_cell(&open_csv, "Started").parse().unwrap();
    let row = rows.iter().find(|r| r[1] == "/").expect("the GET / row");
    let requests: u64 = row[3].parse().unwrap();
    let served = server.requests().len() as u64;
    // The row's requests are the ones reported, and each reached the
    // server (a request cut off by the stop may reach it unreported: a
    // few at most); iterations started but cut before their request
    // count in the Aggregated Started only (a few per worker at most).
    assert_eq!(
        csv_total(&csv),
        requests,
        "stats.csv counts the same requests"
    );
    assert!(
        requests <= served && served <= requests + 4,
        "requests {requests}, served {served}\n{}",
        m.logs()
    );
    assert!(
        requests <= started && started <= requests + 4,
        "requests {requests}, iterations started {started}"
    );
    // 5 s at 200/s is 1,000; the workers join and stop within the 5 s, so
    // allow 30 % under (a loaded 2-core box) and 5 % over.
    assert!(
        (700..=1_050).contains(&started),
        "started {started}\n{}",
        m.logs()
    );
    // Corrected percentiles are there (a fast server: under a second).
    let p99: f64 = aggregated_cell(&open_csv, "99%").parse().unwrap();
    assert!(p99 > 0.0 && p99 < 1_000.0, "{p99}");
    let out = m.stdout();
    assert!(out.contains("corrected"), "{out}");
    assert!(
        out.contains("Open model: target 200.00 iterations/s"),
        "{out}"
    );
}

/// Workers announce their shards in `client_ready`; the master splits the
/// rate (and the pool) by them: one shard gets a third, two shards two
/// thirds, and each runs its share.
#[test]
fn the_rate_is_split_by_the_shards_each_worker_announces() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("cluster-open-capacity");
    let csv = dir.join("run");
    let port = free_port();
    let args = [
        "--arrival-rate",
        "300",
        "-u",
        "30",
        "-t",
        "5s",
        "--expect-workers",
        "2",
    ];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master_cmd(port, &server.url("/"), &args, &csv),
    );
    let worker = |shards: &str| {
        let mut c = locusta();
        c.args(["--worker", "--shards", shards])
            .args(["--master-port", &port.to_string()]);
        c
    };
    let mut one = Proc::spawn(&dir, "one-shard", &mut worker("1"));
    let mut two = Proc::spawn(&dir, "two-shards", &mut worker("2"));
    assert!(m.wait(LIMIT).success(), "{}", m.logs());
    assert!(one.wait(LIMIT).success(), "{}", one.logs());
    assert!(two.wait(LIMIT).success(), "{}", two.logs());
    for (w, share) in [(&one, "100.000"), (&two, "200.000")] {
        let log = w.stderr();
        assert!(
            log.contains(&format!("Open model: {share} iterations/s")),
            "{log}"
        );
    }
    // Pools of 10 and 20 users.
    assert!(
        one.stderr().contains("with a pool of 10 users"),
        "{}",
        one.logs()
    );
    assert!(
        two.stderr().contains("with a pool of 20 users"),
        "{}",
        two.logs()
    );
    let (sent_one, _) = worker_sent(&one.stderr());
    let (sent_two, _) = worker_sent(&two.stderr());
    // Both ran the same seconds, so the counts follow the shares (a
    // loaded 2-core box: within a quarter of 2:1).
    let ratio = sent_two as f64 / sent_one.max(1) as f64;
    assert!(
        (1.5..=2.5).contains(&ratio),
        "one shard {sent_one}, two shards {sent_two}\n{}",
        m.logs()
    );
    assert_eq!(csv_total(&csv), sent_one + sent_two, "{}", m.logs());
}

#[test]
fn a_locust_worker_makes_an_open_model_start_fail_naming_it() {
    let Some(mut locust) = locust() else { return };
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("cluster-open-locust");
    std::fs::write(
        dir.join("locustfile.py"),
        "from locust import HttpUser, task, constant\n\
         class Shopper(HttpUser):\n    wait_time = constant(0.01)\n\
         \n    @task\n    def index(self):\n        self.client.get(\"/py\")\n",
    )
    .unwrap();
    let port = free_port();
    let csv = dir.join("run");
    let args = [
        "--arrival-rate",
        "50",
        "-u",
        "4",
        "-t",
        "5s",
        "--expect-workers",
        "1",
    ];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master_cmd(port, &server.url("/open"), &args, &csv),
    );
    locust
        .current_dir(&dir)
        .args(["-f", "locustfile.py", "--worker"])
        .args(["--master-host", "127.0.0.1", "--master-port"])
        .arg(port.to_string());
    let mut w = Proc::spawn(&dir, "locust-worker", &mut locust);
    let status = m.wait(LIMIT);
    w.signal(libc::SIGTERM);
    w.wait(LIMIT);
    assert!(!status.success(), "{}", m.logs());
    let log = m.stderr();
    // The id the master logged at the join is the one the error names.
    let joined = log
        .lines()
        .find_map(|l| l.split("Worker ").nth(1)?.split(" (index").next())
        .unwrap_or_else(|| panic!("no join logged\n{log}"));
    let refusal = log
        .lines()
        .find(|l| l.contains("open-model run") && l.contains("Locust"))
        .unwrap_or_else(|| panic!("no refusal\n{log}"));
    assert!(refusal.contains(joined), "{refusal}");
    // Nothing started: no request reached the server.
    assert_eq!(server.requests().len(), 0, "{}", m.logs());
}

/// A joined peer sends open-model parts that cannot be true (and one that
/// is honest): the lies are refused whole, with one warning, the master
/// neither panics nor counts them, and the run ends with its reports.
#[test]
fn lying_open_model_reports_are_refused_and_the_run_completes() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("cluster-open-hostile");
    let csv = dir.join("run");
    let port = free_port();
    let args = [
        "--arrival-rate",
        "50",
        "-u",
        "5",
        "-t",
        "4s",
        "--expect-workers",
        "2",
    ];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master_cmd(port, &server.url("/"), &args, &csv),
    );
    let mut real = Proc::spawn(&dir, "real", &mut worker_cmd(port));
    let liar = std::thread::spawn(move || {
        let ctx = zmq::Context::new();
        let sim = SimWorker::connect(&ctx, "127.0.0.1", port).unwrap();
        assert!(sim.join(Duration::from_secs(10)), "no ack");
        let mut lied = false;
        let deadline = Instant::now() + LIMIT;
        while Instant::now() < deadline {
            sim.send(WorkerMessage::Heartbeat {
                state: "running".into(),
                cpu_percent: 1.0,
                memory_bytes: None,
            });
            match sim.recv(Duration::from_millis(500)) {
                Some(MasterMessage::Spawn { open_model, .. }) if !lied => {
                    assert!(open_model.is_some(), "an open-model share");
                    lied = true;
                    let report = |iterations: IterationCounts| {
                        let mut r = ReportBuilder::new().take_report(SystemTime::now(), vec![], 0);
                        r.open_model = Some(OpenReport {
                            iterations,
                            ..OpenReport::default()
                        });
                        WorkerMessage::Stats(Box::new(r))
                    };
                    let huge = IterationCounts {
                        intended: u64::MAX,
                        started: u64::MAX,
                        late: 0,
                        dropped: u64::MAX,
                    };
                    for _ in 0..3 {
                        sim.send(report(huge));
                    }
                    // Late iterations that never started.
                    sim.send(report(IterationCounts {
                        late: 5,
                        ..IterationCounts::default()
                    }));
                    // One honest part after the lies still counts.
                    sim.send(report(IterationCounts {
                        intended: 7,
                        dropped: 7,
                        ..IterationCounts::default()
                    }));
                }
                Some(MasterMessage::Stop) => sim.send(WorkerMessage::ClientStopped),
                Some(MasterMessage::Quit) => return sim.send(WorkerMessage::Quit),
                _ => {}
            }
        }
        panic!("the master never said quit");
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
    let open_csv = dir.join("run_open_model.csv");
    let dropped: u64 = aggregated_cell(&open_csv, "Dropped").parse().unwrap();
    // The honest 7, plus whatever the real worker dropped (a fast
    // server and a pool of 2-3 users: none expected, a few allowed).
    assert!((7..=20).contains(&dropped), "dropped {dropped}\n{log}");
    let started: u64 = aggregated_cell(&open_csv, "Started").parse().unwrap();
    assert!(started > 0 && started < 1_000, "started {started}");
}

/// A worker joining mid-run: the rate is split again at once, the first
/// worker going from the whole rate to half, the newcomer taking half.
#[test]
fn a_worker_joining_mid_run_gets_its_share() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("cluster-open-join");
    let csv = dir.join("run");
    let port = free_port();
    let args = [
        "--arrival-rate",
        "100",
        "-u",
        "10",
        "-t",
        "5s",
        "--expect-workers",
        "1",
    ];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master_cmd(port, &server.url("/"), &args, &csv),
    );
    let mut w1 = Proc::spawn(&dir, "w1", &mut worker_cmd(port));
    w1.wait_log("Open model: 100.000 iterations/s", 1, LIMIT);
    let mut w2 = Proc::spawn(&dir, "w2", &mut worker_cmd(port));
    assert!(m.wait(LIMIT).success(), "{}", m.logs());
    assert!(w1.wait(LIMIT).success(), "{}", w1.logs());
    assert!(w2.wait(LIMIT).success(), "{}", w2.logs());
    assert!(
        w1.stderr().contains("Open model: 50.000 iterations/s"),
        "{}",
        w1.logs()
    );
    assert!(
        w2.stderr()
            .contains("Open model: 50.000 iterations/s with a pool of 5 users"),
        "{}",
        w2.logs()
    );
    // Both ran iterations; the whole run's count is near 5 s x 100/s.
    let (s1, _) = worker_sent(&w1.stderr());
    let (s2, _) = worker_sent(&w2.stderr());
    assert!(s1 > 0 && s2 > 0, "{s1} {s2}");
    let started: u64 = aggregated_cell(&dir.join("run_open_model.csv"), "Started")
        .parse()
        .unwrap();
    // Margins as in the two-worker test: 30 % under, 5 % over.
    assert!((350..=525).contains(&started), "started {started}");
}
