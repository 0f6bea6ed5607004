//! An in-process TLS (HTTP/1.1) server for the https tests, and the
//! certificates it needs, made in the test with rcgen. std threads and
//! rustls' `ServerConnection`; it records the request heads that arrived and
//! counts full and resumed handshakes (`handshake_kind()`), and can misbehave
//! on purpose (close mid-handshake, speak plain HTTP, never answer).
//! Included with `mod common;` then `#[path = "common/tls_server.rs"] mod tls_server;`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::HandshakeKind;

use crate::common::Reply;

/// A CA that signs test certificates.
pub struct Ca {
    pub cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its key, PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` (DNS names or IP literals).
    pub fn server(&self, names: &[&str]) -> Leaf {
        self.leaf(names, false, None)
    }

    /// A server certificate whose validity ended in 2001.
    pub fn expired_server(&self, names: &[&str]) -> Leaf {
        self.leaf(names, false, Some((2000, 2001)))
    }

    /// A client certificate (mTLS).
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(&[name], true, None)
    }

    fn leaf(&self, names: &[&str], client: bool, years: Option<(i32, i32)>) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, "test");
        if client {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        if let Some((from, to)) = years {
            params.not_before = rcgen::date_time_ymd(from, 1, 1);
            params.not_after = rcgen::date_time_ymd(to, 1, 1);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A self-signed server certificate marked a CA, as `openssl req -x509`
/// makes one: the usual test server's certificate.
pub fn self_signed_ca_server(names: &[&str]) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "self-signed");
    let cert = params.self_signed(&key).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Write `text` to `dir/name` and return the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// What the server does with each connection.
pub enum Behaviour {
    /// TLS, then HTTP with `handler(path)` deciding each reply.
    Serve(Box<dyn Fn(&str) -> Reply + Send + Sync>),
    /// Read the ClientHello, then close the TCP connection.
    CloseMidHandshake,
    /// Answer the ClientHello with a plain-HTTP 400, then close.
    PlainHttp,
    /// Accept the TCP connection and never send a byte.
    Silent,
    /// TLS, then answer the first request with these bytes and close the
    /// TCP connection WITHOUT a close_notify (a truncation, as a crash).
    NoCloseNotify(&'static [u8]),
    /// TLS, then answer the first request with these bytes written raw on
    /// the TCP socket (not in a TLS record), then close.
    RawAfterRequest(&'static [u8]),
}

#[derive(Default)]
pub struct Counts {
    pub accepted: AtomicUsize,
    pub full: AtomicUsize,
    pub resumed: AtomicUsize,
    pub requests: Mutex<Vec<String>>,
    /// Server-side handshake errors, by rustls' text.
    pub errors: Mutex<Vec<String>>,
    /// Per handshake: the key exchange group and the handshake kind.
    pub handshakes: Mutex<Vec<String>>,
}

pub struct TlsServer {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
}

impl TlsServer {
    /// Serve `leaf`; with `client_ca`, a client certificate signed by it is
    /// required.
    pub fn start(leaf: &Leaf, client_ca: Option<&Ca>, behaviour: Behaviour) -> TlsServer {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let builder = rustls::ServerConfig::builder();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.cert.der().clone()).unwrap();
                builder.with_client_cert_verifier(
                    WebPkiClientVerifier::builder(Arc::new(roots))
                        .build()
                        .unwrap(),
                )
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).unwrap();
        // Stateless tickets (TLS 1.2 and 1.3), as most servers run.
        config.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let behaviour = Arc::new(behaviour);
        let (c, s) = (counts.clone(), stop.clone());
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        c.accepted.fetch_add(1, Ordering::Relaxed);
                        let (cfg, b, c, s) =
                            (config.clone(), behaviour.clone(), c.clone(), s.clone());
                        thread::spawn(move || serve(stream, cfg, &b, &c, &s));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        TlsServer { addr, counts, stop }
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.addr.port())
    }

    pub fn full(&self) -> usize {
        self.counts.full.load(Ordering::Relaxed)
    }

    pub fn resumed(&self) -> usize {
        self.counts.resumed.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> Vec<String> {
        self.counts.requests.lock().unwrap().clone()
    }

    pub fn handshakes(&self) -> Vec<String> {
        self.counts.handshakes.lock().unwrap().clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.counts.errors.lock().unwrap().clone()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Read what arrives (the ClientHello) until a pause.
fn read_some(sock: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = sock.read(&mut buf);
}

fn serve(
    mut sock: TcpStream,
    config: Arc<rustls::ServerConfig>,
    behaviour: &Behaviour,
    counts: &Counts,
    stop: &AtomicBool,
) {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let handler = match behaviour {
        Behaviour::Serve(h) => Some(h),
        Behaviour::NoCloseNotify(_) | Behaviour::RawAfterRequest(_) => None,
        Behaviour::CloseMidHandshake => {
            read_some(&mut sock);
            return;
        }
        Behaviour::PlainHttp => {
            read_some(&mut sock);
            let _ = sock.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request",
            );
            return;
        }
        Behaviour::Silent => {
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                match sock.read(&mut buf) {
                    Ok(0) => return,
                    Err(e) if !is_timeout(&e) => return,
                    _ => {}
                }
            }
            return;
        }
    };
    let mut tls = rustls::ServerConnection::new(config).unwrap();
    while tls.is_handshaking() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match tls.complete_io(&mut sock) {
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) => {
                counts.errors.lock().unwrap().push(e.to_string());
                return;
            }
        }
    }
    counts.handshakes.lock().unwrap().push(format!(
        "{:?} {:?}",
        tls.negotiated_key_exchange_group().map(|g| g.name()),
        tls.handshake_kind()
    ));
    match tls.handshake_kind() {
        Some(HandshakeKind::Resumed) => counts.resumed.fetch_add(1, Ordering::Relaxed),
        _ => counts.full.fetch_add(1, Ordering::Relaxed),
    };
    let mut stream = rustls::StreamOwned::new(tls, sock);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Some(end) = find(&buf, b"\r\n\r\n") else {
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) => continue,
                Err(e) => {
                    counts.errors.lock().unwrap().push(e.to_string());
                    return;
                }
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let body_len = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        // The whole body too (a POST's), before answering.
        while buf.len() < end + 4 + body_len && !stop.load(Ordering::Relaxed) {
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(_) => return,
            }
        }
        buf.drain(..(end + 4 + body_len).min(buf.len()));
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        counts.requests.lock().unwrap().push(head);
        let Some(handler) = handler else {
            match behaviour {
                Behaviour::NoCloseNotify(bytes) => {
                    let _ = stream.write_all(bytes);
                    let _ = stream.flush();
                }
                Behaviour::RawAfterRequest(bytes) => {
                    let _ = stream.sock.write_all(bytes);
                }
                _ => {}
            }
            let _ = stream.sock.shutdown(std::net::Shutdown::Both);
            return;
        };
        match handler(&path) {
            Reply::Bytes(b) => {
                if stream.write_all(&b).is_err() {
                    return;
                }
            }
            Reply::BytesThenClose(b) => {
                let _ = stream.write_all(&b);
                stream.conn.send_close_notify();
                let _ = stream.flush();
                return;
            }
            Reply::Hang => {
                // Hold the connection until the client closes it or the test ends.
                while !stop.load(Ordering::Relaxed) {
                    match stream.read(&mut chunk) {
                        Ok(0) => return,
                        Err(e) if !is_timeout(&e) => return,
                        _ => {}
                    }
                }
                return;
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
