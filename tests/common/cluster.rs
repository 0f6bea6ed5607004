//! Helpers for the cluster tests (`cluster`, `cluster_locust`): real
//! master and worker processes on 127.0.0.1 whose logs go to files the
//! test can read while they run, killed when the test ends.
//! Included with `#[path = "common/cluster.rs"] mod cluster_common;`.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A process whose stdout/stderr go to `<dir>/<name>.out|.err`.
pub struct Proc {
    pub name: String,
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Proc {
    pub fn spawn(dir: &Path, name: &str, cmd: &mut Command) -> Proc {
        let out = dir.join(format!("{name}.out"));
        let err = dir.join(format!("{name}.err"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
            out,
            err,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Wait until `needle` shows in stderr `times` times, or panic with
    /// the logs after `limit`.
    pub fn wait_log(&self, needle: &str, times: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.stderr().matches(needle).count() >= times {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{}: `{needle}` did not appear {times}x within {limit:?}\nstderr:\n{}",
            self.name,
            self.stderr()
        );
    }

    /// Exit status within `limit`, else kill it and panic with the logs.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "{} did not exit within {limit:?}\nstdout:\n{}\nstderr:\n{}",
            self.name,
            self.stdout(),
            self.stderr()
        );
    }

    /// SIGKILL, as a crashed box.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send a signal (SIGTERM, SIGINT).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Both logs, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "--- {} stdout:\n{}\n--- {} stderr:\n{}",
            self.name,
            self.stdout(),
            self.name,
            self.stderr()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port nothing listens on right now.
/// A Locust master (`locust` from `common::locust()`) running `dir`'s
/// `locustfile.py`, headless, bound to 127.0.0.1:`port`, with `args` after;
/// spawned as "locust-master".
pub fn spawn_locust_master(mut locust: Command, dir: &Path, port: u16, args: &[&str]) -> Proc {
    locust
        .current_dir(dir)
        .args(["-f", "locustfile.py", "--master", "--headless"])
        .args(["--master-bind-host", "127.0.0.1", "--master-bind-port"])
        .arg(port.to_string())
        .args(args);
    Proc::spawn(dir, "locust-master", &mut locust)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// "reported N requests (F failures)" from a worker's exit line.
pub fn worker_sent(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("Worker done: reported"))
        .unwrap_or_else(|| panic!("no exit line in worker log:\n{stderr}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    // [hh, mm, ss, ms, requests, failures]
    (nums[nums.len() - 2], nums[nums.len() - 1])
}

/// `locusta --master --headless` on `port` with CSVs at `csv`.
pub fn master_cmd(port: u16, host: &str, args: &[&str], csv: &Path) -> Command {
    let mut c = crate::common::locusta();
    c.args(["--master", "--headless", "--only-summary", "-H", host])
        .args(["--master-bind-port", &port.to_string()])
        .args(["--csv", csv.to_str().unwrap()])
        .args(args);
    c
}

/// `locusta --worker --shards 1` joining the master on `port`.
pub fn worker_cmd(port: u16) -> Command {
    let mut c = crate::common::locusta();
    c.args([
        "--worker",
        "--shards",
        "1",
        "--master-port",
        &port.to_string(),
    ]);
    c
}

/// The Aggregated request count of `<csv>_stats.csv`.
pub fn csv_total(csv: &Path) -> u64 {
    let stats = csv.with_file_name(format!(
        "{}_stats.csv",
        csv.file_name().unwrap().to_str().unwrap()
    ));
    crate::common::aggregated(&stats)["Request Count"]
        .parse()
        .unwrap()
}
