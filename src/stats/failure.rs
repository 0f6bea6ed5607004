//! What went wrong with one request, as a stats key.
//!
//! Owns the [`Failure`] enum and its `Display` text, which is what users read
//! in the error report and `_failures.csv` (so it is part of the interface).
//! It does not own the HTTP client's error kinds (`crate::http::HttpError`)
//! nor deciding which responses count as failures (the engine and scripts do).

use std::fmt;

use crate::http::HttpError;

/// Why a request counted as failed. Failures are counted per
/// `(entry, Failure)`, so two values that display the same must compare equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The client could not get a response (refused, reset, timeout…).
    Http(HttpError),
    /// A response arrived with a status the run treats as failed (>= 400).
    Status(u16),
    /// A message given by the script (`response:failure("…")`).
    Message(Box<str>),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Http(e) => write!(f, "{e}"),
            Failure::Status(code) => match reason_phrase(*code) {
                Some(reason) => write!(f, "HTTP {code} {reason}"),
                None => write!(f, "HTTP {code}"),
            },
            Failure::Message(m) => f.write_str(m),
        }
    }
}

/// The reason phrase of the statuses people actually see in load tests; an
/// unknown code shows as just its number rather than a guess.
fn reason_phrase(code: u16) -> Option<&'static str> {
    Some(match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        511 => "Network Authentication Required",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_texts() {
        assert_eq!(
            Failure::Status(503).to_string(),
            "HTTP 503 Service Unavailable"
        );
        assert_eq!(Failure::Status(404).to_string(), "HTTP 404 Not Found");
        assert_eq!(Failure::Status(599).to_string(), "HTTP 599");
        assert_eq!(
            Failure::Http(HttpError::ConnectionRefused).to_string(),
            "connection refused"
        );
        assert_eq!(Failure::Message("bad body".into()).to_string(), "bad body");
    }
}
