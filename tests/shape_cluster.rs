//! A load shape on a locusta master with one locusta worker: the master
//! runs the shape and the worker follows its spawn messages, so the users
//! the server sees follow the stages as in a standalone run.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;
#[path = "shape_support/mod.rs"]
mod shape_support;

use std::time::{Duration, Instant};

use cluster_common::{free_port, master_cmd, worker_cmd, Proc};
use common::temp_dir;
use shape_support::{master_schedule, misfits, sample, write_script, OpenServer};

const STAGES: [(f64, u32, f64); 3] = [(4.0, 3, 3.0), (4.0, 6, 6.0), (4.0, 1, 6.0)];

#[test]
fn the_master_runs_the_shape_and_the_worker_follows_it() {
    let server = OpenServer::start();
    let dir = temp_dir("shape-cluster");
    let script = write_script(
        &dir,
        "stages.lua",
        r#"local locusta = require "locusta"
local U = locusta.user { name = "U", wait_time = locusta.constant(0.2) }
U:task(function(self) self.client:get("/") end)
locusta.stages {
  { duration = 4, users = 3, spawn_rate = 3 },
  { duration = 4, users = 6, spawn_rate = 6 },
  { duration = 4, users = 1, spawn_rate = 6 },
}
"#,
    );
    let script = script.to_str().unwrap();
    let port = free_port();
    let csv = dir.join("run");
    let mut master = Proc::spawn(
        &dir,
        "master",
        &mut master_cmd(
            port,
            &server.url(),
            &["-f", script, "--expect-workers", "1"],
            &csv,
        ),
    );
    let mut worker = Proc::spawn(&dir, "worker", worker_cmd(port).args(["-f", script]));
    // The schedule starts when the master starts the run (its first
    // "Ramping to" line): find that moment.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !master.stderr().contains("Ramping to") {
        assert!(Instant::now() < deadline, "{}", master.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    let t0 = Instant::now();
    let samples = sample(&server, t0, 11.8);
    let status = master.wait(Duration::from_secs(25));
    let logs = format!("{}\n{}", master.logs(), worker.logs());
    assert_eq!(status.code(), Some(0), "{logs}");
    // The master's ramp is Locust's (floor(rate) users a step). Margins as
    // standalone (1.5 s of lag, one user off), plus 0.5 s for the spawn
    // message's trip and the worker's start.
    let bad = misfits(&master_schedule(&STAGES), &samples, 2.0, 1.0);
    assert!(
        bad.is_empty(),
        "off the schedule: {bad:?}\nsamples: {samples:?}\n{logs}"
    );
    for want in [3, 6, 1] {
        assert!(
            samples.iter().any(|(_, n)| *n == want),
            "never held {want}: {samples:?}\n{logs}"
        );
    }
    assert!(
        master.stderr().contains("The load shape ended the run"),
        "{logs}"
    );
    // The worker ran no shape of its own.
    assert!(!worker.stderr().contains("load shape"), "{logs}");
    let _ = worker.wait(Duration::from_secs(15));
    assert!(std::fs::read_to_string(dir.join("run_stats.csv"))
        .unwrap()
        .contains("Aggregated"));
}
