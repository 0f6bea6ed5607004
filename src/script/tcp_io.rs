//! The socket under a script's TCP connection or WebSocket: an
//! [`http::Stream`](crate::http::Stream) (plain or TLS, dialled by
//! `http::Connection::open_stream`, so DNS, `--source-ip`, connect timeouts
//! and TLS are the HTTP client's), a receive buffer, and deadlines.
//!
//! It owns: reading more bytes into the buffer and writing all of a buffer
//! before a deadline (cancelling the op on timeout and waiting for it, as
//! `http::conn` does, so no op outlives the call), the [`Conn`] a Lua
//! userdata holds (the I/O state is taken out for the length of one call:
//! a second call at the same time is an error, not a `RefCell` panic),
//! and closing the sockets a user left open when it stops
//! ([`close_user_sockets`]). It does not own what the bytes mean (`tcp`
//! for lines/counts/delimiters, `websocket` for frames).
//!
//! Bounds: the buffer grows only while a caller waits for more of one
//! unit (a line, a frame), and callers check it against their limit
//! before each read.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::{Rc, Weak};
use std::task::Poll;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{CancelableAsyncReadRent, CancelableAsyncWriteRentExt, Canceller};
use monoio::time::Instant;

use crate::http::{ClientConfig, Connection, Endpoint, HttpError, Stream};
use crate::script::limits::format_secs;

/// How much one read asks the kernel for.
const READ_CHUNK: usize = 16 * 1024;
/// A buffer larger than this is freed once empty, not kept.
const KEEP_CAPACITY: usize = 256 * 1024;

/// Why an I/O step failed.
#[derive(Debug, Clone, Copy)]
pub(super) enum IoFail {
    TimedOut(Duration),
    Io(HttpError),
}

impl std::fmt::Display for IoFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IoFail::TimedOut(d) => write!(f, "timed out after {}", format_secs(*d)),
            IoFail::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A connected stream and what was received but not yet consumed
/// (`buf[pos..]`).
pub(super) struct Io {
    stream: Stream,
    buf: Vec<u8>,
    pos: usize,
    /// Reused for every send.
    pub(super) wbuf: Vec<u8>,
}

/// Connect to `endpoint` (TLS when its scheme is https, with `cfg.tls`)
/// within `timeout`.
pub(super) async fn dial(
    endpoint: Endpoint,
    cfg: ClientConfig,
    timeout: Duration,
) -> Result<Io, HttpError> {
    let stream = Connection::to(endpoint, cfg).open_stream(timeout).await?;
    Ok(Io {
        stream,
        buf: Vec::new(),
        pos: 0,
        wbuf: Vec::new(),
    })
}

impl Io {
    /// Received bytes not consumed yet.
    pub(super) fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Mark the first `n` pending bytes as used.
    pub(super) fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            }
        }
    }

    /// Read more bytes into the buffer before `deadline`. `Ok(0)`: the peer
    /// closed its side.
    pub(super) async fn fill(
        &mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<usize, IoFail> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(READ_CHUNK);
        let buf = std::mem::take(&mut self.buf);
        let (len, cap) = (buf.len(), buf.capacity());
        let c = Canceller::new();
        let read = self
            .stream
            .cancelable_read(buf.slice_mut(len..cap), c.handle());
        let ((result, slice), fired) = timed(read, c, deadline).await;
        self.buf = slice.into_inner();
        match result {
            Ok(n) if n > 0 || !fired => Ok(n),
            _ if fired => Err(IoFail::TimedOut(timeout)),
            Err(e) => Err(IoFail::Io(HttpError::from_io(&e))),
            Ok(n) => Ok(n),
        }
    }

    /// Write all of `wbuf` before `deadline`. On an error the stream is in
    /// an unknown state: the caller drops it.
    pub(super) async fn flush(
        &mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), IoFail> {
        let data = std::mem::take(&mut self.wbuf);
        let c = Canceller::new();
        let write = CancelableAsyncWriteRentExt::write_all(&mut self.stream, data, c.handle());
        let ((result, mut data), fired) = timed(write, c, deadline).await;
        data.clear();
        self.wbuf = data;
        match result {
            Ok(_) => Ok(()),
            Err(_) if fired => Err(IoFail::TimedOut(timeout)),
            Err(e) => Err(IoFail::Io(HttpError::from_io(&e))),
        }
    }
}

/// Run `op` (made with `c`'s handle) until it ends; at `deadline` cancel it
/// and still wait for it, so the kernel hands the buffer back. Returns the
/// outcome and whether the deadline fired.
async fn timed<F: Future>(op: F, c: Canceller, deadline: Instant) -> (F::Output, bool) {
    let mut op = pin!(op);
    let mut sleep = pin!(monoio::time::sleep_until(deadline));
    let mut c = Some(c);
    poll_fn(|cx| {
        if let Poll::Ready(r) = op.as_mut().poll(cx) {
            return Poll::Ready((r, c.is_none()));
        }
        if c.is_some() && sleep.as_mut().poll(cx).is_ready() {
            if let Some(c) = c.take() {
                c.cancel();
            }
            if let Poll::Ready(r) = op.as_mut().poll(cx) {
                return Poll::Ready((r, true));
            }
        }
        Poll::Pending
    })
    .await
}

/// The deadline `timeout` from now.
pub(super) fn deadline(timeout: Duration) -> Instant {
    Instant::now() + timeout
}

/// A connection as a Lua userdata holds it.
pub(super) struct Conn {
    /// `None` while a call uses it, or once closed (`closed` says which).
    io: RefCell<Option<Box<Io>>>,
    /// Why it is closed (`None`: open).
    closed: RefCell<Option<String>>,
    /// `tcp` or `websocket`, for messages.
    pub(super) kind: &'static str,
    /// `host:port` (or the URL), for messages.
    pub(super) peer: Box<str>,
    pub(super) timeout: Cell<Duration>,
}

impl Conn {
    pub(super) fn new(io: Io, kind: &'static str, peer: String, timeout: Duration) -> Rc<Conn> {
        Rc::new(Conn {
            io: RefCell::new(Some(Box::new(io))),
            closed: RefCell::new(None),
            kind,
            peer: peer.into(),
            timeout: Cell::new(timeout),
        })
    }

    /// The I/O state for one call: give it back with [`Lease::put`]; a
    /// lease dropped otherwise (the call failed, or a kill dropped the
    /// call's future mid-way) closes the connection.
    pub(super) fn take(&self, what: &str) -> mlua::Result<Lease<'_>> {
        if let Some(io) = self.io.borrow_mut().take() {
            return Ok(Lease {
                conn: self,
                io: Some(io),
                keep: false,
            });
        }
        Err(self.error(
            what,
            match &*self.closed.borrow() {
                Some(why) => format!("connection is closed ({why})"),
                None => "the connection is in use by another call (one call at a time)".into(),
            },
        ))
    }

    /// Close now (dropping the stream closes the socket), remembering why.
    pub(super) fn close(&self, why: impl Into<String>) {
        self.io.borrow_mut().take();
        let mut closed = self.closed.borrow_mut();
        if closed.is_none() {
            *closed = Some(why.into());
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.borrow().is_some()
    }

    /// `tcp receive from 127.0.0.1:7000: <what went wrong>`.
    pub(super) fn error(&self, what: &str, msg: impl std::fmt::Display) -> mlua::Error {
        mlua::Error::runtime(format!("{} {what} {}: {msg}", self.kind, self.peer))
    }
}

/// A connection's I/O state, lent to one call.
pub(super) struct Lease<'a> {
    conn: &'a Conn,
    /// `None` only inside `drop`.
    io: Option<Box<Io>>,
    keep: bool,
}

impl Lease<'_> {
    /// The call left the stream usable: back into the connection.
    pub(super) fn put(mut self) {
        self.keep = true;
    }
}

impl std::ops::Deref for Lease<'_> {
    type Target = Io;
    fn deref(&self) -> &Io {
        match self.io.as_deref() {
            Some(io) => io,
            None => unreachable!("a lease's I/O state is taken only when it is dropped"),
        }
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Io {
        match self.io.as_deref_mut() {
            Some(io) => io,
            None => unreachable!("a lease's I/O state is taken only when it is dropped"),
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let io = self.io.take();
        if self.keep && !self.conn.is_closed() {
            *self.conn.io.borrow_mut() = io;
        } else {
            self.conn
                .close("a call on it was interrupted (its user was stopped)");
        }
    }
}

/// The sockets each running user opened, by user, so that the ones its
/// script did not close are closed when it stops (per shard).
#[derive(Default)]
struct UserSockets(RefCell<HashMap<usize, Vec<Weak<Conn>>>>);

/// The user running now, as a key (none outside users: events, tests).
fn user_key(lua: &mlua::Lua) -> Option<usize> {
    super::runtime::current_user(lua).map(|u| Rc::as_ptr(&u) as usize)
}

/// Remember `conn` as the current user's.
pub(super) fn register(lua: &mlua::Lua, conn: &Rc<Conn>) {
    let Some(key) = user_key(lua) else { return };
    if lua.app_data_ref::<UserSockets>().is_none() {
        lua.set_app_data(UserSockets::default());
    }
    if let Some(all) = lua.app_data_ref::<UserSockets>() {
        let mut all = all.0.borrow_mut();
        let mine = all.entry(key).or_default();
        if mine.len() >= 16 {
            mine.retain(|w| w.upgrade().is_some_and(|c| !c.is_closed()));
        }
        mine.push(Rc::downgrade(conn));
    }
}

/// Close what the current user left open (it is ending).
pub(crate) fn close_user_sockets(lua: &mlua::Lua) {
    let Some(key) = user_key(lua) else { return };
    let mine = match lua.app_data_ref::<UserSockets>() {
        Some(all) => all.0.borrow_mut().remove(&key),
        None => None,
    };
    for conn in mine.into_iter().flatten().filter_map(|w| w.upgrade()) {
        conn.close("its user stopped");
    }
}
