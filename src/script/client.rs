//! `self.client`: Locust's HTTP client API for Lua users, on
//! [`crate::http::Connection`].
//!
//! Owns the client userdata and its Lua surface
//! (`get/post/put/patch/delete/head/options/request`, `headers`, `cookies`,
//! `base_url`, `set_cookie`, `clear_cookies`), the per-shard state all
//! clients of a Lua state share ([`install`]), and where a path goes: one
//! keep-alive connection per user and origin — the user's host, plus a small
//! cache of other origins reached through absolute URLs (names are
//! resolved per connection by `http::dns`). It does not own building,
//! sending and recording one request or the `request` event
//! (`client_request`), following redirects (`client_redirect`), decoding
//! bodies (`client_decode`), the response object (`client_response`), the
//! cookie jar (`client_cookies`; Domain/Path ignored), users, tasks or
//! the event registry (the runtime, `runtime.rs`), nor HTTP framing
//! (`http`).
//!
//! A request suspends the calling coroutine (its future parked with the
//! thread's driver, see `park`: not an mlua async method) until the
//! whole response is in; see `client_request` for how it is recorded.
//!
//! The `request` event: listeners live in the registry table
//! [`REQUEST_LISTENERS`] (a sequence of functions). `install` creates it if
//! absent and keeps a handle, so the runtime must add to that table and
//! never replace it.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use mlua::{
    AnyUserData, Function, Lua, MetaMethod, Table, UserDataFields, UserDataMethods, UserDataRef,
    Value,
};

use super::client_cookies::CookieJar;
use super::client_request::{request, Scratch, Sink};
use super::runtime::kill_point;
use crate::engine::ConnectBackoff;
use crate::http::{Connection, Endpoint, Method, Target};

/// Registry key of the `request` event listeners (a Lua sequence).
pub const REQUEST_LISTENERS: &str = "locusta.request_listeners";

/// Absolute-URL origins a user keeps connections to, besides its host.
const MAX_OTHER_ORIGINS: usize = 8;

/// What the client needs from its shard.
pub struct ClientCtx {
    pub stats: Rc<RefCell<crate::stats::ShardStats>>,
    pub cfg: crate::http::ClientConfig,
    /// `max_body` bounds what a response may hold.
    pub limits: crate::script::ScriptLimits,
    /// Coroutines created by the script running now (> 0: requests are
    /// refused, they would suspend the wrong coroutine).
    pub nested: Rc<Cell<u32>>,
}

/// Per Lua state (shard): shared by every client of that state.
pub(super) struct Shared {
    pub(super) ctx: Rc<ClientCtx>,
    /// Response sinks not in use: as many as requests were ever in flight
    /// at once, not one per user.
    pub(super) sinks: RefCell<Vec<Sink>>,
    /// Header text assembled for the request being serialized (never held
    /// across an await).
    pub(super) scratch: RefCell<Scratch>,
    pub(super) listeners: Table,
    headers_mt: Table,
    /// Bytes allocated outside Lua's heap (response data, the call's future)
    /// since the last collector step; see `note_outside_heap`.
    outside_heap: Cell<usize>,
    /// The same, since the last full collection.
    since_full: Cell<usize>,
    /// Where requests wait while their thread is suspended.
    parking: Rc<super::park::Parking>,
}

/// Per request, a pacing allowance besides the response's data: when
/// requests went through mlua's async calls it stood for the future object
/// each call left to the collector; with parked requests (nothing left
/// behind) 0 measured no cheaper (24,741 against 24,343 instructions per
/// request, `get.lua`), so it stays.
const CALL_OVERHEAD: usize = 512;
/// Run a collector step after this much memory outside Lua's heap.
const STEP_EVERY: usize = 256 * 1024;
/// Run a full collection after at least this much memory outside Lua's
/// heap (and at least as much as the heap itself): see `note_outside_heap`.
const FULL_EVERY_MIN: usize = 8 * 1024 * 1024;

impl Shared {
    /// Lua's collector paces itself by its own heap, but a response's bytes
    /// live in Rust memory that only its `__gc` frees: without this, garbage
    /// responses pile up far faster than Lua notices (1.5 GB RSS for 64
    /// users in 5 s measured; 23 MB with it). A basic step in generational
    /// mode is one minor collection, cheap when the young generation is.
    pub(super) fn note_outside_heap(&self, lua: &Lua, bytes: usize) -> mlua::Result<()> {
        let total = self.outside_heap.get() + bytes + CALL_OVERHEAD;
        let since_full = self.since_full.get().saturating_add(bytes + CALL_OVERHEAD);
        if since_full >= FULL_EVERY_MIN && since_full >= lua.used_memory() {
            // Minor collections never visit old objects, and what a user
            // keeps across a wait (its calls' userdata, their futures)
            // ages into the old generation; Lua's own major trigger
            // (heap growth) cannot see what those hold outside its heap.
            // Measured (debug build, 1 shard): 1,000 users with
            // constant(1) grew ~0.7 KB per request without this and stay
            // flat from ~20 s with it. The cost on a no-think-time loop
            // (a full collection per ~8 MB of responses, small heap) is
            // not measured yet: see benches/README.md.
            self.since_full.set(0);
            self.outside_heap.set(0);
            return lua.gc_collect();
        }
        self.since_full.set(since_full);
        if total >= STEP_EVERY {
            self.outside_heap.set(0);
            lua.gc_step()?;
        } else {
            self.outside_heap.set(total);
        }
        Ok(())
    }
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
    let parking = super::park::parking(lua);
    register(lua, request_wrappers(lua, parking.clone())?)?;
    lua.set_app_data(Rc::new(Shared {
        ctx,
        sinks: RefCell::new(Vec::new()),
        scratch: RefCell::new(Scratch::default()),
        listeners,
        headers_mt,
        outside_heap: Cell::new(0),
        since_full: Cell::new(0),
        parking,
    }));
    Ok(())
}

/// A new `self.client` for one user. Relative paths go to `host`; with
/// `None` only absolute `http://` URLs work.
pub fn new_client(lua: &Lua, host: Option<Target>) -> mlua::Result<AnyUserData> {
    new_user_client(lua, host, None)
}

/// [`new_client`] for a user of an open-model run: its requests' latency is
/// also recorded corrected by its iteration's lateness (see `engine::open`).
pub fn new_user_client(
    lua: &Lua,
    host: Option<Target>,
    open: Option<Rc<crate::engine::OpenSlot>>,
) -> mlua::Result<AnyUserData> {
    let shared = lua
        .app_data_ref::<Rc<Shared>>()
        .ok_or_else(|| mlua::Error::runtime("locusta client used before script::client::install"))?
        .clone();
    let main = host.map(|t| Rc::new(Dest::new(&t, true)));
    lua.create_any_userdata(Client {
        shared,
        main,
        others: RefCell::new(Vec::new()),
        headers: RefCell::new(None),
        builtin_headers: Cell::new(true),
        cookies: RefCell::new(CookieJar::default()),
        open,
    })
}

/// One origin a user talks to, and its keep-alive connection.
pub(super) struct Dest {
    pub(super) endpoint: Endpoint,
    pub(super) host_header: Box<str>,
    /// `Target::origin`, to find out that an absolute URL is the host.
    origin: Box<str>,
    /// `scheme://host[:port]`, for `r.url`.
    pub(super) url_prefix: Rc<str>,
    /// The host URL's path (`--host http://x/api` → `/api`), put before
    /// relative paths as Locust does; empty for `/`.
    base_path: Box<str>,
    /// `None` while a request uses it (or before the first one).
    /// Boxed: it is moved out and back per request.
    pub(super) conn: RefCell<Option<Box<Connection>>>,
    /// Pauses after failed connects (see `client_request::connect_backoff`).
    pub(super) backoff: RefCell<ConnectBackoff>,
}

impl Dest {
    fn new(t: &Target, main: bool) -> Dest {
        let base = t.path.split(['?', '#']).next().unwrap_or("");
        let base = if main { base.trim_end_matches('/') } else { "" };
        Dest {
            endpoint: t.endpoint(),
            host_header: t.host_header.as_str().into(),
            origin: t.origin.as_str().into(),
            url_prefix: format!("{}://{}", t.scheme.as_str(), t.host_header).into(),
            base_path: base.into(),
            conn: RefCell::new(None),
            backoff: RefCell::new(ConnectBackoff::default()),
        }
    }
}

pub struct Client {
    pub(super) shared: Rc<Shared>,
    main: Option<Rc<Dest>>,
    /// Origins of absolute URLs: `scheme://authority` as written → destination.
    others: RefCell<Vec<(Box<str>, Rc<Dest>)>>,
    /// `self.client.headers`, created on first use.
    pub(super) headers: RefCell<Option<Table>>,
    /// Until the script reads or replaces `headers`, the built-in default
    /// headers (`Accept-Encoding`) are written without a Lua table; the
    /// first read puts them into the table, where the script can change
    /// or remove them.
    pub(super) builtin_headers: Cell<bool>,
    pub(super) cookies: RefCell<CookieJar>,
    /// Open-model users: their iteration's lateness, and the shard's
    /// corrected-latency table it is recorded in.
    pub(super) open: Option<Rc<crate::engine::OpenSlot>>,
}

pub(super) fn err(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(msg.into())
}

/// `http[s]://authority/rest` → (`scheme://authority`, rest),
/// case-insensitive scheme.
fn split_http(url: &str) -> Option<(&str, &str)> {
    let scheme_len = ["http://", "https://"].into_iter().find_map(|p| {
        url.get(..p.len())
            .filter(|h| h.eq_ignore_ascii_case(p))
            .map(|_| p.len())
    })?;
    let rest = &url[scheme_len..];
    let end = scheme_len + rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(url.split_at(end))
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
    /// Close the user's connections now (the user ended): the server sees
    /// the close at once, not when Lua's collector gets to the client.
    pub(crate) fn close(&self) {
        if let Some(d) = &self.main {
            d.conn.borrow_mut().take();
        }
        for (_, d) in self.others.borrow().iter() {
            d.conn.borrow_mut().take();
        }
    }

    /// Where `path` goes and the request target to write.
    pub(super) fn resolve<'p>(&self, path: &'p str) -> mlua::Result<(Rc<Dest>, Cow<'p, str>)> {
        if let Some((origin, tail)) = split_http(path) {
            let tail = tail.split('#').next().unwrap_or("");
            let target: Cow<str> = match tail.as_bytes().first() {
                None => Cow::Borrowed("/"),
                Some(b'?') => Cow::Owned(format!("/{tail}")),
                Some(_) => Cow::Borrowed(tail),
            };
            let mut others = self.others.borrow_mut();
            if let Some((_, d)) = others.iter().find(|(a, _)| a.eq_ignore_ascii_case(origin)) {
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
            others.push((origin.into(), dest.clone()));
            return Ok((dest, target));
        }
        // A path from the root has no scheme (and this is the usual case:
        // no substring search per request).
        if !path.starts_with('/') && has_scheme(path) {
            // Other schemes: the URL parser's own message.
            return Err(match Target::parse(path) {
                Err(e) => err(e.to_string()),
                Ok(_) => err(format!("unsupported URL '{path}'")),
            });
        }
        let Some(main) = &self.main else {
            return Err(err(format!(
                "relative path '{path}' needs a host: set host on the user class or pass \
                 --host, or use an absolute http:// or https:// URL"
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
        if self.builtin_headers.replace(false) {
            t.raw_set("Accept-Encoding", super::client_build::ACCEPT_ENCODING)?;
        }
        *self.headers.borrow_mut() = Some(t.clone());
        Ok(t)
    }
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

/// The HTTP methods as Lua functions: each checks that its caller may be
/// suspended, parks the request's future with the thread's driver
/// ([`park_request`]) and yields until it is done (see `park`), so no
/// per-call future object is created on the Lua side.
fn request_wrappers(
    lua: &Lua,
    parking: Rc<super::park::Parking>,
) -> mlua::Result<Vec<(String, Function)>> {
    let make: Function = lua
        .load(
            r#"local park, take, isyieldable, yield, PENDING = ...
               local error = error
               return function(method, label)
                 local function cannot()
                   error(label .. " cannot run here: it suspends its caller, which must be "
                     .. "a user's task, hook or event listener (not the script's top level, "
                     .. "a metamethod or a callback from C)", 3)
                 end
                 if method then
                   return function(self, path, a, b)
                     if not isyieldable() then cannot() end
                     park(self, method, path, a, b)
                     yield(PENDING)
                     return take()
                   end
                 end
                 return function(self, m, path, a, b)
                   if not isyieldable() then cannot() end
                   park(self, m, path, a, b)
                   yield(PENDING)
                   return take()
                 end
               end"#,
        )
        .set_name("=locusta.client")
        .call((
            lua.create_function(park_request)?,
            lua.create_function(move |_, ()| super::park::take(&parking))?,
            lua.globals()
                .get::<Table>("coroutine")?
                .get::<Function>("isyieldable")?,
            lua.globals()
                .get::<Table>("coroutine")?
                .get::<Function>("yield")?,
            super::park::marker(),
        ))?;
    let mut out = Vec::new();
    for (i, method) in Method::ALL.into_iter().enumerate() {
        let name = method.as_str().to_ascii_lowercase();
        let f = make.call((i, format!("client:{name}")))?;
        out.push((name, f));
    }
    out.push((
        "request".to_string(),
        make.call((Value::Nil, "client:request"))?,
    ));
    Ok(out)
}

/// `client:<method>(path, [opts], [callback])` up to its suspension: the
/// request's future parked with the driver of the calling thread.
/// `method` is an index into [`Method::ALL`] or, for `client:request`, the
/// script's method string.
fn park_request(
    lua: &Lua,
    (this, method, path, a, b): (UserDataRef<Client>, Value, Value, Value, Value),
) -> mlua::Result<()> {
    let method = match method {
        Value::Integer(i) => *usize::try_from(i)
            .ok()
            .and_then(|i| Method::ALL.get(i))
            .ok_or_else(|| err(format!("no HTTP method with index {i}")))?,
        other => method_of(&other)?,
    };
    if this.shared.ctx.nested.get() > 0 {
        let what = format!("client:{}", method.as_str().to_ascii_lowercase());
        return Err(crate::script::runtime::nested_error(&what));
    }
    let parking = this.shared.parking.clone();
    // A kill interrupts the request (the user's on_stop runs next).
    let call = kill_point(lua, request(lua.clone(), this, method, path, a, b));
    super::park::park(
        &parking,
        Box::pin(async move { call.await.map(Value::UserData) }),
    )
}

/// The client type for this state: its fields and methods, and the HTTP
/// methods as the Lua wrappers `wrappers` made (see [`request_wrappers`]).
fn register(lua: &Lua, wrappers: Vec<(String, Function)>) -> mlua::Result<()> {
    lua.register_userdata_type::<Client>(|reg| {
        add_fields(reg);
        for (name, f) in wrappers {
            reg.add_field(name, f);
        }
        add_methods(reg);
    })
}

fn add_fields<F: UserDataFields<Client>>(fields: &mut F) {
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

fn add_methods<M: UserDataMethods<Client>>(methods: &mut M) {
    methods.add_async_method(
        "websocket",
        |lua, this: UserDataRef<Client>, (path, opts): (Value, Option<Table>)| {
            let call = kill_point(&lua.clone(), super::websocket::open(lua, this, path, opts));
            Box::pin(call)
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
                c.builtin_headers.set(false);
                *c.headers.borrow_mut() = Some(t);
                Ok(())
            }
            ("headers", Value::Nil) => {
                c.builtin_headers.set(false);
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
