//! The dashboard end to end: the real binary on a real terminal (a tmux
//! pane, 120x40) against an in-process server on 127.0.0.1, driven with
//! `send-keys` and read back with `capture-pane`. Without tmux these tests
//! skip, unless CI=true (then tmux is required: `.ci/run` installs it).
//! Every wait is bounded; every tmux server is killed on drop.

mod common;
#[path = "common/tmux.rs"]
mod tmux;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use tmux::{have_tmux, Tmux};

/// A script whose users pause 50 ms between requests (a light load).
fn script(dir: &Path) -> PathBuf {
    let path = dir.join("light.lua");
    std::fs::write(
        &path,
        r#"local locusta = require "locusta"
local Visitor = locusta.user { wait_time = locusta.constant(0.05) }
Visitor:task(1, function(self) self.client:get("/hello") end)
"#,
    )
    .unwrap();
    path
}

/// The shell line: locusta with `args`, then its exit code, then a pause
/// so the pane (and what locusta printed) stays for capture-pane.
fn command(server: &TestServer, dir: &Path, args: &str) -> String {
    format!(
        "{} -f {} -H {} --shards 1 --csv {} {args}; echo locusta-exit=$?; sleep 600",
        env!("CARGO_BIN_EXE_locusta"),
        script(dir).display(),
        server.url(""),
        dir.join("run").display(),
    )
}

/// The header's `users N/M`.
fn users(screen: &str) -> Option<(u32, u32)> {
    let after = screen.split("users ").nth(1)?;
    let (n, m) = after.split_whitespace().next()?.split_once('/')?;
    Some((n.parse().ok()?, m.parse().ok()?))
}

/// The Stats view's Aggregated request count.
fn aggregated_requests(screen: &str) -> u64 {
    screen
        .lines()
        .find(|l| l.trim_start().starts_with("Aggregated"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The final CSV files hold requests and no failures.
fn assert_csv(dir: &Path) {
    let agg = aggregated(&dir.join("run_stats.csv"));
    let count: u64 = agg["Request Count"].parse().unwrap();
    assert!(count > 0, "no requests in run_stats.csv");
    assert_eq!(agg["Failure Count"], "0");
    let history = csv_rows(&dir.join("run_stats_history.csv"));
    assert!(history.len() >= 2, "no history rows: {history:?}");
    for f in ["run_failures.csv", "run_exceptions.csv"] {
        assert!(dir.join(f).exists(), "{f}");
    }
}

/// The terminal is back: the dashboard's header is gone and Locust's
/// final tables are on the normal screen.
fn assert_restored(all: &str) {
    assert!(all.contains("Response time percentiles"), "{all}");
    let after = all.split("Response time percentiles").nth(1).unwrap();
    assert!(after.contains("Aggregated"), "{all}");
    assert!(
        !all.contains("Tab view"),
        "dashboard left on screen:\n{all}"
    );
}

#[test]
fn start_form_keys_views_help_and_quit() {
    if !have_tmux() {
        return;
    }
    let server = TestServer::start(|_| ok("hello"));
    let dir = temp_dir("dashboard-keys");
    let tmux = Tmux::start(&dir, &command(&server, &dir, "-u 5 -r 5"));

    tmux.wait_screen("the start form", |s| {
        s.contains("Start new swarm") && s.contains("READY")
    });
    tmux.keys("s");
    let s = tmux.wait_screen("RUNNING with requests", |s| {
        s.contains("RUNNING") && aggregated_requests(s) > 0
    });
    assert_eq!(users(&s), Some((5, 5)), "{s}");

    tmux.keys("+");
    let s = tmux.wait_screen("target 15 users", |s| {
        users(s).is_some_and(|(_, target)| target == 15)
    });
    assert!(s.contains("target: 15 users"), "the footer says so:\n{s}");

    tmux.keys("2");
    tmux.wait_screen("the charts", |s| {
        s.contains("Requests/s") && s.contains("p95") && s.contains("Users") && s.contains("now")
    });
    tmux.keys("?");
    tmux.wait_screen("the help", |s| {
        s.contains(" Keys ") && s.contains("q, Ctrl-C")
    });

    tmux.keys("q");
    let (code, all) = tmux.wait_exit();
    assert_eq!(code, 0, "{all}");
    assert_restored(&all);
    assert_csv(&dir);
}

#[test]
fn autostart_then_sigterm_quits_with_reports() {
    if !have_tmux() {
        return;
    }
    let server = TestServer::start(|_| ok("hello"));
    let dir = temp_dir("dashboard-sigterm");
    let tmux = Tmux::start(&dir, &command(&server, &dir, "-u 3 -r 10 --autostart"));
    tmux.wait_screen("RUNNING with requests", |s| {
        s.contains("RUNNING") && aggregated_requests(s) > 0 && !s.contains("Start new swarm")
    });
    // SAFETY: a plain kill(2) of the child we started.
    let rc = unsafe { libc::kill(tmux.child_pid(), libc::SIGTERM) };
    assert_eq!(rc, 0);
    let (code, all) = tmux.wait_exit();
    assert_eq!(code, 0, "{all}");
    assert_restored(&all);
    assert_csv(&dir);
}

#[test]
fn run_time_quits_by_itself_after_the_start() {
    if !have_tmux() {
        return;
    }
    let server = TestServer::start(|_| ok("hello"));
    let dir = temp_dir("dashboard-run-time");
    let started = Instant::now();
    let tmux = Tmux::start(
        &dir,
        &command(&server, &dir, "-u 2 -r 10 --autostart -t 3s"),
    );
    let (code, all) = tmux.wait_exit();
    assert_eq!(code, 0, "{all}");
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert!(all.contains("--run-time limit reached"), "{all}");
    assert_restored(&all);
    assert_csv(&dir);
}

#[test]
fn threshold_abort_quits_by_itself_with_exit_3() {
    if !have_tmux() {
        return;
    }
    let server = TestServer::start(|_| ok("hello"));
    let dir = temp_dir("dashboard-threshold-abort");
    // 2 users at ~20 requests/s each cross 20 requests within 2 s.
    let tmux = Tmux::start(
        &dir,
        &command(
            &server,
            &dir,
            "-u 2 -r 10 --autostart -t 60s --threshold requests\\<20 --threshold-abort",
        ),
    );
    let (code, all) = tmux.wait_exit();
    assert_eq!(code, 3, "{all}");
    assert!(
        all.contains("threshold 'requests<20' can no longer pass"),
        "{all}"
    );
    assert!(all.contains("FAIL  requests<20  (requests = "), "{all}");
    assert_restored(&all);
    assert_csv(&dir);
}

/// Whether `pid` has exited (gone, or a zombie nobody reaped yet).
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

#[test]
fn a_terminal_that_hangs_up_ends_the_run_with_reports() {
    if !have_tmux() {
        return;
    }
    let server = TestServer::start(|_| ok("hello"));
    let dir = temp_dir("dashboard-hangup");
    let tmux = Tmux::start(&dir, &command(&server, &dir, "-u 3 -r 10 --autostart"));
    tmux.wait_screen("RUNNING with requests", |s| {
        s.contains("RUNNING") && aggregated_requests(s) > 0 && !s.contains("Start new swarm")
    });
    let pid = tmux.child_pid();
    // The terminal goes away under the dashboard (an ssh session dropped).
    let _ = tmux.run(&["kill-server"]);
    let deadline = Instant::now() + tmux::WAIT;
    while !exited(pid) {
        if Instant::now() > deadline {
            // SAFETY: a plain kill(2) of the process we started, so the
            // test leaves nothing behind.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("locusta kept running after its terminal hung up");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_csv(&dir);
}
