//! `http[s]://host[:port][/path][?query]` → a [`Target`].
//!
//! Parsing only: no I/O, so it may run anywhere, including on a shard for a
//! script's absolute URL. IP literals (`127.0.0.1`, `[::1]`) become an
//! address here; host names are resolved when a connection is made
//! (`http::dns`, through a per-shard cache), never per request. Only what
//! the client needs is supported: no userinfo, the fragment is dropped.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// What a [`Connection`](super::Connection) needs to reach a server: where
/// to connect and, for TLS, which name to ask for and verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// The host as written, without IPv6 brackets: the TLS server name
    /// (SNI and verification) and the name to resolve.
    pub host: Arc<str>,
    pub port: u16,
    /// `Some` when the host is an IP literal; `None` for a name, which is
    /// resolved at connect time.
    pub addr: Option<SocketAddr>,
}

impl Endpoint {
    /// Plain HTTP to an address (tests, the demo).
    pub fn plain(addr: SocketAddr) -> Endpoint {
        Endpoint {
            scheme: Scheme::Http,
            host: addr.ip().to_string().into(),
            port: addr.port(),
            addr: Some(addr),
        }
    }
}

/// `host:port`, an IPv6 host in brackets: for logs.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Where requests go: the socket address, and what to put on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    /// `Some` for an IP literal; a name is resolved at connect time.
    pub addr: Option<SocketAddr>,
    /// The host as written, without IPv6 brackets (SNI, DNS).
    pub host: Arc<str>,
    pub port: u16,
    /// The `Host:` header value: the host as written (IPv6 in brackets), with
    /// `:port` only when the port is not the scheme's default.
    pub host_header: String,
    /// Request target: path and query, `/` when the URL had none.
    pub path: String,
    /// `scheme://host:port` with the host lowercased and the port always
    /// explicit, so `http://X` and `http://x:80/` compare equal.
    pub origin: String,
}

/// Why a URL was refused. Every message names the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("invalid URL '{0}': missing http:// or https:// (for example http://localhost:8080/)")]
    MissingScheme(String),
    #[error("invalid URL '{0}': only http:// and https:// are supported")]
    UnsupportedScheme(String),
    #[error("invalid URL '{0}': empty host")]
    EmptyHost(String),
    #[error("invalid URL '{0}': bad port (expected 1-65535)")]
    BadPort(String),
    #[error("invalid URL '{0}': user:password@ in URLs is not supported")]
    Userinfo(String),
    #[error("invalid URL '{0}': whitespace or control character in the path")]
    BadPath(String),
    #[error("invalid URL '{0}': not an IPv6 address between [ and ]")]
    BadIpv6(String),
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, UrlError> {
        let input = url.trim();
        let (scheme, rest) = match (
            strip_prefix_ci(input, "http://"),
            strip_prefix_ci(input, "https://"),
        ) {
            (Some(rest), _) => (Scheme::Http, rest),
            (None, Some(rest)) => (Scheme::Https, rest),
            (None, None) if input.contains("://") => {
                return Err(UrlError::UnsupportedScheme(input.to_string()))
            }
            (None, None) => return Err(UrlError::MissingScheme(input.to_string())),
        };

        // Authority ends at the first '/', '?' or '#'.
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err(UrlError::Userinfo(input.to_string()));
        }
        let (host, port) = split_host_port(authority, scheme.default_port(), input)?;

        let tail = tail.split('#').next().unwrap_or("");
        let path = match tail.as_bytes().first() {
            None => "/".to_string(),
            Some(b'?') => format!("/{tail}"),
            Some(_) => tail.to_string(),
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(UrlError::BadPath(input.to_string()));
        }

        let addr = literal(host, port, input)?;
        let host_header = if port == scheme.default_port() {
            host.to_string()
        } else {
            format!("{host}:{port}")
        };
        let origin = format!("{}://{}:{port}", scheme.as_str(), host.to_ascii_lowercase());
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Target {
            scheme,
            addr,
            host: bare.into(),
            port,
            host_header,
            path,
            origin,
        })
    }

    /// Where a connection for this target goes.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            scheme: self.scheme,
            host: self.host.clone(),
            port: self.port,
            addr: self.addr,
        }
    }

    /// The same server with another request target (`/`-prefixed if needed).
    pub fn with_path(&self, path: &str) -> Target {
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        Target {
            path,
            ..self.clone()
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Why an authority (`host[:port]`) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BadAuthority {
    EmptyHost,
    BadPort,
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` → (host as written, the port
/// if given: 1-65535, digits only). The one authority splitter: URLs here,
/// redirect Locations in `redirect`.
pub(super) fn split_authority(authority: &str) -> Result<(&str, Option<u16>), BadAuthority> {
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']').ok_or(BadAuthority::EmptyHost)?;
        let after = &authority[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(BadAuthority::BadPort),
        };
        (&authority[..=close], port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(BadAuthority::EmptyHost);
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(BadAuthority::BadPort),
        },
    };
    Ok((host, port))
}

fn split_host_port<'a>(
    authority: &'a str,
    default_port: u16,
    input: &str,
) -> Result<(&'a str, u16), UrlError> {
    match split_authority(authority) {
        Ok((host, port)) => Ok((host, port.unwrap_or(default_port))),
        Err(BadAuthority::EmptyHost) => Err(UrlError::EmptyHost(input.to_string())),
        Err(BadAuthority::BadPort) => Err(UrlError::BadPort(input.to_string())),
    }
}

/// The address of an IP-literal host; `None` for a name (resolved later).
fn literal(host: &str, port: u16, input: &str) -> Result<Option<SocketAddr>, UrlError> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        return match inner.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => Ok(Some(SocketAddr::new(IpAddr::V6(ip), port))),
            Err(_) => Err(UrlError::BadIpv6(input.to_string())),
        };
    }
    Ok(host
        .parse::<std::net::Ipv4Addr>()
        .ok()
        .map(|ip| SocketAddr::new(IpAddr::V4(ip), port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_with_port_path_and_query() {
        let t = Target::parse("http://127.0.0.1:8080/a/b?x=1#frag").unwrap();
        assert_eq!(t.addr, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(t.host_header, "127.0.0.1:8080");
        assert_eq!(t.path, "/a/b?x=1");
        assert_eq!(t.origin, "http://127.0.0.1:8080");
    }

    #[test]
    fn defaults_port_80_and_root_path() {
        let t = Target::parse("HTTP://127.0.0.1").unwrap();
        assert_eq!(t.port, 80);
        assert_eq!(t.addr, Some("127.0.0.1:80".parse().unwrap()));
        assert_eq!(t.host_header, "127.0.0.1");
        assert_eq!(t.path, "/");
        assert_eq!(t.origin, "http://127.0.0.1:80");
        assert_eq!(Target::parse("http://127.0.0.1?q=1").unwrap().path, "/?q=1");
        assert_eq!(
            Target::parse("http://127.0.0.1:80/").unwrap().host_header,
            "127.0.0.1"
        );
    }

    #[test]
    fn ipv6_literal() {
        let t = Target::parse("http://[::1]:9000/x").unwrap();
        assert_eq!(t.addr, Some("[::1]:9000".parse().unwrap()));
        assert_eq!(t.endpoint().to_string(), "[::1]:9000");
        assert_eq!(t.host_header, "[::1]:9000");
        assert_eq!(t.origin, "http://[::1]:9000");
        assert_eq!(Target::parse("http://[::1]").unwrap().host_header, "[::1]");
    }

    #[test]
    fn names_are_not_resolved_at_parse_time() {
        let t = Target::parse("http://localhost:81/").unwrap();
        assert_eq!(t.addr, None);
        assert_eq!(t.host_header, "localhost:81");
        assert_eq!(t.endpoint().to_string(), "localhost:81");
        // No lookup here: a name that does not resolve still parses (it
        // fails per connect, as `dns: ...`).
        let t = Target::parse("http://no-such-host.invalid/").unwrap();
        assert_eq!(t.addr, None);
        assert_eq!(&*t.host, "no-such-host.invalid");
    }

    #[test]
    fn errors_name_the_input() {
        for (url, needle) in [
            ("localhost:8080", "missing http://"),
            ("ftp://x/", "only http:// and https://"),
            ("http:///path", "empty host"),
            ("http://:80/", "empty host"),
            ("http://h:0/", "bad port"),
            ("http://h:99999/", "bad port"),
            ("http://h:+80/", "bad port"),
            ("http://h:x/", "bad port"),
            ("http://[::1]x/", "bad port"),
            ("http://u:p@h/", "user:password@"),
            ("http://h/a b", "whitespace"),
            ("http://[::zz]/", "not an IPv6 address"),
            ("http://[127.0.0.1]/", "not an IPv6 address"),
        ] {
            let msg = Target::parse(url).unwrap_err().to_string();
            assert!(msg.contains(needle), "{url}: {msg}");
            assert!(msg.contains(url.trim()), "{url}: {msg}");
        }
    }

    #[test]
    fn https_defaults_port_443() {
        let t = Target::parse("HTTPS://Localhost/a").unwrap();
        assert_eq!(t.scheme, Scheme::Https);
        assert_eq!(t.port, 443);
        assert_eq!(t.host_header, "Localhost");
        assert_eq!(&*t.host, "Localhost");
        assert_eq!(t.origin, "https://localhost:443");
        let t = Target::parse("https://[::1]:8443/").unwrap();
        assert_eq!(t.host_header, "[::1]:8443");
        assert_eq!(&*t.host, "::1");
        assert_eq!(t.endpoint().addr, Some("[::1]:8443".parse().unwrap()));
        assert_eq!(
            Target::parse("https://127.0.0.1:80/").unwrap().host_header,
            "127.0.0.1:80"
        );
    }

    #[test]
    fn with_path_keeps_the_server() {
        let t = Target::parse("http://127.0.0.1:8080/a").unwrap();
        let u = t.with_path("b?c");
        assert_eq!(u.path, "/b?c");
        assert_eq!(u.addr, t.addr);
        assert_eq!(u.host_header, t.host_header);
    }
}
