//! Raw mode and redirects on the real binary: off by default (a 3xx is
//! recorded as it is, like wrk), `--follow-redirects` follows the chain as
//! one request under the first URL (303 → GET without the body, another
//! origin on its own kept connection), and a loop fails as
//! `too many redirects (10)`. Both I/O drivers.

mod common;
#[path = "common/http_server.rs"]
mod http_server;

use std::process::Output;

use common::{aggregated, csv_rows, one_user_second, text};
use http_server::TestServer;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn redirect(status: &str, location: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status}\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n").into_bytes()
}

/// One user on one shard for a second; the stats and failures CSV rows.
fn run(name: &str, io: &str, extra: &[&str]) -> (Output, Vec<Vec<String>>, String) {
    let (out, dir) = one_user_second(name, io, extra);
    let rows = csv_rows(&dir.join("r_stats.csv"));
    let failures = std::fs::read_to_string(dir.join("r_failures.csv")).unwrap_or_default();
    assert_eq!(
        aggregated(&dir.join("r_stats.csv"))["Request Count"],
        rows[1][2],
        "one entry only: {rows:?}"
    );
    (out, rows, failures)
}

fn count(rows: &[Vec<String>], col: usize) -> usize {
    rows[1][col].parse().unwrap()
}

#[test]
fn not_followed_by_default() {
    let server = TestServer::serve(|conn, req| match req.path() {
        "/start" => conn.write(&redirect("302 Found", "/end")),
        _ => conn.write(OK),
    });
    let (out, rows, _) = run(
        "redir-off",
        "auto",
        &[&format!("http://{}/start", server.addr)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(&rows[1][..2], ["GET", "/start"]);
    assert_eq!(count(&rows, 3), 0, "a 302 is a success: {rows:?}");
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert!(paths.iter().all(|p| p == "/start"), "followed: {paths:?}");
    assert!(count(&rows, 2) > 0);
}

fn follows_a_chain(io: &str) {
    let other = TestServer::serve(|conn, _| conn.write(OK));
    let other_url = format!("http://{}/end", other.addr);
    let server = TestServer::serve(move |conn, req| match req.path() {
        "/start" => conn.write(&redirect("303 See Other", "mid?x=1")),
        "/mid?x=1" => conn.write(&redirect("307 Temporary Redirect", &other_url)),
        _ => conn.write(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"),
    });
    let (out, rows, _) = run(
        &format!("redir-on-{io}"),
        io,
        &[
            "--follow-redirects",
            "-d",
            "payload",
            "--header",
            "Content-Type: text/plain",
            "--header",
            "Authorization: Bearer t",
            &format!("http://{}/start", server.addr),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // One entry, the first request's: the chain is one request.
    assert_eq!(&rows[1][..2], ["POST", "/start"], "{rows:?}");
    assert_eq!(count(&rows, 3), 0, "{rows:?}");
    let chains = count(&rows, 2);
    assert!(chains > 0);
    let seen = server.requests();
    let starts: Vec<_> = seen.iter().filter(|r| r.path() == "/start").collect();
    let mids: Vec<_> = seen.iter().filter(|r| r.path() == "/mid?x=1").collect();
    // Every counted chain reached the end; a chain cut by the stop is not counted.
    assert!(chains <= other.requests().len() && other.requests().len() <= chains + 1);
    assert!(starts.len() <= chains + 1 && mids.len() <= chains + 1);
    assert!(starts
        .iter()
        .all(|r| r.body == b"payload" && r.method() == "POST"));
    // 303: GET, without the body or its Content-Type; Authorization stays
    // on the same origin.
    for m in &mids {
        assert_eq!(m.method(), "GET");
        assert!(
            m.body.is_empty() && m.header("content-length").is_none(),
            "{}",
            m.head
        );
        assert_eq!(m.header("content-type"), None, "{}", m.head);
        assert_eq!(m.header("authorization"), Some("Bearer t"));
    }
    // 307 to another origin: the method stays, Authorization does not
    // cross, Host is the new origin's, and the connection is kept.
    for e in other.requests() {
        assert_eq!(e.method(), "GET");
        assert_eq!(e.header("authorization"), None, "{}", e.head);
        assert_eq!(e.header("host"), Some(other.addr.to_string().as_str()));
    }
    assert_eq!(other.accepted(), 1, "the other origin's connection is kept");
    assert_eq!(server.accepted(), 1);
}

#[test]
fn follows_a_chain_io_uring() {
    follows_a_chain("uring");
}

#[test]
fn follows_a_chain_epoll() {
    follows_a_chain("epoll");
}

#[test]
fn a_loop_fails_after_ten_hops() {
    let server = TestServer::serve(|conn, _| conn.write(&redirect("302 Found", "/loop")));
    let (out, rows, failures) = run(
        "redir-loop",
        "auto",
        &[
            "--follow-redirects",
            &format!("http://{}/loop", server.addr),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let (total, failed) = (count(&rows, 2), count(&rows, 3));
    assert!(total > 0 && failed == total, "{rows:?}");
    assert!(
        failures.contains("GET,/loop,too many redirects (10),"),
        "{failures}"
    );
    // Each chain: the first request and ten hops; the one cut by the stop
    // may be partial.
    let seen = server.requests().len();
    assert!(
        seen >= total * 11 && seen <= (total + 1) * 11,
        "{seen} for {total}"
    );
}

#[test]
fn a_bad_location_is_a_named_failure() {
    let server = TestServer::serve(|conn, _| conn.write(&redirect("301 Moved", "ftp://x/y")));
    let (out, rows, failures) = run(
        "redir-bad",
        "auto",
        &["--follow-redirects", &format!("http://{}/a", server.addr)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(count(&rows, 2), count(&rows, 3));
    assert!(
        failures.contains("invalid redirect Location 'ftp://x/y'"),
        "{failures}"
    );
}
