//! Range checks on a worker's `stats` report before the master merges it.
//! Decoding (`report`) already refuses what is mistyped; this refuses what
//! is well-typed but cannot be true: counts no worker could reach in one
//! report interval, failures or histogram buckets beyond the requests,
//! response times longer than a day, buckets out of order. A report that
//! fails is dropped whole (its parts cannot be trusted either), so every
//! later sum stays far from `u64::MAX` and no merge can overflow.
//!
//! It does not own decoding (`report`) or what the master does with a
//! refused report (`network`).

use super::report::{ReportEntry, WorkerReport};

/// More requests than this in one report is a lie: 2^40 is about 10^12,
/// a million requests per second for 12 days in one interval. It also
/// keeps a run's sums far from overflow (2^62 / 2^40 reports).
pub const MAX_REPORT_COUNT: u64 = 1 << 40;

/// A run whose request count would pass this stops taking reports: its
/// histograms' totals stay below `u64::MAX`, so reading percentiles never
/// overflows.
pub const MAX_RUN_COUNT: u64 = 1 << 62;

/// A response time longer than a day is not a response time.
pub const MAX_RESPONSE_MS: u64 = 86_400_000;

/// Why a report was refused, naming the field.
pub type CheckError = String;

impl WorkerReport {
    /// Refuse a report whose numbers cannot be true; `Ok` means every
    /// count is at most [`MAX_REPORT_COUNT`] and merging cannot overflow.
    pub fn check(&self) -> Result<(), CheckError> {
        for (i, e) in self.stats.iter().enumerate() {
            e.check()
                .map_err(|p| format!("stats[{i}] ({}): {p}", e.name))?;
        }
        self.stats_total
            .check()
            .map_err(|p| format!("stats_total: {p}"))?;
        self.stats
            .iter()
            .try_fold(0u64, |sum, e| sum.checked_add(e.num_requests))
            .filter(|n| *n <= MAX_REPORT_COUNT)
            .ok_or("more than 2^40 requests in all")?;
        for (i, e) in self.errors.iter().enumerate() {
            if e.occurrences > MAX_REPORT_COUNT {
                return Err(format!(
                    "errors[{i}]: {} occurrences (more than 2^40)",
                    e.occurrences
                ));
            }
        }
        if let Some(open) = &self.open_model {
            open.check()?;
        }
        Ok(())
    }

    /// Requests the report adds to the run (after [`WorkerReport::check`]).
    pub fn request_count(&self) -> u64 {
        self.stats
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.num_requests))
    }
}

impl ReportEntry {
    pub(super) fn check(&self) -> Result<(), CheckError> {
        let n = self.num_requests;
        if n > MAX_REPORT_COUNT {
            return Err(format!("{n} requests (more than 2^40 in one report)"));
        }
        if self.num_failures > n {
            return Err(format!("{} failures of {n} requests", self.num_failures));
        }
        if self.num_none_requests > n {
            return Err(format!(
                "{} untimed requests of {n}",
                self.num_none_requests
            ));
        }
        let max_ms = MAX_RESPONSE_MS as f64;
        if self.max_response_time > max_ms {
            return Err(format!(
                "max_response_time {:.3e} ms (more than a day)",
                self.max_response_time
            ));
        }
        if let Some(min) = self.min_response_time {
            if n > 0 && min > self.max_response_time {
                return Err(format!(
                    "min_response_time {min:.3e} above max_response_time {:.3e}",
                    self.max_response_time
                ));
            }
        }
        if self.total_response_time > max_ms * n as f64 {
            return Err(format!(
                "total_response_time {:.3e} ms for {n} requests",
                self.total_response_time
            ));
        }
        let mut timed = 0u64;
        for &(ms, count) in &self.response_times {
            if ms > MAX_RESPONSE_MS {
                return Err(format!("response_times has a bucket at {ms} ms"));
            }
            timed = timed
                .checked_add(count)
                .filter(|t| *t <= n)
                .ok_or_else(|| format!("response_times counts more than {n} requests"))?;
        }
        for &(_, count) in self.num_reqs_per_sec.iter().chain(&self.num_fail_per_sec) {
            if count > n {
                return Err(format!("a per-second count of {count} for {n} requests"));
            }
        }
        if let Some(hdr) = &self.hdr {
            let mut timed = 0u64;
            let mut previous: Option<u64> = None;
            for &(us, count) in hdr.buckets() {
                if us > MAX_RESPONSE_MS * 1000 || previous.is_some_and(|p| us <= p) {
                    return Err(format!("hdr bucket at {us} µs out of order or range"));
                }
                previous = Some(us);
                timed = timed
                    .checked_add(count)
                    .filter(|t| *t <= n)
                    .ok_or_else(|| format!("hdr counts more than {n} requests"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::report::ReportBuilder;
    use crate::http::Method;
    use crate::stats::{ShardStats, SparseHistogram};

    fn honest() -> WorkerReport {
        let mut shard = ShardStats::new();
        let id = shard.entry(Method::Get, "/x");
        for us in [900, 1_500, 250_000] {
            shard.record(id, us, 10);
        }
        let mut builder = ReportBuilder::new();
        builder.add(&shard.take_delta());
        builder.take_report(std::time::SystemTime::now(), Vec::new(), 1)
    }

    fn lie(f: impl FnOnce(&mut WorkerReport)) -> CheckError {
        let mut r = honest();
        f(&mut r);
        r.check().expect_err("a lie passed")
    }

    #[test]
    fn honest_reports_pass() {
        let r = honest();
        assert_eq!(r.check(), Ok(()));
        assert_eq!(r.request_count(), 3);
    }

    #[test]
    fn lies_are_refused_naming_the_field() {
        let e = lie(|r| r.stats[0].response_times = vec![(100, 1 << 63), (200, 1 << 63)]);
        assert!(e.contains("response_times"), "{e}");
        assert!(lie(|r| r.stats[0].num_requests = u64::MAX).contains("2^40"));
        assert!(lie(|r| r.stats[0].num_failures = 4).contains("failures"));
        assert!(lie(|r| r.stats[0].num_none_requests = 4).contains("untimed"));
        assert!(lie(|r| r.stats[0].max_response_time = 1e300).contains("max_response"));
        assert!(lie(|r| r.stats[0].min_response_time = Some(1e6)).contains("min_response"));
        assert!(lie(|r| r.stats[0].total_response_time = 1e15).contains("total_response"));
        assert!(lie(|r| r.stats[0].response_times = vec![(1 << 40, 1)]).contains("bucket"));
        assert!(lie(|r| r.stats[0].num_reqs_per_sec = vec![(1, 9)]).contains("per-second"));
        let e = lie(|r| {
            let mut h = SparseHistogram::default();
            h.push(500, 1);
            h.push(400, 1);
            r.stats[0].hdr = Some(h);
        });
        assert!(e.contains("hdr"), "{e}");
        let e = lie(|r| {
            let mut h = SparseHistogram::default();
            h.push(500, 2);
            h.push(600, 2);
            r.stats[0].hdr = Some(h);
        });
        assert!(e.contains("hdr counts"), "{e}");
        assert!(lie(|r| r.stats_total.num_failures = 9).contains("stats_total"));
        assert!(lie(|r| r.errors.push(crate::cluster::report::ReportError {
            method: "GET".into(),
            name: "/x".into(),
            error: "boom".into(),
            occurrences: u64::MAX,
            first_seen: None,
            last_seen: None,
        }))
        .contains("occurrences"));
    }

    #[test]
    fn the_largest_reports_that_pass_merge_and_read_without_overflow() {
        let mut r = honest();
        let e = &mut r.stats[0];
        e.num_requests = MAX_REPORT_COUNT;
        e.num_failures = MAX_REPORT_COUNT;
        e.max_response_time = MAX_RESPONSE_MS as f64;
        e.total_response_time = MAX_RESPONSE_MS as f64 * MAX_REPORT_COUNT as f64;
        e.hdr = None;
        e.response_times = vec![
            (1, MAX_REPORT_COUNT / 2),
            (MAX_RESPONSE_MS, MAX_REPORT_COUNT / 2),
        ];
        assert_eq!(r.check(), Ok(()));
        let mut stats = crate::stats::RunStats::new(true);
        let now = std::time::SystemTime::now();
        for _ in 0..100 {
            let (mut delta, _) = r.to_delta(now);
            stats.merge(&mut delta);
            stats.tick(now, 1);
        }
        let view = stats.view(now);
        assert_eq!(stats.total_requests(), 100 * MAX_REPORT_COUNT);
        assert!(!view.entries.is_empty());
    }
}
