//! `self.client:websocket(path, opts)`: a WebSocket (RFC 6455) to the
//! user's host, for scripts.
//!
//! The upgrade request is built by the HTTP client's own request builder
//! (`client_build::prepare`: the user's host, with `http` → `ws` and
//! `https` → `wss`, its default headers, its cookies, `opts.headers`,
//! `params`, `auth`) and sent on a stream of its own dialled like HTTP
//! (`tcp_io`); `Set-Cookie`s of the 101 answer go into the user's jar.
//! The socket then speaks frames (`websocket_frame`): `:send(text)`,
//! `:send_binary(bytes)` (or `:send(x, "binary")`), `:receive([timeout])`
//! → message, `"text"`|`"binary"`, `:close([code, reason])`. Pings are
//! answered with pongs while receiving; a close from the server is
//! answered and ends the socket (the receive raises `closed by the
//! server (1000 bye)`); our close waits for the server's close frame
//! within the timeout.
//!
//! Every failure is a Lua error naming the call, the URL and what was
//! wrong (`websocket receive from ws://127.0.0.1:7000/chat: protocol
//! error: masked frame from the server ...`); a protocol error closes the
//! socket. A message or frame over `max_message` (default
//! `--max-body-size`) is an error before it is buffered. It does not own
//! timing (scripts use `locusta.measure`), nor HTTP or framing details.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use mlua::{Lua, MetaMethod, Table, UserData, UserDataMethods, UserDataRef, Value};

use super::client::Client;
use super::client_build::{prepare, HopRules, Opts};
use super::client_cookies::now_unix;
use super::client_request::recycle;
use super::runtime::kill_point;
use super::tcp::{check_nested, seconds, shared};
use super::tcp_io::{self, deadline, Conn, Io, IoFail};
use super::websocket_frame::{self as frame, Assembler, FrameError};
use crate::http::Method;

/// The most an upgrade answer's head may be.
const MAX_HEAD: usize = 64 * 1024;
/// How long `close` and a reply to the server's close may take at most.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

pub struct WebSocket {
    conn: Rc<Conn>,
    max: usize,
    /// Fragments of a message not complete yet (kept across a timeout).
    asm: RefCell<Assembler>,
    close_sent: Cell<bool>,
}

/// Why a receive ended without a message.
enum WsFail {
    Io(IoFail),
    Frame(FrameError),
    /// The server's close frame: code and reason.
    Closed(u16, String),
    /// The stream ended; bytes of an unfinished frame there were.
    Eof(usize),
}

impl std::fmt::Display for WsFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WsFail::Io(e) => write!(f, "{e}"),
            WsFail::Frame(e) => write!(f, "protocol error: {e}"),
            WsFail::Closed(code, r) if r.is_empty() => write!(f, "closed by the server ({code})"),
            WsFail::Closed(code, r) => write!(f, "closed by the server ({code} {r})"),
            WsFail::Eof(0) => write!(f, "connection closed by peer without a close frame"),
            WsFail::Eof(n) => write!(f, "connection closed by peer mid-frame after {n} bytes"),
        }
    }
}

/// `client:websocket(path, [opts])`.
pub(super) async fn open(
    lua: Lua,
    client: UserDataRef<Client>,
    path: Value,
    opts: Option<Table>,
) -> mlua::Result<WebSocket> {
    let shared = client.shared.clone();
    check_nested(&shared, "client:websocket")?;
    let usage = "client:websocket(path, [opts])";
    let path = match &path {
        Value::String(s) => s.to_str()?.to_string(),
        other => {
            return Err(mlua::Error::runtime(format!(
                "{usage}: path must be a string, got a {}",
                other.type_name()
            )))
        }
    };
    // ws:// and wss:// URLs are http:// and https:// to the builder.
    let http_path = match path.split_once("://") {
        Some((s, rest)) if s.eq_ignore_ascii_case("ws") => format!("http://{rest}"),
        Some((s, rest)) if s.eq_ignore_ascii_case("wss") => format!("https://{rest}"),
        _ => path.clone(),
    };
    let mut max = shared.ctx.limits.max_body;
    let mut timeout = shared.ctx.cfg.request_timeout;
    let key = frame::new_key();
    let headers = lua.create_table()?;
    let mut build = Opts::default();
    if let Some(t) = &opts {
        let rest = lua.create_table()?;
        for pair in t.pairs::<Value, Value>() {
            let (k, v) = pair?;
            let name = match &k {
                Value::String(s) => Some(s.to_string_lossy()),
                _ => None,
            };
            match name.as_deref() {
                Some("max_message") => {
                    max = match v {
                        Value::Integer(n) if n > 0 => n as usize,
                        other => {
                            return Err(mlua::Error::runtime(format!(
                                "{usage}: max_message must be a number of bytes > 0, got {}",
                                crate::script::runtime::describe(&other)
                            )))
                        }
                    }
                }
                Some("timeout") => {
                    timeout = seconds(&v, "client:websocket: timeout")?;
                }
                Some("headers") => match v {
                    Value::Table(h) => {
                        for pair in h.pairs::<Value, Value>() {
                            let (k, v) = pair?;
                            headers.raw_set(k, v)?;
                        }
                    }
                    other => {
                        return Err(mlua::Error::runtime(format!(
                            "{usage}: headers must be a table, got a {}",
                            other.type_name()
                        )))
                    }
                },
                _ => rest.raw_set(k, v)?,
            }
        }
        build = Opts::parse(&rest)?;
    }
    headers.raw_set("Upgrade", "websocket")?;
    headers.raw_set("Connection", "Upgrade")?;
    headers.raw_set("Sec-WebSocket-Key", key.as_str())?;
    headers.raw_set("Sec-WebSocket-Version", "13")?;
    build.headers = Some(headers);
    let (dest, mut http, sink) =
        prepare(&client, Method::Get, &http_path, &build, HopRules::FIRST)?;
    let request = http.take_request();
    dest.conn.borrow_mut().get_or_insert(http);
    let url = format!("{}{}", dest.url_prefix.replacen("http", "ws", 1), sink.path);
    recycle(&shared, sink);
    let fail = |m: &dyn std::fmt::Display| {
        mlua::Error::runtime(format!("websocket connect to {url}: {m}"))
    };

    let mut io = tcp_io::dial(dest.endpoint.clone(), shared.ctx.cfg.clone(), timeout)
        .await
        .map_err(|e| fail(&e))?;
    let at = deadline(timeout);
    io.wbuf = request;
    io.flush(at, timeout).await.map_err(|e| fail(&e))?;
    let head_len = loop {
        if let Some(i) = find(io.pending(), b"\r\n\r\n") {
            break i + 4;
        }
        if io.pending().len() > MAX_HEAD {
            return Err(fail(&format!(
                "the upgrade answer's head is over {MAX_HEAD} bytes"
            )));
        }
        match io.fill(at, timeout).await {
            Ok(0) => {
                return Err(fail(&format!(
                    "connection closed by peer after {} bytes of the upgrade answer",
                    io.pending().len()
                )))
            }
            Ok(_) => {}
            Err(e) => return Err(fail(&e)),
        }
    };
    check_upgrade(&client, &io.pending()[..head_len], &key).map_err(|m| fail(&m))?;
    io.consume(head_len);
    let conn = Conn::new(io, "websocket", url, timeout);
    tcp_io::register(&lua, &conn);
    Ok(WebSocket {
        conn,
        max,
        asm: RefCell::new(Assembler::default()),
        close_sent: Cell::new(false),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The upgrade answer must be a 101 with the right accept value; its
/// cookies go into the user's jar.
fn check_upgrade(client: &Client, head: &[u8], key: &str) -> Result<(), String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    match r.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("malformed upgrade answer".into()),
        Err(e) => return Err(format!("malformed upgrade answer ({e})")),
    }
    let status = r.code.unwrap_or(0);
    if status != 101 {
        return Err(format!(
            "the server answered {status} {} (expected 101 Switching Protocols)",
            r.reason.unwrap_or("")
        ));
    }
    let now = now_unix();
    let (mut upgrade, mut accept) = (false, None);
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade |= h.value.eq_ignore_ascii_case(b"websocket");
        } else if h.name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("set-cookie") {
            client.cookies.borrow_mut().apply_set_cookie(h.value, now);
        }
    }
    if !upgrade {
        return Err("the 101 answer has no 'Upgrade: websocket'".into());
    }
    match accept {
        Some(a) if a == frame::accept_key(key).as_bytes() => Ok(()),
        Some(_) => Err("Sec-WebSocket-Accept does not match the key sent".into()),
        None => Err("the 101 answer has no Sec-WebSocket-Accept".into()),
    }
}

/// Read frames until a whole message is in (answering pings).
async fn next_message(
    io: &mut Io,
    asm: &mut Assembler,
    max: usize,
    timeout: Duration,
) -> Result<(u8, Vec<u8>), WsFail> {
    let at = deadline(timeout);
    loop {
        let h = frame::parse_header(io.pending(), max).map_err(WsFail::Frame)?;
        let Some(h) = h.filter(|h| io.pending().len() >= h.frame_len()) else {
            if io.fill(at, timeout).await.map_err(WsFail::Io)? == 0 {
                return Err(WsFail::Eof(io.pending().len()));
            }
            continue;
        };
        let payload = &io.pending()[h.header_len..h.frame_len()];
        match h.opcode {
            frame::PING => {
                let p = payload.to_vec();
                io.consume(h.frame_len());
                io.wbuf.clear();
                frame::write_frame(&mut io.wbuf, frame::PONG, &p, frame::new_mask());
                io.flush(at, timeout).await.map_err(WsFail::Io)?;
            }
            frame::PONG => io.consume(h.frame_len()),
            frame::CLOSE => {
                let (code, reason) = frame::close_payload(payload).map_err(WsFail::Frame)?;
                io.consume(h.frame_len());
                return Err(WsFail::Closed(code, reason));
            }
            _ => {
                let done = asm.push(&h, payload, max).map_err(WsFail::Frame)?;
                io.consume(h.frame_len());
                if let Some(msg) = done {
                    return Ok(msg);
                }
            }
        }
    }
}

/// Send one close frame (best effort, bounded).
async fn send_close(io: &mut Io, code: u16, reason: &str, timeout: Duration) -> Result<(), IoFail> {
    let wait = timeout.min(CLOSE_WAIT);
    io.wbuf.clear();
    frame::write_frame(
        &mut io.wbuf,
        frame::CLOSE,
        &frame::close_body(code, reason),
        frame::new_mask(),
    );
    io.flush(deadline(wait), wait).await
}

impl WebSocket {
    async fn send(&self, lua: &Lua, data: Value, opcode: u8) -> mlua::Result<()> {
        check_nested(&*shared(lua)?, "websocket:send")?;
        let conn = &self.conn;
        let bytes = match &data {
            Value::String(s) => s.as_bytes().to_vec(),
            other => {
                return Err(conn.error(
                    "send to",
                    format!("expected a string, got a {}", other.type_name()),
                ))
            }
        };
        if opcode == frame::TEXT && std::str::from_utf8(&bytes).is_err() {
            return Err(conn.error(
                "send to",
                "a text message must be valid UTF-8 (send bytes with send_binary)",
            ));
        }
        let mut io = conn.take("send to")?;
        let timeout = conn.timeout.get();
        io.wbuf.clear();
        frame::write_frame(&mut io.wbuf, opcode, &bytes, frame::new_mask());
        match io.flush(deadline(timeout), timeout).await {
            Ok(()) => {
                io.put();
                Ok(())
            }
            Err(e) => {
                conn.close(format!("send failed: {e}"));
                Err(conn.error("send to", e))
            }
        }
    }

    async fn receive(
        &self,
        lua: &Lua,
        timeout: Value,
    ) -> mlua::Result<(mlua::LuaString, &'static str)> {
        let conn = &self.conn;
        let timeout = match timeout {
            Value::Nil => conn.timeout.get(),
            v => seconds(&v, "websocket:receive: timeout")?,
        };
        let mut io = conn.take("receive from")?;
        let mut asm = std::mem::take(&mut *self.asm.borrow_mut());
        let result = next_message(&mut io, &mut asm, self.max, timeout).await;
        *self.asm.borrow_mut() = asm;
        match result {
            Ok((op, msg)) => {
                io.put();
                let kind = if op == frame::TEXT { "text" } else { "binary" };
                Ok((lua.create_string(msg)?, kind))
            }
            Err(e) => {
                match &e {
                    WsFail::Io(IoFail::TimedOut(_)) => io.put(),
                    WsFail::Closed(code, _) => {
                        if !self.close_sent.replace(true) {
                            let _ = send_close(&mut io, *code, "", timeout).await;
                        }
                        conn.close(format!("{e}"));
                    }
                    _ => conn.close(format!("{e}")),
                }
                Err(conn.error("receive from", e))
            }
        }
    }

    /// Our close handshake: send a close frame, read until the server's.
    async fn close(&self, code: Value, reason: Value) -> mlua::Result<()> {
        let conn = &self.conn;
        let code = match code {
            Value::Nil => 1000,
            Value::Integer(c)
                if (0..=u16::MAX as i64).contains(&c) && frame::valid_close_code(c as u16) =>
            {
                c as u16
            }
            other => {
                return Err(conn.error(
                    "close of",
                    format!(
                        "the code must be 1000-1003, 1007-1011 or 3000-4999, got {}",
                        crate::script::runtime::describe(&other)
                    ),
                ))
            }
        };
        let reason = match &reason {
            Value::Nil => String::new(),
            Value::String(s) if s.as_bytes().len() <= 123 => s.to_str()?.to_string(),
            _ => {
                return Err(conn.error(
                    "close of",
                    "the reason must be a string of at most 123 bytes",
                ))
            }
        };
        if conn.is_closed() {
            return Ok(());
        }
        let mut io = conn.take("close of")?;
        let wait = conn.timeout.get().min(CLOSE_WAIT);
        if !self.close_sent.replace(true) && send_close(&mut io, code, &reason, wait).await.is_ok()
        {
            let mut asm = Assembler::default();
            // Data frames still in flight are dropped; the server's close
            // (an error here) or the time limit ends the wait.
            let at = deadline(wait);
            loop {
                let left = at.saturating_duration_since(monoio::time::Instant::now());
                if left.is_zero()
                    || next_message(&mut io, &mut asm, self.max, left)
                        .await
                        .is_err()
                {
                    break;
                }
            }
        }
        conn.close("closed by the script");
        Ok(())
    }
}

impl UserData for WebSocket {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_async_method(
            "send",
            |lua, this: UserDataRef<WebSocket>, (data, kind): (Value, Option<String>)| {
                let call = kill_point(&lua.clone(), async move {
                    let op = match kind.as_deref() {
                        None | Some("text") => frame::TEXT,
                        Some("binary") => frame::BINARY,
                        Some(other) => {
                            return Err(this.conn.error(
                                "send to",
                                format!("unknown message type '{other}' (text, binary)"),
                            ))
                        }
                    };
                    this.send(&lua, data, op).await
                });
                Box::pin(call)
            },
        );
        methods.add_async_method(
            "send_binary",
            |lua, this: UserDataRef<WebSocket>, data: Value| {
                let call = kill_point(&lua.clone(), async move {
                    this.send(&lua, data, frame::BINARY).await
                });
                Box::pin(call)
            },
        );
        methods.add_async_method(
            "receive",
            |lua, this: UserDataRef<WebSocket>, timeout: Value| {
                let call = kill_point(&lua.clone(), async move {
                    check_nested(&*shared(&lua)?, "websocket:receive")?;
                    this.receive(&lua, timeout).await
                });
                Box::pin(call)
            },
        );
        methods.add_async_method(
            "close",
            |lua, this: UserDataRef<WebSocket>, (code, reason): (Value, Value)| {
                let call = kill_point(&lua.clone(), async move { this.close(code, reason).await });
                Box::pin(call)
            },
        );
        methods.add_method("settimeout", |_, this, secs: Value| {
            this.conn
                .timeout
                .set(seconds(&secs, "websocket:settimeout")?);
            Ok(())
        });
        methods.add_method("is_closed", |_, this, ()| Ok(this.conn.is_closed()));
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            Ok(format!("<WebSocket {}>", this.conn.peer))
        });
    }
}
