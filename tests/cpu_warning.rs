//! `cpu_warning`: a run whose own CPU use passes Locust's 90 % threshold
//! logs Locust's warning once and fires the script's `cpu_warning`
//! listeners once, with the percentage. The script keeps every core it may
//! use busy (one shard per core, two spinning users per shard), so the
//! reading is the process's own; this file holds one test so nothing else
//! of the suite runs beside it.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_saturated_run_warns_once_and_fires_cpu_warning() {
    let dir = temp_dir("cpu-warning");
    let log = dir.join("events.log");
    let script = dir.join("spin.lua");
    std::fs::write(
        &script,
        format!(
            r#"
local locusta = require "locusta"
local f = assert(io.open({log:?}, "a"))
locusta.events.cpu_warning:add_listener(function(percent)
  f:write("cpu_warning ", tostring(percent), "\n"); f:flush()
end)
local U = locusta.user {{ wait_time = locusta.constant(0) }}
-- 50 ms of CPU per task (os.clock is the process's CPU time), then a yield.
U:task(function(self)
  local t = os.clock() + 0.05
  while os.clock() < t do end
end)
"#
        ),
    )
    .unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = run_bounded(
        locusta()
            .args(["-f", script.to_str().unwrap(), "-H", "http://127.0.0.1:1"])
            .args(["--headless", "--only-summary", "-r", "100", "-t", "12s"])
            .args(["--shards", &cpus.to_string()])
            .args(["-u", &(2 * cpus).to_string()]),
        Duration::from_secs(60),
    );
    let stderr = text(&out.stderr);
    // It ends by itself (exit 1 when a user spinning at the stop deadline
    // is interrupted by the watchdog, an exception), without a listener
    // error.
    assert!(out.status.code().is_some(), "{stderr}");
    assert!(!stderr.contains("ERROR"), "{stderr}");
    assert_eq!(
        stderr.matches("CPU usage above 90%").count(),
        1,
        "Locust's warning, once: {stderr}"
    );
    let fired = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = fired.lines().collect();
    assert_eq!(lines.len(), 1, "fired once: {fired:?}\n{stderr}");
    let percent: u32 = lines[0]
        .strip_prefix("cpu_warning ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{:?}", lines[0]));
    assert!((90..=100).contains(&percent), "{percent}");
}
