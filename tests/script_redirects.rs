//! Redirects in the Lua client, against the in-process server of
//! `common/script_client_server.rs` (what arrives on the wire at each hop):
//! every redirect status with GET and POST, the chain recorded once under
//! the first name with the last status, `r.url` / `r.history`, a hop to a
//! second server on a kept connection, cookies and Authorization across
//! hops, loops, bad Locations, `allow_redirects = false`, HEAD, the
//! chain's timeout, the `request` event, the io_uring runtime, and the
//! binary's stats CSV on both I/O drivers.

mod common;

use std::time::Duration;

use locusta::http::Method;
use locusta::script::client;
use locusta::stats::Failure;
use mlua::Table;

#[path = "common/script_client_server.rs"]
mod server;

use server::{env, env_limits, failures, response, rows, Reply, Server};

fn hop_server() -> Server {
    Server::start(|req| {
        let path = req.path();
        if let Some(code) = path.strip_prefix("/s/") {
            let reason = match code {
                "301" => "Moved Permanently",
                "302" => "Found",
                "303" => "See Other",
                "307" => "Temporary Redirect",
                _ => "Permanent Redirect",
            };
            return response(
                &format!("{code} {reason}"),
                &["Location: /dest?from=1"],
                "moved",
            );
        }
        match path {
            "/a" => response("302 Found", &["Location: b"], ""),
            "/b" => response("307 Temporary Redirect", &["Location: /c"], "x"),
            "/c" => response("404 Not Found", &[], "gone"),
            "/loop" => response("302 Found", &["Location: /loop"], ""),
            "/bad" => response("301 Moved", &["Location: http://h:99999/x"], ""),
            "/bare" => response("302 Found", &[], "no location"),
            "/nohost" => response(
                "302 Found",
                &["Location: http://no-such-host.invalid/x"],
                "",
            ),
            _ => response("200 OK", &[], "done"),
        }
    })
}

#[test]
fn every_status_with_get_and_post() {
    let srv = hop_server();
    let env = env();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        for _, code in ipairs({ 301, 302, 303, 307, 308 }) do
          for _, m in ipairs({ "GET", "POST" }) do
            local r = c:request(m, "/s/" .. code, {
              body = "payload", headers = { ["Content-Type"] = "text/plain" } })
            assert(r.status == 200 and r.body == "done", tostring(r))
            assert(r.url:match("/dest%?from=1$"), r.url)
            assert(#r.history == 1 and r.history[1].status == code, code)
            assert(r.history[1].status_code == code)
            assert(r.history[1].url:match("/s/" .. code .. "$"), r.history[1].url)
          end
        end
        "#,
        c,
    );
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 20);
    for (i, pair) in reqs.chunks(2).enumerate() {
        let code = [301, 302, 303, 307, 308][i / 2];
        let method = ["GET", "POST"][i % 2];
        let (first, next) = (&pair[0], &pair[1]);
        assert!(first.head.starts_with(&format!("{method} /s/{code} ")));
        assert_eq!(first.body, b"payload");
        assert_eq!(next.path(), "/dest?from=1");
        let keeps = matches!(code, 307 | 308);
        let want = if keeps { method } else { "GET" };
        assert!(
            next.head.starts_with(want),
            "{code} {method}: {}",
            next.head
        );
        if keeps {
            assert_eq!(next.body, b"payload", "{code} {method}");
            assert_eq!(next.header("content-type").as_deref(), Some("text/plain"));
        } else {
            assert!(next.body.is_empty(), "{code} {method}");
            assert_eq!(next.header("content-type"), None, "{code} {method}");
            let len = next.header("content-length");
            assert!(len.is_none() || len.as_deref() == Some("0"), "{len:?}");
        }
        // Every hop on the one kept connection.
        assert_eq!((first.conn, next.conn), (0, 0));
    }
    let mut want = Vec::new();
    for code in [301, 302, 303, 307, 308] {
        want.push((Method::Get, format!("/s/{code}"), 1, 0));
        want.push((Method::Post, format!("/s/{code}"), 1, 0));
    }
    want.sort();
    assert_eq!(
        rows(&env.delta()),
        want,
        "one entry per chain, none for /dest"
    );
}

#[test]
fn chain_is_one_request_under_the_first_name_with_the_last_status() {
    let srv = hop_server();
    let env = env();
    let listeners: Table = env
        .lua
        .named_registry_value(client::REQUEST_LISTENERS)
        .unwrap();
    let f = env
        .lua
        .load("events = {}; return function(e) events[#events + 1] = e end")
        .eval::<mlua::Function>()
        .unwrap();
    listeners.push(f).unwrap();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        local r = c:get("/a", { name = "chain" })
        assert(r.status == 404 and not r.ok and r.body == "gone", tostring(r))
        assert(r.url:match("^http://127%.0%.0%.1:%d+/c$"), r.url)
        assert(#r.history == 2)
        assert(r.history[1].status == 302 and r.history[1].url:match("/a$"))
        assert(r.history[2].status == 307 and r.history[2].url:match("/b$"))
        assert(#events == 1 and events[1].name == "chain", #events)
        assert(events[1].exception == "HTTP 404 Not Found", events[1].exception)
        local plain = c:get("/plain")
        assert(#plain.history == 0)
        "#,
        c,
    );
    let paths: Vec<String> = srv.requests().iter().map(|r| r.path().into()).collect();
    assert_eq!(paths, ["/a", "/b", "/c", "/plain"]);
    let d = env.delta();
    assert_eq!(
        rows(&d),
        vec![
            (Method::Get, "/plain".into(), 1, 0),
            (Method::Get, "chain".into(), 1, 1)
        ]
    );
    assert_eq!(
        failures(&d),
        vec![(Method::Get, "chain".into(), Failure::Status(404), 1)]
    );
}

#[test]
fn loops_bad_locations_and_turning_it_off() {
    let srv = hop_server();
    let env = env();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        local r = c:get("/loop")
        assert(r.status == 0 and not r.ok, tostring(r))
        assert(r.error == "too many redirects (10)", tostring(r.error))
        local ok, e = pcall(r.raise_for_status, r)
        assert(not ok and tostring(e):find("too many redirects (10)", 1, true), tostring(e))

        r = c:get("/bad")
        assert(r.error == "invalid redirect Location 'http://h:99999/x'", tostring(r.error))

        r = c:get("/nohost")
        -- Names resolve at connect time: the hop is made and fails as dns.
        assert(r.status == 0 and r.error:find("dns: no-such-host.invalid: ", 1, true), tostring(r.error))
        assert(r.url == "http://no-such-host.invalid/x" and #r.history == 1, r.url .. " " .. #r.history)

        r = c:get("/s/302", { allow_redirects = false })
        assert(r.status == 302 and r.headers.location == "/dest?from=1", tostring(r))
        assert(#r.history == 0)

        r = c:get("/bare")
        assert(r.status == 302 and r.body == "no location", tostring(r))

        -- requests' head() does not follow unless asked.
        assert(c:head("/s/301").status == 301)
        assert(c:head("/s/301", { allow_redirects = true }).status == 200)
        "#,
        c,
    );
    let paths: Vec<String> = srv.requests().iter().map(|r| r.path().into()).collect();
    let loops = paths.iter().filter(|p| *p == "/loop").count();
    assert_eq!(loops, 11, "the first request and 10 redirects: {paths:?}");
    assert_eq!(
        paths[11..],
        [
            "/bad",
            "/nohost",
            "/s/302",
            "/bare",
            "/s/301",
            "/s/301",
            "/dest?from=1"
        ]
    );
    let f = failures(&env.delta());
    let msg = |s: &str| Failure::Message(s.into());
    assert!(f.contains(&(
        Method::Get,
        "/loop".into(),
        msg("too many redirects (10)"),
        1
    )));
    assert!(f.contains(&(
        Method::Get,
        "/bad".into(),
        msg("invalid redirect Location 'http://h:99999/x'"),
        1
    )));
    assert_eq!(f.len(), 3, "{f:?}");
}

#[test]
fn cross_origin_hop_keeps_its_connection_cookies_and_drops_authorization() {
    let other = Server::start(|req| {
        let cookie = req.header("cookie").unwrap_or_default();
        response("200 OK", &[], &format!("other saw [{cookie}]"))
    });
    let to = other.url("/land");
    let srv = Server::start(move |req| match req.path() {
        "/go" => response(
            "302 Found",
            &["Set-Cookie: sid=abc", &format!("Location: {to}")],
            "",
        ),
        "/login" => response(
            "303 See Other",
            &["Set-Cookie: token=t1", "Location: /home"],
            "",
        ),
        p => response("200 OK", &[], p),
    });
    let env = env();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        local r = c:post("/login", { json = { u = 1 } })
        assert(r.status == 200 and r.body == "/home", tostring(r))
        for i = 1, 3 do
          r = c:get("/go", { auth = { "u", "p" }, headers = { Authorization = "x" } })
          -- Cookies are per user, not per domain (the jar ignores Domain).
          assert(r.body == "other saw [sid=abc; token=t1]" or
                 r.body == "other saw [token=t1; sid=abc]", r.body)
          assert(r.url:match("/land$"), r.url)
        end
        "#,
        c,
    );
    let reqs = srv.requests();
    let home = reqs.iter().find(|r| r.path() == "/home").unwrap();
    assert_eq!(home.header("cookie").as_deref(), Some("token=t1"));
    assert!(reqs
        .iter()
        .filter(|r| r.path() == "/go")
        .all(|r| r.header("authorization").is_some()));
    let landed = other.requests();
    assert_eq!(landed.len(), 3);
    assert!(landed.iter().all(|r| r.header("authorization").is_none()));
    assert_eq!(
        other.connections(),
        1,
        "the other origin's connection is kept"
    );
    assert_eq!(srv.connections(), 1);
    assert_eq!(
        rows(&env.delta()),
        vec![
            (Method::Get, "/go".into(), 3, 0),
            (Method::Post, "/login".into(), 1, 0)
        ]
    );
}

#[test]
fn the_timeout_bounds_the_whole_chain() {
    // Each hop alone is well under the timeout; the chain is not.
    let srv = Server::start(|req| {
        let next = match req.path() {
            "/1" => "/2",
            "/2" => "/3",
            _ => return response("200 OK", &[], "late"),
        };
        let head = format!("HTTP/1.1 302 Found\r\nLocation: {next}\r\nContent-Length: 0\r\n\r\n");
        Reply::After(Duration::from_millis(400), head.into_bytes())
    });
    let env = env();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        local r = c:get("/1", { timeout = 0.6 })
        assert(r.status == 0 and r.error == "timeout after 600ms", tostring(r.error))
        "#,
        c,
    );
    assert!(srv.requests().len() <= 2);
}

#[test]
fn the_body_limit_applies_to_every_hop() {
    let big = "x".repeat(4096);
    let srv = Server::start(move |req| match req.path() {
        "/big-hop" => response("302 Found", &["Location: /small"], &big),
        "/to-big" => response("302 Found", &["Location: /big"], ""),
        "/big" => response("200 OK", &[], &big),
        _ => response("200 OK", &[], "small"),
    });
    let limits = locusta::script::ScriptLimits {
        max_body: 1024,
        ..Default::default()
    };
    let env = env_limits(Default::default(), limits);
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        for _, p in ipairs({ "/big-hop", "/to-big" }) do
          local r = c:get(p)
          assert(not r.ok and r.error == "body larger than 1 KiB", p .. ": " .. tostring(r.error))
        end
        assert(c:get("/s").body == "small")
        "#,
        c,
    );
    let paths: Vec<String> = srv.requests().iter().map(|r| r.path().into()).collect();
    assert_eq!(paths, ["/big-hop", "/to-big", "/big", "/s"]);
    let f = failures(&env.delta());
    assert_eq!(f.len(), 2, "{f:?}");
}

#[test]
fn follows_on_the_engines_io_uring_runtime() {
    let srv = hop_server();
    let env = env();
    let c = env.client(Some(&srv.url("")));
    let f = env
        .lua
        .load(
            r#"
            return function(c)
              for i = 1, 3 do
                local r = c:post("/s/307", { body = "b" })
                assert(r.status == 200 and #r.history == 1, tostring(r))
              end
              assert(c:get("/loop").error == "too many redirects (10)")
            end
            "#,
        )
        .eval::<mlua::Function>()
        .unwrap();
    let mut rt = locusta::engine::build_uring_runtime().expect("io_uring runtime");
    rt.block_on(async {
        locusta::script::park::call::<()>(&env.lua, &f, c.clone())
            .await
            .unwrap()
    });
    let dest: Vec<_> = srv
        .requests()
        .into_iter()
        .filter(|r| r.path() == "/dest?from=1")
        .collect();
    assert_eq!(dest.len(), 3);
    assert!(dest
        .iter()
        .all(|r| r.head.starts_with("POST ") && r.body == b"b"));
    assert_eq!(srv.connections(), 1);
}

#[test]
fn the_binary_records_a_chain_as_one_row_on_both_drivers() {
    let srv = hop_server();
    let dir = common::temp_dir("redirects");
    let script = dir.join("r.lua");
    std::fs::write(
        &script,
        r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0.05) }
U:task(1, function(self)
  local r = self.client:get("/s/302", { name = "login" })
  assert(r.status == 200 and #r.history == 1)
end)
"#,
    )
    .unwrap();
    for io in ["auto", "epoll"] {
        let prefix = dir.join(format!("r_{io}"));
        let out = common::run_bounded(
            common::locusta()
                .args(["-f", script.to_str().unwrap(), "-H", &srv.url("")])
                .args(["--headless", "--only-summary", "-u", "2", "-r", "10"])
                .args(["-t", "1s", "--io", io, "--csv", prefix.to_str().unwrap()]),
            Duration::from_secs(40),
        );
        assert_eq!(out.status.code(), Some(0), "{}", common::text(&out.stderr));
        let rows = common::csv_rows(&dir.join(format!("r_{io}_stats.csv")));
        let names: Vec<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
        assert_eq!(names, ["login", "Aggregated"], "{io}: {rows:?}");
        let failures: u64 = rows[1][3].parse().unwrap();
        assert_eq!(failures, 0, "{rows:?}");
    }
}
