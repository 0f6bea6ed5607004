//! How Lua users end, through the real binary against a recording server:
//! every user's `on_stop` runs when the run stops — also when users are
//! killed (`-s 0`, or at the `--stop-timeout` deadline: the request or
//! sleep in progress is interrupted first), and its requests are in the
//! final stats (Locust 2.47's `User.run`/`Runner.stop_users`).
//! `self:stop()` and `error(locusta.StopUser)` end one user (on_stop runs,
//! it is not restarted).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// Request count per stats name from a `_stats.csv` (Aggregated excluded).
fn counted(dir: &Path, name: &str) -> u64 {
    csv_rows(&dir.join("run_stats.csv"))[1..]
        .iter()
        .find(|r| r[1] == name)
        .map(|r| r[2].parse().unwrap())
        .unwrap_or(0)
}

fn seen(server: &TestServer, path: &str) -> usize {
    let line = format!("GET {path} ");
    server
        .requests()
        .iter()
        .filter(|r| r.starts_with(&line))
        .count()
}

/// Run `script` headless with these extra flags; the run dir and stderr.
fn run(
    name: &str,
    server: &TestServer,
    script: &str,
    extra: &[&str],
) -> (std::path::PathBuf, String) {
    let dir = temp_dir(name);
    let path = dir.join("s.lua");
    std::fs::write(&path, script).unwrap();
    let prefix = dir.join("run");
    let out = run_bounded(
        locusta()
            .args([
                "-f",
                path.to_str().unwrap(),
                "-H",
                &server.url(""),
                "--headless",
                "--only-summary",
                "--shards",
                "2",
                "--csv",
                prefix.to_str().unwrap(),
            ])
            .args(extra),
        Duration::from_secs(90),
    );
    let stderr = text(&out.stderr);
    assert!(text(&out.stdout).contains("Aggregated"), "{stderr}");
    (dir, stderr)
}

/// 20 users log in, then sit in a task that sleeps far longer than the run.
const LOGOUT: &str = r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0) }
function U:on_start() self.client:get("/login") end
U:task(1, function(self)
  self.client:get("/work")
  locusta.sleep(60)
end)
function U:on_stop() self.client:get("/logout") end
"#;

#[test]
fn killed_users_run_on_stop_and_it_is_counted() {
    let server = TestServer::start(|_| ok("x"));
    // -s 0 (the default): users are killed at once, mid-sleep.
    let (dir, _) = run(
        "stop-kill-now",
        &server,
        LOGOUT,
        &["-u", "20", "-r", "100", "-t", "2s"],
    );
    assert_eq!(seen(&server, "/login"), 20);
    assert_eq!(seen(&server, "/logout"), 20, "every user logs out");
    assert_eq!(counted(&dir, "/logout"), 20, "and each logout is counted");
    assert_eq!(counted(&dir, "/work"), 20);
}

#[test]
fn users_killed_at_the_stop_timeout_run_on_stop() {
    let server = TestServer::start(|_| ok("x"));
    let (dir, stderr) = run(
        "stop-kill-deadline",
        &server,
        LOGOUT,
        &["-u", "20", "-r", "100", "-t", "2s", "-s", "2"],
    );
    assert_eq!(seen(&server, "/logout"), 20, "every user logs out");
    assert_eq!(counted(&dir, "/logout"), 20);
    assert!(
        stderr.contains(
            "Not all users finished their tasks & terminated in 2 seconds. Stopping them..."
        ),
        "{stderr}"
    );
}

#[test]
fn a_request_in_flight_is_interrupted_then_on_stop_runs() {
    // /slow never answers: the kill interrupts it (not counted, as in
    // Locust), on_stop's request goes out and is counted.
    let server = TestServer::start(|path| {
        if path == "/slow" {
            Reply::Hang
        } else {
            ok("x")
        }
    });
    let script = r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0) }
U:task(1, function(self) self.client:get("/slow") end)
function U:on_stop() self.client:get("/logout") end
"#;
    let (dir, _) = run(
        "stop-in-flight",
        &server,
        script,
        &["-u", "6", "-r", "100", "-t", "1s"],
    );
    assert_eq!(seen(&server, "/logout"), 6);
    assert_eq!(counted(&dir, "/logout"), 6);
    assert_eq!(counted(&dir, "/slow"), 0);
}

#[test]
fn a_hanging_on_stop_is_bounded() {
    // on_stop's request never gets an answer: the run still ends (the
    // overall bound after a kill), with the report.
    let server = TestServer::start(|path| {
        if path == "/logout" {
            Reply::Hang
        } else {
            ok("x")
        }
    });
    let script = r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0.5) }
U:task(1, function(self) self.client:get("/work") end)
function U:on_stop() self.client:get("/logout") end
"#;
    let started = std::time::Instant::now();
    let (dir, _) = run(
        "stop-hanging",
        &server,
        script,
        &["-u", "4", "-r", "100", "-t", "1s"],
    );
    assert!(counted(&dir, "/work") >= 4);
    assert_eq!(seen(&server, "/logout"), 4);
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn stop_user_ends_one_user_with_on_stop_and_no_restart() {
    let server = TestServer::start(|_| ok("x"));
    let script = r#"
local locusta = require "locusta"
local A = locusta.user { wait_time = locusta.constant(0.05) }
A:task(1, function(self)
  self.client:get("/a")
  self:stop()
  self.client:get("/a-after")
end)
function A:on_stop() self.client:get("/a-stop") end
local B = locusta.user { wait_time = locusta.constant(0.05) }
B:task(1, function(self)
  self.client:get("/b")
  error(locusta.StopUser)
end)
function B:on_stop() self.client:get("/b-stop") end
"#;
    let (dir, _) = run(
        "stop-user",
        &server,
        script,
        &["-u", "4", "-r", "100", "-t", "2s"],
    );
    // self:stop() lets the task finish (Locust's User.stop()); StopUser
    // ends it at once. Each user runs its task once and on_stop once.
    assert_eq!(seen(&server, "/a"), 2);
    assert_eq!(seen(&server, "/a-after"), 2);
    assert_eq!(seen(&server, "/a-stop"), 2);
    assert_eq!(seen(&server, "/b"), 2);
    assert_eq!(seen(&server, "/b-stop"), 2);
    assert_eq!(counted(&dir, "/b-stop"), 2);
    let ex = std::fs::read_to_string(dir.join("run_exceptions.csv")).unwrap();
    assert_eq!(ex.lines().count(), 1, "StopUser is not an error: {ex}");
}
