//! `locusta.tcp`: raw TCP (and TLS) connections for scripts, on the shard's
//! runtime like HTTP.
//!
//! `locusta.tcp.connect(host, port, { timeout = s, tls = true | { ca =,
//! insecure =, server_name = }, max_receive = bytes })` returns a
//! connection with `:send(bytes)`, `:receive(n | "*l" | "*a" | delimiter)`,
//! `:settimeout(s)` and `:close()`. Each call suspends only the calling
//! user's coroutine, is interrupted by a kill (`kill_point`), and is
//! refused inside a coroutine the script created. Every failure is a Lua
//! error naming the call and the peer: `tcp receive from 127.0.0.1:7000:
//! timed out after 2 s`, `... connection closed by peer after 12 bytes`.
//!
//! It owns the Lua surface and the receive patterns. It does not own
//! dialling, TLS or deadlines (`tcp_io`, and through it `http`), nor
//! timing or recording (scripts use `locusta.measure`).
//!
//! Bounds: what one `receive` may collect is `max_receive` (default
//! `--max-body-size`); a line, delimited unit or `*a` longer than that is
//! an error and the connection is closed (its stream is out of step).
//! A connection the script does not close is closed when its user stops.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use mlua::{Lua, MetaMethod, Table, UserData, UserDataMethods, UserDataRef, Value};

use super::client::Shared;
use super::runtime::{kill_point, nested_error};
use super::tcp_io::{self, deadline, Conn, Io, IoFail};
use crate::http::{dns, Endpoint, Scheme, TlsOptions};

/// A TCP connection userdata.
pub struct TcpConn {
    conn: Rc<Conn>,
    /// The most one receive may collect.
    max: usize,
}

/// What `receive` waits for.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Pattern {
    Bytes(usize),
    /// Up to LF; the LF and a CR before it are dropped.
    Line,
    /// Until the peer closes.
    All,
    /// Up to this (non-empty) byte string, which is dropped.
    Delimiter(Vec<u8>),
}

/// Why `receive` ended without its unit.
#[derive(Debug)]
pub(super) enum RecvFail {
    Io(IoFail),
    /// The peer closed first; how many bytes of the unit had come.
    Closed(usize),
    TooLong(usize),
}

impl std::fmt::Display for RecvFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvFail::Io(e) => write!(f, "{e}"),
            RecvFail::Closed(0) => write!(f, "connection closed by peer"),
            RecvFail::Closed(n) => write!(f, "connection closed by peer after {n} bytes"),
            RecvFail::TooLong(max) => write!(
                f,
                "more than {max} bytes without the end of what was asked for \
                 (max_receive); the connection is closed"
            ),
        }
    }
}

/// Install `locusta.tcp` into the `locusta` module table.
pub fn install(lua: &Lua, module: &Table) -> mlua::Result<()> {
    let tcp = lua.create_table()?;
    tcp.set(
        "connect",
        lua.create_async_function(|lua, (host, port, opts): (Value, Value, Option<Table>)| {
            let call = kill_point(&lua.clone(), connect(lua, host, port, opts));
            Box::pin(call)
        })?,
    )?;
    module.set("tcp", tcp)
}

pub(super) fn shared(lua: &Lua) -> mlua::Result<Rc<Shared>> {
    lua.app_data_ref::<Rc<Shared>>()
        .map(|s| s.clone())
        .ok_or_else(|| mlua::Error::runtime("locusta.tcp used before script::client::install"))
}

/// Refuse an async call inside a coroutine the script created.
pub(super) fn check_nested(shared: &Shared, what: &str) -> mlua::Result<()> {
    if shared.ctx.nested.get() > 0 {
        return Err(nested_error(what));
    }
    Ok(())
}

/// Seconds from a Lua number, for `what`.
pub(super) fn seconds(v: &Value, what: &str) -> mlua::Result<Duration> {
    let d = match v {
        Value::Integer(i) if *i > 0 => Some(Duration::from_secs(*i as u64)),
        Value::Number(n) if *n > 0.0 => Duration::try_from_secs_f64(*n).ok(),
        _ => None,
    };
    d.ok_or_else(|| {
        mlua::Error::runtime(format!(
            "{what}: expected a number of seconds > 0, got {}",
            crate::script::runtime::describe(v)
        ))
    })
}

/// What `tls = ...` asks for: `None` for plain TCP.
fn tls_options(v: &Value) -> mlua::Result<Option<(TlsOptions, Option<String>)>> {
    let bad = |m: String| mlua::Error::runtime(format!("locusta.tcp.connect: tls: {m}"));
    match v {
        Value::Nil | Value::Boolean(false) => Ok(None),
        Value::Boolean(true) => Ok(Some((TlsOptions::default(), None))),
        Value::Table(t) => {
            let mut o = TlsOptions::default();
            let mut name = None;
            for pair in t.pairs::<String, Value>() {
                let (k, v) = pair?;
                match (k.as_str(), v) {
                    ("ca", Value::String(s)) => o.ca_cert = Some(s.to_str()?.to_string().into()),
                    ("insecure", Value::Boolean(b)) => o.insecure = b,
                    ("server_name", Value::String(s)) => name = Some(s.to_str()?.to_string()),
                    (k, v) => {
                        return Err(bad(format!(
                            "unknown option or wrong type: {k} = {} (expected ca = path, \
                             insecure = boolean, server_name = string)",
                            v.type_name()
                        )))
                    }
                }
            }
            Ok(Some((o, name)))
        }
        other => Err(bad(format!(
            "expected true or a table, got a {}",
            other.type_name()
        ))),
    }
}

/// Per shard: TLS configs built for `tls = {...}` (files read once), and
/// the flags' config without HTTP's ALPN (`tls = true`).
#[derive(Default)]
struct TlsConfigs(RefCell<Vec<(Option<TlsOptions>, Arc<rustls::ClientConfig>)>>);

fn tls_config(
    lua: &Lua,
    shared: &Shared,
    o: &TlsOptions,
) -> Result<Arc<rustls::ClientConfig>, String> {
    if lua.app_data_ref::<TlsConfigs>().is_none() {
        lua.set_app_data(TlsConfigs::default());
    }
    let cache = lua
        .app_data_ref::<TlsConfigs>()
        .ok_or_else(|| "TLS config cache missing".to_string())?;
    let key = (!o.is_default()).then(|| o.clone());
    if let Some((_, c)) = cache.0.borrow().iter().find(|(k, _)| *k == key) {
        return Ok(c.clone());
    }
    let base = match &key {
        None => shared
            .ctx
            .cfg
            .tls
            .clone()
            .unwrap_or_else(crate::http::tls::default_config),
        Some(o) => o.build().map_err(|e| e.to_string())?,
    };
    // Not HTTP: offer no application protocol.
    let mut config = (*base).clone();
    config.alpn_protocols.clear();
    let config = Arc::new(config);
    let mut cache = cache.0.borrow_mut();
    if cache.len() >= 16 {
        cache.remove(0);
    }
    cache.push((key, config.clone()));
    Ok(config)
}

async fn connect(lua: Lua, host: Value, port: Value, opts: Option<Table>) -> mlua::Result<TcpConn> {
    let shared = shared(&lua)?;
    check_nested(&shared, "locusta.tcp.connect")?;
    let usage = "locusta.tcp.connect(host, port, [opts])";
    let host = match &host {
        Value::String(s) => s.to_str()?.to_string(),
        other => {
            return Err(mlua::Error::runtime(format!(
                "{usage}: host must be a string, got a {}",
                other.type_name()
            )))
        }
    };
    let port = match port {
        Value::Integer(p) if (1..=65535).contains(&p) => p as u16,
        Value::Number(p) if p.fract() == 0.0 && (1.0..=65535.0).contains(&p) => p as u16,
        other => {
            return Err(mlua::Error::runtime(format!(
                "{usage}: port must be an integer 1..65535, got {}",
                crate::script::runtime::describe(&other)
            )))
        }
    };
    let mut timeout = shared.ctx.cfg.request_timeout;
    let mut max = shared.ctx.limits.max_body;
    let mut tls = None;
    if let Some(t) = &opts {
        for pair in t.pairs::<String, Value>() {
            let (k, v) = pair?;
            match k.as_str() {
                "timeout" => timeout = seconds(&v, "locusta.tcp.connect: timeout")?,
                "tls" => tls = tls_options(&v)?,
                "max_receive" => {
                    max = match v {
                        Value::Integer(n) if n > 0 => n as usize,
                        other => {
                            return Err(mlua::Error::runtime(format!(
                                "locusta.tcp.connect: max_receive must be a number of bytes > 0, \
                                 got {}",
                                crate::script::runtime::describe(&other)
                            )))
                        }
                    }
                }
                other => {
                    return Err(mlua::Error::runtime(format!(
                        "locusta.tcp.connect: unknown option '{other}' \
                         (timeout, tls, max_receive)"
                    )))
                }
            }
        }
    }
    let peer = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let fail = |m: String| mlua::Error::runtime(format!("tcp connect to {peer}: {m}"));
    let mut cfg = shared.ctx.cfg.clone();
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    let mut endpoint = Endpoint {
        scheme: Scheme::Http,
        host: ip.into(),
        port,
        addr: ip
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|a| std::net::SocketAddr::new(a, port)),
    };
    if let Some((o, server_name)) = &tls {
        cfg.tls = Some(tls_config(&lua, &shared, o).map_err(fail)?);
        endpoint.scheme = Scheme::Https;
        if let Some(name) = server_name {
            // SNI and verification use `name`; the address is `host`'s.
            if endpoint.addr.is_none() {
                let ip = dns::resolve(&endpoint.host, cfg.dns_ttl, cfg.connect_timeout)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                endpoint.addr = Some(std::net::SocketAddr::new(ip, port));
            }
            endpoint.host = name.as_str().into();
        }
    }
    let io = tcp_io::dial(endpoint, cfg, timeout)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let conn = Conn::new(io, "tcp", peer, timeout);
    tcp_io::register(&lua, &conn);
    Ok(TcpConn { conn, max })
}

/// `receive`'s argument.
fn pattern(v: &Value, max: usize) -> mlua::Result<Pattern> {
    let bad = |m: String| mlua::Error::runtime(format!("tcp:receive: {m}"));
    match v {
        Value::Nil => Ok(Pattern::Line),
        Value::Integer(n) if *n >= 0 => {
            let n = *n as usize;
            if n > max {
                return Err(bad(format!(
                    "{n} bytes is more than max_receive ({max} bytes)"
                )));
            }
            Ok(Pattern::Bytes(n))
        }
        Value::Number(n) if n.fract() == 0.0 && *n >= 0.0 => {
            pattern(&Value::Integer(*n as i64), max)
        }
        Value::String(s) => match &*s.as_bytes() {
            b"*l" | b"*L" => Ok(Pattern::Line),
            b"*a" => Ok(Pattern::All),
            b"" => Err(bad("the delimiter is empty".into())),
            d => Ok(Pattern::Delimiter(d.to_vec())),
        },
        other => Err(bad(format!(
            "expected a byte count, \"*l\", \"*a\" or a delimiter string, got {}",
            crate::script::runtime::describe(other)
        ))),
    }
}

/// Where the unit `pat` ends in `data` (searching from `from`): (bytes of
/// the unit, bytes to consume).
fn find_unit(pat: &Pattern, data: &[u8], from: usize) -> Option<(usize, usize)> {
    match pat {
        Pattern::Bytes(n) => (data.len() >= *n).then_some((*n, *n)),
        Pattern::Line => {
            let i = from + data.get(from..)?.iter().position(|&b| b == b'\n')?;
            let end = if i > 0 && data[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            Some((end, i + 1))
        }
        Pattern::All => None,
        Pattern::Delimiter(d) => {
            let start = from.saturating_sub(d.len() - 1);
            let i = start
                + data
                    .get(start..)?
                    .windows(d.len())
                    .position(|w| w == &d[..])?;
            Some((i, i + d.len()))
        }
    }
}

/// Receive one unit of `pat`, at most `max` bytes of it.
pub(super) async fn receive(
    io: &mut Io,
    pat: &Pattern,
    max: usize,
    timeout: Duration,
) -> Result<Vec<u8>, RecvFail> {
    let at = deadline(timeout);
    let mut scanned = 0;
    loop {
        let data = io.pending();
        if let Some((unit, used)) = find_unit(pat, data, scanned) {
            let out = data[..unit].to_vec();
            io.consume(used);
            return Ok(out);
        }
        // What may still be waiting for the end of the unit.
        let slack = match pat {
            Pattern::Delimiter(d) => d.len(),
            Pattern::Line => 2,
            _ => 0,
        };
        if data.len() > max + slack {
            return Err(RecvFail::TooLong(max));
        }
        scanned = data.len();
        let n = io.fill(at, timeout).await.map_err(RecvFail::Io)?;
        if n == 0 {
            let data = io.pending();
            if *pat == Pattern::All {
                let out = data.to_vec();
                io.consume(out.len());
                return Ok(out);
            }
            return Err(RecvFail::Closed(data.len()));
        }
    }
}

impl UserData for TcpConn {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_async_method("send", |lua, this: UserDataRef<TcpConn>, data: Value| {
            let call = kill_point(&lua.clone(), async move {
                let shared = shared(&lua)?;
                check_nested(&shared, "tcp:send")?;
                let bytes = match &data {
                    Value::String(s) => s.as_bytes().to_vec(),
                    Value::Integer(_) | Value::Number(_) => data.to_string()?.into_bytes(),
                    other => {
                        return Err(this.conn.error(
                            "send to",
                            format!("expected a string, got a {}", other.type_name()),
                        ))
                    }
                };
                let conn = &this.conn;
                let mut io = conn.take("send to")?;
                let timeout = conn.timeout.get();
                io.wbuf.clear();
                io.wbuf.extend_from_slice(&bytes);
                match io.flush(deadline(timeout), timeout).await {
                    Ok(()) => {
                        io.put();
                        Ok(bytes.len())
                    }
                    Err(e) => {
                        conn.close(format!("send failed: {e}"));
                        Err(conn.error("send to", e))
                    }
                }
            });
            Box::pin(call)
        });
        methods.add_async_method(
            "receive",
            |lua, this: UserDataRef<TcpConn>, (what, timeout): (Value, Value)| {
                let call = kill_point(&lua.clone(), async move {
                    let shared = shared(&lua)?;
                    check_nested(&shared, "tcp:receive")?;
                    let pat = pattern(&what, this.max)?;
                    let timeout = match timeout {
                        Value::Nil => this.conn.timeout.get(),
                        v => seconds(&v, "tcp:receive: timeout")?,
                    };
                    let conn = &this.conn;
                    let mut io = conn.take("receive from")?;
                    match receive(&mut io, &pat, this.max, timeout).await {
                        Ok(data) => {
                            io.put();
                            lua.create_string(data)
                        }
                        Err(e) => {
                            match e {
                                // The stream is still in step: data stays buffered.
                                RecvFail::Io(IoFail::TimedOut(_)) => io.put(),
                                RecvFail::Closed(_) => conn.close("closed by peer"),
                                _ => conn.close(format!("receive failed: {e}")),
                            }
                            Err(conn.error("receive from", e))
                        }
                    }
                });
                Box::pin(call)
            },
        );
        methods.add_method("settimeout", |_, this, secs: Value| {
            this.conn.timeout.set(seconds(&secs, "tcp:settimeout")?);
            Ok(())
        });
        methods.add_method("close", |_, this, ()| {
            this.conn.close("closed by the script");
            Ok(())
        });
        methods.add_method("is_closed", |_, this, ()| Ok(this.conn.is_closed()));
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            Ok(format!("<TcpConnection {}>", this.conn.peer))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_end_where_they_should() {
        assert_eq!(find_unit(&Pattern::Line, b"ab\r\ncd", 0), Some((2, 4)));
        assert_eq!(find_unit(&Pattern::Line, b"ab\ncd", 0), Some((2, 3)));
        assert_eq!(find_unit(&Pattern::Line, b"abcd", 0), None);
        assert_eq!(find_unit(&Pattern::Bytes(3), b"abcd", 0), Some((3, 3)));
        assert_eq!(find_unit(&Pattern::Bytes(5), b"abcd", 0), None);
        let d = Pattern::Delimiter(b"||".to_vec());
        assert_eq!(find_unit(&d, b"ab||cd", 0), Some((2, 4)));
        // The delimiter split across two reads is still found.
        assert_eq!(find_unit(&d, b"ab||", 3), Some((2, 4)));
        assert_eq!(find_unit(&d, b"ab|", 0), None);
        assert_eq!(find_unit(&Pattern::All, b"ab", 0), None);
    }
}
