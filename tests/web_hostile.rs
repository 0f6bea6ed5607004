//! The web server under abuse, on a real run: 1,000 idle TCP connections
//! held open, and clients sending binary garbage, a huge header, a slow
//! trickle of header bytes and a stream of half requests, all at once.
//! Meanwhile `/stats/requests` must keep answering within a second, the
//! trickling client must be dropped (header timeout), the run must end
//! when told (SIGTERM, exit 0) and stderr must show no panic. Counts and
//! times are bounded; every socket is on 127.0.0.1.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;
#[path = "web_support/client.rs"]
mod web_client;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use cluster_common::Proc;
use common::{locusta, ok, temp_dir, TestServer};
use web_client::{get, web_addr};

const IDLE: usize = 1_000;
const LIMIT: Duration = Duration::from_secs(30);
const SIGTERM: i32 = 15;

/// Room for the idle connections in this process (the soft limit may be
/// 1,024 here; the hard one is far higher on the CI box).
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max.min(20_000);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Write `bytes`, then read what comes back until close or 15 s.
fn send_and_read(addr: SocketAddr, bytes: &[u8]) -> (Vec<u8>, Duration) {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    // The server may close before all of it is written: not an error.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (out, t0.elapsed())
}

fn status_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn idle_crowds_and_garbage_do_not_starve_the_api() {
    raise_nofile();
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("web-hostile");
    let mut p = Proc::spawn(
        &dir,
        "locusta",
        locusta()
            .args([
                "--headless",
                "--only-summary",
                "-u",
                "2",
                "-r",
                "100",
                "-t",
                "60s",
            ])
            .args(["--shards", "1", "--web", "--web-port", "0"])
            .arg(server.url("/")),
    );
    let addr = web_addr(|| p.stderr(), LIMIT);

    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("idle connection {i}: {e}")))
        .collect();

    // The abusers, each on its own thread, all bounded.
    let garbage = std::thread::spawn(move || {
        let mut junk = Vec::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..4096 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk.push(x as u8);
        }
        send_and_read(addr, &junk)
    });
    let huge = std::thread::spawn(move || {
        let mut req = b"GET /stats/requests HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        req.extend(std::iter::repeat_n(b'a', 1024 * 1024));
        req.extend_from_slice(b"\r\n\r\n");
        send_and_read(addr, &req)
    });
    let slow = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        // One byte every 200 ms, never a complete header, for 20 s at most.
        let line = b"GET /stats/requests HTTP/1.1\r\nX-Slow: ";
        let mut sent = 0usize;
        while t0.elapsed() < Duration::from_secs(20) {
            let byte = line.get(sent).copied().unwrap_or(b'z');
            if s.write_all(&[byte]).is_err() {
                return Some(t0.elapsed());
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    });
    // Bodies announced far past the limit, that never come: each is
    // answered (413 over the limit, or 408 when the body stalls), not held.
    let halves: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let (out, took) = send_and_read(
                    addr,
                    b"POST /swarm HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nuser_count=",
                );
                (status_line(&out), took)
            })
        })
        .collect();

    // Meanwhile the API answers, each time within a second.
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        let t0 = Instant::now();
        let r = get(addr, "/stats/requests");
        let took = t0.elapsed();
        assert_eq!(r.status, 200, "{}", r.text());
        let state = r.json()["state"].clone();
        assert!(state == "running" || state == "spawning", "{state}");
        slowest = slowest.max(took);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        slowest < Duration::from_secs(1),
        "slowest /stats/requests: {slowest:?}"
    );
    eprintln!("slowest /stats/requests beside {IDLE} idle connections: {slowest:?}");

    let (junk_reply, _) = garbage.join().unwrap();
    let junk_status = status_line(&junk_reply);
    assert!(
        junk_reply.is_empty() || junk_status.contains(" 400 "),
        "garbage got: {junk_status}"
    );
    let (huge_reply, _) = huge.join().unwrap();
    let huge_status = status_line(&huge_reply);
    assert!(
        huge_reply.is_empty() || huge_status.contains(" 431 ") || huge_status.contains(" 400 "),
        "a 1 MiB header got: {huge_status}"
    );
    for h in halves {
        let (s, took) = h.join().unwrap();
        assert!(
            s.contains(" 413 ") || s.contains(" 408 ") || s.contains(" 400 "),
            "a body announced at 99,999,999 bytes got {s:?} after {took:?}"
        );
        assert!(took < Duration::from_secs(15), "held {took:?}");
    }
    let dropped = slow.join().unwrap();
    assert!(
        dropped.is_some_and(|t| t < Duration::from_secs(15)),
        "the trickling client was not dropped: {dropped:?}"
    );
    // Still answering after all of it, idle crowd still there.
    assert_eq!(get(addr, "/stats/requests").status, 200);
    drop(idle);

    p.signal(SIGTERM);
    let status = p.wait(LIMIT);
    let stderr = p.stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("Got a stop signal"), "{stderr}");
}
