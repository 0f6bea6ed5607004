//! The watchdog reaches Lua wherever it runs inside a user's slice, through
//! the real binary: a busy loop in a coroutine the script resumes (created
//! before the slice or in it, nested twice), in a `catch_response` block,
//! in a `request` listener, is interrupted with its file:line, the user
//! goes on, the run ends on time and counts what the server saw. A slice
//! that runs long but under the limit is not interrupted (the hook armed
//! for it finds nothing to cut), and its user's later tasks run normally.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Run `script` with one user for 3 s and a 1 s limit; the exceptions CSV,
/// the stats CSV's request count, and the server's count.
fn run(name: &str, script: &str) -> (String, u64, u64) {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir(name);
    let path = dir.join("s.lua");
    std::fs::write(&path, script).unwrap();
    let started = Instant::now();
    let out = run_bounded(
        locusta().args([
            "-f",
            path.to_str().unwrap(),
            "-H",
            &server.url(""),
            "--headless",
            "--only-summary",
            "-u",
            "1",
            "-r",
            "1",
            "-t",
            "3s",
            "--shards",
            "1",
            "--max-blocking-time",
            "1s",
            "--csv",
            dir.join("run").to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "{name}: took {took:?}: {}",
        text(&out.stderr)
    );
    let exceptions = std::fs::read_to_string(dir.join("run_exceptions.csv")).unwrap();
    let counted = aggregated(&dir.join("run_stats.csv"))["Request Count"]
        .parse()
        .unwrap();
    (exceptions, counted, server.requests().len() as u64)
}

fn assert_cut(name: &str, body: &str, line: u32) {
    let script = format!(
        "local locusta = require \"locusta\"\n\
         local U = locusta.user {{ wait_time = locusta.constant(0.05) }}\n\
         local n = 0\n{body}"
    );
    let (exceptions, counted, seen) = run(name, &script);
    assert!(
        exceptions.contains("task ran 1 s without yielding"),
        "{name}: {exceptions}"
    );
    // The loop's line, whichever thread it ran on.
    assert!(
        exceptions.contains("without yielding at "),
        "{name}: {exceptions}"
    );
    assert!(
        exceptions.contains(&format!("s.lua:{line} (--max-blocking-time)")),
        "{name}: the loop's line {line}: {exceptions}"
    );
    // Requests before and after the interruptions: the user went on.
    assert!(seen >= 3, "{name}: server saw {seen}");
    assert_eq!(counted, seen, "{name}");
}

#[test]
fn a_busy_loop_in_a_coroutine_wrap_is_cut() {
    assert_cut(
        "wd-wrap",
        "U:task(1, function(self)\n\
           self.client:get(\"/\")\n\
           n = n + 1\n\
           if n % 3 == 0 then\n\
             local f = coroutine.wrap(function() while true do end end)\n\
             f()\n\
           end\n\
         end)\n",
        8,
    );
}

#[test]
fn a_busy_loop_in_a_coroutine_made_at_load_and_resumed_in_a_task_is_cut() {
    assert_cut(
        "wd-resume",
        "local co = coroutine.create(function()\n\
           while true do coroutine.yield() end\n\
         end)\n\
         local spin = coroutine.create(function()\n\
           local x = 0\n\
           while true do x = x + 1 end\n\
         end)\n\
         U:task(1, function(self)\n\
           self.client:get(\"/\")\n\
           coroutine.resume(co)\n\
           n = n + 1\n\
           if n == 3 then\n\
             local ok, err = coroutine.resume(spin)\n\
             error(err, 0)\n\
           end\n\
         end)\n",
        9,
    );
}

#[test]
fn a_busy_loop_two_coroutines_deep_is_cut() {
    assert_cut(
        "wd-deep",
        "U:task(1, function(self)\n\
           self.client:get(\"/\")\n\
           n = n + 1\n\
           if n % 3 == 0 then\n\
             coroutine.wrap(function()\n\
               coroutine.wrap(function() while true do end end)()\n\
             end)()\n\
           end\n\
         end)\n",
        9,
    );
}

#[test]
fn a_busy_loop_in_a_catch_response_block_is_cut() {
    assert_cut(
        "wd-catch",
        "U:task(1, function(self)\n\
           n = n + 1\n\
           self.client:get(\"/\", { catch_response = true }, function(r)\n\
             if n % 3 == 0 then while true do end end\n\
           end)\n\
         end)\n",
        7,
    );
}

#[test]
fn a_busy_loop_in_a_request_listener_is_cut() {
    assert_cut(
        "wd-listener",
        "locusta.events.request:add_listener(function(t)\n\
           n = n + 1\n\
           if n % 3 == 0 then while true do end end\n\
         end)\n\
         U:task(1, function(self) self.client:get(\"/\") end)\n",
        6,
    );
}

#[test]
fn a_long_slice_under_the_limit_is_not_cut_and_the_user_goes_on() {
    let script = "local locusta = require \"locusta\"\n\
         local U = locusta.user { wait_time = locusta.constant(0.05) }\n\
         local n = 0\n\
         U:task(1, function(self)\n\
           self.client:get(\"/\")\n\
           n = n + 1\n\
           if n == 2 then\n\
             local t = os.clock()\n\
             local x = 0\n\
             while os.clock() - t < 0.4 do x = x + 1 end\n\
           end\n\
         end)\n";
    let (exceptions, counted, seen) = run("wd-long", script);
    assert_eq!(
        exceptions.lines().count(),
        1,
        "no exception, only the CSV header: {exceptions}"
    );
    // 3 s at one request per ~50 ms, minus the 0.4 s slice.
    assert!(seen >= 10, "server saw {seen}");
    assert_eq!(counted, seen);
}
