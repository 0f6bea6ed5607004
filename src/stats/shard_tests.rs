//! Tests of `ShardStats` (a child module of `shard`, in its own file to
//! keep `shard.rs` readable).

use super::*;
use crate::http::HttpError;

#[test]
fn entry_ids_are_stable_and_per_method() {
    let mut s = ShardStats::new();
    let a = s.entry(Method::Get, "/a");
    let b = s.entry(Method::Post, "/a");
    assert_ne!(a, b);
    assert_eq!(s.entry(Method::Get, "/a"), a);
    assert_eq!(s.entry(Method::Post, "/a"), b);
    assert_eq!(s.entry_count(), 2);
}

#[test]
fn names_past_the_cap_fold_into_other_per_method() {
    let mut s = ShardStats::with_name_cap(2);
    let a = s.entry(Method::Get, "/a");
    let b = s.entry(Method::Get, "/b");
    let c = s.entry(Method::Get, "/c");
    let d = s.entry(Method::Get, "/d");
    let p = s.entry(Method::Post, "/e");
    assert!(a != b && b != c);
    assert_eq!(c, d, "both folded into the GET fold row");
    assert_ne!(c, p, "one fold row per method");
    assert_eq!(s.entry(Method::Get, "/a"), a, "known names keep their row");
    s.record(c, 10, 0);
    s.record(d, 20, 0);
    let delta = s.take_delta();
    let other = delta
        .entries
        .iter()
        .find(|e| e.method == Method::Get)
        .unwrap();
    assert_eq!(&*other.name, OTHER_NAME);
    assert_eq!(other.counts.requests, 2);
}

#[test]
fn take_delta_carries_counts_and_empties_the_table() {
    let mut s = ShardStats::new();
    let a = s.entry(Method::Get, "/a");
    let idle = s.entry(Method::Get, "/idle");
    s.record(a, 100, 10);
    s.record(a, 300, 30);
    s.record_failure(a, 50, 0, Failure::Status(500));
    s.record_exception("boom", "tb");
    s.record_exception("boom", "tb");
    let delta = s.take_delta();
    assert_eq!(delta.entries.len(), 1, "idle rows are not sent");
    let e = &delta.entries[0];
    assert_eq!(
        e.counts,
        EntryCounts {
            requests: 3,
            failures: 1,
            total_us: 450,
            min_us: 50,
            max_us: 300,
            bytes: 40
        }
    );
    assert_eq!(e.histogram.len(), 3);
    assert_eq!(delta.failures.len(), 1);
    assert_eq!(delta.failures[0].count, 1);
    assert_eq!(delta.exceptions.len(), 1);
    assert_eq!(delta.exceptions[0].count, 2);
    let _ = idle;
    assert!(s.take_delta().is_empty());
}

#[test]
fn failures_are_keyed_by_entry_and_failure() {
    let mut s = ShardStats::new();
    let a = s.entry(Method::Get, "/a");
    let b = s.entry(Method::Get, "/b");
    let refused = Failure::Http(HttpError::ConnectionRefused);
    s.record_failure(a, 1, 0, refused.clone());
    s.record_failure(a, 1, 0, refused.clone());
    s.record_failure(a, 1, 0, Failure::Status(503));
    s.record_failure(b, 1, 0, refused.clone());
    let mut got: Vec<_> = s
        .take_delta()
        .failures
        .into_iter()
        .map(|f| (f.name.to_string(), f.failure.to_string(), f.count))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("/a".into(), "HTTP 503 Service Unavailable".into(), 1),
            ("/a".into(), "connection refused".into(), 2),
            ("/b".into(), "connection refused".into(), 1),
        ]
    );
}

#[test]
fn recycle_reuses_histograms_after_warm_up() {
    let mut s = ShardStats::new();
    let ids: Vec<_> = (0..5)
        .map(|i| s.entry(Method::Get, &format!("/{i}")))
        .collect();
    let mut warm = 0;
    for round in 0..20 {
        for &id in &ids {
            s.record(id, 1000 + round, 1);
        }
        let mut delta = s.take_delta();
        // What the control thread does: merge resets, then it comes back.
        for e in &mut delta.entries {
            e.histogram.clear();
        }
        let entries_cap = delta.entries.capacity();
        s.recycle(delta);
        if round == 0 {
            warm = s.histograms_created();
            assert_eq!(warm, 5);
        }
        assert_eq!(
            s.histograms_created(),
            warm,
            "round {round} allocated a histogram"
        );
        assert_eq!(
            s.spare_delta.as_ref().unwrap().entries.capacity(),
            entries_cap
        );
    }
}

#[test]
fn recycling_an_unmerged_delta_resets_its_histograms() {
    let mut s = ShardStats::new();
    let a = s.entry(Method::Get, "/a");
    s.record(a, 5, 0);
    let delta = s.take_delta();
    s.recycle(delta);
    s.record(a, 7, 0);
    let delta = s.take_delta();
    assert_eq!(delta.entries[0].histogram.len(), 1);
    assert_eq!(delta.entries[0].histogram.max(), 7);
}

/// `(name, error, count)` of a delta's failures, sorted.
fn failure_rows(delta: &StatsDelta) -> Vec<(String, String, u64)> {
    let mut rows: Vec<_> = delta
        .failures
        .iter()
        .map(|f| (f.name.to_string(), f.failure.to_string(), f.count))
        .collect();
    rows.sort();
    rows
}

#[test]
fn failures_past_the_cap_fold_into_other_per_name() {
    let mut s = ShardStats::with_caps(MAX_NAMES, 3, MAX_EXCEPTIONS);
    let a = s.entry(Method::Get, "/a");
    let b = s.entry(Method::Post, "/b");
    for i in 0..10 {
        s.record_failure(a, 1, 0, Failure::Message(format!("boom {i}").into()));
    }
    // A kept key still counts on its own row once the table is full.
    s.record_failure(a, 1, 0, Failure::Message("boom 0".into()));
    s.record_failure(b, 1, 0, Failure::Status(500));
    let delta = s.take_delta();
    assert_eq!(
        failure_rows(&delta),
        [
            ("/a".into(), "(other)".into(), 7),
            ("/a".into(), "boom 0".into(), 2),
            ("/a".into(), "boom 1".into(), 1),
            ("/a".into(), "boom 2".into(), 1),
            ("/b".into(), "(other)".into(), 1),
        ]
    );
    let counted: u64 = delta.entries.iter().map(|e| e.counts.failures).sum();
    assert_eq!(counted, 12, "every failure counted on its row");
    // The cap is per delta: the next one starts with room again.
    s.recycle(delta);
    s.record_failure(a, 1, 0, Failure::Message("boom 9".into()));
    assert_eq!(
        failure_rows(&s.take_delta()),
        [("/a".into(), "boom 9".into(), 1)]
    );
}

#[test]
fn exceptions_past_the_cap_fold_into_one_other_row() {
    let mut s = ShardStats::with_caps(MAX_NAMES, MAX_FAILURES, 2);
    for i in 0..5 {
        s.record_exception(&format!("error {i}"), "tb");
    }
    s.record_exception("error 0", "tb");
    s.record_exception("error 0", "other traceback");
    let mut rows: Vec<_> = s
        .take_delta()
        .exceptions
        .into_iter()
        .map(|e| (e.message, e.traceback, e.count))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("(other)".into(), "".into(), 4),
            ("error 0".into(), "tb".into(), 2),
            ("error 1".into(), "tb".into(), 1),
        ]
    );
    s.record_exception("error 4", "tb");
    assert_eq!(s.take_delta().exceptions.len(), 1, "room again next delta");
}

#[test]
fn a_flood_of_distinct_failures_keeps_the_default_caps() {
    let mut s = ShardStats::new();
    let a = s.entry(Method::Get, "/a");
    for i in 0..20_000u32 {
        s.record_failure(a, 1, 0, Failure::Message(format!("id {i}").into()));
        s.record_exception(&format!("id {i}"), "tb");
    }
    let delta = s.take_delta();
    assert_eq!(delta.failures.len(), MAX_FAILURES + 1);
    assert_eq!(delta.failures.iter().map(|f| f.count).sum::<u64>(), 20_000);
    assert_eq!(delta.exceptions.len(), MAX_EXCEPTIONS + 1);
    assert_eq!(
        delta.exceptions.iter().map(|e| e.count).sum::<u64>(),
        20_000
    );
}

#[test]
fn paged_histograms_are_recycled_without_new_pages() {
    let mut s = ShardStats::new();
    let ids: Vec<_> = (0..5)
        .map(|i| s.entry(Method::Get, &format!("/{i}")))
        .collect();
    let mut pages = 0;
    for round in 0..10u64 {
        for &id in &ids {
            for v in 1_000..1_200 {
                s.record(id, v + round, 1);
            }
        }
        let mut delta = s.take_delta();
        let mut merged = new_histogram();
        for e in &mut delta.entries {
            e.histogram.add_to(&mut merged);
            e.histogram.clear();
        }
        assert_eq!(merged.len(), 1_000);
        let allocated: u64 = delta
            .entries
            .iter()
            .map(|e| e.histogram.pages_allocated())
            .sum();
        if round == 0 {
            pages = allocated;
        }
        assert_eq!(allocated, pages, "round {round} allocated pages");
        s.recycle(delta);
    }
}
