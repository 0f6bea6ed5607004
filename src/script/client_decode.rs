//! Decoding a response body by its `Content-Encoding` (helper of
//! `client_response`), only when the script reads `r.body`, `r.text` or
//! `r:json()`: a request whose body is never read pays nothing.
//!
//! Owns which encodings are decoded (`gzip`, `x-gzip`, `deflate` — zlib
//! wrapped, or raw deflate as a fallback, as browsers accept —, `br` and
//! `identity`, also several in a row), with flate2 on miniz_oxide and
//! brotli-decompressor (both pure Rust; the brotli decoder alone builds
//! cold in ~2 s), and the bound on the decoded size: `--max-body-size`, the same
//! limit as the bytes on the wire, so a small compressed body cannot grow
//! into gigabytes (a decompression bomb). An unknown encoding (`zstd`,
//! `compress`, …) hands the script the bytes as they came. A corrupt body is
//! an error message (`cannot decode gzip body: …`) for a Lua error, never
//! a panic.

use std::cell::Cell;
use std::io::Read;

use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

thread_local! {
    static DECODES: Cell<u64> = const { Cell::new(0) };
}

/// Bodies decoded on this thread so far (tests check that an unread body
/// is never decoded).
#[doc(hidden)]
pub fn decodes_on_this_thread() -> u64 {
    DECODES.with(Cell::get)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    Gzip,
    Deflate,
    Brotli,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
        }
    }
}

/// The decoded body, or `Ok(None)` when `body` is to be used as it is
/// (no encoding, identity, an unknown encoding, or an empty body).
pub(crate) fn decode(
    content_encoding: &[u8],
    body: &[u8],
    limit: usize,
) -> Result<Option<Vec<u8>>, String> {
    if body.is_empty() {
        return Ok(None);
    }
    let mut codings = Vec::new();
    for token in content_encoding.split(|&b| b == b',') {
        let token = token.trim_ascii();
        if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip") {
            codings.push(Coding::Gzip);
        } else if token.eq_ignore_ascii_case(b"deflate") {
            codings.push(Coding::Deflate);
        } else if token.eq_ignore_ascii_case(b"br") {
            codings.push(Coding::Brotli);
        } else if !(token.is_empty() || token.eq_ignore_ascii_case(b"identity")) {
            return Ok(None);
        }
    }
    if codings.is_empty() {
        return Ok(None);
    }
    DECODES.with(|d| d.set(d.get().saturating_add(1)));
    // Applied in the order listed: undone in reverse.
    let mut data: Option<Vec<u8>> = None;
    for &coding in codings.iter().rev() {
        let input = data.as_deref().unwrap_or(body);
        data = Some(decode_one(coding, input, limit)?);
    }
    Ok(data)
}

fn decode_one(coding: Coding, input: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let reader: Box<dyn Read + '_> = match coding {
        Coding::Gzip => Box::new(MultiGzDecoder::new(input)),
        Coding::Deflate if is_zlib(input) => Box::new(ZlibDecoder::new(input)),
        Coding::Deflate => Box::new(DeflateDecoder::new(input)),
        Coding::Brotli => Box::new(brotli_decompressor::Decompressor::new(input, 4096)),
    };
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).min(limit));
    let cap = (limit as u64).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot decode {} body: {e}", coding.name()))?;
    if out.len() > limit {
        return Err(format!(
            "cannot decode {} body: the decoded body is larger than {} (--max-body-size)",
            coding.name(),
            super::limits::format_size(limit)
        ));
    }
    Ok(out)
}

/// A zlib header (RFC 1950): deflate method, a check sum that divides
/// by 31. Servers send raw deflate for `deflate` too; browsers take both.
fn is_zlib(b: &[u8]) -> bool {
    match b {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;
    use std::io::Write;

    fn gz(b: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_deflate_zlib_raw_and_stacked() {
        let text = b"hello hello hello hello";
        assert_eq!(decode(b"gzip", &gz(text), 1000).unwrap().unwrap(), text);
        assert_eq!(decode(b"X-GZIP", &gz(text), 1000).unwrap().unwrap(), text);
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(text).unwrap();
        let z = z.finish().unwrap();
        assert_eq!(decode(b"deflate", &z, 1000).unwrap().unwrap(), text);
        let mut d = DeflateEncoder::new(Vec::new(), Compression::default());
        d.write_all(text).unwrap();
        let d = d.finish().unwrap();
        assert_eq!(decode(b"deflate", &d, 1000).unwrap().unwrap(), text);
        // deflate applied first, then gzip.
        assert_eq!(
            decode(b"deflate, gzip", &gz(&z), 1000).unwrap().unwrap(),
            text
        );
        // Two gzip members in a row (as `cat a.gz b.gz`).
        let two = [gz(b"ab"), gz(b"cd")].concat();
        assert_eq!(decode(b"gzip", &two, 1000).unwrap().unwrap(), b"abcd");
    }

    #[test]
    fn brotli() {
        // python3 -c "import brotli; print(brotli.compress(b'hello brotli').hex())"
        let br = [
            0x8b, 0x05, 0x80, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x62, 0x72, 0x6f, 0x74, 0x6c,
            0x69, 0x03,
        ];
        assert_eq!(decode(b"br", &br, 100).unwrap().unwrap(), b"hello brotli");
        let e = decode(b"br", &br, 5).unwrap_err();
        assert!(e.contains("larger than"), "{e}");
        let e = decode(b"br", b"\xff\xff not brotli", 100).unwrap_err();
        assert!(e.starts_with("cannot decode br body: "), "{e}");
    }

    #[test]
    fn identity_unknown_and_empty_are_raw() {
        for enc in [&b""[..], b"identity", b"zstd", b"gzip, zstd"] {
            assert_eq!(decode(enc, b"raw", 10), Ok(None), "{enc:?}");
        }
        assert_eq!(decode(b"gzip", b"", 10), Ok(None));
    }

    #[test]
    fn corrupt_and_bomb_are_errors() {
        let e = decode(b"gzip", b"not gzip at all", 1000).unwrap_err();
        assert!(e.starts_with("cannot decode gzip body: "), "{e}");
        let full = gz(b"some text that is long enough");
        let e = decode(b"gzip", &full[..full.len() - 6], 1000).unwrap_err();
        assert!(e.starts_with("cannot decode gzip body: "), "{e}");
        let bomb = gz(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 4096);
        let e = decode(b"gzip", &bomb, 1000).unwrap_err();
        assert!(e.contains("larger than"), "{e}");
        assert_eq!(
            decode(b"gzip", &bomb, 1 << 20).unwrap().unwrap().len(),
            1 << 20
        );
    }
}
