//! Raw mode's request flags on the real binary: `--method`, `-d/--data`,
//! `--data-file`, `--header`, asserted on the bytes an in-process server
//! read; bad flags and flags that do not apply are refused (exit 2). Both
//! I/O drivers.

mod common;
#[path = "common/http_server.rs"]
mod http_server;

use std::process::Output;
use std::time::Duration;

use common::{csv_rows, locusta, one_user_second, run_bounded, temp_dir, text};
use http_server::{Request, TestServer};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn ok_server() -> TestServer {
    TestServer::serve(|conn, _| conn.write(OK))
}

/// A one-user, one-second headless run with `extra` flags; its stats CSV
/// rows come back with the output.
fn run(name: &str, io: &str, extra: &[&str]) -> (Output, Vec<Vec<String>>) {
    let (out, dir) = one_user_second(name, io, extra);
    let rows = if out.status.code() == Some(0) {
        csv_rows(&dir.join("r_stats.csv"))
    } else {
        Vec::new()
    };
    (out, rows)
}

fn first_request(server: &TestServer) -> Request {
    server
        .requests()
        .into_iter()
        .next()
        .expect("the server read no request")
}

fn ua() -> String {
    format!("User-Agent: locusta/{}\r\n", env!("CARGO_PKG_VERSION"))
}

fn method_body_and_headers(io: &str) {
    let server = ok_server();
    let url = format!("http://{}/p?q=1", server.addr);
    let (out, rows) = run(
        &format!("wire-{io}"),
        io,
        &[
            "--method",
            "put",
            "-d",
            "{\"a\":1}",
            "--header",
            "Content-Type: application/json",
            "--header",
            "X-Trace:  abc ",
            "--header",
            "host: example.test",
            &url,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let req = first_request(&server);
    let expected = format!(
        "PUT /p?q=1 HTTP/1.1\r\n{}Content-Type: application/json\r\nX-Trace: abc\r\n\
         host: example.test\r\nContent-Length: 7\r\n\r\n{{\"a\":1}}",
        ua()
    );
    assert_eq!(text(&req.raw), expected);
    // Every request is the same one, and the entry is method + path.
    assert!(server.requests().iter().all(|r| r.raw == req.raw));
    assert_eq!(&rows[1][..2], ["PUT", "/p?q=1"], "{rows:?}");
    assert_eq!(rows[1][3], "0", "no failures: {rows:?}");
}

#[test]
fn method_body_and_headers_io_uring() {
    method_body_and_headers("uring");
}

#[test]
fn method_body_and_headers_epoll() {
    method_body_and_headers("epoll");
}

#[test]
fn a_body_without_method_is_a_post_and_data_file_is_read_once() {
    let server = ok_server();
    let dir = temp_dir("data-file");
    let file = dir.join("body.bin");
    std::fs::write(&file, b"line1\nline2\x00bin").unwrap();
    let (out, rows) = run(
        "data-file-run",
        "auto",
        &[
            "--data-file",
            file.to_str().unwrap(),
            &server.url_path("/up"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let req = first_request(&server);
    assert_eq!(req.request_line(), "POST /up HTTP/1.1");
    assert_eq!(req.header("content-length"), Some("15"));
    assert_eq!(req.body, b"line1\nline2\x00bin");
    assert_eq!(&rows[1][..2], ["POST", "/up"]);
}

#[test]
fn no_accept_encoding_unless_given() {
    let server = ok_server();
    let (out, _) = run("no-ae", "auto", &[&server.url_path("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let req = first_request(&server);
    assert_eq!(
        text(&req.raw),
        format!("GET / HTTP/1.1\r\nHost: {}\r\n{}\r\n", server.addr, ua())
    );
    assert_eq!(req.header("accept-encoding"), None);

    let server = ok_server();
    let (out, _) = run(
        "ae",
        "auto",
        &["--header", "Accept-Encoding: gzip", &server.url_path("/")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        first_request(&server).header("accept-encoding"),
        Some("gzip")
    );
}

/// Every refused combination exits 2 before any request, naming the problem.
#[test]
fn bad_request_flags_exit_2_naming_them() {
    let server = ok_server();
    let url = server.url_path("/");
    let dir = temp_dir("bad-flags");
    let script = dir.join("s.lua");
    std::fs::write(
        &script,
        "local locusta = require 'locusta'\nlocal U = locusta.user {}\nU:task(1, function(self) end)\n",
    )
    .unwrap();
    let script = script.to_str().unwrap();
    let missing = dir.join("missing.bin");
    let missing = missing.to_str().unwrap();
    let mib = dir.join("one-mib.bin");
    std::fs::write(&mib, vec![b'x'; 1 << 20]).unwrap();
    let mib = mib.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--method", "FETCH", &url], "FETCH"),
        (&["--header", "NoColon", &url], "NoColon"),
        (&["--header", "X-A: b\r\nEvil: 1", &url], "X-A"),
        (&["--header", "X-B: b\rc", &url], "X-B"),
        (&["--header", "Bad Name: x", &url], "Bad Name"),
        (&["--header", ": x", &url], "not a valid token"),
        (&["--header", "Content-Length: 3", &url], "Content-Length"),
        (&["-d", "x", "--data-file", missing, &url], "--data-file"),
        (&["--data-file", missing, &url], "missing.bin"),
        (&["--data-file", "/dev/zero", &url], "larger than 64 MiB"),
        (
            &["--data-file", mib, "--pipeline", "100", &url],
            "times --pipeline 100",
        ),
        (&["--pipeline", "0", &url], "--pipeline"),
        (
            &["--pipeline", "2", "--follow-redirects", &url],
            "--follow-redirects",
        ),
        (&["-f", script, "-H", &url, "--method", "POST"], "--method"),
        (
            &[
                "-f",
                script,
                "-H",
                &url,
                "--header",
                "A: b",
                "--pipeline",
                "4",
            ],
            "--header, --pipeline",
        ),
    ];
    for (args, needle) in cases {
        let out = run_bounded(
            locusta()
                .args(["--headless", "-u", "1", "-t", "1s"])
                .args(*args),
            Duration::from_secs(30),
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {needle} not in {stderr}"
        );
    }
    assert!(server.requests().is_empty(), "a refused run sent requests");
}

trait UrlPath {
    fn url_path(&self, path: &str) -> String;
}

impl UrlPath for TestServer {
    fn url_path(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}
