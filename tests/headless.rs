//! The real binary in headless raw mode against in-process servers on
//! 127.0.0.1: CSV files, exit codes, failures, signals, both I/O drivers.

mod common;

use std::time::Duration;

use common::*;

const STATS_HEADER: &str = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%";
const HISTORY_HEADER: &str = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size";
const FAILURES_HEADER: &str = "Method,Name,Error,Occurrences,First Seen,Last Seen";
const EXCEPTIONS_HEADER: &str = "Count,Message,Traceback,Nodes";

fn first_line(path: &std::path::Path) -> String {
    let t = std::fs::read_to_string(path).unwrap();
    t.split("\r\n").next().unwrap().to_string()
}

fn raw_run(io: &str) {
    let server = TestServer::start(|_| ok("hello"));
    let dir = temp_dir(&format!("raw-{io}"));
    let prefix = dir.join("run");
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "4",
                "-r",
                "100",
                "-t",
                "2s",
                "--shards",
                "2",
            ])
            .args([
                "--io",
                io,
                "--only-summary",
                "--csv",
                prefix.to_str().unwrap(),
                &server.url("/hello"),
            ]),
        Duration::from_secs(30),
    );
    let stderr = text(&out.stderr);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let driver = if io == "uring" { "io_uring" } else { "epoll" };
    assert!(
        stderr.contains(&format!("on {driver}")),
        "driver not reported: {stderr}"
    );
    assert!(stdout.contains("Aggregated") && stdout.contains("Response time percentiles"));

    for (suffix, header) in [
        ("stats", STATS_HEADER),
        ("stats_history", HISTORY_HEADER),
        ("failures", FAILURES_HEADER),
        ("exceptions", EXCEPTIONS_HEADER),
    ] {
        let path = dir.join(format!("run_{suffix}.csv"));
        assert_eq!(first_line(&path), header, "{suffix}.csv header");
    }
    let rows = csv_rows(&dir.join("run_stats.csv"));
    assert_eq!(rows.len(), 3, "one entry and Aggregated: {rows:?}");
    assert_eq!(&rows[1][..2], ["GET", "/hello"]);
    assert_eq!(rows[2][0], "", "Aggregated has an empty Type");
    let agg = aggregated(&dir.join("run_stats.csv"));
    let count: usize = agg["Request Count"].parse().unwrap();
    assert!(count > 50, "only {count} requests in 2 s");
    assert_eq!(agg["Failure Count"], "0");
    assert_eq!(agg["Average Content Size"].parse::<f64>().unwrap(), 5.0);
    // Keep-alive: one connection per user, whatever the request count.
    assert_eq!(server.connections(), 4, "connections per user");
    // What arrived is what was counted, give or take requests cut at the stop.
    let arrived = server.requests().len();
    assert!(
        count <= arrived && arrived <= count + 4,
        "client {count}, server {arrived}"
    );
    let head = &server.requests()[0];
    assert!(head.starts_with("GET /hello HTTP/1.1\r\n"), "{head}");
    assert!(head.contains(&format!("Host: {}", server.addr)), "{head}");
    assert!(head.contains("User-Agent: locusta/"), "{head}");
    // History: a header plus about one row per second.
    let history = csv_rows(&dir.join("run_stats_history.csv"));
    assert!(history.len() >= 2, "{history:?}");
    assert!(history[1..].iter().all(|r| r[3] == "Aggregated"));
}

#[test]
fn raw_mode_io_uring() {
    raw_run("uring");
}

#[test]
fn raw_mode_epoll() {
    raw_run("epoll");
}

#[test]
fn several_urls_share_the_load_and_errors_set_the_exit_code() {
    let server = TestServer::start(|path| match path {
        "/bad" => status(500, "Internal Server Error"),
        _ => ok("{}"),
    });
    let dir = temp_dir("multi");
    let prefix = dir.join("m");
    let run = |extra: &[&str]| {
        run_bounded(
            locusta()
                .args([
                    "--headless",
                    "-u",
                    "3",
                    "-r",
                    "50",
                    "-t",
                    "2",
                    "--only-summary",
                ])
                .args(["--csv", prefix.to_str().unwrap()])
                .args(extra)
                .args([server.url("/a"), server.url("/bad")]),
            Duration::from_secs(30),
        )
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let rows = csv_rows(&dir.join("m_stats.csv"));
    let names: Vec<_> = rows[1..].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(names, ["/a", "/bad", "Aggregated"]);
    let a: u64 = rows[1][2].parse().unwrap();
    let bad: u64 = rows[2][2].parse().unwrap();
    assert!(
        a > 20 && bad > 20 && a.abs_diff(bad) <= 3,
        "a={a} bad={bad}"
    );
    assert_eq!(rows[2][3], rows[2][2], "every /bad request failed");
    let failures = csv_rows(&dir.join("m_failures.csv"));
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!(
        &failures[1][..3],
        ["GET", "/bad", "HTTP 500 Internal Server Error"]
    );
    assert_eq!(failures[1][3], rows[2][3]);
    assert!(
        text(&out.stdout).contains("HTTP 500"),
        "failures table printed"
    );

    let out = run(&["--exit-code-on-error", "7"]);
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn refused_and_timeout_failures_are_named() {
    let dir = temp_dir("refused");
    let prefix = dir.join("r");
    let url = format!("http://127.0.0.1:{}/", dead_port());
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "2",
                "-t",
                "1",
                "--only-summary",
                "--csv",
            ])
            .args([prefix.to_str().unwrap(), &url]),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1));
    let failures = csv_rows(&dir.join("r_failures.csv"));
    assert_eq!(failures[1][2], "connection refused", "{failures:?}");

    let server = TestServer::start(|_| Reply::Hang);
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "2",
                "-r",
                "10",
                "-t",
                "2",
                "--only-summary",
            ])
            .args([
                "--timeout",
                "300ms",
                "--csv",
                prefix.to_str().unwrap(),
                &server.url("/"),
            ]),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1));
    let failures = csv_rows(&dir.join("r_failures.csv"));
    assert_eq!(failures[1][2], "timeout after 300ms", "{failures:?}");
    let n: u64 = failures[1][3].parse().unwrap();
    assert!(
        (4..=16).contains(&n),
        "2 users × ~2 s / 0.3 s timeouts, got {n}"
    );
}

#[test]
fn malformed_response_is_a_named_failure() {
    let server = TestServer::start(|_| Reply::Bytes(b"HTTP/1.1 abc OK\r\n\r\n".to_vec()));
    let dir = temp_dir("malformed");
    let prefix = dir.join("x");
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "1",
                "-t",
                "1",
                "--only-summary",
                "--csv",
            ])
            .args([prefix.to_str().unwrap(), &server.url("/")]),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let failures = csv_rows(&dir.join("x_failures.csv"));
    assert_eq!(failures[1][2], "malformed status line");
}

fn stop_by_signal(sig: i32, name: &str) {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir(name);
    let prefix = dir.join("s");
    let (html, json, hlog) = (dir.join("s.html"), dir.join("s.json"), dir.join("s.hlog"));
    let child = locusta()
        .args(["--headless", "-u", "2", "-r", "10", "-t", "60s", "--csv"])
        .args([prefix.to_str().unwrap(), &server.url("/")])
        .args(["--html", html.to_str().unwrap()])
        .args(["--json-file", json.to_str().unwrap()])
        .args(["--hdr-log", hlog.to_str().unwrap()])
        .args(["--threshold", "requests>10"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
    let out = wait_bounded(child, Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let agg = aggregated(&dir.join("s_stats.csv"));
    assert!(agg["Request Count"].parse::<u64>().unwrap() > 10);
    assert!(text(&out.stdout).contains("Response time percentiles"));
    assert!(dir.join("s_failures.csv").exists() && dir.join("s_exceptions.csv").exists());
    // Every other report too, with the same count as the CSV.
    let total = &agg["Request Count"];
    let page = std::fs::read_to_string(&html).expect("the HTML report");
    let row = format!("<td class=\"name\">Aggregated</td><td>{total}</td>");
    assert!(page.contains(&row), "{row} not in the report");
    let doc = std::fs::read_to_string(&json).expect("the JSON report");
    assert!(
        doc.contains(&format!("\"num_requests\": {total},")),
        "{doc}"
    );
    let log = std::fs::read_to_string(&hlog).expect("the HDR log");
    assert!(log.lines().any(|l| l.contains(",HISTF")), "{log}");
    assert!(
        text(&out.stdout).contains("PASS  requests>10"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_report_that_cannot_be_written_loses_no_other() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("report-full-disk");
    let json = dir.join("r.json");
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "1",
                "-r",
                "10",
                "-t",
                "1s",
                "--shards",
                "1",
            ])
            .args(["--html", "/dev/full", "--json-file", json.to_str().unwrap()])
            .arg(server.url("/")),
        Duration::from_secs(30),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write --html /dev/full"), "{stderr}");
    assert!(text(&out.stdout).contains("Response time percentiles"));
    assert!(std::fs::read_to_string(&json)
        .unwrap()
        .contains("num_requests"));
}

#[test]
fn sigterm_mid_run_still_writes_reports() {
    stop_by_signal(libc::SIGTERM, "sigterm");
}

#[test]
fn sigint_mid_run_still_writes_reports() {
    stop_by_signal(libc::SIGINT, "sigint");
}

#[test]
fn demo_runs_against_its_built_in_target() {
    let out = run_bounded(
        locusta().args(["--demo", "-t", "3s", "--only-summary"]),
        Duration::from_secs(30),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("/api/products"), "{stdout}");
    assert!(stdout.contains("Aggregated"));
}

/// A short run whose stdout goes to `stdout`; its CSV files must be whole
/// and its exit status the normal one whatever happens to stdout.
fn run_with_stdout(name: &str, stdout: std::process::Stdio, close_pipe: bool) -> String {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir(name);
    let prefix = dir.join("o");
    let mut child = locusta()
        .args(["--headless", "-u", "2", "-r", "10", "-t", "3s", "--csv"])
        .args([prefix.to_str().unwrap(), &server.url("/")])
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if close_pipe {
        // The reader goes away before the first table (`| head -0`).
        drop(child.stdout.take());
    }
    let out = wait_bounded(child, Duration::from_secs(30));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let agg = aggregated(&dir.join("o_stats.csv"));
    assert!(agg["Request Count"].parse::<u64>().unwrap() > 10, "{agg:?}");
    assert!(csv_rows(&dir.join("o_stats_history.csv")).len() > 1);
    stderr
}

#[test]
fn stdout_closed_by_its_reader_does_not_stop_the_run() {
    let stderr = run_with_stdout("stdout-epipe", std::process::Stdio::piped(), true);
    assert!(
        !stderr.contains("cannot print"),
        "EPIPE is not an error: {stderr}"
    );
}

#[test]
fn stdout_on_a_full_device_is_said_once_and_the_run_goes_on() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let stderr = run_with_stdout("stdout-full", full.into(), false);
    assert_eq!(
        stderr.matches("cannot print to stdout").count(),
        1,
        "{stderr}"
    );
}
