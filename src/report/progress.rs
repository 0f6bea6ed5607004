//! The headless progress line: one status line on stderr, rewritten in
//! place (`\r`, clear to the end of the line) while a run goes, only when
//! stderr is a terminal.
//!
//! Owns the line's text ([`progress_line`]) and whether one is on screen,
//! so whatever else writes to the terminal (tables, log lines) can clear
//! it first ([`clear`], [`write_stderr`]) instead of being glued to it.
//! It does not own deciding when to draw (the headless loop).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Back to the line's start, then erase to its end.
const CLEAR: &str = "\r\x1b[K";

/// A progress line is on screen (drawn and not cleared since).
static SHOWN: AtomicBool = AtomicBool::new(false);

/// Whether progress lines may be drawn: stderr is a terminal.
pub fn available() -> bool {
    std::io::stderr().is_terminal()
}

/// What the line says.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub elapsed: Duration,
    /// `-t`, when given.
    pub run_time: Option<Duration>,
    pub users: u32,
    pub target_users: u32,
    /// Current requests/s (the last 10 s).
    pub rps: f64,
    pub requests: u64,
    pub failures: u64,
}

/// `elapsed 0:12 / 1:00 | users 10/10 | 1234.5 req/s | failures 3 (0.25%)`,
/// cut to `width` characters (a wrapped line could not be rewritten).
pub fn progress_line(p: &Progress, width: usize) -> String {
    let mut line = format!("elapsed {}", clock(p.elapsed));
    if let Some(t) = p.run_time {
        line += &format!(" / {}", clock(t));
    }
    let ratio = if p.requests > 0 {
        p.failures as f64 / p.requests as f64 * 100.0
    } else {
        0.0
    };
    line += &format!(
        " | users {}/{} | {:.1} req/s | failures {} ({:.2}%)",
        p.users, p.target_users, p.rps, p.failures, ratio
    );
    match line.char_indices().nth(width) {
        Some((cut, _)) => line[..cut].to_string(),
        None => line,
    }
}

/// `M:SS`, or `H:MM:SS` from an hour on.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Draw `p` over the previous line.
pub fn show(p: &Progress) {
    // One column spare: a line filling the width would wrap the cursor.
    let line = progress_line(p, terminal_width().saturating_sub(1).max(10));
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{CLEAR}{line}");
    let _ = err.flush();
    // Under the lock, so a writer of `write_stderr` sees it drawn.
    SHOWN.store(true, Ordering::Relaxed);
}

/// Erase the line, if one is shown, so the next output starts clean.
pub fn clear() {
    if SHOWN.swap(false, Ordering::Relaxed) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(CLEAR.as_bytes());
        let _ = err.flush();
    }
}

/// Write `bytes` (whole lines, the logger's) to stderr in one write, after
/// erasing the progress line if one is shown, so they do not land after
/// its text; the line is redrawn at the next update.
pub fn write_stderr(bytes: &[u8]) -> std::io::Result<()> {
    let mut err = std::io::stderr().lock();
    if SHOWN.swap(false, Ordering::Relaxed) {
        err.write_all(CLEAR.as_bytes())?;
    }
    err.write_all(bytes)
}

fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills a plain winsize struct.
    let cols = unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 {
            ws.ws_col as usize
        } else {
            0
        }
    };
    if cols == 0 {
        80
    } else {
        cols
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Progress {
        Progress {
            elapsed: Duration::from_secs(72),
            run_time: Some(Duration::from_secs(3_725)),
            users: 7,
            target_users: 10,
            rps: 1234.56,
            requests: 1_200,
            failures: 3,
        }
    }

    #[test]
    fn the_line_says_time_users_rate_and_failures() {
        assert_eq!(
            progress_line(&sample(), 200),
            "elapsed 1:12 / 1:02:05 | users 7/10 | 1234.6 req/s | failures 3 (0.25%)"
        );
        let idle = Progress {
            run_time: None,
            requests: 0,
            failures: 0,
            rps: 0.0,
            ..sample()
        };
        assert_eq!(
            progress_line(&idle, 200),
            "elapsed 1:12 | users 7/10 | 0.0 req/s | failures 0 (0.00%)"
        );
    }

    #[test]
    fn the_line_fits_the_terminal() {
        let line = progress_line(&sample(), 20);
        assert_eq!(line, "elapsed 1:12 / 1:02:");
        assert_eq!(progress_line(&sample(), 0), "");
    }
}
