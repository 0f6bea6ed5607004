//! The client's read side without the socket: how the bytes of each read
//! reach the [`ResponseParser`], and what is left over.
//!
//! [`Connection`](super::Connection) reads into one fixed buffer and hands
//! every read to a [`ReadCursor`]; the fuzz target (`tests/fuzz`) drives the
//! same cursor with reads split at points of its choosing, so what is
//! fuzzed is what the client runs. Only an incomplete head stays in the
//! buffer between reads (httparse needs it contiguous); body bytes stream
//! through. Bytes after a complete response are reported, never parsed as
//! the next response: they belong to no request.

use super::{HttpError, ResponseParser, ResponseSink};

/// Where a response stands after a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Incomplete: read more.
    More,
    /// Complete; `leftover` when the same read held bytes after it.
    Done { leftover: bool },
}

/// `buf[..start]` is consumed: the read cursor over one response.
#[derive(Debug, Default)]
pub struct ReadCursor {
    start: usize,
}

impl ReadCursor {
    pub fn new() -> Self {
        ReadCursor { start: 0 }
    }

    /// Before a read: make room at the end of `buf` (whose capacity is the
    /// largest head accepted). A full buffer of one incomplete head is
    /// `HeaderTooLarge`.
    pub fn make_room(&mut self, buf: &mut Vec<u8>) -> Result<(), HttpError> {
        if buf.len() < buf.capacity() {
            return Ok(());
        }
        if self.start == 0 {
            return Err(HttpError::HeaderTooLarge);
        }
        buf.copy_within(self.start.., 0);
        buf.truncate(buf.len() - self.start);
        self.start = 0;
        Ok(())
    }

    /// After a read appended bytes to `buf`: parse what is new.
    pub fn advance(
        &mut self,
        parser: &mut ResponseParser,
        buf: &mut Vec<u8>,
        sink: &mut impl ResponseSink,
    ) -> Result<Step, HttpError> {
        let unread = buf.get(self.start..).unwrap_or_default();
        let (used, done) = parser.feed(unread, sink)?;
        self.start = self.start.saturating_add(used);
        if done {
            return Ok(Step::Done {
                leftover: self.start < buf.len(),
            });
        }
        if self.start >= buf.len() {
            buf.clear();
            self.start = 0;
        }
        Ok(Step::More)
    }
}
