//! A terminal for end-to-end tests: one tmux server of our own per test
//! (its socket in the test's directory, killed on drop), where the real
//! binary runs as on a user's terminal. Without tmux the tests skip,
//! unless CI=true (`.ci/run` installs it).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Longest wait for anything to show on the screen.
pub const WAIT: Duration = Duration::from_secs(30);

/// Whether tmux is here; without it, skip (or fail on CI).
pub fn have_tmux() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("tmux is required on CI for the terminal tests (.ci/run installs it)");
        }
        eprintln!("skipping: tmux is not installed (apt-get install tmux)");
    }
    ok
}

/// One tmux server of our own (its socket in the test's directory),
/// killed on drop.
pub struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Run `command` (a shell line) in a detached 120x40 session.
    pub fn start(dir: &Path, command: &str) -> Tmux {
        Tmux::start_sized(dir, 120, command)
    }

    /// As [`Tmux::start`], `columns` wide.
    pub fn start_sized(dir: &Path, columns: u16, command: &str) -> Tmux {
        let columns = columns.to_string();
        let tmux = Tmux {
            socket: dir.join("tmux.sock"),
        };
        let out = tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            &columns,
            "-y",
            "40",
            "-s",
            "main",
            command,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        tmux
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket).args(args);
        // The session's shell inherits the server's environment.
        for (k, _) in std::env::vars() {
            if k.starts_with("LOCUSTA_") || k == "TMUX" {
                cmd.env_remove(k);
            }
        }
        cmd.env("TERM", "xterm-256color");
        cmd.output().expect("run tmux")
    }

    pub fn keys(&self, keys: &str) {
        let out = self.run(&["send-keys", "-t", "main", keys]);
        assert!(out.status.success(), "send-keys {keys}: {out:?}");
    }

    /// The visible screen.
    pub fn screen(&self) -> String {
        crate::common::text(&self.run(&["capture-pane", "-p", "-t", "main"]).stdout)
    }

    /// The screen and its scrollback, wrapped lines joined.
    pub fn everything(&self) -> String {
        crate::common::text(
            &self
                .run(&["capture-pane", "-p", "-J", "-S", "-1000", "-t", "main"])
                .stdout,
        )
    }

    /// The screen and its scrollback as drawn (wrapped lines apart).
    pub fn scrollback(&self) -> String {
        crate::common::text(
            &self
                .run(&["capture-pane", "-p", "-S", "-1000", "-t", "main"])
                .stdout,
        )
    }

    /// Poll `read` until `done` holds on it; panic with it after WAIT.
    pub fn wait(
        &self,
        what: &str,
        read: impl Fn(&Tmux) -> String,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = read(self);
            if done(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_screen(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        self.wait(what, Tmux::screen, done)
    }

    /// Wait for the shell line's `exit=N` and return N.
    pub fn wait_exit(&self) -> (i32, String) {
        let all = self.wait("locusta to exit", Tmux::everything, |s| {
            s.contains("locusta-exit=")
        });
        let code = all
            .split("locusta-exit=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .expect("exit code");
        (code, all)
    }

    /// The pid of the program the pane's shell runs.
    pub fn child_pid(&self) -> i32 {
        let out = self.run(&["display-message", "-p", "-t", "main", "#{pane_pid}"]);
        let shell = crate::common::text(&out.stdout).trim().to_string();
        let children =
            std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the shell runs locusta")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
    }
}
