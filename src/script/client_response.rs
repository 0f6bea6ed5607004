//! The response object handed to Lua (helper of `client`).
//!
//! Built once per request from the client's reusable buffers: the header
//! section (lowercased names), the request path (for `r.url`) and the body
//! (as on the wire) are copied into one allocation; the Lua-side views
//! (`r.headers` table, `r.body` string — decoded by its `Content-Encoding`
//! then, see `client_decode` —, `r.history`) are created only when the
//! script reads them, so a task that only looks at `r.status` pays for
//! none of it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use mlua::{Lua, MetaMethod, Table, UserData, UserDataFields, UserDataMethods, Value};

use crate::http::{HttpError, Method};
use crate::stats::Failure;

/// Header section as collected by the sink: per header
/// `[name_len u32 LE][value_len u32 LE][lowercased name][value]`.
pub(crate) fn push_header(buf: &mut Vec<u8>, name: &str, value: &[u8]) {
    buf.extend_from_slice(&(name.len() as u32).to_le_bytes());
    buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
    let at = buf.len();
    buf.extend_from_slice(name.as_bytes());
    buf[at..].make_ascii_lowercase();
    buf.extend_from_slice(value);
}

/// Iterate a header section written by [`push_header`].
pub(crate) fn headers(mut buf: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 8 {
            return None;
        }
        let n = u32::from_le_bytes(buf[..4].try_into().ok()?) as usize;
        let v = u32::from_le_bytes(buf[4..8].try_into().ok()?) as usize;
        let rest = &buf[8..];
        if rest.len() < n + v {
            return None;
        }
        let (name, value) = (&rest[..n], &rest[n..n + v]);
        buf = &rest[n + v..];
        Some((name, value))
    })
}

/// Response data buffers no longer in use (per shard thread): a response
/// gives its buffer back when Lua collects it, so the steady state
/// allocates none.
const DATA_POOL_MAX: usize = 512;
/// Buffers above this are freed, not pooled.
const DATA_KEEP_CAPACITY: usize = 8 * 1024;

thread_local! {
    static DATA_POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

impl Drop for Response {
    fn drop(&mut self) {
        let mut data = std::mem::take(&mut self.data);
        if data.capacity() == 0 || data.capacity() > DATA_KEEP_CAPACITY {
            return;
        }
        data.clear();
        let _ = DATA_POOL.try_with(|p| {
            let mut pool = p.borrow_mut();
            if pool.len() < DATA_POOL_MAX {
                pool.push(data);
            }
        });
    }
}

/// A redirect followed on the way to a response: its status and URL.
pub(crate) type Hop = (u16, Box<str>);

/// What the script decided inside a `catch_response` callback.
#[derive(Debug, Default)]
pub(crate) enum Mark {
    #[default]
    None,
    Success,
    Failure(Box<str>),
}

pub struct Response {
    pub(crate) method: Method,
    /// 0 when no response arrived.
    pub(crate) status: u16,
    pub(crate) error: Option<HttpError>,
    pub(crate) elapsed_us: u64,
    pub(crate) body_len: u64,
    /// headers | path | body; from [`DATA_POOL`], given back on drop.
    pub(crate) data: Vec<u8>,
    pub(crate) path_at: usize,
    pub(crate) body_at: usize,
    /// `http://host[:port]` of the request (the path is in `data`).
    pub(crate) url_prefix: Rc<str>,
    pub(crate) mark: RefCell<Mark>,
    pub(crate) recorded: Cell<bool>,
    /// `Some(limit)`: the body passed `--max-body-size` (a failure that
    /// `r:success()` cannot undo, like a transport error).
    pub(crate) too_large: Option<usize>,
    /// A redirect chain that ended without a final response (`too many
    /// redirects (10)`, `invalid redirect Location '…'`): a failure like
    /// a transport error.
    pub(crate) fault: Option<Box<str>>,
    /// The redirects followed to get here: status and URL of each.
    pub(crate) history: Option<Box<[Hop]>>,
    /// `--max-body-size`, which bounds the decoded body too.
    pub(crate) max_body: usize,
    headers_cache: RefCell<Option<Table>>,
    body_cache: RefCell<Option<mlua::LuaString>>,
}

impl Response {
    /// Bytes this response holds outside Lua's heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.data.len()
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        method: Method,
        status: u16,
        error: Option<HttpError>,
        elapsed_us: u64,
        body_len: u64,
        heads: &[u8],
        path: &str,
        body: &[u8],
        url_prefix: Rc<str>,
    ) -> Response {
        let len = heads.len() + path.len() + body.len();
        let mut data = DATA_POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default();
        data.reserve_exact(len);
        data.extend_from_slice(heads);
        data.extend_from_slice(path.as_bytes());
        data.extend_from_slice(body);
        Response {
            method,
            status,
            error,
            elapsed_us,
            body_len,
            data,
            path_at: heads.len(),
            body_at: heads.len() + path.len(),
            url_prefix,
            mark: RefCell::new(Mark::None),
            recorded: Cell::new(false),
            too_large: None,
            fault: None,
            history: None,
            max_body: usize::MAX,
            headers_cache: RefCell::new(None),
            body_cache: RefCell::new(None),
        }
    }

    pub(crate) fn body(&self) -> &[u8] {
        &self.data[self.body_at..]
    }

    fn path(&self) -> &str {
        std::str::from_utf8(&self.data[self.path_at..self.body_at]).unwrap_or("")
    }

    /// How the request is (or will be) recorded: `None` is a success.
    pub(crate) fn failure(&self) -> Option<Failure> {
        if let Some(e) = self.error {
            return Some(Failure::Http(e));
        }
        if let Some(f) = &self.fault {
            return Some(Failure::Message(f.clone()));
        }
        if let Some(limit) = self.too_large {
            return Some(Failure::Message(
                format!(
                    "body larger than {}",
                    crate::script::limits::format_size(limit)
                )
                .into(),
            ));
        }
        match &*self.mark.borrow() {
            Mark::Failure(msg) => Some(Failure::Message(msg.clone())),
            Mark::Success => None,
            Mark::None if self.status >= 400 => Some(Failure::Status(self.status)),
            Mark::None => None,
        }
    }

    fn ok(&self) -> bool {
        self.error.is_none()
            && self.too_large.is_none()
            && self.fault.is_none()
            && (200..400).contains(&self.status)
            && !matches!(*self.mark.borrow(), Mark::Failure(_))
    }

    fn headers_table(&self, lua: &Lua) -> mlua::Result<Table> {
        if let Some(t) = &*self.headers_cache.borrow() {
            return Ok(t.clone());
        }
        let heads = &self.data[..self.path_at];
        let t = lua.create_table_with_capacity(0, headers(heads).count())?;
        for (name, value) in headers(heads) {
            let name = lua.create_string(name)?;
            // Repeated headers are joined with ", " (as Python's requests does).
            let joined = match t.raw_get::<Option<mlua::LuaString>>(&name)? {
                Some(prev) => {
                    let mut v = prev.as_bytes().to_vec();
                    v.extend_from_slice(b", ");
                    v.extend_from_slice(value);
                    lua.create_string(v)?
                }
                None => lua.create_string(value)?,
            };
            t.raw_set(name, joined)?;
        }
        t.set_metatable(Some(super::client::headers_metatable(lua)?))?;
        *self.headers_cache.borrow_mut() = Some(t.clone());
        Ok(t)
    }

    fn body_string(&self, lua: &Lua) -> mlua::Result<mlua::LuaString> {
        if let Some(s) = &*self.body_cache.borrow() {
            return Ok(s.clone());
        }
        let encoding = headers(&self.data[..self.path_at])
            .find(|(n, _)| *n == b"content-encoding")
            .map(|(_, v)| v);
        let decoded = match encoding {
            None => None,
            Some(enc) => super::client_decode::decode(enc, self.body(), self.max_body)
                .map_err(mlua::Error::runtime)?,
        };
        let s = lua.create_string(decoded.as_deref().unwrap_or(self.body()))?;
        *self.body_cache.borrow_mut() = Some(s.clone());
        Ok(s)
    }

    /// `r.history`: a list of `{ status =, status_code =, url = }`, oldest
    /// first (Locust gives response objects; these are their main fields).
    fn history_table(&self, lua: &Lua) -> mlua::Result<Table> {
        let hops = self.history.as_deref().unwrap_or(&[]);
        let t = lua.create_table_with_capacity(hops.len(), 0)?;
        for (status, url) in hops {
            let h = lua.create_table_with_capacity(0, 3)?;
            h.raw_set("status", *status)?;
            h.raw_set("status_code", *status)?;
            h.raw_set("url", &**url)?;
            t.raw_push(h)?;
        }
        Ok(t)
    }

    /// `r:raise_for_status()`'s error, as requests words it
    /// (`404 Client Error: Not Found for url: …`); a transport error or an
    /// over-limit body raises too (requests would have raised earlier).
    fn status_error(&self) -> Option<String> {
        let url = format!("{}{}", self.url_prefix, self.path());
        if self.error.is_some() || self.too_large.is_some() || self.fault.is_some() {
            let why = self.failure().map(|f| f.to_string()).unwrap_or_default();
            return Some(format!("{why} for url: {url}"));
        }
        let kind = match self.status {
            400..=499 => "Client",
            500..=599 => "Server",
            _ => return None,
        };
        // "HTTP 404 Not Found" -> "Not Found" (the one reason table).
        let text = Failure::Status(self.status).to_string();
        let reason = text
            .strip_prefix(&format!("HTTP {}", self.status))
            .unwrap_or("")
            .trim();
        Some(format!(
            "{} {kind} Error: {reason} for url: {url}",
            self.status
        ))
    }

    fn check_not_recorded(&self, what: &str) -> mlua::Result<()> {
        if self.recorded.get() {
            return Err(mlua::Error::runtime(format!(
                "r:{what}() called after the request was recorded: pass \
                 catch_response = true and call it inside the request's callback, \
                 e.g. client:get(\"/x\", {{ catch_response = true }}, function(r) r:{what}(...) end)"
            )));
        }
        Ok(())
    }
}

impl UserData for Response {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("status", |_, r| Ok(r.status));
        fields.add_field_method_get("status_code", |_, r| Ok(r.status));
        fields.add_field_method_get("ok", |_, r| Ok(r.ok()));
        fields.add_field_method_get("headers", |lua, r| r.headers_table(lua));
        fields.add_field_method_get("body", |lua, r| r.body_string(lua));
        fields.add_field_method_get("text", |lua, r| r.body_string(lua));
        fields.add_field_method_get("elapsed_ms", |_, r| Ok(r.elapsed_us as f64 / 1000.0));
        fields.add_field_method_get("error", |_, r| Ok(r.failure().map(|f| f.to_string())));
        fields.add_field_method_get("url", |_, r| Ok(format!("{}{}", r.url_prefix, r.path())));
        fields.add_field_method_get("history", |lua, r| r.history_table(lua));
        fields.add_field_method_get("request_type", |_, r| Ok(r.method.as_str()));
        // Bytes of body received (Locust's `response_length`).
        fields.add_field_method_get("content_length", |_, r| Ok(r.body_len));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("json", |lua, r, ()| {
            let body = r.body_string(lua)?;
            let body = body.as_bytes();
            super::json::from_json(lua, &body).map_err(|e| {
                let mut start: String = String::from_utf8_lossy(&body[..body.len().min(40)])
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect();
                if body.len() > 40 {
                    start.push('…');
                }
                mlua::Error::runtime(format!(
                    "r:json() on the response of {} {}: {} (body starts: '{start}')",
                    r.method,
                    r.path(),
                    strip_runtime(&e)
                ))
            })
        });
        methods.add_method("raise_for_status", |_, r, ()| match r.status_error() {
            Some(msg) => Err(mlua::Error::runtime(msg)),
            None => Ok(()),
        });
        methods.add_method("success", |_, r, ()| {
            r.check_not_recorded("success")?;
            *r.mark.borrow_mut() = Mark::Success;
            Ok(())
        });
        methods.add_method("failure", |_, r, msg: Value| {
            r.check_not_recorded("failure")?;
            let msg: Box<str> = match msg {
                Value::Nil => "marked as failure".into(),
                Value::String(s) => s.to_string_lossy().into(),
                other => other.to_string()?.into(),
            };
            *r.mark.borrow_mut() = Mark::Failure(msg);
            Ok(())
        });
        methods.add_meta_method(MetaMethod::ToString, |_, r, ()| {
            Ok(match r.error {
                Some(e) => format!("<Response [{e}] {} {}>", r.method, r.path()),
                None => format!("<Response [{}] {} {}>", r.status, r.method, r.path()),
            })
        });
    }
}

/// The message of a runtime error, without mlua's "runtime error: " prefix.
fn strip_runtime(e: &mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(m) => m.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_section_round_trips() {
        let mut b = Vec::new();
        push_header(&mut b, "Content-Type", b"text/plain");
        push_header(&mut b, "X", b"");
        let got: Vec<_> = headers(&b).collect();
        assert_eq!(
            got,
            vec![
                (&b"content-type"[..], &b"text/plain"[..]),
                (&b"x"[..], &b""[..])
            ]
        );
        assert_eq!(headers(&b[..5]).count(), 0);
    }
}
