//! Tests that bytes which are not a well-formed message are errors and
//! never panics: truncation, trailing bytes, wrong shapes, deep nesting,
//! huge length prefixes, random and mutated input (a child module of
//! `protocol`; `tests/fuzz` goes further).

use std::time::{Duration, Instant};

use super::tests::*;
use super::*;

fn is_msgpack_error<T: std::fmt::Debug>(r: Result<T, ProtocolError>) -> bool {
    matches!(r, Err(ProtocolError::Msgpack(_)))
}

fn is_shape_error<T: std::fmt::Debug>(r: Result<T, ProtocolError>) -> bool {
    matches!(r, Err(ProtocolError::Shape(_)))
}

#[test]
fn truncated_and_trailing_bytes_are_errors() {
    let full = encode(&WorkerMessage::Stats(Box::new(sample_report())).to_message("w"));
    assert!(decode(&full).is_ok());
    for cut in 0..full.len() {
        assert!(is_msgpack_error(decode(&full[..cut])), "cut at {cut}");
    }
    let mut longer = full.clone();
    longer.push(0xc0);
    assert!(is_msgpack_error(decode(&longer)));
    assert!(is_msgpack_error(decode(&[])));
    // 0xc1 is never used in msgpack; rmpv reads it as nil (Python
    // refuses it), so alone it is at least not a message.
    assert!(decode(&[0xc1]).is_err());
}

#[test]
fn wrong_shapes_are_errors() {
    let bytes = |v: Value| {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &v).unwrap();
        out
    };
    let s = Value::from;
    assert!(is_shape_error(decode(&bytes(Value::Nil))));
    assert!(is_shape_error(decode(&bytes(map(vec![])))));
    assert!(is_shape_error(decode(&bytes(Value::Array(vec![
        s("a"),
        Value::Nil
    ])))));
    assert!(is_shape_error(decode(&bytes(Value::Array(vec![
        s("a"),
        Value::Nil,
        s("w"),
        Value::Nil
    ])))));
    // bin instead of str: Python would read bytes and match nothing.
    assert!(is_shape_error(decode(&bytes(Value::Array(vec![
        Value::Binary(b"heartbeat".to_vec()),
        Value::Nil,
        s("w")
    ])))));
    assert!(is_shape_error(decode(&bytes(Value::Array(vec![
        s("heartbeat"),
        Value::Nil,
        Value::Nil
    ])))));
    // A str that is not UTF-8: 0xa2 0xff 0xfe.
    assert!(is_shape_error(decode(&[
        0x93, 0xa2, 0xff, 0xfe, 0xc0, 0xa1, b'w'
    ])));
    assert!(decode(&[0x93, 0xa1, b'k', 0xc0, 0xa1, b'w']).is_ok());
}

#[test]
fn deep_nesting_is_refused() {
    let mut deep = vec![0x93, 0xa1, b'k'];
    deep.extend(std::iter::repeat_n(0x91, 100_000));
    deep.push(0xc0);
    deep.extend([0xa1, b'w']);
    assert!(is_msgpack_error(decode(&deep)));
    let mut deep_maps = vec![0x93, 0xa1, b'k'];
    for _ in 0..10_000 {
        deep_maps.extend([0x81, 0xa1, b'k']);
    }
    deep_maps.push(0xc0);
    deep_maps.extend([0xa1, b'w']);
    assert!(is_msgpack_error(decode(&deep_maps)));
    // What a stats report needs fits.
    let mut ok = vec![0x93, 0xa1, b'k'];
    ok.extend([0x91; 8]);
    ok.extend([0xa1, b'x', 0xa1, b'w']);
    assert!(decode(&ok).is_ok());
}

#[test]
fn huge_length_prefixes_fail_fast() {
    let start = Instant::now();
    let cases: [&[u8]; 8] = [
        &[0xdd, 0xff, 0xff, 0xff, 0xff],       // array32 of 4 billion
        &[0xdf, 0xff, 0xff, 0xff, 0xff],       // map32
        &[0xdb, 0xff, 0xff, 0xff, 0xff],       // str32
        &[0xc6, 0xff, 0xff, 0xff, 0xff],       // bin32
        &[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01], // ext32
        &[0x93, 0xa1, b'k', 0xdd, 0xff, 0xff, 0xff, 0xff],
        &[0x93, 0xa1, b'k', 0xdc, 0xff, 0xff, 0xc0],
        &[0x93, 0xa1, b'k', 0xc6, 0xff, 0xff, 0xff, 0xf0, 0x00],
    ];
    for bytes in cases {
        assert!(is_msgpack_error(decode(bytes)), "{bytes:x?}");
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn describe_keeps_log_lines_short() {
    let long = "x".repeat(10_000);
    let d = describe(&Value::from(long.as_str()));
    assert!(d.len() < 80, "{d}");
    assert_eq!(describe(&Value::from("é")), "\"é\"");
    assert_eq!(describe(&Value::Binary(vec![1, 2])), "2 bytes of binary");
}

/// xorshift64*: deterministic bytes for the no-panic loop.
pub(crate) struct XorShift(pub u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Everything the master and worker do with bytes from the network.
pub(crate) fn handle_untrusted(bytes: &[u8]) -> bool {
    let Ok(msg) = decode(bytes) else {
        return false;
    };
    if let Ok(WorkerMessage::Stats(report)) = WorkerMessage::parse(&msg) {
        let (delta, _) = report.to_delta(std::time::SystemTime::UNIX_EPOCH);
        for e in &delta.entries {
            assert!(e.histogram.buckets().iter().all(|b| b.1 > 0));
        }
    }
    let _ = MasterMessage::parse(&msg);
    true
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    let seeds: Vec<Vec<u8>> = all_worker_messages()
        .iter()
        .map(|m| encode(&m.to_message("host_1")))
        .chain(
            all_master_messages()
                .iter()
                .map(|m| encode(&m.to_message("host_1"))),
        )
        .chain([hex(PY_HEARTBEAT), hex(PY_SPAWN), hex(PY_EXCEPTION)])
        .collect();
    let interesting = [
        0x00, 0x7f, 0x80, 0x90, 0xa0, 0xc0, 0xc2, 0xc3, 0xca, 0xcb, 0xcc, 0xcf, 0xd3, 0xdc, 0xdd,
        0xde, 0xdf, 0xff,
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut decoded = 0;
    for i in 0..20_000 {
        let bytes = if i % 4 == 0 {
            let len = rng.below(64);
            (0..len).map(|_| rng.next() as u8).collect::<Vec<u8>>()
        } else {
            let mut b = seeds[rng.below(seeds.len())].clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(b.len());
                match rng.below(5) {
                    0 => b[at] = rng.next() as u8,
                    1 => b[at] = interesting[rng.below(interesting.len())],
                    2 => b.truncate(at),
                    3 => b.insert(at, rng.next() as u8),
                    _ => {
                        if at < b.len() {
                            b.remove(at);
                        }
                    }
                }
                if b.is_empty() {
                    break;
                }
            }
            b
        };
        if handle_untrusted(&bytes) {
            decoded += 1;
        }
    }
    assert!(
        decoded > 100,
        "mutations should still decode sometimes: {decoded}"
    );
}
