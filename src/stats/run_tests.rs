//! Tests of `RunStats`, fed by real `ShardStats` deltas (a child module
//! of `run`, in its own file to keep `run.rs` readable).

use std::time::Duration;

use super::*;
use crate::http::HttpError;
use crate::stats::shard::{DeltaException, DeltaFailure, ShardStats, StatsDelta};
use crate::stats::HISTORY_CAP;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

/// A shard delta with `n` requests of `latency_us` on `GET name`.
fn delta(name: &str, n: u64, latency_us: u64, taken_at: SystemTime) -> StatsDelta {
    let mut shard = ShardStats::new();
    let id = shard.entry(Method::Get, name);
    for _ in 0..n {
        shard.record(id, latency_us, 100);
    }
    let mut d = shard.take_delta();
    d.taken_at = taken_at;
    d
}

#[test]
fn merging_two_shards_equals_recording_in_one_histogram() {
    let (mut a, mut b) = (ShardStats::new(), ShardStats::new());
    let (mut single, mut raw_max) = (new_histogram(), 0);
    let (ia, ib) = (a.entry(Method::Get, "/x"), b.entry(Method::Get, "/x"));
    for i in 0..5_000u64 {
        let v = 1 + (i * 7919) % 250_000;
        if i.is_multiple_of(3) {
            a.record(ia, v, 1)
        } else {
            b.record(ib, v, 1)
        }
        single.record(v).unwrap();
        raw_max = raw_max.max(v);
    }
    let mut run = RunStats::new_at(false, at(0));
    let (mut da, mut db) = (a.take_delta(), b.take_delta());
    da.taken_at = at(1);
    db.taken_at = at(1);
    run.merge(&mut da);
    run.merge(&mut db);
    assert_eq!(run.rows[0].histogram, single);
    assert_eq!(run.aggregated_second, single, "Aggregated's open window");
    let v = run.view(at(2));
    assert_eq!(v.entries.len(), 1);
    assert_eq!(v.entries[0].num_requests, 5_000);
    assert_eq!(
        v.entries[0].percentiles_ms,
        percentiles_ms(&single, raw_max)
    );
    assert_eq!(v.entries[0].max_ms, us_to_ms(raw_max));
    assert_eq!(v.entries[0].min_ms, us_to_ms(single.min()));
    // The deltas are reset and ready to recycle; merging again adds nothing.
    assert!(da
        .entries
        .iter()
        .all(|e| e.histogram.is_empty() && e.counts.requests == 0));
    run.merge(&mut da);
    assert_eq!(run.total_requests(), 5_000);
    // At the tick the open window joins Aggregated's cumulative histogram.
    run.tick(at(2), 1);
    assert_eq!(run.aggregated.histogram, single);
    assert!(run.aggregated_second.is_empty());
    assert_eq!(
        run.view(at(2)).aggregated.percentiles_ms,
        v.aggregated.percentiles_ms
    );
}

#[test]
fn aggregated_row_and_sort_order() {
    let mut run = RunStats::new_at(false, at(0));
    let mut shard = ShardStats::new();
    for (m, name, us) in [
        (Method::Post, "/b", 3000),
        (Method::Get, "/b", 1000),
        (Method::Get, "/a", 2000),
    ] {
        let id = shard.entry(m, name);
        shard.record(id, us, 10);
    }
    let mut d = shard.take_delta();
    d.taken_at = at(2);
    run.merge(&mut d);
    let v = run.view(at(2));
    let order: Vec<_> = v
        .entries
        .iter()
        .map(|e| (e.method_str(), e.name.as_str()))
        .collect();
    assert_eq!(order, [("GET", "/a"), ("GET", "/b"), ("POST", "/b")]);
    let agg = &v.aggregated;
    assert_eq!(
        (agg.method, agg.name.as_str(), agg.num_requests),
        (None, "Aggregated", 3)
    );
    assert_eq!(
        (agg.min_ms, agg.max_ms, agg.avg_ms, agg.median_ms),
        (1.0, 3.0, 2.0, 2.0)
    );
    assert_eq!(agg.avg_content_size, 10.0);
    // total_rps = requests / (last request - start) = 3 / 2 s.
    assert_eq!(agg.total_rps, 1.5);
    assert_eq!(v.last_request, Some(at(2)));
}

#[test]
fn current_rps_averages_the_last_ten_windows() {
    let mut run = RunStats::new_at(false, at(0));
    // 100 req/s for 5 s, then 300 req/s for 12 s.
    for s in 1..=17u64 {
        let n = if s <= 5 { 100 } else { 300 };
        run.merge(&mut delta("/x", n, 1000, at(s)));
        run.tick(at(s), 10);
        if s == 5 {
            let v = run.view(at(s));
            assert_eq!(v.entries[0].current_rps, 100.0);
            assert_eq!(v.aggregated.current_rps, 100.0);
        }
    }
    let v = run.view(at(17));
    assert_eq!(
        v.aggregated.current_rps, 300.0,
        "only the last 10 windows count"
    );
    assert_eq!(v.entries[0].current_fail_per_sec, 0.0);
    let h = run.history();
    assert_eq!(h.len(), 17);
    assert_eq!(
        (h[0].unix_time, h[0].user_count, h[0].rps),
        (1_700_000_001, 10, 100.0)
    );
    assert_eq!((h[16].rps, h[16].p50_ms), (300.0, 1.0));
}

#[test]
fn current_rps_divides_by_real_window_length() {
    let mut run = RunStats::new_at(false, at(0));
    run.merge(&mut delta("/x", 200, 1000, at(2)));
    run.tick(at(2), 1); // one 2-second window
    assert_eq!(run.view(at(2)).aggregated.current_rps, 100.0);
    assert_eq!(run.history()[0].rps, 100.0);
}

#[test]
fn current_percentiles_cover_only_the_window() {
    let mut run = RunStats::new_at(true, at(0));
    // 10 s at 1 ms, then 10 s at 50 ms: the window holds only 50 ms.
    for s in 1..=20u64 {
        let us = if s <= 10 { 1_000 } else { 50_000 };
        run.merge(&mut delta("/x", 10, us, at(s)));
        run.tick(at(s), 1);
    }
    let v = run.view(at(20));
    let current = v.entries[0].current_percentiles_ms.expect("kept");
    assert!(
        current.iter().all(|&p| (p - 50.0).abs() < 0.05),
        "{current:?}"
    );
    assert_eq!(v.aggregated.current_percentiles_ms.unwrap()[0], current[0]);
    assert_eq!(
        v.entries[0].percentiles_ms[0], 1.0,
        "cumulative p50 is still 1 ms"
    );
    assert!(run.view(at(20)).entries[0].current_percentiles_ms.is_some());
    assert!(RunStats::new(false)
        .view(at(0))
        .aggregated
        .current_percentiles_ms
        .is_none());
}

#[test]
fn window_histograms_are_reused_after_warm_up() {
    let mut run = RunStats::new_at(true, at(0));
    for s in 1..=30u64 {
        run.merge(&mut delta("/x", 5, 1000 + s, at(s)));
        run.tick(at(s), 1);
    }
    let pooled = run.pool.len();
    assert!(
        pooled >= 1,
        "histograms falling out of the window go back to the pool"
    );
    assert!(
        pooled <= 2,
        "the pool does not grow without bound: {pooled}"
    );
}

#[test]
fn reset_zeroes_rows_but_keeps_names() {
    let mut run = RunStats::new_at(true, at(0));
    let mut d = delta("/x", 10, 1000, at(1));
    d.failures.push(crate::stats::DeltaFailure {
        method: Method::Get,
        name: "/x".into(),
        failure: Failure::Status(500),
        count: 1,
    });
    run.merge(&mut d);
    run.tick(at(1), 5);
    run.reset_at(at(3));
    assert_eq!(
        (
            run.total_requests(),
            run.total_failures(),
            run.total_exceptions()
        ),
        (0, 0, 0)
    );
    assert!(run.history().is_empty());
    let v = run.view(at(3));
    assert_eq!(v.entries.len(), 1, "names stay, as in Locust");
    assert_eq!(v.entries[0].num_requests, 0);
    assert_eq!(v.entries[0].percentiles_ms, [0.0; 11]);
    assert_eq!(v.entries[0].current_percentiles_ms, Some([0.0; 11]));
    assert!(v.failures.is_empty());
    assert_eq!((v.start_time, v.last_request), (at(3), None));
    assert_eq!(v.aggregated.current_rps, 0.0);
    // Counting starts again from the reset.
    run.merge(&mut delta("/x", 4, 2000, at(5)));
    let v = run.view(at(5));
    assert_eq!(
        (v.aggregated.num_requests, v.aggregated.total_rps),
        (4, 2.0)
    );
}

#[test]
fn failures_are_keyed_and_timed_by_the_merges_that_brought_them() {
    let mut run = RunStats::new_at(false, at(0));
    let refused = Failure::Http(HttpError::ConnectionRefused);
    for (s, failure, name) in [
        (1, refused.clone(), "/a"),
        (2, refused.clone(), "/a"),
        (3, refused.clone(), "/b"),
        (4, Failure::Status(503), "/a"),
        (5, refused.clone(), "/a"),
    ] {
        let mut shard = ShardStats::new();
        let id = shard.entry(Method::Get, name);
        shard.record_failure(id, 10, 0, failure);
        let mut d = shard.take_delta();
        d.taken_at = at(s);
        run.merge(&mut d);
    }
    let v = run.view(at(9));
    let rows: Vec<_> = v
        .failures
        .iter()
        .map(|f| {
            (
                f.name.as_str(),
                f.error.as_str(),
                f.occurrences,
                f.first_seen,
                f.last_seen,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("/a", "connection refused", 3, at(1), at(5)),
            ("/a", "HTTP 503 Service Unavailable", 1, at(4), at(4)),
            ("/b", "connection refused", 1, at(3), at(3)),
        ]
    );
    assert_eq!(run.total_failures(), 5);
    assert_eq!(v.entries[0].num_failures, 4);
}

#[test]
fn exceptions_are_counted_by_message_and_traceback() {
    let mut run = RunStats::new_at(false, at(0));
    let mut shard = ShardStats::new();
    for _ in 0..3 {
        shard.record_exception("nil index", "task.lua:3");
    }
    shard.record_exception("nil index", "task.lua:9");
    run.merge(&mut shard.take_delta());
    shard.record_exception("nil index", "task.lua:3");
    run.merge(&mut shard.take_delta());
    let v = run.view(at(1));
    assert_eq!(run.total_exceptions(), 5);
    let rows: Vec<_> = v
        .exceptions
        .iter()
        .map(|e| (e.count, e.traceback.as_str()))
        .collect();
    assert_eq!(rows, [(4, "task.lua:3"), (1, "task.lua:9")]);
    assert_eq!(v.exceptions[0].nodes, ["local"]);
}

#[test]
fn names_past_the_cap_and_shard_fold_rows_share_one_other_row() {
    let mut run = RunStats::new_at(false, at(0));
    run.name_cap = 2;
    for name in ["/a", "/b", "/c", OTHER_NAME, "/d"] {
        run.merge(&mut delta(name, 1, 1000, at(1)));
    }
    let mut post = ShardStats::new();
    let id = post.entry(Method::Post, "/e");
    post.record_failure(id, 10, 0, Failure::Status(500));
    run.merge(&mut post.take_delta());
    let v = run.view(at(1));
    let rows: Vec<_> = v
        .entries
        .iter()
        .map(|e| (e.method_str(), e.name.as_str(), e.num_requests))
        .collect();
    assert_eq!(
        rows,
        [
            ("GET", "(other)", 3),
            ("POST", "(other)", 1),
            ("GET", "/a", 1),
            ("GET", "/b", 1)
        ]
    );
    assert_eq!(v.failures[0].name, OTHER_NAME, "failures follow their row");
}

#[test]
fn history_is_capped() {
    let mut run = RunStats::new_at(false, at(0));
    for s in 1..=(HISTORY_CAP as u64 + 5) {
        run.tick(at(s), 0);
    }
    assert!(run.history().len() <= HISTORY_CAP);
    assert_eq!(
        run.history().last().unwrap().unix_time,
        1_700_000_000 + HISTORY_CAP as u64 + 5
    );
}

#[test]
fn failure_rows_are_capped_at_merge_with_exact_totals() {
    let mut run = RunStats::new_at(false, at(0));
    run.failure_cap = 3;
    run.exception_cap = 2;
    // What a hostile worker could send: many rows in one delta.
    let mut d: Delta<crate::stats::SparseHistogram> = Delta::empty(at(1));
    for i in 0..10u64 {
        d.failures.push(DeltaFailure {
            method: Method::Get,
            name: "/a".into(),
            failure: Failure::Message(format!("e{i}").into()),
            count: i + 1,
        });
        d.exceptions.push(DeltaException {
            message: format!("x{i}"),
            traceback: String::new(),
            count: 1,
            node: Some("w1".into()),
        });
    }
    d.failures.push(DeltaFailure {
        method: Method::Post,
        name: "/b".into(),
        failure: Failure::Status(500),
        count: 4,
    });
    run.merge(&mut d);
    // A later delta: a known key keeps its row, a new one folds.
    let mut later: Delta<crate::stats::SparseHistogram> = Delta::empty(at(2));
    for (error, count) in [("e0", 100), ("new", 1_000)] {
        later.failures.push(DeltaFailure {
            method: Method::Get,
            name: "/a".into(),
            failure: Failure::Message(error.into()),
            count,
        });
    }
    run.merge(&mut later);
    let v = run.view(at(3));
    let rows: Vec<_> = v
        .failures
        .iter()
        .map(|f| (f.method, f.name.as_str(), f.error.as_str(), f.occurrences))
        .collect();
    assert_eq!(
        rows,
        [
            (
                Method::Get,
                "/a",
                "(other)",
                4 + 5 + 6 + 7 + 8 + 9 + 10 + 1_000
            ),
            (Method::Get, "/a", "e0", 101),
            (Method::Post, "/b", "(other)", 4),
            (Method::Get, "/a", "e2", 3),
            (Method::Get, "/a", "e1", 2),
        ]
    );
    assert_eq!(
        v.failures.iter().map(|f| f.occurrences).sum::<u64>(),
        (1..=10).sum::<u64>() + 4 + 1_100
    );
    let exceptions: Vec<_> = v
        .exceptions
        .iter()
        .map(|e| (e.message.as_str(), e.count))
        .collect();
    assert_eq!(exceptions, [("(other)", 8), ("x0", 1), ("x1", 1)]);
    assert_eq!(run.total_exceptions(), 10);
    assert_eq!(v.exceptions[0].nodes, ["w1"]);
}

#[test]
fn history_has_one_point_per_second_and_the_view_shows_the_last() {
    let mut run = RunStats::new_at(false, at(0));
    assert_eq!(run.view(at(0)).last_second, None);
    let t = |ms: u64| at(0) + Duration::from_millis(ms);
    run.merge(&mut delta("/a", 10, 1_000, t(900)));
    run.tick(t(1_000), 4);
    run.merge(&mut delta("/a", 30, 1_500, t(1_900)));
    run.tick(t(2_100), 4);
    // A prompt tick after a late one, in the same second: one point.
    run.merge(&mut delta("/a", 10, 1_000, t(2_900)));
    run.tick(t(2_950), 5);
    // A stall: nothing until second 5.
    run.tick(t(5_200), 5);
    let stamps: Vec<_> = run.history().iter().map(|p| p.unix_time).collect();
    let base = 1_700_000_000;
    assert_eq!(stamps, [base + 1, base + 2, base + 5]);
    let second = run.history()[1];
    assert_eq!(second.user_count, 5);
    assert!((second.rps - 40.0 / 1.95).abs() < 1e-9, "{}", second.rps);
    assert_eq!(second.p50_ms, 1.5);
    assert_eq!(run.history()[0].rps, 10.0);
    assert_eq!(run.view(t(5_300)).last_second, Some(run.history()[2]));
}

#[test]
fn a_seconds_user_count_is_the_most_users_at_its_ends() {
    let mut run = RunStats::new_at(false, at(0));
    run.tick(at(1), 0); // before the start
    run.tick(at(2), 3); // users spawned during this second
    run.merge(&mut delta("/a", 5, 1_000, at(3)));
    run.tick(at(3), 0); // stopped just before the tick: its requests ran at 3 users
    run.tick(at(4), 0); // after the stop
    let users: Vec<_> = run.history().iter().map(|p| p.user_count).collect();
    assert_eq!(users, [0, 3, 3, 0]);
    assert_eq!(run.history()[2].rps, 5.0);
    run.reset_at(at(5));
    run.tick(at(6), 0);
    assert_eq!(run.history()[0].user_count, 0, "reset forgets the users");
}

#[test]
fn the_interval_tap_holds_every_merged_request_once() {
    let mut run = RunStats::new_at(false, at(0));
    assert!(run.drain_intervals().sets.is_empty(), "off by default");
    run.merge(&mut delta("/before", 3, 1_000, at(0)));
    run.enable_intervals();
    run.merge(&mut delta("/a", 4, 1_000, at(1)));
    run.merge(&mut delta("/b", 2, 5_000, at(1)));
    run.tick(at(1), 1);
    run.merge(&mut delta("/a", 5, 2_000, at(2)));
    run.tick(at(2), 1);
    run.tick(at(3), 1);
    // The end of the run: merged since the last tick, cut without a tick.
    run.merge(&mut delta("/b", 1, 7_000, at(3)));
    run.cut_intervals(at(3));
    let drain = run.drain_intervals();
    assert_eq!(drain.dropped, 0);
    let spans: Vec<_> = drain.sets.iter().map(|s| (s.start, s.end)).collect();
    assert_eq!(spans, [(at(0), at(1)), (at(1), at(2)), (at(3), at(3))]);
    let total = |name: &str| -> u64 {
        let rows = drain.sets.iter().flat_map(|s| &s.rows);
        rows.filter(|r| r.name == name)
            .map(|r| r.histogram.len())
            .sum()
    };
    assert_eq!((total("/a"), total("/b"), total("/before")), (9, 3, 0));
    assert_eq!(total("Aggregated"), 12, "only what merged after enabling");
    // A new run keeps the tap and closes what it had open.
    run.merge(&mut delta("/c", 2, 1_000, at(4)));
    run.renew();
    run.merge(&mut delta("/d", 1, 1_000, at(5)));
    run.tick(SystemTime::now(), 1);
    let names: Vec<Vec<String>> = run
        .drain_intervals()
        .sets
        .iter()
        .map(|s| s.rows.iter().map(|r| r.name.clone()).collect())
        .collect();
    assert_eq!(names, [["/c", "Aggregated"], ["/d", "Aggregated"]]);
    assert_eq!(run.view(SystemTime::now()).entries.len(), 1, "only /d");
}
