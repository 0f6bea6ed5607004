//! Redirect rules, pure (no I/O): given a response's status, the request's
//! method, its `Location` and the URL it was sent to, where the next hop
//! goes and with which method, and whether it keeps the body.
//!
//! It owns which statuses redirect (301, 302, 303, 307, 308), how the method
//! changes (Locust's client is `requests`: 303 → GET unless HEAD, 301/302 →
//! GET after POST as browsers and requests do, 307/308 keep the method),
//! whether the body follows (only on 307/308, as requests), and resolving a
//! `Location` against the current URL (absolute, `//host/p`, `/p`, `p`,
//! `?q`, with `.`/`..` segments removed, the fragment dropped). It does not
//! own counting hops (callers count, stopping at [`MAX_REDIRECTS`] with
//! [`RedirectError::TooMany`]), connections, cookies or headers.
//!
//! A 3xx without a `Location` is not a redirect: it is the response (as
//! requests does). A `Location` that is not a usable http(s) URL is an
//! error naming it, never a panic.

use super::url::split_authority;
use super::{Method, Target};

/// Hops followed before giving up (requests' and so Locust's default).
pub const MAX_REDIRECTS: u32 = 10;

/// The request to send next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    pub method: Method,
    /// Absolute `scheme://authority/path?query`, path at least `/`.
    pub url: String,
    /// Whether the body (and its Content-Type) is sent again: 307 and 308
    /// only, as requests does.
    pub keep_body: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    #[error("too many redirects ({0})")]
    TooMany(u32),
    #[error("invalid redirect Location '{0}'")]
    InvalidLocation(String),
}

/// Whether `status` is one of the redirects followed.
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// The next hop after a response, or `None` when the response is final
/// (not a redirect status, or no `Location`). `base` is the absolute URL
/// the response came from.
pub fn next_hop(
    status: u16,
    method: Method,
    location: Option<&str>,
    base: &str,
) -> Result<Option<Hop>, RedirectError> {
    if !is_redirect(status) {
        return Ok(None);
    }
    let Some(location) = location else {
        return Ok(None);
    };
    let invalid = || RedirectError::InvalidLocation(location.to_string());
    let url = resolve(location, base).ok_or_else(invalid)?;
    let method = match status {
        303 if method != Method::Head => Method::Get,
        301 | 302 if method == Method::Post => Method::Get,
        _ => method,
    };
    Ok(Some(Hop {
        method,
        url,
        keep_body: matches!(status, 307 | 308),
    }))
}

/// `target` as an absolute URL, the `base` for [`next_hop`].
pub fn target_url(target: &Target) -> String {
    format!(
        "{}://{}{}",
        target.scheme.as_str(),
        target.host_header,
        target.path
    )
}

/// `scheme://host:port`, host lowercased, port explicit: two URLs with the
/// same origin share a connection (and Authorization is kept between them).
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, authority, _) = split_absolute(url)?;
    let default = if scheme == "https" { 443 } else { 80 };
    let (host, port) = split_authority(authority).ok()?;
    Some(format!(
        "{scheme}://{}:{}",
        host.to_ascii_lowercase(),
        port.unwrap_or(default)
    ))
}

/// `location` resolved against the absolute `base` (RFC 3986 §5.2), or
/// `None` when either is not a usable http(s) URL.
fn resolve(location: &str, base: &str) -> Option<String> {
    let loc = clean(location.trim())?;
    let loc = loc.split('#').next().unwrap_or("");
    let (b_scheme, b_auth, b_tail) = split_absolute(base)?;
    if loc.is_empty() {
        return Some(format!("{b_scheme}://{b_auth}{}", path_of(b_tail)));
    }
    if let Some(rest) = loc.strip_prefix("//") {
        return absolute(&format!("{b_scheme}://{rest}"));
    }
    if has_scheme(loc) {
        return absolute(loc);
    }
    let b_path = b_tail.split('?').next().unwrap_or("");
    let b_path = if b_path.is_empty() { "/" } else { b_path };
    let tail = if loc.starts_with('?') {
        format!("{b_path}{loc}")
    } else if loc.starts_with('/') {
        loc.to_string()
    } else {
        let dir = &b_path[..b_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{loc}")
    };
    Some(format!("{b_scheme}://{b_auth}{}", path_of(&tail)))
}

/// An absolute http(s) URL, normalized: lowercase scheme, `/` path if
/// none, dot segments removed.
fn absolute(url: &str) -> Option<String> {
    let (scheme, authority, tail) = split_absolute(url)?;
    Some(format!("{scheme}://{authority}{}", path_of(tail)))
}

/// `scheme://authority tail` → (lowercase scheme, authority, tail), only
/// for http and https with a valid authority (host, optional port, no
/// userinfo).
fn split_absolute(url: &str) -> Option<(&'static str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = if scheme.eq_ignore_ascii_case("http") {
        "http"
    } else if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else {
        return None;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return None;
    }
    split_authority(authority).ok()?;
    Some((scheme, authority, tail.split('#').next().unwrap_or("")))
}

/// Whether `s` starts with `scheme:` (RFC 3986: a letter, then letters,
/// digits, `+ - .`).
fn has_scheme(s: &str) -> bool {
    let Some(i) = s.find(':') else {
        return false;
    };
    let scheme = &s[..i];
    scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// A path and query with dot segments removed, `/` if empty.
fn path_of(tail: &str) -> String {
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." | ".." => {
                if *seg == ".." {
                    out.pop();
                }
                // A trailing `.`/`..` names a directory.
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut s = String::with_capacity(tail.len() + 1);
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() {
        s.push('/');
    }
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    s
}

/// Non-ASCII bytes and spaces percent-encoded (as requests' `requote_uri`
/// and browsers do); `None` if another control character is in it, which
/// would break the request line.
fn clean(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    use std::fmt::Write;
    if s.bytes().any(|b| b < b' ' || b == 0x7f) {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii() && b != b' ') {
        return Some(s.into());
    }
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii() && b != b' ' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Some(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://h:8080/a/b/c?x=1";

    fn hop(status: u16, method: Method, loc: &str) -> Hop {
        next_hop(status, method, Some(loc), BASE).unwrap().unwrap()
    }

    #[test]
    fn resolves_every_location_form() {
        for (loc, want) in [
            ("https://other:8443/p?q=1#f", "https://other:8443/p?q=1"),
            ("HTTP://Other", "http://Other/"),
            ("//other/p", "http://other/p"),
            ("/p?q", "http://h:8080/p?q"),
            ("d", "http://h:8080/a/b/d"),
            ("d/e?y=2", "http://h:8080/a/b/d/e?y=2"),
            ("../d", "http://h:8080/a/d"),
            ("./", "http://h:8080/a/b/"),
            ("..", "http://h:8080/a/"),
            ("../../../../x", "http://h:8080/x"),
            ("?y=2", "http://h:8080/a/b/c?y=2"),
            ("#frag", "http://h:8080/a/b/c?x=1"),
            ("/a b/ü", "http://h:8080/a%20b/%C3%BC"),
            ("http://[::1]:9/z", "http://[::1]:9/z"),
        ] {
            assert_eq!(hop(302, Method::Get, loc).url, want, "{loc}");
        }
    }

    #[test]
    fn methods_and_bodies_per_status() {
        use Method::*;
        for (status, method, want, keep) in [
            (301, Post, Get, false),
            (302, Post, Get, false),
            (303, Post, Get, false),
            (303, Put, Get, false),
            (303, Head, Head, false),
            (301, Get, Get, false),
            (302, Put, Put, false),
            (307, Post, Post, true),
            (308, Post, Post, true),
            (307, Delete, Delete, true),
            (308, Head, Head, true),
        ] {
            let h = hop(status, method, "/n");
            assert_eq!((h.method, h.keep_body), (want, keep), "{status} {method}");
        }
    }

    #[test]
    fn not_a_redirect() {
        for status in [200, 300, 304, 305, 306, 309, 400] {
            assert_eq!(next_hop(status, Method::Get, Some("/x"), BASE), Ok(None));
        }
        // A 3xx without Location is handed back as is (requests does).
        assert_eq!(next_hop(302, Method::Get, None, BASE), Ok(None));
    }

    #[test]
    fn invalid_locations_are_named() {
        for loc in [
            "ftp://h/x",
            "javascript:alert(1)",
            "http://",
            "http:///p",
            "http://h:0/",
            "http://h:99999/",
            "http://h:x/",
            "http://u:p@h/",
            "//",
            "/a\r\nX-Injected: 1",
            "/nul\0",
        ] {
            let e = next_hop(301, Method::Get, Some(loc), BASE).unwrap_err();
            assert_eq!(e, RedirectError::InvalidLocation(loc.to_string()));
            assert!(e.to_string().starts_with("invalid redirect Location '"));
        }
        assert_eq!(
            RedirectError::TooMany(MAX_REDIRECTS).to_string(),
            "too many redirects (10)"
        );
    }

    #[test]
    fn origins_compare_case_and_default_port_insensitively() {
        assert_eq!(origin_of("HTTP://H/x").unwrap(), "http://h:80");
        assert_eq!(origin_of("http://h:80/y").unwrap(), "http://h:80");
        assert_eq!(origin_of("https://h").unwrap(), "https://h:443");
        assert_eq!(origin_of("http://[::1]:9/").unwrap(), "http://[::1]:9");
        assert_eq!(origin_of("nope"), None);
    }

    #[test]
    fn target_url_is_a_base() {
        let t = Target::parse("http://127.0.0.1:8080/a?b").unwrap();
        assert_eq!(target_url(&t), "http://127.0.0.1:8080/a?b");
        let h = next_hop(307, Method::Get, Some("c"), &target_url(&t))
            .unwrap()
            .unwrap();
        assert_eq!(h.url, "http://127.0.0.1:8080/c");
    }
}
