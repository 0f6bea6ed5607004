//! The HTTP client over TLS against an in-process rustls server with
//! certificates made in the test (rcgen): verification (good, unknown CA,
//! wrong name, expired, --insecure), mTLS, hostile servers (closing
//! mid-handshake, plain HTTP on the TLS port, silent, truncating without
//! close_notify) and session resumption. Every test runs on both drivers.

#[macro_use]
#[path = "common/drivers.rs"]
mod drivers;
mod common;
#[path = "common/tls_server.rs"]
mod tls_server;

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ok, Reply};
use drivers::{run_io_uring, run_legacy, FD_LOCK};
use locusta::http::{
    write_request, ClientConfig, Connection, DiscardBody, HttpError, Method, Target, TlsKind,
    TlsOptions,
};
use tls_server::{Behaviour, Ca, Leaf, TlsServer};

on_both_drivers!(
    trusted_ca_serves_requests_on_one_connection,
    unknown_ca_is_named,
    system_roots_do_not_trust_a_test_ca,
    wrong_host_name_is_named,
    ip_literal_is_checked_against_ip_sans,
    expired_certificate_is_named,
    insecure_accepts_any_certificate,
    mtls_certificate_given_is_accepted,
    mtls_certificate_missing_is_named,
    server_closing_mid_handshake_is_named,
    plain_http_on_the_tls_port_is_named,
    silent_server_times_out_the_handshake,
    reconnects_resume_the_session,
    many_users_reconnecting_at_once_all_resume,
    truncated_close_delimited_body_is_named,
    garbage_after_the_handshake_is_a_protocol_error,
);

/// A directory of its own per call: tests run in parallel threads.
fn tmp() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    common::temp_dir(&format!("http_tls-{n}"))
}

/// A client config trusting `ca` only (as --ca-cert), with optional mTLS.
fn trusting(ca: &Ca, client: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    let dir = tmp();
    let mut opts = TlsOptions {
        ca_cert: Some(tls_server::write_file(&dir, "ca.pem", &ca.pem())),
        ..TlsOptions::default()
    };
    if let Some(leaf) = client {
        opts.client_cert = Some(tls_server::write_file(&dir, "client.pem", &leaf.cert_pem));
        opts.client_key = Some(tls_server::write_file(&dir, "client.key", &leaf.key_pem));
    }
    opts.build().unwrap()
}

fn cfg(tls: Option<Arc<rustls::ClientConfig>>) -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        tls,
        ..ClientConfig::default()
    }
}

fn serve_ok(leaf: &Leaf) -> TlsServer {
    TlsServer::start(leaf, None, Behaviour::Serve(Box::new(|_| ok("hello"))))
}

/// One GET of `url` on `conn`.
async fn get(conn: &mut Connection, target: &Target) -> Result<(u16, u64), HttpError> {
    let mut buf = Vec::new();
    write_request(
        &mut buf,
        Method::Get,
        &target.path,
        &target.host_header,
        &[],
        b"",
    );
    let info = conn
        .send(&Rc::new(buf), Method::Get, &mut DiscardBody)
        .await?;
    Ok((info.status, info.body_len))
}

/// A fresh connection's first GET of `host` on the server's port.
async fn get_once(
    server: &TlsServer,
    host: &str,
    cfg: ClientConfig,
) -> Result<(u16, u64), HttpError> {
    let target = Target::parse(&server.url(host, "/x")).unwrap();
    let mut conn = Connection::to(target.endpoint(), cfg);
    get(&mut conn, &target).await
}

async fn trusted_ca_serves_requests_on_one_connection() {
    let ca = Ca::new("test CA");
    let server = serve_ok(&ca.server(&["localhost"]));
    let target = Target::parse(&server.url("localhost", "/hello")).unwrap();
    let mut conn = Connection::to(target.endpoint(), cfg(Some(trusting(&ca, None))));
    for _ in 0..50 {
        assert_eq!(get(&mut conn, &target).await, Ok((200, 5)));
    }
    assert_eq!(conn.connects(), 1);
    assert_eq!(server.full(), 1);
    // X25519 is the key share offered, so no server has to ask again
    // (HelloRetryRequest) or fall back to slow P-384 arithmetic.
    assert_eq!(server.handshakes(), vec!["Some(X25519) Some(Full)"]);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 50);
    assert!(reqs[0].starts_with("GET /hello HTTP/1.1"), "{}", reqs[0]);
    assert!(
        reqs[0].contains(&format!("Host: localhost:{}", server.addr.port())),
        "{}",
        reqs[0]
    );
}

async fn unknown_ca_is_named() {
    let ca = Ca::new("test CA");
    let other = Ca::new("another CA");
    let server = serve_ok(&ca.server(&["localhost"]));
    let err = get_once(&server, "localhost", cfg(Some(trusting(&other, None))))
        .await
        .unwrap_err();
    assert_eq!(err, HttpError::Tls(TlsKind::UnknownIssuer));
    assert_eq!(
        err.to_string(),
        "tls: certificate not trusted (UnknownIssuer)"
    );
    assert!(server.requests().is_empty());
}

/// No TLS flags: the system roots, which do not hold a CA made just now.
async fn system_roots_do_not_trust_a_test_ca() {
    let ca = Ca::new("test CA");
    let server = serve_ok(&ca.server(&["localhost"]));
    let err = get_once(&server, "localhost", cfg(None)).await.unwrap_err();
    assert_eq!(err, HttpError::Tls(TlsKind::UnknownIssuer));
}

async fn wrong_host_name_is_named() {
    let ca = Ca::new("test CA");
    let server = serve_ok(&ca.server(&["api.example.com"]));
    let err = get_once(&server, "localhost", cfg(Some(trusting(&ca, None))))
        .await
        .unwrap_err();
    assert_eq!(err, HttpError::Tls(TlsKind::NameMismatch));
    assert_eq!(err.to_string(), "tls: name mismatch");
}

async fn ip_literal_is_checked_against_ip_sans() {
    let ca = Ca::new("test CA");
    let with_ip = serve_ok(&ca.server(&["127.0.0.1"]));
    let cfg_ca = cfg(Some(trusting(&ca, None)));
    assert_eq!(
        get_once(&with_ip, "127.0.0.1", cfg_ca.clone()).await,
        Ok((200, 5))
    );
    let dns_only = serve_ok(&ca.server(&["localhost"]));
    let err = get_once(&dns_only, "127.0.0.1", cfg_ca).await.unwrap_err();
    assert_eq!(err, HttpError::Tls(TlsKind::NameMismatch));
}

async fn expired_certificate_is_named() {
    let ca = Ca::new("test CA");
    let server = serve_ok(&ca.expired_server(&["localhost"]));
    let err = get_once(&server, "localhost", cfg(Some(trusting(&ca, None))))
        .await
        .unwrap_err();
    assert_eq!(err, HttpError::Tls(TlsKind::Expired));
    assert_eq!(err.to_string(), "tls: certificate expired");
}

async fn insecure_accepts_any_certificate() {
    let ca = Ca::new("test CA");
    let insecure = TlsOptions {
        insecure: true,
        ..TlsOptions::default()
    }
    .build()
    .unwrap();
    for leaf in [
        ca.expired_server(&["elsewhere.example"]),
        ca.server(&["localhost"]),
    ] {
        let server = serve_ok(&leaf);
        assert_eq!(
            get_once(&server, "localhost", cfg(Some(insecure.clone()))).await,
            Ok((200, 5))
        );
    }
}

async fn mtls_certificate_given_is_accepted() {
    let ca = Ca::new("test CA");
    let clients = Ca::new("client CA");
    let server = TlsServer::start(
        &ca.server(&["localhost"]),
        Some(&clients),
        Behaviour::Serve(Box::new(|_| ok("hello"))),
    );
    let me = clients.client("load-generator");
    let cfg = cfg(Some(trusting(&ca, Some(&me))));
    assert_eq!(get_once(&server, "localhost", cfg).await, Ok((200, 5)));
    assert_eq!(server.requests().len(), 1);
}

async fn mtls_certificate_missing_is_named() {
    let ca = Ca::new("test CA");
    let clients = Ca::new("client CA");
    let server = TlsServer::start(
        &ca.server(&["localhost"]),
        Some(&clients),
        Behaviour::Serve(Box::new(|_| ok("hello"))),
    );
    let err = get_once(&server, "localhost", cfg(Some(trusting(&ca, None))))
        .await
        .unwrap_err();
    assert_eq!(err, HttpError::Tls(TlsKind::ClientCertRequired));
    assert_eq!(err.to_string(), "tls: client certificate required");
    // A certificate from a CA the server does not trust: refused.
    let stranger = Ca::new("stranger CA").client("load-generator");
    let err = get_once(
        &server,
        "localhost",
        cfg(Some(trusting(&ca, Some(&stranger)))),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, HttpError::Tls(TlsKind::ClientCertRefused(_))),
        "{err}"
    );
    assert!(server.requests().is_empty());
}

async fn server_closing_mid_handshake_is_named() {
    let ca = Ca::new("test CA");
    let server = TlsServer::start(
        &ca.server(&["localhost"]),
        None,
        Behaviour::CloseMidHandshake,
    );
    let err = get_once(&server, "localhost", cfg(Some(trusting(&ca, None))))
        .await
        .unwrap_err();
    assert_eq!(err, HttpError::Tls(TlsKind::ClosedInHandshake));
    assert_eq!(err.to_string(), "tls: connection closed during handshake");
}

async fn plain_http_on_the_tls_port_is_named() {
    let ca = Ca::new("test CA");
    let server = TlsServer::start(&ca.server(&["localhost"]), None, Behaviour::PlainHttp);
    let err = get_once(&server, "localhost", cfg(Some(trusting(&ca, None))))
        .await
        .unwrap_err();
    assert_eq!(err, HttpError::Tls(TlsKind::NotTls));
    assert_eq!(err.to_string(), "tls: not a TLS server");
}

/// TCP connects, the ClientHello is never answered: the connect timeout
/// (TCP + handshake) ends it, well before the request timeout.
async fn silent_server_times_out_the_handshake() {
    let ca = Ca::new("test CA");
    let server = TlsServer::start(&ca.server(&["localhost"]), None, Behaviour::Silent);
    let cfg = ClientConfig {
        connect_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(30),
        tls: Some(trusting(&ca, None)),
        ..ClientConfig::default()
    };
    let started = Instant::now();
    let err = get_once(&server, "localhost", cfg).await.unwrap_err();
    assert_eq!(err.to_string(), "tls: handshake timeout after 300ms");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // The whole-request deadline also bounds a handshake.
    let cfg = ClientConfig {
        connect_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_millis(300),
        tls: Some(trusting(&ca, None)),
        ..ClientConfig::default()
    };
    let err = get_once(&server, "localhost", cfg).await.unwrap_err();
    assert_eq!(err.to_string(), "timeout after 300ms");
}

/// `Connection: close` on every response: each request reconnects, and
/// the shared config's session store makes those reconnects resumptions.
async fn reconnects_resume_the_session() {
    let ca = Ca::new("test CA");
    let server = TlsServer::start(
        &ca.server(&["localhost"]),
        None,
        Behaviour::Serve(Box::new(|_| {
            Reply::BytesThenClose(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec(),
            )
        })),
    );
    let tls = trusting(&ca, None);
    let target = Target::parse(&server.url("localhost", "/")).unwrap();
    let mut conn = Connection::to(target.endpoint(), cfg(Some(tls.clone())));
    for _ in 0..10 {
        assert_eq!(get(&mut conn, &target).await, Ok((200, 2)));
    }
    // A second Connection with the same config resumes too.
    let mut other = Connection::to(target.endpoint(), cfg(Some(tls)));
    assert_eq!(get(&mut other, &target).await, Ok((200, 2)));
    assert_eq!(conn.connects(), 10);
    assert_eq!(server.full(), 1, "resumed: {}", server.resumed());
    assert_eq!(server.resumed(), 10);
}

/// 40 reconnects one after another bank a ticket each (the server sends
/// two per handshake); then 32 users reconnecting at once all find one.
/// rustls' default store keeps 8 tickets per server: 24 of them would pay a
/// full handshake.
async fn many_users_reconnecting_at_once_all_resume() {
    let ca = Ca::new("test CA");
    let server = TlsServer::start(
        &ca.server(&["localhost"]),
        None,
        Behaviour::Serve(Box::new(|_| {
            Reply::BytesThenClose(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec(),
            )
        })),
    );
    let tls = trusting(&ca, None);
    let target = Target::parse(&server.url("localhost", "/")).unwrap();
    let mut warm = Connection::to(target.endpoint(), cfg(Some(tls.clone())));
    for _ in 0..40 {
        assert_eq!(get(&mut warm, &target).await, Ok((200, 2)));
    }
    let users: Vec<_> = (0..32)
        .map(|_| {
            let (target, cfg) = (target.clone(), cfg(Some(tls.clone())));
            monoio::spawn(async move {
                let mut conn = Connection::to(target.endpoint(), cfg);
                get(&mut conn, &target).await
            })
        })
        .collect();
    for user in users {
        assert_eq!(user.await, Ok((200, 2)));
    }
    assert_eq!(server.full(), 1, "resumed: {}", server.resumed());
    assert_eq!(server.resumed(), 39 + 32);
}

/// Plain bytes where a TLS record should be, once the session is up: a
/// corrupt stream, not "not a TLS server".
async fn garbage_after_the_handshake_is_a_protocol_error() {
    let ca = Ca::new("test CA");
    let server = TlsServer::start(
        &ca.server(&["localhost"]),
        None,
        Behaviour::RawAfterRequest(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    );
    let err = get_once(&server, "localhost", cfg(Some(trusting(&ca, None))))
        .await
        .unwrap_err();
    assert_eq!(err, HttpError::Tls(TlsKind::Protocol("InvalidMessage")));
    assert_eq!(err.to_string(), "tls: protocol error (InvalidMessage)");
}

async fn truncated_close_delimited_body_is_named() {
    let ca = Ca::new("test CA");
    let server = TlsServer::start(
        &ca.server(&["localhost"]),
        None,
        Behaviour::NoCloseNotify(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial bo"),
    );
    let err = get_once(&server, "localhost", cfg(Some(trusting(&ca, None))))
        .await
        .unwrap_err();
    assert_eq!(err, HttpError::Tls(TlsKind::NoCloseNotify));
    assert_eq!(err.to_string(), "tls: peer closed without close_notify");
    // With Content-Length the framing says the body is whole: no error.
    let framed = TlsServer::start(
        &ca.server(&["localhost"]),
        None,
        Behaviour::NoCloseNotify(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    );
    assert_eq!(
        get_once(&framed, "localhost", cfg(Some(trusting(&ca, None)))).await,
        Ok((200, 2))
    );
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Hundreds of TLS handshakes cut by the connect timeout and TLS reads cut
/// by the request timeout (each cancels the in-flight op): every socket is
/// closed afterwards.
fn fd_leak_after_tls_timeouts<
    F: FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = usize>>>) -> usize,
>(
    run: F,
) {
    let _exclusive = FD_LOCK.write().unwrap_or_else(|e| e.into_inner());
    // Servers of the tests that ran before close their sockets within
    // their 100 ms read timeout: wait for the count to settle.
    let mut before = fd_count();
    let settle = Instant::now() + Duration::from_secs(5);
    while Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(300));
        let now = fd_count();
        if now == before {
            break;
        }
        before = now;
    }
    {
        let ca = Ca::new("test CA");
        let silent = TlsServer::start(&ca.server(&["localhost"]), None, Behaviour::Silent);
        let hanging = TlsServer::start(
            &ca.server(&["localhost"]),
            None,
            Behaviour::Serve(Box::new(|_| Reply::Hang)),
        );
        let targets = [
            Target::parse(&silent.url("localhost", "/")).unwrap(),
            Target::parse(&hanging.url("localhost", "/")).unwrap(),
        ];
        let tls = trusting(&ca, None);
        let timeouts = run(Box::pin(async move {
            let cfg = ClientConfig {
                connect_timeout: Duration::from_millis(50),
                request_timeout: Duration::from_millis(200),
                tls: Some(tls),
                ..ClientConfig::default()
            };
            let users: Vec<_> = (0..40)
                .map(|i| {
                    let cfg = cfg.clone();
                    let target = targets[i % 2].clone();
                    monoio::spawn(async move {
                        let mut conn = Connection::to(target.endpoint(), cfg);
                        let mut timeouts = 0;
                        for _ in 0..8 {
                            match get(&mut conn, &target).await {
                                Err(HttpError::Tls(TlsKind::HandshakeTimeout(_)))
                                | Err(HttpError::Timeout(_)) => timeouts += 1,
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
        assert_eq!(timeouts, 320);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while fd_count() != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(fd_count(), before, "fds leaked");
}

#[test]
fn fd_leak_after_tls_timeouts_io_uring() {
    fd_leak_after_tls_timeouts(run_io_uring);
}

#[test]
fn fd_leak_after_tls_timeouts_legacy() {
    fd_leak_after_tls_timeouts(run_legacy);
}
