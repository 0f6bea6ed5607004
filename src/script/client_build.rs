//! Building one request from Lua (helper of `client_request`): the options
//! table ([`Opts`]), the header checks, and serializing a request — option
//! headers, the client's default headers (and its built-in
//! `Accept-Encoding`), JSON, form or raw body, the cookie jar — into the
//! connection's own buffer for the origin it goes to ([`prepare`]). It is
//! called once per hop of a redirect chain, with what that hop drops (the
//! body, `Content-Type`, `Authorization`). It does not own sending,
//! recording or following redirects (`client_request`, `client_redirect`),
//! nor the rarer options' encodings (`client_options`).

use std::rc::Rc;
use std::time::Duration;

use mlua::{Table, Value};

use super::client::{err, Client, Dest};
use super::client_options::{self, Extra};
use super::client_sink::Sink;
use crate::http::{write_request, Connection, Method};

/// What scripted users send unless the script changes `client.headers`
/// (Locust's requests sends `gzip, deflate` too; `br` is not decoded).
pub(super) const ACCEPT_ENCODING: &str = "gzip, deflate";

/// How one hop of a request differs from what the options say.
#[derive(Clone, Copy, Debug)]
pub(super) struct HopRules {
    /// The first request: `params` are added to its URL (a redirect's
    /// Location replaces the whole URL).
    pub(super) first: bool,
    /// Send the body and its `Content-Type` (false after a 301/302/303).
    pub(super) body: bool,
    /// Send `Authorization` (false once the chain left the first origin,
    /// as requests does).
    pub(super) auth: bool,
}

impl HopRules {
    pub(super) const FIRST: HopRules = HopRules {
        first: true,
        body: true,
        auth: true,
    };
}

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
pub(super) struct Opts {
    pub(super) name: Option<mlua::LuaString>,
    pub(super) headers: Option<Table>,
    pub(super) json: Option<Value>,
    /// `json` serialized, once (a 307/308 sends it again).
    pub(super) json_body: Option<Vec<u8>>,
    pub(super) body: Option<mlua::LuaString>,
    pub(super) timeout: Option<Duration>,
    pub(super) catch_response: bool,
    /// `allow_redirects`: `None` is the default (follow, except HEAD as
    /// requests' `head()`).
    pub(super) allow_redirects: Option<bool>,
    /// params, data, auth, cookies (`client_options`).
    pub(super) extra: Option<Box<Extra>>,
}

impl Opts {
    pub(super) fn parse(t: &Table) -> mlua::Result<Opts> {
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
                ("allow_redirects", Value::Boolean(b)) => o.allow_redirects = Some(b),
                ("allow_redirects", Value::Nil) => {}
                (
                    k @ ("name" | "headers" | "body" | "timeout" | "catch_response"
                    | "allow_redirects"),
                    v,
                ) => {
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
/// formatted), skipping names among the first `skip_upto` already there
/// and those `rules` drop on this hop.
fn add_headers(sc: &mut Scratch, t: &Table, skip_upto: usize, rules: HopRules) -> mlua::Result<()> {
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
        if (!rules.auth && name.eq_ignore_ascii_case("authorization"))
            || (!rules.body && name.eq_ignore_ascii_case("content-type"))
        {
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

/// Resolve the destination and serialize the request into its connection's
/// own buffer. Returns the destination, its connection (taken out while the
/// request uses it) and a sink holding the request target (for `r.url`).
/// `path` is the script's path or URL on the first hop, the absolute
/// redirect URL after.
pub(super) fn prepare(
    client: &Client,
    method: Method,
    path: &str,
    opts: &Opts,
    rules: HopRules,
) -> mlua::Result<(Rc<Dest>, Box<Connection>, Sink)> {
    let shared = &*client.shared;
    let (dest, mut target) = client.resolve(path)?;
    let extra = opts.extra.as_deref();
    if let Some(q) = extra
        .and_then(|x| x.query.as_deref())
        .filter(|_| rules.first)
    {
        target = client_options::add_query(&target, q).into();
    }

    let mut conn = dest.conn.borrow_mut().take().unwrap_or_else(|| {
        Box::new(Connection::to(
            dest.endpoint.clone(),
            shared.ctx.cfg.clone(),
        ))
    });
    let mut sink = shared.sinks.borrow_mut().pop().unwrap_or_default();
    // The pooled request buffer (`Sink::request`), not the connection's:
    // an idle connection keeps none.
    let mut buf = std::mem::take(&mut sink.request);
    buf.clear();
    let built = (|| -> mlua::Result<()> {
        let mut sc = shared.scratch.borrow_mut();
        sc.clear();
        // requests applies auth after the headers: it wins over both.
        if let Some(a) = extra.and_then(|x| x.auth.as_deref()).filter(|_| rules.auth) {
            sc.push("Authorization", a);
        }
        let auth = sc.spans.len();
        if let Some(h) = &opts.headers {
            add_headers(&mut sc, h, auth, rules)?;
        }
        let given = sc.spans.len();
        if let Some(d) = &*client.headers.borrow() {
            if !d.is_empty() {
                add_headers(&mut sc, d, given, rules)?;
            }
        } else if client.builtin_headers.get() && !sc.has("accept-encoding", given) {
            sc.push("Accept-Encoding", ACCEPT_ENCODING);
        }
        let all = sc.spans.len();
        let json_body = opts.json_body.as_deref().filter(|_| rules.body);
        if json_body.is_some() && !sc.has("content-type", all) {
            sc.push("Content-Type", "application/json");
        }
        let form = extra.and_then(|x| x.form.as_deref()).filter(|_| rules.body);
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
        let body: &[u8] = match (json_body, &opts.body) {
            _ if !rules.body => b"",
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
        sink.request = buf;
        dest.conn.borrow_mut().get_or_insert(conn);
        shared.sinks.borrow_mut().push(sink);
        return Err(e);
    }
    // Back into the connection: the buffer moves into the write op and
    // back without copying.
    *conn.request_buf() = buf;

    sink.heads.clear();
    sink.body.clear();
    sink.path.clear();
    sink.limit = shared.ctx.limits.max_body;
    sink.over.hit.set(false);
    sink.path.push_str(&target);
    Ok((dest, conn, sink))
}
