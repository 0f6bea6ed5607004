//! `--pipeline N` on the real binary against in-process servers that hold
//! their answers until all N requests of a batch arrived: N really are in
//! flight, each written request is counted once (successes + failures ==
//! requests), a server closing after k of N gives k successes and N-k
//! failures, and bytes after the N-th response close the connection. Both
//! I/O drivers.

mod common;
#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/tls_server.rs"]
mod tls_server;

use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{aggregated, locusta, ok, one_user_second, run_bounded, temp_dir, text};
use http_server::{ServerConn, TestServer};

const DEPTH: usize = 4;
const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// Read a whole batch before answering: a client that waits for each
/// response before the next request never gets one.
fn read_batch(conn: &mut ServerConn) -> bool {
    (0..DEPTH).all(|_| conn.read_request().is_some())
}

/// One user on one shard for a second with `--pipeline 4`: (requests,
/// failures) from the stats CSV, the failures CSV, the output.
fn run(name: &str, io: &str, url: &str) -> (usize, usize, String, Output) {
    let (out, dir) = one_user_second(name, io, &["--pipeline", &DEPTH.to_string(), url]);
    let agg = aggregated(&dir.join("r_stats.csv"));
    let failures = std::fs::read_to_string(dir.join("r_failures.csv")).unwrap_or_default();
    (
        agg["Request Count"].parse().unwrap(),
        agg["Failure Count"].parse().unwrap(),
        failures,
        out,
    )
}

fn n_in_flight(io: &str) {
    let answered = Arc::new(AtomicUsize::new(0));
    let a = answered.clone();
    let server = TestServer::start(move |conn| {
        while read_batch(conn) {
            // All N answers in one write, as a pipelining server may.
            if !conn.write(OK.repeat(DEPTH).as_bytes()) {
                return;
            }
            a.fetch_add(DEPTH, Ordering::SeqCst);
        }
    });
    let (total, failed, _, out) = run(
        &format!("pipe-{io}"),
        io,
        &format!("http://{}/p", server.addr),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let answered = answered.load(Ordering::SeqCst);
    assert_eq!(failed, 0);
    assert!(total >= DEPTH * 5, "only {total} requests");
    assert!(
        answered >= total && answered <= total + DEPTH,
        "{answered} vs {total}"
    );
    assert_eq!(server.accepted(), 1, "one kept-alive connection");
}

#[test]
fn n_requests_in_flight_io_uring() {
    n_in_flight("uring");
}

#[test]
fn n_requests_in_flight_epoll() {
    n_in_flight("epoll");
}

/// The server answers `k` of each batch, then ends the connection: by
/// closing it, or by saying `Connection: close` on the k-th answer.
fn closes_after(io: &str, k: usize, say_close: bool) {
    let server = TestServer::start(move |conn| {
        if !read_batch(conn) {
            return;
        }
        for j in 0..k {
            let last = j + 1 == k;
            let reply = if last && say_close {
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
            } else {
                OK
            };
            if !conn.write(reply.as_bytes()) {
                return;
            }
        }
        // Returning closes the connection.
    });
    let (total, failed, failures, out) = run(
        &format!("pipe-close-{io}-{k}-{say_close}"),
        io,
        &format!("http://{}/c", server.addr),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(total >= DEPTH * 3, "only {total} requests");
    // Every batch: k successes and N-k failures, each written request
    // once (a batch cut by the stop has counted only what arrived).
    let batches = total / DEPTH;
    assert!(total % DEPTH <= k, "{total}");
    assert_eq!(
        failed,
        batches * (DEPTH - k),
        "{total} total, {failed} failed"
    );
    assert!(
        failures.contains("GET,/c,connection closed before response,"),
        "{failures}"
    );
    // A connection per batch; the server read every request counted.
    let accepted = server.accepted();
    assert!(
        accepted >= batches && accepted <= batches + 1,
        "{accepted} for {batches}"
    );
    assert!(server.requests().len() >= total);
}

#[test]
fn server_closes_after_k_of_n_io_uring() {
    closes_after("uring", 2, false);
}

#[test]
fn server_closes_after_k_of_n_epoll() {
    closes_after("epoll", 2, false);
}

#[test]
fn connection_close_mid_pipeline() {
    closes_after("auto", 1, true);
}

#[test]
fn an_extra_response_closes_the_connection() {
    let server = TestServer::start(|conn| {
        while read_batch(conn) {
            if !conn.write(OK.repeat(DEPTH + 1).as_bytes()) {
                return;
            }
        }
    });
    let (total, failed, _, out) = run("pipe-extra", "auto", &format!("http://{}/x", server.addr));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(failed, 0);
    let batches = total / DEPTH;
    assert!(batches >= 3, "{total}");
    // The extra answer belongs to no request: never counted, never reused.
    let accepted = server.accepted();
    assert!(
        accepted >= batches && accepted <= batches + 1,
        "{accepted} for {batches}"
    );
}

/// After one good answer: garbage, or silence past the request timeout.
/// Either way the batch is 1 success and N-1 failures under that name.
#[test]
fn garbage_or_silence_mid_pipeline_fails_the_rest() {
    for (hang, name) in [
        (false, "malformed status line"),
        (true, "timeout after 300ms"),
    ] {
        let server = TestServer::start(move |conn| {
            while read_batch(conn) {
                let rest: &[u8] = if hang { b"" } else { b"NOT HTTP\r\n\r\n" };
                if !conn.write(&[OK.as_bytes(), rest].concat()) {
                    return;
                }
                if hang {
                    conn.pause(Duration::from_secs(2));
                }
            }
        });
        let dir = temp_dir(&format!("pipe-bad-{hang}"));
        let prefix = dir.join("p");
        let out = run_bounded(
            locusta()
                .args([
                    "--headless",
                    "-u",
                    "1",
                    "-r",
                    "10",
                    "-t",
                    "2s",
                    "--only-summary",
                ])
                .args([
                    "--shards",
                    "1",
                    "--timeout",
                    "300ms",
                    "--csv",
                    prefix.to_str().unwrap(),
                ])
                .args(["--pipeline", &DEPTH.to_string()])
                .arg(format!("http://{}/b", server.addr)),
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let agg = aggregated(&dir.join("p_stats.csv"));
        let total: usize = agg["Request Count"].parse().unwrap();
        let failed: usize = agg["Failure Count"].parse().unwrap();
        // A batch cut by the stop has counted only its one answer.
        assert!(total >= DEPTH && total % DEPTH <= 1, "{total}");
        assert_eq!(
            failed,
            total / DEPTH * (DEPTH - 1),
            "{name}: {total} {failed}"
        );
        let failures = std::fs::read_to_string(dir.join("p_failures.csv")).unwrap();
        assert!(failures.contains(&format!("GET,/b,{name},")), "{failures}");
    }
}

/// Over https: the batch is one TLS write, the responses come back through
/// rustls, and the connection (one handshake per user) is kept.
#[test]
fn pipelined_over_tls() {
    let ca = tls_server::Ca::new("pipeline test CA");
    let leaf = ca.server(&["127.0.0.1"]);
    let server = tls_server::TlsServer::start(
        &leaf,
        None,
        tls_server::Behaviour::Serve(Box::new(|_| ok("tls"))),
    );
    let dir = temp_dir("pipe-tls");
    let ca_file = tls_server::write_file(&dir, "ca.pem", &ca.pem());
    let prefix = dir.join("p");
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "2",
                "-r",
                "10",
                "-t",
                "1s",
                "--only-summary",
            ])
            .args(["--shards", "1", "--csv", prefix.to_str().unwrap()])
            .args(["--ca-cert", ca_file.to_str().unwrap(), "--pipeline", "8"])
            .arg(server.url("127.0.0.1", "/t")),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let agg = aggregated(&dir.join("p_stats.csv"));
    let total: usize = agg["Request Count"].parse().unwrap();
    assert_eq!(agg["Failure Count"], "0");
    assert!(total >= 16, "only {total}");
    assert!(server.requests().len() >= total);
    // One handshake per user (the second may resume the first's session).
    assert_eq!(server.full() + server.resumed(), 2, "{:?}", server.errors());
}

/// Nothing listens: each batch's N requests fail as one connect's error,
/// and the users pause between connects as in the one-at-a-time loop (the
/// run still ends on time).
#[test]
fn refused_connects_fail_whole_batches_and_back_off() {
    let port = common::dead_port();
    let (total, failed, failures, out) = run(
        "pipe-refused",
        "auto",
        &format!("http://127.0.0.1:{port}/r"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        total > 0 && failed == total && total % DEPTH == 0,
        "{total} {failed}"
    );
    // Backoff: 10 ms doubling to 1 s, so at most a few dozen connects a second.
    assert!(total <= DEPTH * 100, "no backoff: {total} failures in 1 s");
    assert!(
        failures.contains("GET,/r,connection refused,"),
        "{failures}"
    );
}

/// A server that closes after each whole batch: the client sees the close
/// before the next batch (or, if the next batch is already on its way, the
/// batch of idempotent GETs is written once more on a fresh connection).
/// Either way nothing fails.
#[test]
fn a_close_after_whole_batches_is_no_failure() {
    let server = TestServer::start(|conn| {
        if read_batch(conn) {
            conn.write(OK.repeat(DEPTH).as_bytes());
        }
    });
    let (total, failed, failures, out) =
        run("pipe-whole", "auto", &format!("http://{}/w", server.addr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{failures}\n{}",
        text(&out.stderr)
    );
    assert_eq!(failed, 0);
    assert!(total >= DEPTH * 3, "{total}");
    let batches = total / DEPTH;
    assert!(
        server.accepted() >= batches,
        "{} for {batches}",
        server.accepted()
    );
}
