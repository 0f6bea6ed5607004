//! Names, addresses and `--source-ip` on the binary level: a name that does
//! not resolve is a recorded `dns:` failure with exit 1, a hanging resolver
//! stalls only the users that need it (and SIGTERM still ends the run),
//! `--source-ip` is seen by the server and checked at startup. Slow lookups
//! and names come from the resolver's hidden test hooks
//! (`LOCUSTA_TEST_DNS_DELAY_MS`, `LOCUSTA_TEST_HOSTS`).

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{csv_rows, locusta, run_bounded, temp_dir, text, wait_bounded};

#[path = "common/http_server.rs"]
mod http_server;
use http_server::TestServer;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn unresolvable_host_is_a_named_failure_and_exit_1() {
    let dir = temp_dir("dns_unresolvable");
    let prefix = dir.join("u");
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "2",
                "-r",
                "10",
                "-t",
                "2s",
                "--only-summary",
            ])
            .args(["--csv", prefix.to_str().unwrap()])
            .arg("http://no-such-host.invalid:8080/"),
        Duration::from_secs(30),
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("host no-such-host.invalid does not resolve now"),
        "{err}"
    );
    let failures = csv_rows(&dir.join("u_failures.csv"));
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures[1][2].starts_with("dns: no-such-host.invalid: "),
        "{failures:?}"
    );
    // The connect backoff applies: a few failures per user, not a spin.
    let n: u64 = failures[1][3].parse().unwrap();
    assert!((2..500).contains(&n), "{n} failures");
}

#[test]
fn hanging_resolver_stalls_only_its_users_and_sigterm_ends_the_run() {
    let fast = TestServer::serve(|conn, _| conn.write(OK));
    let dir = temp_dir("dns_hanging");
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 slow.test\n").unwrap();
    let script = dir.join("two.lua");
    std::fs::write(
        &script,
        format!(
            "local locusta = require \"locusta\"\n\
             local Slow = locusta.user {{ fixed_count = 2, host = \"http://slow.test:{p}\" }}\n\
             Slow:task(function(self) self.client:get(\"/slow\") end)\n\
             local Fast = locusta.user {{ fixed_count = 2, host = \"http://127.0.0.1:{p}\", \
             wait_time = locusta.constant(0.01) }}\n\
             Fast:task(function(self) self.client:get(\"/fast\") end)\n",
            p = fast.addr.port()
        ),
    )
    .unwrap();
    let prefix = dir.join("h");
    let child = locusta()
        .env("LOCUSTA_TEST_HOSTS", &hosts)
        // Far longer than the run: the lookup hangs as far as it knows.
        .env("LOCUSTA_TEST_DNS_DELAY_MS", "120000")
        .args([
            "-f",
            script.to_str().unwrap(),
            "--headless",
            "--shards",
            "1",
        ])
        .args(["-u", "4", "-r", "100", "-t", "60s", "--only-summary"])
        .args(["--connect-timeout", "1s", "--csv", prefix.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded wait for the fast users to get going on the same shard.
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while fast.requests().len() < 50 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = wait_bounded(child, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(fast.requests().len() >= 50, "fast users stalled");
    assert!(fast.requests().iter().all(|r| r.path() == "/fast"));
    let failures = csv_rows(&dir.join("h_failures.csv"));
    let slow: Vec<_> = failures.iter().filter(|r| r[1] == "/slow").collect();
    assert_eq!(slow.len(), 1, "{failures:?}");
    assert_eq!(
        slow[0][2], "dns: slow.test: no answer within 1s",
        "{failures:?}"
    );
}

#[test]
fn source_ips_are_used_in_turn() {
    let peers = Arc::new(Mutex::new(Vec::<IpAddr>::new()));
    let seen = peers.clone();
    let server = TestServer::serve(move |conn, _| {
        if let Ok(peer) = conn.stream.peer_addr() {
            seen.lock().unwrap().push(peer.ip());
        }
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        false
    });
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "2",
                "-r",
                "10",
                "-t",
                "1s",
                "--only-summary",
            ])
            .args(["--source-ip", "127.0.0.2,127.0.0.3"])
            .arg(format!("http://{}/", server.addr)),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let peers = peers.lock().unwrap().clone();
    let of = |ip: &str| {
        let ip: IpAddr = ip.parse().unwrap();
        peers.iter().filter(|p| **p == ip).count()
    };
    assert!(of("127.0.0.2") >= 2 && of("127.0.0.3") >= 2, "{peers:?}");
    assert_eq!(of("127.0.0.2") + of("127.0.0.3"), peers.len(), "{peers:?}");
}

#[test]
fn bad_source_ip_exits_2_naming_it() {
    for (value, needle) in [
        ("10.255.255.1", "--source-ip 10.255.255.1"),
        ("127.0.0.2,garbage", "garbage"),
    ] {
        let out = run_bounded(
            locusta()
                .args(["--headless", "-u", "1", "-t", "1s", "--source-ip", value])
                .arg("http://127.0.0.1:9/"),
            Duration::from_secs(20),
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {err}");
        assert!(err.contains(needle), "{value}: {err}");
    }
}
