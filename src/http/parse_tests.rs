//! Unit tests of the sans-I/O response parser (split points, fuzzed input).
use super::*;

/// Records what the parser hands out.
#[derive(Default)]
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

#[derive(Debug, PartialEq)]
struct Parsed {
    status: u16,
    keep_alive: bool,
    body: Vec<u8>,
}

/// Drive the parser the way `Connection` does: append each piece to a
/// bounded buffer, feed, keep only unconsumed bytes; EOF after the last.
fn drive(pieces: &[&[u8]], is_head: bool, sink: &mut Collect) -> Result<Parsed, HttpError> {
    let mut p = ResponseParser::new();
    p.start(is_head);
    let mut buf: Vec<u8> = Vec::new();
    let mut done = false;
    for piece in pieces {
        buf.extend_from_slice(piece);
        let (used, complete) = p.feed(&buf, sink)?;
        assert!(used <= buf.len());
        buf.drain(..used);
        if complete {
            done = true;
            break;
        }
        if buf.len() > 64 * 1024 {
            return Err(HttpError::HeaderTooLarge);
        }
    }
    if !done {
        p.eof(sink)?;
    }
    assert_eq!(p.body_len(), sink.body.len() as u64);
    Ok(Parsed {
        status: p.status(),
        keep_alive: p.keep_alive(),
        body: sink.body.clone(),
    })
}

fn parse(input: &[u8]) -> Result<Parsed, HttpError> {
    drive(&[input], false, &mut Collect::default())
}

/// Every way of cutting `input` in two and in single bytes gives `expect`.
fn parse_all_splits(input: &[u8], is_head: bool) -> Result<Parsed, HttpError> {
    let whole = drive(&[input], is_head, &mut Collect::default());
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        assert_eq!(
            drive(&[a, b], is_head, &mut Collect::default()),
            whole,
            "split at {i}"
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(
        drive(&bytes, is_head, &mut Collect::default()),
        whole,
        "byte by byte"
    );
    whole
}

fn ok(status: u16, keep_alive: bool, body: &[u8]) -> Result<Parsed, HttpError> {
    Ok(Parsed {
        status,
        keep_alive,
        body: body.to_vec(),
    })
}

#[test]
fn content_length_body() {
    let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello";
    assert_eq!(parse_all_splits(r, false), ok(200, true, b"hello"));
    let mut sink = Collect::default();
    drive(&[r], false, &mut sink).unwrap();
    assert_eq!(sink.headers[1], ("X-A".to_string(), b"1".to_vec()));
    // Bytes after the body are left for the caller to notice.
    let mut p = ResponseParser::new();
    p.start(false);
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA";
    assert_eq!(p.feed(input, &mut DiscardBody), Ok((input.len() - 5, true)));
}

#[test]
fn chunked_with_extensions_and_trailers() {
    let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n\
              5;name=\"v;x\"\r\nhello\r\n1A \t;e\r\nabcdefghijklmnopqrstuvwxyz\r\n\
              0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n";
    assert_eq!(
        parse_all_splits(r, false),
        ok(200, true, b"helloabcdefghijklmnopqrstuvwxyz")
    );
    let empty = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n000\r\n\r\n";
    assert_eq!(parse_all_splits(empty, false), ok(200, true, b""));
}

#[test]
fn close_delimited_body() {
    let r = b"HTTP/1.1 200 OK\r\n\r\nuntil the end";
    assert_eq!(parse_all_splits(r, false), ok(200, false, b"until the end"));
    let gz = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabc";
    assert_eq!(parse(gz), ok(200, false, b"abc"));
}

#[test]
fn no_body_for_head_1xx_204_304() {
    let r = b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n";
    assert_eq!(parse_all_splits(r, true), ok(200, true, b""));
    for s in ["204 No Content", "304 Not Modified"] {
        let r = format!("HTTP/1.1 {s}\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(parse(r.as_bytes()).map(|p| p.body), Ok(vec![]));
    }
    let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
              HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(parse_all_splits(r, false), ok(201, true, b"ok"));
    let mut sink = Collect::default();
    drive(&[r], false, &mut sink).unwrap();
    assert_eq!(sink.headers.len(), 1, "interim headers are not reported");
}

#[test]
fn keep_alive_rules() {
    let cl0 = "Content-Length: 0\r\n\r\n";
    for (head, expect) in [
        ("HTTP/1.1 200 OK\r\n", true),
        ("HTTP/1.1 200 OK\r\nConnection: Close\r\n", false),
        ("HTTP/1.1 200 OK\r\nConnection: x, close\r\n", false),
        ("HTTP/1.0 200 OK\r\n", false),
        ("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n", true),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n", false),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", false), // CL and TE
    ] {
        let r = format!(
            "{head}{cl0}{}",
            if head.contains("chunked") {
                "0\r\n\r\n"
            } else {
                ""
            }
        );
        assert_eq!(parse(r.as_bytes()).unwrap().keep_alive, expect, "{head:?}");
    }
}

/// Each malformed or cut response names its error, however it is split.
#[test]
fn errors_are_named() {
    use HttpError::*;
    let many: String = (0..=MAX_HEADERS).map(|i| format!("H{i}: v\r\n")).collect();
    let too_many = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
    let long_ext = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(5000));
    let mut cases: Vec<(String, HttpError)> = vec![
        (String::new(), ClosedBeforeResponse),
        ("HTTP/1.1 200 OK\r\nContent-".into(), ClosedMidHeader),
        ("HTTP/1.1 100 Continue\r\n\r\n".into(), ClosedMidHeader),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello".into(),
            BodyShorterThanContentLength,
        ),
        ("HTTX/1.1 200 OK\r\n\r\n".into(), MalformedStatusLine),
        ("HTTP/1.1 2x0 OK\r\n\r\n".into(), MalformedStatusLine),
        (
            "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n".into(),
            MalformedHeader,
        ),
        (
            "HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n".into(),
            MalformedHeader,
        ),
        (too_many, TooManyHeaders),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello".into(),
            InvalidContentLength,
        ),
    ];
    for cl in ["abc", "", "-1", "1 2", "99999999999999999999", "5, 6", "+5"] {
        cases.push((
            format!("HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\n\r\nhello"),
            InvalidContentLength,
        ));
    }
    let chunked = [
        ("zz\r\n", InvalidChunkSize),
        ("\r\n", InvalidChunkSize),
        (";x\r\n", InvalidChunkSize),
        ("5\n", InvalidChunkSize),
        ("5\rX", InvalidChunkSize),
        ("-5\r\n", InvalidChunkSize),
        ("11111111111111111\r\n", InvalidChunkSize),
        (&long_ext, InvalidChunkSize),
        ("5\r\nhelloX\r\n0\r\n\r\n", MalformedChunk),
        ("5\r\nhello\rX0\r\n\r\n", MalformedChunk),
        ("0\r\n\rX", MalformedChunk),
        ("ffffffffffffffff\r\nab", ClosedMidChunk),
        ("5\r\nhel", ClosedMidChunk),
        ("5\r\nhello\r\n", ClosedMidChunk),
        ("0\r\nTrailer: 1\r\n", ClosedMidChunk),
    ];
    for (body, e) in chunked {
        cases.push((
            format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{body}"),
            e,
        ));
    }
    for (input, expect) in cases {
        assert_eq!(
            parse_all_splits(input.as_bytes(), false),
            Err(expect),
            "{input:?}"
        );
    }
    let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(parse(r), ok(200, true, b"hello"));
}

/// xorshift64*: a deterministic generator, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn never_panics_on_mutated_responses_at_random_splits() {
    let seeds: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nclose delimited",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    ];
    let alphabet = b"\r\n:;, 0123456789abcdefHTP/.\x00\xff-";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..5000 {
        let mut input = seeds[round % seeds.len()].to_vec();
        for _ in 0..rng.below(4) {
            let at = rng.below(input.len() + 1);
            let byte = if rng.below(2) == 0 {
                alphabet[rng.below(alphabet.len())]
            } else {
                rng.next() as u8
            };
            match rng.below(3) {
                0 if at < input.len() => input[at] = byte,
                1 if at < input.len() => {
                    input.remove(at);
                }
                _ => input.insert(at, byte),
            }
        }
        let mut pieces = Vec::new();
        let mut rest = &input[..];
        while !rest.is_empty() {
            let (a, b) = rest.split_at(1 + rng.below(rest.len()));
            pieces.push(a);
            rest = b;
        }
        let is_head = rng.below(8) == 0;
        let whole = drive(&[&input], is_head, &mut Collect::default());
        let split = drive(&pieces, is_head, &mut Collect::default());
        assert_eq!(
            whole,
            split,
            "round {round}: {:?}",
            String::from_utf8_lossy(&input)
        );
    }
}

#[test]
fn status_below_100_is_malformed() {
    for line in ["000 Zero", "099 Low", "042 X"] {
        let input = format!("HTTP/1.1 {line}\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            parse_all_splits(input.as_bytes(), false),
            Err(HttpError::MalformedStatusLine),
            "{line}"
        );
    }
    let high = b"HTTP/1.1 999 High\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(parse_all_splits(high, false), ok(999, true, b""));
}

#[test]
fn up_to_max_headers_pass_and_one_more_fails() {
    let with = |n: usize| {
        let many: String = (1..n).map(|i| format!("X-{i}: v\r\n")).collect();
        format!("HTTP/1.1 200 OK\r\n{many}Content-Length: 1\r\n\r\nx")
    };
    assert_eq!(parse(with(100).as_bytes()), ok(200, true, b"x"));
    assert_eq!(parse(with(MAX_HEADERS).as_bytes()), ok(200, true, b"x"));
    assert_eq!(
        parse(with(MAX_HEADERS + 1).as_bytes()),
        Err(HttpError::TooManyHeaders)
    );
}

/// The framing headers are found in any case, and nothing else is: not a
/// name one byte off, shorter or longer, nor `_` for `-`.
#[test]
fn framing_header_names_match_in_any_case_only() {
    for name in [
        "content-length",
        "Content-Length",
        "CONTENT-LENGTH",
        "cOnTeNt-LeNgTh",
    ] {
        assert!(name_is(name, b"content-length"), "{name}");
    }
    for name in [
        "content_length",
        "content-lengtH2",
        "content-lengt",
        "contentXlength",
        "content-lenghh",
        "",
    ] {
        assert!(!name_is(name, b"content-length"), "{name}");
    }
    assert!(name_is("Transfer-Encoding", b"transfer-encoding"));
    assert!(name_is("CONNECTION", b"connection"));
    assert!(!name_is("connectioN ", b"connection"));
    // Through the parser: a mixed-case Content-Length frames the body.
    let mut sink = Collect::default();
    let got = drive(
        &[b"HTTP/1.1 200 OK\r\ncOnTeNt-LeNgTh: 3\r\nCONNECTION: Close\r\n\r\nabcEXTRA"],
        false,
        &mut sink,
    );
    assert_eq!(
        got,
        Ok(Parsed {
            status: 200,
            keep_alive: false,
            body: b"abc".to_vec()
        })
    );
}
