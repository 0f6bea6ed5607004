//! A histogram as the list of its non-empty buckets: what cluster workers
//! send their master, so cluster percentiles are the exact merge of the
//! workers' HDR histograms rather than Locust's re-bucketed milliseconds.
//!
//! Owns [`SparseHistogram`] and its wire form: for each non-empty bucket,
//! the distance from the previous bucket's value and the count, both as
//! LEB128 varints (a one-second delta of one endpoint is typically a few
//! hundred bytes). Merging it costs one counter add per bucket (the run
//! counts buckets in `run_pending` until its tick), not a walk of the
//! ~23,000 counters of a dense histogram, which keeps a master with a
//! thousand workers cheap. It does not own the message around it (`cluster`).

use hdrhistogram::Histogram;

use super::shard::Latencies;

/// Buckets past this many in one encoded histogram are refused: a dense
/// histogram of our bounds has about 23,000, so more means a bad message.
const MAX_BUCKETS: usize = 1 << 16;

/// Non-empty buckets as `(value in µs, count)`, values strictly rising.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SparseHistogram {
    buckets: Vec<(u64, u64)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SparseError {
    #[error("histogram bytes end inside a number")]
    Truncated,
    #[error("histogram number longer than 64 bits")]
    Overflow,
    #[error("histogram has more than {MAX_BUCKETS} buckets")]
    TooManyBuckets,
    #[error("histogram bucket with a count of 0")]
    EmptyBucket,
}

impl SparseHistogram {
    /// The non-empty buckets of `h`, each at the highest value it stands
    /// for (so recording it again lands in the same bucket).
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        let buckets = h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        SparseHistogram { buckets }
    }

    /// A histogram of `count` values of `value_us`, rising order assumed
    /// of callers that push several (Locust's per-millisecond buckets).
    pub fn push(&mut self, value_us: u64, count: u64) {
        if count > 0 {
            self.buckets.push((value_us, count));
        }
    }

    pub fn buckets(&self) -> &[(u64, u64)] {
        &self.buckets
    }

    pub fn total_count(&self) -> u64 {
        self.buckets.iter().map(|b| b.1).sum()
    }

    /// Append the wire form to `out`: bucket count, then per bucket the
    /// value's distance from the previous one and the count.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.buckets.len() as u64);
        let mut previous = 0u64;
        for &(value, count) in &self.buckets {
            put_varint(out, value.wrapping_sub(previous));
            put_varint(out, count);
            previous = value;
        }
    }

    /// Read the wire form; refuses truncated, oversized or zero-count input.
    pub fn decode(mut bytes: &[u8]) -> Result<Self, SparseError> {
        let n = get_varint(&mut bytes)?;
        if n > MAX_BUCKETS as u64 {
            return Err(SparseError::TooManyBuckets);
        }
        let mut buckets = Vec::with_capacity(n as usize);
        let mut value = 0u64;
        for _ in 0..n {
            value = value.wrapping_add(get_varint(&mut bytes)?);
            let count = get_varint(&mut bytes)?;
            if count == 0 {
                return Err(SparseError::EmptyBucket);
            }
            buckets.push((value, count));
        }
        Ok(SparseHistogram { buckets })
    }
}

impl Latencies for SparseHistogram {
    fn add_to(&self, into: &mut Histogram<u64>) {
        for &(value, count) in &self.buckets {
            into.saturating_record_n(value, count);
        }
    }

    fn clear(&mut self) {
        self.buckets.clear();
    }

    fn buckets(&self) -> Option<&[(u64, u64)]> {
        Some(&self.buckets)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &mut &[u8]) -> Result<u64, SparseError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or(SparseError::Truncated)?;
        *bytes = rest;
        let part = u64::from(b & 0x7f);
        if shift == 63 && part > 1 {
            return Err(SparseError::Overflow);
        }
        v |= part << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(SparseError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn round_trip_merges_exactly() {
        let mut h = new_histogram();
        for v in [1u64, 7, 999, 1_000, 1_001, 54_321, 3_000_000, 3_600_000_000] {
            h.record_n(v, v % 5 + 1).unwrap();
        }
        let sparse = SparseHistogram::from_histogram(&h);
        let mut bytes = Vec::new();
        sparse.encode(&mut bytes);
        let back = SparseHistogram::decode(&bytes).unwrap();
        assert_eq!(back, sparse);
        let mut merged = new_histogram();
        back.add_to(&mut merged);
        assert_eq!(merged, h);
        assert_eq!(back.total_count(), h.len());
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert_eq!(SparseHistogram::decode(&[]), Err(SparseError::Truncated));
        assert_eq!(
            SparseHistogram::decode(&[2, 5]),
            Err(SparseError::Truncated)
        );
        assert_eq!(
            SparseHistogram::decode(&[1, 5, 0]),
            Err(SparseError::EmptyBucket)
        );
        assert_eq!(
            SparseHistogram::decode(&[0xff; 11]),
            Err(SparseError::Overflow)
        );
        let mut huge = Vec::new();
        put_varint(&mut huge, 1 << 20);
        assert_eq!(
            SparseHistogram::decode(&huge),
            Err(SparseError::TooManyBuckets)
        );
    }
}
