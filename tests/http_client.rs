//! The HTTP/1.1 client against real sockets: an in-process std::net server
//! per test on an ephemeral 127.0.0.1 port (it records what arrived on the
//! wire), the client in a monoio runtime built by the test. Every test runs
//! on both drivers, io_uring and legacy (epoll).

#[macro_use]
#[path = "common/drivers.rs"]
mod drivers;
#[path = "common/http_server.rs"]
mod http_server;

use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use drivers::{run_io_uring, run_legacy, FD_LOCK};
use http_server::{Request, ServerConn, TestServer};
use locusta::http::{
    write_request, ClientConfig, Connection, DiscardBody, HttpError, Method, ResponseSink, Target,
};

on_both_drivers!(
    keep_alive_reuses_one_connection,
    request_bytes_on_the_wire,
    chunked_split_across_tiny_writes,
    close_delimited_body,
    connection_close_reconnects_every_time,
    idle_close_by_server_is_retried_once,
    idle_reset_by_server_is_retried_once,
    fresh_connection_closed_is_not_retried,
    head_204_304_have_no_body,
    interim_100_continue_is_skipped,
    slow_server_times_out,
    refused_port,
    malformed_responses_name_their_error,
);

fn cfg(request_timeout: Duration) -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(5),
        request_timeout,
        ..ClientConfig::default()
    }
}

fn get(target: &Target) -> Rc<Vec<u8>> {
    let mut buf = Vec::new();
    write_request(
        &mut buf,
        Method::Get,
        &target.path,
        &target.host_header,
        &[],
        b"",
    );
    Rc::new(buf)
}

fn target(server: &TestServer, path: &str) -> Target {
    Target::parse(&format!("http://{}{path}", server.addr)).unwrap()
}

/// Collects the body and headers of the final response.
#[derive(Default)]
struct Collect {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl ResponseSink for Collect {
    fn header(&mut self, name: &str, value: &[u8]) {
        self.headers.push((
            name.to_string(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    fn body(&mut self, data: &[u8]) {
        self.body.extend_from_slice(data);
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn reply(bytes: &'static [u8]) -> impl Fn(&mut ServerConn, &Request) -> bool + Send + Sync {
    move |conn, _| conn.write(bytes)
}

async fn keep_alive_reuses_one_connection() {
    let server = TestServer::serve(reply(OK));
    let req = get(&target(&server, "/"));
    let mut conn = Connection::new(server.addr, cfg(Duration::from_secs(5)));
    for _ in 0..100 {
        let info = conn
            .send(&req, Method::Get, &mut DiscardBody)
            .await
            .unwrap();
        assert_eq!((info.status, info.body_len), (200, 2));
    }
    assert_eq!(server.accepted(), 1);
    assert_eq!(conn.connects(), 1);
    assert_eq!(server.requests().len(), 100);
}

async fn request_bytes_on_the_wire() {
    let server = TestServer::serve(reply(OK));
    let t = target(&server, "/search?q=locust");
    let mut conn = Connection::new(t.addr, cfg(Duration::from_secs(5)));

    let buf = conn.request_buf();
    write_request(
        buf,
        Method::Get,
        &t.path,
        &t.host_header,
        &[("Accept", "*/*"), ("X-Test", "1")],
        b"",
    );
    conn.send_buffered(Method::Get, &mut DiscardBody)
        .await
        .unwrap();
    let buf = conn.request_buf();
    write_request(
        buf,
        Method::Post,
        "/cart",
        &t.host_header,
        &[("Content-Type", "application/json")],
        b"{\"sku\":1}",
    );
    conn.send_buffered(Method::Post, &mut DiscardBody)
        .await
        .unwrap();

    let reqs = server.requests();
    let ua = format!("locusta/{}", env!("CARGO_PKG_VERSION"));
    let host = server.addr.to_string();
    assert_eq!(
        String::from_utf8(reqs[0].raw.clone()).unwrap(),
        format!("GET /search?q=locust HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\nAccept: */*\r\nX-Test: 1\r\n\r\n")
    );
    assert_eq!(reqs[1].request_line(), "POST /cart HTTP/1.1");
    assert_eq!(reqs[1].header("host"), Some(host.as_str()));
    assert_eq!(reqs[1].header("content-length"), Some("9"));
    assert_eq!(reqs[1].body, b"{\"sku\":1}");
    assert_eq!(server.accepted(), 1);
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunky\r\n\r\n\
    4;ext=\"a;b\"\r\nWiki\r\n6\r\npedia \r\nE ; x=y\r\nin \r\n\r\nchunks.\r\n\
    0\r\nExpires: never\r\nX-Checksum: 1\r\n\r\n";

async fn chunked_split_across_tiny_writes() {
    let server =
        TestServer::serve(|conn, _| conn.write_slowly(CHUNKED, 3, Duration::from_micros(200)));
    let req = get(&target(&server, "/"));
    let mut conn = Connection::new(server.addr, cfg(Duration::from_secs(10)));
    for _ in 0..2 {
        let mut sink = Collect::default();
        let info = conn.send(&req, Method::Get, &mut sink).await.unwrap();
        assert_eq!(sink.body, b"Wikipedia in \r\n\r\nchunks.");
        assert_eq!((info.status, info.body_len), (200, 24));
        assert!(sink
            .headers
            .contains(&("X-Kind".to_string(), "chunky".to_string())));
    }
    assert_eq!(server.accepted(), 1, "trailers consumed, connection reused");
}

async fn close_delimited_body() {
    let server = TestServer::serve(|conn, _| {
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ");
        conn.pause(Duration::from_millis(20));
        conn.write(b"the end");
        false // close: that ends the body
    });
    let req = get(&target(&server, "/"));
    let mut conn = Connection::new(server.addr, cfg(Duration::from_secs(5)));
    for _ in 0..2 {
        let mut sink = Collect::default();
        let info = conn.send(&req, Method::Get, &mut sink).await.unwrap();
        assert_eq!(sink.body, b"until the end");
        assert_eq!(info.body_len, 13);
    }
    assert_eq!((server.accepted(), conn.connects()), (2, 2));
}

async fn connection_close_reconnects_every_time() {
    let server = TestServer::serve(|conn, _| {
        conn.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
        false
    });
    let req = get(&target(&server, "/"));
    let mut conn = Connection::new(server.addr, cfg(Duration::from_secs(5)));
    for _ in 0..20 {
        assert_eq!(
            conn.send(&req, Method::Get, &mut DiscardBody)
                .await
                .unwrap()
                .status,
            200
        );
        assert!(!conn.is_connected());
    }
    assert_eq!((server.accepted(), conn.connects()), (20, 20));
}

/// The server answers one request per connection with a keep-alive response,
/// then closes the idle connection (FIN, or RST when `reset`): the client
/// sees that before reuse (or its GET fails before any response byte and is
/// retried once) and connects afresh, invisibly to the caller.
async fn idle_close(reset: bool) {
    let server = TestServer::start(move |conn| {
        if conn.read_request().is_some() {
            conn.write(OK);
            conn.pause(Duration::from_millis(5));
            if reset {
                conn.reset_on_close();
            }
        }
    });
    let req = get(&target(&server, "/"));
    let mut conn = Connection::new(server.addr, cfg(Duration::from_secs(5)));
    for i in 0..5 {
        let info = conn.send(&req, Method::Get, &mut DiscardBody).await;
        assert_eq!(info.map(|i| i.status), Ok(200), "request {i}");
        // Let the server's close reach us before the next request.
        monoio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!((server.accepted(), conn.connects()), (5, 5));
}

async fn idle_close_by_server_is_retried_once() {
    idle_close(false).await;
}

async fn idle_reset_by_server_is_retried_once() {
    idle_close(true).await;
}

async fn fresh_connection_closed_is_not_retried() {
    // Accept, read the request, close without a word.
    let server = TestServer::serve(|_, _| false);
    let req = get(&target(&server, "/"));
    let mut conn = Connection::new(server.addr, cfg(Duration::from_secs(5)));
    let err = conn
        .send(&req, Method::Get, &mut DiscardBody)
        .await
        .unwrap_err();
    assert_eq!(err, HttpError::ClosedBeforeResponse);
    assert_eq!(err.to_string(), "connection closed before response");
    assert_eq!(server.accepted(), 1, "a fresh connection is not retried");
}

async fn head_204_304_have_no_body() {
    let server = TestServer::serve(|conn, req| {
        let resp: &[u8] = match req.path() {
            "/head" => b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
            "/204" => b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
            "/304" => b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
            _ => OK,
        };
        conn.write(resp)
    });
    let t = target(&server, "/");
    let mut conn = Connection::new(t.addr, cfg(Duration::from_secs(5)));
    for _ in 0..3 {
        for (method, path, status) in [
            (Method::Head, "/head", 200),
            (Method::Get, "/204", 204),
            (Method::Get, "/304", 304),
            (Method::Get, "/", 200),
        ] {
            let mut buf = Vec::new();
            write_request(&mut buf, method, path, &t.host_header, &[], b"");
            let info = conn
                .send(&Rc::new(buf), method, &mut DiscardBody)
                .await
                .unwrap();
            let body = if path == "/" { 2 } else { 0 };
            assert_eq!(
                (info.status, info.body_len),
                (status, body),
                "{method} {path}"
            );
        }
    }
    assert_eq!(
        server.accepted(),
        1,
        "framing stayed in step on one connection"
    );
}

async fn interim_100_continue_is_skipped() {
    let server = TestServer::serve(|conn, _| {
        conn.write(b"HTTP/1.1 100 Continue\r\n\r\n");
        conn.pause(Duration::from_millis(10));
        conn.write(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")
    });
    let req = get(&target(&server, "/"));
    let mut conn = Connection::new(server.addr, cfg(Duration::from_secs(5)));
    let mut sink = Collect::default();
    let info = conn.send(&req, Method::Get, &mut sink).await.unwrap();
    assert_eq!((info.status, sink.body.as_slice()), (201, &b"done"[..]));
    assert_eq!(
        conn.send(&req, Method::Get, &mut DiscardBody)
            .await
            .unwrap()
            .status,
        201
    );
    assert_eq!(server.accepted(), 1);
}

async fn slow_server_times_out() {
    let server = TestServer::serve(|conn, req| {
        if req.path() == "/slow" {
            conn.pause(Duration::from_secs(3));
        }
        conn.write(OK)
    });
    let t = target(&server, "/slow");
    let mut conn = Connection::new(t.addr, cfg(Duration::from_millis(200)));
    let started = Instant::now();
    let err = conn
        .send(&get(&t), Method::Get, &mut DiscardBody)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err, HttpError::Timeout(locusta::http::Millis(200)));
    assert_eq!(err.to_string(), "timeout after 200ms");
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    // The timed-out connection is dropped; the next request gets a fresh one.
    let info = conn
        .send(&get(&t.with_path("/fast")), Method::Get, &mut DiscardBody)
        .await
        .unwrap();
    assert_eq!(info.status, 200);
    assert_eq!((server.accepted(), conn.connects()), (2, 2));
}

async fn refused_port() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // dropped: nothing listens there now
    let mut conn = Connection::new(port, cfg(Duration::from_secs(5)));
    let err = conn
        .send(
            &&b"GET / HTTP/1.1\r\n\r\n"[..],
            Method::Get,
            &mut DiscardBody,
        )
        .await
        .unwrap_err();
    assert_eq!(err, HttpError::ConnectionRefused);
    assert_eq!(err.to_string(), "connection refused");
    assert_eq!(conn.connects(), 0);
}

async fn malformed_responses_name_their_error() {
    // Few, long headers: with many short ones httparse reports too many
    // headers before the 64 KiB buffer fills.
    let mut huge_head = b"HTTP/1.1 200 OK\r\n".to_vec();
    while huge_head.len() <= 70 * 1024 {
        huge_head.extend_from_slice(format!("X-Pad: {}\r\n", "p".repeat(8000)).as_bytes());
    }
    let huge_head: &'static [u8] = Box::leak(huge_head.into_boxed_slice());
    let many: String = (0..200).map(|i| format!("H{i}: v\r\n")).collect();
    let many_headers = format!("HTTP/1.1 200 OK\r\n{many}Content-Length: 0\r\n\r\n");
    let many_headers: &'static [u8] = Box::leak(many_headers.into_bytes().into_boxed_slice());

    let cases: Vec<(&'static [u8], HttpError, &str)> = vec![
        (
            b"HTTP/1.1 OK 200\r\n\r\n",
            HttpError::MalformedStatusLine,
            "malformed status line",
        ),
        (
            b"SSH-2.0-OpenSSH\r\n\r\n",
            HttpError::MalformedStatusLine,
            "malformed status line",
        ),
        (
            b"HTTP/1.1 200 OK\r\nBad Header: 1\r\n\r\n",
            HttpError::MalformedHeader,
            "malformed header",
        ),
        (many_headers, HttpError::TooManyHeaders, "too many headers"),
        (
            huge_head,
            HttpError::HeaderTooLarge,
            "header section too large",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: twelve\r\n\r\n",
            HttpError::InvalidContentLength,
            "invalid Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
            HttpError::InvalidContentLength,
            "invalid Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            HttpError::BodyShorterThanContentLength,
            "body shorter than Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
            HttpError::InvalidChunkSize,
            "invalid chunk size",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
            HttpError::MalformedChunk,
            "malformed chunk",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            HttpError::ClosedMidChunk,
            "connection closed mid-chunk",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Le",
            HttpError::ClosedMidHeader,
            "connection closed mid-header",
        ),
    ];
    let responses: Vec<&'static [u8]> = cases.iter().map(|c| c.0).collect();
    // The path picks the response; the server closes after writing it, so
    // truncated responses end in EOF.
    let server = TestServer::serve(move |conn, req| {
        let i: usize = req.path().trim_start_matches('/').parse().unwrap();
        conn.write(responses[i]);
        false
    });
    let t = target(&server, "/");
    let mut conn = Connection::new(t.addr, cfg(Duration::from_secs(5)));
    for (i, (_, expected, text)) in cases.iter().enumerate() {
        let err = conn
            .send(
                &get(&t.with_path(&i.to_string())),
                Method::Get,
                &mut DiscardBody,
            )
            .await
            .unwrap_err();
        assert_eq!(
            (err, err.to_string().as_str()),
            (*expected, *text),
            "case {i}"
        );
        assert!(!conn.is_connected(), "dropped after an error");
    }
    // And the connection recovers for a good response.
    assert_eq!(server.accepted(), cases.len());
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// 150 users × 20 requests that all time out after 50 ms against a server
/// that accepts and never answers: every cancelled op must hand its socket
/// back. After the runtime and server are gone, the process holds exactly
/// the fds it held before.
fn fd_leak_after_timeouts<F: FnOnce(std::pin::Pin<Box<dyn Future<Output = usize>>>) -> usize>(
    run: F,
) {
    let _exclusive = FD_LOCK.write().unwrap_or_else(|e| e.into_inner());
    let before = fd_count();
    {
        let mut server = TestServer::hanging();
        let addr = server.addr;
        let timeouts = run(Box::pin(async move {
            let cfg = ClientConfig {
                connect_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_millis(50),
                ..ClientConfig::default()
            };
            let users: Vec<_> = (0..150)
                .map(|_| {
                    let cfg = cfg.clone();
                    monoio::spawn(async move {
                        let mut conn = Connection::new(addr, cfg);
                        let req: &'static [u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
                        let mut timeouts = 0;
                        for _ in 0..20 {
                            match conn.send(&req, Method::Get, &mut DiscardBody).await {
                                Err(HttpError::Timeout(_)) => timeouts += 1,
                                other => panic!("expected a timeout, got {other:?}"),
                            }
                        }
                        timeouts
                    })
                })
                .collect();
            let mut total = 0;
            for user in users {
                total += user.await;
            }
            total
        }));
        assert_eq!(timeouts, 3000);
        server.stop();
    }
    // io_uring closes asynchronously (the close op is submitted as the ring is
    // torn down): give it a moment, bounded.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fd_count() != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(fd_count(), before, "fds leaked");
}

#[test]
fn fd_leak_after_timeouts_io_uring() {
    fd_leak_after_timeouts(run_io_uring);
}

#[test]
fn fd_leak_after_timeouts_legacy() {
    fd_leak_after_timeouts(run_legacy);
}
