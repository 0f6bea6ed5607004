//! The built-in demo target behind `locusta --demo`: a small shop API on
//! 127.0.0.1 whose endpoints differ in latency, size and failure rate, so the
//! demo's tables show something worth reading.
//!
//! Std only: one acceptor thread and one thread per connection (HTTP/1.1,
//! keep-alive, requests parsed with `httparse`, `Content-Length` bodies; every
//! answer carries `Content-Length`). At most [`MAX_CONNS`] connections at once;
//! extras get a `503` and are closed. Latencies are sleeps drawn from a cheap
//! xorshift PRNG seeded from the clock. Routes are one table ([`ROUTES`]):
//! add a row to add an endpoint.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Concurrent connections served; more are answered `503` and closed.
pub const MAX_CONNS: usize = 2_000;
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_WAIT: Duration = Duration::from_secs(5);

/// A parsed request, owned.
pub struct Req {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// What a handler answers.
pub struct Resp {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Cow<'static, str>,
}

impl Resp {
    fn json(status: u16, body: impl Into<Cow<'static, str>>) -> Resp {
        Resp {
            status,
            content_type: "application/json",
            body: body.into(),
        }
    }
}

/// Per-connection state: the PRNG and a cart, like a browser session.
pub struct Session {
    rng: u64,
    cart_items: u32,
}

impl Session {
    /// xorshift64*: cheap, good enough for latencies and error rates.
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// One endpoint: path (exact, or a prefix followed by one segment when it ends
/// in `/`), allowed methods (HEAD is served wherever GET is), latency range in
/// microseconds, and the handler.
pub struct Route {
    pub path: &'static str,
    pub methods: &'static [&'static str],
    pub delay_us: (u64, u64),
    pub handler: Handler,
}

/// A handler gets the request, the path parameter (`""` for exact routes) and the session.
pub type Handler = fn(&Req, &str, &mut Session) -> Resp;

/// The shop. Latencies are in microseconds.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route { path: "/", methods: &["GET"], delay_us: (800, 1_200), handler: index },
    Route { path: "/api/products", methods: &["GET"], delay_us: (2_000, 6_000), handler: products },
    Route { path: "/api/products/", methods: &["GET"], delay_us: (1_000, 3_000), handler: product },
    Route { path: "/api/cart", methods: &["GET", "POST"], delay_us: (1_500, 2_500), handler: cart },
    Route { path: "/api/checkout", methods: &["GET", "POST"], delay_us: (20_000, 60_000), handler: checkout },
    Route { path: "/api/login", methods: &["POST"], delay_us: (1_000, 2_000), handler: login },
];

fn index(_: &Req, _: &str, _: &mut Session) -> Resp {
    let body = "<!doctype html><html><head><title>locusta demo shop</title></head>\
                <body><h1>Demo shop</h1><p>Try <a href=\"/api/products\">/api/products</a>.</p></body></html>\n";
    Resp {
        status: 200,
        content_type: "text/html; charset=utf-8",
        body: body.into(),
    }
}

fn product_json(id: u32) -> String {
    format!(
        "{{\"id\":{id},\"sku\":\"SKU-{id:05}\",\"name\":\"Demo product {id}\",\"price\":{}.{:02},\"stock\":{}}}",
        5 + id * 7 % 95,
        id * 13 % 100,
        id * 31 % 50
    )
}

fn products(_: &Req, _: &str, _: &mut Session) -> Resp {
    static LIST: OnceLock<String> = OnceLock::new();
    let list = LIST.get_or_init(|| {
        let items: Vec<String> = (1..=40).map(product_json).collect();
        format!("{{\"products\":[{}],\"total\":500}}", items.join(","))
    });
    Resp::json(200, list.as_str())
}

fn product(_: &Req, id: &str, _: &mut Session) -> Resp {
    match id.parse::<u32>() {
        Ok(id @ 1..=500) => Resp::json(200, product_json(id)),
        _ => Resp::json(404, "{\"error\":\"no such product\"}"),
    }
}

fn cart(req: &Req, _: &str, s: &mut Session) -> Resp {
    if req.method == "POST" {
        s.cart_items += 1;
        Resp::json(201, format!("{{\"items\":{}}}", s.cart_items))
    } else {
        Resp::json(200, format!("{{\"items\":{}}}", s.cart_items))
    }
}

fn checkout(_: &Req, _: &str, s: &mut Session) -> Resp {
    if s.next() % 100 < 3 {
        return Resp::json(503, "{\"error\":\"payment provider unavailable\"}");
    }
    let items = std::mem::take(&mut s.cart_items);
    Resp::json(
        200,
        format!("{{\"order\":{},\"items\":{items}}}", s.next() % 1_000_000),
    )
}

fn login(_: &Req, _: &str, s: &mut Session) -> Resp {
    Resp::json(
        200,
        format!("{{\"token\":\"{:016x}{:016x}\"}}", s.next(), s.next()),
    )
}

/// Find the route, sleep its latency, run it. 404 / 405 otherwise.
fn dispatch(req: &Req, s: &mut Session) -> Resp {
    let path = req.path.split('?').next().unwrap_or("");
    let method = if req.method == "HEAD" {
        "GET"
    } else {
        req.method.as_str()
    };
    for r in ROUTES {
        let one_segment = r.path.len() > 1 && r.path.ends_with('/');
        let param = match path.strip_prefix(r.path) {
            Some("") if !one_segment => "",
            Some(rest) if one_segment && !rest.is_empty() && !rest.contains('/') => rest,
            _ => continue,
        };
        if !r.methods.contains(&method) {
            return Resp::json(405, "{\"error\":\"method not allowed\"}");
        }
        thread::sleep(Duration::from_micros(s.between(r.delay_us.0, r.delay_us.1)));
        return (r.handler)(req, param, s);
    }
    Resp::json(404, "{\"error\":\"not found\"}")
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn write_resp(w: &mut impl Write, r: &Resp, head_only: bool, close: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nServer: locusta-demo\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}\r\n",
        r.status, reason(r.status), r.content_type, r.body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(r.body.as_bytes());
    }
    w.write_all(&out)
}

/// A parsed request head: what the connection loop needs to frame the body.
struct Head {
    method: String,
    path: String,
    len: usize,
    body_len: usize,
    close: bool,
}

/// `Ok(None)`: need more bytes. `Err(status)`: answer that and close.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, u16> {
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut hs);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(431),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(_) => return Err(400),
    };
    let (mut body_len, mut close) = (0, req.version == Some(0));
    for h in req.headers.iter() {
        let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
        if h.name.eq_ignore_ascii_case("content-length") {
            body_len = v.trim().parse().map_err(|_| 400u16)?;
            if body_len > MAX_BODY {
                return Err(413);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(411); // chunked request bodies: not in a demo
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = v.contains("close") || (close && !v.contains("keep-alive"));
        }
    }
    let method = req.method.unwrap_or("").to_string();
    let path = req.path.unwrap_or("").to_string();
    Ok(Some(Head {
        method,
        path,
        len,
        body_len,
        close,
    }))
}

/// Read more bytes into `buf`; `false` at end of stream.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

/// Serve one connection until the client closes, asks to close, errs or idles out.
fn serve(mut stream: TcpStream, mut session: Session, stopping: &AtomicBool) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    while !stopping.load(Ordering::Relaxed) {
        let head = match parse_head(&buf) {
            Ok(Some(head)) => head,
            Ok(None) if fill(&mut stream, &mut buf)? => continue,
            Ok(None) => return Ok(()),
            Err(code) => {
                let resp = Resp::json(code, "{\"error\":\"bad request\"}");
                return write_resp(&mut stream, &resp, false, true);
            }
        };
        let end = head.len + head.body_len;
        while buf.len() < end {
            if !fill(&mut stream, &mut buf)? {
                return Ok(());
            }
        }
        let body = buf[head.len..end].to_vec();
        buf.drain(..end);
        let req = Req {
            method: head.method,
            path: head.path,
            body,
        };
        let resp = dispatch(&req, &mut session);
        write_resp(&mut stream, &resp, req.method == "HEAD", head.close)?;
        if head.close {
            return Ok(());
        }
    }
    Ok(())
}

struct Shared {
    stopping: AtomicBool,
    conns: Mutex<HashMap<u64, TcpStream>>,
    gone: Condvar,
}

/// The demo server; serves until [`DemoTarget::stop`] or drop.
pub struct DemoTarget {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl DemoTarget {
    /// Bind 127.0.0.1:0 and serve on background threads until dropped/stopped.
    pub fn start() -> io::Result<DemoTarget> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            conns: Mutex::default(),
            gone: Condvar::new(),
        });
        let sh = shared.clone();
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let acceptor = thread::Builder::new()
            .name("demo-accept".into())
            .spawn(move || accept_loop(listener, sh, seed))?;
        Ok(DemoTarget {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Full URLs (one origin) the raw-mode demo cycles through.
    pub fn demo_urls(&self) -> Vec<String> {
        const PATHS: [&str; 5] = [
            "/",
            "/api/products",
            "/api/products/42",
            "/api/cart",
            "/api/checkout",
        ];
        PATHS
            .iter()
            .map(|p| format!("{}{p}", self.base_url()))
            .collect()
    }

    /// Stop accepting, close every connection, wait for their threads (at most 5 s).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept(); if that connect fails, leave the thread detached.
        if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
            let _ = acceptor.join();
        }
        let deadline = Instant::now() + STOP_WAIT;
        let mut conns = self.shared.conns.lock().unwrap();
        for s in conns.values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        while !conns.is_empty() && Instant::now() < deadline {
            conns = self
                .shared
                .gone
                .wait_timeout(conns, Duration::from_millis(50))
                .unwrap()
                .0;
        }
    }
}

fn accept_loop(listener: TcpListener, sh: Arc<Shared>, seed: u64) {
    for (id, stream) in (1u64..).zip(listener.incoming()) {
        if sh.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(mut stream) = stream else {
            thread::sleep(Duration::from_millis(10)); // e.g. EMFILE: don't spin
            continue;
        };
        let mut conns = sh.conns.lock().unwrap();
        if conns.len() >= MAX_CONNS {
            drop(conns);
            let resp = Resp::json(503, "{\"error\":\"too many connections\"}");
            let _ = write_resp(&mut stream, &resp, false, true);
            continue;
        }
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let rng = (seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
        let session = Session { rng, cart_items: 0 };
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
        let sh2 = sh.clone();
        let spawned = thread::Builder::new()
            .name("demo-conn".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                let _ = serve(stream, session, &sh2.stopping);
                sh2.conns.lock().unwrap().remove(&id);
                sh2.gone.notify_all();
            });
        if spawned.is_ok() {
            conns.insert(id, clone);
        }
    }
}

impl Drop for DemoTarget {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, String) {
        let mut chunk = [0u8; 4096];
        loop {
            let mut hs = [httparse::EMPTY_HEADER; 16];
            let mut r = httparse::Response::new(&mut hs);
            if let Ok(httparse::Status::Complete(n)) = r.parse(buf) {
                let len: usize = r
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                    .expect("Content-Length");
                if buf.len() >= n + len {
                    let status = r.code.unwrap();
                    let body = String::from_utf8(buf[n..n + len].to_vec()).unwrap();
                    buf.drain(..n + len);
                    return (status, body);
                }
            }
            let k = s.read(&mut chunk).unwrap();
            assert!(k > 0, "server closed mid-response");
            buf.extend_from_slice(&chunk[..k]);
        }
    }

    #[test]
    fn keep_alive_routes_and_404() {
        let t = DemoTarget::start().unwrap();
        assert_eq!(
            t.base_url(),
            format!("http://127.0.0.1:{}", t.addr().port())
        );
        assert!(t.demo_urls().iter().all(|u| u.starts_with(&t.base_url())));
        let mut s = TcpStream::connect(t.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        // Two requests in one write (pipelined), then more on the same connection.
        s.write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /api/products HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
        let (st, body) = read_response(&mut s, &mut buf);
        assert_eq!(st, 200);
        assert!(body.contains("<html>"));
        let (st, body) = read_response(&mut s, &mut buf);
        assert_eq!(st, 200);
        assert!(body.len() > 2_500 && body.len() < 4_000, "{}", body.len());
        s.write_all(
            b"POST /api/cart HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{\"sku\":\"A-1\"}",
        )
        .unwrap();
        assert_eq!(
            read_response(&mut s, &mut buf),
            (201, "{\"items\":1}".into())
        );
        s.write_all(b"GET /api/products/501 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut s, &mut buf).0, 404);
        s.write_all(b"GET /api/products/42 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (st, body) = read_response(&mut s, &mut buf);
        assert!(st == 200 && body.contains("\"id\":42"), "{st} {body}");
        s.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut s, &mut buf).0, 404);
        s.write_all(b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        let (st, body) = read_response(&mut s, &mut buf);
        assert!(
            st == 200 && body.starts_with("{\"token\":\""),
            "{st} {body}"
        );
        s.write_all(b"GET /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut s, &mut buf).0, 405);
        assert_eq!(
            s.read(&mut [0u8; 16]).unwrap(),
            0,
            "Connection: close honoured"
        );
        t.stop();
    }

    #[test]
    fn checkout_fails_sometimes() {
        let t = DemoTarget::start().unwrap();
        let mut s = TcpStream::connect(t.addr()).unwrap();
        let mut buf = Vec::new();
        let mut codes = Vec::new();
        for _ in 0..25 {
            s.write_all(b"GET /api/checkout HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            codes.push(read_response(&mut s, &mut buf).0);
        }
        assert!(codes.iter().all(|&c| c == 200 || c == 503));
        assert!(codes.iter().filter(|&&c| c == 200).count() > 18);
    }

    #[test]
    fn stop_is_prompt_with_idle_client() {
        let t = DemoTarget::start().unwrap();
        let mut idle = TcpStream::connect(t.addr()).unwrap();
        thread::sleep(Duration::from_millis(50)); // let the server pick it up
        let started = Instant::now();
        t.stop();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        idle.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert!(
            matches!(idle.read(&mut [0u8; 16]), Ok(0) | Err(_)),
            "server side closed"
        );
    }
}
