//! The Lua HTTP client bindings driven without the script runtime, against
//! the in-process server in `common/script_client_server.rs`: how each
//! request's outcome is recorded and reported — `catch_response` marking
//! success or failure, errors raised in callbacks, transport failures as
//! failed responses, the per-request `timeout` option, and the `request`
//! event's listeners. It does not cover what goes on the wire (methods,
//! headers, cookies, URLs, connections): that is `script_client.rs`.

use std::time::Duration;

use locusta::http::{HttpError, Method};
use locusta::script::client;
use locusta::stats::Failure;
use mlua::Table;

#[path = "common/script_client_server.rs"]
mod server;

use server::{dead_port, env, failures, response, rows, Reply, Server};

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
