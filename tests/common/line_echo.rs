//! A line echo server on an ephemeral 127.0.0.1 port (std threads): each
//! line it reads is written back as it came, and counted. Also a server
//! that runs a given function per connection, for hostile peers. Every
//! server stops when dropped.
//! Included with `#[path = "common/line_echo.rs"] mod line_echo;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Runs `per_conn` on a thread per accepted connection.
pub struct ConnServer {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl ConnServer {
    pub fn start(per_conn: impl Fn(TcpStream) + Send + Sync + 'static) -> ConnServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(Mutex::new(Vec::new()));
        let per_conn = Arc::new(per_conn);
        let (s, a, o) = (stop.clone(), accepted.clone(), open.clone());
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        a.fetch_add(1, Ordering::Relaxed);
                        let _ = stream.set_nonblocking(false);
                        // Bounded: a test never waits on a peer for long.
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
                        if let Ok(c) = stream.try_clone() {
                            o.lock().unwrap().push(c);
                        }
                        let f = per_conn.clone();
                        thread::spawn(move || {
                            // The clone kept for `kill` must not keep the
                            // connection open once the handler is done.
                            let end = stream.try_clone();
                            f(stream);
                            if let Ok(s) = end {
                                let _ = s.shutdown(Shutdown::Both);
                            }
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        ConnServer {
            addr,
            accepted,
            stop,
            open,
        }
    }

    /// Stop accepting and cut every open connection (the server "dies").
    pub fn kill(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for ConnServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Echoes lines back, counting them.
pub struct LineEcho {
    pub server: ConnServer,
    pub lines: Arc<AtomicUsize>,
}

impl LineEcho {
    pub fn start() -> LineEcho {
        let lines = Arc::new(AtomicUsize::new(0));
        let l = lines.clone();
        let server = ConnServer::start(move |stream| {
            let Ok(mut out) = stream.try_clone() else {
                return;
            };
            let mut r = BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        l.fetch_add(1, Ordering::Relaxed);
                        if out.write_all(&line).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        LineEcho { server, lines }
    }

    pub fn lines(&self) -> usize {
        self.lines.load(Ordering::Relaxed)
    }
}
