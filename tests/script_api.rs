//! Locust fidelity of the Lua API through the real binary: the first
//! interval of `constant_pacing` / `constant_throughput` (Locust starts the
//! period when the user is created, so the first wait is the period minus
//! the task's time, as every later one), and the Locust port example
//! (`lua/examples/locust_port.lua`) against the built-in shop.
//! Client request options are in `script_api_client.rs`, Markov task sets
//! in `script_markov.rs`.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

fn write_script(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Gaps (seconds) between the arrivals of requests to `path`.
fn gaps(log: &[(Instant, String)], path: &str) -> Vec<f64> {
    let times: Vec<Instant> = log
        .iter()
        .filter(|(_, p)| p == path)
        .map(|(t, _)| *t)
        .collect();
    times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64())
        .collect()
}

#[test]
fn pacing_first_interval_is_the_period_not_period_plus_task_time() {
    let log: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let seen = log.clone();
    let server = TestServer::start(move |path| {
        seen.lock()
            .unwrap()
            .push((Instant::now(), path.to_string()));
        ok("")
    });
    let dir = temp_dir("api-pacing");
    // Each task sends, then works for 0.5 s: with a 1 s period the next
    // task starts 1 s after this one (the wait is 0.5 s), the first time
    // too. The old first wait was the full period (a 1.5 s first gap).
    let script = write_script(
        &dir,
        "pacing.lua",
        r#"
local locusta = require "locusta"
local P = locusta.user { name = "Pacing", wait_time = locusta.constant_pacing(1) }
P:task(function(self)
  self.client:get("/pacing")
  locusta.sleep(0.5)
end)
local T = locusta.user { name = "Throughput", wait_time = locusta.constant_throughput(1) }
T:task(function(self)
  self.client:get("/throughput")
  locusta.sleep(0.5)
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
            "2",
            "-r",
            "100",
            "-t",
            "4s",
        ]),
        Duration::from_secs(40),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let log = log.lock().unwrap().clone();
    for path in ["/pacing", "/throughput"] {
        let g = gaps(&log, path);
        assert!(g.len() >= 2, "{path}: too few requests: {g:?}");
        // Tolerant bounds (loaded box): 1 s expected, 1.5 s before the fix.
        for (i, gap) in g.iter().enumerate() {
            assert!(
                (0.8..1.3).contains(gap),
                "{path}: gap {i} is {gap:.3} s, expected ~1 s (all: {g:?})"
            );
        }
    }
}

#[test]
fn locust_port_example_runs_against_the_shop() {
    let target = locusta::demo::DemoTarget::start().unwrap();
    let dir = temp_dir("api-port");
    let prefix = dir.join("port");
    let out = run_bounded(
        locusta().args([
            "-f",
            "lua/examples/locust_port.lua",
            "-H",
            &target.base_url(),
            "--headless",
            "--only-summary",
            "-u",
            "12",
            "-r",
            "50",
            "-t",
            "3s",
            "--exit-code-on-error",
            "0",
            "--csv",
            prefix.to_str().unwrap(),
        ]),
        Duration::from_secs(40),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains("Exceptions") && !stdout.contains("Traceback"),
        "the port raised: {stdout}"
    );
    let names: Vec<String> = csv_rows(&dir.join("port_stats.csv"))[1..]
        .iter()
        .map(|r| format!("{} {}", r[0], r[1]))
        .collect();
    // Shopper's login (data=form), the Markov chain's home page, the named
    // product pages shared by both classes.
    for want in [
        "POST /api/login",
        "GET /",
        "GET /api/products/:id",
        "GET /api/products",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want}: {names:?}");
    }
}
