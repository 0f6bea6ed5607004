//! Locust's way of judging a run in code: a `test_stop` listener reads
//! `locusta.stats` (the final, merged stats: every shard's last requests
//! included) and sets `locusta.process_exit_code`, which becomes the exit
//! status; bad values are errors naming the script's line; and the order
//! of exit statuses (quit > process_exit_code > thresholds).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(90);

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("local locusta = require \"locusta\"\n{body}"),
    )
    .unwrap();
    path
}

/// Headless, `users` users on `shards` shards for `secs`, against `host`.
fn run(
    path: &Path,
    host: &str,
    shards: &str,
    users: &str,
    secs: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let out = run_bounded(
        locusta()
            .args(["--headless", "-u", users, "-r", "100", "-t", secs])
            .args(["--only-summary", "--shards", shards])
            .args(["-f", path.to_str().unwrap(), "-H", host])
            .args(extra),
        LIMIT,
    );
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn process_exit_code_set_in_test_stop_is_the_exit_status() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("lua-exit-5");
    let path = script(
        &dir,
        "five.lua",
        r#"local U = locusta.user { wait_time = locusta.constant(0.05) }
U:task(1, function(self) self.client:get("/") end)
locusta.events.test_stop(function()
  assert(locusta.process_exit_code == nil)
  locusta.process_exit_code = 5
end)
"#,
    );
    let (code, stdout, stderr) = run(&path, &server.url(""), "1", "1", "1s", &[]);
    assert_eq!(code, 5, "{stdout}\n{stderr}");
    assert!(stderr.contains("Shutting down (exit code 5)"), "{stderr}");
}

/// A quarter of the tasks get a 500, on two shards: only the final merge
/// knows the exact counts, and the exit status is chosen from them.
#[test]
fn test_stop_reads_the_final_stats_of_every_shard() {
    let server = TestServer::start(|path| {
        if path == "/bad" {
            status(500, "Internal Server Error")
        } else {
            ok("x")
        }
    });
    let dir = temp_dir("lua-final-stats");
    let out = dir.join("seen.txt");
    let path = script(
        &dir,
        "ratio.lua",
        &format!(
            r#"local U = locusta.user {{ wait_time = locusta.constant(0.01) }}
U:task(3, function(self) self.client:get("/good") end)
U:task(1, function(self) self.client:get("/bad") end)
-- Run when users are stopped: these requests reach the stats only with
-- each shard's very last delta.
function U:on_stop()
  for _ = 1, 3 do self.client:get("/good") end
end
locusta.events.test_stop(function()
  local t = locusta.stats.total
  local bad = locusta.stats:get("/bad", "GET")
  local good = locusta.stats:get("/good")
  local ok1, e1 = pcall(function() return t:percentile(1.5) end)
  local ok2, e2 = pcall(function() return locusta.stats:get("/good", "BREW") end)
  local f = assert(io.open({out:?}, "w"))
  f:write(t.num_requests, " ", t.num_failures, " ", bad.num_failures, " ", good.num_requests, "\n")
  f:write(tostring(locusta.stats:get("/nope")), " ", tostring(t.method == ""), " ", t.name, "\n")
  f:write(t:percentile(0.5), " ", t.median_response_time, " ", t:percentile(1), " ", t.max_response_time, "\n")
  f:write(tostring(ok1), " ", tostring(tostring(e1):find("q is a fraction from 0 to 1", 1, true) ~= nil), "\n")
  f:write(tostring(ok2), " ", tostring(tostring(e2):find('unknown method "BREW"', 1, true) ~= nil), "\n")
  f:close()
  locusta.process_exit_code = math.floor(t.fail_ratio * 100)
end)
"#,
            out = out.to_str().unwrap()
        ),
    );
    let prefix = dir.join("r");
    let (code, stdout, stderr) = run(
        &path,
        &server.url(""),
        "2",
        "4",
        "2s",
        &["--csv", prefix.to_str().unwrap()],
    );
    let agg = aggregated(&dir.join("r_stats.csv"));
    let requests: u64 = agg["Request Count"].parse().unwrap();
    let failures: u64 = agg["Failure Count"].parse().unwrap();
    let seen = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("{e}\n{stdout}\n{stderr}"));
    let lines: Vec<&str> = seen.lines().collect();
    let goods = requests - failures;
    assert!(requests > 40 && failures > 0, "{requests} {failures}");
    // What the listener saw is the final table, not shard 0's share nor
    // the stats of one second ago.
    assert_eq!(
        lines[0],
        format!("{requests} {failures} {failures} {goods}"),
        "{stdout}"
    );
    assert_eq!(lines[1], "nil true Aggregated");
    let times: Vec<f64> = lines[2].split(' ').map(|v| v.parse().unwrap()).collect();
    assert_eq!(times[0], times[1], "p50 is the median: {seen}");
    assert_eq!(times[2], times[3], "p100 is the max: {seen}");
    assert_eq!(
        lines[3], "false true",
        "percentile(1.5) is an error: {seen}"
    );
    assert_eq!(
        lines[4], "false true",
        "an unknown method is an error: {seen}"
    );
    assert_eq!(code as u64, failures * 100 / requests, "{stdout}\n{stderr}");
}

#[test]
fn bad_exit_codes_are_errors_at_the_scripts_line() {
    let dir = temp_dir("lua-exit-bad");
    for (value, shown) in [
        ("\"x\"", "\"x\""),
        ("300", "300"),
        ("1.5", "1.5"),
        ("-1", "-1"),
        ("true", "a boolean"),
    ] {
        let path = script(
            &dir,
            "bad.lua",
            &format!("local U = locusta.user {{}}\nlocusta.process_exit_code = {value}\nU:task(1, function() end)\n"),
        );
        let (code, _, stderr) = run(&path, "http://127.0.0.1:1", "1", "1", "1s", &[]);
        assert_eq!(code, 2, "{value}: {stderr}");
        let want = format!(
            "bad.lua:3: locusta.process_exit_code must be an integer from 0 to 255, or nil (got {shown})"
        );
        assert!(stderr.contains(&want), "{value}: want {want:?} in {stderr}");
    }

    // In test_stop: an exception of the run (with its line), and the
    // exit status stays what the run earned (a script error: 1).
    let server = TestServer::start(|_| ok("x"));
    let path = script(
        &dir,
        "late.lua",
        r#"local U = locusta.user { wait_time = locusta.constant(0.1) }
U:task(1, function(self) self.client:get("/") end)
locusta.events.test_stop(function()
  locusta.process_exit_code = 256
end)
"#,
    );
    let (code, stdout, stderr) = run(&path, &server.url(""), "1", "1", "1s", &[]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("late.lua:5: locusta.process_exit_code must be an integer from 0 to 255, or nil (got 256)"),
        "{stdout}"
    );
}

#[test]
fn quit_beats_process_exit_code_which_beats_thresholds() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("lua-exit-order");
    let stop = r#"locusta.events.test_stop(function() locusta.process_exit_code = 5 end)
"#;
    let plain = script(
        &dir,
        "plain.lua",
        &format!(
            "local U = locusta.user {{ wait_time = locusta.constant(0.05) }}\n\
             U:task(1, function(self) self.client:get(\"/\") end)\n{stop}"
        ),
    );
    // A failed threshold (p50 cannot be under 1 µs) gives way to the script.
    let (code, stdout, _) = run(
        &plain,
        &server.url(""),
        "1",
        "1",
        "1s",
        &["--threshold", "p50<1us"],
    );
    assert!(stdout.contains("FAIL  p50<1us"), "{stdout}");
    assert_eq!(code, 5, "{stdout}");

    let quitting = script(
        &dir,
        "quit.lua",
        &format!(
            "local U = locusta.user {{ wait_time = locusta.constant(0.05) }}\n\
             U:task(1, function(self) self.client:get(\"/\") locusta.quit(9) end)\n{stop}"
        ),
    );
    let (code, stdout, stderr) = run(
        &quitting,
        &server.url(""),
        "1",
        "1",
        "30s",
        &["--threshold", "p50<1us"],
    );
    assert_eq!(code, 9, "{stdout}\n{stderr}");
}

#[test]
fn test_stop_listeners_that_hang_are_cut() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("lua-stop-hang");
    let path = script(
        &dir,
        "hang.lua",
        r#"local U = locusta.user { wait_time = locusta.constant(0.1) }
U:task(1, function(self) self.client:get("/") end)
locusta.events.test_stop(function() while true do end end)
locusta.events.test_stop(function()
  locusta.process_exit_code = 6
  locusta.sleep(600)
end)
"#,
    );
    let (code, stdout, stderr) = run(&path, &server.url(""), "2", "1", "1s", &[]);
    // The busy loop is interrupted (the run is past its stop deadline),
    // the sleeping listener is cut at 10 s; the run still ends with its
    // reports and the code the listener set before it hung.
    assert_eq!(code, 6, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("interrupted: the run is stopping and this code has not yielded"),
        "{stdout}"
    );
    assert!(
        stderr.contains("test_stop listeners still ran after 10s: cut short"),
        "{stderr}"
    );
    assert!(stdout.contains("Aggregated"), "{stdout}");
}
