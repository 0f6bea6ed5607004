//! The Lua HTTP client bindings (`self.client`, responses, `locusta.json`)
//! driven without the script runtime: our own Lua state, `client::install`,
//! clients from `new_client`, Lua code run inside a monoio runtime against a
//! small in-process server that records heads and bodies as they arrived.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use locusta::http::{ClientConfig, HttpError, Method, Target};
use locusta::script::client::{self, ClientCtx};
use locusta::script::json;
use locusta::stats::{Failure, ShardStats, StatsDelta};
use mlua::{AnyUserData, Lua, Table};

// ---------------------------------------------------------------- server

#[derive(Clone, Debug)]
struct Req {
    head: String,
    body: Vec<u8>,
    /// Which accepted connection carried it (0, 1, …).
    #[allow(dead_code)]
    conn: usize,
}

impl Req {
    fn path(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }

    /// All values of header `name` (case-insensitive), in order.
    fn headers(&self, name: &str) -> Vec<String> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }
}

enum Reply {
    Bytes(Vec<u8>),
    After(Duration, Vec<u8>),
}

fn response(status: &str, extra_headers: &[&str], body: &str) -> Reply {
    let mut s = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for h in extra_headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.push_str(body);
    Reply::Bytes(s.into_bytes())
}

struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Req>>>,
    conns: Arc<AtomicUsize>,
}

impl Server {
    fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let (l, c) = (log.clone(), conns.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let id = c.fetch_add(1, Ordering::SeqCst);
                let (h, l) = (handler.clone(), l.clone());
                thread::spawn(move || serve(stream, id, &*h, &l));
            }
        });
        Server { addr, log, conns }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

fn serve(mut s: TcpStream, id: usize, handler: &dyn Fn(&Req) -> Reply, log: &Mutex<Vec<Req>>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let mut req = Req {
            head,
            body: Vec::new(),
            conn: id,
        };
        let len: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        req.body = buf.drain(..len).collect();
        let mut reply = handler(&req);
        if req.head.starts_with("HEAD ") {
            // No body after a HEAD response's head.
            if let Reply::Bytes(b) = &mut reply {
                if let Some(i) = b.windows(4).position(|w| w == b"\r\n\r\n") {
                    b.truncate(i + 4);
                }
            }
        }
        log.lock().unwrap().push(req);
        let bytes = match reply {
            Reply::Bytes(b) => b,
            Reply::After(d, b) => {
                thread::sleep(d);
                b
            }
        };
        if s.write_all(&bytes).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------- harness

/// One Lua state and one monoio runtime for a whole test: connections a
/// client keeps belong to the runtime that opened them.
struct Env {
    lua: Lua,
    stats: Rc<RefCell<ShardStats>>,
    rt: RefCell<monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>>>,
}

fn env() -> Env {
    env_with(ClientConfig::default())
}

fn env_with(cfg: ClientConfig) -> Env {
    let lua = Lua::new();
    let module = lua.create_table().unwrap();
    let stats = Rc::new(RefCell::new(ShardStats::new()));
    let ctx = Rc::new(ClientCtx {
        stats: stats.clone(),
        cfg,
    });
    client::install(&lua, &module, ctx).unwrap();
    json::install(&lua, &module).unwrap();
    lua.globals().set("locusta", module).unwrap();
    let rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    Env {
        lua,
        stats,
        rt: RefCell::new(rt),
    }
}

impl Env {
    fn client(&self, host: Option<&str>) -> AnyUserData {
        let target = host.map(|h| Target::parse(h).unwrap());
        client::new_client(&self.lua, target).unwrap()
    }

    /// Run `code` as a chunk receiving `args` as `...`, to completion.
    fn run(&self, code: &str, args: impl mlua::IntoLuaMulti) -> mlua::Result<()> {
        let lua = &self.lua;
        self.rt.borrow_mut().block_on(async {
            lua.load(code)
                .set_name("=test")
                .call_async::<()>(args)
                .await
        })
    }

    fn ok(&self, code: &str, args: impl mlua::IntoLuaMulti) {
        if let Err(e) = self.run(code, args) {
            panic!("Lua failed: {e}");
        }
    }

    fn delta(&self) -> StatsDelta {
        self.stats.borrow_mut().take_delta()
    }
}

/// (method, name) → (requests, failures)
fn rows(d: &StatsDelta) -> Vec<(Method, String, u64, u64)> {
    let mut v: Vec<_> = d
        .entries
        .iter()
        .map(|e| {
            (
                e.method,
                e.name.to_string(),
                e.counts.requests,
                e.counts.failures,
            )
        })
        .collect();
    v.sort();
    v
}

fn failures(d: &StatsDelta) -> Vec<(Method, String, Failure, u64)> {
    let mut v: Vec<_> = d
        .failures
        .iter()
        .map(|f| (f.method, f.name.to_string(), f.failure.clone(), f.count))
        .collect();
    v.sort_by_key(|f| format!("{f:?}"));
    v
}

fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------- tests

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
fn catch_response_success_and_failure_are_recorded_as_marked() {
    let srv = Server::start(|req| match req.path() {
        "/missing" => response("404 Not Found", &[], "nope"),
        _ => response("200 OK", &[], "fine"),
    });
    let env = env();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        local seen = {}
        local r = c:get("/missing", { catch_response = true }, function(r)
          assert(r.status == 404)
          r:success()
        end)
        assert(r.error == nil and r.ok == false, tostring(r.error))
        local r2 = c:get("/fine", { catch_response = true }, function(r)
          r:failure("body was not what we wanted")
        end)
        assert(r2.ok == false and r2.error == "body was not what we wanted")
        local r3 = c:get("/missing")
        assert(r3.ok == false and r3.error == "HTTP 404 Not Found", r3.error)
        -- without catch_response the callback runs after recording
        local called = false
        c:get("/fine", { name = "cb" }, function(r) called = true end)
        assert(called)
        local ok, err = pcall(function() r3:failure("late") end)
        assert(not ok and tostring(err):find("catch_response = true"), tostring(err))
        "#,
        c,
    );
    let d = env.delta();
    assert_eq!(
        rows(&d),
        vec![
            (Method::Get, "/fine".into(), 1, 1),
            (Method::Get, "/missing".into(), 2, 1),
            (Method::Get, "cb".into(), 1, 0),
        ]
    );
    assert_eq!(
        failures(&d),
        vec![
            (
                Method::Get,
                "/fine".into(),
                Failure::Message("body was not what we wanted".into()),
                1
            ),
            (Method::Get, "/missing".into(), Failure::Status(404), 1),
        ]
    );
}

#[test]
fn errors_in_callbacks_propagate_after_recording() {
    let srv = Server::start(|_| response("200 OK", &[], ""));
    let env = env();
    let c = env.client(Some(&srv.url("")));
    let e = env
        .run(
            r#"
            local c = ...
            c:get("/x", { catch_response = true }, function(r) error("boom in cb") end)
            "#,
            c.clone(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("boom in cb"), "{e}");
    let e = env
        .run(
            r#"local c = ...; c:get("/y", function(r) error("boom after") end)"#,
            c,
        )
        .unwrap_err();
    assert!(e.to_string().contains("boom after"), "{e}");
    assert_eq!(
        rows(&env.delta()),
        vec![
            (Method::Get, "/x".into(), 1, 0),
            (Method::Get, "/y".into(), 1, 0)
        ]
    );
}

#[test]
fn transport_failure_is_a_failed_response_not_a_lua_error() {
    let env = env();
    let port = dead_port();
    let c = env.client(Some(&format!("http://127.0.0.1:{port}")));
    env.ok(
        r#"
        local c = ...
        local r = c:get("/down")
        assert(r.ok == false and r.status == 0, tostring(r))
        assert(r.error == "connection refused", r.error)
        assert(r.body == "" and next(r.headers) == nil)
        "#,
        c,
    );
    let d = env.delta();
    assert_eq!(rows(&d), vec![(Method::Get, "/down".into(), 1, 1)]);
    assert_eq!(
        failures(&d),
        vec![(
            Method::Get,
            "/down".into(),
            Failure::Http(HttpError::ConnectionRefused),
            1
        )]
    );
}

#[test]
fn timeout_option_bounds_one_request() {
    let srv = Server::start(|req| match req.path() {
        "/slow" => Reply::After(
            Duration::from_millis(1500),
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        _ => response("200 OK", &[], "quick"),
    });
    let env = env();
    let c = env.client(Some(&srv.url("")));
    let started = std::time::Instant::now();
    env.ok(
        r#"
        local c = ...
        local r = c:get("/slow", { timeout = 0.2 })
        assert(r.ok == false and r.error == "timeout after 200ms", tostring(r.error))
        assert(r.elapsed_ms >= 150 and r.elapsed_ms < 1400, r.elapsed_ms)
        local q = c:get("/fast", { timeout = 5 })
        assert(q.ok and q.body == "quick", tostring(q.error))
        local err = select(2, pcall(function() c:get("/x", { timeout = -1 }) end))
        assert(tostring(err):find("positive number"), tostring(err))
        "#,
        c,
    );
    assert!(started.elapsed() < Duration::from_millis(1400));
    let paths: Vec<String> = srv
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(
        paths,
        vec!["/slow", "/fast"],
        "both requests went out whole"
    );
    let d = env.delta();
    assert_eq!(
        failures(&d),
        vec![(
            Method::Get,
            "/slow".into(),
            Failure::Http(HttpError::Timeout(locusta::http::Millis(200))),
            1
        )]
    );
}

#[test]
fn request_event_listeners_get_the_fields() {
    let srv = Server::start(|req| match req.path() {
        "/bad" => response("500 Internal Server Error", &[], "err"),
        _ => response("200 OK", &[], "12345"),
    });
    let env = env();
    let listeners: Table = env
        .lua
        .named_registry_value(client::REQUEST_LISTENERS)
        .unwrap();
    let c = env.client(Some(&srv.url("")));
    // Nothing registered: requests work and nothing is called.
    env.ok(r#"local c = ...; c:get("/quiet")"#, c.clone());
    let f = env
        .lua
        .load(
            r#"
            events = {}
            return function(e) events[#events + 1] = e end
            "#,
        )
        .eval::<mlua::Function>()
        .unwrap();
    listeners.push(f).unwrap();
    env.ok(
        r#"
        local c = ...
        c:get("/ok", { name = "named" })
        c:post("/bad")
        assert(#events == 2, #events)
        local a, b = events[1], events[2]
        assert(a.request_type == "GET" and a.name == "named")
        assert(type(a.response_time) == "number" and a.response_time > 0)
        assert(math.type(a.response_time) == "float")
        assert(a.response_length == 5 and a.exception == nil)
        assert(a.response.status == 200 and a.response.body == "12345")
        assert(b.request_type == "POST" and b.name == "/bad")
        assert(b.exception == "HTTP 500 Internal Server Error", b.exception)
        "#,
        c,
    );
}

#[test]
fn https_and_missing_host_are_clear_lua_errors() {
    let env = env();
    let c = env.client(None);
    let e = env
        .run(r#"local c = ...; c:get("https://example.com/")"#, c.clone())
        .unwrap_err()
        .to_string();
    assert!(e.contains("https:// is not supported yet"), "{e}");
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
            let fut = f.call_async::<()>((c.clone(), i));
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
            .map(|(i, c)| monoio::spawn(f.call_async::<()>((c.clone(), i))))
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
