//! Tests of the master's pending latencies (`run_pending`): a `RunStats`
//! fed sparse bucket lists (counted first, recorded at the tick) reads
//! exactly as one fed the same latencies as dense histograms (recorded at
//! once, the old way), at every read; and a flood keeps the pending memory
//! bounded. A child module of `run`, for its private fields.

use std::time::Duration;

use super::*;
use crate::stats::shard::DeltaEntry;
use crate::stats::SparseHistogram;

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
}

/// xorshift64: deterministic, spread.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn counts_of(requests: u64, sparse: &SparseHistogram) -> EntryCounts {
    let max_us = sparse.buckets().last().map_or(0, |b| b.0);
    EntryCounts {
        requests,
        failures: requests / 7,
        total_us: requests * 1_000,
        min_us: sparse.buckets().first().map_or(u64::MAX, |b| b.0),
        max_us,
        bytes: requests * 10,
    }
}

/// A worker report's delta: `names` entries with random buckets, some of
/// them past the histogram's range or with counts no `u32` holds.
fn report(x: &mut u64, names: usize, at_ms: u64) -> Delta<SparseHistogram> {
    let mut delta = Delta::empty(at(at_ms));
    for _ in 0..names {
        let n = next(x) % 12;
        let method = if n.is_multiple_of(3) {
            Method::Post
        } else {
            Method::Get
        };
        let mut sparse = SparseHistogram::default();
        let mut value = 0u64;
        for _ in 0..(next(x) % 60) {
            value += 1 + next(x) % 40_000;
            let count = match next(x) % 50 {
                0 => 1 << 40,
                1 => u64::from(u32::MAX),
                c => c,
            };
            sparse.push(value, count);
        }
        if next(x).is_multiple_of(40) {
            sparse.push(u64::MAX / 2, 3);
        }
        let requests = sparse.total_count().max(1);
        delta.entries.push(DeltaEntry {
            method,
            name: format!("/api/{n}").into(),
            counts: counts_of(requests, &sparse),
            histogram: sparse,
        });
    }
    delta
}

/// The same delta with dense histograms: merged the old way (no buckets
/// list, so recorded at once).
fn dense(delta: &Delta<SparseHistogram>) -> Delta<Histogram<u64>> {
    let mut out = Delta::empty(delta.taken_at);
    for e in &delta.entries {
        let mut h = new_histogram();
        e.histogram.add_to(&mut h);
        out.entries.push(DeltaEntry {
            method: e.method,
            name: e.name.clone(),
            histogram: h,
            counts: e.counts,
        });
    }
    out
}

/// Every read a front end or script makes gives the same answer.
fn assert_same_reads(new: &RunStats, old: &RunStats, now: SystemTime, when: &str) {
    assert_eq!(
        format!("{:?}", new.view(now)),
        format!("{:?}", old.view(now)),
        "view {when}"
    );
    let (hn, ho) = (new.histograms(), old.histograms());
    assert_eq!(hn.len(), ho.len(), "{when}");
    for (a, b) in hn.iter().zip(&ho) {
        assert_eq!((a.method, &a.name), (b.method, &b.name), "{when}");
        assert_eq!(a.histogram, b.histogram, "histogram of {} {when}", a.name);
    }
    let mut names: Vec<(Option<Method>, String)> = vec![(None, String::new())];
    names.extend(hn.iter().map(|h| (h.method, h.name.clone())));
    for (method, name) in names {
        for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                new.row_percentile(method, &name, q),
                old.row_percentile(method, &name, q),
                "{method:?} {name} p{q} {when}"
            );
        }
        assert_eq!(
            format!("{:?}", new.row(method, &name, now)),
            format!("{:?}", old.row(method, &name, now)),
            "row {method:?} {name} {when}"
        );
    }
    assert_eq!(new.history(), old.history(), "history {when}");
}

fn compare_run(keep_window: bool, name_cap: usize) {
    let mut new = RunStats::new_at(keep_window, at(0));
    let mut old = RunStats::new_at(keep_window, at(0));
    new.name_cap = name_cap;
    old.name_cap = name_cap;
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ name_cap as u64;
    let mut ms = 0;
    for i in 0..300u64 {
        ms += 1 + next(&mut x) % 300;
        let names = 1 + (next(&mut x) % 6) as usize;
        let mut sparse = report(&mut x, names, ms);
        let mut old_way = dense(&sparse);
        new.merge(&mut sparse);
        old.merge(&mut old_way);
        // Reads in the middle of a second, with buckets pending.
        assert_same_reads(&new, &old, at(ms), &format!("after report {i}"));
        if i % 7 == 6 {
            new.tick(at(ms), 3);
            old.tick(at(ms), 3);
            assert_same_reads(&new, &old, at(ms), &format!("after tick {i}"));
            for (a, b) in new.rows.iter().zip(&old.rows) {
                assert!(a.pending.is_empty());
                assert_eq!(a.histogram, b.histogram, "{} after tick", a.name);
            }
            assert_eq!(new.aggregated.histogram, old.aggregated.histogram);
        }
        if i == 150 {
            new.reset_at(at(ms));
            old.reset_at(at(ms));
            assert_same_reads(&new, &old, at(ms), "after reset");
        }
    }
    assert!(new.rows.iter().any(|r| &*r.name == OTHER_NAME) == (name_cap < 8));
}

#[test]
fn pending_reads_equal_recording_at_once() {
    compare_run(false, MAX_NAMES);
}

#[test]
fn pending_reads_equal_recording_at_once_with_windows() {
    compare_run(true, MAX_NAMES);
}

#[test]
fn pending_reads_equal_recording_at_once_past_the_name_cap() {
    compare_run(false, 4);
    compare_run(true, 4);
}

#[test]
fn a_flood_of_huge_reports_keeps_pending_memory_bounded() {
    // 10,000 reports of 65,536 buckets (the most a report may carry),
    // all within one tick: far more than any dense histogram's counters.
    let mut sparse = SparseHistogram::default();
    for i in 0..65_536u64 {
        let count = if i % 64 == 0 { 1 << 33 } else { 1 + i % 3 };
        sparse.push(i * 65_537, count);
    }
    let requests = sparse.total_count();
    let mut run = RunStats::new_at(false, at(0));
    let mut delta = Delta::empty(at(1));
    // A dense histogram of our bounds has 23,552 `u32` counters here,
    // plus the page directory.
    let bound = 23_552 * 4 + 2 * 1024;
    for _ in 0..10_000 {
        delta.entries.push(DeltaEntry {
            method: Method::Get,
            name: "/flood".into(),
            histogram: sparse.clone(),
            counts: counts_of(requests, &sparse),
        });
        run.merge(&mut delta);
        delta.entries.clear();
        assert!(run.rows[0].pending.heap_bytes() <= bound);
    }
    assert_eq!(run.total_requests(), requests * 10_000);
    // What was pending is exactly what a direct record gives.
    let mut direct = new_histogram();
    for _ in 0..10_000 {
        sparse.add_to(&mut direct);
    }
    assert_eq!(*run.rows[0].cumulative(), direct);
    run.tick(at(2), 1);
    assert!(run.rows[0].pending.is_empty());
    assert_eq!(run.rows[0].histogram, direct);
    assert_eq!(run.aggregated.histogram, direct);
}
