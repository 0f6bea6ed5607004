//! A sans-I/O HTTP/1.1 response parser: bytes in, status + body out.
//!
//! No sockets here, so every framing rule can be unit-tested and benchmarked
//! on byte slices split at arbitrary points. The head is parsed by httparse
//! and must be contiguous (the caller keeps reading into its buffer until it
//! is); bodies stream through [`ResponseSink::body`] as they arrive, so the
//! parser never buffers or allocates.
//!
//! Framing (RFC 9112 §6.3): no body for HEAD, 1xx, 204 and 304; interim 1xx
//! responses (100 Continue, 103 Early Hints) are skipped; otherwise
//! `Transfer-Encoding: chunked`, then `Content-Length`, then until close.

use std::mem::MaybeUninit;

use super::HttpError;

/// Where the parsed response goes. Both methods default to doing nothing,
/// which is what a load generator wants for most requests.
pub trait ResponseSink {
    /// A header of the final response (interim 1xx headers are not shown).
    fn header(&mut self, _name: &str, _value: &[u8]) {}
    /// A piece of the body, de-chunked, in order.
    fn body(&mut self, _data: &[u8]) {}
}

/// Count the body, keep nothing.
pub struct DiscardBody;
impl ResponseSink for DiscardBody {}

/// The longest chunk-size line we accept (size + extensions); a peer sending
/// more is broken or hostile.
const MAX_CHUNK_LINE: u16 = 4096;
/// The most trailer bytes we skip after the last chunk.
const MAX_TRAILERS: u32 = 64 * 1024;
/// Headers per response; more is `TooManyHeaders`. Python's http.client
/// accepts 100, so real servers stay under it; the slots are an uninit
/// array on the stack (nothing zeroed, nothing allocated).
pub const MAX_HEADERS: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for a complete status line + headers.
    Head,
    /// Content-Length body: this many bytes still to come.
    Length(u64),
    /// Inside a chunk-size line: value so far, hex digits seen, whether we
    /// are past the digits (whitespace or `;ext`), line length so far.
    ChunkSize {
        size: u64,
        digits: u8,
        past_digits: bool,
        len: u16,
    },
    /// Saw the CR ending a chunk-size line; LF must follow.
    ChunkSizeLf(u64),
    /// Chunk data: this many bytes still to come.
    ChunkData(u64),
    /// After chunk data: CR, then LF.
    ChunkDataCr,
    ChunkDataLf,
    /// After the last chunk: skipping trailer lines until an empty one.
    Trailers {
        line_start: bool,
        len: u32,
    },
    /// Saw CR at the start of a trailer line: LF ends the message.
    TrailersLf,
    /// No length given: the body runs until the peer closes.
    UntilClose,
    Done,
}

/// Parses one response at a time; reuse it for the next with [`start`](Self::start).
pub struct ResponseParser {
    state: State,
    is_head: bool,
    seen_bytes: bool,
    status: u16,
    keep_alive: bool,
    body_len: u64,
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseParser {
    pub fn new() -> Self {
        ResponseParser {
            state: State::Head,
            is_head: false,
            seen_bytes: false,
            status: 0,
            keep_alive: false,
            body_len: 0,
        }
    }

    /// Prepare for the response to the next request (`is_head`: it was HEAD,
    /// so whatever the headers say, no body follows).
    pub fn start(&mut self, is_head: bool) {
        *self = ResponseParser {
            is_head,
            ..ResponseParser::new()
        };
    }

    /// Consume from `input`; returns (bytes consumed, complete?). Body bytes
    /// are passed to `sink.body`. Only an incomplete head is left unconsumed:
    /// the caller must keep those bytes and offer them again with more after.
    pub fn feed(
        &mut self,
        input: &[u8],
        sink: &mut impl ResponseSink,
    ) -> Result<(usize, bool), HttpError> {
        self.seen_bytes |= !input.is_empty();
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                State::Done => return Ok((pos, true)),
                State::Head => match self.parse_head(rest, sink)? {
                    Some(n) => pos += n,
                    None => return Ok((pos, false)),
                },
                State::Length(remaining) => {
                    let n = remaining.min(rest.len() as u64) as usize;
                    self.deliver(&rest[..n], sink);
                    pos += n;
                    let left = remaining - n as u64;
                    if left > 0 {
                        self.state = State::Length(left);
                        return Ok((pos, false));
                    }
                    self.state = State::Done;
                }
                State::UntilClose => {
                    self.deliver(rest, sink);
                    return Ok((input.len(), false));
                }
                _ => {
                    pos += self.feed_chunked(rest, sink)?;
                    if self.state != State::Done {
                        return Ok((pos, false));
                    }
                }
            }
        }
    }

    /// The peer closed: completes a close-delimited body, otherwise the error
    /// that says where the response was cut.
    pub fn eof(&mut self, _sink: &mut impl ResponseSink) -> Result<(), HttpError> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            State::Head if !self.seen_bytes => Err(HttpError::ClosedBeforeResponse),
            State::Head => Err(HttpError::ClosedMidHeader),
            State::Length(_) => Err(HttpError::BodyShorterThanContentLength),
            _ => Err(HttpError::ClosedMidChunk),
        }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// May the connection carry the next request? Meaningful once complete.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Body bytes delivered so far (after de-chunking).
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    fn deliver(&mut self, data: &[u8], sink: &mut impl ResponseSink) {
        if !data.is_empty() {
            self.body_len += data.len() as u64;
            sink.body(data);
        }
    }

    /// Parse a head if `input` holds a complete one; returns its length.
    fn parse_head(
        &mut self,
        input: &[u8],
        sink: &mut impl ResponseSink,
    ) -> Result<Option<usize>, HttpError> {
        // Uninitialized slots: httparse fills what it uses, so a parse does
        // not first zero 2 KiB of headers.
        let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let config = httparse::ParserConfig::default();
        let len = match config.parse_response_with_uninit_headers(&mut resp, input, &mut headers) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(map_httparse(e)),
        };
        // httparse takes any three digits; a status below 100 is no status.
        let status = match resp.code {
            Some(code @ 100..=999) => code,
            _ => return Err(HttpError::MalformedStatusLine),
        };
        // Interim responses: skip them and parse the final one after.
        if (100..200).contains(&status) && status != 101 {
            return Ok(Some(len));
        }

        let mut content_length: Option<u64> = None;
        let mut transfer_encoding = false;
        let mut chunked = false;
        let (mut close, mut keep_alive_token) = (false, false);
        for h in resp.headers.iter() {
            let name = h.name;
            if name_is(name, b"content-length") {
                let n = parse_content_length(h.value)?;
                if content_length.is_some_and(|prev| prev != n) {
                    return Err(HttpError::InvalidContentLength);
                }
                content_length = Some(n);
            } else if name_is(name, b"transfer-encoding") {
                // Only the final coding decides the framing (RFC 9112 §6.3).
                if let Some(last) = tokens(h.value).last() {
                    transfer_encoding = true;
                    chunked = last.eq_ignore_ascii_case(b"chunked");
                }
            } else if name_is(name, b"connection") {
                for t in tokens(h.value) {
                    close |= t.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= t.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            sink.header(name, h.value);
        }

        self.status = status;
        self.keep_alive = match resp.version {
            Some(1) => !close,
            _ => keep_alive_token && !close,
        };
        let no_body = self.is_head || matches!(status, 101 | 204 | 304);
        self.state = if no_body {
            State::Done
        } else if transfer_encoding && chunked {
            State::ChunkSize {
                size: 0,
                digits: 0,
                past_digits: false,
                len: 0,
            }
        } else if transfer_encoding {
            State::UntilClose
        } else {
            match content_length {
                Some(0) => State::Done,
                Some(n) => State::Length(n),
                None => State::UntilClose,
            }
        };
        // A close-delimited body ends the connection; a response with both
        // framings is suspect, so do not trust the connection after it.
        if self.state == State::UntilClose
            || status == 101
            || (transfer_encoding && content_length.is_some())
        {
            self.keep_alive = false;
        }
        Ok(Some(len))
    }

    /// Advance through chunked framing; returns bytes consumed. Stops at the
    /// end of `input` or when the message is done.
    fn feed_chunked(
        &mut self,
        input: &[u8],
        sink: &mut impl ResponseSink,
    ) -> Result<usize, HttpError> {
        const NEXT_SIZE: State = State::ChunkSize {
            size: 0,
            digits: 0,
            past_digits: false,
            len: 0,
        };
        let mut pos = 0;
        while pos < input.len() && self.state != State::Done {
            let rest = &input[pos..];
            // Fast paths for the common whole-line cases; anything unusual
            // (extensions, a line split across reads, errors) goes byte by byte.
            match self.state {
                State::ChunkData(remaining) => {
                    let n = remaining.min(rest.len() as u64) as usize;
                    self.deliver(&rest[..n], sink);
                    pos += n;
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        State::ChunkDataCr
                    } else {
                        State::ChunkData(left)
                    };
                    continue;
                }
                State::ChunkDataCr if rest.starts_with(b"\r\n") => {
                    pos += 2;
                    self.state = NEXT_SIZE;
                    continue;
                }
                State::ChunkSize { len: 0, .. } => {
                    if let Some((size, n)) = plain_size_line(rest) {
                        pos += n;
                        self.state = if size == 0 {
                            State::Trailers {
                                line_start: true,
                                len: 0,
                            }
                        } else {
                            State::ChunkData(size)
                        };
                        continue;
                    }
                }
                State::Trailers {
                    line_start: true,
                    len: 0,
                } if rest.starts_with(b"\r\n") => {
                    pos += 2;
                    self.state = State::Done;
                    continue;
                }
                _ => {}
            }
            pos += 1;
            self.state = self.chunk_byte(rest[0])?;
        }
        Ok(pos)
    }

    /// One framing byte outside chunk data.
    fn chunk_byte(&self, b: u8) -> Result<State, HttpError> {
        Ok(match self.state {
            State::ChunkSize {
                size,
                digits,
                past_digits,
                len,
            } => {
                if len >= MAX_CHUNK_LINE {
                    return Err(HttpError::InvalidChunkSize);
                }
                let len = len + 1;
                match b {
                    b'\r' if digits > 0 => State::ChunkSizeLf(size),
                    b'\n' => return Err(HttpError::InvalidChunkSize),
                    // Inside `;ext` (or trailing whitespace) anything else goes.
                    _ if past_digits => State::ChunkSize {
                        size,
                        digits,
                        past_digits,
                        len,
                    },
                    b';' | b' ' | b'\t' if digits > 0 => State::ChunkSize {
                        size,
                        digits,
                        past_digits: true,
                        len,
                    },
                    _ => {
                        let d = hex_value(b).ok_or(HttpError::InvalidChunkSize)?;
                        if size > u64::MAX >> 4 {
                            return Err(HttpError::InvalidChunkSize);
                        }
                        let size = size << 4 | d;
                        let digits = digits.saturating_add(1);
                        State::ChunkSize {
                            size,
                            digits,
                            past_digits,
                            len,
                        }
                    }
                }
            }
            State::ChunkSizeLf(size) => match b {
                b'\n' if size == 0 => State::Trailers {
                    line_start: true,
                    len: 0,
                },
                b'\n' => State::ChunkData(size),
                _ => return Err(HttpError::InvalidChunkSize),
            },
            State::ChunkDataCr if b == b'\r' => State::ChunkDataLf,
            State::ChunkDataLf if b == b'\n' => State::ChunkSize {
                size: 0,
                digits: 0,
                past_digits: false,
                len: 0,
            },
            State::ChunkDataCr | State::ChunkDataLf => return Err(HttpError::MalformedChunk),
            State::Trailers { line_start, len } => {
                if len >= MAX_TRAILERS {
                    return Err(HttpError::HeaderTooLarge);
                }
                match b {
                    b'\r' if line_start => State::TrailersLf,
                    b'\n' if line_start => return Err(HttpError::MalformedChunk),
                    b'\n' => State::Trailers {
                        line_start: true,
                        len: len + 1,
                    },
                    _ => State::Trailers {
                        line_start: false,
                        len: len + 1,
                    },
                }
            }
            State::TrailersLf if b == b'\n' => State::Done,
            State::TrailersLf => return Err(HttpError::MalformedChunk),
            // Not reachable from feed_chunked; harmless if it were.
            s => s,
        })
    }
}

fn map_httparse(e: httparse::Error) -> HttpError {
    match e {
        httparse::Error::TooManyHeaders => HttpError::TooManyHeaders,
        httparse::Error::HeaderName | httparse::Error::HeaderValue | httparse::Error::NewLine => {
            HttpError::MalformedHeader
        }
        _ => HttpError::MalformedStatusLine,
    }
}

/// `Content-Length: 42`, also `42, 42` (repeated identical values are allowed
/// by RFC 9110 §8.6); anything else is invalid.
fn parse_content_length(value: &[u8]) -> Result<u64, HttpError> {
    let mut result = None;
    for part in value.split(|&b| b == b',') {
        let digits = trim(part);
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(HttpError::InvalidContentLength);
        }
        let n = digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if result.is_some_and(|prev| prev != n) {
            return Err(HttpError::InvalidContentLength);
        }
        result = Some(n);
    }
    result.ok_or(HttpError::InvalidContentLength)
}

/// Whether the header `name` (a token: httparse rejects anything else) is
/// `lower` (lowercase letters and `-`) in any case. Setting bit 0x20 maps
/// `A-Z` onto `a-z` and keeps `a-z` and `-`; the one other byte it maps
/// onto a letter or `-` is CR (onto `-`), which no token holds. No branch
/// per byte: this runs for every header of every response, where
/// `eq_ignore_ascii_case` (lowercasing both sides byte by byte) cost
/// ~5 % of raw mode's user-space instructions.
fn name_is(name: &str, lower: &[u8]) -> bool {
    let name = name.as_bytes();
    name.len() == lower.len()
        && name
            .iter()
            .zip(lower)
            .fold(0u8, |diff, (n, l)| diff | ((n | 0x20) ^ l))
            == 0
}

/// Comma-separated tokens of a header value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|t| !t.is_empty())
}

fn trim(s: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ws(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// A complete `HEX\r\n` size line (no extension, at most 15 digits, so no
/// overflow): (size, line length). `None` means "use the general path".
fn plain_size_line(input: &[u8]) -> Option<(u64, usize)> {
    let digits = input
        .iter()
        .take(16)
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    if digits == 0 || digits == 16 || input.get(digits..digits + 2) != Some(b"\r\n") {
        return None;
    }
    let size = input[..digits]
        .iter()
        .fold(0u64, |n, &b| n << 4 | hex_value(b).unwrap_or(0));
    Some((size, digits + 2))
}

fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
