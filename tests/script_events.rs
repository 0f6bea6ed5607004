//! Requests a script times itself, through the real binary:
//! `locusta.events.request:fire{...}` and `locusta.measure` make stats rows
//! (custom request types, percentiles, failures with the message) in the
//! CSV files exactly like HTTP requests, every `request` listener runs for
//! them, and bad fields (or hostile amounts: 1,000 request types, giant
//! names) are Lua errors naming the script's file:line.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

fn write_script(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// One user on one shard for `secs`, headless, CSV under `<dir>/r_*`.
fn run_one_user(dir: &Path, script: &str, secs: u32) -> std::process::Output {
    let prefix = dir.join("r");
    run_bounded(
        locusta()
            .args(["-f", script, "-H", "http://127.0.0.1:1", "--headless"])
            .args(["--only-summary", "-u", "1", "-r", "10", "--shards", "1"])
            .args(["-t", &format!("{secs}s"), "--csv", prefix.to_str().unwrap()]),
        Duration::from_secs(60),
    )
}

fn row<'a>(rows: &'a [Vec<String>], kind: &str, name: &str) -> &'a Vec<String> {
    rows.iter()
        .find(|r| r[0] == kind && r[1] == name)
        .unwrap_or_else(|| panic!("no row {kind} {name} in {rows:?}"))
}

#[test]
fn fired_and_measured_requests_are_rows_with_percentiles_and_failures() {
    let dir = temp_dir("events-fire");
    let counts = dir.join("counts.txt");
    let script = write_script(
        &dir,
        "fire.lua",
        &format!(
            r#"
local locusta = require "locusta"
local seen, seen_failed, lengths = 0, 0, 0
locusta.events.request:add_listener(function(r)
  seen = seen + 1
  if r.exception then seen_failed = seen_failed + 1 end
  lengths = lengths + (r.response_length or 0)
end)
locusta.events.test_stop:add_listener(function()
  local f = assert(io.open({counts:?}, "w"))
  f:write(seen, " ", seen_failed, " ", lengths, " ", locusta.stats:get("send chat", "WS").num_requests)
  f:close()
end)
local U = locusta.user {{ wait_time = locusta.constant(0) }}
local n = 0
U:task(function(self)
  n = n + 1
  if n > 100 then locusta.sleep(0.05) return end
  locusta.events.request:fire{{ request_type = "WS", name = "send chat", response_time = n, response_length = 10 }}
  if n % 10 == 0 then
    locusta.events.request:fire{{ request_type = "WS", name = "send chat", response_time = 5.5, exception = "socket closed" }}
  end
  local v = locusta.measure("TCP", "echo", function(meta)
    locusta.sleep(0.002)
    meta.response_length = 3
    return "reply", 2
  end)
  assert(v == "reply")
  local r = locusta.measure("TCP", "no echo", function() error("connection reset") end)
  assert(r == nil)
end)
"#
        ),
    );
    let out = run_one_user(&dir, &script, 3);
    let stderr = text(&out.stderr);
    // Failed requests: exit code 1 (--exit-code-on-error).
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let stats = csv_rows(&dir.join("r_stats.csv"));
    let header = &stats[0];
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let ws = row(&stats, "WS", "send chat");
    assert_eq!(ws[col("Request Count")], "110", "{ws:?}");
    assert_eq!(ws[col("Failure Count")], "10", "{ws:?}");
    assert_eq!(ws[col("Max Response Time")], "100", "{ws:?}");
    assert_eq!(ws[col("Min Response Time")], "1", "{ws:?}");
    // 110 times: 1..=100 and ten of 5.5 ms; the median is the 55th: 45.
    let median: f64 = ws[col("50%")].parse().unwrap();
    assert!((44.9..=45.1).contains(&median), "{ws:?}");
    assert_eq!(ws[col("100%")], "100", "{ws:?}");
    let echo = row(&stats, "TCP", "echo");
    assert_eq!(echo[col("Request Count")], "100", "{echo:?}");
    assert_eq!(echo[col("Failure Count")], "0", "{echo:?}");
    assert_eq!(echo[col("Average Content Size")], "3", "{echo:?}");
    let min: f64 = echo[col("Min Response Time")].parse().unwrap();
    assert!(min >= 2.0, "the block's sleep is timed: {echo:?}");
    let failed = row(&stats, "TCP", "no echo");
    assert_eq!(failed[col("Request Count")], "100", "{failed:?}");
    assert_eq!(failed[col("Failure Count")], "100", "{failed:?}");

    let failures = csv_rows(&dir.join("r_failures.csv"));
    let ws_fail = row(&failures, "WS", "send chat");
    assert_eq!(ws_fail[2], "socket closed");
    assert_eq!(ws_fail[3], "10");
    let reset = row(&failures, "TCP", "no echo");
    assert!(
        reset[2].ends_with("fire.lua:29: connection reset"),
        "the measured error's message names file:line: {reset:?}"
    );
    assert_eq!(reset[3], "100");
    // measure swallows the error: nothing in the exceptions table.
    let exceptions = std::fs::read_to_string(dir.join("r_exceptions.csv")).unwrap();
    assert_eq!(exceptions.lines().count(), 1, "{exceptions}");

    // Every request listener ran once per fired/measured request.
    let counts = std::fs::read_to_string(&counts).unwrap();
    assert_eq!(
        counts,
        // The last: locusta.stats reads the custom type's row.
        format!("310 110 {} 110", 100 * 10 + 100 * 3),
        "{stderr}"
    );
}

#[test]
fn bad_fire_calls_are_lua_errors_naming_the_script_line() {
    let dir = temp_dir("events-bad");
    let found = dir.join("errors.txt");
    let script = write_script(
        &dir,
        "bad.lua",
        &format!(
            r#"
local locusta = require "locusta"
local out = assert(io.open({found:?}, "w"))
local function try(label, t)
  local ok, err = pcall(locusta.events.request.fire, locusta.events.request, t)
  out:write(label, "\t", ok and "ok" or tostring(err), "\n")
end
locusta.events.test_start:add_listener(function()
  try("no name", {{ request_type = "WS", response_time = 1 }})
  try("negative", {{ request_type = "WS", name = "n", response_time = -1 }})
  try("nan", {{ request_type = "WS", name = "n", response_time = 0/0 }})
  try("inf", {{ request_type = "WS", name = "n", response_time = math.huge }})
  try("string time", {{ request_type = "WS", name = "n", response_time = "1" }})
  try("giant name", {{ request_type = "WS", name = string.rep("x", 100000), response_time = 1 }})
  try("giant type", {{ request_type = string.rep("T", 1000), name = "n", response_time = 1 }})
  try("control type", {{ request_type = "W\nS", name = "n", response_time = 1 }})
  try("bad length", {{ request_type = "WS", name = "n", response_time = 1, response_length = -5 }})
  try("not a table", "WS")
  try("table exception", {{ request_type = "WS", name = "n", response_time = 1, exception = {{}} }})
  try("giant exception", {{ request_type = "WS", name = "long", response_time = 1, exception = string.rep("e", 100000) }})
  local accepted, refused, last = 0, 0
  for i = 1, 1000 do
    local ok, err = pcall(locusta.events.request.fire, locusta.events.request,
      {{ request_type = "T" .. i, name = "many", response_time = 1 }})
    if ok then accepted = accepted + 1 else refused = refused + 1; last = err end
  end
  out:write("many\t", accepted, " ", refused, " ", tostring(last), "\n")
  local ok, err = pcall(locusta.measure, "WS", nil, function() end)
  out:write("measure\t", ok and "ok" or tostring(err), "\n")
  out:close()
end)
local U = locusta.user {{ wait_time = locusta.constant(0.05) }}
U:task(function(self) end)
"#
        ),
    );
    let out = run_one_user(&dir, &script, 1);
    let stderr = text(&out.stderr);
    assert!(out.status.code().is_some(), "no crash: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let text = std::fs::read_to_string(&found).unwrap();
    let result = |label: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{label}\t")))
            .unwrap_or_else(|| panic!("no {label} in {text}"))
            .to_string()
    };
    for (label, line, says) in [
        ("no name", 5, "name must be a non-empty string (got a nil)"),
        (
            "negative",
            5,
            "response_time must be from 0 to 3600000 ms (got -1)",
        ),
        ("nan", 5, "response_time must be from 0 to 3600000 ms"),
        (
            "inf",
            5,
            "response_time must be from 0 to 3600000 ms (got inf)",
        ),
        (
            "string time",
            5,
            "response_time must be a number of milliseconds",
        ),
        ("giant name", 5, "name is 100000 bytes long (at most 8192)"),
        (
            "giant type",
            5,
            "request type is 1000 bytes long (at most 32)",
        ),
        ("control type", 5, "request type must be printable ASCII"),
        (
            "bad length",
            5,
            "response_length must be an integer >= 0 (got -5)",
        ),
        (
            "not a table",
            5,
            "fire expects a table of fields (got \"WS\")",
        ),
    ] {
        let got = result(label);
        assert!(
            got.starts_with(&format!("{}:{line}: ", script)) && got.contains(says),
            "{label}: {got}"
        );
    }
    assert_eq!(result("table exception"), "ok");
    assert_eq!(result("giant exception"), "ok");
    let many = result("many");
    let (accepted, rest) = many.split_once(' ').unwrap();
    let accepted: usize = accepted.parse().unwrap();
    // 64 custom types per process; "WS" took one.
    assert_eq!(accepted, 63, "{many}");
    assert!(
        rest.starts_with("937 ") && rest.contains("too many request types"),
        "{many}"
    );
    let measure = result("measure");
    assert!(
        measure.starts_with(&format!("{script}:28: locusta.measure")),
        "{measure}"
    );

    // The giant exception is cut to 1 KiB in the failures table.
    let failures = csv_rows(&dir.join("r_failures.csv"));
    let long = row(&failures, "WS", "long");
    assert_eq!(long[2].len(), 1024, "{long:?}");
    let stats = csv_rows(&dir.join("r_stats.csv"));
    let custom = stats[1..].iter().filter(|r| r[0].starts_with('T')).count();
    assert_eq!(custom, 63);
}

#[test]
fn every_event_fires_when_and_as_often_as_documented() {
    let dir = temp_dir("events-all");
    let log = dir.join("events.log");
    let script = write_script(
        &dir,
        "events.lua",
        &format!(
            r#"
local locusta = require "locusta"
local f = assert(io.open({log:?}, "a"))
local function log(...) f:write(table.concat({{...}}, " "), "\n"); f:flush() end
locusta.events.init:add_listener(function() log("init") end)
locusta.events.test_start:add_listener(function() log("test_start") end)
locusta.events.spawning_complete:add_listener(function(n) log("spawning_complete", n) end)
locusta.events.reset_stats:add_listener(function() log("reset_stats") end)
locusta.events.user_error:add_listener(function(user, err, tb)
  log("user_error", type(user), err, tostring(tb:find("stack traceback", 1, true) ~= nil))
end)
locusta.events.test_stop:add_listener(function() log("test_stop") end)
locusta.events.quitting:add_listener(function() log("quitting") end)
local U = locusta.user {{ wait_time = locusta.constant(0.1) }}
U:task(function(self) error("boom") end)
"#
        ),
    );
    let prefix = dir.join("r");
    let out = run_bounded(
        locusta()
            .args(["-f", &script, "-H", "http://127.0.0.1:1", "--headless"])
            .args(["--only-summary", "-u", "3", "-r", "100", "--shards", "2"])
            .args([
                "-t",
                "2s",
                "--reset-stats",
                "--csv",
                prefix.to_str().unwrap(),
            ]),
        Duration::from_secs(60),
    );
    let stderr = text(&out.stderr);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let once: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.starts_with("user_error"))
        .collect();
    // Once per process each (two shards, two Lua states), in run order.
    assert_eq!(
        once,
        [
            "init",
            "test_start",
            "spawning_complete 3",
            "reset_stats",
            "test_stop",
            "quitting"
        ],
        "{text}\n{stderr}"
    );
    // user_error: once per task error, in the state where it happened.
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("user_error"))
        .collect();
    let want = format!("user_error table {script}:15: boom true");
    assert!(errors.iter().all(|l| *l == want), "{errors:?}");
    let exceptions = csv_rows(&dir.join("r_exceptions.csv"));
    // Counted after the reset only; the listener saw every one.
    let counted: usize = exceptions[1][0].parse().unwrap();
    assert!(
        counted >= 3 && errors.len() >= counted,
        "{counted} {}",
        errors.len()
    );
}
