//! `locusta.quit(n)` (Locust's `runner.quit()`) outside headless mode:
//! in the dashboard the run stops, reports are written and the process
//! exits with `n`; on a cluster worker its users stop (on_stop runs), the
//! worker sends its last stats and `quit` to the master and exits with `n`,
//! and the master goes on without it.

mod common;

#[path = "common/cluster.rs"]
mod cluster_common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cluster_common::*;
use common::*;

const LIMIT: Duration = Duration::from_secs(60);

/// Each user calls locusta.quit(code) on its 3rd request; on_stop logs out.
fn quitting_script(dir: &Path, code: u8) -> String {
    let path = dir.join("quit.lua");
    std::fs::write(
        &path,
        format!(
            r#"local locusta = require "locusta"
local U = locusta.user {{ wait_time = locusta.constant(0.1) }}
function U:on_start() self.n = 0 end
U:task(1, function(self)
  self.client:get("/hello")
  self.n = self.n + 1
  if self.n == 3 then locusta.quit({code}) end
end)
function U:on_stop() self.client:get("/logout") end
"#
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn quit_on_a_worker_stops_its_users_and_leaves_the_master() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("quit-worker");
    let script = quitting_script(&dir, 3);
    let csv = dir.join("run");
    let port = free_port();
    let args = ["-u", "2", "-r", "100", "-t", "30s", "--expect-workers", "1"];
    let mut cmd = master_cmd(port, &server.url(""), &args, &csv);
    cmd.args(["-f", &script]);
    let mut m = Proc::spawn(&dir, "master", &mut cmd);
    let mut w = Proc::spawn(&dir, "worker", worker_cmd(port).args(["-f", &script]));
    let started = Instant::now();
    assert_eq!(w.wait(LIMIT).code(), Some(3), "{}", w.logs());
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the worker left before -t"
    );
    m.wait_log("quit", 1, LIMIT);
    m.signal(libc::SIGTERM);
    assert!(m.wait(LIMIT).code().is_some(), "{}", m.logs());
    let logouts = server
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /logout "))
        .count();
    assert_eq!(logouts, 2, "both users ran on_stop");
    // The worker's last stats (with the logouts) reached the master.
    let stats = std::fs::read_to_string(dir.join("run_stats.csv")).unwrap();
    assert!(stats.contains("GET,/logout,2,"), "{stats}");
}

#[test]
fn quit_in_the_dashboard_writes_reports_and_exits_with_the_code() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipping: tmux is not installed");
        return;
    }
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("quit-dashboard");
    let script = quitting_script(&dir, 4);
    let socket = dir.join("tmux.sock");
    let line = format!(
        "{} -f {script} -H {} --shards 1 --csv {} -u 2 -r 10 --autostart; echo locusta-exit=$?; sleep 600",
        env!("CARGO_BIN_EXE_locusta"),
        server.url(""),
        dir.join("run").display(),
    );
    let tmux = |args: &[&str]| {
        let mut c = Command::new("tmux");
        c.arg("-S")
            .arg(&socket)
            .args(args)
            .env("TERM", "xterm-256color");
        for (k, _) in std::env::vars() {
            if k.starts_with("LOCUSTA_") || k == "TMUX" {
                c.env_remove(k);
            }
        }
        c.output().expect("run tmux")
    };
    let out = tmux(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-x",
        "120",
        "-y",
        "40",
        "-s",
        "main",
        &line,
    ]);
    assert!(out.status.success(), "{out:?}");
    let deadline = Instant::now() + LIMIT;
    let screen = loop {
        let s = text(&tmux(&["capture-pane", "-p", "-J", "-S", "-1000", "-t", "main"]).stdout);
        if s.contains("locusta-exit=") || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = tmux(&["kill-server"]);
    assert!(screen.contains("locusta-exit=4"), "{screen}");
    let stats = std::fs::read_to_string(dir.join("run_stats.csv")).unwrap();
    assert!(stats.contains("GET,/logout,2,"), "{stats}");
}
