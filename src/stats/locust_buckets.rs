//! Locust's `response_times` buckets: how Locust rounds a response time
//! (`bucket_response_time`), and the buckets of an HDR histogram in
//! Locust's rounding. One place, used by the cluster reports a Locust
//! master reads and by `--json`, so both round alike.

use hdrhistogram::Histogram;

use super::view::us_to_ms;

/// Locust's `bucket_response_time`: the ms key a response time is counted
/// under in `response_times`. Below 100 ms rounded to the ms, below 1 s to
/// 10 ms, below 10 s to 100 ms, else to the second; ties to even, exactly
/// as Python's `round` (105 → 100, 115 → 120). Negative and NaN give 0.
pub fn locust_bucket_ms(ms: f64) -> u64 {
    if ms.is_nan() || ms <= 0.0 {
        return 0;
    }
    let step = if ms < 100.0 {
        return ms.round_ties_even() as u64;
    } else if ms < 1_000.0 {
        10.0
    } else if ms < 10_000.0 {
        100.0
    } else {
        1_000.0
    };
    // The multiples of `step` around `ms`, then which is nearer. `ms - lo`
    // is exact (Sterbenz: lo ≤ ms < 2·lo), so ties are decided on the
    // float's exact value, as Python does, not on a rounded `ms / step`.
    let mut lo = (ms / step).floor() * step;
    if lo > ms {
        lo -= step;
    } else if ms - lo >= step {
        lo += step;
    }
    let above = ms - lo;
    let half = step / 2.0;
    let rounded = if above < half {
        lo
    } else if above > half || ((lo / step) as u64) % 2 == 1 {
        lo + step
    } else {
        lo
    };
    rounded as u64
}

/// Locust's `response_times` from an HDR histogram: each recorded bucket
/// at its highest value (kept within the raw min and max, so a lone value
/// lands where Locust would put it), in ms, rounded as Locust rounds.
pub fn locust_buckets(h: &Histogram<u64>, min_us: u64, max_us: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for v in h.iter_recorded() {
        let us = v.value_iterated_to().min(max_us).max(min_us.min(max_us));
        let ms = locust_bucket_ms(us_to_ms(us));
        let n = v.count_at_value();
        match out.last_mut() {
            Some(last) if last.0 == ms => last.1 += n,
            _ => out.push((ms, n)),
        }
    }
    out
}
