//! Scripts that misbehave, through the real binary: a busy loop (in a
//! task, on_start, test_stop) is interrupted and the run ends on time and
//! on SIGTERM with its requests counted (also when the script catches the
//! interruption's error in a loop); `os.exit(n)` / `locusta.quit(n)`
//! stop the run cleanly and exit with n; an endless response body fails
//! as `body larger than …` with RSS bounded; a script that allocates
//! without bound gets `not enough memory`.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

#[path = "common/http_server.rs"]
mod http_server;

fn write_script(dir: &Path, text: &str) -> String {
    let path = dir.join("s.lua");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn exceptions_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("run_exceptions.csv")).unwrap()
}

/// Requests counted in the final stats CSV.
fn counted(dir: &Path) -> u64 {
    aggregated(&dir.join("run_stats.csv"))["Request Count"]
        .parse()
        .unwrap()
}

fn csv_arg(dir: &Path) -> String {
    dir.join("run").to_str().unwrap().to_string()
}

const BUSY_TASK: &str = r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0.05) }
local n = 0
U:task(1, function(self)
  self.client:get("/")
  n = n + 1
  if n >= 5 then while true do end end
end)
"#;

#[test]
fn busy_loop_in_a_task_is_interrupted_and_the_run_ends_on_time() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("busy-task");
    let script = write_script(&dir, BUSY_TASK);
    let started = Instant::now();
    let out = run_bounded(
        locusta().args([
            "-f",
            &script,
            "-H",
            &server.url(""),
            "--headless",
            "--only-summary",
            "-u",
            "1",
            "-r",
            "1",
            "-t",
            "4s",
            "--shards",
            "1",
            "--max-blocking-time",
            "1s",
            "--csv",
            &csv_arg(&dir),
        ]),
        Duration::from_secs(60),
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "took {took:?}: {}",
        text(&out.stderr)
    );
    let exceptions = exceptions_text(&dir);
    assert!(
        exceptions.contains("task ran 1 s without yielding"),
        "{exceptions}"
    );
    assert!(
        exceptions.contains("s.lua:8"),
        "the loop's line: {exceptions}"
    );
    // The user went on after each interruption: more than one task ran
    // after the first loop, and every request the server saw is counted.
    let seen = server.requests().len() as u64;
    assert!(seen >= 5, "server saw {seen}");
    assert_eq!(counted(&dir), seen);
    assert_eq!(out.status.code(), Some(1), "exceptions fail the run");
}

fn sigterm_after(
    script: &str,
    host: &str,
    dir: &Path,
    after: Duration,
) -> (std::process::Output, Duration) {
    let child = locusta()
        .args([
            "-f",
            script,
            "-H",
            host,
            "--headless",
            "--only-summary",
            "-u",
            "1",
            "-r",
            "1",
            "--shards",
            "1",
            "--csv",
            &csv_arg(dir),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let signalled = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = wait_bounded(child, Duration::from_secs(30));
    (out, signalled.elapsed())
}

#[test]
fn busy_on_start_ends_on_sigterm_with_the_requests_before_it_counted() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("busy-on-start");
    let script = write_script(
        &dir,
        r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(1) }
function U:on_start()
  self.client:get("/before")
  self.client:get("/before")
  while true do end
end
U:task(1, function(self) end)
"#,
    );
    // The default bound (5 s) is longer than the run: the stop interrupts it.
    let (out, took) = sigterm_after(&script, &server.url(""), &dir, Duration::from_secs(2));
    assert!(
        took < Duration::from_secs(10),
        "stop took {took:?}: {}",
        text(&out.stderr)
    );
    assert_eq!(counted(&dir), 2, "{}", text(&out.stdout));
    let exceptions = exceptions_text(&dir);
    assert!(exceptions.contains("the run is stopping"), "{exceptions}");
}

#[test]
fn a_busy_loop_that_catches_the_watchdogs_error_still_ends_on_sigterm() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("busy-pcall");
    let script = write_script(
        &dir,
        r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0.05) }
local n = 0
U:task(1, function(self)
  self.client:get("/")
  n = n + 1
  if n == 3 then
    while true do pcall(function() while true do end end) end
  end
end)
"#,
    );
    // Every interruption is caught by the pcall: the stop's second one
    // suspends the coroutine (no pcall catches that) and drops the user.
    let (out, took) = sigterm_after(&script, &server.url(""), &dir, Duration::from_secs(2));
    assert!(
        took < Duration::from_secs(10),
        "stop took {took:?}: {}",
        text(&out.stderr)
    );
    assert_eq!(counted(&dir), 3, "{}", text(&out.stdout));
    assert_eq!(server.requests().len(), 3);
    let exceptions = exceptions_text(&dir);
    assert!(
        exceptions.contains("kept running after its error was caught: abandoned"),
        "{exceptions}"
    );
}

#[test]
fn busy_test_stop_listener_is_interrupted_and_reports_are_written() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("busy-test-stop");
    let script = write_script(
        &dir,
        r#"
local locusta = require "locusta"
locusta.events.test_stop:add_listener(function() while true do end end)
local U = locusta.user { wait_time = locusta.constant(0.2) }
U:task(1, function(self) self.client:get("/") end)
"#,
    );
    let started = Instant::now();
    let out = run_bounded(
        locusta().args([
            "-f",
            &script,
            "-H",
            &server.url(""),
            "--headless",
            "--only-summary",
            "-u",
            "1",
            "-r",
            "1",
            "-t",
            "2s",
            "--shards",
            "1",
            "--max-blocking-time",
            "1s",
            "--csv",
            &csv_arg(&dir),
        ]),
        Duration::from_secs(60),
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(text(&out.stdout).contains("Aggregated"));
    let seen = server.requests().len() as u64;
    assert!(seen >= 2);
    assert_eq!(counted(&dir), seen);
    let exceptions = exceptions_text(&dir);
    assert!(
        exceptions.contains("without yielding") || exceptions.contains("the run is stopping"),
        "{exceptions}"
    );
}

fn quit_run(body: &str, name: &str) -> (std::process::Output, std::path::PathBuf, usize) {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir(name);
    let script = write_script(
        &dir,
        &format!(
            r#"
local locusta = require "locusta"
local U = locusta.user {{ wait_time = locusta.constant(0.05) }}
local n = 0
U:task(1, function(self)
  self.client:get("/")
  n = n + 1
  if n == 10 then {body} end
end)
"#
        ),
    );
    let out = run_bounded(
        locusta().args([
            "-f",
            &script,
            "-H",
            &server.url(""),
            "--headless",
            "--only-summary",
            "-u",
            "1",
            "-r",
            "1",
            "-t",
            "30s",
            "--shards",
            "1",
            "--csv",
            &csv_arg(&dir),
        ]),
        Duration::from_secs(25),
    );
    let seen = server.requests().len();
    (out, dir, seen)
}

#[test]
fn os_exit_stops_the_run_writes_reports_and_exits_with_its_code() {
    let (out, dir, seen) = quit_run("os.exit(3)", "os-exit");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Aggregated"));
    assert_eq!(seen, 10);
    assert_eq!(counted(&dir), 10);
    assert!(
        !exceptions_text(&dir).contains("quit"),
        "quit is not an exception"
    );
}

#[test]
fn locusta_quit_stops_the_run_and_exits_with_its_code() {
    let (out, dir, seen) = quit_run("locusta.quit(4)", "locusta-quit");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(counted(&dir), seen as u64);
    assert_eq!(seen, 10);
}

fn vm_rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn endless_chunked_body_fails_as_too_large_with_memory_bounded() {
    let server = http_server::TestServer::serve(|conn, _req| {
        if !conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") {
            return false;
        }
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "z".repeat(64 * 1024));
        // Until the client goes away (bounded: 4 GiB).
        for _ in 0..65_536 {
            if !conn.write(chunk.as_bytes()) {
                break;
            }
        }
        false
    });
    let dir = temp_dir("endless-body");
    let script = write_script(
        &dir,
        r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0.1) }
U:task(1, function(self) self.client:get("/big") end)
"#,
    );
    let host = format!("http://{}", server.addr);
    let child = locusta()
        .args([
            "-f",
            &script,
            "-H",
            &host,
            "--headless",
            "--only-summary",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "4s",
            "--shards",
            "1",
            "--max-body-size",
            "4MiB",
            "--csv",
            &csv_arg(&dir),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        peak = peak.max(vm_rss_kb(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = wait_bounded(child, Duration::from_secs(30));
    assert!(peak < 200_000, "RSS peaked at {peak} kB");
    let failures = std::fs::read_to_string(dir.join("run_failures.csv")).unwrap();
    assert!(
        failures.contains("body larger than 4 MiB"),
        "{failures}\n{}",
        text(&out.stderr)
    );
    // Each exchange was abandoned at the limit, so several completed in 4 s.
    assert!(counted(&dir) >= 4, "{}", counted(&dir));
}

#[test]
fn a_script_allocating_without_bound_gets_not_enough_memory() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("lua-oom");
    let script = write_script(
        &dir,
        r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0.1) }
U:task(1, function(self)
  self.client:get("/")
  local t = {}
  for i = 1, math.huge do t[i] = string.rep("x", 65536) .. i end
end)
"#,
    );
    let out = run_bounded(
        locusta().args([
            "-f",
            &script,
            "-H",
            &server.url(""),
            "--headless",
            "--only-summary",
            "-u",
            "1",
            "-r",
            "1",
            "-t",
            "5s",
            "--shards",
            "1",
            "--lua-memory-limit",
            "48MiB",
            "--csv",
            &csv_arg(&dir),
        ]),
        Duration::from_secs(60),
    );
    let exceptions = exceptions_text(&dir);
    assert!(
        exceptions.contains("not enough memory"),
        "{exceptions}\n{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("Aggregated"));
    // A request in flight when -t stops the user is killed and, as in
    // Locust, not counted: at most one (one user).
    let (counted, arrived) = (counted(&dir), server.requests().len() as u64);
    assert!(
        counted <= arrived && arrived <= counted + 1,
        "{counted} counted, {arrived} arrived"
    );
}

#[test]
fn a_json_body_larger_than_the_lua_heap_limit_is_not_enough_memory_and_the_user_goes_on() {
    // r:json() builds its tables under the heap limit: past it, the call
    // raises Lua's "not enough memory" at the script's line, the half-built
    // value is collected, and the next decode of a small body works.
    // 400,000 distinct strings (Lua interns equal short ones): ~14 MiB of
    // text, ~32 MiB of Lua strings and table slots.
    let items: Vec<String> = (0..400_000)
        .map(|i| format!("\"{i:08}abcdefghijklmnopqrstuvwxyz\""))
        .collect();
    let big = format!("[{}]", items.join(","));
    let server = TestServer::start(move |req| {
        if req.contains("/big") {
            ok(&big)
        } else {
            ok(r#"{"ok":true}"#)
        }
    });
    let dir = temp_dir("json-oom");
    let script = write_script(
        &dir,
        r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0.1) }
U:task(1, function(self)
  local ok, err = pcall(function() return self.client:get("/big"):json() end)
  if ok then error("the big body decoded under the limit") end
  if not tostring(err):find("not enough memory", 1, true) then error("unexpected: " .. tostring(err)) end
  if self.client:get("/small"):json().ok ~= true then error("small body failed") end
  error("big body refused")
end)
"#,
    );
    let out = run_bounded(
        locusta().args([
            "-f",
            &script,
            "-H",
            &server.url(""),
            "--headless",
            "--only-summary",
            "-u",
            "1",
            "-r",
            "1",
            "-t",
            "4s",
            "-s",
            "10",
            "--shards",
            "1",
            "--lua-memory-limit",
            "24MiB",
            "--csv",
            &csv_arg(&dir),
        ]),
        Duration::from_secs(60),
    );
    let exceptions = exceptions_text(&dir);
    assert!(
        exceptions.contains("big body refused"),
        "{exceptions}\n{}",
        text(&out.stderr)
    );
    for bad in [
        "decoded under the limit",
        "unexpected:",
        "small body failed",
    ] {
        assert!(!exceptions.contains(bad), "{exceptions}");
    }
    let (counted, arrived) = (counted(&dir), server.requests().len() as u64);
    assert_eq!(counted, arrived);
    assert!(counted >= 4, "{counted} requests");
}
