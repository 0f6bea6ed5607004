//! A tiny blocking HTTP/1.1 client for the web tests (one request per
//! connection, `Connection: close`, bounded by timeouts), and a starter
//! that finds the web server's real port in locusta's log line.
//! Included with `#[path = "web_support/client.rs"] mod web_client;`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A response: status, lower-cased headers, body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Send `method path` with extra header lines and a body; 10 s at most.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        head += h;
        head += "\r\n";
    }
    if !body.is_empty() || method == "POST" {
        head += &format!("Content-Length: {}\r\n", body.len());
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    parse(&raw)
}

fn parse(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&b[..nl])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap().trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[nl + 2 + size + 2..];
    }
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], b"")
}

/// POST a form (`application/x-www-form-urlencoded`).
pub fn post_form(addr: SocketAddr, path: &str, form: &str) -> Resp {
    request(
        addr,
        "POST",
        path,
        &["Content-Type: application/x-www-form-urlencoded"],
        form.as_bytes(),
    )
}

/// The address in `Web UI and API on http://ADDR/...` once it shows in
/// `log()` (a process's stderr so far), or panic after `limit`.
pub fn web_addr(log: impl Fn() -> String, limit: Duration) -> SocketAddr {
    web_addr_from(log, "Web UI and API on http://", limit)
}

/// As [`web_addr`], after another prefix (Locust's `Starting web interface
/// at http://`).
pub fn web_addr_from(log: impl Fn() -> String, prefix: &str, limit: Duration) -> SocketAddr {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let text = log();
        if let Some(rest) = text.split(prefix).nth(1) {
            let addr = rest.split(['/', ' ', ',', '\n']).next().unwrap();
            return addr.parse().expect("an address in the log line");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no `{prefix}` line within {limit:?}:\n{}", log());
}

/// Poll `GET /stats/requests` until `ok` holds for it, or panic with the
/// last body after `limit`.
pub fn wait_stats(
    addr: SocketAddr,
    base: &str,
    limit: Duration,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    let mut last = serde_json::Value::Null;
    while Instant::now() < deadline {
        let r = get(addr, &format!("{base}/stats/requests"));
        assert_eq!(r.status, 200, "{}", r.text());
        last = r.json();
        if ok(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: not within {limit:?}; last /stats/requests: {last:#}");
}

/// The Aggregated row of a `/stats/requests` body.
pub fn aggregated(stats: &serde_json::Value) -> &serde_json::Value {
    stats["stats"]
        .as_array()
        .and_then(|rows| rows.last())
        .expect("an Aggregated row")
}
