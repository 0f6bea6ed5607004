//! The latency histogram a shard records into between two deltas.
//!
//! Owns [`PagedHistogram`]: the same buckets as the run's dense HDR
//! histogram (1 µs to 1 h, 3 significant digits, so the counts index of a
//! value is the one `hdrhistogram` computes), but its ~23,500 counters are
//! split into pages of 128 that are allocated only when a value lands in
//! them. A dense `Histogram<u64>` costs ~190 KiB per name per shard, however
//! narrow the latencies; a name whose requests take 1–10 ms touches about
//! 27 pages here (~15 KiB). Counters are `u32`: one shard cannot count 2^32
//! requests in one bucket within one report tick (they saturate if it did).
//!
//! Merging into the run's dense histogram records each non-empty counter
//! at the highest value of its bucket, which lands in the same bucket, so
//! the merged histogram (and every percentile read from it) is exactly the
//! one a dense shard histogram gave. It does not own the run's cumulative
//! histograms (`run`) nor the wire form of a histogram (`sparse`).

use hdrhistogram::Histogram;

use super::shard::{Latencies, HISTOGRAM_MAX_US};

/// log2 of `hdrhistogram`'s half sub-bucket count for 3 significant digits
/// (2,048 sub-buckets, of which the upper 1,024 are used past bucket 0).
const SUB_HALF_MAGNITUDE: u32 = 10;
const SUB_HALF_COUNT: u64 = 1 << SUB_HALF_MAGNITUDE;
/// Values below 2,048 all go to bucket 0, one counter per µs.
const SUB_BUCKET_MASK: u64 = (1 << (SUB_HALF_MAGNITUDE + 1)) - 1;
/// `64 - unit_magnitude (0 for a lowest value of 1) - SUB_HALF_MAGNITUDE - 1`.
const LEADING_ZERO_BASE: u32 = 64 - SUB_HALF_MAGNITUDE - 1;
/// Counters of a dense histogram with our bounds: 22 buckets past the
/// first, 1,024 each, plus bucket 0's 2,048.
const COUNTS_LEN: usize = 23 << SUB_HALF_MAGNITUDE;
/// The largest value the dense histogram holds without clamping (its last
/// bucket ends at 2^32 − 1); larger values clamp to [`HISTOGRAM_MAX_US`],
/// exactly as `Histogram::saturating_record` does.
const LARGEST_UNCLAMPED: u64 = (1 << 32) - 1;

const PAGE_BITS: u32 = 7;
const PAGE_LEN: usize = 1 << PAGE_BITS;
const PAGES: usize = COUNTS_LEN / PAGE_LEN;

type Page = [u32; PAGE_LEN];

/// A latency histogram in µs that holds memory only for the value ranges
/// it has seen (see the module doc).
#[derive(Clone, Debug)]
pub struct PagedHistogram {
    pages: Box<[Option<Box<Page>>]>,
    total: u64,
    pages_allocated: u64,
}

impl Default for PagedHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl PagedHistogram {
    /// An empty histogram: a directory of page slots (~1.5 KiB), no pages.
    pub fn new() -> Self {
        PagedHistogram {
            pages: vec![None; PAGES].into_boxed_slice(),
            total: 0,
            pages_allocated: 0,
        }
    }

    /// Count one value (µs); values past the range clamp as the dense
    /// histogram clamps them.
    #[inline]
    pub fn record(&mut self, value_us: u64) {
        let counter = self.counter_for(value_us);
        *counter = counter.saturating_add(1);
        self.total += 1;
    }

    /// Count `count` values of `value_us` unless the bucket's `u32`
    /// counter cannot hold them: then nothing is counted and it says
    /// `false` (the caller records them elsewhere, exactly).
    #[inline]
    pub fn try_record_n(&mut self, value_us: u64, count: u64) -> bool {
        if count == 0 {
            // The dense histogram's min and max would still move.
            return false;
        }
        let counter = self.counter_for(value_us);
        match u32::try_from(count)
            .ok()
            .and_then(|c| counter.checked_add(c))
        {
            Some(sum) => {
                *counter = sum;
                self.total += count;
                true
            }
            None => false,
        }
    }

    /// The counter of `value_us`'s bucket, its page allocated if needed.
    #[inline]
    fn counter_for(&mut self, value_us: u64) -> &mut u32 {
        let index = index_for(value_us);
        let slot = &mut self.pages[index >> PAGE_BITS];
        let page = match slot {
            Some(page) => page,
            None => {
                self.pages_allocated += 1;
                slot.insert(new_page())
            }
        };
        &mut page[index & (PAGE_LEN - 1)]
    }

    /// Values counted since the last clear.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Non-empty buckets, lowest first, as `(highest value of the bucket,
    /// count)`: recording them into a dense histogram rebuilds it exactly.
    pub fn iter_recorded(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.pages.iter().enumerate().flat_map(|(p, page)| {
            page.iter().flat_map(move |page| {
                page.iter()
                    .enumerate()
                    .filter(|(_, &count)| count > 0)
                    .map(move |(i, &count)| {
                        (highest_value_at((p << PAGE_BITS) | i), u64::from(count))
                    })
            })
        })
    }

    /// The largest bucket value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.iter_recorded().last().map_or(0, |(v, _)| v)
    }

    /// Bytes held, directory included (memory tests and diagnostics).
    pub fn heap_bytes(&self) -> usize {
        let pages = self.pages.iter().filter(|p| p.is_some()).count();
        std::mem::size_of_val(&*self.pages) + pages * std::mem::size_of::<Page>()
    }

    /// Pages this histogram has allocated in its life.
    pub fn pages_allocated(&self) -> u64 {
        self.pages_allocated
    }
}

impl Latencies for PagedHistogram {
    fn add_to(&self, into: &mut Histogram<u64>) {
        if self.total == 0 {
            return;
        }
        // Plain loops: this runs for every row of every delta.
        for (p, page) in self.pages.iter().enumerate() {
            let Some(page) = page else { continue };
            for (i, &count) in page.iter().enumerate() {
                if count != 0 {
                    let value = highest_value_at((p << PAGE_BITS) | i);
                    into.saturating_record_n(value, u64::from(count));
                }
            }
        }
    }

    /// Zero the pages used since the last clear and free the others, so a
    /// recycled histogram keeps about the pages its last name needed
    /// rather than the union of every name it ever served.
    fn clear(&mut self) {
        for slot in self.pages.iter_mut() {
            if let Some(page) = slot {
                if page.iter().all(|&c| c == 0) {
                    *slot = None;
                } else {
                    page.fill(0);
                }
            }
        }
        self.total = 0;
    }
}

#[cold]
fn new_page() -> Box<Page> {
    Box::new([0; PAGE_LEN])
}

/// The dense histogram's counts index of `value` (`hdrhistogram`'s
/// `index_for` with our bounds, after its clamping).
#[inline]
fn index_for(value: u64) -> usize {
    let value = if value > LARGEST_UNCLAMPED {
        HISTOGRAM_MAX_US
    } else {
        value
    };
    let bucket = LEADING_ZERO_BASE - (value | SUB_BUCKET_MASK).leading_zeros();
    let sub_bucket = value >> bucket;
    // For bucket 0 the sub-bucket may be below the half count; the base
    // index is then still in range because bucket 0 has twice the room.
    (((u64::from(bucket) + 1) << SUB_HALF_MAGNITUDE) + sub_bucket - SUB_HALF_COUNT) as usize
}

/// The highest value of the bucket at counts index `index`.
fn highest_value_at(index: usize) -> u64 {
    let index = index as u64;
    let (bucket, sub_bucket) = match (index >> SUB_HALF_MAGNITUDE).checked_sub(1) {
        Some(bucket) => (bucket, (index & (SUB_HALF_COUNT - 1)) + SUB_HALF_COUNT),
        // The lower half of bucket 0.
        None => (0, index & (SUB_HALF_COUNT - 1)),
    };
    (sub_bucket << bucket) + (1 << bucket) - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    /// Values at every bucket edge, the clamping edges, and a spread.
    fn values() -> Vec<u64> {
        let mut v = vec![
            0,
            1,
            2,
            1_023,
            1_024,
            2_047,
            2_048,
            2_049,
            4_095,
            4_096,
            HISTOGRAM_MAX_US - 1,
            HISTOGRAM_MAX_US,
            HISTOGRAM_MAX_US + 1,
            LARGEST_UNCLAMPED - 1,
            LARGEST_UNCLAMPED,
            LARGEST_UNCLAMPED + 1,
            u64::MAX,
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            // xorshift, spread over 1 µs .. ~70 min on a log scale
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let magnitude = x % 33;
            v.push((x >> 8) % (1 << magnitude).max(1));
        }
        v
    }

    #[test]
    fn merges_into_exactly_the_dense_histogram() {
        let mut dense = new_histogram();
        let mut paged = PagedHistogram::new();
        for v in values() {
            dense.saturating_record(v);
            paged.record(v);
        }
        let mut merged = new_histogram();
        paged.add_to(&mut merged);
        assert_eq!(merged, dense);
        assert_eq!(paged.len(), dense.len());
        for q in [0.0, 0.5, 0.66, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(merged.value_at_quantile(q), dense.value_at_quantile(q));
        }
        let dense_buckets: Vec<_> = dense
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        let paged_buckets: Vec<_> = paged.iter_recorded().collect();
        assert_eq!(paged_buckets, dense_buckets);
    }

    #[test]
    fn index_matches_hdrhistogram_at_every_counter() {
        // Each counter's highest value maps back to that counter, and the
        // dense histogram puts it in the same bucket.
        for index in 0..COUNTS_LEN {
            let value = highest_value_at(index);
            assert_eq!(index_for(value), index, "value {value}");
            let mut dense = new_histogram();
            dense.record(value).unwrap();
            assert_eq!(dense.highest_equivalent(value), value, "index {index}");
        }
    }

    #[test]
    fn typical_latencies_stay_small() {
        let mut h = PagedHistogram::new();
        // 1–10 ms, every µs: the widest spread a "typical" name has.
        for v in 1_000..10_000 {
            h.record(v);
        }
        assert!(h.heap_bytes() <= 16 * 1024, "{} bytes", h.heap_bytes());
        let empty = PagedHistogram::new().heap_bytes();
        assert!(empty <= 2 * 1024, "directory {empty} bytes");
    }

    #[test]
    fn clear_keeps_used_pages_and_frees_idle_ones() {
        let mut h = PagedHistogram::new();
        h.record(5);
        h.record(1_000_000);
        h.clear();
        assert!(h.is_empty());
        assert_eq!(h.iter_recorded().count(), 0);
        // Both pages were used in the last round: kept, zeroed.
        h.record(5);
        assert_eq!(h.pages_allocated(), 2);
        h.clear();
        // The 1 s page sat idle for a round: freed; the 5 µs page kept.
        assert_eq!(h.pages.iter().filter(|p| p.is_some()).count(), 1);
        h.record(6);
        assert_eq!(h.pages_allocated(), 2, "page of 5 µs reused for 6 µs");
        assert_eq!(h.max(), 6);
    }
}
