//! The stable, human-readable failure kinds of the HTTP client.
//!
//! Every way a request can fail maps to one variant here. The `Display` text
//! is what users see in the failures table and `_failures.csv`, so it is part
//! of the interface: change it only on purpose. Values are small and `Copy`
//! so recording a failure on the hot path allocates nothing.

use std::fmt;

/// Why a request failed below the HTTP status level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum HttpError {
    #[error("connection refused")]
    ConnectionRefused,
    #[error("connection reset")]
    ConnectionReset,
    #[error("connect timeout after {0}")]
    ConnectTimeout(Millis),
    #[error("timeout after {0}")]
    Timeout(Millis),
    #[error("connection closed before response")]
    ClosedBeforeResponse,
    #[error("connection closed mid-header")]
    ClosedMidHeader,
    #[error("malformed status line")]
    MalformedStatusLine,
    #[error("malformed header")]
    MalformedHeader,
    #[error("too many headers")]
    TooManyHeaders,
    #[error("header section too large")]
    HeaderTooLarge,
    #[error("invalid Content-Length")]
    InvalidContentLength,
    #[error("body shorter than Content-Length")]
    BodyShorterThanContentLength,
    #[error("invalid chunk size")]
    InvalidChunkSize,
    #[error("malformed chunk")]
    MalformedChunk,
    #[error("connection closed mid-chunk")]
    ClosedMidChunk,
    #[error("unsupported Transfer-Encoding")]
    UnsupportedTransferEncoding,
    #[error("address unavailable")]
    AddrNotAvailable,
    #[error("too many open files")]
    TooManyOpenFiles,
    #[error("network unreachable")]
    NetworkUnreachable,
    /// A TLS problem (handshake, certificate, alert), by its stable name.
    #[error("tls: {0}")]
    Tls(super::tls::TlsKind),
    /// Any other I/O error, by its kind (never a panic, never dropped).
    #[error("i/o error: {0:?}")]
    Io(std::io::ErrorKind),
    /// A host name that did not resolve: `dns: <name>: <reason>`. The text
    /// is interned (see [`DnsFailure`]) so the error stays `Copy`.
    #[error("dns: {0}")]
    Dns(DnsFailure),
}

impl HttpError {
    /// Map an I/O error from connect/read/write to its stable kind.
    pub fn from_io(e: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        if let Some(t) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<super::tls::TlsFailure>())
        {
            return HttpError::Tls(t.0);
        }
        match e.raw_os_error() {
            Some(libc::EMFILE) | Some(libc::ENFILE) => return HttpError::TooManyOpenFiles,
            Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) => {
                return HttpError::NetworkUnreachable
            }
            _ => {}
        }
        match e.kind() {
            K::ConnectionRefused => HttpError::ConnectionRefused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => HttpError::ConnectionReset,
            K::AddrNotAvailable => HttpError::AddrNotAvailable,
            K::UnexpectedEof => HttpError::ClosedBeforeResponse,
            k => HttpError::Io(k),
        }
    }
}

/// `<name>: <reason>` of a failed lookup, interned once per distinct text:
/// failures are recorded on the hot path and keyed by value, so the error
/// must stay small and `Copy`. The set is bounded ([`MAX_DNS_FAILURES`]);
/// past it, new texts share one generic message instead of growing memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DnsFailure(&'static str);

/// Distinct `dns:` failure texts kept per process (a script that makes up
/// host names cannot grow memory without bound).
pub const MAX_DNS_FAILURES: usize = 1024;

impl DnsFailure {
    pub fn new(name: &str, reason: &str) -> DnsFailure {
        use std::collections::HashSet;
        use std::sync::Mutex;
        static TEXTS: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
        let text = format!("{name}: {reason}");
        let mut guard = TEXTS.lock().unwrap_or_else(|e| e.into_inner());
        let set = guard.get_or_insert_with(HashSet::new);
        if let Some(known) = set.get(text.as_str()) {
            return DnsFailure(known);
        }
        if set.len() >= MAX_DNS_FAILURES {
            return DnsFailure("lookup failed (too many distinct failing names to name them all)");
        }
        // Leaked on purpose: bounded above, and lives as long as the stats.
        let text: &'static str = Box::leak(text.into_boxed_str());
        set.insert(text);
        DnsFailure(text)
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A duration shown the way people write it: `5s`, `1.5s`, `250ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Millis(pub u32);

impl Millis {
    pub fn from_duration(d: std::time::Duration) -> Self {
        Millis(d.as_millis().min(u32::MAX as u128) as u32)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms < 1000 {
            write!(f, "{ms}ms")
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{}s", ms as f64 / 1000.0)
        }
    }
}
