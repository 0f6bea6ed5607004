//! Master CPU per worker count: one real `locusta --master` process and N
//! scripted workers (`cluster::sim`, real DEALERs in this process), each
//! sending a heartbeat and a stats report with 20 endpoints (names) (Locust's
//! fields plus HDR buckets) every second, spread evenly over the second.
//! Prints the master's CPU time as % of one core over a 10 s window.
//!
//! Targets: 1,000 workers at 1 Hz under 25 % of one core (Locust's master
//! saturates a core near 1,300 workers at its 3 s interval); 5,000 workers
//! at 1 Hz with 50 names each under 50 %.
//!
//! `cargo bench --bench cluster` (counts: `LOCUSTA_BENCH_WORKERS=10,100,1000`;
//! names per report: `LOCUSTA_BENCH_NAMES=50`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use locusta::cluster::protocol::{encode, MasterMessage, WorkerMessage};
use locusta::cluster::report::ReportBuilder;
use locusta::cluster::sim::SimWorker;
use locusta::http::Method;
use locusta::stats::ShardStats;

/// Names per report unless `LOCUSTA_BENCH_NAMES` says otherwise.
const ENDPOINTS: usize = 20;
const MEASURE: Duration = Duration::from_secs(10);
const WARMUP: Duration = Duration::from_secs(3);
/// Under `cargo test --all-targets` (no `--bench` flag): a few workers for
/// a second, to prove the harness runs; the numbers mean nothing there.
const SMOKE: (usize, Duration, Duration) = (5, Duration::from_secs(1), Duration::from_secs(1));
/// libzmq's limit is 1,023 sockets per context.
const SOCKETS_PER_CONTEXT: usize = 900;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        let (n, warmup, window) = SMOKE;
        let (_, reports) = measure(n, warmup, window);
        println!(
            "cluster master: smoke run, {reports} reports (cargo bench --bench cluster measures)"
        );
        return;
    }
    let counts: Vec<usize> = std::env::var("LOCUSTA_BENCH_WORKERS")
        .unwrap_or_else(|_| "10,100,500,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "cluster master: {} endpoints per report, 1 report + 1 heartbeat per worker per second",
        endpoints()
    );
    for n in counts {
        let (cpu, reports) = measure(n, WARMUP, MEASURE);
        println!(
            "  {n:>5} workers: master CPU {:>5.1} % of one core, {:>6.1} µs per report ({reports} reports)",
            cpu * 100.0 / MEASURE.as_secs_f64(),
            cpu * 1e6 / reports.max(1) as f64
        );
    }
}

/// One stats report as a worker would send it: `endpoints()` names, ~50
/// requests each at varied latencies.
fn report_payload(sim: &SimWorker, seed: u64) -> Vec<u8> {
    let mut shard = ShardStats::new();
    let mut x = seed | 1;
    for e in 0..endpoints() {
        let id = shard.entry(Method::Get, &format!("/api/endpoint/{e}"));
        for _ in 0..50 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shard.record(id, 500 + x % 200_000, 512);
        }
    }
    let mut builder = ReportBuilder::new();
    builder.add(&shard.take_delta());
    let report = builder.take_report(SystemTime::now(), vec![("raw".into(), 1)], 1);
    encode(&WorkerMessage::Stats(Box::new(report)).to_message(&sim.node_id))
}

fn endpoints() -> usize {
    std::env::var("LOCUSTA_BENCH_NAMES")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(ENDPOINTS)
}

fn heartbeat(sim: &SimWorker) -> Vec<u8> {
    let hb = WorkerMessage::Heartbeat {
        state: "running".into(),
        cpu_percent: 5.0,
        memory_bytes: Some(50 << 20),
    };
    encode(&hb.to_message(&sim.node_id))
}

fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name: state is 3rd; utime/stime are 14th/15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64(fields.iter().sum::<u64>() as f64 / hz)
}

fn start_master(port: u16, workers: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_locusta"))
        .args([
            "--master",
            "--headless",
            "--only-summary",
            "-H",
            "http://127.0.0.1:9",
        ])
        .args(["--master-bind-port", &port.to_string()])
        .args(["-u", &workers.to_string(), "-r", "100000", "-t", "120s"])
        .args([
            "--expect-workers",
            &workers.to_string(),
            "--loglevel",
            "WARNING",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the master")
}

/// Master CPU seconds over `window` (scaled to [`MEASURE`]), and reports
/// sent in that time.
fn measure(n: usize, warmup: Duration, window: Duration) -> (f64, u64) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut master = start_master(port, n);
    std::thread::sleep(Duration::from_millis(300));
    let contexts: Vec<zmq::Context> = (0..n.div_ceil(SOCKETS_PER_CONTEXT))
        .map(|_| zmq::Context::new())
        .collect();
    let sims: Vec<SimWorker> = (0..n)
        .map(|i| {
            SimWorker::connect(&contexts[i / SOCKETS_PER_CONTEXT], "127.0.0.1", port)
                .expect("connect")
        })
        .collect();
    let acked = SimWorker::join_all(&sims, Duration::from_secs(30));
    assert_eq!(acked, n, "workers without an ack");
    let payloads: Vec<(Vec<u8>, Vec<u8>)> = sims
        .iter()
        .enumerate()
        .map(|(i, s)| (heartbeat(s), report_payload(s, i as u64 + 1)))
        .collect();
    let started = Instant::now();
    let mut cpu_start = None;
    let mut reports = 0u64;
    let mut sent_in_window = 0u64;
    let mut second = 0u32;
    loop {
        let second_start = started + Duration::from_secs(u64::from(second));
        let elapsed = started.elapsed();
        if cpu_start.is_none() && elapsed >= warmup {
            cpu_start = Some((Instant::now(), cpu_of(master.id())));
            sent_in_window = reports;
        }
        if elapsed >= warmup + window {
            break;
        }
        // Spread this second's sends over ten slices.
        for slice in 0..10 {
            let from = n * slice / 10;
            let to = n * (slice + 1) / 10;
            for (sim, (hb, report)) in sims[from..to].iter().zip(&payloads[from..to]) {
                sim.send_bytes(hb);
                sim.send_bytes(report);
                reports += 1;
                // Answers (heartbeats, spawns) must not pile up.
                while let Some(m) = sim.recv(Duration::ZERO) {
                    if m == MasterMessage::Quit {
                        panic!("the master told a worker to quit");
                    }
                }
            }
            let slice_end = second_start + Duration::from_millis(100 * (slice as u64 + 1));
            std::thread::sleep(slice_end.saturating_duration_since(Instant::now()));
        }
        second += 1;
    }
    let (t0, cpu0) = cpu_start.expect("measured");
    let cpu = cpu_of(master.id()).saturating_sub(cpu0).as_secs_f64();
    let wall = t0.elapsed().as_secs_f64();
    let _ = master.kill();
    let _ = master.wait();
    (cpu * MEASURE.as_secs_f64() / wall, reports - sent_in_window)
}
