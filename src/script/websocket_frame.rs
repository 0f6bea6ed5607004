//! RFC 6455 framing for the client side, sans I/O: frame headers read from
//! a byte slice ([`parse_header`]), client frames written masked
//! ([`write_frame`]), fragmented messages put together ([`Assembler`]),
//! close payloads read ([`close_payload`]), and the handshake's key and
//! accept value.
//!
//! Why our own module and not `tungstenite`: tungstenite drives a
//! blocking `Read + Write` stream (its `WebSocket<S>`); over monoio's
//! owned-buffer, cancelable ops it would need a `WouldBlock` shim and a
//! copy of every byte into and out of it, and its errors would need
//! translating into ours anyway. The client side of the protocol is small
//! (about 200 lines here): header parsing with every check we want named
//! (RSV bits, opcodes, masking, control frame rules, lengths, UTF-8),
//! masking, fragmentation. SHA-1 for the accept key is ring's, which
//! rustls already brings; no new crate. Frames are parsed straight out of
//! the connection's receive buffer: a message costs one copy (into the
//! Lua string), none for single-frame messages beyond that.
//!
//! Limits: a frame or a message longer than the caller's `max` is an
//! error before its payload is read, so nothing grows past `max`.

use std::cell::Cell;

/// Frame opcodes (RFC 6455 §5.2).
pub(super) const CONTINUATION: u8 = 0x0;
pub(super) const TEXT: u8 = 0x1;
pub(super) const BINARY: u8 = 0x2;
pub(super) const CLOSE: u8 = 0x8;
pub(super) const PING: u8 = 0x9;
pub(super) const PONG: u8 = 0xA;

/// What is wrong with the server's bytes (the text is shown to the user).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum FrameError {
    #[error("frame with reserved bits set (0x{0:x}) but no extension was negotiated")]
    Reserved(u8),
    #[error("frame with unknown opcode 0x{0:x}")]
    Opcode(u8),
    #[error("masked frame from the server (servers must not mask, RFC 6455 §5.1)")]
    Masked,
    #[error("control frame (opcode 0x{0:x}) with {1} bytes of payload (at most 125)")]
    ControlTooLong(u8, u64),
    #[error("fragmented control frame (opcode 0x{0:x})")]
    ControlFragmented(u8),
    #[error("frame length with the most significant bit set")]
    BadLength,
    #[error("message of {0} bytes or more is over the limit of {1} bytes")]
    TooLarge(u64, usize),
    #[error("continuation frame with no message to continue")]
    StrayContinuation,
    #[error("new data frame while a fragmented message is still open")]
    Interleaved,
    #[error("text message is not valid UTF-8")]
    BadUtf8,
    #[error("close frame with a 1-byte payload")]
    CloseOneByte,
    #[error("close frame with invalid status code {0}")]
    CloseCode(u16),
    #[error("close frame reason is not valid UTF-8")]
    CloseReasonUtf8,
}

/// One frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) fin: bool,
    pub(super) opcode: u8,
    /// Header bytes before the payload.
    pub(super) header_len: usize,
    pub(super) payload_len: usize,
}

impl Header {
    pub(super) fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// Read a server frame's header from the start of `buf`: `Ok(None)` until
/// enough bytes are there. A payload longer than `max` is an error here,
/// before any of it is buffered.
pub(super) fn parse_header(buf: &[u8], max: usize) -> Result<Option<Header>, FrameError> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Reserved(b0 & 0x70));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if !matches!(opcode, CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG) {
        return Err(FrameError::Opcode(opcode));
    }
    if b1 & 0x80 != 0 {
        return Err(FrameError::Masked);
    }
    let (len, header_len) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u16::from_be_bytes([b[0], b[1]]) as u64, 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                (u64::from_be_bytes(a), 10)
            }
            None => return Ok(None),
        },
        n => (n as u64, 2),
    };
    if len >> 63 != 0 {
        return Err(FrameError::BadLength);
    }
    if opcode >= CLOSE {
        if len > 125 {
            return Err(FrameError::ControlTooLong(opcode, len));
        }
        if !fin {
            return Err(FrameError::ControlFragmented(opcode));
        }
    }
    if len > max as u64 {
        return Err(FrameError::TooLarge(len, max));
    }
    Ok(Some(Header {
        fin,
        opcode,
        header_len,
        payload_len: len as usize,
    }))
}

/// Append one client frame (FIN set, masked with `mask`) to `out`.
pub(super) fn write_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// A close frame's payload: status code (2 bytes) and UTF-8 reason.
pub(super) fn close_body(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// Read a close frame's payload: (code, reason); no code is 1005.
pub(super) fn close_payload(p: &[u8]) -> Result<(u16, String), FrameError> {
    match p {
        [] => Ok((1005, String::new())),
        [_] => Err(FrameError::CloseOneByte),
        [a, b, rest @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if !valid_close_code(code) {
                return Err(FrameError::CloseCode(code));
            }
            let reason = std::str::from_utf8(rest).map_err(|_| FrameError::CloseReasonUtf8)?;
            Ok((code, reason.to_string()))
        }
    }
}

/// Codes a peer may send (RFC 6455 §7.4).
pub(super) fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// Fragments of the message being received.
#[derive(Default)]
pub(super) struct Assembler {
    /// The message's opcode (TEXT/BINARY) while fragments are open.
    open: Option<u8>,
    data: Vec<u8>,
}

impl Assembler {
    /// Add a data frame; returns the message when it is complete.
    pub(super) fn push(
        &mut self,
        h: &Header,
        payload: &[u8],
        max: usize,
    ) -> Result<Option<(u8, Vec<u8>)>, FrameError> {
        let kind = match (h.opcode, self.open) {
            (CONTINUATION, None) => return Err(FrameError::StrayContinuation),
            (CONTINUATION, Some(k)) => k,
            (_, Some(_)) => return Err(FrameError::Interleaved),
            (k, None) => k,
        };
        if self.data.len() + payload.len() > max {
            return Err(FrameError::TooLarge(
                (self.data.len() + payload.len()) as u64,
                max,
            ));
        }
        if !h.fin {
            self.open = Some(kind);
            self.data.extend_from_slice(payload);
            return Ok(None);
        }
        let msg = if self.open.take().is_some() {
            self.data.extend_from_slice(payload);
            std::mem::take(&mut self.data)
        } else {
            payload.to_vec()
        };
        if kind == TEXT && std::str::from_utf8(&msg).is_err() {
            return Err(FrameError::BadUtf8);
        }
        Ok(Some((kind, msg)))
    }
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub(super) fn accept_key(key: &str) -> String {
    use base64::Engine;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes());
    ctx.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

/// A fresh handshake key: 16 random bytes, base64.
pub(super) fn new_key() -> String {
    use base64::Engine;
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&next_random().to_le_bytes());
    k[8..].copy_from_slice(&next_random().to_le_bytes());
    base64::engine::general_purpose::STANDARD.encode(k)
}

/// A masking key for the next frame.
pub(super) fn new_mask() -> [u8; 4] {
    (next_random() as u32).to_le_bytes()
}

thread_local! {
    /// xorshift64* state, seeded once per thread from the OS.
    static RANDOM: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    let s = match ring::rand::SystemRandom::new().fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        // No OS randomness: the clock (masking only needs to vary).
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9, |d| d.as_nanos() as u64),
    };
    s | 1
}

/// Masks are not secrets from the server (it sees them); they only have
/// to be unpredictable to scripts and intermediaries, so a fast PRNG
/// seeded from the OS, not a syscall per frame.
fn next_random() -> u64 {
    RANDOM.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn headers_are_checked() {
        assert_eq!(parse_header(&[0x81], 10), Ok(None));
        let h = parse_header(&[0x81, 5], 10).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.header_len, h.payload_len),
            (true, TEXT, 2, 5)
        );
        assert_eq!(
            parse_header(&[0xC1, 0], 10),
            Err(FrameError::Reserved(0x40))
        );
        assert_eq!(parse_header(&[0x83, 0], 10), Err(FrameError::Opcode(3)));
        assert_eq!(parse_header(&[0x81, 0x80], 10), Err(FrameError::Masked));
        assert_eq!(
            parse_header(&[0x89, 126, 0, 200], 1000),
            Err(FrameError::ControlTooLong(PING, 200))
        );
        assert_eq!(
            parse_header(&[0x09, 0], 10),
            Err(FrameError::ControlFragmented(PING))
        );
        assert_eq!(
            parse_header(&[0x82, 126, 1, 0], 10),
            Err(FrameError::TooLarge(256, 10))
        );
        let huge = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(parse_header(&huge, 10), Err(FrameError::BadLength));
        assert_eq!(parse_header(&[0x82, 127, 0, 0], 10), Ok(None));
    }

    #[test]
    fn frames_round_trip_masked() {
        for n in [0usize, 5, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut out = Vec::new();
            write_frame(&mut out, BINARY, &payload, [1, 2, 3, 4]);
            // Unmask as a server would.
            let len_code = out[1] & 0x7F;
            assert!(out[1] & 0x80 != 0);
            let at = match len_code {
                126 => 4,
                127 => 10,
                _ => 2,
            };
            let mask = [out[at], out[at + 1], out[at + 2], out[at + 3]];
            let got: Vec<u8> = out[at + 4..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i & 3])
                .collect();
            assert_eq!(got, payload, "{n}");
        }
    }

    #[test]
    fn fragments_assemble_and_misuse_is_named() {
        let mut a = Assembler::default();
        let first = Header {
            fin: false,
            opcode: TEXT,
            header_len: 2,
            payload_len: 2,
        };
        let cont = Header {
            fin: true,
            opcode: CONTINUATION,
            header_len: 2,
            payload_len: 2,
        };
        assert_eq!(a.push(&first, b"he", 10), Ok(None));
        assert_eq!(a.push(&first, b"he", 10), Err(FrameError::Interleaved));
        assert_eq!(a.push(&cont, b"yo", 10), Ok(Some((TEXT, b"heyo".to_vec()))));
        assert_eq!(a.push(&cont, b"yo", 10), Err(FrameError::StrayContinuation));
        let bad = Header {
            fin: true,
            opcode: TEXT,
            header_len: 2,
            payload_len: 1,
        };
        assert_eq!(a.push(&bad, &[0xFF], 10), Err(FrameError::BadUtf8));
        let mut b = Assembler::default();
        assert_eq!(b.push(&first, b"abcdef", 8), Ok(None));
        assert!(matches!(
            b.push(&cont, b"ghi", 8),
            Err(FrameError::TooLarge(9, 8))
        ));
    }

    #[test]
    fn close_payloads() {
        assert_eq!(close_payload(&[]), Ok((1005, String::new())));
        assert_eq!(close_payload(&[3]), Err(FrameError::CloseOneByte));
        assert_eq!(
            close_payload(&close_body(1000, "bye")),
            Ok((1000, "bye".into()))
        );
        assert_eq!(
            close_payload(&[0x03, 0xED]),
            Err(FrameError::CloseCode(1005))
        );
        assert_eq!(
            close_payload(&[0x03, 0xE8, 0xFF]),
            Err(FrameError::CloseReasonUtf8)
        );
    }
}
