//! Script API misuse that used to give wrong numbers, through the real
//! binary: a request inside a coroutine the script created (refused with a
//! clear error, never sent uncounted), wait_time functions that return no
//! usable number or raise (an exception naming the value, and a real
//! wait), header names and values that would break the request's framing
//! (refused before anything is sent).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

fn run_script(
    name: &str,
    server: &TestServer,
    script: &str,
    secs: &str,
    users: &str,
) -> std::path::PathBuf {
    let dir = temp_dir(name);
    let path = dir.join("s.lua");
    std::fs::write(&path, script).unwrap();
    let prefix = dir.join("run");
    let out = run_bounded(
        locusta().args([
            "-f",
            path.to_str().unwrap(),
            "-H",
            &server.url(""),
            "--headless",
            "--only-summary",
            "-u",
            users,
            "-r",
            users,
            "-t",
            secs,
            "--shards",
            "1",
            "--csv",
            prefix.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    assert!(
        text(&out.stdout).contains("Aggregated"),
        "{}",
        text(&out.stderr)
    );
    dir
}

fn counted(dir: &Path) -> u64 {
    aggregated(&dir.join("run_stats.csv"))["Request Count"]
        .parse()
        .unwrap()
}

fn exceptions(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("run_exceptions.csv")).unwrap()
}

#[test]
fn a_request_inside_a_script_coroutine_is_refused_not_lost() {
    let server = TestServer::start(|_| ok("x"));
    let dir = run_script(
        "nested-coroutine",
        &server,
        r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0.2) }
U:task(1, function(self)
  self.client:get("/direct")
  local f = coroutine.wrap(function() self.client:get("/nested") end)
  f()
end)
"#,
        "2s",
        "1",
    );
    let seen = server.requests().len() as u64;
    assert!(seen >= 2);
    assert_eq!(
        counted(&dir),
        seen,
        "every request the server saw is counted"
    );
    assert!(server.requests().iter().all(|r| !r.contains("/nested")));
    let ex = exceptions(&dir);
    assert!(
        ex.contains("client:get cannot be called inside a coroutine"),
        "{ex}"
    );
}

#[test]
fn bad_wait_times_are_exceptions_and_still_wait() {
    let server = TestServer::start(|_| ok("x"));
    let dir = run_script(
        "bad-wait-time",
        &server,
        r#"
local locusta = require "locusta"
local bad = {
  function() return nil end,
  function() return "1" end,
  function() return {} end,
  function() return 0/0 end,
  function() error("no wait for you") end,
}
for i, f in ipairs(bad) do
  local U = locusta.user { name = "U" .. i, wait_time = f }
  U:task(1, function(self) self.client:get("/" .. i) end)
end
"#,
        "3s",
        "5",
    );
    // Five users, a 1 s fallback wait, 3 s: a handful each, not thousands.
    let n = counted(&dir);
    assert!((5..=30).contains(&n), "{n} requests");
    let ex = exceptions(&dir);
    for want in [
        "wait_time returned a nil",
        "wait_time returned \"\"1\"\"",
        "wait_time returned a table",
        "nan",
        "no wait for you",
    ] {
        assert!(ex.contains(want), "{want} missing: {ex}");
    }
}

#[test]
fn header_names_and_values_that_break_framing_are_refused() {
    let server = TestServer::start(|_| ok("x"));
    let dir = run_script(
        "bad-headers",
        &server,
        r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0.3) }
U:task(1, function(self)
  self.client:get("/ok", { headers = { ["X-Fine"] = "yes" } })
  pcall(function() self.client:get("/colon", { headers = { ["X-A: b"] = "1" } }) end)
  pcall(function() self.client:get("/crlf", { headers = { ["X-A\r\nX-Evil"] = "1" } }) end)
  pcall(function() self.client:get("/value", { headers = { ["X-V"] = "a\r\nX-Evil: 1" } }) end)
  self.client:get("/colon2", { headers = { ["Bad:Name"] = "1" } })
end)
"#,
        "2s",
        "1",
    );
    let requests = server.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert!(r.contains("/ok"), "only /ok may be sent: {r}");
        assert!(!r.contains("X-Evil"), "{r}");
    }
    assert_eq!(counted(&dir), requests.len() as u64);
    let ex = exceptions(&dir);
    assert!(
        ex.contains("header name \"\"Bad:Name\"\" is not allowed"),
        "{ex}"
    );
}

#[test]
fn a_request_where_lua_cannot_suspend_is_refused_with_its_line() {
    // Callbacks from C functions (table.sort's comparator, string.gsub's
    // replacement, __tostring through tostring) cannot yield: a request
    // there is a named error at the script's line, nothing is sent for it,
    // and the user carries on with its next request.
    let server = TestServer::start(|_| ok("x"));
    let dir = run_script(
        "cannot-suspend",
        &server,
        r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0.1) }
local n = 0
U:task(1, function(self)
  self.client:get("/direct")
  n = n % 3 + 1
  if n == 1 then
    table.sort({ 2, 1 }, function(a, b) self.client:get("/sort"); return a < b end)
  elseif n == 2 then
    string.gsub("a", "a", function() self.client:post("/gsub") end)
  else
    tostring(setmetatable({}, { __tostring = function() self.client:request("PUT", "/tostring") return "" end }))
  end
end)
"#,
        "2s",
        "2",
    );
    let paths: Vec<String> = server.requests();
    assert!(paths.len() >= 4, "{paths:?}");
    assert!(paths.iter().all(|r| r.contains("/direct")), "{paths:?}");
    assert_eq!(counted(&dir), paths.len() as u64);
    let ex = exceptions(&dir);
    for (line, call) in [
        (9, "client:get"),
        (11, "client:post"),
        (13, "client:request"),
    ] {
        let want = format!("s.lua:{line}: {call} cannot run here: it suspends its caller");
        assert!(ex.contains(&want), "missing {want:?} in {ex}");
    }
}
