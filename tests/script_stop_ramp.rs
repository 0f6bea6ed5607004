//! Lowering the user count stops users as a whole-run stop does (Locust's
//! `stop_users`): each retired user runs its on_stop, whose requests are
//! counted. Driven through the engine's `Controller` in this process, with
//! a real server on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use common::*;
use locusta::cli::IoMode;
use locusta::engine::{ClassSpec, Controller, EngineConfig, RunControl, RunState, Workload};
use locusta::http::{ClientConfig, Target};
use locusta::script::{ScriptSource, TagFilter};

fn seen(server: &TestServer, path: &str) -> usize {
    let line = format!("GET {path} ");
    server
        .requests()
        .iter()
        .filter(|r| r.starts_with(&line))
        .count()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn lowering_the_user_count_runs_on_stop_of_the_retired_users() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("stop-ramp-down");
    let path = dir.join("s.lua");
    std::fs::write(
        &path,
        r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0) }
function U:on_start() self.client:get("/login") end
U:task(1, function(self) locusta.sleep(60) end)
function U:on_stop() self.client:get("/logout") end
"#,
    )
    .unwrap();
    let source = ScriptSource::read(path.to_str().unwrap()).unwrap();
    let engine = Controller::launch(EngineConfig {
        shards: 2,
        io: IoMode::Auto,
        client: ClientConfig::default(),
        workload: Workload::Script {
            source,
            tags: TagFilter::default(),
            default_host: Some(Target::parse(&server.url("")).unwrap()),
        },
        classes: vec![ClassSpec {
            name: "User1".into(),
            weight: 1,
            fixed_count: None,
        }],
        stop_timeout: Duration::ZERO,
        keep_window: false,
        intervals: false,
        delta_tap: None,
        open_tap: None,
    })
    .unwrap();
    engine.start(10, 1000.0);
    wait_until("10 logins", Duration::from_secs(20), || {
        seen(&server, "/login") == 10
    });
    engine.set_target(4, 1000.0);
    wait_until("6 logouts", Duration::from_secs(20), || {
        seen(&server, "/logout") == 6
    });
    engine.stop();
    assert!(engine.wait_for(RunState::Stopped, Duration::from_secs(30)));
    assert_eq!(seen(&server, "/logout"), 10);
    let logouts = engine.with_stats(|s| {
        s.view(std::time::SystemTime::now())
            .entries
            .iter()
            .find(|e| e.name == "/logout")
            .map(|e| e.num_requests)
    });
    assert_eq!(logouts, Some(10), "every logout is counted");
    engine.shutdown();
}
