//! ZeroMQ sockets for the cluster, set up the way Locust's `zmqrpc` does:
//! the master binds a ROUTER, each worker connects a DEALER whose identity
//! is its node id (`hostname_hex`); frames are `[identity, payload]` at the
//! ROUTER and `[payload]` at the DEALER, no empty delimiter.
//!
//! libzmq sockets are blocking and not `Sync`, so each one lives on the one
//! thread that polls it (the master's network thread, the worker's main
//! loop). Sends never block: a full queue drops the message with a log
//! line, as a dead peer would. This module owns sockets and framing only;
//! it does not own what messages mean (`protocol`, `master`, `worker`).

use std::time::Duration;

use super::protocol::{decode, encode, Message, ProtocolError};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot bind the master to {endpoint}: {source} (is another master running there?)")]
    Bind {
        endpoint: String,
        source: zmq::Error,
    },
    #[error("cannot connect to the master at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: zmq::Error,
    },
    #[error("ZeroMQ: {0}")]
    Zmq(#[from] zmq::Error),
}

/// `tcp://host:port`, with IPv6 literals bracketed.
pub fn endpoint(host: &str, port: u16) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.contains(':') {
        format!("tcp://[{host}]:{port}")
    } else {
        format!("tcp://{host}:{port}")
    }
}

/// This machine's name for node ids (`hostname_hex`).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if ok && !name.is_empty() => name.replace('_', "-"),
        _ => "localhost".to_string(),
    }
}

/// A node id as Locust makes them: `hostname_` + 32 hex digits.
pub fn new_node_id() -> String {
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !filled {
        // No /dev/urandom: time and pid are unique enough for one rack.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes[..8].copy_from_slice(&(now as u64).to_le_bytes());
        bytes[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}_{hex}", hostname())
}

/// A libzmq context (at most 1,023 sockets each: a harness simulating
/// more workers makes several).
pub fn context() -> zmq::Context {
    zmq::Context::new()
}

/// Bigger than any real report, measured (`measure_report_sizes`): 1,000
/// names with 23,000 distinct latencies each (23 million requests in one
/// report, every HDR bucket from 1 ms to 3.6 s) encode to 17.4 MB; 2,000
/// each to 6.8 MB. A larger message drops the connection in libzmq before
/// it is read, so a bad peer cannot make us allocate without bound.
pub const MAX_MESSAGE_BYTES: i64 = 32 << 20;

fn common_options(socket: &zmq::Socket) -> Result<(), zmq::Error> {
    socket.set_tcp_keepalive(1)?;
    socket.set_tcp_keepalive_idle(30)?;
    socket.set_linger(0)?;
    socket.set_maxmsgsize(MAX_MESSAGE_BYTES)?;
    Ok(())
}

/// The master's side.
pub struct RouterSocket {
    socket: zmq::Socket,
}

impl RouterSocket {
    pub fn bind(ctx: &zmq::Context, host: &str, port: u16) -> Result<Self, TransportError> {
        let socket = ctx.socket(zmq::ROUTER)?;
        common_options(&socket)?;
        // A worker that recreates its socket with the same identity (after
        // losing the master) takes over its old routing slot.
        socket.set_router_handover(true)?;
        socket.set_ipv6(true)?;
        let endpoint = endpoint(host, port);
        socket
            .bind(&endpoint)
            .map_err(|source| TransportError::Bind { endpoint, source })?;
        Ok(RouterSocket { socket })
    }

    /// The endpoint bound, as libzmq says (`tcp://127.0.0.1:40123`): the
    /// real port when 0 was asked for.
    pub fn last_endpoint(&self) -> Option<String> {
        self.socket.get_last_endpoint().ok()?.ok()
    }

    /// Wait up to `timeout` for something to read.
    pub fn poll(&self, timeout: Duration) -> bool {
        matches!(self.socket.poll(zmq::POLLIN, timeout.as_millis() as i64), Ok(n) if n > 0)
    }

    /// One message if one is waiting: `(sender identity, decoded)`. Frames
    /// that are not `[identity, payload]` are an error naming the sender.
    pub fn try_recv(&self) -> Option<(String, Result<Message, ProtocolError>)> {
        let (identity, payload) = self.try_recv_raw()?;
        Some((identity, payload.and_then(|p| decode(&p))))
    }

    /// One message if one is waiting, not decoded yet: the caller may
    /// refuse to spend time decoding it (a large message from a stranger).
    pub fn try_recv_raw(&self) -> Option<(String, Result<Vec<u8>, ProtocolError>)> {
        let mut frames = self.socket.recv_multipart(zmq::DONTWAIT).ok()?;
        let identity = frames
            .first()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .unwrap_or_default();
        if frames.len() != 2 {
            let problem = format!("{} frames instead of [identity, payload]", frames.len());
            return Some((identity, Err(ProtocolError::Shape(problem))));
        }
        Some((identity, Ok(frames.swap_remove(1))))
    }

    /// Send to the worker whose identity is `msg.node_id`.
    pub fn send(&self, msg: &Message) {
        let payload = encode(msg);
        let frames: [&[u8]; 2] = [msg.node_id.as_bytes(), &payload];
        if let Err(e) = self.socket.send_multipart(frames, zmq::DONTWAIT) {
            log::debug!("dropped `{}` to {}: {e}", msg.kind, msg.node_id);
        }
    }
}

/// A worker's side.
pub struct DealerSocket {
    socket: zmq::Socket,
}

impl DealerSocket {
    pub fn connect(
        ctx: &zmq::Context,
        identity: &str,
        host: &str,
        port: u16,
    ) -> Result<Self, TransportError> {
        let socket = ctx.socket(zmq::DEALER)?;
        common_options(&socket)?;
        socket.set_identity(identity.as_bytes())?;
        socket.set_ipv6(true)?;
        let endpoint = endpoint(host, port);
        socket
            .connect(&endpoint)
            .map_err(|source| TransportError::Connect { endpoint, source })?;
        Ok(DealerSocket { socket })
    }

    pub fn poll(&self, timeout: Duration) -> bool {
        matches!(self.socket.poll(zmq::POLLIN, timeout.as_millis() as i64), Ok(n) if n > 0)
    }

    pub fn try_recv(&self) -> Option<Result<Message, ProtocolError>> {
        let frames = self.socket.recv_multipart(zmq::DONTWAIT).ok()?;
        if frames.len() != 1 {
            let problem = format!("{} frames instead of one payload", frames.len());
            return Some(Err(ProtocolError::Shape(problem)));
        }
        Some(decode(&frames[0]))
    }

    pub fn send(&self, msg: &Message) {
        if let Err(e) = self.socket.send(encode(msg), zmq::DONTWAIT) {
            log::debug!("dropped `{}` to the master: {e}", msg.kind);
        }
    }

    /// Send bytes as they are (tests send malformed messages).
    pub fn send_bytes(&self, payload: &[u8]) {
        if let Err(e) = self.socket.send(payload, zmq::DONTWAIT) {
            log::debug!("dropped {} bytes to the master: {e}", payload.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint("127.0.0.1", 5557), "tcp://127.0.0.1:5557");
        assert_eq!(endpoint("::1", 5557), "tcp://[::1]:5557");
        assert_eq!(endpoint("[::1]", 1), "tcp://[::1]:1");
    }

    #[test]
    fn node_ids_look_like_locusts() {
        let id = new_node_id();
        let (host, hex) = id.rsplit_once('_').unwrap();
        assert!(!host.is_empty() && !host.contains('_'));
        assert_eq!(hex.len(), 32);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, new_node_id());
    }
}

#[cfg(test)]
mod size_tests {
    use super::super::protocol::WorkerMessage;
    use super::super::report::ReportBuilder;
    use super::*;
    use crate::http::Method;
    use crate::stats::ShardStats;

    /// A report of `names` names, each with `spread` distinct latencies
    /// from 1 ms up (one request each), encoded.
    fn report_bytes(names: usize, spread: u64, step_us: u64) -> usize {
        let mut shard = ShardStats::new();
        for n in 0..names {
            let id = shard.entry(Method::Get, &format!("/api/v1/some/endpoint/{n}"));
            for i in 0..spread {
                shard.record(id, 1_000 + i * step_us, 1_000);
            }
        }
        let mut builder = ReportBuilder::new();
        builder.add(&shard.take_delta());
        let report = builder.take_report(std::time::SystemTime::now(), vec![("U".into(), 1)], 1);
        let bytes =
            encode(&WorkerMessage::Stats(Box::new(report)).to_message("host_0123456789abcdef"));
        let started = std::time::Instant::now();
        assert!(decode(&bytes).is_ok());
        println!("  decoded in {:?}", started.elapsed());
        bytes.len()
    }

    #[test]
    #[ignore = "prints report sizes"]
    fn measure_report_sizes() {
        for (spread, step) in [
            (100, 997),
            (1_000, 97),
            (2_000, 997),
            (5_000, 997),
            (23_000, 157),
        ] {
            let bytes = report_bytes(1_000, spread, step);
            println!("1000 names x {spread} buckets (step {step} us): {bytes} bytes");
        }
    }
}
