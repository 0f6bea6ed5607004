//! `--hdr-log FILE`: the HdrHistogram interval log (the format of Java's
//! `HistogramLogWriter`, read by `HistogramLogProcessor`, HdrHistogram's
//! plotters and the Rust crate's `IntervalLogIterator`): one V2-compressed,
//! base64 histogram per second per request name, tagged, and Aggregated's
//! untagged (what `HistogramLogProcessor` reads without `-tag`).
//!
//! Owns the file: its headers, the tags, the lines. It does not own where
//! the per-second histograms come from (`stats` interval tap, drained
//! through `RunControl::drain_intervals`) nor when they are written
//! (the front ends).
//!
//! Values are microseconds; the `Interval_Max` column is in milliseconds
//! (`#[MaxValueDivisor: 1000.000]`, as Java logs give it for ns).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use base64::Engine as _;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};

use crate::http::Method;
use crate::stats::{IntervalDrain, IntervalSet};

/// Microseconds to the milliseconds of the `Interval_Max` column.
const MAX_VALUE_DIVISOR: f64 = 1000.0;

/// An open interval log.
pub struct HdrLog {
    path: String,
    out: BufWriter<File>,
    serializer: V2DeflateSerializer,
    /// `#[BaseTime]`: interval timestamps are seconds since this.
    base: SystemTime,
    serialized: Vec<u8>,
    line: String,
}

impl HdrLog {
    /// Create `path` (and its directory) and write the headers, with
    /// `#[StartTime]` and `#[BaseTime]` at `start`.
    pub fn create(path: &str, start: SystemTime) -> anyhow::Result<HdrLog> {
        crate::headless::create_parent_dir(path)
            .with_context(|| format!("cannot create the directory for --hdr-log {path}"))?;
        let file = File::create(path).with_context(|| format!("cannot create --hdr-log {path}"))?;
        let mut log = HdrLog {
            path: path.to_string(),
            out: BufWriter::new(file),
            serializer: V2DeflateSerializer::new(),
            base: start,
            serialized: Vec::new(),
            line: String::new(),
        };
        log.write_headers()
            .with_context(|| format!("cannot write --hdr-log {path}"))?;
        Ok(log)
    }

    fn write_headers(&mut self) -> std::io::Result<()> {
        IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "[Logged with locusta {}: latencies in microseconds, one interval per second; \
                 Tag=METHOD:name per request name (',', '%' and whitespace in names \
                 percent-encoded), Aggregated untagged]",
                env!("CARGO_PKG_VERSION")
            ))
            .add_comment("[Histogram log format version 1.3]")
            .with_start_time(self.base)
            .with_base_time(self.base)
            .with_max_value_divisor(MAX_VALUE_DIVISOR)
            .begin_log_with(&mut self.out, &mut self.serializer)?;
        self.out.write_all(
            b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
        )?;
        self.out.flush()
    }

    /// Append the drained intervals and flush; a comment says how many
    /// were dropped while nobody wrote them.
    pub fn write(&mut self, drain: &IntervalDrain) -> anyhow::Result<()> {
        self.write_all(drain)
            .with_context(|| format!("cannot write --hdr-log {}", self.path))
    }

    fn write_all(&mut self, drain: &IntervalDrain) -> anyhow::Result<()> {
        if drain.dropped > 0 {
            log::warn!(
                "--hdr-log {}: {} seconds of intervals were dropped (not written for a minute)",
                self.path,
                drain.dropped
            );
            writeln!(
                self.out,
                "#[locusta: {} intervals dropped here: not written for a minute]",
                drain.dropped
            )?;
        }
        for set in &drain.sets {
            self.write_set(set)?;
        }
        self.out.flush()?;
        Ok(())
    }

    fn write_set(&mut self, set: &IntervalSet) -> anyhow::Result<()> {
        let start = set.start.duration_since(self.base).unwrap_or_default();
        let length = set.end.duration_since(set.start).unwrap_or_default();
        for row in &set.rows {
            self.line.clear();
            if row.method.is_some() {
                let _ = write!(self.line, "Tag={},", tag(row.method, &row.name));
            }
            let _ = write!(
                self.line,
                "{:.3},{:.3},{:.3},",
                seconds(start),
                seconds(length),
                row.histogram.max() as f64 / MAX_VALUE_DIVISOR
            );
            self.serialized.clear();
            self.serializer
                .serialize(&row.histogram, &mut self.serialized)
                .map_err(|e| anyhow::anyhow!("cannot encode the histogram of {}: {e}", row.name))?;
            base64::engine::general_purpose::STANDARD
                .encode_string(&self.serialized, &mut self.line);
            self.line.push('\n');
            self.out.write_all(self.line.as_bytes())?;
        }
        Ok(())
    }
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A row's tag: `METHOD:name`, with `%`, `,` and whitespace or control
/// characters in the name percent-encoded (UTF-8 bytes, `%2C`), since the
/// format forbids `,`, spaces and line breaks in tags. Distinct rows get
/// distinct tags: the method has no `:` and the encoding is reversible.
pub fn tag(method: Option<Method>, name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    out.push_str(method.map_or("", Method::as_str));
    out.push(':');
    for c in name.chars() {
        if c == '%' || c == ',' || c.is_whitespace() || c.is_control() {
            let mut bytes = [0; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry, Tag};
    use hdrhistogram::serialization::Deserializer;

    use crate::stats::{new_histogram, EntryHistogram};

    #[test]
    fn tags_are_legal_distinct_and_readable() {
        assert_eq!(tag(Some(Method::Get), "/api/x"), "GET:/api/x");
        let hostile = tag(Some(Method::Post), "a b,c\nd%20\te\u{a0}é");
        assert_eq!(hostile, "POST:a%20b%2Cc%0Ad%2520%09e%C2%A0é");
        assert!(Tag::new(&hostile).is_some());
        // Would collide if these characters were merely replaced.
        assert_ne!(tag(Some(Method::Get), "a b"), tag(Some(Method::Get), "a,b"));
        assert_ne!(
            tag(Some(Method::Get), "a b"),
            tag(Some(Method::Get), "a%20b")
        );
    }

    #[test]
    fn a_written_log_reads_back_with_the_crates_reader() {
        let dir = std::env::temp_dir().join(format!("locusta-hdr-{}", std::process::id()));
        let path = dir.join("sub/run.hlog");
        let path = path.to_str().unwrap();
        let base = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        let mut log = HdrLog::create(path, base).unwrap();
        let mut h = new_histogram();
        h.record_n(1_500, 3).unwrap();
        h.record(250_000).unwrap();
        let set = IntervalSet {
            start: base + Duration::from_millis(1_000),
            end: base + Duration::from_millis(2_000),
            rows: vec![
                EntryHistogram {
                    method: Some(Method::Get),
                    name: "/x y".into(),
                    histogram: h.clone(),
                },
                EntryHistogram {
                    method: None,
                    name: "Aggregated".into(),
                    histogram: h.clone(),
                },
            ],
        };
        log.write(&IntervalDrain {
            sets: vec![set],
            dropped: 2,
        })
        .unwrap();
        let bytes = std::fs::read(path).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("#[StartTime: 1700000000.250 (seconds since epoch)]\n"));
        assert!(text.contains("#[BaseTime: 1700000000.250 (seconds since epoch)]\n"));
        assert!(text.contains("\n\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n"));
        assert!(text.contains("#[locusta: 2 intervals dropped"));
        assert!(
            text.contains("\nTag=GET:/x%20y,1.000,1.000,250.111,"),
            "{text}"
        );
        let mut seen = Vec::new();
        for entry in IntervalLogIterator::new(&bytes) {
            if let LogEntry::Interval(i) = entry.unwrap() {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(i.encoded_histogram())
                    .unwrap();
                let back: hdrhistogram::Histogram<u64> =
                    Deserializer::new().deserialize(&mut &decoded[..]).unwrap();
                assert_eq!(back, h);
                assert_eq!(i.start_timestamp(), Duration::from_secs(1));
                seen.push(i.tag().map(|t| t.as_str().to_string()));
            }
        }
        assert_eq!(seen, [Some("GET:/x%20y".to_string()), None]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
