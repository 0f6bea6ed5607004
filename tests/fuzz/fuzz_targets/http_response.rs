//! Bytes from a server, as the HTTP client reads them: a keep-alive
//! sequence of responses (some to HEAD requests) read through the client's
//! own [`ReadCursor`] into a fixed buffer, with each read cut where the
//! fuzzer says. None of it may panic, and the cuts must not matter: the
//! first response read in fuzzer-sized pieces gives exactly the outcome,
//! headers and body it gives when read in the largest pieces that fit.
//!
//! Input: byte 0 picks the buffer size (the largest head accepted), byte 1
//! which responses answer HEAD, bytes 2..10 the read sizes (cycled; 0 means
//! as much as fits), the rest is what the server sent, then EOF.
//!
//! cd /work/main && RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz \
//!     http_response -- -max_total_time=60

#![no_main]

use libfuzzer_sys::fuzz_target;
use locusta::http::{HttpError, ReadCursor, ResponseParser, ResponseSink, Step};

/// Responses per connection before the driver stops.
const MAX_RESPONSES: usize = 8;

#[derive(Default, PartialEq, Eq, Debug)]
struct Collect {
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl ResponseSink for Collect {
    fn header(&mut self, name: &str, value: &[u8]) {
        self.headers.push((name.to_string(), value.to_vec()));
    }
    fn body(&mut self, data: &[u8]) {
        self.body.extend_from_slice(data);
    }
}

/// What one response came to.
#[derive(PartialEq, Eq, Debug)]
struct Outcome {
    /// status, body length, keep-alive, bytes after it in the same read.
    result: Result<(u16, u64, bool, bool), HttpError>,
    sink: Collect,
}

/// Reads from `stream`, as the socket would deliver it.
struct Wire<'a> {
    stream: &'a [u8],
    pos: usize,
    cuts: &'a [u8],
    next_cut: usize,
}

impl Wire<'_> {
    /// Append the next read to `buf` (up to its capacity); false at EOF.
    fn read(&mut self, buf: &mut Vec<u8>) -> bool {
        let rest = self.stream.len() - self.pos;
        if rest == 0 {
            return false;
        }
        let room = buf.capacity() - buf.len();
        let cut = match self.cuts.get(self.next_cut % self.cuts.len().max(1)) {
            Some(&c) if c > 0 => usize::from(c),
            _ => usize::MAX,
        };
        self.next_cut += 1;
        let n = rest.min(room).min(cut);
        buf.extend_from_slice(&self.stream[self.pos..self.pos + n]);
        self.pos += n;
        true
    }
}

/// One exchange's read side, exactly as `Connection::exchange` runs it.
fn read_response(wire: &mut Wire, buf: &mut Vec<u8>, is_head: bool) -> Outcome {
    let mut parser = ResponseParser::new();
    parser.start(is_head);
    let mut cursor = ReadCursor::new();
    let mut sink = Collect::default();
    buf.clear();
    let result = loop {
        if let Err(e) = cursor.make_room(buf) {
            break Err(e);
        }
        assert!(buf.len() < buf.capacity(), "make_room made no room");
        if !wire.read(buf) {
            break parser.eof(&mut sink).map(|()| false);
        }
        match cursor.advance(&mut parser, buf, &mut sink) {
            Err(e) => break Err(e),
            Ok(Step::Done { leftover }) => break Ok(leftover),
            Ok(Step::More) => {}
        }
    };
    let result = result.map(|leftover| {
        let status = parser.status();
        assert!(
            (100..=999).contains(&status),
            "status {status} reported as a response"
        );
        assert_eq!(parser.body_len(), sink.body.len() as u64);
        if is_head || matches!(status, 101 | 204 | 304) {
            assert!(sink.body.is_empty(), "a body where none may be");
        }
        (status, parser.body_len(), parser.keep_alive(), leftover)
    });
    Outcome { result, sink }
}

fuzz_target!(|bytes: &[u8]| {
    if bytes.len() < 10 {
        return;
    }
    let capacity = if bytes[0] & 0x80 != 0 {
        64 * 1024
    } else {
        32 + usize::from(bytes[0]) * 8
    };
    let heads = bytes[1];
    let cuts = &bytes[2..10];
    let stream = &bytes[10..];

    // The keep-alive sequence, in fuzzer-cut reads: it ends at an error,
    // EOF, a response that closes the connection, or one with bytes after it.
    let mut buf = Vec::with_capacity(capacity);
    let mut wire = Wire {
        stream,
        pos: 0,
        cuts,
        next_cut: 0,
    };
    let mut first = None;
    for i in 0..MAX_RESPONSES {
        let outcome = read_response(&mut wire, &mut buf, heads & (1 << i) != 0);
        let go_on = matches!(outcome.result, Ok((_, _, true, false)));
        let delivered: usize = outcome.sink.body.len();
        assert!(delivered <= wire.pos, "more body than bytes read");
        if first.is_none() {
            first = Some(outcome);
        }
        if !go_on {
            break;
        }
    }

    // The first response read in the largest pieces: the same in every way,
    // except whether bytes followed it in the same read.
    let mut whole_buf = Vec::with_capacity(capacity);
    let mut whole = Wire {
        stream,
        pos: 0,
        cuts: &[],
        next_cut: 0,
    };
    let mut reference = read_response(&mut whole, &mut whole_buf, heads & 1 != 0);
    let mut first = first.expect("one response read");
    for o in [&mut first, &mut reference] {
        if let Ok((_, _, _, ref mut leftover)) = o.result {
            *leftover = false;
        }
    }
    assert_eq!(first, reference, "read cuts changed the outcome");
});
