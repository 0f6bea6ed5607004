//! Request deadlines in raw mode end the op in flight (a read the server
//! never answers, a write the server never reads) and release its socket:
//! the locusta binary against a 127.0.0.1 server that accepts and then
//! hangs, on both drivers, plain and pipelined. Each run records a timeout
//! per request, holds a bounded number of fds while it runs (sampled from
//! /proc/PID/fd: a socket kept per timed-out request would grow without
//! bound), replaces the connection after each timeout, and ends on time.

mod common;

use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{aggregated, csv_rows, locusta, temp_dir, text};

/// Accepts every connection and never answers. `drain`: reads (and drops)
/// what arrives, so a request is taken and a closed connection let go;
/// else reads nothing, so a large request fills the socket buffers and the
/// client's write blocks.
struct Hanging {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Hanging {
    fn start(drain: bool) -> Hanging {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (acc, st) = (accepted.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut open: Vec<TcpStream> = Vec::new();
            let mut scratch = vec![0u8; 64 * 1024];
            while !st.load(Ordering::SeqCst) {
                while let Ok((s, _)) = listener.accept() {
                    s.set_nonblocking(true).unwrap();
                    acc.fetch_add(1, Ordering::SeqCst);
                    open.push(s);
                }
                if drain {
                    open.retain_mut(|s| loop {
                        match s.read(&mut scratch) {
                            Ok(0) => break false,
                            Ok(_) => {}
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
                            Err(_) => break false,
                        }
                    });
                }
                thread::sleep(Duration::from_millis(5));
            }
        });
        Hanging {
            port,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What one bounded run showed.
struct Run {
    requests: u64,
    failures: u64,
    /// Every failure row's error.
    errors: Vec<String>,
    max_fds: usize,
    took: Duration,
    users: usize,
}

impl Run {
    /// Every request failed with `error`, at least `at_least` of them; the
    /// fds stayed at a socket per user plus the runtime's and the process's
    /// own (a socket kept per timed-out request would be hundreds); the run
    /// ended on time.
    fn only_timeouts(&self, error: &str, at_least: u64) {
        assert_eq!(self.errors, [error], "only timeouts");
        assert_eq!(self.requests, self.failures, "every request timed out");
        assert!(
            self.failures >= at_least,
            "timeouts recorded: {}",
            self.failures
        );
        let bound = self.users + 32;
        assert!(self.max_fds <= bound, "fds while running: {}", self.max_fds);
        assert!(
            self.took < Duration::from_secs(10),
            "ended after {:?}",
            self.took
        );
    }
}

/// `users` raw-mode users on one shard on driver `io` for `secs` seconds,
/// with `extra` flags; the child's fds sampled every 20 ms.
fn run(name: &str, io: &str, users: usize, secs: u64, url: &str, extra: &[&str]) -> Run {
    let dir = temp_dir(name);
    let prefix = dir.join("r");
    let started = Instant::now();
    let mut child = locusta()
        .args(["--headless", "-u", &users.to_string(), "-r", "1000"])
        .args(["-t", &format!("{secs}s"), "-s", "0"])
        .args(["--only-summary", "--io", io, "--shards", "1"])
        .args(["--csv", prefix.to_str().unwrap()])
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn locusta");
    let fd_dir = format!("/proc/{}/fd", child.id());
    let limit = Duration::from_secs(secs + 20);
    let mut max_fds = 0;
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{name}: did not end within {limit:?}: {}",
                text(&out.stderr)
            );
        }
        if let Ok(d) = std::fs::read_dir(&fd_dir) {
            max_fds = max_fds.max(d.count());
        }
        thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{name}: failures exit 1\n{}",
        text(&out.stderr)
    );
    let row = aggregated(&dir.join("r_stats.csv"));
    let count = |k: &str| -> u64 { row[k].parse().unwrap() };
    let errors = failure_errors(&dir.join("r_failures.csv"));
    eprintln!(
        "{name}: {} requests, {} failures {errors:?}, max {max_fds} fds, {took:?}",
        row["Request Count"], row["Failure Count"]
    );
    Run {
        requests: count("Request Count"),
        failures: count("Failure Count"),
        errors,
        max_fds,
        took,
        users,
    }
}

fn failure_errors(path: &Path) -> Vec<String> {
    csv_rows(path)
        .into_iter()
        .skip(1)
        .map(|r| r.get(2).cloned().unwrap_or_default())
        .collect()
}

/// 20 users whose every request waits for a response that never comes,
/// 100 ms each, for 3 s: hundreds of timed-out reads.
fn unanswered_reads(io: &str) {
    let server = Hanging::start(true);
    let r = run(
        &format!("reads-{io}"),
        io,
        20,
        3,
        &server.url(),
        &["--timeout", "100ms"],
    );
    // 20 users × 3 s / 0.1 s = 600 when the machine is idle; loose for a
    // busy one, but far above what a stuck read (none finishes) gives.
    r.only_timeouts("timeout after 100ms", 150);
    // Each timeout drops its connection; the next request connects anew.
    let accepted = server.accepted.load(Ordering::SeqCst) as u64;
    assert!(accepted >= r.failures, "{accepted} connections");
}

/// 4 users POSTing 16 MiB to a server that reads nothing: every write
/// blocks on full socket buffers until its 300 ms deadline.
fn unread_writes(io: &str) {
    let dir = temp_dir(&format!("writes-body-{io}"));
    let body = dir.join("body");
    std::fs::write(&body, vec![b'x'; 16 << 20]).unwrap();
    let server = Hanging::start(false);
    let r = run(
        &format!("writes-{io}"),
        io,
        4,
        2,
        &server.url(),
        &["--timeout", "300ms", "--data-file", body.to_str().unwrap()],
    );
    // 4 users × 2 s / 0.3 s ≈ 26 when idle; a stuck write gives none.
    r.only_timeouts("timeout after 300ms", 8);
    let accepted = server.accepted.load(Ordering::SeqCst) as u64;
    assert!(accepted >= r.failures, "{accepted} connections");
}

/// Pipelined batches of 4 that are never answered: each batch's timeout
/// fails its 4 requests.
fn unanswered_batches(io: &str) {
    let server = Hanging::start(true);
    let r = run(
        &format!("batches-{io}"),
        io,
        10,
        2,
        &server.url(),
        &["--timeout", "100ms", "--pipeline", "4"],
    );
    r.only_timeouts("timeout after 100ms", 4 * 50);
    assert_eq!(r.failures % 4, 0, "whole batches: {}", r.failures);
}

#[test]
fn unanswered_reads_uring() {
    unanswered_reads("uring");
}

#[test]
fn unanswered_reads_epoll() {
    unanswered_reads("epoll");
}

#[test]
fn unread_writes_uring() {
    unread_writes("uring");
}

#[test]
fn unread_writes_epoll() {
    unread_writes("epoll");
}

#[test]
fn unanswered_batches_uring() {
    unanswered_batches("uring");
}

#[test]
fn unanswered_batches_epoll() {
    unanswered_batches("epoll");
}
