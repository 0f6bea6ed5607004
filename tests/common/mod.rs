//! Shared test helpers: an in-process HTTP server on an ephemeral 127.0.0.1
//! port that records what arrived on the wire, and a runner for the real
//! `locusta` binary. Every server and run here is bounded in time.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the server does with one request.
pub enum Reply {
    /// Write these bytes, keep the connection open for the next request.
    Bytes(Vec<u8>),
    /// Write these bytes, then close the connection.
    BytesThenClose(Vec<u8>),
    /// Never answer; hold the connection until the client goes away.
    Hang,
}

pub fn ok(body: &str) -> Reply {
    Reply::Bytes(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

pub fn status(code: u16, reason: &str) -> Reply {
    Reply::Bytes(format!("HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\n\r\n").into_bytes())
}

type Handler = dyn Fn(&str) -> Reply + Send + Sync;

pub struct TestServer {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    /// Serve with `handler(path)` deciding each reply.
    pub fn start(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (c, r, s) = (connections.clone(), requests.clone(), stop.clone());
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        let (h, r, s) = (handler.clone(), r.clone(), s.clone());
                        thread::spawn(move || serve(stream, &*h, &r, &s));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        TestServer {
            addr,
            connections,
            requests,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Request heads as they arrived, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut stream: TcpStream, handler: &Handler, log: &Mutex<Vec<String>>, stop: &AtomicBool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Some(end) = find(&buf, b"\r\n\r\n") else {
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) => continue,
                Err(_) => return,
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        log.lock().unwrap().push(head);
        match handler(&path) {
            Reply::Bytes(b) => {
                if stream.write_all(&b).is_err() {
                    return;
                }
            }
            Reply::BytesThenClose(b) => {
                let _ = stream.write_all(&b);
                return;
            }
            Reply::Hang => {
                // Hold the socket until the client closes it or the test ends.
                while !stop.load(Ordering::Relaxed) {
                    match stream.read(&mut chunk) {
                        Ok(0) => return,
                        Err(e) if !is_timeout(&e) => return,
                        _ => {}
                    }
                }
                return;
            }
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A port where nothing listens (bound, then released).
pub fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub fn locusta() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_locusta"));
    // Keep tests independent of the developer's environment and cwd.
    for (k, _) in std::env::vars() {
        if k.starts_with("LOCUSTA_") {
            c.env_remove(k);
        }
    }
    c.stdin(Stdio::null());
    c
}

/// Run to completion, killing it if it outlives `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn locusta");
    wait_bounded(child, limit)
}

pub fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "locusta did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh directory for one test's CSV files.
/// One raw-mode user on one shard for a second, headless, on I/O driver
/// `io`, with `extra` flags (and URLs); its CSV files are `<dir>/r_*.csv`.
pub fn one_user_second(name: &str, io: &str, extra: &[&str]) -> (Output, PathBuf) {
    let dir = temp_dir(name);
    let prefix = dir.join("r");
    let out = run_bounded(
        locusta()
            .args(["--headless", "-u", "1", "-r", "10", "-t", "1s"])
            .args(["--only-summary", "--io", io, "--shards", "1"])
            .args(["--csv", prefix.to_str().unwrap()])
            .args(extra),
        Duration::from_secs(30),
    );
    (out, dir)
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("locusta-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Rows of a CSV file written by locusta (no quoted commas in our tests).
pub fn csv_rows(path: &std::path::Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// The `Aggregated` row of a `_stats.csv`, as column name → value.
pub fn aggregated(path: &std::path::Path) -> std::collections::HashMap<String, String> {
    let rows = csv_rows(path);
    let header = &rows[0];
    let last = rows.last().unwrap();
    assert_eq!(last[1], "Aggregated", "Aggregated must be the last row");
    header.iter().cloned().zip(last.iter().cloned()).collect()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Run `cmd`'s child with `resource` limited to `limit`, soft and hard
/// (locusta raises its soft limits to the hard ones at start).
pub fn with_rlimit(
    cmd: &mut Command,
    resource: libc::__rlimit_resource_t,
    limit: u64,
) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(resource, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// [`with_rlimit`] on the open-files limit.
pub fn with_nofile(cmd: &mut Command, limit: u64) -> &mut Command {
    with_rlimit(cmd, libc::RLIMIT_NOFILE, limit)
}

/// `locust` as a command, or `None` (and a message) when it is missing.
pub fn locust() -> Option<Command> {
    // `locust` on PATH, else the module (pip may put no script on PATH).
    let candidates: [&[&str]; 2] = [&["locust"], &["python3", "-m", "locust"]];
    let found = candidates.into_iter().find(|argv| {
        Command::new(argv[0])
            .args(&argv[1..])
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(argv) = found else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "locust is not installed: .ci/run must `pip install locust==2.47.0`"
        );
        eprintln!("skipped: locust is not installed (pip install locust==2.47.0)");
        return None;
    };
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..]);
    // Locust workers and masters read LOCUST_* settings; start clean.
    for (k, _) in std::env::vars() {
        if k.starts_with("LOCUST_") {
            c.env_remove(k);
        }
    }
    Some(c)
}
