//! Helpers for the shape tests (`shape_*.rs`): a test server that counts
//! the connections open right now (one per user: users keep theirs
//! alive) and logs each request's path with its arrival time, the
//! expected user count of a stages schedule, and script files.
//! Included with `#[path = "shape_support/mod.rs"] mod shape_support;`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub struct OpenServer {
    pub addr: SocketAddr,
    open: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
}

impl OpenServer {
    /// Answer every request `200 ok` on keep-alive connections.
    pub fn start() -> OpenServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (o, l, s) = (open.clone(), log.clone(), stop.clone());
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        o.fetch_add(1, Ordering::SeqCst);
                        let (o, l, s) = (o.clone(), l.clone(), s.clone());
                        thread::spawn(move || {
                            serve(stream, &l, &s);
                            o.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        OpenServer {
            addr,
            open,
            log,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// (arrival, path) of every request so far.
    pub fn log(&self) -> Vec<(Instant, String)> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for OpenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut stream: TcpStream, log: &Mutex<Vec<(Instant, String)>>, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => return,
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        // Requests in these tests carry no body.
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        log.lock().unwrap().push((Instant::now(), path));
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if stream.write_all(reply).is_err() {
            return;
        }
    }
}

/// One users stage: (duration s, users, spawn_rate).
pub type StageSpec = (f64, u32, f64);

/// The engine's ramp under `stages` from t = 0, sampled every 10 ms:
/// (t, users running), the first user of a ramp at once, the next after
/// 1/rate s, as the engine does.
pub fn schedule(stages: &[StageSpec]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut current = 0.0f64;
    let mut target = 0.0f64;
    let mut t = 0.0;
    let mut end = 0.0;
    for &(duration, users, rate) in stages {
        end += duration;
        let new = f64::from(users);
        if new != target {
            target = new;
            // The first step of a ramp is immediate.
            current = if current < target {
                (current.floor() + 1.0).min(target)
            } else {
                (current.ceil() - 1.0).max(target)
            };
        }
        while t < end {
            out.push((t, current.floor()));
            let step = rate * 0.01;
            current = if current < target {
                (current + step).min(target)
            } else {
                (current - step).max(target)
            };
            t += 0.01;
        }
    }
    out
}

/// A cluster master's ramp under `stages` (Locust's): `max(1, floor(rate))`
/// users at once, the first step at once, the next `step / rate` s later.
pub fn master_schedule(stages: &[StageSpec]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let (mut current, mut target) = (0u32, 0u32);
    let (mut t, mut end, mut next_step) = (0.0f64, 0.0f64, 0.0f64);
    for &(duration, users, rate) in stages {
        end += duration;
        if users != target {
            target = users;
            next_step = t;
        }
        let step = (rate.floor() as u32).max(1);
        while t < end {
            if current != target && t >= next_step - 1e-9 {
                current = if current < target {
                    (current + step).min(target)
                } else {
                    current.saturating_sub(step).max(target)
                };
                next_step = t + f64::from(step) / rate;
            }
            out.push((t, f64::from(current)));
            t += 0.01;
        }
    }
    out
}

/// Whether `seen` users at `t` fit the schedule, allowing the run to lag
/// it by up to `lag` s (start-up, the shape's 1 s tick) and `slack` users.
pub fn fits(sched: &[(f64, f64)], t: f64, seen: usize, lag: f64, slack: f64) -> bool {
    let mut window: Vec<f64> = sched
        .iter()
        .filter(|(at, _)| *at >= t - lag - 0.01 && *at <= t + 0.01)
        .map(|(_, u)| *u)
        .collect();
    // Before the run started, no user.
    if t - lag < 0.0 {
        window.push(0.0);
    }
    if window.is_empty() {
        return true;
    }
    let lo = window.iter().cloned().fold(f64::INFINITY, f64::min) - slack;
    let hi = window.iter().cloned().fold(f64::NEG_INFINITY, f64::max) + slack;
    let seen = seen as f64;
    seen >= lo && seen <= hi
}

/// Sample `server.open()` every 250 ms for `total` s from `t0`.
pub fn sample(server: &OpenServer, t0: Instant, total: f64) -> Vec<(f64, usize)> {
    let mut out = Vec::new();
    while t0.elapsed().as_secs_f64() < total {
        out.push((t0.elapsed().as_secs_f64(), server.open()));
        thread::sleep(Duration::from_millis(250));
    }
    out
}

/// Samples that do not fit, as a readable list (empty: all fit).
pub fn misfits(
    sched: &[(f64, f64)],
    samples: &[(f64, usize)],
    lag: f64,
    slack: f64,
) -> Vec<String> {
    samples
        .iter()
        .filter(|(t, seen)| !fits(sched, *t, *seen, lag, slack))
        .map(|(t, seen)| {
            let at = sched
                .iter()
                .find(|(s, _)| *s >= *t)
                .map_or(f64::NAN, |(_, u)| *u);
            format!("t={t:.2}s saw {seen}, schedule {at}")
        })
        .collect()
}

/// Write `text` as `<dir>/<name>` and return its path.
pub fn write_script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
