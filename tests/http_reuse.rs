//! Connection reuse against hostile servers, on both drivers: which failed
//! requests may be sent again (RFC 9110 §9.2.2: only idempotent ones, only
//! on a reused connection, only before any response byte), and bytes that
//! arrive on an idle keep-alive connection (extra body bytes, an unsolicited
//! response) never being read as the next request's response. Plus the
//! status-line and header-count limits, over a real socket.

#[macro_use]
#[path = "common/drivers.rs"]
mod drivers;
#[path = "common/http_server.rs"]
mod http_server;

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_server::TestServer;
use locusta::http::{write_request, ClientConfig, Connection, DiscardBody, HttpError, Method};

on_both_drivers!(
    post_reset_after_being_read_is_a_failure,
    post_closed_after_being_read_is_a_failure,
    get_reset_after_being_read_is_retried_once,
    get_retry_that_fails_again_is_a_failure,
    extra_body_bytes_in_a_later_segment_are_not_a_response,
    unsolicited_response_is_not_matched_to_the_next_request,
    status_outside_100_to_999_is_malformed,
    a_hundred_headers_pass_and_too_many_fail,
);

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn cfg() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

fn request(server: &TestServer, method: Method, path: &str) -> Rc<Vec<u8>> {
    let mut buf = Vec::new();
    let host = server.addr.to_string();
    write_request(&mut buf, method, path, &host, &[], b"{\"n\":1}");
    Rc::new(buf)
}

/// Answers the first request on each connection; reads the second, then
/// closes without a word (RST when `reset`, else FIN).
fn answer_one_then_drop_the_next(reset: bool) -> TestServer {
    TestServer::start(move |conn| {
        if conn.read_request().is_none() || !conn.write(OK) {
            return;
        }
        if conn.read_request().is_some() && reset {
            conn.reset_on_close();
        }
    })
}

/// Every POST the server read is either counted as a success or as a
/// failure: none is sent twice behind the caller's back.
async fn posts_are_never_resent(reset: bool, expected: HttpError) {
    let server = answer_one_then_drop_the_next(reset);
    let req = request(&server, Method::Post, "/cart");
    let mut conn = Connection::new(server.addr, cfg());
    let (mut ok, mut failed) = (0, 0);
    for i in 0..20 {
        match conn.send(&req, Method::Post, &mut DiscardBody).await {
            Ok(info) => {
                assert_eq!(info.status, 200, "request {i}");
                ok += 1;
            }
            Err(e) => {
                assert_eq!(e, expected, "request {i}");
                failed += 1;
            }
        }
    }
    assert_eq!((ok, failed), (10, 10), "each second POST fails");
    assert_eq!(server.requests().len(), 20, "the server saw each POST once");
    assert_eq!(server.accepted(), 10);
}

async fn post_reset_after_being_read_is_a_failure() {
    posts_are_never_resent(true, HttpError::ConnectionReset).await;
}

async fn post_closed_after_being_read_is_a_failure() {
    posts_are_never_resent(false, HttpError::ClosedBeforeResponse).await;
}

/// A GET may be sent again (once, on a fresh connection): each second GET
/// on a connection is reset, retried, and answered as the first of the next.
async fn get_reset_after_being_read_is_retried_once() {
    let server = answer_one_then_drop_the_next(true);
    let req = request(&server, Method::Get, "/");
    let mut conn = Connection::new(server.addr, cfg());
    for i in 0..10 {
        let info = conn.send(&req, Method::Get, &mut DiscardBody).await;
        assert_eq!(info.map(|i| i.status), Ok(200), "request {i}");
    }
    // 1 on the first connection, then 2 per later one (reset + retry).
    assert_eq!(server.requests().len(), 19);
    assert_eq!((server.accepted(), conn.connects()), (10, 10));
}

/// The retry goes out on a fresh connection; when that fails too, the
/// request fails: one retry, never two.
async fn get_retry_that_fails_again_is_a_failure() {
    let server = TestServer::start(|conn| {
        let first = conn.index == 0;
        if conn.read_request().is_none() || (first && !conn.write(OK)) {
            return;
        }
        if first && conn.read_request().is_none() {
            return;
        }
        conn.reset_on_close();
    });
    let req = request(&server, Method::Get, "/");
    let mut conn = Connection::new(server.addr, cfg());
    let first = conn.send(&req, Method::Get, &mut DiscardBody).await;
    assert_eq!(first.map(|i| i.status), Ok(200));
    let second = conn.send(&req, Method::Get, &mut DiscardBody).await;
    assert_eq!(second, Err(HttpError::ConnectionReset));
    assert_eq!(server.requests().len(), 3, "sent, retried once, no more");
    assert_eq!(server.accepted(), 2);
}

/// Bytes a server sends after a complete response, in a later segment,
/// reach the client while the connection is idle: it must not read them as
/// the next response. `extra` goes out 5 ms after each response; the client
/// sends its next request only once the server has written them (loopback
/// delivers a write before it returns), so the bytes are always there first.
async fn idle_bytes_close_the_connection(extra: &'static [u8]) {
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    let server = TestServer::serve(move |conn, _| {
        let _ = conn.stream.set_nodelay(true);
        if !conn.write(OK) {
            return false;
        }
        conn.pause(Duration::from_millis(5));
        let sent = conn.write(extra);
        w.fetch_add(1, Ordering::SeqCst);
        sent
    });
    let req = request(&server, Method::Get, "/");
    let mut conn = Connection::new(server.addr, cfg());
    for i in 0..5 {
        let info = conn.send(&req, Method::Get, &mut DiscardBody).await;
        assert_eq!(
            info.map(|i| (i.status, i.body_len)),
            Ok((200, 2)),
            "request {i}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while written.load(Ordering::SeqCst) <= i && Instant::now() < deadline {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(server.requests().len(), 5, "one request per connection");
    assert_eq!((server.accepted(), conn.connects()), (5, 5));
}

async fn extra_body_bytes_in_a_later_segment_are_not_a_response() {
    idle_bytes_close_the_connection(b"surplus body bytes").await;
}

async fn unsolicited_response_is_not_matched_to_the_next_request() {
    idle_bytes_close_the_connection(b"HTTP/1.1 299 Unsolicited\r\nContent-Length: 3\r\n\r\nbad")
        .await;
}

/// Serves `responses[i]` for path `/i`, then closes.
fn indexed_server(responses: Vec<Vec<u8>>) -> TestServer {
    TestServer::serve(move |conn, req| {
        let i: usize = req.path().trim_start_matches('/').parse().unwrap_or(0);
        if let Some(r) = responses.get(i) {
            conn.write(r);
        }
        false
    })
}

async fn status_outside_100_to_999_is_malformed() {
    let lines = ["000 Zero", "099 Low", "200 OK", "999 High"];
    let responses = lines
        .iter()
        .map(|l| format!("HTTP/1.1 {l}\r\nContent-Length: 0\r\n\r\n").into_bytes())
        .collect();
    let server = indexed_server(responses);
    let mut conn = Connection::new(server.addr, cfg());
    let mut got = Vec::new();
    for i in 0..lines.len() {
        let req = request(&server, Method::Get, &format!("/{i}"));
        got.push(
            conn.send(&req, Method::Get, &mut DiscardBody)
                .await
                .map(|i| i.status),
        );
    }
    let malformed = HttpError::MalformedStatusLine;
    assert_eq!(got, [Err(malformed), Err(malformed), Ok(200), Ok(999)]);
    assert_eq!(malformed.to_string(), "malformed status line");
}

async fn a_hundred_headers_pass_and_too_many_fail() {
    let counts = [100usize, 128, 129, 500];
    let responses = counts
        .iter()
        .map(|&n| {
            // Content-Length is one of the n headers.
            let many: String = (1..n).map(|i| format!("X-H{i}: v\r\n")).collect();
            format!("HTTP/1.1 200 OK\r\n{many}Content-Length: 2\r\n\r\nok").into_bytes()
        })
        .collect();
    let server = indexed_server(responses);
    let mut conn = Connection::new(server.addr, cfg());
    let mut got = Vec::new();
    for i in 0..counts.len() {
        let req = request(&server, Method::Get, &format!("/{i}"));
        got.push(
            conn.send(&req, Method::Get, &mut DiscardBody)
                .await
                .map(|i| i.body_len),
        );
    }
    let too_many = HttpError::TooManyHeaders;
    assert_eq!(got, [Ok(2), Ok(2), Err(too_many), Err(too_many)]);
    assert_eq!(too_many.to_string(), "too many headers");
}
