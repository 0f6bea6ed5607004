//! The real binary over https against an in-process rustls server with
//! certificates made in the test: raw mode on both I/O drivers with and
//! without `--ca-cert`, resumption across `Connection: close`, the TLS flags'
//! config errors, the https_login example, absolute https:// URLs in Lua, and
//! a cluster whose master names an https host. Every run is bounded by `-t`.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;
#[path = "common/tls_server.rs"]
mod tls_server;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster_common::{free_port, worker_sent, Proc};
use common::*;
use tls_server::{self_signed_ca_server, write_file, Behaviour, Ca, TlsServer};

const LIMIT: Duration = Duration::from_secs(40);

fn serve_ok(ca: &Ca) -> TlsServer {
    TlsServer::start(
        &ca.server(&["localhost"]),
        None,
        Behaviour::Serve(Box::new(|_| ok("hello"))),
    )
}

fn ca_file(dir: &Path, ca: &Ca) -> PathBuf {
    write_file(dir, "ca.pem", &ca.pem())
}

fn raw(io: &str, url: &str, extra: &[&str], csv: &Path) -> std::process::Output {
    run_bounded(
        locusta()
            .args(["--headless", "-u", "4", "-r", "100", "-t", "2s"])
            .args(["--shards", "2", "--io", io, "--only-summary"])
            .args(["--csv", csv.to_str().unwrap()])
            .args(extra)
            .arg(url),
        LIMIT,
    )
}

fn raw_https_on(io: &str) {
    let ca = Ca::new("test CA");
    let server = serve_ok(&ca);
    let dir = temp_dir(&format!("https-raw-{io}"));
    let ca_pem = ca_file(&dir, &ca);
    let csv = dir.join("ok");
    let out = raw(
        io,
        &server.url("localhost", "/hello"),
        &["--ca-cert", ca_pem.to_str().unwrap()],
        &csv,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let agg = aggregated(&dir.join("ok_stats.csv"));
    let count: usize = agg["Request Count"].parse().unwrap();
    assert!(count > 20, "only {count} requests\n{stdout}");
    assert_eq!(agg["Failure Count"], "0", "{stdout}");
    assert_eq!(agg["Average Content Size"].parse::<f64>().unwrap(), 5.0);
    assert!(
        server.requests().len() >= count,
        "every request went over TLS"
    );
    // Keep-alive: one handshake per user.
    assert_eq!(server.full() + server.resumed(), 4, "{stderr}");

    // Without --ca-cert: the system roots do not know the test CA.
    let csv = dir.join("untrusted");
    let out = raw(io, &server.url("localhost", "/hello"), &[], &csv);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("tls: certificate not trusted (UnknownIssuer)"),
        "{stdout}"
    );
    let agg = aggregated(&dir.join("untrusted_stats.csv"));
    assert_eq!(agg["Request Count"], agg["Failure Count"], "{stdout}");
    assert_ne!(agg["Request Count"], "0");
    let failures = std::fs::read_to_string(dir.join("untrusted_failures.csv")).unwrap();
    assert!(
        failures.contains("tls: certificate not trusted (UnknownIssuer)"),
        "{failures}"
    );
}

#[test]
fn raw_https_io_uring() {
    raw_https_on("uring");
}

#[test]
fn raw_https_epoll() {
    raw_https_on("epoll");
}

/// Every response says `Connection: close`: a handshake per request, and
/// after each user's first one, resumptions (the session store is shared).
/// `openssl req -x509` marks its certificate a CA, which WebPKI refuses as
/// a server's own even as a trust anchor; given with --ca-cert it is
/// trusted as curl trusts it, its name still checked.
#[test]
fn self_signed_ca_certificate_given_with_ca_cert() {
    let leaf = self_signed_ca_server(&["localhost"]);
    let server = TlsServer::start(&leaf, None, Behaviour::Serve(Box::new(|_| ok("hello"))));
    let dir = temp_dir("https-self-signed");
    let cert = write_file(&dir, "cert.pem", &leaf.cert_pem);
    let given = ["--ca-cert", cert.to_str().unwrap()];

    let out = raw(
        "uring",
        &server.url("localhost", "/"),
        &given,
        &dir.join("ok"),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let agg = aggregated(&dir.join("ok_stats.csv"));
    assert_eq!(agg["Failure Count"], "0", "{stdout}");
    assert_ne!(agg["Request Count"], "0");

    // Not given: named as not trusted, every request failed.
    let out = raw("uring", &server.url("localhost", "/"), &[], &dir.join("no"));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("tls: certificate not trusted (CaUsedAsEndEntity: self-signed?)"),
        "{stdout}"
    );
    let agg = aggregated(&dir.join("no_stats.csv"));
    assert_eq!(agg["Request Count"], agg["Failure Count"], "{stdout}");

    // Given, but the server is reached by a name the certificate lacks.
    let out = raw(
        "uring",
        &server.url("127.0.0.1", "/"),
        &given,
        &dir.join("name"),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("tls: name mismatch"), "{stdout}");
}

#[test]
fn connection_close_resumes_sessions() {
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
    let dir = temp_dir("https-close");
    let ca_pem = ca_file(&dir, &ca);
    let out = raw(
        "auto",
        &server.url("localhost", "/"),
        &["--ca-cert", ca_pem.to_str().unwrap()],
        &dir.join("run"),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let agg = aggregated(&dir.join("run_stats.csv"));
    assert_eq!(agg["Failure Count"], "0", "{stdout}");
    let (full, resumed) = (server.full(), server.resumed());
    assert!(resumed > 20, "full {full}, resumed {resumed}");
    assert!(
        full <= 8,
        "at most one full handshake per user-ish: full {full}, resumed {resumed}"
    );
}

#[test]
fn tls_flag_errors_name_the_file_before_the_run() {
    let dir = temp_dir("https-flags");
    let url = "https://localhost:9/";
    let missing = dir.join("missing.pem");
    let garbage = write_file(&dir, "garbage.pem", "not a certificate\n");
    let leaf = Ca::new("c").client("me");
    let cert = write_file(&dir, "client.pem", &leaf.cert_pem);
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["--ca-cert".into(), missing.display().to_string()],
            format!("--ca-cert {}", missing.display()),
        ),
        (
            vec!["--ca-cert".into(), garbage.display().to_string()],
            format!("--ca-cert {}", garbage.display()),
        ),
        (
            vec!["--client-cert".into(), cert.display().to_string()],
            "give both or neither".into(),
        ),
        (
            vec![
                "--client-cert".into(),
                cert.display().to_string(),
                "--client-key".into(),
                garbage.display().to_string(),
            ],
            format!("--client-key {}", garbage.display()),
        ),
    ];
    for (args, needle) in cases {
        let out = run_bounded(
            locusta()
                .args(["--headless", "-t", "1s"])
                .args(&args)
                .arg(url),
            LIMIT,
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&needle), "{args:?}: {stderr}");
    }
}

#[test]
fn https_login_example_runs() {
    let ca = Ca::new("test CA");
    let server = TlsServer::start(
        &ca.server(&["localhost"]),
        None,
        Behaviour::Serve(Box::new(|path| {
            match path {
            "/api/login" => Reply::Bytes(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"token\":\"t-123\"}"
                    .to_vec(),
            ),
            _ => ok("[]"),
        }
        })),
    );
    let dir = temp_dir("https-login");
    let ca_pem = ca_file(&dir, &ca);
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/lua/examples/https_login.lua");
    let host = server.url("localhost", "");
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "3",
                "-r",
                "100",
                "-t",
                "2s",
                "--only-summary",
            ])
            .args(["-f", example, "-H", &host])
            .args(["--ca-cert", ca_pem.to_str().unwrap()])
            .args(["--csv", dir.join("run").to_str().unwrap()]),
        LIMIT,
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let reqs = server.requests();
    let logins = reqs
        .iter()
        .filter(|r| r.starts_with("POST /api/login "))
        .count();
    assert_eq!(logins, 3, "one login per user");
    let carts: Vec<&String> = reqs
        .iter()
        .filter(|r| r.starts_with("GET /api/cart "))
        .collect();
    assert!(!carts.is_empty());
    assert!(
        carts
            .iter()
            .all(|r| r.contains("Authorization: Bearer t-123")),
        "{carts:?}"
    );
    assert_eq!(aggregated(&dir.join("run_stats.csv"))["Failure Count"], "0");
}

/// No -H: the class's https host, plus an absolute https:// URL to another
/// TLS server, both verified with --ca-cert.
#[test]
fn lua_absolute_https_urls() {
    let ca = Ca::new("test CA");
    let host = serve_ok(&ca);
    let other = serve_ok(&ca);
    let dir = temp_dir("https-lua-abs");
    let ca_pem = ca_file(&dir, &ca);
    let script = write_file(
        &dir,
        "abs.lua",
        &format!(
            r#"
local locusta = require "locusta"
local U = locusta.user {{ host = "{h}", wait_time = locusta.constant(0.05) }}
U:task(1, function(self)
  assert(self.client:get("/mine").body == "hello")
  local r = self.client:get("{o}/theirs")
  assert(r.ok and r.body == "hello", tostring(r.error))
end)
"#,
            h = host.url("localhost", ""),
            o = other.url("localhost", ""),
        ),
    );
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "2",
                "-r",
                "100",
                "-t",
                "2s",
                "--only-summary",
            ])
            .args(["-f", script.to_str().unwrap()])
            .args(["--ca-cert", ca_pem.to_str().unwrap()]),
        LIMIT,
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(host.requests().iter().any(|r| r.starts_with("GET /mine ")));
    assert!(other
        .requests()
        .iter()
        .any(|r| r.starts_with("GET /theirs ")));
}

/// The master names an https host; the worker verifies it with its own
/// --ca-cert and its requests arrive over TLS.
#[test]
fn cluster_worker_loads_the_masters_https_host() {
    let ca = Ca::new("test CA");
    let server = serve_ok(&ca);
    let dir = temp_dir("https-cluster");
    let ca_pem = ca_file(&dir, &ca);
    let port = free_port();
    let csv = dir.join("run");
    let mut master = locusta();
    master
        .args(["--master", "--headless", "--only-summary"])
        .args(["-H", &server.url("localhost", "/")])
        .args(["--master-bind-port", &port.to_string()])
        .args(["--csv", csv.to_str().unwrap()])
        .args(["-u", "2", "-r", "100", "-t", "3s", "--expect-workers", "1"]);
    let mut m = Proc::spawn(&dir, "master", &mut master);
    let mut worker = locusta();
    worker
        .args([
            "--worker",
            "--shards",
            "1",
            "--master-port",
            &port.to_string(),
        ])
        .args(["--ca-cert", ca_pem.to_str().unwrap()]);
    let mut w = Proc::spawn(&dir, "worker", &mut worker);
    m.wait(LIMIT);
    w.wait(LIMIT);
    let (sent, failed) = worker_sent(&w.stderr());
    assert!(sent > 0, "{}", m.logs());
    assert_eq!(failed, 0, "{}\n{}", m.logs(), w.logs());
    assert!(server.requests().len() as u64 >= sent);
    assert_eq!(aggregated(&dir.join("run_stats.csv"))["Failure Count"], "0");
}
