//! `self.client`: Locust's HTTP client API for Lua users, on
//! [`crate::http::Connection`].
//!
//! Owns the client userdata (`get/post/put/patch/delete/head/options/request`,
//! per-user default headers and cookies), the response object
//! (`client_response`), recording every request once in the shard's stats,
//! and firing the `request` event. It does not own users, tasks or the
//! event registry (the runtime, `runtime.rs`), nor HTTP framing (`http`).
//!
//! A request suspends the calling coroutine (an mlua async method) until the
//! whole response is in. Per user and origin there is one keep-alive
//! connection: the user's host, plus a small cache of other origins reached
//! through absolute URLs. Names are resolved once per user and origin.
//!
//! Recording (exactly once per request, under `(method, opts.name or path)`):
//! transport error → `Failure::Http`, `r:failure(msg)` → `Failure::Message`,
//! status >= 400 without `r:success()` → `Failure::Status`, else a success.
//! Latency is from just before the send (connect included) to the complete
//! response; bytes are the body length. A transport error is not a Lua
//! error: `r.ok == false`, `r.status == 0`, `r.error == "connection refused"`.
//!
//! The `request` event: listeners live in the registry table
//! [`REQUEST_LISTENERS`] (a sequence of functions). `install` creates it if
//! absent and keeps a handle, so the runtime must add to that table and
//! never replace it. Per request the cost of "no listeners" is one length
//! check of that table.
//!
//! Cookies: see `client_cookies` (per-user jar, Domain/Path ignored).

use std::borrow::Cow;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mlua::{
    AnyUserData, Function, Lua, MetaMethod, Table, UserData, UserDataFields, UserDataMethods,
    UserDataRef, Value,
};

use super::client_cookies::{now_unix, CookieJar};
use super::client_response::{headers, push_header, Response};
use crate::http::{
    write_request, ClientConfig, Connection, HttpError, Method, Millis, ResponseInfo, ResponseSink,
    Target,
};

/// Registry key of the `request` event listeners (a Lua sequence).
pub const REQUEST_LISTENERS: &str = "locusta.request_listeners";

/// Absolute-URL origins a user keeps connections to, besides its host.
const MAX_OTHER_ORIGINS: usize = 8;

/// A sink's body buffer above this is freed after use instead of kept.
const KEEP_BODY_CAPACITY: usize = 256 * 1024;

/// What the client needs from its shard.
pub struct ClientCtx {
    pub stats: Rc<RefCell<crate::stats::ShardStats>>,
    pub cfg: crate::http::ClientConfig,
}

/// Per Lua state (shard): shared by every client of that state.
struct Shared {
    ctx: Rc<ClientCtx>,
    /// Response sinks not in use: as many as requests were ever in flight
    /// at once, not one per user.
    sinks: RefCell<Vec<Sink>>,
    /// Header text assembled for the request being serialized (never held
    /// across an await).
    scratch: RefCell<Scratch>,
    listeners: Table,
    headers_mt: Table,
}

/// Install the client and response types for this Lua state (once per
/// state). `module` is the `locusta` table (nothing is added to it yet).
pub fn install(lua: &Lua, _module: &Table, ctx: Rc<ClientCtx>) -> mlua::Result<()> {
    let listeners = match lua.named_registry_value::<Value>(REQUEST_LISTENERS)? {
        Value::Table(t) => t,
        Value::Nil => {
            let t = lua.create_table()?;
            lua.set_named_registry_value(REQUEST_LISTENERS, &t)?;
            t
        }
        other => {
            return Err(mlua::Error::runtime(format!(
                "registry value {REQUEST_LISTENERS} must be a table, found {}",
                other.type_name()
            )))
        }
    };
    let headers_mt: Table = lua
        .load(
            r#"return { __index = function(t, k)
                 if type(k) == "string" then
                   local l = k:lower()
                   if l ~= k then return rawget(t, l) end
                 end
               end }"#,
        )
        .set_name("=locusta.client")
        .eval()?;
    lua.set_app_data(Rc::new(Shared {
        ctx,
        sinks: RefCell::new(Vec::new()),
        scratch: RefCell::new(Scratch::default()),
        listeners,
        headers_mt,
    }));
    Ok(())
}

/// A new `self.client` for one user. Relative paths go to `host`; with
/// `None` only absolute `http://` URLs work.
pub fn new_client(lua: &Lua, host: Option<Target>) -> mlua::Result<AnyUserData> {
    let shared = lua
        .app_data_ref::<Rc<Shared>>()
        .ok_or_else(|| mlua::Error::runtime("locusta client used before script::client::install"))?
        .clone();
    let main = host.map(|t| Rc::new(Dest::new(&t, true)));
    lua.create_userdata(Client {
        shared,
        main,
        others: RefCell::new(Vec::new()),
        headers: RefCell::new(None),
        cookies: RefCell::new(CookieJar::default()),
    })
}

/// One origin a user talks to, and its keep-alive connection.
struct Dest {
    addr: SocketAddr,
    host_header: Box<str>,
    /// `Target::origin`, to find out that an absolute URL is the host.
    origin: Box<str>,
    /// `http://host[:port]`, for `r.url`.
    url_prefix: Rc<str>,
    /// The host URL's path (`--host http://x/api` → `/api`), put before
    /// relative paths as Locust does; empty for `/`.
    base_path: Box<str>,
    /// `None` while a request uses it (or before the first one).
    conn: RefCell<Option<Connection>>,
}

impl Dest {
    fn new(t: &Target, main: bool) -> Dest {
        let base = t.path.split(['?', '#']).next().unwrap_or("");
        let base = if main { base.trim_end_matches('/') } else { "" };
        Dest {
            addr: t.addr,
            host_header: t.host_header.as_str().into(),
            origin: t.origin.as_str().into(),
            url_prefix: format!("http://{}", t.host_header).into(),
            base_path: base.into(),
            conn: RefCell::new(None),
        }
    }
}

pub struct Client {
    shared: Rc<Shared>,
    main: Option<Rc<Dest>>,
    /// Origins of absolute URLs: the authority as written → destination.
    others: RefCell<Vec<(Box<str>, Rc<Dest>)>>,
    /// `self.client.headers`, created on first use.
    headers: RefCell<Option<Table>>,
    cookies: RefCell<CookieJar>,
}

/// Collects the response's headers and body into reusable buffers.
#[derive(Default)]
struct Sink {
    heads: Vec<u8>,
    body: Vec<u8>,
}

impl ResponseSink for Sink {
    fn header(&mut self, name: &str, value: &[u8]) {
        push_header(&mut self.heads, name, value);
    }
    fn body(&mut self, data: &[u8]) {
        self.body.extend_from_slice(data);
    }
}

/// Request headers as text + spans (name start, name end, value end).
#[derive(Default)]
struct Scratch {
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
}

fn err(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(msg.into())
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
                (other, _) => {
                    return Err(err(format!(
                        "unknown request option '{other}' (known: name, headers, json, body, timeout, catch_response)"
                    )))
                }
            }
        }
        if o.json.is_some() && o.body.is_some() {
            return Err(err("request options json and body exclude each other"));
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
        if skip_upto > 0 && sc.has(&name, skip_upto) {
            continue;
        }
        let a = sc.text.len();
        sc.text.push_str(&name);
        let b = sc.text.len();
        match &v {
            Value::String(s) => sc.text.push_str(
                &s.to_str()
                    .map_err(|_| err(format!("header {}: value is not valid UTF-8", &*name)))?,
            ),
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

/// `http://authority/rest` → (authority, rest), case-insensitive scheme.
fn split_http(url: &str) -> Option<(&str, &str)> {
    let head = url.get(..7)?;
    if !head.eq_ignore_ascii_case("http://") {
        return None;
    }
    let rest = &url[7..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(rest.split_at(end))
}

/// Whether `s` starts with `scheme://`.
fn has_scheme(s: &str) -> bool {
    match s.find("://") {
        Some(i) => {
            i > 0
                && s[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        }
        None => false,
    }
}

impl Client {
    /// Where `path` goes and the request target to write.
    fn resolve<'p>(&self, path: &'p str) -> mlua::Result<(Rc<Dest>, Cow<'p, str>)> {
        if let Some((authority, tail)) = split_http(path) {
            let tail = tail.split('#').next().unwrap_or("");
            let target: Cow<str> = match tail.as_bytes().first() {
                None => Cow::Borrowed("/"),
                Some(b'?') => Cow::Owned(format!("/{tail}")),
                Some(_) => Cow::Borrowed(tail),
            };
            let mut others = self.others.borrow_mut();
            if let Some((_, d)) = others
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(authority))
            {
                return Ok((d.clone(), target));
            }
            let t = Target::parse(path).map_err(|e| err(e.to_string()))?;
            let dest = match &self.main {
                Some(m) if *m.origin == *t.origin => m.clone(),
                _ => Rc::new(Dest::new(&t, false)),
            };
            if others.len() >= MAX_OTHER_ORIGINS {
                others.remove(0);
            }
            others.push((authority.into(), dest.clone()));
            return Ok((dest, target));
        }
        if has_scheme(path) {
            // https:// and other schemes: the URL parser's own message.
            return Err(match Target::parse(path) {
                Err(e) => err(e.to_string()),
                Ok(_) => err(format!("unsupported URL '{path}'")),
            });
        }
        let Some(main) = &self.main else {
            return Err(err(format!(
                "relative path '{path}' needs a host: set host on the user class or pass \
                 --host, or use an absolute http:// URL"
            )));
        };
        let target = match (main.base_path.is_empty(), path.starts_with('/')) {
            (true, true) => Cow::Borrowed(path),
            (true, false) => Cow::Owned(format!("/{path}")),
            (false, true) => Cow::Owned(format!("{}{path}", main.base_path)),
            (false, false) => Cow::Owned(format!("{}/{path}", main.base_path)),
        };
        Ok((main.clone(), target))
    }

    fn default_headers(&self, lua: &Lua) -> mlua::Result<Table> {
        if let Some(t) = &*self.headers.borrow() {
            return Ok(t.clone());
        }
        let t = lua.create_table()?;
        *self.headers.borrow_mut() = Some(t.clone());
        Ok(t)
    }
}

/// Send with a per-request whole-request timeout. `Connection` counts its
/// deadline from the `started` it is given plus its configured timeout, so
/// shifting `started` moves the deadline to now + `timeout`.
async fn send_with_timeout(
    conn: &mut Connection,
    request: Vec<u8>,
    cfg: ClientConfig,
    timeout: Duration,
    is_head: bool,
    sink: &mut Sink,
) -> Result<ResponseInfo, HttpError> {
    let now = Instant::now();
    let started = if timeout >= cfg.request_timeout {
        now.checked_add(timeout - cfg.request_timeout)
    } else {
        now.checked_sub(cfg.request_timeout - timeout)
    }
    .unwrap_or(now);
    let buf = Rc::new(request);
    let result = conn.send_since(started, &buf, is_head, sink).await;
    if let Ok(buf) = Rc::try_unwrap(buf) {
        *conn.request_buf() = buf;
    }
    match result {
        Err(HttpError::Timeout(_)) => Err(HttpError::Timeout(Millis::from_duration(timeout))),
        other => other,
    }
}

/// One request from Lua, start to finish.
async fn request(
    lua: &Lua,
    client: &Client,
    method: Method,
    path: Value,
    a: Value,
    b: Value,
) -> mlua::Result<AnyUserData> {
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
    let shared = client.shared.clone();
    let cfg = shared.ctx.cfg;
    let is_head = method == Method::Head;

    let path_str = path
        .to_str()
        .map_err(|_| err(format!("client:{}: path is not valid UTF-8", verb())))?;
    let (dest, target) = client.resolve(&path_str)?;
    let json_body = match &opts.json {
        Some(v) => Some(super::json::to_json(lua, v)?),
        None => None,
    };

    // Serialize the request into the connection's own buffer.
    let mut conn = dest
        .conn
        .borrow_mut()
        .take()
        .unwrap_or_else(|| Connection::new(dest.addr, cfg));
    let mut buf = std::mem::take(conn.request_buf());
    let built = (|| -> mlua::Result<()> {
        let mut sc = shared.scratch.borrow_mut();
        sc.clear();
        if let Some(h) = &opts.headers {
            add_headers(&mut sc, h, 0)?;
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
        let jar = client.cookies.borrow();
        if !jar.is_empty() && !sc.has("cookie", all) {
            let a = sc.text.len();
            sc.text.push_str("Cookie");
            let b = sc.text.len();
            jar.write_header(&mut sc.text);
            let c = sc.text.len();
            sc.spans.push((a, b, c));
        }
        let body_str;
        let body: &[u8] = match (&json_body, &opts.body) {
            (Some(j), _) => j,
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
    drop(json_body);

    let mut sink = shared.sinks.borrow_mut().pop().unwrap_or_default();
    sink.heads.clear();
    sink.body.clear();
    let started = Instant::now();
    let result = match opts.timeout {
        None => {
            // Back into the connection: send_buffered moves it into the
            // write op and back without copying.
            *conn.request_buf() = buf;
            conn.send_buffered(is_head, &mut sink).await
        }
        Some(t) => send_with_timeout(&mut conn, buf, cfg, t, is_head, &mut sink).await,
    };
    let elapsed_us = started.elapsed().as_micros().min(u64::MAX as u128) as u64;
    dest.conn.borrow_mut().get_or_insert(conn);

    let (status, error, body_len) = match result {
        Ok(info) => (info.status, None, info.body_len),
        Err(e) => (0, Some(e), 0),
    };
    if error.is_none() {
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
    let response = Response::new(
        method,
        status,
        error,
        elapsed_us,
        body_len,
        &sink.heads,
        &target,
        &sink.body,
        dest.url_prefix.clone(),
    );
    if sink.body.capacity() > KEEP_BODY_CAPACITY {
        sink.body = Vec::new();
    }
    shared.sinks.borrow_mut().push(sink);
    drop(target);
    let ud = lua.create_userdata(response)?;

    let name = opts.name.as_ref().unwrap_or(&path);
    if opts.catch_response {
        if let Some(cb) = &cb {
            let outcome = cb.call_async::<()>(&ud).await;
            record(lua, &shared, &ud, method, name).await?;
            outcome?;
            return Ok(ud);
        }
    }
    record(lua, &shared, &ud, method, name).await?;
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
    let (failure, elapsed_us, bytes) = {
        let r = ud.borrow::<Response>()?;
        r.recorded.set(true);
        (r.failure(), r.elapsed_us, r.body_len)
    };
    {
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
    }
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

/// The metatable that makes `r.headers` lookups case-insensitive.
pub(crate) fn headers_metatable(lua: &Lua) -> mlua::Result<Table> {
    lua.app_data_ref::<Rc<Shared>>()
        .map(|s| s.headers_mt.clone())
        .ok_or_else(|| err("locusta client used before script::client::install"))
}

fn method_of(v: &Value) -> mlua::Result<Method> {
    let s = match v {
        Value::String(s) => s.to_string_lossy(),
        other => {
            return Err(err(format!(
                "client:request(method, path, ...): method must be a string, got a {}",
                other.type_name()
            )))
        }
    };
    Method::parse(&s).ok_or_else(|| {
        err(format!(
            "client:request: unknown HTTP method '{s}' (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS)"
        ))
    })
}

impl UserData for Client {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("headers", |lua, c| c.default_headers(lua));
        fields.add_field_method_get("cookies", |lua, c| {
            let jar = c.cookies.borrow();
            let t = lua.create_table_with_capacity(0, jar.cookies.len())?;
            for (n, v) in &jar.cookies {
                t.raw_set(&**n, &**v)?;
            }
            Ok(t)
        });
        fields.add_field_method_get("base_url", |_, c| {
            Ok(c.main
                .as_ref()
                .map(|m| format!("{}{}", m.url_prefix, m.base_path)))
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        for method in Method::ALL {
            let name = method.as_str().to_ascii_lowercase();
            methods.add_async_method(
                name,
                move |lua, this: UserDataRef<Client>, (path, a, b): (Value, Value, Value)| async move {
                    request(&lua, &this, method, path, a, b).await
                },
            );
        }
        methods.add_async_method(
            "request",
            |lua, this: UserDataRef<Client>, (m, path, a, b): (Value, Value, Value, Value)| async move {
                let method = method_of(&m)?;
                request(&lua, &this, method, path, a, b).await
            },
        );
        methods.add_method("clear_cookies", |_, c, ()| {
            c.cookies.borrow_mut().clear();
            Ok(())
        });
        methods.add_method(
            "set_cookie",
            |_, c, (name, value): (String, Option<String>)| {
                let mut jar = c.cookies.borrow_mut();
                match value {
                    Some(v) => jar.set(&name, &v),
                    None => jar.remove(&name),
                }
                Ok(())
            },
        );
        methods.add_meta_method(
            MetaMethod::NewIndex,
            |_, c, (key, value): (String, Value)| match (key.as_str(), value) {
                ("headers", Value::Table(t)) => {
                    *c.headers.borrow_mut() = Some(t);
                    Ok(())
                }
                ("headers", Value::Nil) => {
                    *c.headers.borrow_mut() = None;
                    Ok(())
                }
                ("headers", v) => Err(err(format!(
                    "client.headers must be a table, got a {}",
                    v.type_name()
                ))),
                (k, _) => Err(err(format!(
                    "cannot set client.{k} (settable: headers; use client:set_cookie for cookies)"
                ))),
            },
        );
        methods.add_meta_method(MetaMethod::ToString, |_, c, ()| {
            Ok(match &c.main {
                Some(m) => format!("<HttpClient {}{}>", m.url_prefix, m.base_path),
                None => "<HttpClient (no host)>".to_string(),
            })
        });
    }
}
