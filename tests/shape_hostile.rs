//! Hostile and broken shapes: each ends the run cleanly, in bounded time,
//! with the script's file:line in the message. A shape that fails while
//! running (raises, returns garbage, never yields) stops the run, writes
//! every report and exits 1; a shape that cannot load (two shapes, bad
//! stages) stops before any user starts with exit 2. SIGTERM during a
//! shape run still writes the reports.

mod common;
#[path = "shape_support/mod.rs"]
mod shape_support;

use std::time::{Duration, Instant};

use common::{locusta, run_bounded, temp_dir, text};
use shape_support::{write_script, OpenServer};

const HEAD: &str = r#"local locusta = require "locusta"
local U = locusta.user { name = "U", wait_time = locusta.constant(0.2) }
U:task(function(self) self.client:get("/") end)
"#;

/// Run `body` (after HEAD) headless against `server`; (exit code, stderr,
/// seconds taken, whether the stats CSV was written).
fn run(name: &str, body: &str, server: &OpenServer, extra: &[&str]) -> (i32, String, f64, bool) {
    let dir = temp_dir(&format!("shape-hostile-{name}"));
    let script = write_script(&dir, "shape.lua", &format!("{HEAD}{body}"));
    let csv = dir.join("run");
    let t0 = Instant::now();
    let out = run_bounded(
        locusta()
            .args([
                "-f",
                script.to_str().unwrap(),
                "--headless",
                "--only-summary",
            ])
            .args(["-H", &server.url(), "--csv", csv.to_str().unwrap()])
            .args(extra),
        Duration::from_secs(30),
    );
    let took = t0.elapsed().as_secs_f64();
    let written = dir.join("run_stats.csv").exists()
        && std::fs::read_to_string(dir.join("run_stats.csv"))
            .unwrap()
            .contains("Aggregated");
    (
        out.status.code().unwrap_or(-1),
        text(&out.stderr),
        took,
        written,
    )
}

#[test]
fn a_shape_failing_while_running_ends_the_run_with_reports_and_exit_1() {
    let server = OpenServer::start();
    // (name, shape body, what the message must say); each fails at
    // run_time >= 1 so the run has started (line 5 is the function's).
    let cases = [
        (
            "raises",
            "locusta.shape(function(t)\n  if t >= 1 then error(\"boom\") end return 2, 10 end)\n",
            "shape.lua:5: boom",
        ),
        (
            "negative",
            "locusta.shape(function(t)\n  if t >= 1 then return -1, 10 end return 2, 10 end)\n",
            "users must be an integer from 0",
        ),
        (
            "nan",
            "locusta.shape(function(t)\n  if t >= 1 then return 0/0, 10 end return 2, 10 end)\n",
            "users must be an integer from 0",
        ),
        (
            "huge",
            "locusta.shape(function(t)\n  if t >= 1 then return 1e300, 10 end return 2, 10 end)\n",
            "users must be an integer from 0",
        ),
        (
            "string",
            "locusta.shape(function(t)\n  if t >= 1 then return \"ten\", 10 end return 2, 10 end)\n",
            "users must be a number (got a string \"ten\")",
        ),
        (
            "zero-rate",
            "locusta.shape(function(t)\n  if t >= 1 then return 2, 0 end return 2, 10 end)\n",
            "spawn_rate must be a number > 0",
        ),
        (
            "not-a-list",
            "locusta.shape(function(t)\n  if t >= 1 then return 2, 10, \"U\" end return 2, 10 end)\n",
            "must be a list of user class names (got a string \"U\")",
        ),
        (
            "unknown-class",
            "locusta.shape(function(t)\n  if t >= 1 then return 2, 10, {\"Nope\"} end return 2, 10 end)\n",
            "unknown user class \"Nope\" (the run has: U)",
        ),
        (
            "never-yields",
            "locusta.shape(function(t)\n  if t >= 1 then while true do end end return 2, 10 end)\n",
            "without yielding",
        ),
    ];
    for (name, body, says) in cases {
        let (code, err, took, written) = run(name, body, &server, &["--max-blocking-time", "1s"]);
        assert_eq!(code, 1, "{name}: exit code\n{err}");
        assert!(err.contains(says), "{name}: no `{says}` in\n{err}");
        assert!(
            err.contains("shape.lua:4"),
            "{name}: where the shape is declared\n{err}"
        );
        assert!(written, "{name}: reports not written\n{err}");
        // Fails at 1 s (the never-yielding one 1 s later): stopped soon.
        assert!(took < 10.0, "{name}: took {took:.1} s\n{err}");
    }
}

#[test]
fn a_shape_that_cannot_load_stops_before_any_user_with_exit_2() {
    let server = OpenServer::start();
    let cases = [
        (
            "two-shapes",
            "locusta.shape(function() return 1, 1 end)\nlocusta.stages { { duration = 1, users = 1 } }\n",
            "shape.lua:5: only one shape per script: locusta.stages here, but the script already declared one at ",
        ),
        (
            "not-a-function",
            "locusta.shape(42)\n",
            "shape.lua:4: locusta.shape takes a function",
        ),
        (
            "zero-duration",
            "locusta.stages { { duration = 0, users = 1 } }\n",
            "shape.lua:4: stage 1: duration must be a number of seconds > 0 (got 0)",
        ),
        (
            "inf-duration",
            "locusta.stages { { duration = 1, users = 1 }, { duration = math.huge, users = 2 } }\n",
            "shape.lua:4: stage 2: duration must be a number of seconds > 0",
        ),
        (
            "fractional-users",
            "locusta.stages { { duration = 1, users = 1.5 } }\n",
            "stage 1: users must be an integer >= 0 (got 1.5)",
        ),
        (
            "bad-spawn-rate",
            "locusta.stages { { duration = 1, users = 1, spawn_rate = -2 } }\n",
            "stage 1: spawn_rate must be a number > 0 (got -2)",
        ),
        (
            "negative-rate",
            "locusta.stages { { duration = 1, rate = -1 } }\n",
            "stage 1: rate must be a number of iterations per second",
        ),
        (
            "unknown-field",
            "locusta.stages { { duration = 1, users = 1, target = 5 } }\n",
            "shape.lua:4: stage 1: unknown field \"target\"",
        ),
        (
            "unknown-table-field",
            "locusta.stages { spawn = 3, { duration = 1, users = 1 } }\n",
            "locusta.stages: unknown field \"spawn\"",
        ),
        (
            "mixed",
            "locusta.stages { { duration = 1, users = 1 }, { duration = 1, rate = 5 } }\n",
            "stage 2: stages mix users and rate",
        ),
        (
            "no-stage",
            "locusta.stages {}\n",
            "locusta.stages: no stage given",
        ),
        (
            "unknown-stage-class",
            "locusta.stages { { duration = 1, users = 1, classes = { \"Nope\" } } }\n",
            "shape.lua:4: locusta.stages: unknown user class \"Nope\"",
        ),
    ];
    for (name, body, says) in cases {
        let (code, err, took, _) = run(name, body, &server, &[]);
        assert_eq!(code, 2, "{name}: exit code\n{err}");
        assert!(err.contains(says), "{name}: no `{says}` in\n{err}");
        assert!(took < 10.0, "{name}: took {took:.1} s");
    }
    assert_eq!(server.log().len(), 0, "a user ran: {:?}", server.log());
}

#[test]
fn sigterm_during_a_shape_run_writes_the_reports() {
    let server = OpenServer::start();
    let dir = temp_dir("shape-sigterm");
    let script = write_script(
        &dir,
        "shape.lua",
        &format!("{HEAD}locusta.stages {{ {{ duration = 60, users = 3, spawn_rate = 10 }} }}\n"),
    );
    let csv = dir.join("run");
    let child = locusta()
        .args([
            "-f",
            script.to_str().unwrap(),
            "--headless",
            "--only-summary",
        ])
        .args(["-H", &server.url(), "--csv", csv.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.open() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.open(), 3, "the shape's 3 users never ran");
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let t0 = Instant::now();
    let out = common::wait_bounded(child, Duration::from_secs(20));
    let err = text(&out.stderr);
    assert!(t0.elapsed() < Duration::from_secs(10), "{err}");
    assert!(err.contains("Got a stop signal"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    let stats = std::fs::read_to_string(dir.join("run_stats.csv")).unwrap();
    assert!(stats.contains("Aggregated"), "{stats}");
}
