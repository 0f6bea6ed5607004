//! `deploy/local-cluster.sh` as the tests run it: in its own process group
//! (so whatever it started can be found, and killed, afterwards), on a free
//! master port, with this build and a scratch directory, bounded in time.
//! What its output must show is the tests' business.

use super::support::*;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Rehearsal {
    child: Child,
    pgid: i32,
    pub dir: PathBuf,
}

impl Rehearsal {
    /// `local-cluster.sh workers`, the swarm running for `run_time`.
    pub fn start(name: &str, workers: u32, run_time: &str) -> Rehearsal {
        let dir = scratch(name);
        let mut cmd = Command::new(deploy_dir().join("local-cluster.sh"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("LOCUSTA_")) {
            cmd.env_remove(k);
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = cmd
            .arg(workers.to_string())
            .env("LOCUSTA_BIN", env!("CARGO_BIN_EXE_locusta"))
            .env("LOCUSTA_LOCAL_RUN_TIME", run_time)
            .env("LOCUSTA_LOCAL_DIR", &dir)
            .env("LOCUSTA_LOCAL_MASTER_PORT", port.to_string())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("run deploy/local-cluster.sh");
        let pgid = child.id() as i32;
        Rehearsal { child, pgid, dir }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }

    /// Its output and error output, for assertion messages.
    pub fn logs(&self) -> String {
        let err = std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default();
        format!("{}\nstderr:\n{err}", self.stdout())
    }

    /// The first stdout line starting with `prefix`, waiting up to `limit`.
    pub fn wait_line(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(l) = self.stdout().lines().find(|l| l.starts_with(prefix)) {
                return l.to_string();
            }
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "local-cluster.sh printed no `{prefix}` line\n{}",
            self.logs()
        );
    }

    /// Its exit status within `limit`; past it, the group is killed and the test fails.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill_group();
        panic!(
            "local-cluster.sh did not finish in {limit:?}\n{}",
            self.logs()
        );
    }

    /// Whether any process it started is still there, after a short grace.
    pub fn left_behind(&self) -> bool {
        for _ in 0..40 {
            // SAFETY: signal 0 only asks whether any process of the group exists.
            if unsafe { libc::kill(-self.pgid, 0) } != 0 {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    fn kill_group(&mut self) {
        // SAFETY: kill(2) on the process group this helper created.
        unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Rehearsal {
    fn drop(&mut self) {
        // SAFETY: signal 0 only asks whether any process of the group exists.
        if unsafe { libc::kill(-self.pgid, 0) } == 0 {
            self.kill_group();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
