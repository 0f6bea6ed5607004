//! Locust's (requests') request options and response fields on the Lua
//! client, asserted on the bytes that reach the in-process server of
//! `common/script_client_server.rs`: `params`, `data` (table and string),
//! `auth`, per-request `cookies`, `allow_redirects`, `r.text`, `r.url`,
//! `r.content_length`, `r:raise_for_status()`, and the misuse of each
//! (a Lua error before anything is sent).

use locusta::http::Method;

#[path = "common/script_client_server.rs"]
mod server;

use server::{dead_port, env, response, rows, Server};

#[test]
fn params_are_url_encoded_and_appended_to_the_query() {
    let srv = Server::start(|_| response("200 OK", &[], "ok"));
    let env = env();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        local r = c:get("/s?a=1", { params = { q = "a b", list = { 1, 2 }, ["x&y"] = "é/" } })
        assert(r.url:match("/s%?a=1&list=1&list=2&q=a%+b&x%%26y=%%C3%%A9%%2F$"), r.url)
        c:get("/o", { params = { { "z", "1" }, { "a", true } } })
        c:get("/n", { params = { p = 1.5 }, name = "/named" })
        c:get("/e", { params = {} })
        "#,
        &c,
    );
    let paths: Vec<String> = srv
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "/s?a=1&list=1&list=2&q=a+b&x%26y=%C3%A9%2F",
            "/o?z=1&a=true",
            "/n?p=1.5",
            "/e",
        ]
    );
    // Named as Locust does: the path with its query, unless `name` is given.
    let d = env.delta();
    let names: Vec<String> = rows(&d).into_iter().map(|r| r.1).collect();
    assert_eq!(
        names,
        [
            "/e",
            "/named",
            "/o?z=1&a=true",
            "/s?a=1&list=1&list=2&q=a+b&x%26y=%C3%A9%2F"
        ]
    );
}

#[test]
fn data_table_is_a_form_and_data_string_a_raw_body() {
    let srv = Server::start(|_| response("200 OK", &[], ""));
    let env = env();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        c:post("/form", { data = { user = "bob", pass = "s&cret=" } })
        c:post("/raw", { data = "plain text" })
        c:put("/typed", { data = { a = 1 }, headers = { ["content-type"] = "text/x-mine" } })
        "#,
        &c,
    );
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].body, b"pass=s%26cret%3D&user=bob");
    assert_eq!(
        reqs[0].headers("content-type"),
        ["application/x-www-form-urlencoded"]
    );
    assert_eq!(reqs[0].header("content-length").as_deref(), Some("25"));
    assert_eq!(reqs[1].body, b"plain text");
    assert!(
        reqs[1].headers("content-type").is_empty(),
        "{}",
        reqs[1].head
    );
    assert_eq!(reqs[2].body, b"a=1");
    assert_eq!(reqs[2].headers("content-type"), ["text/x-mine"]);
}

#[test]
fn auth_is_basic_and_wins_over_headers() {
    let srv = Server::start(|_| response("200 OK", &[], ""));
    let env = env();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        c.headers = { Authorization = "Bearer default" }
        c:get("/a", { auth = { "bob", "secret" } })
        c:get("/b", { auth = { "bob", "secret" }, headers = { authorization = "Bearer mine" } })
        c:get("/c")
        "#,
        &c,
    );
    let reqs = srv.requests();
    assert_eq!(reqs[0].headers("authorization"), ["Basic Ym9iOnNlY3JldA=="]);
    assert_eq!(reqs[1].headers("authorization"), ["Basic Ym9iOnNlY3JldA=="]);
    assert_eq!(reqs[2].headers("authorization"), ["Bearer default"]);
}

#[test]
fn request_cookies_join_the_jar_for_that_request_only() {
    let srv = Server::start(|req| match req.path() {
        "/login" => response("200 OK", &["Set-Cookie: sid=s1; Path=/"], ""),
        _ => response("200 OK", &[], ""),
    });
    let env = env();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        c:get("/once", { cookies = { a = "1" } })
        c:get("/login")
        c:get("/both", { cookies = { b = "2", sid = "override" } })
        c:get("/after")
        assert(c.cookies.sid == "s1" and c.cookies.b == nil)
        "#,
        &c,
    );
    let cookie = |i: usize| srv.requests()[i].headers("cookie");
    assert_eq!(cookie(0), ["a=1"]);
    assert_eq!(cookie(2), ["b=2; sid=override"]);
    assert_eq!(cookie(3), ["sid=s1"], "request cookies are not kept");
}

#[test]
fn allow_redirects_false_returns_the_3xx() {
    let srv = Server::start(|_| response("302 Found", &["Location: /elsewhere"], ""));
    let env = env();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        local r = c:get("/r", { allow_redirects = false })
        assert(r.status == 302 and r.headers.location == "/elsewhere", tostring(r))
        "#,
        &c,
    );
    assert_eq!(srv.requests().len(), 1, "no redirect is followed");
}

#[test]
fn response_text_url_content_length_and_raise_for_status() {
    let srv = Server::start(|req| match req.path() {
        "/missing" => response("404 Not Found", &[], "nope"),
        "/down" => response("503 Service Unavailable", &[], ""),
        _ => response("200 OK", &[], "hello"),
    });
    let env = env();
    let c = env.client(Some(&srv.url("")));
    let dead = format!("http://127.0.0.1:{}/x", dead_port());
    env.ok(
        r#"
        local c, dead = ...
        local r = c:get("/ok", { params = { a = 1 } })
        assert(r.text == "hello" and r.text == r.body)
        assert(r.content_length == 5, r.content_length)
        assert(r.url:match("^http://127%.0%.0%.1:%d+/ok%?a=1$"), r.url)
        r:raise_for_status()

        local m = c:get("/missing")
        assert(m.content_length == 4)
        local ok, e = pcall(m.raise_for_status, m)
        assert(not ok and tostring(e):find("404 Client Error: Not Found for url: http://127.0.0.1:", 1, true), tostring(e))
        assert(tostring(e):find("/missing", 1, true), tostring(e))
        ok, e = pcall(function() c:get("/down"):raise_for_status() end)
        assert(not ok and tostring(e):find("503 Server Error: Service Unavailable for url:", 1, true), tostring(e))

        local t = c:get(dead)
        ok, e = pcall(t.raise_for_status, t)
        assert(not ok and tostring(e):find("for url: " .. dead, 1, true), tostring(e))
        assert(t.content_length == 0)
        "#,
        (&c, dead.as_str()),
    );
}

#[test]
fn hostile_options_are_lua_errors_before_anything_is_sent() {
    let srv = Server::start(|_| response("200 OK", &[], ""));
    let env = env();
    let c = env.client(Some(&srv.url("")));
    for (code, want) in [
        (r#"c:get("/", { params = 5 })"#, "params must be a table"),
        (
            r#"c:get("/", { params = { a = {} , b = function() end } })"#,
            "params.b must be a string",
        ),
        (
            r#"c:get("/", { params = { [true] = 1 } })"#,
            "keys must be strings",
        ),
        (
            r#"c:get("/", { params = { 7 } })"#,
            "item 1 must be a {key, value} pair",
        ),
        (
            r#"c:post("/", { data = 5 })"#,
            "data must be a table (form) or a string",
        ),
        (
            r#"c:post("/", { data = "x", body = "y" })"#,
            "data and body exclude each other",
        ),
        (
            r#"c:post("/", { data = { a = 1 }, json = {} })"#,
            "data and json exclude each other",
        ),
        (
            r#"c:get("/", { auth = { "only-user" } })"#,
            "auth must be { user, password }",
        ),
        (r#"c:get("/", { auth = "bob:x" })"#, "auth must be a table"),
        (
            r#"c:get("/", { cookies = { a = "1; evil=2" } })"#,
            "would break the Cookie header",
        ),
        (
            r#"c:get("/", { cookies = { ["a=b"] = "1" } })"#,
            "would break the Cookie header",
        ),
        (
            r#"c:get("/", { cookies = { a = "x\r\nX-Injected: 1" } })"#,
            "would break the Cookie header",
        ),
        (
            r#"c:get("/", { allow_redirects = "yes" })"#,
            "allow_redirects must be a boolean",
        ),
        (
            r#"c:get("/", { follow = true })"#,
            "unknown request option 'follow'",
        ),
    ] {
        let e = env
            .run(&format!("local c = ...\n{code}"), &c)
            .expect_err(code);
        assert!(e.to_string().contains(want), "{code}: {e}");
    }
    assert!(srv.requests().is_empty(), "nothing may be sent");
    assert!(rows(&env.delta()).is_empty());
    // The client still works afterwards.
    env.ok(
        r#"local c = ... ; assert(c:get("/fine").status == 200)"#,
        &c,
    );
    assert_eq!(rows(&env.delta()), [(Method::Get, "/fine".into(), 1, 0)]);
}
