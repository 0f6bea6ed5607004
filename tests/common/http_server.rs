//! A small blocking HTTP/1.1 test server on an ephemeral 127.0.0.1 port.
//!
//! Each test starts its own: a std::net listener with an accept thread and
//! one thread per connection running the test's handler, which decides what
//! to write, byte by byte if it likes. The server records every request it
//! read (raw bytes) and counts accepted connections, so tests assert on what
//! actually crossed the wire. `stop` (also run on drop) closes every socket
//! and joins every thread: nothing outlives the test, which matters to the
//! fd-leak test. Every wait is bounded.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a server connection waits for the client before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    /// Exactly the bytes read: head and body.
    pub raw: Vec<u8>,
    pub head: String,
    pub body: Vec<u8>,
}

impl Request {
    pub fn request_line(&self) -> &str {
        self.head.split("\r\n").next().unwrap_or("")
    }

    pub fn method(&self) -> &str {
        self.request_line().split(' ').next().unwrap_or("")
    }

    pub fn path(&self) -> &str {
        self.request_line().split(' ').nth(1).unwrap_or("")
    }

    /// The first header with this name (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

struct Shared {
    stop: AtomicBool,
    accepted: AtomicUsize,
    requests: Mutex<Vec<Request>>,
    /// A clone of every open accepted stream by connection index, so `stop`
    /// can shut them all down; a connection removes its own when it closes.
    open: Mutex<HashMap<usize, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// The server side of one accepted connection, handed to the handler.
pub struct ServerConn {
    pub stream: TcpStream,
    /// 0 for the first accepted connection, 1 for the next…
    pub index: usize,
    buf: Vec<u8>,
    shared: Arc<Shared>,
}

impl ServerConn {
    /// Read one request (head + Content-Length body); `None` on EOF, error
    /// or timeout. Pipelined bytes are kept for the next call.
    pub fn read_request(&mut self) -> Option<Request> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill() {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut req = Request {
            raw: Vec::new(),
            head,
            body: Vec::new(),
        };
        let body_len: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while self.buf.len() < head_end + body_len {
            if !self.fill() {
                return None;
            }
        }
        req.raw = self.buf.drain(..head_end + body_len).collect();
        req.body = req.raw[head_end..].to_vec();
        self.shared.requests.lock().unwrap().push(req.clone());
        Some(req)
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Write everything; false if the client is gone.
    pub fn write(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Write in `piece`-byte writes with a pause between, so the client sees
    /// the response split across many reads.
    pub fn write_slowly(&mut self, bytes: &[u8], piece: usize, pause: Duration) -> bool {
        let _ = self.stream.set_nodelay(true);
        for part in bytes.chunks(piece.max(1)) {
            if !self.write(part) {
                return false;
            }
            self.pause(pause);
        }
        true
    }

    /// Sleep, but wake early when the server stops.
    pub fn pause(&self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end && !self.shared.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1).min(end - Instant::now()));
        }
    }

    /// Make the coming close a TCP reset instead of a FIN (SO_LINGER 0).
    pub fn reset_on_close(&self) {
        use std::os::fd::AsRawFd;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid socket fd and a correctly sized option value.
        unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
}

impl Drop for ServerConn {
    /// Drop the server's clone too, so the socket really closes now (FIN, or
    /// RST after `reset`) rather than at `stop`.
    fn drop(&mut self) {
        self.shared.open.lock().unwrap().remove(&self.index);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub struct TestServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Run `handler` on its own thread for every accepted connection; the
    /// connection closes when the handler returns.
    pub fn start(handler: impl Fn(&mut ServerConn) + Send + Sync + 'static) -> TestServer {
        Self::spawn(Some(Arc::new(handler)))
    }

    /// For each request, `respond` writes the response (and may do anything
    /// else with the connection); returning false closes the connection.
    pub fn serve(
        respond: impl Fn(&mut ServerConn, &Request) -> bool + Send + Sync + 'static,
    ) -> TestServer {
        Self::start(move |conn| {
            while let Some(req) = conn.read_request() {
                if !respond(conn, &req) {
                    break;
                }
            }
        })
    }

    /// Accept connections and never read or answer (they stay open until
    /// `stop`). One fd per connection, no thread.
    pub fn hanging() -> TestServer {
        Self::spawn(None)
    }

    #[allow(clippy::type_complexity)]
    fn spawn(handler: Option<Arc<dyn Fn(&mut ServerConn) + Send + Sync>>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            open: Mutex::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
        });
        let sh = shared.clone();
        let accept_thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let index = sh.accepted.fetch_add(1, Ordering::SeqCst);
                let Some(handler) = handler.clone() else {
                    sh.open.lock().unwrap().insert(index, stream);
                    continue;
                };
                let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
                if let Ok(clone) = stream.try_clone() {
                    sh.open.lock().unwrap().insert(index, clone);
                }
                let mut conn = ServerConn {
                    stream,
                    index,
                    buf: Vec::new(),
                    shared: sh.clone(),
                };
                let worker = std::thread::spawn(move || handler(&mut conn));
                sh.workers.lock().unwrap().push(worker);
            }
        });
        TestServer {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Every request read so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Close the listener and every connection, join every thread.
    pub fn stop(&mut self) {
        let Some(accept_thread) = self.accept_thread.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; it sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let _ = accept_thread.join();
        for (_, s) in self.shared.open.lock().unwrap().drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let workers: Vec<_> = self.shared.workers.lock().unwrap().drain(..).collect();
        for w in workers {
            let _ = w.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}
