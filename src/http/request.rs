//! Serialize an HTTP/1.1 request straight into a reusable byte buffer.
//!
//! No intermediate `String`s: the head is appended piece by piece and the
//! Content-Length is formatted on the stack, so once the caller's `Vec` has
//! grown to its working size a request costs no allocation at all.

use super::Method;

const USER_AGENT: &[u8] =
    concat!("User-Agent: locusta/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes();

/// Append a complete request to `buf` (the caller clears it between requests).
///
/// `Host:` and `User-Agent:` are added unless `headers` already has them
/// (names compare case-insensitively); `Content-Length` is added when the
/// body is non-empty or the method is POST/PUT/PATCH, unless the caller gave
/// Content-Length or Transfer-Encoding. Header names and values are written
/// as given, except that CR/LF in a value become spaces and bytes in the path
/// that cannot appear in a request line are percent-encoded: a script must
/// not be able to forge a second request by accident.
pub fn write_request(
    buf: &mut Vec<u8>,
    method: Method,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    // One pass over the caller's headers: which defaults they override, and
    // how much room the request needs (one reserve, then plain copies).
    let (mut has_host, mut has_agent, mut has_length) = (false, false, false);
    let mut room =
        method.as_str().len() + path.len() + host.len() + USER_AGENT.len() + body.len() + 64;
    for (name, value) in headers {
        room += name.len() + value.len() + 4;
        match name.len() {
            4 => has_host |= name.eq_ignore_ascii_case("host"),
            10 => has_agent |= name.eq_ignore_ascii_case("user-agent"),
            14 => has_length |= name.eq_ignore_ascii_case("content-length"),
            17 => has_length |= name.eq_ignore_ascii_case("transfer-encoding"),
            _ => {}
        }
    }
    buf.reserve(room);

    buf.extend_from_slice(method.as_str().as_bytes());
    buf.push(b' ');
    push_path(buf, path);
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    if !has_host {
        buf.extend_from_slice(b"Host: ");
        push_value(buf, host);
        buf.extend_from_slice(b"\r\n");
    }
    if !has_agent {
        buf.extend_from_slice(USER_AGENT);
    }
    for (name, value) in headers {
        push_value(buf, name);
        buf.extend_from_slice(b": ");
        push_value(buf, value);
        buf.extend_from_slice(b"\r\n");
    }
    let wants_length =
        !body.is_empty() || matches!(method, Method::Post | Method::Put | Method::Patch);
    if wants_length && !has_length {
        buf.extend_from_slice(b"Content-Length: ");
        push_decimal(buf, body.len() as u64);
        buf.extend_from_slice(b"\r\n");
    }
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(body);
}

/// The request target, with spaces and control bytes percent-encoded
/// (an empty path becomes `/`).
fn push_path(buf: &mut Vec<u8>, path: &str) {
    if path.is_empty() {
        buf.push(b'/');
    } else if !has_byte(path.as_bytes(), |b| b <= b' ' || b == 0x7f) {
        buf.extend_from_slice(path.as_bytes());
    } else {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        for b in path.bytes() {
            if b <= b' ' || b == 0x7f {
                buf.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            } else {
                buf.push(b);
            }
        }
    }
}

/// A header name or value, with CR and LF replaced so it stays on one line.
fn push_value(buf: &mut Vec<u8>, s: &str) {
    if !has_byte(s.as_bytes(), |b| b == b'\r' || b == b'\n') {
        buf.extend_from_slice(s.as_bytes());
    } else {
        buf.extend(
            s.bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    }
}

/// Whether any byte matches: 16 bytes per step without early exit, so the
/// compiler vectorizes it (these scans are most of write_request's time).
#[inline(always)]
fn has_byte(s: &[u8], matches: impl Fn(u8) -> bool) -> bool {
    let mut chunks = s.chunks_exact(16);
    let mut found = false;
    for chunk in &mut chunks {
        found |= chunk.iter().fold(false, |acc, &b| acc | matches(b));
    }
    found || chunks.remainder().iter().any(|&b| matches(b))
}

/// `n` in decimal, formatted on the stack.
fn push_decimal(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, path: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
        let mut buf = Vec::new();
        write_request(&mut buf, method, path, "example.com:8080", headers, body);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn get_has_host_and_user_agent_and_no_length() {
        let ua = format!("User-Agent: locusta/{}\r\n", env!("CARGO_PKG_VERSION"));
        assert_eq!(
            req(Method::Get, "/a?b=1", &[("Accept", "*/*")], b""),
            format!("GET /a?b=1 HTTP/1.1\r\nHost: example.com:8080\r\n{ua}Accept: */*\r\n\r\n")
        );
    }

    #[test]
    fn post_always_has_content_length() {
        let s = req(Method::Post, "/p", &[], b"");
        assert!(s.contains("\r\nContent-Length: 0\r\n\r\n"), "{s}");
        let s = req(Method::Put, "/p", &[], b"hello");
        assert!(s.ends_with("\r\nContent-Length: 5\r\n\r\nhello"), "{s}");
        let s = req(Method::Delete, "/p", &[], b"x");
        assert!(s.contains("Content-Length: 1\r\n"), "{s}");
    }

    #[test]
    fn caller_headers_override_defaults_case_insensitively() {
        let s = req(
            Method::Post,
            "/",
            &[
                ("host", "other"),
                ("USER-AGENT", "me"),
                ("content-length", "3"),
            ],
            b"abc",
        );
        assert_eq!(
            s,
            "POST / HTTP/1.1\r\nhost: other\r\nUSER-AGENT: me\r\ncontent-length: 3\r\n\r\nabc"
        );
    }

    #[test]
    fn cannot_inject_lines() {
        let s = req(Method::Get, "/a b\r\n", &[("X", "1\r\nEvil: 2")], b"");
        assert!(s.starts_with("GET /a%20b%0D%0A HTTP/1.1\r\n"), "{s}");
        assert!(s.contains("X: 1  Evil: 2\r\n"), "{s}");
        assert!(req(Method::Get, "", &[], b"").starts_with("GET / HTTP/1.1\r\n"));
    }

    #[test]
    fn decimal() {
        for n in [0u64, 7, 10, 99, 1000, 123456789, u64::MAX] {
            let mut b = Vec::new();
            push_decimal(&mut b, n);
            assert_eq!(b, n.to_string().as_bytes());
        }
    }

    #[test]
    fn no_allocation_once_the_buffer_has_grown() {
        let mut buf = Vec::with_capacity(256);
        write_request(&mut buf, Method::Get, "/x", "h", &[("A", "b")], b"");
        let (ptr, cap) = (buf.as_ptr(), buf.capacity());
        for _ in 0..10 {
            buf.clear();
            write_request(&mut buf, Method::Get, "/x", "h", &[("A", "b")], b"");
            assert_eq!((buf.as_ptr(), buf.capacity()), (ptr, cap));
        }
    }
}
