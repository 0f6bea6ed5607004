//! The headless progress line: drawn on stderr only when it is a terminal
//! (a tmux pane here; without tmux the terminal test skips, unless
//! CI=true), never glued to the log lines and tables after it, and absent
//! when stderr is a pipe. Every wait is bounded; the tmux server is killed
//! on drop.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

const WAIT: Duration = Duration::from_secs(30);

fn have_tmux() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tmux is required on CI (.ci/run installs it)"
        );
        eprintln!("skipping: tmux is not installed (apt-get install tmux)");
    }
    ok
}

/// A tmux server of our own, killed on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(dir: &Path, command: &str) -> Tmux {
        let tmux = Tmux {
            socket: dir.join("tmux.sock"),
        };
        let out = tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "150",
            "-y",
            "40",
            "-s",
            "main",
            command,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("LOCUSTA_") || k == "TMUX" {
                cmd.env_remove(k);
            }
        }
        cmd.env("TERM", "xterm-256color");
        cmd.output().expect("run tmux")
    }

    /// The screen and its scrollback.
    fn everything(&self) -> String {
        text(
            &self
                .run(&["capture-pane", "-p", "-S", "-1000", "-t", "main"])
                .stdout,
        )
    }

    fn wait(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.everything();
            if done(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn on_a_terminal_the_line_is_drawn_and_cleared_for_what_follows() {
    if !have_tmux() {
        return;
    }
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("progress-tty");
    // Tables to a file: the pane shows stderr only.
    let command = format!(
        "{} --headless -u 2 -r 10 -t 4s --shards 1 {} > {}/stdout.txt; \
         echo locusta-exit=$?; sleep 30",
        env!("CARGO_BIN_EXE_locusta"),
        server.url("/"),
        dir.display()
    );
    let tmux = Tmux::start(&dir, &command);
    let during = tmux.wait("the progress line", |s| {
        s.contains("elapsed 0:0") && s.contains("/ 0:04 | users 2/2 |")
    });
    assert!(during.contains(" req/s | failures 0 (0.00%)"), "{during}");
    let after = tmux.wait("locusta to exit", |s| s.contains("locusta-exit="));
    assert!(after.contains("locusta-exit=0"), "{after}");
    // Each log line starts its own line: the progress text was erased
    // first, not left in front of it.
    for line in after.lines().filter(|l| l.contains("/locusta: ")) {
        assert!(
            line.starts_with('['),
            "glued to the progress line: {line:?}"
        );
    }
    assert!(
        !after.contains("elapsed 0:0"),
        "cleared at the end:\n{after}"
    );
}

#[test]
fn nothing_extra_on_stderr_when_it_is_not_a_terminal() {
    let server = TestServer::start(|_| ok("hi"));
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "1",
                "-r",
                "10",
                "-t",
                "3s",
                "--shards",
                "1",
            ])
            .arg(server.url("/")),
        Duration::from_secs(60),
    );
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(!err.contains('\r') && !err.contains("\x1b["), "{err:?}");
    assert!(!err.contains("elapsed "), "{err}");
    // Every stderr line is a log line.
    assert!(err.lines().all(|l| l.starts_with('[')), "{err}");
    assert!(
        text(&out.stdout).contains("Aggregated"),
        "tables still printed"
    );
}
