//! The hand-rolled HTTP/1.1 client: everything between a [`Method`] + URL and
//! a status code with a body length.
//!
//! It owns URL parsing ([`Target`], at startup; names are resolved per
//! connect through a per-shard cache: [`dns`], [`dial`]), request
//! serialization into a reusable buffer ([`write_request`]), a sans-I/O
//! response parser ([`ResponseParser`]: httparse heads, Content-Length,
//! chunked, close-delimited, keep-alive rules), one keep-alive connection
//! on monoio with connect and whole-request timeouts ([`Connection`]),
//! pipelining on it ([`pipeline`]: N requests written at once, N responses
//! read in order) and the redirect rules ([`redirect`], pure; callers
//! follow the hops).
//!
//! TLS for `https://` is rustls over the same connection ([`tls`] for the
//! settings and failure names, [`stream`] for the stream).
//!
//! It does not own: statistics (callers time requests and record
//! [`HttpError`]s), cookies or compression (bodies are handed to a
//! [`ResponseSink`] exactly as they arrive, de-chunked).

pub mod conn;
pub mod dial;
pub mod dns;
pub mod error;
pub mod method;
pub mod parse;
pub mod pipeline;
pub mod reader;
pub mod redirect;
pub mod request;
pub mod stream;
pub mod tls;
pub mod tls_sessions;
mod tls_verify;
pub mod url;

pub use conn::{ClientConfig, Connection, ResponseInfo};
pub use error::{DnsFailure, HttpError, Millis};
pub use method::Method;
pub use parse::{DiscardBody, ResponseParser, ResponseSink};
pub use reader::{ReadCursor, Step};
pub use request::write_request;
pub use stream::Stream;
pub use tls::{TlsKind, TlsOptions};
pub use url::{Endpoint, Scheme, Target, UrlError};
