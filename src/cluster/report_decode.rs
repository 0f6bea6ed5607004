//! The master's fast path for a worker's `stats` message: reads the msgpack
//! bytes straight into a [`WorkerReport`], without first building the
//! `rmpv::Value` tree of the whole message (a 50-name report is ~3,000
//! values; building and dropping the tree was half the master's CPU).
//!
//! A hand-written reader over the byte slice rather than serde visitors:
//! it borrows strings and `hdr` bytes from the input, and it only ever
//! *accepts*. Whatever it does not expect (a type error, a missing or
//! repeated key, an unknown key inside an entry, bad UTF-8, truncation,
//! trailing bytes, a message of another type) makes it give up, and the
//! message goes through the general path (`protocol::decode`, then
//! [`WorkerMessage::parse`]), which owns every error message and every
//! limit. So acceptance and errors are the general path's by construction;
//! the tests in `report_decode_tests` hold the two to the same result.
//!
//! Bounded: it never preallocates from a length prefix beyond what the
//! remaining bytes can hold, and nests only as deep as a report does; the
//! values of unknown top-level keys are read by rmpv with the depth the
//! general path would have left at that point.
//!
//! It does not own the report's fields or checks (`report`,
//! `report_checks`) or the network thread (`network`).

use super::protocol::{decode, ProtocolError, Value, WorkerMessage, MAX_DEPTH};
use super::report::{ReportEntry, ReportError, WorkerReport, KNOWN_KEYS};
use super::values::{Fields, Scalar};
use crate::stats::SparseHistogram;

/// A message from a worker: the outer `Err` is bytes that are not a
/// message (logged as malformed), the inner one a message whose data is
/// wrong for its type (logged as bad).
pub type FromWorker = Result<Result<WorkerMessage, ProtocolError>, ProtocolError>;

/// Decode and parse what a worker sent: `stats` through the fast path when
/// it can, everything else (and every error) through the general one.
pub fn decode_from_worker(bytes: &[u8]) -> FromWorker {
    if let Some(report) = fast_stats(bytes) {
        return Ok(Ok(WorkerMessage::Stats(Box::new(report))));
    }
    decode(bytes).map(|msg| WorkerMessage::parse(&msg))
}

/// Depth rmpv has left for a value of the data map's keys: the outer
/// array and the data map each take two levels (the value and its body).
const TOP_VALUE_DEPTH: usize = MAX_DEPTH - 4;

/// Elements reserved ahead from a length prefix, at most: past it the
/// vector grows as elements really arrive (a prefix may lie).
const PREALLOCATE: usize = 256;

/// `[“stats”, {…}, node_id]` read in one pass; `None`: not such a message,
/// or anything unusual (the general path decides).
fn fast_stats(bytes: &[u8]) -> Option<WorkerReport> {
    let mut rd = Reader { buf: bytes };
    if rd.array_len()? != 3 || rd.str()? != "stats" {
        return None;
    }
    let report = read_report(&mut rd)?;
    rd.str()?;
    rd.buf.is_empty().then_some(report)
}

fn read_report(rd: &mut Reader<'_>) -> Option<WorkerReport> {
    let len = rd.map_len()?;
    let mut stats = None;
    let mut stats_total = None;
    let mut errors = None;
    // Everything else, for the general path's field readers.
    let mut rest: Vec<(Value, Value)> = Vec::with_capacity(8);
    for _ in 0..len {
        let key = rd.key()?;
        match key {
            b"stats" => {
                let n = rd.array_len()?;
                let mut entries = Vec::with_capacity(n.min(PREALLOCATE));
                for _ in 0..n {
                    entries.push(read_entry(rd)?);
                }
                once(&mut stats, entries)?;
            }
            b"stats_total" => once(&mut stats_total, read_entry(rd)?)?,
            b"errors" => {
                let n = rd.map_len()?;
                let mut list = Vec::with_capacity(n.min(PREALLOCATE));
                for _ in 0..n {
                    rd.key()?;
                    list.push(read_error(rd)?);
                }
                once(&mut errors, list)?;
            }
            _ => {
                let key = std::str::from_utf8(key).ok()?;
                let value = rd.value(TOP_VALUE_DEPTH)?;
                rest.push((Value::from(key), value));
            }
        }
    }
    let mut report = WorkerReport {
        stats: stats?,
        stats_total: stats_total?,
        errors: errors?,
        ..WorkerReport::default()
    };
    // `rest` holds no key the three above are read from, so the general
    // readers see exactly what they would in the whole map.
    debug_assert!(rest
        .iter()
        .all(|(k, _)| !KNOWN_KEYS[..3].contains(&k.as_str().unwrap_or(""))));
    let rest = Value::Map(rest);
    let f = Fields::of("stats", &rest).ok()?;
    report.read_small_fields(&f).ok()?;
    Some(report)
}

/// Set a field seen for the first time; a repeated key gives up (the
/// general path keeps the last one, and says why if it is bad).
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

/// One `StatsEntry` map with exactly Locust's keys (and our `hdr`).
fn read_entry(rd: &mut Reader<'_>) -> Option<ReportEntry> {
    let len = rd.map_len()?;
    let mut e = ReportEntry::default();
    // One bit per key, so a repeat or a missing required key gives up.
    let mut seen = 0u16;
    for _ in 0..len {
        let bit = match rd.key()? {
            b"name" => {
                e.name = rd.str()?.to_string();
                1
            }
            b"method" => {
                e.method = rd.str()?.to_string();
                1 << 1
            }
            b"last_request_timestamp" => {
                e.last_request_timestamp = rd.opt(Scalar::non_negative)?;
                1 << 2
            }
            b"start_time" => {
                e.start_time = rd.scalar()?.non_negative()?;
                1 << 3
            }
            b"num_requests" => {
                e.num_requests = rd.scalar()?.count()?;
                1 << 4
            }
            b"num_none_requests" => {
                e.num_none_requests = rd.scalar()?.count()?;
                1 << 5
            }
            b"num_failures" => {
                e.num_failures = rd.scalar()?.count()?;
                1 << 6
            }
            b"total_response_time" => {
                e.total_response_time = rd.scalar()?.ms()?;
                1 << 7
            }
            b"max_response_time" => {
                e.max_response_time = rd.scalar()?.ms()?;
                1 << 8
            }
            b"min_response_time" => {
                e.min_response_time = rd.opt(Scalar::ms)?;
                1 << 9
            }
            b"total_content_length" => {
                e.total_content_length = rd.scalar()?.count()?;
                1 << 10
            }
            b"response_times" => {
                e.response_times = rd.count_map(Scalar::count)?;
                1 << 11
            }
            b"num_reqs_per_sec" => {
                e.num_reqs_per_sec = rd.count_map(unix_second)?;
                1 << 12
            }
            b"num_fail_per_sec" => {
                e.num_fail_per_sec = rd.count_map(unix_second)?;
                1 << 13
            }
            b"hdr" => {
                e.hdr = match rd.nil_or_bin()? {
                    Some(bytes) => Some(SparseHistogram::decode(bytes).ok()?),
                    None => None,
                };
                1 << 14
            }
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
    }
    // Every key but the optional three (timestamps, min, hdr).
    const REQUIRED: u16 = 0x7fff & !(1 << 2 | 1 << 9 | 1 << 14);
    (seen & REQUIRED == REQUIRED).then_some(e)
}

/// One `StatsErrorDict` map.
fn read_error(rd: &mut Reader<'_>) -> Option<ReportError> {
    let len = rd.map_len()?;
    let mut e = ReportError {
        method: String::new(),
        name: String::new(),
        error: String::new(),
        occurrences: 0,
        first_seen: None,
        last_seen: None,
    };
    let mut seen = 0u8;
    for _ in 0..len {
        let bit = match rd.key()? {
            b"method" => {
                e.method = rd.str()?.to_string();
                1
            }
            b"name" => {
                e.name = rd.str()?.to_string();
                1 << 1
            }
            b"error" => {
                e.error = rd.str()?.to_string();
                1 << 2
            }
            b"occurrences" => {
                e.occurrences = rd.scalar()?.count()?;
                1 << 3
            }
            b"first_seen" => {
                e.first_seen = rd.opt(Scalar::non_negative)?;
                1 << 4
            }
            b"last_seen" => {
                e.last_seen = rd.opt(Scalar::non_negative)?;
                1 << 5
            }
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
    }
    (seen & 0b1111 == 0b1111).then_some(e)
}

fn unix_second(v: Scalar) -> Option<i64> {
    v.count().and_then(|n| i64::try_from(n).ok())
}

/// A cursor over msgpack bytes; every read is `None` at the end of the
/// input or on a type it was not asked for.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// A big-endian length of 1, 2 or 4 bytes.
    fn len(&mut self, width: u8) -> Option<usize> {
        Some(match width {
            1 => usize::from(self.byte()?),
            2 => usize::from(u16::from_be_bytes(self.be()?)),
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }

    fn array_len(&mut self) -> Option<usize> {
        match self.byte()? {
            b @ 0x90..=0x9f => Some(usize::from(b & 0x0f)),
            0xdc => self.len(2),
            0xdd => self.len(4),
            _ => None,
        }
    }

    fn map_len(&mut self) -> Option<usize> {
        match self.byte()? {
            b @ 0x80..=0x8f => Some(usize::from(b & 0x0f)),
            0xde => self.len(2),
            0xdf => self.len(4),
            _ => None,
        }
    }

    /// A msgpack `str` that is UTF-8 (rmpv would accept other bytes as a
    /// string that is no `&str`; the general path handles those).
    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.key()?).ok()
    }

    /// A msgpack `str`'s bytes, not checked for UTF-8: a map key compared
    /// with ours (bytes that are not UTF-8 match none of them).
    fn key(&mut self) -> Option<&'a [u8]> {
        let n = match self.byte()? {
            b @ 0xa0..=0xbf => usize::from(b & 0x1f),
            0xd9 => self.len(1)?,
            0xda => self.len(2)?,
            0xdb => self.len(4)?,
            _ => return None,
        };
        self.take(n)
    }

    /// nil (`None`) or a msgpack `bin`.
    fn nil_or_bin(&mut self) -> Option<Option<&'a [u8]>> {
        let n = match self.byte()? {
            0xc0 => return Some(None),
            0xc4 => self.len(1)?,
            0xc5 => self.len(2)?,
            0xc6 => self.len(4)?,
            _ => return None,
        };
        Some(Some(self.take(n)?))
    }

    /// A nil, integer or float as rmpv would read it (so the general
    /// path's number rules apply unchanged); anything else is `Other`
    /// when it is one byte, `None` otherwise.
    fn scalar(&mut self) -> Option<Scalar> {
        let int = |n: i64| u64::try_from(n).map_or(Scalar::Negative(n), Scalar::Uint);
        Some(match self.byte()? {
            b @ 0x00..=0x7f => Scalar::Uint(u64::from(b)),
            b @ 0xe0..=0xff => Scalar::Negative(i64::from(b as i8)),
            0xc0 => Scalar::Nil,
            0xc2 | 0xc3 => Scalar::Other,
            0xca => Scalar::Float(f64::from(f32::from_be_bytes(self.be()?))),
            0xcb => Scalar::Float(f64::from_be_bytes(self.be()?)),
            0xcc => Scalar::Uint(u64::from(self.byte()?)),
            0xcd => Scalar::Uint(u64::from(u16::from_be_bytes(self.be()?))),
            0xce => Scalar::Uint(u64::from(u32::from_be_bytes(self.be()?))),
            0xcf => Scalar::Uint(u64::from_be_bytes(self.be()?)),
            0xd0 => int(i64::from(self.byte()? as i8)),
            0xd1 => int(i64::from(i16::from_be_bytes(self.be()?))),
            0xd2 => int(i64::from(i32::from_be_bytes(self.be()?))),
            0xd3 => int(i64::from_be_bytes(self.be()?)),
            _ => return None,
        })
    }

    /// An optional number: nil is `None`, anything `read` refuses gives up.
    fn opt<T>(&mut self, read: impl Fn(Scalar) -> Option<T>) -> Option<Option<T>> {
        match self.scalar()? {
            Scalar::Nil => Some(None),
            v => Some(Some(read(v)?)),
        }
    }

    /// A `{number: count}` map (`response_times`, per-second counts).
    fn count_map<K>(&mut self, read_key: impl Fn(Scalar) -> Option<K>) -> Option<Vec<(K, u64)>> {
        let n = self.map_len()?;
        let mut pairs = Vec::with_capacity(n.min(PREALLOCATE));
        for _ in 0..n {
            let k = read_key(self.scalar()?)?;
            let count = self.scalar()?.count()?;
            pairs.push((k, count));
        }
        Some(pairs)
    }

    /// Any value, read by rmpv with `depth` levels left.
    fn value(&mut self, depth: usize) -> Option<Value> {
        rmpv::decode::read_value_with_max_depth(&mut self.buf, depth).ok()
    }
}

#[cfg(test)]
#[path = "report_decode_tests.rs"]
mod tests;
