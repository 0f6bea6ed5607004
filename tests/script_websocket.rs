//! `client:websocket` from a script, in the real binary on both I/O drivers
//! (io_uring and epoll), against the in-process echo server of
//! `common/ws_echo.rs`: the upgrade request (the user's headers, cookies,
//! the 101's cookie taken into the jar), text and binary echoes, a ping
//! answered, the close handshake, hostile servers (bad opcode, masked
//! frame, RSV bits, oversized frame, bad UTF-8, close mid-frame, a 404
//! instead of 101) named in errors, and the shipped
//! `lua/examples/websocket_chat.lua` with 200 users (`WS send+receive`
//! row with percentiles, counted as the server counted) and with the
//! server killed mid-run (named failures, clean end).

mod common;
#[path = "common/line_echo.rs"]
mod line_echo;
#[path = "common/script_out.rs"]
mod script_out;
#[path = "common/ws_echo.rs"]
mod ws_echo;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ws_echo::{frame, Mode, WsEcho};

/// Run a one-user script whose task body is `body` against `host`.
fn run_task(name: &str, io: &str, host: &str, body: &str) -> HashMap<String, String> {
    let dir = common::temp_dir(&format!("ws-{name}-{io}"));
    let script = format!(
        r#"{prelude}
local U = locusta.user {{ wait_time = locusta.constant(0) }}
U:task(function(self)
{body}
  put("done", true)
  locusta.quit(0)
end)
"#,
        prelude = script_out::lua_prelude(&dir)
    );
    let path = dir.join("s.lua");
    std::fs::write(&path, script).unwrap();
    let out = common::run_bounded(
        common::locusta()
            .args([
                "-f",
                path.to_str().unwrap(),
                "-H",
                host,
                "--headless",
                "--only-summary",
            ])
            .args([
                "-u", "1", "-r", "10", "-t", "20s", "--io", io, "--shards", "1",
            ]),
        Duration::from_secs(60),
    );
    let r = script_out::results(&dir);
    assert_eq!(
        r.get("done").map(String::as_str),
        Some("true"),
        "{name} {io}: {r:#?}\n{}",
        common::text(&out.stderr)
    );
    r
}

#[test]
fn echo_ping_cookies_and_close() {
    let srv = WsEcho::start(Mode::PingFirst(b"are you there".to_vec()));
    for io in ["uring", "epoll"] {
        let r = run_task(
            "echo",
            io,
            &srv.url(),
            r#"
  self.client.headers["X-Default"] = "d1"
  self.client:set_cookie("sid", "s1")
  local ws = self.client:websocket("/chat?room=1", { headers = { ["X-Given"] = "g1" }, timeout = 3 })
  put("tostring", ws)
  put("pong", (ws:receive()))
  ws:send("héllo")
  local m, k = ws:receive()
  put("text", m .. "|" .. k)
  ws:send_binary("\0\1\2")
  m, k = ws:receive()
  put("binary", #m .. "|" .. k)
  ws:send("x", "binary")
  m, k = ws:receive()
  put("binary2", m .. "|" .. k)
  local big = string.rep("z", 70000)
  ws:send(big)
  put("big", #ws:receive())
  put("bad_utf8", err(ws.send, ws, "\255"))
  put("bad_type", err(ws.send, ws, "x", "json"))
  put("timeout", err(ws.receive, ws, 0.2))
  ws:send("still")
  put("after_timeout", (ws:receive()))
  put("cookie", self.client.cookies.ws_session)
  ws:close(1000, "bye")
  put("closed", err(ws.send, ws, "x"))
"#,
        );
        let ctx = format!("{io}: {r:#?}");
        let addr = srv.server.addr;
        assert_eq!(
            r["tostring"],
            format!("<WebSocket ws://{addr}/chat?room=1>"),
            "{ctx}"
        );
        assert_eq!(r["pong"], "pong:are you there", "{ctx}");
        assert_eq!(r["text"], "héllo|text", "{ctx}");
        assert_eq!(r["binary"], "3|binary", "{ctx}");
        assert_eq!(r["binary2"], "x|binary", "{ctx}");
        assert_eq!(r["big"], "70000", "{ctx}");
        assert!(r["bad_utf8"].contains("must be valid UTF-8"), "{ctx}");
        assert!(
            r["bad_type"].contains("unknown message type 'json'"),
            "{ctx}"
        );
        assert!(
            r["timeout"].contains(&format!(
                "websocket receive from ws://{addr}/chat?room=1: timed out after 200 ms"
            )),
            "{ctx}"
        );
        assert_eq!(r["after_timeout"], "still", "{ctx}");
        assert_eq!(r["cookie"], "abc123", "{ctx}");
        assert!(
            r["closed"].contains("connection is closed (closed by the script)"),
            "{ctx}"
        );
    }
    let heads = srv.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 2);
    for h in &heads {
        let lower = h.to_ascii_lowercase();
        assert!(h.starts_with("GET /chat?room=1 HTTP/1.1\r\n"), "{h}");
        for want in [
            "upgrade: websocket",
            "connection: upgrade",
            "sec-websocket-version: 13",
            "x-default: d1",
            "x-given: g1",
            "cookie: sid=s1",
        ] {
            assert!(lower.contains(want), "{want} missing in {h}");
        }
    }
}

#[test]
fn hostile_servers_are_named_errors() {
    let masked = {
        let mut f = frame(0x81, b"abcd");
        f[1] |= 0x80;
        f.splice(2..2, [1, 2, 3, 4]);
        f
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("opcode", frame(0x83, b"x"), "frame with unknown opcode 0x3"),
        ("masked", masked, "masked frame from the server"),
        ("rsv", frame(0xC1, b"x"), "reserved bits set (0x40)"),
        (
            "oversized",
            frame(0x82, &vec![0u8; 5000]),
            "message of 5000 bytes or more is over the limit of 1000 bytes",
        ),
        (
            "utf8",
            frame(0x81, &[0xC3, 0x28]),
            "text message is not valid UTF-8",
        ),
        (
            "midframe",
            frame(0x81, b"0123456789")[..6].to_vec(),
            "connection closed by peer mid-frame after 6 bytes",
        ),
        (
            "ping_too_long",
            frame(0x89, &[0u8; 200]),
            "control frame (opcode 0x9) with 200 bytes",
        ),
        (
            "close",
            frame(0x88, &[0x03, 0xE9, b'g', b'o']),
            "closed by the server (1001 go)",
        ),
        (
            "huge_len",
            vec![0x82, 127, 0xFF, 0, 0, 0, 0, 0, 0, 0],
            "most significant bit",
        ),
    ];
    let servers: Vec<(&str, WsEcho, &str)> = cases
        .into_iter()
        .map(|(n, bytes, want)| {
            let mode = match n {
                "midframe" => Mode::RawThenClose(bytes),
                _ => Mode::Raw(bytes),
            };
            (n, WsEcho::start(mode), want)
        })
        .collect();
    let not_ws = common::TestServer::start(|_| common::status(404, "Not Found"));
    for io in ["uring", "epoll"] {
        let mut body = String::new();
        for (n, s, _) in &servers {
            body += &format!(
                "  do local ws = self.client:websocket(\"{}/x\", {{ max_message = 1000, timeout = 3 }})\n  \
                 put(\"{n}\", err(ws.receive, ws)) end\n",
                s.url()
            );
        }
        body += &format!(
            "  put(\"not_ws\", err(self.client.websocket, self.client, \"{}\"))\n",
            not_ws.url("/chat")
        );
        let r = run_task("hostile", io, &servers[0].1.url(), &body);
        for (n, _, want) in &servers {
            assert!(
                r[*n].contains(want),
                "{io} {n}: {:?} should contain {want:?}",
                r[*n]
            );
        }
        assert!(
            r["not_ws"]
                .contains("the server answered 404 Not Found (expected 101 Switching Protocols)"),
            "{io}: {:?}",
            r["not_ws"]
        );
    }
}

/// Stats CSV rows by (type, name).
fn stats(dir: &Path) -> HashMap<(String, String), HashMap<String, String>> {
    let rows = common::csv_rows(&dir.join("r_stats.csv"));
    let header = rows[0].clone();
    rows[1..]
        .iter()
        .map(|r| {
            let m: HashMap<String, String> =
                header.iter().cloned().zip(r.iter().cloned()).collect();
            ((r[0].clone(), r[1].clone()), m)
        })
        .collect()
}

#[test]
fn chat_example_200_users_counts_match_the_server() {
    for io in ["uring", "epoll"] {
        let srv = WsEcho::start(Mode::Echo);
        let dir = common::temp_dir(&format!("ws-chat-{io}"));
        let out = common::run_bounded(
            common::locusta()
                .args(["-f", "lua/examples/websocket_chat.lua", "-H", &srv.url()])
                .args([
                    "--headless",
                    "--only-summary",
                    "-u",
                    "200",
                    "-r",
                    "400",
                    "-t",
                    "3s",
                    // Graceful: every exchange under way at the end finishes
                    // and is counted (killed ones are not, as for HTTP).
                    "-s",
                    "10",
                ])
                .args(["--io", io, "--csv", dir.join("r").to_str().unwrap()]),
            Duration::from_secs(90),
        );
        let ctx = format!(
            "{io}: {}\n{}",
            common::text(&out.stdout),
            common::text(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{ctx}");
        let s = stats(&dir);
        let row = s
            .get(&("WS".to_string(), "send+receive".to_string()))
            .unwrap_or_else(|| panic!("no WS send+receive row: {ctx}"));
        let count: usize = row["Request Count"].parse().unwrap();
        assert_eq!(row["Failure Count"], "0", "{ctx}");
        assert!(count >= 200, "{count}: {ctx}");
        // Every exchange the server echoed is in the row, and no other.
        let seen = srv.messages();
        assert_eq!(count, seen, "row {count}, server {seen}: {ctx}");
        assert!(row["95%"].parse::<f64>().unwrap() > 0.0, "{ctx}");
        assert_eq!(
            srv.server
                .accepted
                .load(std::sync::atomic::Ordering::Relaxed),
            200,
            "{ctx}"
        );
    }
}

#[test]
fn killing_the_server_mid_run_shows_named_failures() {
    for io in ["uring", "epoll"] {
        let srv = WsEcho::start(Mode::Echo);
        let dir = common::temp_dir(&format!("ws-kill-{io}"));
        let child = common::locusta()
            .args(["-f", "lua/examples/websocket_chat.lua", "-H", &srv.url()])
            .args([
                "--headless",
                "--only-summary",
                "-u",
                "20",
                "-r",
                "100",
                "-t",
                "4s",
            ])
            .args(["--io", io, "--csv", dir.join("r").to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        while srv.messages() < 100 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        srv.server.kill();
        let out = common::wait_bounded(child, Duration::from_secs(60));
        let ctx = format!(
            "{io}: {}\n{}",
            common::text(&out.stdout),
            common::text(&out.stderr)
        );
        // Failed requests: --exit-code-on-error's 1 (README, exit statuses).
        assert_eq!(out.status.code(), Some(1), "{ctx}");
        let s = stats(&dir);
        let row = &s[&("WS".to_string(), "send+receive".to_string())];
        assert!(row["Failure Count"].parse::<u64>().unwrap() > 0, "{ctx}");
        let failures = std::fs::read_to_string(dir.join("r_failures.csv")).unwrap();
        assert!(
            failures.contains("connection closed by peer") || failures.contains("connection reset"),
            "{failures}"
        );
    }
}
