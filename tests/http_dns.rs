//! Names and addresses in the HTTP client, in process, on both drivers:
//! names resolved at connect time through the shard's cache (lookups
//! counted through the resolver's test hooks), several addresses spread
//! round robin, TTL expiry, names that do not resolve, IPv6 literals, and
//! `source_ips` (the socket2 connect path) seen from the server side.
//! Names with several addresses come from `dns::override_host` (the
//! in-process form of the hidden `LOCUSTA_TEST_HOSTS` file): /etc/hosts
//! cannot be edited here, and only getaddrinfo is stood in for.

#[macro_use]
#[path = "common/drivers.rs"]
mod drivers;
#[path = "common/http_server.rs"]
mod http_server;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_server::TestServer;
use locusta::http::dns;
use locusta::http::{
    write_request, ClientConfig, Connection, DiscardBody, HttpError, Method, Target,
};

on_both_drivers!(
    localhost_resolves_through_the_cache,
    several_addresses_spread_round_robin,
    a_failing_address_sits_out,
    ttl_expiry_re_resolves_and_keep_alive_never_does,
    ttl_zero_resolves_every_connect,
    unresolvable_name_is_a_named_failure,
    ipv6_literal_reaches_a_v6_server,
    source_ips_alternate,
);

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// A name no other test uses (tests run in parallel and count lookups).
fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}.test", N.fetch_add(1, Ordering::SeqCst))
}

fn cfg(ttl: Duration) -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        dns_ttl: ttl,
        ..ClientConfig::default()
    }
}

fn get(t: &Target) -> Rc<Vec<u8>> {
    let mut buf = Vec::new();
    write_request(&mut buf, Method::Get, &t.path, &t.host_header, &[], b"");
    Rc::new(buf)
}

async fn send(conn: &mut Connection, t: &Target) -> Result<u16, HttpError> {
    conn.send(&get(t), Method::Get, &mut DiscardBody)
        .await
        .map(|r| r.status)
}

/// Keep-alive server answering every request 200.
fn keep_alive_server() -> TestServer {
    TestServer::serve(|conn, _| conn.write(OK))
}

/// Wait (bounded) for `name`'s lookup count to reach `n`.
fn wait_lookups(name: &str, n: u64) -> u64 {
    let until = Instant::now() + Duration::from_secs(10);
    while dns::lookups_of(name) < n && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    dns::lookups_of(name)
}

async fn localhost_resolves_through_the_cache() {
    // /etc/hosts here: localhost → 127.0.0.1 only.
    let server = keep_alive_server();
    let t = Target::parse(&format!("http://localhost:{}/", server.addr.port())).unwrap();
    assert_eq!(t.addr, None, "a name is not resolved at parse time");
    let mut conn = Connection::to(t.endpoint(), cfg(Duration::from_secs(30)));
    for _ in 0..5 {
        assert_eq!(send(&mut conn, &t).await, Ok(200));
        conn.close();
    }
    assert_eq!(conn.connects(), 5);
    assert_eq!(server.accepted(), 5);
    // One lookup per thread at most (the other driver's test may add its own).
    let n = dns::lookups_of("localhost");
    assert!((1..=2).contains(&n), "{n} lookups of localhost");
}

/// Listeners on several loopback addresses, one port: each connection is
/// answered once and closed; it records which address was connected to.
struct Spread {
    port: u16,
    seen: Arc<Mutex<Vec<IpAddr>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Spread {
    fn start(ips: &[&str]) -> Spread {
        let (port, listeners) = (0..50)
            .find_map(|_| {
                let first = TcpListener::bind((ips[0], 0)).ok()?;
                let port = first.local_addr().ok()?.port();
                let mut all = vec![first];
                for ip in &ips[1..] {
                    all.push(TcpListener::bind((*ip, port)).ok()?);
                }
                Some((port, all))
            })
            .expect("one free port on every address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = listeners
            .into_iter()
            .map(|l| {
                let (seen, stop) = (seen.clone(), stop.clone());
                l.set_nonblocking(true).unwrap();
                std::thread::spawn(move || {
                    let until = Instant::now() + Duration::from_secs(30);
                    while !stop.load(Ordering::SeqCst) && Instant::now() < until {
                        let Ok((mut s, _)) = l.accept() else {
                            std::thread::sleep(Duration::from_millis(2));
                            continue;
                        };
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                        let mut buf = [0u8; 4096];
                        let mut got = Vec::new();
                        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => got.extend_from_slice(&buf[..n]),
                            }
                        }
                        if let Ok(local) = s.local_addr() {
                            seen.lock().unwrap().push(local.ip());
                        }
                        let _ = s.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        );
                    }
                })
            })
            .collect();
        Spread {
            port,
            seen,
            stop,
            threads,
        }
    }

    fn count(&self, ip: &str) -> usize {
        let ip: IpAddr = ip.parse().unwrap();
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| **s == ip)
            .count()
    }
}

impl Drop for Spread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

async fn several_addresses_spread_round_robin() {
    let spread = Spread::start(&["127.0.0.2", "127.0.0.3"]);
    let name = unique("multi");
    dns::override_host(
        &name,
        &["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()],
    );
    let t = Target::parse(&format!("http://{name}:{}/", spread.port)).unwrap();
    let mut conn = Connection::to(t.endpoint(), cfg(Duration::from_secs(30)));
    for _ in 0..8 {
        // Every response says `Connection: close`: a new connection each.
        assert_eq!(send(&mut conn, &t).await, Ok(200));
    }
    assert_eq!(conn.connects(), 8);
    assert_eq!(spread.count("127.0.0.2"), 4);
    assert_eq!(spread.count("127.0.0.3"), 4);
    assert_eq!(dns::lookups_of(&name), 1, "cached after the first connect");
}

async fn a_failing_address_sits_out() {
    // 127.0.0.3 has nothing listening on the port: refused.
    let spread = Spread::start(&["127.0.0.2"]);
    let name = unique("onedead");
    dns::override_host(
        &name,
        &["127.0.0.3".parse().unwrap(), "127.0.0.2".parse().unwrap()],
    );
    let t = Target::parse(&format!("http://{name}:{}/", spread.port)).unwrap();
    let mut conn = Connection::to(t.endpoint(), cfg(Duration::from_secs(30)));
    let mut refused = 0;
    for _ in 0..10 {
        match send(&mut conn, &t).await {
            Ok(200) => {}
            Err(HttpError::ConnectionRefused) => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    // The first connect takes the dead address; within the sit-out (1 s,
    // far longer than these loopback connects) it is skipped. Plain turns
    // would fail 5 of 10; 2 leaves room for a very slow box.
    assert!((1..=2).contains(&refused), "{refused} refused");
    assert_eq!(spread.count("127.0.0.2"), 10 - refused);
}

async fn ttl_expiry_re_resolves_and_keep_alive_never_does() {
    let server = keep_alive_server();
    let name = unique("ttl");
    dns::override_host(&name, &["127.0.0.1".parse().unwrap()]);
    let t = Target::parse(&format!("http://{name}:{}/", server.addr.port())).unwrap();
    let ttl = Duration::from_millis(200);
    let mut conn = Connection::to(t.endpoint(), cfg(ttl));
    // Kept alive across several TTLs: one connect, one lookup.
    let until = Instant::now() + ttl * 3;
    let mut sent = 0;
    while Instant::now() < until || sent < 5 {
        assert_eq!(send(&mut conn, &t).await, Ok(200));
        sent += 1;
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(conn.connects(), 1);
    assert_eq!(
        dns::lookups_of(&name),
        1,
        "{sent} requests on one connection"
    );
    // A new connection after expiry: the old address serves it, and one
    // refresh runs (no connect waits for it).
    conn.close();
    assert_eq!(send(&mut conn, &t).await, Ok(200));
    assert_eq!(wait_lookups(&name, 2), 2);
    // Within the new TTL, no further lookup.
    conn.close();
    assert_eq!(send(&mut conn, &t).await, Ok(200));
    assert_eq!(dns::lookups_of(&name), 2);
}

async fn ttl_zero_resolves_every_connect() {
    let server = keep_alive_server();
    let name = unique("ttl0");
    dns::override_host(&name, &["127.0.0.1".parse().unwrap()]);
    let t = Target::parse(&format!("http://{name}:{}/", server.addr.port())).unwrap();
    let mut conn = Connection::to(t.endpoint(), cfg(Duration::ZERO));
    for i in 1..=3 {
        assert_eq!(send(&mut conn, &t).await, Ok(200));
        assert_eq!(send(&mut conn, &t).await, Ok(200), "kept alive: no lookup");
        assert_eq!(dns::lookups_of(&name), i);
        conn.close();
    }
}

async fn unresolvable_name_is_a_named_failure() {
    let t = Target::parse("http://no-such-host.invalid:8080/").unwrap();
    let mut conn = Connection::to(t.endpoint(), cfg(Duration::from_secs(30)));
    for _ in 0..2 {
        let e = send(&mut conn, &t).await.unwrap_err();
        assert!(matches!(e, HttpError::Dns(_)), "{e:?}");
        let text = e.to_string();
        assert!(text.starts_with("dns: no-such-host.invalid: "), "{text}");
        assert!(text.len() > "dns: no-such-host.invalid: ".len(), "{text}");
    }
    assert_eq!(conn.connects(), 0);
    // A name that resolves to nothing is named too.
    let name = unique("empty");
    dns::override_host(&name, &[]);
    let t = Target::parse(&format!("http://{name}/")).unwrap();
    let mut conn = Connection::to(t.endpoint(), cfg(Duration::from_secs(30)));
    let e = send(&mut conn, &t).await.unwrap_err();
    assert_eq!(e.to_string(), format!("dns: {name}: no addresses"));
}

async fn ipv6_literal_reaches_a_v6_server() {
    let listener = TcpListener::bind("[::1]:0").expect("::1 on lo");
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        s.write_all(OK).unwrap();
        (peer, head)
    });
    let t = Target::parse(&format!("http://[::1]:{port}/v6")).unwrap();
    assert_eq!(t.addr, Some(SocketAddr::new("::1".parse().unwrap(), port)));
    let mut conn = Connection::to(t.endpoint(), cfg(Duration::from_secs(30)));
    assert_eq!(send(&mut conn, &t).await, Ok(200));
    let (peer, head) = server.join().unwrap();
    assert!(peer.is_ipv6(), "{peer}");
    assert!(head.contains(&format!("Host: [::1]:{port}\r\n")), "{head}");
}

async fn source_ips_alternate() {
    let peers = Arc::new(Mutex::new(Vec::<IpAddr>::new()));
    let seen = peers.clone();
    let server = TestServer::serve(move |conn, _| {
        if let Ok(peer) = conn.stream.peer_addr() {
            seen.lock().unwrap().push(peer.ip());
        }
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        false
    });
    let t = Target::parse(&format!("http://{}/", server.addr)).unwrap();
    let mut c = cfg(Duration::from_secs(30));
    c.source_ips = ["127.0.0.2", "127.0.0.3"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect::<Vec<IpAddr>>()
        .into();
    let mut conn = Connection::to(t.endpoint(), c.clone());
    for _ in 0..6 {
        assert_eq!(send(&mut conn, &t).await, Ok(200));
    }
    assert_eq!(conn.connects(), 6);
    // The server's view of each connection's peer (each response was read,
    // so each peer was recorded before it).
    let peers = peers.lock().unwrap().clone();
    let of = |ip: &str| {
        let ip: IpAddr = ip.parse().unwrap();
        peers.iter().filter(|p| **p == ip).count()
    };
    assert_eq!((of("127.0.0.2"), of("127.0.0.3")), (3, 3), "{peers:?}");

    // A refused connect through the bound-socket path is named as usual.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let t = Target::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let mut conn = Connection::to(t.endpoint(), c.clone());
    assert_eq!(send(&mut conn, &t).await, Err(HttpError::ConnectionRefused));
    // No source address of the target's family: named, not a silent bind.
    let t = Target::parse(&format!("http://[::1]:{port}/")).unwrap();
    let mut conn = Connection::to(t.endpoint(), c);
    assert_eq!(send(&mut conn, &t).await, Err(HttpError::AddrNotAvailable));
}
