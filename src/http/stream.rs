//! The byte stream under a [`Connection`](super::Connection): plain TCP, or
//! TLS (rustls) over TCP, behind monoio's owned-buffer I/O traits so the
//! connection's code is the same for both.
//!
//! TLS runs on rustls' buffered API over io_uring/epoll: ciphertext is read
//! by the driver into a buffer of a TLS record's size, lent from a
//! per-thread pool until rustls has taken its bytes, and handed to
//! `read_tls`; plaintext is copied from rustls straight into the caller's
//! (pooled) read buffer. Writes go through `write_tls` into a buffer lent
//! from the same pool. This side
//! allocates nothing per request once a connection is up; rustls' buffered
//! API itself still allocates one `Vec` per record it encrypts or hands out
//! decrypted (its `ChunkVecBuffer`), so about two small allocations per
//! request. Its unbuffered API (`rustls::unbuffered`) would remove those at
//! the cost of driving the state machine by hand: the next step if profiles
//! show them.
//!
//! The HTTP client's ops are plain (not cancelable): a request deadline
//! ends them by shutting the socket down (see [`super::conn`]), which
//! needs no per-op bookkeeping. The cancelable traits stay for the
//! script's TCP and WebSocket clients (`script::tcp_io`), whose receive
//! timeout leaves the connection usable; on TLS streams they cancel the
//! TCP op under the one in flight.
//!
//! The plain path is one `match` per op in front of monoio's own calls.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent,
    CancelableAsyncWriteRent, CancelableAsyncWriteRentExt,
};
use monoio::net::TcpStream;
use monoio::BufResult;

use super::tls::{classify, server_name, TlsFailure, TlsKind};
use super::{Endpoint, HttpError};

/// One TLS record (16 KiB plaintext) plus its header and expansion: a read
/// of this size takes any single record whole.
const CIPHER_BUF: usize = 16 * 1024 + 5 + 2048;

/// What a connection reads from and writes to.
pub enum Stream {
    Plain(TcpStream),
    /// Boxed: the TLS state is large and a plain stream should not carry it.
    Tls(Box<TlsStream>),
}

/// rustls' client state over a TCP stream.
pub struct TlsStream {
    tcp: TcpStream,
    tls: rustls::ClientConnection,
    /// Ciphertext read from the socket; `start..end` not yet given to
    /// rustls. Lent from the shard's pool while it holds unread bytes only.
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    /// The peer's TCP FIN came without a `close_notify`.
    unclean_eof: bool,
    /// We offer a client certificate (names the server's certificate alerts).
    client_auth: bool,
}

impl Stream {
    /// The socket, for the non-blocking reuse check.
    pub fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Plain(s) => s.as_raw_fd(),
            Stream::Tls(t) => t.tcp.as_raw_fd(),
        }
    }

    /// TLS bytes already read from the socket and not yet asked for (the
    /// reuse check's peek cannot see them).
    pub fn has_buffered(&mut self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(t) => {
                t.start < t.end
                    || t.tls
                        .process_new_packets()
                        .map_or(true, |s| s.plaintext_bytes_to_read() > 0)
            }
        }
    }

    /// Whether the last read's EOF was a TCP close with no TLS
    /// `close_notify` (a truncation an attacker, or a crash, could cause).
    pub fn unclean_eof(&self) -> bool {
        matches!(self, Stream::Tls(t) if t.unclean_eof)
    }
}

/// Run the TLS client handshake on a connected `tcp` to `endpoint` (SNI and
/// verification from `endpoint.host`). Bounding it in time is the caller's
/// job: shut the socket down and this returns promptly with an error.
pub async fn handshake(
    tcp: TcpStream,
    endpoint: &Endpoint,
    config: Arc<rustls::ClientConfig>,
) -> Result<TlsStream, HttpError> {
    let name = server_name(&endpoint.host)?;
    let client_auth = config.client_auth_cert_resolver.has_certs();
    let tls = rustls::ClientConnection::new(config, name)
        .map_err(|e| HttpError::Tls(classify(&e, client_auth, true)))?;
    let mut s = TlsStream {
        tcp,
        tls,
        rbuf: Vec::new(),
        start: 0,
        end: 0,
        unclean_eof: false,
        client_auth,
    };
    let err = |e: io::Error| match HttpError::from_io(&e) {
        HttpError::ClosedBeforeResponse | HttpError::ConnectionReset => {
            HttpError::Tls(TlsKind::ClosedInHandshake)
        }
        other => other,
    };
    while s.tls.is_handshaking() {
        if s.tls.wants_write() {
            s.flush_tls(None).await.map_err(err)?;
            continue;
        }
        if s.feed(None).await.map_err(err)? == 0 && s.tls.is_handshaking() {
            return Err(HttpError::Tls(TlsKind::ClosedInHandshake));
        }
    }
    // The client's last flight (Finished), sent before the first request.
    s.flush_tls(None).await.map_err(err)?;
    Ok(s)
}

impl TlsStream {
    /// Send everything rustls has queued (`c`: see [`Cancel`]).
    async fn flush_tls(&mut self, c: Cancel<'_>) -> io::Result<()> {
        while self.tls.wants_write() {
            let mut buf = CipherBufs::take();
            while self.tls.wants_write() {
                if let Err(e) = self.tls.write_tls(&mut buf) {
                    CipherBufs::give_back(buf);
                    return Err(e);
                }
            }
            let (res, buf) = match c {
                Some(c) => {
                    CancelableAsyncWriteRentExt::write_all(&mut self.tcp, buf, c.clone()).await
                }
                None => AsyncWriteRentExt::write_all(&mut self.tcp, buf).await,
            };
            CipherBufs::give_back(buf);
            res?;
        }
        Ok(())
    }

    /// Give rustls more ciphertext: what is left of the last socket read,
    /// else a new read. Returns the bytes given; 0 at the peer's EOF.
    async fn feed(&mut self, c: Cancel<'_>) -> io::Result<usize> {
        if self.start >= self.end {
            let (res, buf) = match c {
                Some(c) => {
                    self.tcp
                        .cancelable_read(CipherBufs::take(), c.clone())
                        .await
                }
                None => self.tcp.read(CipherBufs::take()).await,
            };
            let n = match res {
                Ok(n) => n.min(buf.len()),
                Err(e) => {
                    CipherBufs::give_back(buf);
                    return Err(e);
                }
            };
            if n == 0 {
                CipherBufs::give_back(buf);
                // Tell rustls about the EOF: reads then say whether it
                // came after a close_notify.
                self.tls.read_tls(&mut &[][..])?;
                self.process()?;
                return Ok(0);
            }
            self.rbuf = buf;
            self.start = 0;
            self.end = n;
        }
        let mut rest = self.rbuf.get(self.start..self.end).unwrap_or_default();
        let used = self.tls.read_tls(&mut rest)?;
        self.start = self.start.saturating_add(used);
        if self.start >= self.end {
            // All handed to rustls: an idle connection holds no buffer.
            CipherBufs::give_back(std::mem::take(&mut self.rbuf));
        }
        self.process()?;
        Ok(used)
    }

    fn process(&mut self) -> io::Result<()> {
        match self.tls.process_new_packets() {
            Ok(_) => Ok(()),
            Err(e) => Err(TlsFailure::io(classify(
                &e,
                self.client_auth,
                self.tls.is_handshaking(),
            ))),
        }
    }

    /// Plaintext into `buf`: what rustls holds, else read and decrypt more.
    async fn read_plain<T: IoBufMut>(&mut self, mut buf: T, c: Cancel<'_>) -> BufResult<usize, T> {
        let room = buf.bytes_total();
        if room == 0 {
            return (Ok(0), buf);
        }
        loop {
            let mut copied = 0;
            loop {
                let chunk = match self.tls.reader().into_first_chunk() {
                    Ok(chunk) => chunk,
                    // Report the bytes first; the error comes again.
                    Err(_) if copied > 0 => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        self.unclean_eof = true;
                        return (Ok(0), buf);
                    }
                    Err(e) => return (Err(e), buf),
                };
                if chunk.is_empty() {
                    // A clean close_notify (after any bytes copied).
                    if copied == 0 {
                        return (Ok(0), buf);
                    }
                    break;
                }
                let n = chunk.len().min(room - copied);
                // SAFETY: `buf` owns `bytes_total()` writable bytes from
                // `write_ptr()`; `copied + n <= room`; rustls' chunk is a
                // separate allocation.
                unsafe {
                    std::ptr::copy_nonoverlapping(chunk.as_ptr(), buf.write_ptr().add(copied), n);
                }
                std::io::BufRead::consume(&mut self.tls.reader(), n);
                copied += n;
                if copied == room {
                    break;
                }
            }
            if copied > 0 {
                // SAFETY: the first `copied` bytes were just written.
                unsafe { buf.set_init(copied) };
                return (Ok(copied), buf);
            }
            if self.tls.wants_write() {
                // A post-handshake message needs an answer (key update).
                if let Err(e) = self.flush_tls(c).await {
                    return (Err(e), buf);
                }
            }
            if let Err(e) = self.feed(c).await {
                return (Err(e), buf);
            }
        }
    }

    /// Encrypt `data` and send it; returns how much rustls took.
    async fn write_plain(&mut self, data: &[&[u8]], c: Cancel<'_>) -> io::Result<usize> {
        let mut taken = 0usize;
        for part in data {
            let n = self.tls.writer().write(part)?;
            taken = taken.saturating_add(n);
            if n < part.len() {
                break;
            }
        }
        self.flush_tls(c).await?;
        Ok(taken)
    }
}

/// How a TLS stream runs the TCP ops under it: `None` plain (the HTTP
/// client, which ends them by a socket shutdown), `Some` cancelable through
/// the handle (the cancelable traits, for `script::tcp_io`).
type Cancel<'a> = Option<&'a CancelHandle>;

/// Ciphertext buffers lent per read or write from a per-thread pool (each
/// shard is one thread), as the connection's plaintext read buffers are:
/// memory follows the I/O in flight, not the connections, so 10,000 idle
/// TLS users hold no ciphertext buffer at all.
struct CipherBufs;

/// Enough for every TLS read and write in flight on a busy shard.
const CIPHER_POOL_MAX: usize = 4096;

thread_local! {
    static CIPHER_POOL: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl CipherBufs {
    fn take() -> Vec<u8> {
        CIPHER_POOL
            .with(|p| p.borrow_mut().pop())
            .unwrap_or_else(|| Vec::with_capacity(CIPHER_BUF))
    }

    /// Back to the pool; an empty one, or one a large write grew, is freed.
    fn give_back(mut buf: Vec<u8>) {
        if buf.capacity() < CIPHER_BUF || buf.capacity() > 4 * CIPHER_BUF {
            return;
        }
        buf.clear();
        CIPHER_POOL.with(|p| {
            let mut pool = p.borrow_mut();
            if pool.len() < CIPHER_POOL_MAX {
                pool.push(buf);
            }
        });
    }
}

/// The initialized bytes of an owned buffer.
fn init_bytes<T: IoBuf>(buf: &T) -> &[u8] {
    // SAFETY: `read_ptr()` points at `bytes_init()` initialized bytes that
    // live as long as `buf`.
    unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) }
}

/// The iovecs' bytes of an owned vectored buffer.
fn iovec_bytes<T: IoVecBuf>(buf: &T) -> Vec<&[u8]> {
    // SAFETY: the buffer guarantees `read_iovec_len()` valid iovecs at
    // `read_iovec_ptr()`, each over initialized bytes it owns.
    let iovs = unsafe { std::slice::from_raw_parts(buf.read_iovec_ptr(), buf.read_iovec_len()) };
    iovs.iter()
        .map(|v| unsafe { std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len) })
        .collect()
}

impl CancelableAsyncReadRent for Stream {
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.cancelable_read(buf, c).await,
            Stream::Tls(t) => t.read_plain(buf, Some(&c)).await,
        }
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        mut buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.cancelable_readv(buf, c).await,
            Stream::Tls(t) => {
                // Into the first iovec only: a short read is a read.
                // SAFETY: valid iovecs the buffer owns, per IoVecBufMut.
                let first = unsafe {
                    std::slice::from_raw_parts(buf.write_iovec_ptr(), buf.write_iovec_len())
                }
                .iter()
                .find(|v| v.iov_len > 0)
                .map(|v| (v.iov_base as *mut u8, v.iov_len));
                let Some((ptr, len)) = first else {
                    return (Ok(0), buf);
                };
                let mut tmp = Vec::with_capacity(len);
                let (res, tmp_back) = t.read_plain(std::mem::take(&mut tmp), Some(&c)).await;
                tmp = tmp_back;
                match res {
                    Ok(n) => {
                        let n = n.min(len).min(tmp.len());
                        // SAFETY: `ptr` has `len >= n` writable bytes.
                        unsafe {
                            std::ptr::copy_nonoverlapping(tmp.as_ptr(), ptr, n);
                            buf.set_init(n);
                        }
                        (Ok(n), buf)
                    }
                    Err(e) => (Err(e), buf),
                }
            }
        }
    }
}

impl CancelableAsyncWriteRent for Stream {
    async fn cancelable_write<T: IoBuf>(&mut self, buf: T, c: CancelHandle) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.cancelable_write(buf, c).await,
            Stream::Tls(t) => {
                let res = t.write_plain(&[init_bytes(&buf)], Some(&c)).await;
                (res, buf)
            }
        }
    }

    async fn cancelable_writev<T: IoVecBuf>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.cancelable_writev(buf, c).await,
            Stream::Tls(t) => {
                let res = t.write_plain(&iovec_bytes(&buf), Some(&c)).await;
                (res, buf)
            }
        }
    }

    async fn cancelable_flush(&mut self, c: CancelHandle) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.cancelable_flush(c).await,
            Stream::Tls(t) => t.flush_tls(Some(&c)).await,
        }
    }

    async fn cancelable_shutdown(&mut self, c: CancelHandle) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.cancelable_shutdown(c).await,
            Stream::Tls(t) => {
                t.tls.send_close_notify();
                t.flush_tls(Some(&c)).await?;
                t.tcp.cancelable_shutdown(c).await
            }
        }
    }
}

/// The plain traits, which the HTTP client uses: its deadline ends an op
/// by shutting the socket down, so the TLS side runs the TCP ops plain too.
impl AsyncReadRent for Stream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(t) => t.read_plain(buf, None).await,
        }
    }

    /// TLS: through the cancelable path with a handle nobody cancels (one
    /// way to scatter plaintext; no HTTP request reads vectored).
    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.readv(buf).await,
            tls => {
                tls.cancelable_readv(buf, monoio::io::Canceller::new().handle())
                    .await
            }
        }
    }
}

impl AsyncWriteRent for Stream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.write(buf).await,
            Stream::Tls(t) => {
                let res = t.write_plain(&[init_bytes(&buf)], None).await;
                (res, buf)
            }
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.writev(buf).await,
            Stream::Tls(t) => {
                let res = t.write_plain(&iovec_bytes(&buf), None).await;
                (res, buf)
            }
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush().await,
            Stream::Tls(t) => t.flush_tls(None).await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(t) => {
                t.tls.send_close_notify();
                t.flush_tls(None).await?;
                t.tcp.shutdown().await
            }
        }
    }
}
