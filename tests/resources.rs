//! The real binary under exhausted resources: fewer open files than users
//! (raw and Lua), and runs too large for the machine, refused up front.
//! The low limit is set on the child alone (setrlimit in `pre_exec`).

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Open-files limit (soft and hard) for the child: far fewer than `USERS`.
const NOFILE: u64 = 256;
const USERS: &str = "500";

fn with_address_space(cmd: &mut Command, bytes: u64) -> &mut Command {
    with_rlimit(cmd, libc::RLIMIT_AS, bytes)
}

fn num(row: &std::collections::HashMap<String, String>, col: &str) -> u64 {
    row[col]
        .parse()
        .unwrap_or_else(|e| panic!("{col}: {e}: {row:?}"))
}

/// Successes locusta counted vs requests the server saw: equal but for
/// the requests in flight when the run stopped (at most one per user).
fn assert_counts_match(dir: &std::path::Path, prefix: &str, served: usize, stderr: &str) {
    let agg = aggregated(&dir.join(format!("{prefix}_stats.csv")));
    let requests = num(&agg, "Request Count");
    let failures = num(&agg, "Failure Count");
    let ok = requests - failures;
    assert!(ok > 0, "no request counted: {agg:?}\n{stderr}");
    assert!(
        ok as usize <= served && served - ok as usize <= NOFILE as usize,
        "locusta counted {ok} successes, the server saw {served}: {agg:?}"
    );
    let failures_csv = std::fs::read_to_string(dir.join(format!("{prefix}_failures.csv"))).unwrap();
    assert!(
        failures_csv.contains("too many open files"),
        "failures: {failures_csv}"
    );
}

#[test]
fn raw_users_beyond_the_open_files_limit_end_on_time_and_count() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("nofile-raw");
    let prefix = dir.join("r");
    let started = Instant::now();
    let out = run_bounded(
        with_nofile(&mut locusta(), NOFILE)
            .args(["--headless", "-u", USERS, "-r", USERS, "-t", "3s"])
            .args(["--shards", "2", "--only-summary", "--csv"])
            .args([prefix.to_str().unwrap(), &server.url("/")]),
        Duration::from_secs(60),
    );
    let took = started.elapsed();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // -t 3s, stop timeout 0: generous for a loaded box, far below a hang.
    assert!(took < Duration::from_secs(30), "took {took:?}: {stderr}");
    assert_counts_match(&dir, "r", server.requests().len(), &stderr);
    assert!(
        stderr.contains("open-files limit 256 allows about 176 connected users; -u 500"),
        "no open-files warning: {stderr}"
    );
}

#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("nofile-raised");
    let prefix = dir.join("n");
    let mut cmd = locusta();
    // SAFETY: as in `with_nofile`: soft 128, hard 2048.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 128,
                rlim_max: 2048,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_bounded(
        cmd.args(["--headless", "-u", "300", "-r", "300", "-t", "2s"])
            .args(["--shards", "2", "--only-summary", "--csv"])
            .args([prefix.to_str().unwrap(), &server.url("/")]),
        Duration::from_secs(60),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("open-files limit"), "{stderr}");
    assert!(num(&aggregated(&dir.join("n_stats.csv")), "Request Count") > 0);
}

#[test]
fn a_run_too_large_for_memory_is_refused_at_once() {
    let started = Instant::now();
    let url = format!("http://127.0.0.1:{}/", dead_port());
    // The address-space cap keeps this test safe on a binary without the check.
    let out = run_bounded(
        with_address_space(&mut locusta(), 64 << 30).args([
            "--headless",
            "-u",
            "100000000",
            "-r",
            "1",
            "-t",
            "1s",
            &url,
        ]),
        Duration::from_secs(20),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("-u 100,000,000 needs about") && stderr.contains("per user"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{stderr}");
}

#[test]
fn a_run_beyond_the_address_space_limit_is_refused_naming_it() {
    let url = format!("http://127.0.0.1:{}/", dead_port());
    let out = run_bounded(
        with_address_space(&mut locusta(), 1 << 30).args([
            "--headless",
            "-u",
            "1000000",
            "-r",
            "1",
            "-t",
            "1s",
            &url,
        ]),
        Duration::from_secs(20),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("-u 1,000,000 needs about") && stderr.contains("address-space limit"),
        "{stderr}"
    );
}

#[test]
fn lua_users_beyond_the_open_files_limit_end_on_time_and_count() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("nofile-lua");
    let script = dir.join("nowait.lua");
    // No wait time: a user whose connect fails at once retries at once.
    std::fs::write(
        &script,
        "local locusta = require \"locusta\"\n\
         local U = locusta.user {}\n\
         U:task(1, function(self) self.client:get(\"/\") end)\n",
    )
    .unwrap();
    let prefix = dir.join("l");
    let out = run_bounded(
        with_nofile(&mut locusta(), NOFILE)
            .args(["--headless", "-u", USERS, "-r", USERS, "-t", "3s"])
            .args(["--shards", "2", "--only-summary", "--csv"])
            .args([prefix.to_str().unwrap(), "-f", script.to_str().unwrap()])
            .args(["-H", &server.url("")]),
        Duration::from_secs(60),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_counts_match(&dir, "l", server.requests().len(), &stderr);
}

#[test]
fn sigterm_stops_a_run_starved_of_open_files() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("nofile-sigterm");
    let prefix = dir.join("s");
    let child = with_nofile(&mut locusta(), NOFILE)
        .args(["--headless", "-u", USERS, "-r", USERS, "-t", "120s"])
        .args(["--shards", "2", "--only-summary", "--csv"])
        .args([prefix.to_str().unwrap(), &server.url("/")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = wait_bounded(child, Duration::from_secs(30));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_counts_match(&dir, "s", server.requests().len(), &stderr);
}
