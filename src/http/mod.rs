//! The hand-rolled HTTP/1.1 client: everything between a [`Method`] + URL and
//! a status code with a body length.
//!
//! It owns URL parsing and resolution ([`Target`], once at startup), request
//! serialization into a reusable buffer ([`write_request`]), a sans-I/O
//! response parser ([`ResponseParser`]: httparse heads, Content-Length,
//! chunked, close-delimited, keep-alive rules) and one keep-alive connection
//! on monoio with connect and whole-request timeouts ([`Connection`]).
//!
//! TLS for `https://` is rustls over the same connection ([`tls`] for the
//! settings and failure names, [`stream`] for the stream).
//!
//! It does not own: statistics (callers time requests and record
//! [`HttpError`]s), cookies, redirects or compression (bodies are handed to a
//! [`ResponseSink`] exactly as they arrive, de-chunked).

pub mod conn;
pub mod error;
pub mod method;
pub mod parse;
pub mod reader;
pub mod request;
pub mod stream;
pub mod tls;
pub mod tls_sessions;
pub mod url;

pub use conn::{ClientConfig, Connection, ResponseInfo};
pub use error::{HttpError, Millis};
pub use method::Method;
pub use parse::{DiscardBody, ResponseParser, ResponseSink};
pub use reader::{ReadCursor, Step};
pub use request::write_request;
pub use stream::Stream;
pub use tls::{TlsKind, TlsOptions};
pub use url::{Endpoint, Scheme, Target, UrlError};
