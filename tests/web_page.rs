//! The web page in a real browser: a `locusta --master --web` with two
//! `locusta --worker`s loading an in-process HTTP server on 127.0.0.1,
//! driven entirely from the page in headless Chromium by
//! `tests/web_page_support/drive.py` (Python `selenium` with the local
//! `/usr/bin/chromedriver`; nothing is downloaded). The driver starts the
//! swarm from the form, sees the stats table fill, the charts draw, the
//! failures, exceptions and workers tabs fill, raises the users, stops,
//! resets the stats.
//!
//! Artifacts: one screenshot per step in `target/web-page-screenshots/`
//! (`NN-step.png`; `failed.png` when a step fails).
//!
//! Needs `chromium`, `chromium-driver` (Debian) and `selenium` (PyPI, the
//! version pinned in `.ci/run`); without them the test fails and says what
//! to install. Bounded: every wait in the driver has a timeout, the driver
//! is killed after [`DRIVE_LIMIT`], the processes after their own limits.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_common::*;
use common::*;

const DRIVE_LIMIT: Duration = Duration::from_secs(60);
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Two named requests, a 404 (the failures tab) and a Lua error (the
/// exceptions tab), at a pace two cores can hold beside a browser.
const SCRIPT: &str = r#"local locusta = require "locusta"
local Shopper = locusta.user { wait_time = locusta.constant(0.05) }
Shopper:task(3, function(self) self.client:get("/items/" .. math.random(1, 9), { name = "/items/:id" }) end)
Shopper:task(2, function(self) self.client:get("/cart") end)
Shopper:task(1, function(self) self.client:get("/missing") end)
Shopper:task(1, function(self) error("basket is empty") end)
"#;

/// Fail (not skip: CI must run this) naming what is missing.
fn require_browser_tools() {
    let mut missing = Vec::new();
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        if !Path::new(path).exists() {
            missing.push(format!("{path} (apt-get install -y {package})"));
        }
    }
    let selenium = Command::new("python3")
        .args(["-c", "import selenium"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !selenium {
        missing.push("Python selenium (pip install the version pinned in .ci/run)".into());
    }
    assert!(
        missing.is_empty(),
        "the browser test needs: {}",
        missing.join(", ")
    );
}

/// `Web UI and API on http://ADDR/...` from the master's log.
fn web_url(master: &Proc, limit: Duration) -> String {
    master.wait_log("Web UI and API on http://", 1, limit);
    let line = master
        .stderr()
        .lines()
        .find(|l| l.contains("Web UI and API on "))
        .map(str::to_string)
        .unwrap();
    let url = line.split("Web UI and API on ").nth(1).unwrap().trim();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "web UI not on loopback: {line}"
    );
    url.to_string()
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-page-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_master_with_two_workers_is_driven_from_the_page() {
    require_browser_tools();
    let server = TestServer::start(|path| {
        if path.starts_with("/missing") {
            status(404, "Not Found")
        } else {
            ok("stock")
        }
    });
    let dir = temp_dir("web-page");
    let script = dir.join("shop.lua");
    std::fs::write(&script, SCRIPT).unwrap();
    let script = script.to_str().unwrap();
    let port = free_port();

    // No --headless and no terminal: the web front end, which waits for
    // the page's start form (-u/-r are only the form's defaults).
    let mut cmd = locusta();
    cmd.args(["--master", "--master-bind-port", &port.to_string()])
        .args(["-f", script, "-H", &server.url("")])
        .args(["--expect-workers", "2", "-u", "1", "-r", "1"])
        .args(["--web", "--web-port", "0", "--web-base-path", "/locusta"]);
    let mut master = Proc::spawn(&dir, "master", &mut cmd);
    let workers: Vec<Proc> = (0..2)
        .map(|i| {
            Proc::spawn(
                &dir,
                &format!("worker{i}"),
                worker_cmd(port).args(["-f", script]),
            )
        })
        .collect();

    // The page as typed by hand: the base path without its slash.
    let url = web_url(&master, Duration::from_secs(20));
    let page = url.trim_end_matches('/').to_string();
    assert!(page.ends_with("/locusta"), "{url}");

    let shots = screenshot_dir();
    let driver = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web_page_support/drive.py"))
        .args([&page, shots.to_str().unwrap(), "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3 drive.py");
    let started = Instant::now();
    let out = wait_bounded(driver, DRIVE_LIMIT);
    let report = format!(
        "drive.py ({:?}):\n{}\n{}\n{}\n{}",
        started.elapsed(),
        text(&out.stdout),
        text(&out.stderr),
        master.logs(),
        workers
            .iter()
            .map(Proc::logs)
            .collect::<Vec<_>>()
            .join("\n"),
    );
    assert!(out.status.success(), "{report}");
    eprintln!("{report}");

    // The load went to our server, from both workers, through the page.
    let requests = server.requests();
    assert!(
        requests.iter().any(|r| r.starts_with("GET /items/")),
        "{report}"
    );
    assert!(
        requests.iter().any(|r| r.starts_with("GET /cart")),
        "{report}"
    );
    for step in [
        "start-form",
        "started",
        "stats",
        "charts",
        "workers",
        "edited",
        "stopped",
        "reset",
    ] {
        let shot = std::fs::read_dir(&shots)
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .ends_with(&format!("-{step}.png"))
            });
        assert!(shot, "no screenshot of step {step} in {}", shots.display());
    }

    // The master still answers and ends cleanly on SIGTERM.
    master.signal(libc::SIGTERM);
    master.wait(Duration::from_secs(20));
}
