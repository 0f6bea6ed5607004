//! One keep-alive HTTP/1.1 connection on monoio (io_uring or epoll).
//!
//! The hot path is `send`: connect if needed, write the request, read into
//! a 64 KiB buffer lent from a per-thread pool and feed the [`ResponseParser`] until the response
//! is complete. Nothing is allocated per request on the success path.
//!
//! Timeouts: reads and writes (the TLS handshake's too) are plain ops; when
//! the deadline passes we `shutdown(SHUT_RDWR)` the socket and still wait
//! for the op in flight, which a shut-down socket ends promptly on both
//! drivers (EOF, EPIPE). The kernel hands the buffer back and no op outlives
//! the request — the path on which monoio 0.2.4 has had fd-close bugs
//! (dropping an op the kernel still owns) is never taken for reads and
//! writes. A timed-out connection is dropped anyway, so nothing is lost.
//! monoio's cancelable ops did this before at ~27 % of raw mode's user-space
//! instructions (a SipHash `HashSet` entered and left per op). Connect is
//! the one op monoio cannot cancel: on a connect timeout its future is
//! dropped and the driver closes that socket when the kernel completes it.
//!
//! Reuse (RFC 9110 §9.2.2, as curl and hyper do): before a request goes out
//! on a kept-alive connection, a non-blocking `MSG_PEEK` checks that the
//! peer has neither closed it nor sent bytes nobody asked for (a body longer
//! than its framing, an unsolicited response); such a connection is closed,
//! never read as the next response. A request that then fails on the reused
//! connection before any byte of its response is retried once on a fresh
//! one, and only when its method is idempotent: a POST the server may have
//! processed is a failure, never a silent second send.
//!
//! `https://` endpoints speak TLS over the same calls: the handshake runs
//! right after the TCP connect, inside the same connect timeout and request
//! deadline, so its time is part of the first request's time on a
//! connection (see [`super::stream`] and [`super::tls`]).
//!
//! Needs a runtime built with `enable_timer()`.

use std::future::{poll_fn, Future};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio::time::Sleep;

use super::reader::{ReadCursor, Step};
use super::stream::{handshake, Stream};
use super::tls::TlsKind;
use super::{dial, Endpoint, HttpError, Method, Millis, ResponseParser, ResponseSink, Scheme};

/// The read buffer's size, and so the largest response head we accept.
const READ_BUF: usize = 64 * 1024;

/// Per-run client settings, cloned into each shard and connection (not
/// `Copy`: settings that own data, such as TLS, are shared by `Arc`).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Bound on establishing the connection: the name lookup (apart), then
    /// TCP connect + TLS handshake.
    pub connect_timeout: Duration,
    /// Bound on the whole request: connect + write + read of the response.
    pub request_timeout: Duration,
    /// How long a shard reuses a name's addresses (`--dns-ttl`; 0: look up
    /// on every connect).
    pub dns_ttl: Duration,
    /// `--source-ip`: local addresses new connections bind to, in turn
    /// (empty: the kernel chooses).
    pub source_ips: Arc<[IpAddr]>,
    /// The TLS flags' config, shared by every connection (and so is its
    /// session store); `None`: system roots, built on first https use.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ClientConfig {
    /// Locust's FastHttpUser defaults: 60 s each.
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            dns_ttl: Duration::from_secs(30),
            source_ips: Arc::from([]),
            tls: None,
        }
    }
}

/// What a successful exchange reports (the body went to the sink).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseInfo {
    pub status: u16,
    pub body_len: u64,
}

/// A lazily connected, keep-alive connection to one address.
pub struct Connection {
    pub(super) endpoint: Endpoint,
    pub(super) cfg: ClientConfig,
    /// `Some` while the connection may carry the next request.
    pub(super) stream: Option<Stream>,
    /// The connection's own request buffer, for `request_buf`/`send_buffered`.
    write_buf: Option<Vec<u8>>,
    pub(super) parser: ResponseParser,
    /// The request deadline, kept from request to request and reset: a
    /// later deadline only updates the timer entry in place (no timer-wheel
    /// work), and boxed it keeps 640 bytes out of every request's future.
    /// Between requests it may fire once, waking its last task spuriously.
    pub(super) deadline: Option<Pin<Box<Sleep>>>,
    connects: u64,
}

impl Connection {
    /// Plain HTTP to `addr`. No I/O here: the first `send` connects.
    pub fn new(addr: SocketAddr, cfg: ClientConfig) -> Self {
        Connection::to(Endpoint::plain(addr), cfg)
    }

    /// A connection to `endpoint`. No I/O here: the first `send` connects.
    pub fn to(endpoint: Endpoint, cfg: ClientConfig) -> Self {
        Connection {
            endpoint,
            cfg,
            stream: None,
            write_buf: None,
            parser: ResponseParser::new(),
            deadline: None,
            connects: 0,
        }
    }

    /// Send a complete serialized request and read one whole response into
    /// `sink`. `request` is cloned once per call: pass an `Rc<Vec<u8>>` (or a
    /// `&'static [u8]`) to share one buffer without copying, or use
    /// [`request_buf`](Self::request_buf) + [`send_buffered`](Self::send_buffered).
    pub async fn send<B: IoBuf + Clone>(
        &mut self,
        request: &B,
        method: Method,
        sink: &mut impl ResponseSink,
    ) -> Result<ResponseInfo, HttpError> {
        self.send_since(Instant::now(), request, method, sink).await
    }

    /// `send`, with the whole-request timeout counted from `started`: a
    /// caller that already read the clock (to time the request) passes it
    /// here and saves a clock read per request.
    pub async fn send_since<B: IoBuf + Clone>(
        &mut self,
        started: Instant,
        request: &B,
        method: Method,
        sink: &mut impl ResponseSink,
    ) -> Result<ResponseInfo, HttpError> {
        let timeout = self.cfg.request_timeout;
        self.send_owned(started, timeout, request.clone(), method, sink)
            .await
            .1
    }

    /// The connection's own request buffer, cleared, to serialize into with
    /// [`write_request`](super::write_request) before `send_buffered`.
    pub fn request_buf(&mut self) -> &mut Vec<u8> {
        let buf = self
            .write_buf
            .get_or_insert_with(|| Vec::with_capacity(4096));
        buf.clear();
        buf
    }

    /// `send` for the request in [`request_buf`](Self::request_buf): the
    /// buffer moves into the write op and back, so nothing is copied.
    pub async fn send_buffered(
        &mut self,
        method: Method,
        sink: &mut impl ResponseSink,
    ) -> Result<ResponseInfo, HttpError> {
        let timeout = self.cfg.request_timeout;
        self.send_buffered_at(Instant::now(), timeout, method, sink)
            .await
    }

    /// `send_buffered` with this request's own whole-request `timeout`,
    /// counted from `started` (scripts may set a timeout per request).
    pub async fn send_buffered_at(
        &mut self,
        started: Instant,
        timeout: Duration,
        method: Method,
        sink: &mut impl ResponseSink,
    ) -> Result<ResponseInfo, HttpError> {
        let buf = self.write_buf.take().unwrap_or_default();
        let (buf, result) = self.send_owned(started, timeout, buf, method, sink).await;
        self.write_buf = Some(buf);
        result
    }

    /// Connect now (TCP, then the TLS handshake for `https`) within the
    /// connect timeout and `timeout`, and hand the stream over: the script's
    /// TCP and WebSocket clients (`script::tcp_io`) dial through here, so
    /// there is one dial, DNS and TLS path.
    pub async fn open_stream(mut self, timeout: Duration) -> Result<Stream, HttpError> {
        let timed_out = HttpError::Timeout(Millis::from_duration(timeout));
        let mut deadline = pin!(monoio::time::sleep(timeout));
        self.connect(deadline.as_mut(), timed_out).await
    }

    /// The request serialized into [`request_buf`](Self::request_buf),
    /// taken out (a WebSocket upgrade is built like any request, then sent
    /// on a stream of its own).
    pub fn take_request(&mut self) -> Vec<u8> {
        self.write_buf.take().unwrap_or_default()
    }

    /// Drop the TCP connection; the next `send` reconnects.
    pub fn close(&mut self) {
        if self.stream.take().is_some() {
            log::debug!("connection to {} closed by the user", self.endpoint);
        }
    }

    /// Where this connection goes.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Whether a kept-alive TCP connection is open.
    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    /// How many connections (TCP connect, and handshake for TLS) this made.
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// The request loop: at most one retry (see the module doc for when).
    async fn send_owned<B: IoBuf>(
        &mut self,
        started: Instant,
        timeout: Duration,
        request: B,
        method: Method,
        sink: &mut impl ResponseSink,
    ) -> (B, Result<ResponseInfo, HttpError>) {
        let timed_out = HttpError::Timeout(Millis::from_duration(timeout));
        let at = monoio::time::Instant::from(started + timeout);
        let mut deadline = match self.deadline.take() {
            Some(mut d) => {
                d.as_mut().reset(at);
                d
            }
            None => Box::pin(monoio::time::sleep_until(at)),
        };
        let (request, result) = self
            .send_loop(deadline.as_mut(), timed_out, request, method, sink)
            .await;
        self.deadline = Some(deadline);
        (request, result)
    }

    /// `send_owned`'s loop, with the deadline armed.
    async fn send_loop<B: IoBuf>(
        &mut self,
        mut deadline: Pin<&mut Sleep>,
        timed_out: HttpError,
        mut request: B,
        method: Method,
        sink: &mut impl ResponseSink,
    ) -> (B, Result<ResponseInfo, HttpError>) {
        let mut retried = false;
        loop {
            let reused = match self.ready(deadline.as_mut(), timed_out).await {
                Ok(reused) => reused,
                Err(e) => return (request, Err(e)),
            };
            let (req, result, got_bytes) = self
                .exchange(request, method, sink, deadline.as_mut(), timed_out)
                .await;
            request = req;
            match result {
                Ok(info) => return (request, Ok(info)),
                Err(e) => {
                    // After any error the stream's state is unknown: drop it.
                    self.stream = None;
                    log::debug!("connection to {} closed: {e}", self.endpoint);
                    if !retried && may_resend(e, reused, got_bytes, method) {
                        retried = true;
                        continue;
                    }
                    return (request, Err(e));
                }
            }
        }
    }

    /// Make the connection ready for the next request: drop a kept-alive
    /// one that is no longer in step (see [`idle_and_open`]), connect if
    /// none is open. True when an open one is reused.
    pub(super) async fn ready(
        &mut self,
        deadline: Pin<&mut Sleep>,
        timed_out: HttpError,
    ) -> Result<bool, HttpError> {
        if self.stream.as_mut().is_some_and(|s| !idle_and_open(s)) {
            self.stream = None;
            log::debug!(
                "connection to {} closed: closed by the server, or bytes no request asked for",
                self.endpoint
            );
        }
        if self.stream.is_some() {
            return Ok(true);
        }
        // Boxed: connecting is rare, and its future is the largest part of
        // this one, which every request would otherwise carry (and mlua
        // copies per call).
        match Box::pin(self.connect(deadline, timed_out)).await {
            Ok(stream) => {
                // Per connection, not per request (-L DEBUG).
                log::debug!("connection to {} opened", self.endpoint);
                self.stream = Some(stream);
                Ok(false)
            }
            Err(e) => {
                log::debug!("connect to {} failed: {e}", self.endpoint);
                Err(e)
            }
        }
    }

    /// Connect (`dial`: lookup, TCP, socket options; each step bounded by
    /// `connect_timeout`; for https the handshake within what is left of
    /// it), bounded by the request deadline too.
    /// `timed_out` is the error to give when the request deadline passes.
    pub(super) async fn connect(
        &mut self,
        mut deadline: Pin<&mut Sleep>,
        timed_out: HttpError,
    ) -> Result<Stream, HttpError> {
        let began = Instant::now();
        let stream = {
            let mut connect = pin!(dial::connect(&self.endpoint, &self.cfg));
            let outcome = poll_fn(|cx| {
                if let Poll::Ready(r) = connect.as_mut().poll(cx) {
                    return Poll::Ready(Some(r));
                }
                deadline.as_mut().poll(cx).map(|()| None)
            })
            .await;
            match outcome {
                None => return Err(timed_out),
                Some(result) => result?,
            }
        };
        let stream = match self.endpoint.scheme {
            Scheme::Http => Stream::Plain(stream),
            Scheme::Https => {
                let left = self.cfg.connect_timeout.saturating_sub(began.elapsed());
                self.handshake(stream, left, deadline, timed_out).await?
            }
        };
        self.connects += 1;
        Ok(stream)
    }

    /// The TLS handshake on a fresh TCP stream, bounded by what is `left` of
    /// the connect timeout and by the request deadline; on either, the
    /// socket is shut down and the handshake waited for, as for reads and
    /// writes ([`bounded`]).
    async fn handshake(
        &mut self,
        tcp: TcpStream,
        left: Duration,
        mut deadline: Pin<&mut Sleep>,
        timed_out: HttpError,
    ) -> Result<Stream, HttpError> {
        let config = self
            .cfg
            .tls
            .clone()
            .unwrap_or_else(super::tls::default_config);
        let Connection { endpoint, cfg, .. } = self;
        // Valid until `hs` ends: the socket moves into it and lives as long.
        let fd = tcp.as_raw_fd();
        let mut hs = pin!(handshake(tcp, endpoint, config));
        let mut limit = pin!(monoio::time::sleep(left));
        let mut fired = None;
        let outcome = poll_fn(|cx| {
            if let Poll::Ready(r) = hs.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            if fired.is_none() {
                if deadline.as_mut().poll(cx).is_ready() {
                    fired = Some(timed_out);
                } else if limit.as_mut().poll(cx).is_ready() {
                    fired = Some(HttpError::Tls(TlsKind::HandshakeTimeout(
                        Millis::from_duration(cfg.connect_timeout),
                    )));
                }
                if fired.is_some() {
                    shut_down(fd);
                }
            }
            Poll::Pending
        })
        .await;
        match (fired, outcome) {
            (Some(e), _) => Err(e),
            (None, Ok(tls)) => Ok(Stream::Tls(Box::new(tls))),
            (None, Err(e)) => Err(e),
        }
    }

    /// Write the request and read one response on the current stream.
    /// Returns the request buffer, the outcome, and whether any response
    /// byte arrived (an idle-closed connection delivers none).
    async fn exchange<B: IoBuf>(
        &mut self,
        request: B,
        method: Method,
        sink: &mut impl ResponseSink,
        mut deadline: Pin<&mut Sleep>,
        timeout: HttpError,
    ) -> (B, Result<ResponseInfo, HttpError>, bool) {
        let Connection { stream, parser, .. } = self;
        let Some(stream) = stream.as_mut() else {
            return (request, Err(HttpError::ClosedBeforeResponse), false);
        };
        let fd = stream.as_raw_fd();

        let ((written, request), timed_out) = {
            let write = pin!(stream.write_all(request));
            bounded(write, deadline.as_mut(), fd).await
        };
        if timed_out {
            return (request, Err(timeout), false);
        }
        if let Err(e) = written {
            return (request, Err(HttpError::from_io(&e)), false);
        }

        parser.start(method == Method::Head);
        let mut buf = ReadBufs::take();
        let mut cursor = ReadCursor::new();
        let mut got_bytes = false;
        let result = loop {
            if let Err(e) = cursor.make_room(&mut buf) {
                break Err(e);
            }
            let len = buf.len();
            let ((n, slice), timed_out) = {
                let read = pin!(stream.read(buf.slice_mut(len..)));
                bounded(read, deadline.as_mut(), fd).await
            };
            buf = slice.into_inner();
            match n {
                _ if timed_out => break Err(timeout),
                Err(e) => break Err(HttpError::from_io(&e)),
                // A close-delimited body ended by a TCP FIN with no TLS
                // close_notify may be truncated: say so.
                Ok(0) => match parser.eof(sink) {
                    Ok(()) if stream.unclean_eof() => {
                        break Err(HttpError::Tls(TlsKind::NoCloseNotify))
                    }
                    r => break r.map(|()| false),
                },
                Ok(_) => got_bytes = true,
            }
            match cursor.advance(parser, &mut buf, sink) {
                Err(e) => break Err(e),
                // Bytes after a complete response were not asked for: the
                // connection is out of step, so it will not be reused.
                Ok(Step::Done { leftover }) => break Ok(leftover),
                Ok(Step::More) => {}
            }
        };
        ReadBufs::give_back(buf);

        let result = result.map(|leftover| {
            if leftover || !parser.keep_alive() {
                self.stream = None;
                log::debug!("connection to {} closed: not kept alive", self.endpoint);
            }
            ResponseInfo {
                status: parser.status(),
                body_len: parser.body_len(),
            }
        });
        (request, result, got_bytes)
    }
}

/// Whether a request that failed with `e` may be sent once more on a fresh
/// connection: the reused one was closed by the server while the request
/// was on its way (its idle timeout) before any response byte came, and the
/// server may or may not have processed it, so only an idempotent method.
pub(super) fn may_resend(e: HttpError, reused: bool, got_bytes: bool, method: Method) -> bool {
    let idle_closed = matches!(
        e,
        HttpError::ClosedBeforeResponse | HttpError::ConnectionReset
    );
    reused && idle_closed && !got_bytes && method.is_idempotent()
}

/// Whether a kept-alive connection may carry the next request: nothing to
/// read yet. Waiting bytes answer no request of ours (extra body bytes, an
/// unsolicited response), 0 is the peer's FIN and an error its RST; each
/// means the connection is not in step. One non-blocking syscall, the check
/// curl makes before reuse; it works alike on io_uring and epoll because
/// it bypasses the driver.
/// For TLS a waiting record (a close_notify, a ticket) also counts as not
/// idle: the connection is dropped and a new one (resumed) made.
fn idle_and_open(stream: &mut Stream) -> bool {
    if stream.has_buffered() {
        return false;
    }
    let mut byte = 0u8;
    // The raw syscall, not libc's `recv`: that one is a thread-cancellation
    // point and brackets the call with two pthread bookkeeping calls per
    // request; the kernel sees the same recvfrom either way.
    // SAFETY: a valid socket fd and a 1-byte buffer we own; MSG_PEEK leaves
    // the data in place and MSG_DONTWAIT never blocks; no address is asked.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast::<libc::c_void>(),
            1usize,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    n < 0
        && matches!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EAGAIN | libc::EINTR)
        )
}

/// Read buffers are lent per request from a per-thread pool (each shard is
/// one thread), so memory follows the requests in flight, not the users:
/// 10,000 users in think time hold no read buffer at all. A buffer lost to
/// a dropped `send` is simply not returned.
pub(super) struct ReadBufs;

/// Enough for every request in flight on a busy shard; more are freed.
const POOL_MAX: usize = 4096;

thread_local! {
    static READ_BUF_POOL: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl ReadBufs {
    pub(super) fn take() -> Vec<u8> {
        READ_BUF_POOL
            .with(|p| p.borrow_mut().pop())
            .unwrap_or_else(|| Vec::with_capacity(READ_BUF))
    }

    pub(super) fn give_back(mut buf: Vec<u8>) {
        buf.clear();
        READ_BUF_POOL.with(|p| {
            let mut pool = p.borrow_mut();
            if pool.len() < POOL_MAX {
                pool.push(buf);
            }
        });
    }
}

/// Run `op` (a read or write on the socket `fd`) to completion. If
/// `deadline` passes first, shut the socket down and still wait for `op`:
/// it then completes promptly (EOF, EPIPE) and hands its buffer back (see
/// the module doc). Returns the op's output and whether the deadline passed;
/// after `true` the socket is unusable and the caller drops it.
/// Not an `async fn`: the op stays pinned in the caller's future instead of
/// being moved into (and so stored twice in) this one.
pub(super) fn bounded<'a, T>(
    mut op: Pin<&'a mut impl Future<Output = T>>,
    mut deadline: Pin<&'a mut Sleep>,
    fd: RawFd,
) -> impl Future<Output = (T, bool)> + 'a {
    let mut timed_out = false;
    poll_fn(move |cx| {
        if let Poll::Ready(out) = op.as_mut().poll(cx) {
            return Poll::Ready((out, timed_out));
        }
        if !timed_out && deadline.as_mut().poll(cx).is_ready() {
            timed_out = true;
            // The op wakes this task when the shutdown ends it.
            shut_down(fd);
        }
        Poll::Pending
    })
}

/// End every op in flight on the socket `fd`, on either driver: reads see
/// EOF, writes EPIPE. The fd stays open (its owner closes it), so this can
/// never hit another socket; an error (the peer already gone) changes
/// nothing, as the op ends anyway.
pub(super) fn shut_down(fd: RawFd) {
    // SAFETY: `fd` is a socket the caller's stream owns and keeps open.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}
