//! The Lua HTTP client bindings (`self.client`, responses, `locusta.json`)
//! driven without the script runtime, against the in-process server in
//! `common/script_client_server.rs`: what goes on the wire and comes back —
//! methods, bodies and JSON, response fields, default and per-request
//! headers, cookies, the `name` option, where paths and absolute URLs go and
//! on which connections, misuse errors, many users on one state, and the
//! engine's io_uring runtime. It does not cover how a request's outcome is
//! recorded (catch_response, callback errors, transport failures, timeouts,
//! the `request` event): that is `script_client_outcomes.rs`.

use std::time::Duration;

use locusta::http::Method;
use mlua::AnyUserData;

#[path = "common/script_client_server.rs"]
mod server;

use server::{env, response, rows, Reply, Req, Server};

#[test]
fn get_and_post_json_with_response_fields() {
    let srv = Server::start(|req| match req.path() {
        "/p" => response(
            "201 Created",
            &["Content-Type: application/json", "X-Trace: t1"],
            r#"{"token":"abc","items":[1,2,3],"none":null}"#,
        ),
        _ => response("200 OK", &["Content-Type: text/plain"], "hello"),
    });
    let env = env();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        local r = c:get("/a?x=1")
        assert(r.status == 200 and r.ok and r.body == "hello", tostring(r))
        assert(r.error == nil)
        assert(r.elapsed_ms > 0)
        assert(r.headers["content-type"] == "text/plain")
        assert(r.headers["Content-Type"] == "text/plain")
        assert(r.headers["CONTENT-TYPE"] == "text/plain")
        assert(r.url:match("^http://127%.0%.0%.1:%d+/a%?x=1$"), r.url)
        local ok, e = pcall(function() return r:json() end)
        assert(not ok and tostring(e):find("invalid JSON at line 1 column 1", 1, true), tostring(e))
        assert(tostring(e):find("body starts: 'hello'", 1, true), tostring(e))

        local p = c:post("/p", { json = { user = "u1", n = 2, list = { 1, 2 } } })
        assert(p.status == 201 and p.ok)
        local j = p:json()
        assert(j.token == "abc" and #j.items == 3 and j.items[3] == 3)
        assert(j.none == locusta.json.null)
        assert(p.headers["x-trace"] == "t1")
        local again = locusta.json.encode(j.items)
        assert(again == "[1,2,3]", again)

        local q = c:put("/raw", { body = "a=1&b=2", headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } })
        assert(q.status == 200)
        local h = c:head("/h")
        assert(h.status == 200 and h.body == "")
        c:delete("/d")
        c:patch("/pa", { json = locusta.json.array() })
        c:request("options", "/o")
        "#,
        c,
    );
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 7);
    assert!(reqs[0].head.starts_with("GET /a?x=1 HTTP/1.1\r\n"));
    assert!(reqs[1].head.starts_with("POST /p HTTP/1.1\r\n"));
    assert_eq!(
        reqs[1].header("content-type").as_deref(),
        Some("application/json")
    );
    let body: serde_json::Value = serde_json::from_slice(&reqs[1].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"user": "u1", "n": 2, "list": [1, 2]})
    );
    assert_eq!(
        reqs[1].header("content-length"),
        Some(reqs[1].body.len().to_string())
    );
    assert_eq!(reqs[2].body, b"a=1&b=2");
    assert_eq!(
        reqs[2].headers("content-type"),
        vec!["application/x-www-form-urlencoded"]
    );
    assert!(reqs[3].head.starts_with("HEAD /h "));
    assert!(reqs[4].head.starts_with("DELETE /d "));
    assert!(reqs[5].head.starts_with("PATCH /pa "));
    assert_eq!(reqs[5].body, b"[]");
    assert!(reqs[6].head.starts_with("OPTIONS /o "));
    assert_eq!(srv.connections(), 1, "one keep-alive connection per user");

    let d = env.delta();
    assert_eq!(
        rows(&d),
        vec![
            (Method::Get, "/a?x=1".into(), 1, 0),
            (Method::Post, "/p".into(), 1, 0),
            (Method::Put, "/raw".into(), 1, 0),
            (Method::Patch, "/pa".into(), 1, 0),
            (Method::Delete, "/d".into(), 1, 0),
            (Method::Head, "/h".into(), 1, 0),
            (Method::Options, "/o".into(), 1, 0),
        ]
    );
    let get = d.entries.iter().find(|e| e.method == Method::Get).unwrap();
    assert_eq!(get.counts.bytes, 5, "bytes = body length");
    assert!(get.counts.total_us > 0);
}

#[test]
fn default_headers_are_per_client_and_request_headers_override() {
    let srv = Server::start(|_| response("200 OK", &[], ""));
    let env = env();
    let (c1, c2) = (
        env.client(Some(&srv.url("/"))),
        env.client(Some(&srv.url("/"))),
    );
    env.ok(
        r#"
        local c1, c2 = ...
        c1.headers["X-Token"] = "a"
        c1.headers["Accept"] = "text/html"
        c1:get("/1")
        c2:get("/2")
        c1:get("/3", { headers = { ["x-token"] = "b", ["X-Extra"] = 7 } })
        c1.headers["X-Token"] = nil
        c1:get("/4")
        "#,
        (c1, c2),
    );
    let reqs = srv.requests();
    assert_eq!(reqs[0].headers("x-token"), vec!["a"]);
    assert_eq!(reqs[0].headers("accept"), vec!["text/html"]);
    assert!(reqs[1].headers("x-token").is_empty(), "{}", reqs[1].head);
    assert!(reqs[1].headers("accept").is_empty(), "{}", reqs[1].head);
    assert_eq!(reqs[2].headers("x-token"), vec!["b"], "{}", reqs[2].head);
    assert_eq!(reqs[2].headers("x-extra"), vec!["7"]);
    assert_eq!(reqs[2].headers("accept"), vec!["text/html"]);
    assert!(reqs[3].headers("x-token").is_empty());
    assert_eq!(srv.connections(), 2, "one connection per user");
}

#[test]
fn cookies_are_per_client_and_max_age_zero_deletes() {
    let srv = Server::start(|req| match req.path() {
        "/login" => response(
            "200 OK",
            &[
                "Set-Cookie: sid=abc; Path=/; HttpOnly",
                "Set-Cookie: theme=dark",
            ],
            "",
        ),
        "/logout" => response("200 OK", &["Set-Cookie: sid=; Max-Age=0; Path=/"], ""),
        "/expire" => response(
            "200 OK",
            &["Set-Cookie: theme=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT"],
            "",
        ),
        _ => response("200 OK", &[], ""),
    });
    let env = env();
    let (c1, c2) = (
        env.client(Some(&srv.url("/"))),
        env.client(Some(&srv.url("/"))),
    );
    env.ok(
        r#"
        local c1, c2 = ...
        local r = c1:get("/login")
        assert(r.headers["set-cookie"]:find("sid=abc"), r.headers["set-cookie"])
        assert(c1.cookies.sid == "abc" and c1.cookies.theme == "dark")
        c1:get("/page")
        c2:get("/page")
        c1:get("/logout")
        assert(c1.cookies.sid == nil)
        c1:get("/page")
        c1:get("/expire")
        c1:get("/page")
        "#,
        (c1, c2),
    );
    let reqs = srv.requests();
    let cookie = |i: usize| reqs[i].headers("cookie");
    assert_eq!(reqs[1].path(), "/page");
    assert_eq!(cookie(1), vec!["sid=abc; theme=dark"]);
    assert!(cookie(2).is_empty(), "another user's cookies leaked");
    assert_eq!(cookie(4), vec!["theme=dark"], "Max-Age=0 deletes");
    assert!(cookie(6).is_empty(), "a past Expires deletes");
}

#[test]
fn name_option_groups_stats() {
    let srv = Server::start(|_| response("200 OK", &[], "x"));
    let env = env();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        for i = 1, 3 do c:get("/item/" .. i, { name = "/item/:id" }) end
        c:get("/item/9")
        "#,
        c,
    );
    assert_eq!(
        rows(&env.delta()),
        vec![
            (Method::Get, "/item/9".into(), 1, 0),
            (Method::Get, "/item/:id".into(), 3, 0),
        ]
    );
}

#[test]
fn other_schemes_and_missing_host_are_clear_lua_errors() {
    let env = env();
    let c = env.client(None);
    let e = env
        .run(r#"local c = ...; c:get("ftp://example.com/")"#, c.clone())
        .unwrap_err()
        .to_string();
    assert!(e.contains("only http:// and https://"), "{e}");
    let e = env
        .run(r#"local c = ...; c:get("/relative")"#, c.clone())
        .unwrap_err()
        .to_string();
    assert!(e.contains("relative path '/relative' needs a host"), "{e}");
    let e = env
        .run(r#"local c = ...; c:get("/x", { jsno = {} })"#, c.clone())
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown request option 'jsno'"), "{e}");
    let e = env
        .run(r#"local c = ...; c:request("BREW", "/x")"#, c)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown HTTP method 'BREW'"), "{e}");
    assert!(env.delta().is_empty(), "misuse is not a request");
}

#[test]
fn absolute_urls_use_a_connection_per_origin() {
    let host = Server::start(|_| response("200 OK", &[], "host"));
    let other = Server::start(|_| response("200 OK", &[], "other"));
    let env = env();
    let c = env.client(Some(&host.url("")));
    let code = format!(
        r#"
        local c = ...
        assert(c:get("/a").body == "host")
        assert(c:get("{o}/b?q=1").body == "other")
        assert(c:get("/c").body == "host")
        local r = c:get("{o}/d")
        assert(r.body == "other" and r.url == "{o}/d", r.url)
        assert(c:get("{h}/e").body == "host")
        "#,
        o = other.url(""),
        h = host.url(""),
    );
    env.ok(&code, c);
    assert_eq!(
        host.connections(),
        1,
        "absolute URL to the host reuses its connection"
    );
    assert_eq!(
        other.connections(),
        1,
        "the other origin has one kept-alive connection"
    );
    let paths: Vec<String> = other
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(paths, vec!["/b?q=1", "/d"]);
    assert!(other.requests()[0]
        .header("host")
        .unwrap()
        .ends_with(&other.addr.port().to_string()));
    let names: Vec<String> = rows(&env.delta()).into_iter().map(|r| r.1).collect();
    assert!(
        names.contains(&other.url("/b?q=1")),
        "stats name is the URL as given: {names:?}"
    );
}

#[test]
fn host_base_path_is_prefixed() {
    let srv = Server::start(|_| response("200 OK", &[], ""));
    let env = env();
    let c = env.client(Some(&srv.url("/api/")));
    env.ok(r#"local c = ...; c:get("/users"); c:get("v2")"#, c);
    let paths: Vec<String> = srv
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(paths, vec!["/api/users", "/api/v2"]);
}

#[test]
fn many_users_share_one_state() {
    // Concurrent users (coroutines) on one Lua state: sinks and connections
    // are not mixed up between them.
    let srv = Server::start(|req| {
        let body = req.path().to_string();
        Reply::After(
            Duration::from_millis(20),
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    });
    let env = env();
    let clients: Vec<AnyUserData> = (0..20).map(|_| env.client(Some(&srv.url("")))).collect();
    let f = env
        .lua
        .load(
            r#"
            return function(c, i)
              for k = 1, 5 do
                local p = "/u" .. i .. "/" .. k
                local r = c:get(p, { name = "/u" })
                assert(r.body == p, r.body .. " ~= " .. p)
              end
            end
            "#,
        )
        .eval::<mlua::Function>()
        .unwrap();
    env.rt.borrow_mut().block_on(async {
        let mut handles = Vec::new();
        for (i, c) in clients.iter().enumerate() {
            let fut = locusta::script::park::call::<()>(&env.lua, &f, (c.clone(), i));
            handles.push(monoio::spawn(fut));
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    assert_eq!(srv.connections(), 20);
    assert_eq!(rows(&env.delta()), vec![(Method::Get, "/u".into(), 100, 0)]);
}

#[test]
fn works_on_the_engines_io_uring_runtime() {
    let srv = Server::start(|req| match req.path() {
        "/slow" => Reply::After(
            Duration::from_millis(800),
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        "/login" => response("200 OK", &["Set-Cookie: sid=1"], "{\"ok\":true}"),
        _ => response("200 OK", &[], "x"),
    });
    let env = env();
    let clients: Vec<AnyUserData> = (0..10).map(|_| env.client(Some(&srv.url("")))).collect();
    let f = env
        .lua
        .load(
            r#"
            return function(c, i)
              assert(c:post("/login", { json = { i = i } }):json().ok == true)
              for k = 1, 3 do assert(c:get("/page").ok) end
              local r = c:get("/slow", { timeout = 0.1 })
              assert(r.error == "timeout after 100ms", tostring(r.error))
              assert(c:get("/page").ok)
            end
            "#,
        )
        .eval::<mlua::Function>()
        .unwrap();
    let mut rt = locusta::engine::build_uring_runtime().expect("io_uring runtime");
    rt.block_on(async {
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| {
                monoio::spawn(locusta::script::park::call::<()>(
                    &env.lua,
                    &f,
                    (c.clone(), i),
                ))
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        drop(clients);
        env.lua.gc_collect().unwrap();
    });
    let pages: Vec<Req> = srv
        .requests()
        .into_iter()
        .filter(|r| r.path() == "/page")
        .collect();
    assert_eq!(pages.len(), 40);
    assert!(pages.iter().all(|r| r.headers("cookie") == vec!["sid=1"]));
    let d = env.delta();
    assert_eq!(
        rows(&d),
        vec![
            (Method::Get, "/page".into(), 40, 0),
            (Method::Get, "/slow".into(), 10, 10),
            (Method::Post, "/login".into(), 10, 0),
        ]
    );
}
