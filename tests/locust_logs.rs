//! The log lines Locust users grep for, on the real binary: `All users
//! spawned` per class, `Shutting down (exit code N)`, what `-L DEBUG` adds
//! (users, connections, spawn decisions), `--logfile`, and `--reset-stats`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(30);

/// Three classes at 9:3:2, so 14 users split exactly 9, 3 and 2.
const THREE_CLASSES: &str = r#"
local locusta = require "locusta"
for _, c in ipairs({ { "Shop", 9 }, { "Browse", 3 }, { "Admin", 2 } }) do
  local U = locusta.user { name = c[1], weight = c[2], wait_time = locusta.constant(0.2) }
  U:task(1, function(self) self.client:get("/" .. c[1]) end)
end
"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn all_users_spawned_per_class_and_shutting_down() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("logs-spawned");
    let lua = write(&dir, "three.lua", THREE_CLASSES);
    let out = run_bounded(
        locusta()
            .args([
                "-f",
                &lua,
                "--headless",
                "-u",
                "14",
                "-r",
                "100",
                "-t",
                "2s",
            ])
            .args(["--only-summary", "-H", &server.url("")]),
        LIMIT,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            r#"INFO/locusta: All users spawned: {"Admin": 2, "Browse": 3, "Shop": 9} (14 total users)"#
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("INFO/locusta: Shutting down (exit code 0)"),
        "{stderr}"
    );
    // No DEBUG lines at the default level.
    assert!(!stderr.contains("DEBUG/"), "{stderr}");

    // A failing run says its exit code too.
    let url = format!("http://127.0.0.1:{}/", dead_port());
    let out = run_bounded(
        locusta().args(["--headless", "-u", "1", "-t", "1s", "--only-summary", &url]),
        LIMIT,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Shutting down (exit code 1)"), "{stderr}");
    assert!(
        stderr.contains(r#"All users spawned: {"raw": 1} (1 total users)"#),
        "{stderr}"
    );
}

#[test]
fn debug_shows_users_connections_and_spawn_decisions() {
    // The server closes after each reply: every request is a connection.
    let server = TestServer::start(|_| {
        Reply::BytesThenClose(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx".to_vec())
    });
    // Paced users: a handful of connections, so the log stays small (the
    // test reads stderr only at the end, through a pipe of limited size).
    let dir = temp_dir("logs-debug");
    let lua = write(
        &dir,
        "paced.lua",
        r#"
local locusta = require "locusta"
local U = locusta.user { name = "Paced", wait_time = locusta.constant(0.3) }
U:task(1, function(self) self.client:get("/x") end)
"#,
    );
    let out = run_bounded(
        locusta()
            .args(["-f", &lua, "--headless", "-u", "2", "-r", "100", "-t", "1s"])
            .args(["--shards", "1", "--only-summary", "-L", "DEBUG"])
            .args(["-H", &server.url("")]),
        LIMIT,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let addr = server.addr.to_string();
    for needle in [
        r#"DEBUG/locusta: Ramping to {"Paced": 2} (2 total users)"#,
        "DEBUG/locusta: shard 0: hold [2] users per class",
        "DEBUG/locusta: shard 0: user 0 (Paced) started",
        "DEBUG/locusta: shard 0: user 1 (Paced) started",
        "DEBUG/locusta: shard 0: user 0 (Paced) stopped",
        &format!("DEBUG/locusta: connection to {addr} opened"),
        &format!("DEBUG/locusta: connection to {addr} closed"),
    ] {
        assert!(stderr.contains(needle), "`{needle}` missing in:\n{stderr}");
    }
}

#[test]
fn logfile_takes_the_log_lines() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("logs-file");
    let log = dir.join("logs/sub/run.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, "earlier line\n").unwrap();
    let out = run_bounded(
        locusta()
            .args(["--headless", "-u", "1", "-t", "1s", "--only-summary"])
            .args(["--logfile", log.to_str().unwrap(), &server.url("/")]),
        LIMIT,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let logged = std::fs::read_to_string(&log).unwrap();
    // Appended, as Python's FileHandler does.
    assert!(logged.starts_with("earlier line\n"), "{logged}");
    assert!(logged.contains("All users spawned"), "{logged}");
    assert!(logged.contains("Shutting down (exit code 0)"), "{logged}");
    assert!(!stderr.contains("All users spawned"), "{stderr}");
    // The tables stay on stdout.
    assert!(text(&out.stdout).contains("Aggregated"));

    // A missing directory is created.
    let fresh = dir.join("new/dir/run.log");
    let out = run_bounded(
        locusta()
            .args(["--headless", "-u", "1", "-t", "1s", "--only-summary"])
            .args(["--logfile", fresh.to_str().unwrap(), &server.url("/")]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(std::fs::read_to_string(&fresh)
        .unwrap()
        .contains("Shutting down"));

    // Hostile: the log file is a directory.
    let out = run_bounded(
        locusta().args(["--headless", "-u", "1", "-t", "1s"]).args([
            "--logfile",
            dir.to_str().unwrap(),
            &server.url("/"),
        ]),
        LIMIT,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot open --logfile"), "{stderr}");
}

/// One slow-spawning run: the first user runs alone for 2 s before the
/// second starts. Returns (requests locusta reports, requests served).
fn ramp_run(reset: bool) -> (u64, usize) {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir(&format!("reset-{reset}"));
    let lua = write(
        &dir,
        "one.lua",
        r#"
local locusta = require "locusta"
local U = locusta.user { name = "U", wait_time = locusta.constant(0.05) }
U:task(1, function(self) self.client:get("/x") end)
"#,
    );
    let prefix = dir.join("run");
    let mut cmd = locusta();
    cmd.args(["-f", &lua, "--headless", "-u", "2", "-r", "0.5", "-t", "3s"])
        .args(["--only-summary", "--shards", "1", "-H", &server.url("")])
        .args(["--csv", prefix.to_str().unwrap()]);
    if reset {
        cmd.arg("--reset-stats");
    }
    let out = run_bounded(&mut cmd, LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    if reset {
        let spawned = stderr.find("All users spawned").expect("spawned line");
        let reset_at = stderr
            .find("INFO/locusta: Resetting stats")
            .expect("reset line");
        assert!(reset_at > spawned, "{stderr}");
    }
    let agg = aggregated(&dir.join("run_stats.csv"));
    let reported: u64 = agg["Request Count"].parse().unwrap();
    (reported, server.requests().len())
}

#[test]
fn reset_stats_drops_the_ramp() {
    // Without it every served request is counted; with it, the first
    // user's lone 2 s (tens of requests at 50 ms apart) are not.
    let (reported, served) = ramp_run(false);
    assert!(served >= 10, "{served}");
    assert!(reported + 2 >= served as u64, "{reported} of {served}");
    let (reported, served) = ramp_run(true);
    assert!(served >= 10, "{served}");
    assert!(
        reported + 5 < served as u64,
        "--reset-stats kept the ramp: {reported} of {served}"
    );
}
