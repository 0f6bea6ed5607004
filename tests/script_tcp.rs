//! `locusta.tcp` from a script, in the real binary on both I/O drivers
//! (io_uring and epoll), against in-process servers on 127.0.0.1: lines,
//! byte counts, delimiters, `*a`, a receive timeout (the connection stays
//! usable), a peer that closes mid-unit, a peer that floods a line past
//! `max_receive`, a refused connect, bad arguments, TLS against a rustls
//! server (trusted CA, wrong name, `insecure`), the shipped
//! `lua/examples/tcp_echo.lua`, and SIGTERM during a receive that never
//! completes (the run ends and writes its reports).

mod common;
#[path = "common/line_echo.rs"]
mod line_echo;
#[path = "common/script_out.rs"]
mod script_out;
#[path = "common/tls_server.rs"]
mod tls_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use line_echo::{ConnServer, LineEcho};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Writes 12 bytes, then closes.
fn closer() -> ConnServer {
    ConnServer::start(|mut s| {
        let _ = s.write_all(b"twelve bytes");
    })
}

/// Writes bytes without a newline until the client goes.
fn flood() -> ConnServer {
    ConnServer::start(|mut s| {
        let chunk = [b'x'; 4096];
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until && s.write_all(&chunk).is_ok() {}
    })
}

/// A TLS line echo with `leaf`'s certificate.
fn tls_echo(leaf: &tls_server::Leaf) -> ConnServer {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    ConnServer::start(move |sock| {
        let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
            return;
        };
        let mut tls = BufReader::new(rustls::StreamOwned::new(conn, sock));
        let mut line = Vec::new();
        while matches!(tls.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let l = std::mem::take(&mut line);
            if tls.get_mut().write_all(&l).is_err() || tls.get_mut().flush().is_err() {
                return;
            }
        }
    })
}

#[test]
fn tcp_api_on_both_drivers() {
    let echo = LineEcho::start();
    let close12 = closer();
    let flooder = flood();
    let ca = tls_server::Ca::new("locusta tcp test CA");
    let tls = tls_echo(&ca.server(&["localhost", "127.0.0.1"]));
    let dead = common::dead_port();
    for io in ["uring", "epoll"] {
        let dir = common::temp_dir(&format!("tcp-api-{io}"));
        let ca_path = tls_server::write_file(&dir, "ca.pem", &ca.pem());
        let script = script_out::lua_prelude(&dir)
            + &format!(
                r#"
local U = locusta.user {{ host = "http://127.0.0.1:1", wait_time = locusta.constant(0) }}
U:task(function(self)
  local c = locusta.tcp.connect("127.0.0.1", {echo}, {{ timeout = 2 }})
  put("tostring", c)
  put("sent", c:send("hello\r\n"))
  put("line", c:receive("*l"))
  c:send("abcdef\n")
  put("n", c:receive(3))
  put("rest", c:receive())
  c:send("a||b||\n")
  put("d1", c:receive("||"))
  put("d2", c:receive("||"))
  put("nl", #c:receive())
  put("timeout", err(c.receive, c, "*l", 0.3))
  c:send("after\n")
  put("after", c:receive())
  c:close()
  put("closed", err(c.send, c, "x"))
  local p = locusta.tcp.connect("127.0.0.1", {close12})
  put("peer_close", err(p.receive, p, 100))
  local p2 = locusta.tcp.connect("127.0.0.1", {close12})
  put("all", p2:receive("*a"))
  local f = locusta.tcp.connect("127.0.0.1", {flooder}, {{ max_receive = 1000 }})
  put("too_long", err(f.receive, f, "*l"))
  put("too_many", err(f.receive, f, 5000))
  put("refused", err(locusta.tcp.connect, "127.0.0.1", {dead}))
  put("bad_port", err(locusta.tcp.connect, "127.0.0.1", 70000))
  put("bad_opt", err(locusta.tcp.connect, "127.0.0.1", {echo}, {{ nope = 1 }}))
  put("bad_pattern", err(c.receive, c, {{}}))
  local t = locusta.tcp.connect("localhost", {tls}, {{ tls = {{ ca = "{ca}" }}, timeout = 5 }})
  t:send("secure\n")
  put("tls_line", t:receive())
  t:close()
  put("tls_untrusted", err(locusta.tcp.connect, "127.0.0.1", {tls}, {{ tls = true, timeout = 5 }}))
  put("tls_wrong_name", err(locusta.tcp.connect, "127.0.0.1", {tls},
    {{ tls = {{ ca = "{ca}", server_name = "other.example" }}, timeout = 5 }}))
  local i = locusta.tcp.connect("127.0.0.1", {tls}, {{ tls = {{ insecure = true }}, timeout = 5 }})
  i:send("insecure\n")
  put("tls_insecure", i:receive())
  local co = coroutine.wrap(function() return err(c.receive, c) end)
  put("nested", co())
  put("done", true)
  locusta.quit(0)
end)
"#,
                echo = echo.server.port(),
                close12 = close12.port(),
                flooder = flooder.port(),
                tls = tls.port(),
                ca = ca_path.display(),
            );
        let path = dir.join("s.lua");
        std::fs::write(&path, script).unwrap();
        let out = common::run_bounded(
            common::locusta()
                .args(["-f", path.to_str().unwrap(), "--headless", "--only-summary"])
                .args([
                    "-u", "1", "-r", "10", "-t", "20s", "--io", io, "--shards", "1",
                ]),
            Duration::from_secs(60),
        );
        let r = script_out::results(&dir);
        let ctx = format!("{io}: {r:#?}\nstderr: {}", common::text(&out.stderr));
        assert_eq!(r.get("done").map(String::as_str), Some("true"), "{ctx}");
        assert_eq!(out.status.code(), Some(0), "{ctx}");
        let echo_addr = format!("127.0.0.1:{}", echo.server.port());
        assert_eq!(
            r["tostring"],
            format!("<TcpConnection {echo_addr}>"),
            "{ctx}"
        );
        assert_eq!(r["sent"], "7", "{ctx}");
        assert_eq!(r["line"], "hello", "{ctx}");
        assert_eq!(
            (r["n"].as_str(), r["rest"].as_str()),
            ("abc", "def"),
            "{ctx}"
        );
        assert_eq!(
            (r["d1"].as_str(), r["d2"].as_str(), r["nl"].as_str()),
            ("a", "b", "0"),
            "{ctx}"
        );
        assert!(
            r["timeout"].contains(&format!(
                "tcp receive from {echo_addr}: timed out after 300 ms"
            )),
            "{ctx}"
        );
        assert_eq!(r["after"], "after", "{ctx}");
        assert!(
            r["closed"].contains("connection is closed (closed by the script)"),
            "{ctx}"
        );
        assert!(
            r["peer_close"].contains("connection closed by peer after 12 bytes"),
            "{ctx}"
        );
        assert_eq!(r["all"], "twelve bytes", "{ctx}");
        assert!(r["too_long"].contains("more than 1000 bytes"), "{ctx}");
        assert!(r["too_many"].contains("more than max_receive"), "{ctx}");
        assert!(
            r["refused"].contains(&format!(
                "tcp connect to 127.0.0.1:{dead}: connection refused"
            )),
            "{ctx}"
        );
        assert!(
            r["bad_port"].contains("port must be an integer 1..65535"),
            "{ctx}"
        );
        assert!(r["bad_opt"].contains("unknown option 'nope'"), "{ctx}");
        assert!(r["bad_pattern"].contains("expected a byte count"), "{ctx}");
        assert_eq!(r["tls_line"], "secure", "{ctx}");
        assert!(r["tls_untrusted"].contains("tls:"), "{ctx}");
        assert!(r["tls_wrong_name"].contains("tls:"), "{ctx}");
        assert_eq!(r["tls_insecure"], "insecure", "{ctx}");
        assert!(
            r["nested"].contains("inside a coroutine created by the script"),
            "{ctx}"
        );
    }
    // hello, abcdef, a||b||, after, on each driver.
    assert_eq!(echo.lines(), 8);
}

#[test]
fn tcp_echo_example_runs() {
    let echo = LineEcho::start();
    for io in ["uring", "epoll"] {
        let dir = common::temp_dir(&format!("tcp-example-{io}"));
        let before = echo.lines();
        let out = common::run_bounded(
            common::locusta()
                .env("ECHO_PORT", echo.server.port().to_string())
                .args([
                    "-f",
                    "lua/examples/tcp_echo.lua",
                    "--headless",
                    "--only-summary",
                ])
                .args(["-u", "5", "-r", "50", "-t", "2s", "--io", io])
                .args(["--csv", dir.join("r").to_str().unwrap()]),
            Duration::from_secs(60),
        );
        let ctx = format!(
            "{io}: {}\n{}",
            common::text(&out.stdout),
            common::text(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{ctx}");
        assert!(echo.lines() > before, "{ctx}");
        let ex = std::fs::read_to_string(dir.join("r_exceptions.csv")).unwrap();
        assert_eq!(ex.lines().count(), 1, "no exceptions expected: {ex}");
    }
}

#[test]
fn sigterm_during_a_blocked_receive_ends_the_run_with_reports() {
    // Accepts and never writes.
    let silent = ConnServer::start(|mut s| {
        let mut b = [0u8; 64];
        while matches!(s.read(&mut b), Ok(n) if n > 0) {}
    });
    for io in ["uring", "epoll"] {
        let dir = common::temp_dir(&format!("tcp-sigterm-{io}"));
        let script = format!(
            r#"local locusta = require "locusta"
local U = locusta.user {{ host = "http://127.0.0.1:1", wait_time = locusta.constant(0) }}
U:task(function(self)
  local c = locusta.tcp.connect("127.0.0.1", {port}, {{ timeout = 600 }})
  c:receive("*l")
end)
"#,
            port = silent.port()
        );
        let path = dir.join("s.lua");
        std::fs::write(&path, script).unwrap();
        let child = common::locusta()
            .args(["-f", path.to_str().unwrap(), "--headless", "--only-summary"])
            .args(["-u", "3", "-r", "30", "-t", "60s", "--io", io])
            .args(["--csv", dir.join("r").to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        while silent.accepted.load(std::sync::atomic::Ordering::Relaxed) < 3
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        let out = common::wait_bounded(child, Duration::from_secs(30));
        let ctx = format!(
            "{io}: {}\n{}",
            common::text(&out.stdout),
            common::text(&out.stderr)
        );
        assert!(out.status.code().is_some(), "ended by a signal: {ctx}");
        assert!(started.elapsed() < Duration::from_secs(25), "{ctx}");
        assert!(dir.join("r_stats.csv").exists(), "{ctx}");
    }
}
