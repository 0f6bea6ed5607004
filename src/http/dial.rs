//! From an [`Endpoint`] to a connected monoio `TcpStream`: resolve, pick
//! the address and the source address, connect, set the socket options.
//!
//! It owns the TCP connect step of `Connection` (TLS, when there is one,
//! comes after it) and `--source-ip`. Names go through `dns` (per-shard
//! cache, resolver threads); IP literals skip it.
//!
//! - **Timeouts.** The lookup and the TCP connect are each bounded by the
//!   connect timeout, and failures are named apart: `dns: <name>: no answer
//!   within 5s`, `connect timeout after 5s`. The caller bounds the whole by
//!   the request deadline too.
//! - **Source addresses** (`--source-ip A,B`): each new connection on a shard
//!   binds to the next address of the target's family, in turn (socket2:
//!   create non-blocking, bind, connect, then monoio waits for writability
//!   and reads `SO_ERROR`, which works on both io_uring and epoll). The bind
//!   sets `IP_BIND_ADDRESS_NO_PORT`, so the kernel picks the port at connect
//!   time per 4-tuple: a box with k addresses gets k × ~28,000 connections
//!   per target address instead of one port range shared by all targets.
//!   A target of a family no source address has fails as
//!   `address unavailable`. Without `--source-ip` monoio's own connect op
//!   is used, as before.
//! - **Connect timeouts and the kernel.** Neither connect can be cancelled in
//!   monoio 0.2.4: on a timeout the future is dropped and the driver closes
//!   the socket when the kernel ends the connect (refused, or its SYN
//!   retries run out).
//! - **Socket options**, once per connection: `TCP_NODELAY` on (requests are
//!   small and latency is what we measure: no Nagle delay). `SO_LINGER` is
//!   not set: closing sends a normal FIN and the kernel delivers what was
//!   written. Linger 0 (RST on close) would spare the client's TIME_WAIT
//!   entries, but it throws away unsent bytes and the server sees resets it
//!   may count as errors; TIME_WAIT mostly lands on the server anyway, which
//!   closes first on `Connection: close`, and `--source-ip` is the way past
//!   the client's port limit.

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};

use monoio::net::TcpStream;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::{dns, ClientConfig, Endpoint, HttpError, Millis};

/// Connect to `endpoint`: the name resolved (cached per shard), the source
/// address bound if asked, `TCP_NODELAY` set.
pub async fn connect(endpoint: &Endpoint, cfg: &ClientConfig) -> Result<TcpStream, HttpError> {
    let ip = match endpoint.addr {
        Some(addr) => addr.ip(),
        None => dns::resolve(&endpoint.host, cfg.dns_ttl, cfg.connect_timeout).await?,
    };
    let addr = SocketAddr::new(ip, endpoint.port);
    let connect = tcp(addr, &cfg.source_ips);
    let result = match monoio::time::timeout(cfg.connect_timeout, connect).await {
        Err(_elapsed) => Err(HttpError::ConnectTimeout(Millis::from_duration(
            cfg.connect_timeout,
        ))),
        Ok(r) => r,
    };
    let stream = match result {
        Ok(stream) => stream,
        Err(e) => {
            // The address, not this box, failed (refused, timeout,
            // unreachable): let the name's other addresses serve meanwhile.
            let local = matches!(e, HttpError::TooManyOpenFiles | HttpError::AddrNotAvailable);
            if endpoint.addr.is_none() && !local {
                dns::connect_failed(&endpoint.host, ip);
            }
            return Err(e);
        }
    };
    // Failing to set it only costs latency, so it is not an error.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

async fn tcp(addr: SocketAddr, sources: &[IpAddr]) -> Result<TcpStream, HttpError> {
    if sources.is_empty() {
        return TcpStream::connect_addr(addr)
            .await
            .map_err(|e| HttpError::from_io(&e));
    }
    let source = next_source(sources, addr.is_ipv4()).ok_or(HttpError::AddrNotAvailable)?;
    let io = |e: std::io::Error| HttpError::from_io(&e);
    let socket = bound_socket(source, addr.is_ipv4()).map_err(io)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(io(e)),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(socket)).map_err(io)?;
    // Writable = the connect ended, well or not; SO_ERROR says which.
    stream.writable(false).await.map_err(io)?;
    // SAFETY: the fd is owned by `stream`, alive for this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    match SockRef::from(&fd).take_error() {
        Ok(None) => Ok(stream),
        Ok(Some(e)) | Err(e) => Err(io(e)),
    }
}

/// A non-blocking TCP socket bound to `source` (port chosen at connect).
fn bound_socket(source: IpAddr, v4: bool) -> std::io::Result<Socket> {
    let domain = if v4 { Domain::IPV4 } else { Domain::IPV6 };
    let socket = Socket::new(domain, Type::STREAM.nonblocking(), Some(Protocol::TCP))?;
    // Best effort: without it the port is reserved at bind time, which only
    // lowers the ceiling (Linux >= 4.2 has it).
    let _ = set_bind_address_no_port(&socket);
    socket.bind(&SocketAddr::new(source, 0).into())?;
    Ok(socket)
}

fn set_bind_address_no_port(socket: &Socket) -> std::io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd, and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

thread_local! {
    /// This shard's round-robin position over `--source-ip`.
    static NEXT_SOURCE: Cell<usize> = const { Cell::new(0) };
}

/// The next source address of the target's family, in turn.
fn next_source(sources: &[IpAddr], v4: bool) -> Option<IpAddr> {
    NEXT_SOURCE.with(|next| {
        let start = next.get();
        (0..sources.len()).find_map(|i| {
            let at = start.wrapping_add(i) % sources.len();
            let ip = *sources.get(at)?;
            (ip.is_ipv4() == v4).then(|| {
                next.set(at.wrapping_add(1));
                ip
            })
        })
    })
}

/// Startup check for `--source-ip`: the address must be this machine's
/// (binding to it works). The error says why not.
pub fn check_source_ip(ip: IpAddr) -> Result<(), String> {
    bound_socket(ip, ip.is_ipv4())
        .map(drop)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_rotate_within_the_family() {
        let s: Vec<IpAddr> = ["127.0.0.2", "::1", "127.0.0.3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let v4: Vec<IpAddr> = (0..4).filter_map(|_| next_source(&s, true)).collect();
        let two: IpAddr = "127.0.0.2".parse().unwrap();
        let three: IpAddr = "127.0.0.3".parse().unwrap();
        assert_eq!(v4.iter().filter(|ip| **ip == two).count(), 2, "{v4:?}");
        assert_eq!(v4.iter().filter(|ip| **ip == three).count(), 2, "{v4:?}");
        assert_eq!(next_source(&s, false), Some("::1".parse().unwrap()));
        assert_eq!(next_source(&s[..1], false), None);
    }

    #[test]
    fn source_ip_must_be_local() {
        assert!(check_source_ip("127.0.0.2".parse().unwrap()).is_ok());
        let e = check_source_ip("10.255.255.1".parse().unwrap()).unwrap_err();
        assert!(e.contains("address"), "{e}");
    }
}
