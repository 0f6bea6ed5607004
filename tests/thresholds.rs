//! `--threshold EXPR` and `--threshold-abort` through the real binary: a
//! bad expression is a usage error before any request, verdicts print the
//! measured value and set exit status 3, a missing row fails, and
//! `--threshold-abort` ends a run on a failures budget well before `-t`,
//! on a cluster master too (for the whole cluster).

mod common;

#[path = "common/cluster.rs"]
mod cluster_common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(90);

/// Every request answered after 5 ms (so `p50<1ms` fails for sure);
/// `/bad` answers 500.
fn slow_server() -> TestServer {
    TestServer::start(|path| {
        std::thread::sleep(Duration::from_millis(5));
        if path == "/bad" {
            status(500, "Internal Server Error")
        } else {
            ok("hello")
        }
    })
}

/// One raw user for 1 s against `urls`, with `extra` flags.
fn run(extra: &[&str], urls: &[String]) -> (i32, String, String) {
    let out = run_bounded(
        locusta()
            .args(["--headless", "-u", "1", "-r", "10", "-t", "1s"])
            .args(["--only-summary", "--shards", "1"])
            .args(extra)
            .args(urls),
        LIMIT,
    );
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn bad_expressions_stop_before_any_request() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let server = TestServer::start(move |_| {
        h.fetch_add(1, Ordering::SeqCst);
        ok("x")
    });
    let cases = [
        (
            "p95<3xs",
            "'3xs': unknown unit 'xs' (use us, ms, s, or a plain number of ms)",
        ),
        ("p95<1%", "'%' does not fit p95"),
        ("fail_ratio<5", "write '5%' for percent"),
        ("p95=300ms", "'=' is not an operator here"),
        ("latency<1s", "unknown metric 'latency'"),
        ("GET /api p95<1s", "a row name goes before ': '"),
        ("http://x/a: p9x<1s", "unknown metric 'p9x'"),
    ];
    for (expr, want) in cases {
        let (code, _, stderr) = run(
            &["--threshold", "p95<1s", "--threshold", expr],
            &[server.url("/")],
        );
        assert_eq!(code, 2, "{expr}: {stderr}");
        let head = format!("error: invalid value '{expr}' for '--threshold <EXPR>': ");
        assert!(stderr.contains(&head), "{expr}: {stderr}");
        assert!(stderr.contains(want), "{expr}: want {want:?} in {stderr}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "no request may reach the server"
    );
}

#[test]
fn verdicts_print_the_measured_value_and_set_the_exit_status() {
    let server = slow_server();
    let url = server.url("/slow");

    let (code, stdout, stderr) = run(
        &["--threshold", "p95<1s", "--threshold", "fail_ratio<10%"],
        std::slice::from_ref(&url),
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("Thresholds:"), "{stdout}");
    assert!(stdout.contains("PASS  p95<1s  (p95 = "), "{stdout}");
    assert!(
        stdout.contains("PASS  fail_ratio<10%  (fail_ratio = 0%)"),
        "{stdout}"
    );

    // The server sleeps 5 ms per request: p50 cannot be under 1 ms.
    let (code, stdout, stderr) = run(
        &[
            "--threshold",
            "p95<1s",
            "--threshold",
            "p50<1ms",
            "--threshold",
            "GET /slow: p99.9<=10s",
        ],
        std::slice::from_ref(&url),
    );
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stdout.contains("PASS  p95<1s"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("FAIL  p50<1ms  (p50 = "))
        .unwrap_or_else(|| panic!("no FAIL line for p50<1ms:\n{stdout}"));
    let ms: f64 = line
        .split("p50 = ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {line}"));
    assert!(ms >= 5.0, "the server slept 5 ms: {line}");
    assert!(
        stdout.contains("PASS  GET /slow: p99.9<=10s  (p99.9 = "),
        "{stdout}"
    );
    assert!(stderr.contains("Shutting down (exit code 3)"), "{stderr}");
}

#[test]
fn a_missing_row_fails_and_request_failures_keep_their_exit_code() {
    let server = slow_server();
    let urls = [server.url("/ok"), server.url("/bad")];

    // Thresholds that pass leave --exit-code-on-error to request failures.
    let (code, stdout, _) = run(&["--threshold", "fail_ratio<=100%"], &urls);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("PASS  fail_ratio<=100%"), "{stdout}");

    // A name that matches no row fails, saying so; a failed threshold
    // beats --exit-code-on-error.
    let (code, stdout, _) = run(
        &[
            "--exit-code-on-error",
            "7",
            "--threshold",
            "/nope: p95<1s",
            "--threshold",
            "/bad: failures>=1",
        ],
        &urls,
    );
    assert_eq!(code, 3, "{stdout}");
    assert!(
        stdout.contains("FAIL  /nope: p95<1s  (no such row: no request was named '/nope'"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PASS  /bad: failures>=1  (failures = "),
        "{stdout}"
    );
}

#[test]
fn threshold_abort_ends_the_run_on_a_failures_budget() {
    let server = TestServer::start(|_| status(503, "Service Unavailable"));
    let dir = temp_dir("threshold-abort");
    // 2 users at 20 requests/s each: 60 s would make about 2,400.
    let script = dir.join("fail.lua");
    std::fs::write(
        &script,
        r#"local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0.05) }
U:task(1, function(self) self.client:get("/down") end)
"#,
    )
    .unwrap();
    let prefix = dir.join("r");
    let out = run_bounded(
        locusta()
            .args(["--headless", "-u", "2", "-r", "10", "-t", "60s"])
            .args(["--only-summary", "--shards", "2"])
            .args(["-f", script.to_str().unwrap(), "-H", &server.url("")])
            .args(["--csv", prefix.to_str().unwrap()])
            .args(["--threshold", "failures<20", "--threshold", "p95<10s"])
            .arg("--threshold-abort"),
        LIMIT,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("threshold 'failures<20' can no longer pass (failures = "),
        "{stderr}"
    );
    assert!(stderr.contains("(--threshold-abort)"), "{stderr}");
    assert!(
        stdout.contains("FAIL  failures<20  (failures = "),
        "{stdout}"
    );
    assert!(stdout.contains("PASS  p95<10s"), "{stdout}");
    // Reports are written as usual, and the run ended long before -t.
    let agg = aggregated(&dir.join("r_stats.csv"));
    let requests: u64 = agg["Request Count"].parse().unwrap();
    let failures: u64 = agg["Failure Count"].parse().unwrap();
    assert!(failures >= 20, "{failures}");
    assert!(
        requests < 1_000,
        "{requests} requests: the run was not cut short"
    );
}

#[test]
fn a_master_judges_and_aborts_for_the_whole_cluster() {
    use cluster_common::*;
    let server = TestServer::start(|_| status(503, "Service Unavailable"));
    let dir = temp_dir("threshold-master");
    let csv = dir.join("run");
    let port = free_port();
    let args = [
        "-u",
        "2",
        "-r",
        "100",
        "-t",
        "60s",
        "--expect-workers",
        "1",
        "--threshold",
        "failures<50",
        "--threshold",
        "p95<10s",
        "--threshold-abort",
    ];
    let mut m = Proc::spawn(
        &dir,
        "master",
        &mut master_cmd(port, &server.url("/down"), &args, &csv),
    );
    let mut w = Proc::spawn(&dir, "w1", &mut worker_cmd(port));
    let status = m.wait(LIMIT);
    assert_eq!(status.code(), Some(3), "{}", m.logs());
    assert!(w.wait(LIMIT).success(), "{}", w.logs());
    assert!(
        m.stderr()
            .contains("threshold 'failures<50' can no longer pass (failures = "),
        "{}",
        m.logs()
    );
    assert!(
        m.stdout().contains("FAIL  failures<50  (failures = "),
        "{}",
        m.logs()
    );
    assert!(m.stdout().contains("PASS  p95<10s"), "{}", m.logs());
    // The master's verdict is on what the worker sent: the whole cluster.
    let (sent, failed) = worker_sent(&w.stderr());
    assert_eq!(csv_total(&csv), sent, "{}", m.logs());
    assert!(failed >= 50, "{}", w.logs());
}
