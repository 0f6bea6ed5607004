//! The open model through the real binary: `--rate` runs the arrival rate
//! against a real server, hostile rates and pools are refused at start
//! with a clear message, flags that do not fit are refused, and a server
//! that never answers still lets the run end at -t and on SIGTERM.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

fn gets(server: &TestServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /"))
        .count()
}

#[test]
fn rate_runs_the_arrival_rate_headless() {
    let server = TestServer::start(|_| ok("x"));
    let out = run_bounded(
        locusta()
            .args(["--headless", "--rate", "200", "-u", "10", "-t", "3s"])
            .args(["--only-summary", "--shards", "2"])
            .arg(server.url("/r")),
        Duration::from_secs(30),
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Open model: 200 iterations per second"),
        "{err}"
    );
    let n = gets(&server);
    // 600 in 3 s (margin 15 %: start-up and a loaded box).
    assert!((510..=690).contains(&n), "{n} requests\n{err}");
}

#[test]
fn hostile_rates_and_pools_are_refused_at_start() {
    for rate in ["0", "-1", "NaN", "nan", "inf", "1e12", "x", ""] {
        // `--rate=-1`: a value, not a flag.
        let out = run_bounded(
            locusta()
                .args(["--headless", "-t", "1s", &format!("--rate={rate}")])
                .arg("http://127.0.0.1:1/"),
            Duration::from_secs(20),
        );
        assert!(!out.status.success(), "--rate {rate} accepted");
        let err = text(&out.stderr);
        assert!(err.contains("arrival rate"), "--rate {rate}: {err}");
    }
    let out = run_bounded(
        locusta()
            .args(["--headless", "-t", "1s", "--rate", "10", "-u", "0"])
            .arg("http://127.0.0.1:1/"),
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--users must be at least 1"));
    let out = run_bounded(
        locusta()
            .args(["--headless", "-t", "1s", "--rate", "10", "--max-users", "0"])
            .arg("http://127.0.0.1:1/"),
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--max-users"));
    for flags in [&["--pipeline", "4"][..], &["--follow-redirects"][..]] {
        let out = run_bounded(
            locusta()
                .args(["--headless", "-t", "1s", "--rate", "10"])
                .args(flags)
                .arg("http://127.0.0.1:1/"),
            Duration::from_secs(20),
        );
        assert!(!out.status.success(), "{flags:?} accepted");
        let err = text(&out.stderr);
        assert!(err.contains("cannot be combined"), "{flags:?}: {err}");
    }
}

#[test]
fn a_server_that_never_answers_ends_at_the_run_time_and_on_sigterm() {
    let server = TestServer::start(|_| Reply::Hang);
    let t = Instant::now();
    let out = run_bounded(
        locusta()
            .args(["--headless", "--rate", "100", "-u", "5", "-t", "2s"])
            .args(["--only-summary", "--timeout", "60"])
            .arg(server.url("/")),
        Duration::from_secs(30),
    );
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    let _ = out.status; // hung requests may fail the run: it must end
    let child = locusta()
        .args(["--headless", "--rate", "100", "-u", "5", "-t", "60s"])
        .args(["--only-summary", "--timeout", "60"])
        .arg(server.url("/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let t = Instant::now();
    let out = wait_bounded(child, Duration::from_secs(20));
    assert!(t.elapsed() < Duration::from_secs(15));
    let err = text(&out.stderr);
    assert!(err.contains("Got a stop signal"), "{err}");
}
