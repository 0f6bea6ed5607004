//! One request from Lua, start to finish: the call's arguments, sending the
//! request (built by `client_build`) on the user's connection for its
//! origin, following its redirects (`client_redirect`, entered only when
//! the first response is one), taking `Set-Cookie`s into the jar, building
//! the response object, recording it once in the shard's stats and firing
//! the `request` event. It does not own the client userdata, its per-user
//! state or where a path goes (`client`), the response object's Lua API
//! (`client_response`), the cookie jar's rules (`client_cookies`), Lua <->
//! JSON (`json`), nor HTTP framing and timeouts (`http`).
//!
//! A redirect chain is one request: recorded under the first request's
//! method and name, with the time from the first send to the last
//! response, the last response's status and body size.
//!
//! Recording (exactly once per request, under `(method, opts.name or path)`):
//! transport error → `Failure::Http`, a redirect chain that went wrong
//! (`too many redirects (10)`, a bad `Location`) or `r:failure(msg)` →
//! `Failure::Message`, status >= 400 without `r:success()` →
//! `Failure::Status`, else a success.
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

use std::time::{Duration, Instant};

use mlua::{AnyUserData, Function, Lua, UserDataRef, Value};

use super::client::{err, Client, Dest, Shared};
pub(super) use super::client_build::Scratch;
use super::client_build::{prepare, HopRules, Opts};
use super::client_cookies::now_unix;
use super::client_options;
use super::client_redirect::{self, Done};
use super::client_response::{headers, Response};
use super::client_sink::OverflowHit;
pub(super) use super::client_sink::Sink;
use crate::http::{Connection, HttpError, Method, ResponseInfo};
use crate::script::runtime::call_nested;
use crate::stats::Failure;

/// A sink's body buffer above this is freed after use instead of kept.
const KEEP_BODY_CAPACITY: usize = 256 * 1024;

/// One request from Lua, start to finish.
///
/// The work before and after the send is in plain functions and the rare
/// awaits (callbacks, `request` listeners) are boxed, so that little besides
/// the send itself is live across its await: this future is boxed per
/// request (`client::park_request`), so its size is memory traffic per
/// request.
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
    let (path, mut opts, cb) = parse_call(method, path, a, b)?;
    let timeout = opts.timeout.unwrap_or(shared.ctx.cfg.request_timeout);
    let catch_response = opts.catch_response;
    // Locust names an entry by the path with its query (`path_url`).
    let name = match (opts.name.take(), &opts.extra) {
        (None, Some(x)) => client_options::name_with_query(lua, &path, x)?,
        (name, _) => name,
    };
    if let Some(v) = opts.json.take() {
        opts.json_body = Some(super::json::to_json(lua, &v)?);
    }
    let (dest, conn, mut sink) = {
        let path_str = path.to_str().map_err(|_| {
            err(format!(
                "client:{}: path is not valid UTF-8",
                method.as_str().to_ascii_lowercase()
            ))
        })?;
        prepare(client, method, &path_str, &opts, HopRules::FIRST)?
    };
    let name = name.unwrap_or(path);

    let started = Instant::now();
    let (result, connect_failed) = exchange(&dest, conn, &mut sink, method, started, timeout).await;
    let mut done = Done {
        method,
        hop_method: method,
        result,
        dest,
        sink,
        connect_failed,
        history: Vec::new(),
        fault: None,
    };
    // requests' head() does not follow unless asked to.
    let follow = opts.allow_redirects.unwrap_or(method != Method::Head);
    if follow && done.is_redirect() {
        done = Box::pin(client_redirect::follow(
            client, &opts, started, timeout, done,
        ))
        .await;
    }
    let elapsed_us = started.elapsed().as_micros().min(u64::MAX as u128) as u64;
    let (connect_failed, dest) = (done.connect_failed, done.dest.clone());

    let ud = respond(lua, client, done, elapsed_us)?;
    let out = if cb.is_none() && shared.listeners.raw_len() == 0 {
        count(shared, &ud, method, &name, client.open.as_deref())?;
        Ok(ud)
    } else {
        let open = client.open.as_deref();
        Box::pin(after(
            lua,
            shared,
            open,
            ud,
            method,
            name,
            cb,
            catch_response,
        ))
        .await
    };
    if connect_failed {
        Box::pin(connect_backoff(&dest)).await;
    }
    out
}

/// One exchange on `dest`'s connection (taken out as `conn`, put back
/// unless the exchange was abandoned past the body limit). Returns the
/// result (`None`: abandoned) and whether a needed connect failed.
pub(super) async fn exchange(
    dest: &Dest,
    mut conn: Box<Connection>,
    sink: &mut Sink,
    method: Method,
    started: Instant,
    timeout: Duration,
) -> (Option<Result<ResponseInfo, HttpError>>, bool) {
    let connects_before = (conn.is_connected(), conn.connects());
    let over = sink.over.clone();
    let result = {
        let send = conn.send_buffered_at(started, timeout, method, sink);
        monoio::select! {
            r = send => Some(r),
            _ = OverflowHit(&over) => None,
        }
    };
    // A connect was needed and none succeeded: the connect failed.
    let connect_failed = !connects_before.0 && conn.connects() == connects_before.1;
    if !connects_before.0 && !connect_failed {
        dest.backoff.borrow_mut().reset();
    }
    if result.is_some() {
        // The request buffer back to the sink (and its pool), leaving the
        // idle connection an empty one.
        sink.request = std::mem::take(conn.request_buf());
        dest.conn.borrow_mut().get_or_insert(conn);
    }
    // else: abandoned mid-body, the connection goes with it (dropped here).
    (result, connect_failed)
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

/// `Set-Cookie`s of a response's header section into the user's jar.
pub(super) fn take_cookies(client: &Client, heads: &[u8]) {
    let mut now = None;
    for (name, value) in headers(heads) {
        if name == b"set-cookie" {
            let now = *now.get_or_insert_with(now_unix);
            client.cookies.borrow_mut().apply_set_cookie(value, now);
        }
    }
}

/// The response object, after the send (or the chain): Set-Cookies into
/// the jar, the sink back to the pool.
fn respond(lua: &Lua, client: &Client, done: Done, elapsed_us: u64) -> mlua::Result<AnyUserData> {
    let shared = &*client.shared;
    let Done {
        method,
        result,
        dest,
        mut sink,
        history,
        fault,
        ..
    } = done;
    let too_large = sink.over.hit.get().then_some(sink.limit);
    let (status, error, body_len) = match result {
        _ if fault.is_some() => (0, None, 0),
        Some(Ok(info)) => (info.status, None, info.body_len),
        Some(Err(e)) if too_large.is_none() => (0, Some(e), 0),
        // Abandoned (or timed out) past the limit: the limit is the cause.
        Some(Err(_)) | None => (0, None, 0),
    };
    if too_large.is_some() {
        sink.body.clear();
    }
    if error.is_none() && too_large.is_none() && fault.is_none() {
        take_cookies(client, &sink.heads);
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
    response.fault = fault;
    response.max_body = shared.ctx.limits.max_body;
    if !history.is_empty() {
        response.history = Some(history.into_boxed_slice());
    }
    recycle(shared, sink);
    shared.note_outside_heap(lua, response.heap_bytes())?;
    lua.create_userdata(response)
}

/// A sink back to the pool, without a large body buffer.
pub(super) fn recycle(shared: &Shared, mut sink: Sink) {
    if sink.body.capacity() > KEEP_BODY_CAPACITY {
        sink.body = Vec::new();
    }
    if sink.request.capacity() > KEEP_BODY_CAPACITY {
        sink.request = Vec::new();
    }
    shared.sinks.borrow_mut().push(sink);
}

/// After the response, when there is a callback or a `request` listener.
#[allow(clippy::too_many_arguments)]
async fn after(
    lua: &Lua,
    shared: &Shared,
    open: Option<&crate::engine::OpenSlot>,
    ud: AnyUserData,
    method: Method,
    name: mlua::LuaString,
    cb: Option<Function>,
    catch_response: bool,
) -> mlua::Result<AnyUserData> {
    if catch_response {
        if let Some(cb) = &cb {
            let outcome = call_nested::<()>(lua, cb, &ud).await;
            record(lua, shared, open, &ud, method, &name).await?;
            outcome?;
            return Ok(ud);
        }
    }
    record(lua, shared, open, &ud, method, &name).await?;
    if let Some(cb) = cb {
        call_nested::<()>(lua, &cb, &ud).await?;
    }
    Ok(ud)
}

/// Count the request in the shard's stats and fire the `request` event.
async fn record(
    lua: &Lua,
    shared: &Shared,
    open: Option<&crate::engine::OpenSlot>,
    ud: &AnyUserData,
    method: Method,
    name: &mlua::LuaString,
) -> mlua::Result<()> {
    let (failure, elapsed_us, bytes) = count(shared, ud, method, name, open)?;
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
        call_nested::<()>(lua, &f, &event).await?;
    }
    Ok(())
}

/// Count the request in the shard's stats (marks the response recorded).
fn count(
    shared: &Shared,
    ud: &AnyUserData,
    method: Method,
    name: &mlua::LuaString,
    open: Option<&crate::engine::OpenSlot>,
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
    drop(stats);
    // Open model: the same request from its iteration's intended start.
    if let Some(open) = open {
        open.record_corrected(method, name_str, elapsed_us, bytes);
    }
    Ok((failure, elapsed_us, bytes))
}
