//! The headless progress line: drawn on stderr only when it is a terminal
//! (a tmux pane here; without tmux the terminal test skips, unless
//! CI=true), never glued to the log lines and tables after it, and absent
//! when stderr is a pipe. Every wait is bounded; the tmux server is killed
//! on drop.

mod common;
#[path = "common/tmux.rs"]
mod tmux;

use std::time::Duration;

use common::*;
use tmux::{have_tmux, Tmux};

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
    let tmux = Tmux::start_sized(&dir, 150, &command);
    let during = tmux.wait("the progress line", Tmux::scrollback, |s| {
        s.contains("elapsed 0:0") && s.contains("/ 0:04 | users 2/2 |")
    });
    assert!(during.contains(" req/s | failures 0 (0.00%)"), "{during}");
    let after = tmux.wait("locusta to exit", Tmux::scrollback, |s| {
        s.contains("locusta-exit=")
    });
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
