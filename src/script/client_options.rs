//! Locust's (Python requests') request options beyond the basics, for
//! `client_request`: `params` (query string), `data` (form or raw body),
//! `auth` (Basic) and `cookies` (for one request). Owns
//! parsing them from the options table into [`Extra`] and what each adds
//! to the request (target, headers, body). It does not own the basic
//! options, serializing or sending (`client_request`), nor the jar's rules
//! (`client_cookies`).
//!
//! A request that uses none of these pays one `Option` check: `Extra` is
//! boxed and created only when one of its keys is present.
//!
//! Encoding follows requests: `application/x-www-form-urlencoded` with
//! `quote_plus` (space → `+`, unreserved `A-Za-z0-9_.-~` kept, the rest
//! `%XX`), list values repeat the key (`doseq`). Lua tables have no order:
//! map entries go out sorted by key; a list of `{key, value}` pairs keeps
//! its order (and goes first).

use mlua::{Table, Value};

use super::client::err;
use super::client_cookies::CookieJar;

/// The options of one request that are rare in load tests.
#[derive(Default)]
pub(super) struct Extra {
    /// Encoded `params`, without the leading `?`.
    pub(super) query: Option<String>,
    /// `data` as a table, form-encoded.
    pub(super) form: Option<String>,
    /// `data` as a string: a raw body (moved into the basic `body` option
    /// by [`check`]).
    pub(super) data: Option<mlua::LuaString>,
    /// The `Authorization` header value (`Basic …`).
    pub(super) auth: Option<String>,
    /// Cookies for this request only, over the user's jar.
    pub(super) cookies: Vec<(String, String)>,
}

/// Whether `key` is one of the options this module owns.
pub(super) fn owns(key: &str) -> bool {
    matches!(key, "params" | "data" | "auth" | "cookies")
}

/// Parse one option this module owns into `extra` (created on first use).
pub(super) fn parse(extra: &mut Option<Box<Extra>>, key: &str, v: Value) -> mlua::Result<()> {
    if v.is_nil() {
        return Ok(());
    }
    let x = extra.get_or_insert_with(Box::default);
    match (key, v) {
        ("params", Value::Table(t)) => x.query = Some(form_encode(&t, "params")?),
        ("params", Value::String(s)) => {
            let s = s.to_str().map_err(|_| err("params: not valid UTF-8"))?;
            x.query = Some(s.trim_start_matches('?').to_string());
        }
        ("data", Value::Table(t)) => x.form = Some(form_encode(&t, "data")?),
        ("data", Value::String(s)) => x.data = Some(s),
        ("auth", Value::Table(t)) => x.auth = Some(basic_auth(&t)?),
        ("cookies", Value::Table(t)) => x.cookies = cookie_pairs(&t)?,
        (k, v) => {
            let want = match k {
                "params" => "a table (or an encoded string)",
                "data" => "a table (form) or a string (raw body)",
                "auth" => "a table { user, password }",
                _ => "a table { name = value }",
            };
            return Err(err(format!(
                "request option {k} must be {want}, got a {}",
                v.type_name()
            )));
        }
    }
    Ok(())
}

/// After every option is parsed: `data`, `body` and `json` are three ways
/// to give the body, at most one per request. A `data` string becomes the
/// raw `body`.
pub(super) fn check(
    extra: &mut Extra,
    body: &mut Option<mlua::LuaString>,
    json: bool,
) -> mlua::Result<()> {
    let data = extra.data.is_some() || extra.form.is_some();
    if data && (body.is_some() || json) {
        return Err(err(format!(
            "request options data and {} exclude each other",
            if json { "json" } else { "body" }
        )));
    }
    if let Some(s) = extra.data.take() {
        *body = Some(s);
    }
    Ok(())
}

/// Append `query` to a request target, before any fragment (dropped: it
/// never goes on the wire).
pub(super) fn add_query(target: &str, query: &str) -> String {
    let target = target.split('#').next().unwrap_or("");
    if query.is_empty() {
        return target.to_string();
    }
    let sep = match target.as_bytes().last() {
        _ if !target.contains('?') => "?",
        Some(b'?' | b'&') => "",
        _ => "&",
    };
    format!("{target}{sep}{query}")
}

/// The stats name of a request with `params` and no `name`: the path as
/// written plus the query, as Locust's `path_url`.
pub(super) fn name_with_query(
    lua: &mlua::Lua,
    path: &mlua::LuaString,
    x: &Extra,
) -> mlua::Result<Option<mlua::LuaString>> {
    let Some(q) = x.query.as_deref() else {
        return Ok(None);
    };
    let path = path.to_string_lossy();
    lua.create_string(add_query(&path, q)).map(Some)
}

/// The `Cookie` header value: the jar's cookies (those not overridden for
/// this request), then this request's, as requests merges them.
pub(super) fn write_cookies(jar: &CookieJar, extra: &[(String, String)], out: &mut String) {
    let mut first = true;
    let jar_items = jar
        .cookies
        .iter()
        .filter(|(n, _)| !extra.iter().any(|(e, _)| e == &**n))
        .map(|(n, v)| (&**n, &**v));
    for (n, v) in jar_items.chain(extra.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
        if !first {
            out.push_str("; ");
        }
        first = false;
        out.push_str(n);
        out.push('=');
        out.push_str(v);
    }
}

/// A scalar option value as text (`what` names it in errors).
fn scalar(v: &Value, what: &str) -> mlua::Result<String> {
    match v {
        Value::String(s) => s
            .to_str()
            .map(|s| s.to_string())
            .map_err(|_| err(format!("{what}: not valid UTF-8"))),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Number(n) => Ok(v.to_string().unwrap_or_else(|_| n.to_string())),
        Value::Boolean(b) => Ok(b.to_string()),
        other => Err(err(format!(
            "{what} must be a string, number or boolean, got a {}",
            other.type_name()
        ))),
    }
}

/// Every (key, value) of a params / data table, in output order.
fn form_pairs(t: &Table, what: &str) -> mlua::Result<Vec<(String, String)>> {
    let mut listed = Vec::new();
    let mut mapped = Vec::new();
    let n = t.raw_len();
    for i in 1..=n {
        let item: Value = t.raw_get(i)?;
        let Value::Table(pair) = item else {
            return Err(err(format!(
                "{what}: item {i} must be a {{key, value}} pair, got a {}",
                item.type_name()
            )));
        };
        let k = scalar(&pair.raw_get(1)?, &format!("{what}: item {i}'s key"))?;
        let v = scalar(&pair.raw_get(2)?, &format!("{what}.{k}"))?;
        listed.push((k, v));
    }
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let key = match &k {
            Value::Integer(i) if *i >= 1 && (*i as usize) <= n => continue,
            Value::String(_) => scalar(&k, &format!("{what}: a key"))?,
            other => {
                return Err(err(format!(
                    "{what}: keys must be strings, got a {}",
                    other.type_name()
                )))
            }
        };
        match &v {
            // A list value repeats the key (requests' doseq).
            Value::Table(list) => {
                for item in list.sequence_values::<Value>() {
                    let item = scalar(&item?, &format!("{what}.{key}"))?;
                    mapped.push((key.clone(), item));
                }
            }
            v => mapped.push((key.clone(), scalar(v, &format!("{what}.{key}"))?)),
        }
    }
    // Stable: several values of one key keep their list order.
    mapped.sort_by(|a, b| a.0.cmp(&b.0));
    listed.extend(mapped);
    Ok(listed)
}

fn form_encode(t: &Table, what: &str) -> mlua::Result<String> {
    let mut out = String::new();
    for (i, (k, v)) in form_pairs(t, what)?.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        quote_plus(k, &mut out);
        out.push('=');
        quote_plus(v, &mut out);
    }
    Ok(out)
}

/// Python's `urllib.parse.quote_plus`.
pub(super) fn quote_plus(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
}

/// `auth = { user, password }` → `Basic base64(user:password)`.
fn basic_auth(t: &Table) -> mlua::Result<String> {
    let user: Value = t.raw_get(1)?;
    let pass: Value = t.raw_get(2)?;
    if user.is_nil() || pass.is_nil() {
        return Err(err(
            "request option auth must be { user, password } (two strings), as in auth = { \"bob\", \"secret\" }",
        ));
    }
    let creds = format!(
        "{}:{}",
        scalar(&user, "auth: the user")?,
        scalar(&pass, "auth: the password")?
    );
    let mut out = String::from("Basic ");
    base64(creds.as_bytes(), &mut out);
    Ok(out)
}

/// Standard base64 with padding (RFC 4648), as Basic auth wants.
pub(super) fn base64(data: &[u8], out: &mut String) {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

/// `cookies = { name = value }`: names and values that would break the
/// `Cookie` header (`;`, `=` in names, CR, LF, NUL) are refused.
fn cookie_pairs(t: &Table) -> mlua::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let Value::String(_) = &k else {
            return Err(err(format!(
                "request option cookies: names must be strings, got a {}",
                k.type_name()
            )));
        };
        let name = scalar(&k, "cookies: a name")?;
        let value = scalar(&v, &format!("cookies.{name}"))?;
        let bad = |s: &str, extra: &[u8]| {
            s.bytes()
                .any(|b| matches!(b, b';' | b'\r' | b'\n' | 0) || extra.contains(&b))
        };
        if name.is_empty() || bad(&name, b"= \t") || bad(&value, b"") {
            return Err(err(format!(
                "request option cookies: {name:?}={value:?} would break the Cookie header \
                 (names must be non-empty, without '=', ';', spaces; values without ';', CR, LF, NUL)"
            )));
        }
        out.push((name, value));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut s = String::new();
            base64(i.as_bytes(), &mut s);
            assert_eq!(s, o, "{i}");
        }
    }

    #[test]
    fn quote_plus_like_python() {
        let mut s = String::new();
        quote_plus("a b&c=d/é~_.-", &mut s);
        assert_eq!(s, "a+b%26c%3Dd%2F%C3%A9~_.-");
    }

    #[test]
    fn query_is_appended() {
        assert_eq!(add_query("/a", "x=1"), "/a?x=1");
        assert_eq!(add_query("/a?y=2", "x=1"), "/a?y=2&x=1");
        assert_eq!(add_query("/a?", "x=1"), "/a?x=1");
        assert_eq!(add_query("/a#f", "x=1"), "/a?x=1");
        assert_eq!(add_query("/a", ""), "/a");
    }
}
