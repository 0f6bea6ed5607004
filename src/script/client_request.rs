//! One request from Lua, start to finish: parsing the options table,
//! serializing the request (option headers, the client's default headers,
//! JSON or raw body, the cookie jar), sending it on the user's connection
//! for its origin, taking `Set-Cookie`s into the jar, building the response
//! object, recording it once in the shard's stats and firing the `request`
//! event. It does not own the client userdata, its per-user state or where
//! a path goes (`client`), the response object's Lua API
//! (`client_response`), the cookie jar's rules (`client_cookies`), Lua <->
//! JSON (`json`), nor HTTP framing and timeouts (`http`).
//!
//! Recording (exactly once per request, under `(method, opts.name or path)`):
//! transport error → `Failure::Http`, `r:failure(msg)` → `Failure::Message`,
//! status >= 400 without `r:success()` → `Failure::Status`, else a success.
//! Latency is from just before the send (connect included) to the complete
//! response; bytes are the body length. A transport error is not a Lua
//! error: `r.ok == false`, `r.status == 0`, `r.error == "connection refused"`.
//!
//! Bounds: a body larger than `--max-body-size` stops being collected and
//! the exchange is abandoned at once (the connection is dropped) and
//! recorded as `body larger than 64 MiB`; header names and values that
//! would change the request's framing (`:`, CR, LF, NUL) are refused with
//! a Lua error before anything is sent; so is a request from inside a
//! coroutine the script created (it would suspend the wrong coroutine and
//! never be recorded).
//!
//! The `request` event: per request the cost of "no listeners" is one
//! length check of the [`REQUEST_LISTENERS`](super::client::REQUEST_LISTENERS)
//! table.

use std::rc::Rc;
use std::time::{Duration, Instant};

use mlua::{AnyUserData, Function, Lua, Table, UserDataRef, Value};

use super::client::{err, Client, Dest, Shared};
use super::client_cookies::now_unix;
use super::client_options::{self, Extra};
use super::client_response::{headers, Response};
use super::client_sink::OverflowHit;
pub(super) use super::client_sink::Sink;
use crate::http::{write_request, Connection, HttpError, Method, ResponseInfo};
use crate::stats::Failure;

/// A sink's body buffer above this is freed after use instead of kept.
const KEEP_BODY_CAPACITY: usize = 256 * 1024;

/// Whether a header name could change the request's framing or is not a
/// header name at all.
fn bad_header_name(name: &str) -> bool {
    name.is_empty()
        || name
            .bytes()
            .any(|b| matches!(b, b':' | b'\r' | b'\n' | 0 | b' ' | b'\t'))
}

/// Whether a header value would end the header line early.
fn bad_header_value(value: &str) -> bool {
    value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// Request headers as text + spans (name start, name end, value end).
#[derive(Default)]
pub(super) struct Scratch {
    text: String,
    spans: Vec<(usize, usize, usize)>,
}

impl Scratch {
    fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
    }

    fn push(&mut self, name: &str, value: &str) {
        let a = self.text.len();
        self.text.push_str(name);
        let b = self.text.len();
        self.text.push_str(value);
        self.spans.push((a, b, self.text.len()));
    }

    /// Whether one of the first `upto` headers is called `name`.
    fn has(&self, name: &str, upto: usize) -> bool {
        self.spans[..upto]
            .iter()
            .any(|&(a, b, _)| self.text[a..b].eq_ignore_ascii_case(name))
    }

    fn pairs(&self) -> Vec<(&str, &str)> {
        self.spans
            .iter()
            .map(|&(a, b, c)| (&self.text[a..b], &self.text[b..c]))
            .collect()
    }
}

/// The options table of one request.
#[derive(Default)]
struct Opts {
    name: Option<mlua::LuaString>,
    headers: Option<Table>,
    json: Option<Value>,
    body: Option<mlua::LuaString>,
    timeout: Option<Duration>,
    catch_response: bool,
    /// params, data, auth, cookies, allow_redirects (`client_options`).
    extra: Option<Box<Extra>>,
}

impl Opts {
    fn parse(t: &Table) -> mlua::Result<Opts> {
        let mut o = Opts::default();
        for pair in t.pairs::<Value, Value>() {
            let (k, v) = pair?;
            let key = match &k {
                Value::String(s) => s
                    .to_str()
                    .map_err(|_| err("request options: a key is not valid UTF-8"))?,
                other => {
                    return Err(err(format!(
                        "request options: keys must be strings, got a {}",
                        other.type_name()
                    )))
                }
            };
            match (&*key, v) {
                ("name", Value::String(s)) => o.name = Some(s),
                ("headers", Value::Table(h)) => o.headers = Some(h),
                ("json", v) => o.json = Some(v),
                ("body", Value::String(s)) => o.body = Some(s),
                ("timeout", v @ (Value::Integer(_) | Value::Number(_))) => {
                    let secs = match v {
                        Value::Integer(i) => i as f64,
                        Value::Number(n) => n,
                        _ => 0.0,
                    };
                    if !(secs > 0.0 && secs.is_finite()) {
                        return Err(err(format!(
                            "request option timeout must be a positive number of seconds, got {secs}"
                        )));
                    }
                    o.timeout = Some(Duration::from_secs_f64(secs.min(86_400.0)));
                }
                ("catch_response", Value::Boolean(b)) => o.catch_response = b,
                ("catch_response", Value::Nil) => {}
                (k @ ("name" | "headers" | "body" | "timeout" | "catch_response"), v) => {
                    let want = match k {
                        "name" | "body" => "a string",
                        "headers" => "a table",
                        "timeout" => "a number (seconds)",
                        _ => "a boolean",
                    };
                    return Err(err(format!(
                        "request option {k} must be {want}, got a {}",
                        v.type_name()
                    )));
                }
                (k, v) if client_options::owns(k) => client_options::parse(&mut o.extra, k, v)?,
                (other, _) => {
                    return Err(err(format!(
                    "unknown request option '{other}' (known: name, headers, json, body, timeout, \
                         catch_response, params, data, auth, cookies, allow_redirects)"
                )))
                }
            }
        }
        if o.json.is_some() && o.body.is_some() {
            return Err(err("request options json and body exclude each other"));
        }
        if let Some(x) = &mut o.extra {
            client_options::check(x, &mut o.body, o.json.is_some())?;
        }
        Ok(o)
    }
}

/// Add a header table's entries to `sc` (strings as they are, numbers
/// formatted), skipping names among the first `skip_upto` already there.
fn add_headers(sc: &mut Scratch, t: &Table, skip_upto: usize) -> mlua::Result<()> {
    use std::fmt::Write;
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let Value::String(k) = &k else {
            return Err(err(format!(
                "header names must be strings, got a {}",
                k.type_name()
            )));
        };
        let name = k
            .to_str()
            .map_err(|_| err("header name is not valid UTF-8"))?;
        if bad_header_name(&name) {
            return Err(err(format!(
                "header name {:?} is not allowed: names must be non-empty, without ':', \
                 spaces, CR, LF or NUL",
                &*name
            )));
        }
        if skip_upto > 0 && sc.has(&name, skip_upto) {
            continue;
        }
        let a = sc.text.len();
        sc.text.push_str(&name);
        let b = sc.text.len();
        match &v {
            Value::String(s) => {
                let value = s
                    .to_str()
                    .map_err(|_| err(format!("header {}: value is not valid UTF-8", &*name)))?;
                if bad_header_value(&value) {
                    sc.text.truncate(a);
                    return Err(err(format!(
                        "header {}: the value contains CR, LF or NUL, which would end the \
                         header line (value {:?})",
                        &*name, &*value
                    )));
                }
                sc.text.push_str(&value);
            }
            Value::Integer(i) => {
                let _ = write!(sc.text, "{i}");
            }
            Value::Number(n) => {
                let _ = write!(sc.text, "{n}");
            }
            other => {
                return Err(err(format!(
                    "header {}: value must be a string or number, got a {}",
                    &*name,
                    other.type_name()
                )))
            }
        }
        sc.spans.push((a, b, sc.text.len()));
    }
    Ok(())
}

/// One request from Lua, start to finish.
///
/// The work before and after the send is in plain functions and the rare
/// awaits (callbacks, `request` listeners) are boxed, so that little besides
/// the send itself is live across its await: mlua moves this future (and
/// the ones wrapping it) by value per call, so its size is CPU per request.
pub(super) async fn request(
    lua: Lua,
    client: UserDataRef<Client>,
    method: Method,
    path: Value,
    a: Value,
    b: Value,
) -> mlua::Result<AnyUserData> {
    let (lua, client) = (&lua, &*client);
    let shared = &*client.shared;
    if shared.ctx.nested.get() > 0 {
        let what = format!("client:{}", method.as_str().to_ascii_lowercase());
        return Err(crate::script::runtime::nested_error(&what));
    }
    let (path, mut opts, cb) = parse_call(method, path, a, b)?;
    let timeout = opts.timeout.unwrap_or(shared.ctx.cfg.request_timeout);
    let catch_response = opts.catch_response;
    // Locust names an entry by the path with its query (`path_url`).
    let name = match (opts.name.take(), &opts.extra) {
        (None, Some(x)) => client_options::name_with_query(lua, &path, x)?,
        (name, _) => name,
    };
    let (dest, mut conn, mut sink) = prepare(lua, client, method, &path, opts)?;
    let name = name.unwrap_or(path);

    let connects_before = (conn.is_connected(), conn.connects());
    let started = Instant::now();
    let over = sink.over.clone();
    let result = {
        let send = conn.send_buffered_at(started, timeout, method, &mut sink);
        monoio::select! {
            r = send => Some(r),
            _ = OverflowHit(&over) => None,
        }
    };
    let elapsed_us = started.elapsed().as_micros().min(u64::MAX as u128) as u64;
    // A connect was needed and none succeeded: the connect failed.
    let connect_failed = !connects_before.0 && conn.connects() == connects_before.1;
    if !connects_before.0 && !connect_failed {
        dest.backoff.borrow_mut().reset();
    }
    if result.is_some() {
        dest.conn.borrow_mut().get_or_insert(conn);
    }
    // else: abandoned mid-body, the connection goes with it (dropped here).

    let ud = respond(lua, client, method, result, elapsed_us, &dest, sink)?;
    let out = if cb.is_none() && shared.listeners.raw_len() == 0 {
        count(shared, &ud, method, &name)?;
        Ok(ud)
    } else {
        Box::pin(after(lua, shared, ud, method, name, cb, catch_response)).await
    };
    if connect_failed {
        Box::pin(connect_backoff(&dest)).await;
    }
    out
}

/// After a failed connect (recorded already), pause before the user goes
/// on, as raw users do (`engine::ConnectBackoff`: 10 ms doubling to 1 s per
/// destination, reset by a connect that works): a connect can fail without
/// suspending (EMFILE from socket(), refused on loopback), and users with
/// no wait time would retry at once, all failing, while the users that hold
/// a connection starve. One timer, not a poll: tens of thousands of users
/// may be pausing at once. A kill interrupts it (the whole request is a
/// `kill_point`); a graceful stop waits for it (1 s at most).
async fn connect_backoff(dest: &Dest) {
    let pause = dest.backoff.borrow_mut().step();
    monoio::time::sleep(pause).await;
}

/// The call's arguments: path, options, callback.
fn parse_call(
    method: Method,
    path: Value,
    a: Value,
    b: Value,
) -> mlua::Result<(mlua::LuaString, Opts, Option<Function>)> {
    let verb = || method.as_str().to_ascii_lowercase();
    let path = match path {
        Value::String(s) => s,
        other => {
            return Err(err(format!(
                "client:{}(path, ...): path must be a string, got a {}",
                verb(),
                other.type_name()
            )))
        }
    };
    let (opts, cb) = match (a, b) {
        (Value::Nil, Value::Nil) => (None, None),
        (Value::Table(t), Value::Nil) => (Some(t), None),
        (Value::Table(t), Value::Function(f)) => (Some(t), Some(f)),
        (Value::Function(f), Value::Nil) | (Value::Nil, Value::Function(f)) => (None, Some(f)),
        (a, b) => {
            return Err(err(format!(
                "client:{}(path, [opts], [callback]): expected a table and a function, \
                 got a {} and a {}",
                verb(),
                a.type_name(),
                b.type_name()
            )))
        }
    };
    let opts = match &opts {
        Some(t) => Opts::parse(t)?,
        None => Opts::default(),
    };
    Ok((path, opts, cb))
}

/// Resolve the destination and serialize the request into its connection's
/// own buffer. Returns the destination, its connection (taken out while the
/// request uses it) and a sink holding the request target (for `r.url`).
fn prepare(
    lua: &Lua,
    client: &Client,
    method: Method,
    path: &mlua::LuaString,
    opts: Opts,
) -> mlua::Result<(Rc<Dest>, Box<Connection>, Sink)> {
    let shared = &*client.shared;
    let path_str = path.to_str().map_err(|_| {
        err(format!(
            "client:{}: path is not valid UTF-8",
            method.as_str().to_ascii_lowercase()
        ))
    })?;
    let (dest, mut target) = client.resolve(&path_str)?;
    let extra = opts.extra.as_deref();
    if let Some(q) = extra.and_then(|x| x.query.as_deref()) {
        target = client_options::add_query(&target, q).into();
    }
    let json_body = match &opts.json {
        Some(v) => Some(super::json::to_json(lua, v)?),
        None => None,
    };

    let mut conn = dest.conn.borrow_mut().take().unwrap_or_else(|| {
        Box::new(Connection::to(
            dest.endpoint.clone(),
            shared.ctx.cfg.clone(),
        ))
    });
    let mut buf = std::mem::take(conn.request_buf());
    let built = (|| -> mlua::Result<()> {
        let mut sc = shared.scratch.borrow_mut();
        sc.clear();
        // requests applies auth after the headers: it wins over both.
        if let Some(a) = extra.and_then(|x| x.auth.as_deref()) {
            sc.push("Authorization", a);
        }
        let auth = sc.spans.len();
        if let Some(h) = &opts.headers {
            add_headers(&mut sc, h, auth)?;
        }
        let given = sc.spans.len();
        if let Some(d) = &*client.headers.borrow() {
            if !d.is_empty() {
                add_headers(&mut sc, d, given)?;
            }
        }
        let all = sc.spans.len();
        if json_body.is_some() && !sc.has("content-type", all) {
            sc.push("Content-Type", "application/json");
        }
        let form = extra.and_then(|x| x.form.as_deref());
        if form.is_some() && !sc.has("content-type", all) {
            sc.push("Content-Type", "application/x-www-form-urlencoded");
        }
        let jar = client.cookies.borrow();
        let once = extra.map_or(&[][..], |x| &x.cookies[..]);
        let any_cookie = !jar.is_empty() || !once.is_empty();
        if any_cookie && !sc.has("cookie", all) {
            let a = sc.text.len();
            sc.text.push_str("Cookie");
            let b = sc.text.len();
            if once.is_empty() {
                jar.write_header(&mut sc.text);
            } else {
                client_options::write_cookies(&jar, once, &mut sc.text);
            }
            let c = sc.text.len();
            sc.spans.push((a, b, c));
        }
        let body_str;
        let body: &[u8] = match (&json_body, &opts.body) {
            (Some(j), _) => j,
            (None, None) if form.is_some() => form.unwrap_or("").as_bytes(),
            (None, Some(s)) => {
                body_str = s.as_bytes();
                &body_str
            }
            (None, None) => b"",
        };
        if sc.spans.is_empty() {
            write_request(&mut buf, method, &target, &dest.host_header, &[], body);
        } else {
            let pairs = sc.pairs();
            write_request(&mut buf, method, &target, &dest.host_header, &pairs, body);
        }
        Ok(())
    })();
    if let Err(e) = built {
        buf.clear();
        *conn.request_buf() = buf;
        dest.conn.borrow_mut().get_or_insert(conn);
        return Err(e);
    }
    // Back into the connection: the buffer moves into the write op and
    // back without copying.
    *conn.request_buf() = buf;

    let mut sink = shared.sinks.borrow_mut().pop().unwrap_or_default();
    sink.heads.clear();
    sink.body.clear();
    sink.path.clear();
    sink.limit = shared.ctx.limits.max_body;
    sink.over.hit.set(false);
    sink.path.push_str(&target);
    Ok((dest, conn, sink))
}

/// The response object, after the send: Set-Cookies into the jar, the
/// sink back to the pool.
fn respond(
    lua: &Lua,
    client: &Client,
    method: Method,
    result: Option<Result<ResponseInfo, HttpError>>,
    elapsed_us: u64,
    dest: &Dest,
    mut sink: Sink,
) -> mlua::Result<AnyUserData> {
    let shared = &*client.shared;
    let too_large = sink.over.hit.get().then_some(sink.limit);
    let (status, error, body_len) = match result {
        Some(Ok(info)) => (info.status, None, info.body_len),
        Some(Err(e)) if too_large.is_none() => (0, Some(e), 0),
        // Abandoned (or timed out) past the limit: the limit is the cause.
        Some(Err(_)) | None => (0, None, 0),
    };
    if too_large.is_some() {
        sink.body.clear();
    }
    if error.is_none() && too_large.is_none() {
        let mut jar = None;
        for (name, value) in headers(&sink.heads) {
            if name == b"set-cookie" {
                let now = *jar.get_or_insert_with(now_unix);
                client.cookies.borrow_mut().apply_set_cookie(value, now);
            }
        }
    } else {
        sink.heads.clear();
        sink.body.clear();
    }
    let mut response = Response::new(
        method,
        status,
        error,
        elapsed_us,
        body_len,
        &sink.heads,
        &sink.path,
        &sink.body,
        dest.url_prefix.clone(),
    );
    response.too_large = too_large;
    if sink.body.capacity() > KEEP_BODY_CAPACITY {
        sink.body = Vec::new();
    }
    shared.sinks.borrow_mut().push(sink);
    shared.note_outside_heap(lua, response.heap_bytes())?;
    lua.create_userdata(response)
}

/// After the response, when there is a callback or a `request` listener.
async fn after(
    lua: &Lua,
    shared: &Shared,
    ud: AnyUserData,
    method: Method,
    name: mlua::LuaString,
    cb: Option<Function>,
    catch_response: bool,
) -> mlua::Result<AnyUserData> {
    if catch_response {
        if let Some(cb) = &cb {
            let outcome = cb.call_async::<()>(&ud).await;
            record(lua, shared, &ud, method, &name).await?;
            outcome?;
            return Ok(ud);
        }
    }
    record(lua, shared, &ud, method, &name).await?;
    if let Some(cb) = cb {
        cb.call_async::<()>(&ud).await?;
    }
    Ok(ud)
}

/// Count the request in the shard's stats and fire the `request` event.
async fn record(
    lua: &Lua,
    shared: &Shared,
    ud: &AnyUserData,
    method: Method,
    name: &mlua::LuaString,
) -> mlua::Result<()> {
    let (failure, elapsed_us, bytes) = count(shared, ud, method, name)?;
    if shared.listeners.raw_len() == 0 {
        return Ok(());
    }
    let event = lua.create_table_with_capacity(0, 6)?;
    event.raw_set("request_type", method.as_str())?;
    event.raw_set("name", name)?;
    event.raw_set("response_time", elapsed_us as f64 / 1000.0)?;
    event.raw_set("response_length", bytes)?;
    event.raw_set("exception", failure.map(|f| f.to_string()))?;
    event.raw_set("response", ud)?;
    let listeners: Vec<Function> = shared
        .listeners
        .sequence_values::<Function>()
        .collect::<mlua::Result<_>>()
        .map_err(|e| err(format!("request event: listeners must be functions ({e})")))?;
    for f in listeners {
        f.call_async::<()>(&event).await?;
    }
    Ok(())
}

/// Count the request in the shard's stats (marks the response recorded).
fn count(
    shared: &Shared,
    ud: &AnyUserData,
    method: Method,
    name: &mlua::LuaString,
) -> mlua::Result<(Option<Failure>, u64, u64)> {
    let (failure, elapsed_us, bytes) = {
        let r = ud.borrow::<Response>()?;
        r.recorded.set(true);
        (r.failure(), r.elapsed_us, r.body_len)
    };
    let lossy;
    let borrowed;
    let name_str: &str = match name.to_str() {
        Ok(s) => {
            borrowed = s;
            &borrowed
        }
        Err(_) => {
            lossy = name.to_string_lossy();
            &lossy
        }
    };
    let mut stats = shared.ctx.stats.borrow_mut();
    let id = stats.entry(method, name_str);
    match &failure {
        None => stats.record(id, elapsed_us, bytes),
        Some(f) => stats.record_failure(id, elapsed_us, bytes, f.clone()),
    }
    Ok((failure, elapsed_us, bytes))
}
