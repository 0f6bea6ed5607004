//! Tests of [`ReportBuilder`]: a report built from engine deltas merges
//! at the master exactly like the deltas themselves (HDR buckets), or
//! within Locust's rounding (Locust's buckets); takes empty the builder and
//! reuse its histograms; names past the cap fold into "(other)". A child
//! module of `report`, beside `report_tests.rs`.

use super::tests::*;
use super::*;
use crate::http::HttpError;
use crate::stats::{RunStats, ShardStats, StatsDelta, StatsView, MAX_NAMES, OTHER_NAME};

/// A busy shard delta: thousands of latencies over 5 decades on 3 rows.
fn busy_delta(seed: u64, taken_at: SystemTime) -> StatsDelta {
    let mut shard = ShardStats::new();
    let a = shard.entry(Method::Get, "/a");
    let b = shard.entry(Method::Post, "/b");
    let c = shard.entry(Method::Get, "/c");
    let mut x = seed;
    for i in 0..4_000u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // 50 µs .. ~5 s, log-spread.
        let us = 50 + (x >> 40) % (10u64.pow(1 + (i % 5) as u32) * 50);
        match i % 11 {
            0 => shard.record_failure(b, us, 3, Failure::Status(500)),
            1 => shard.record_failure(a, us, 0, Failure::Http(HttpError::ConnectionRefused)),
            2 | 3 => shard.record(b, us, 200),
            4 => shard.record(c, us, 1),
            _ => shard.record(a, us, 1_000),
        }
    }
    shard.record_exception("boom", "tb");
    let mut d = shard.take_delta();
    d.taken_at = taken_at;
    d
}

fn failures_of(v: &StatsView) -> Vec<(String, String, String, u64)> {
    let mut f: Vec<_> = v
        .failures
        .iter()
        .map(|f| {
            (
                f.method.to_string(),
                f.name.clone(),
                f.error.clone(),
                f.occurrences,
            )
        })
        .collect();
    f.sort();
    f
}

/// Name, method, requests, failures, min, max, total µs, bytes.
type Counters = (String, &'static str, u64, u64, u64, u64, u64, u64);

/// The counters both paths must agree on exactly.
fn counts_of(v: &StatsView) -> Vec<Counters> {
    v.entries
        .iter()
        .chain([&v.aggregated])
        .map(|e| {
            (
                e.name.clone(),
                e.method_str(),
                e.num_requests,
                e.num_failures,
                (e.min_ms * 1000.0).round() as u64,
                (e.max_ms * 1000.0).round() as u64,
                (e.avg_ms * e.num_requests as f64 * 1000.0).round() as u64,
                (e.avg_content_size * e.num_requests as f64).round() as u64,
            )
        })
        .collect()
}

/// Two shard deltas merged directly, and the same through a builder, the
/// report's bytes and `to_delta` (`strip_hdr`: as from a Locust worker).
fn direct_and_via_report(strip_hdr: bool) -> (StatsView, StatsView, ReportBuilder) {
    let d1 = busy_delta(1, at_ms(1_000));
    let d2 = busy_delta(2, at_ms(2_000));
    let mut direct = RunStats::new_at(false, at_ms(0));
    direct.merge(&mut d1.clone());
    direct.merge(&mut d2.clone());

    let mut builder = ReportBuilder::new_at(at_ms(0));
    builder.add(&d1);
    builder.add(&d2);
    let report = builder.take_report(at_ms(3_000), vec![("U".into(), 5)], 5);
    let mut received = through_bytes(report);
    if strip_hdr {
        for e in &mut received.stats {
            e.hdr = None;
        }
    }
    let (mut delta, unknown) = received.to_delta(at_ms(3_000));
    assert!(unknown.is_empty());
    let mut via = RunStats::new_at(false, at_ms(0));
    via.merge(&mut delta);
    (direct.view(at_ms(4_000)), via.view(at_ms(4_000)), builder)
}

#[test]
fn builder_report_merges_exactly_like_the_shard_deltas() {
    let (direct, via, mut builder) = direct_and_via_report(false);
    assert_eq!(direct.entries.len(), 3);
    assert_eq!(counts_of(&via), counts_of(&direct));
    for (d, v) in direct
        .entries
        .iter()
        .zip(&via.entries)
        .chain([(&direct.aggregated, &via.aggregated)])
    {
        assert_eq!(v.percentiles_ms, d.percentiles_ms, "{}", d.name);
        assert_eq!(v.median_ms, d.median_ms);
    }
    assert_eq!(failures_of(&via), failures_of(&direct));
    assert_eq!(failures_of(&via).len(), 2);
    // Exceptions go as `exception` messages, not in the report.
    assert_eq!(
        builder.take_exceptions(),
        vec![("boom".to_string(), "tb".to_string(), 2)]
    );
    assert!(builder.take_exceptions().is_empty());
}

#[test]
fn locust_buckets_merge_within_locusts_rounding() {
    let (direct, via, _) = direct_and_via_report(true);
    assert_eq!(counts_of(&via), counts_of(&direct));
    assert_eq!(failures_of(&via), failures_of(&direct));
    for (d, v) in direct
        .entries
        .iter()
        .zip(&via.entries)
        .chain([(&direct.aggregated, &via.aggregated)])
    {
        for (i, (dp, vp)) in d.percentiles_ms.iter().zip(&v.percentiles_ms).enumerate() {
            // Half a ms below 100 ms, 5% above, plus HDR's 0.1% twice.
            let tolerance = 0.5 + 0.05 * dp + 0.002 * dp + 0.01;
            assert!(
                (dp - vp).abs() <= tolerance,
                "{} p{i}: direct {dp} via Locust buckets {vp}",
                d.name
            );
        }
    }
}

#[test]
fn take_report_fills_locusts_fields() {
    let mut b = ReportBuilder::new_at(at_ms(0));
    // Requests at 10.2 s, 10.7 s and 12.1 s (second: floor(t − 0.5)).
    b.add(&delta_of(
        &[
            (Method::Get, "/a", 99_499, None),
            (Method::Get, "/a", 2_000, Some(Failure::Status(404))),
        ],
        at_ms(10_200),
    ));
    b.add(&delta_of(
        &[(Method::Get, "/a", 1_000, None)],
        at_ms(12_100),
    ));
    b.add(&delta_of(
        &[(Method::Post, "/a", 5, Some(Failure::Status(404)))],
        at_ms(10_700),
    ));
    let r = b.take_report(at_ms(13_000), vec![("U".into(), 2)], 2);
    assert_eq!(r.user_classes_count, vec![("U".to_string(), 2)]);
    assert_eq!(r.user_count, 2);
    assert_eq!(r.stats.len(), 2);
    let get = &r.stats[0];
    assert_eq!((get.name.as_str(), get.method.as_str()), ("/a", "GET"));
    let post = &r.stats[1];
    assert_eq!(post.method, "POST");
    assert_eq!(get.start_time, T0 as f64);
    assert_eq!(get.last_request_timestamp, Some(T0 as f64 + 12.1));
    assert_eq!(post.last_request_timestamp, Some(T0 as f64 + 10.7));
    assert_eq!(
        (get.num_requests, get.num_failures, get.num_none_requests),
        (3, 1, 0)
    );
    assert_eq!(get.total_response_time, 102.499);
    assert_eq!(get.min_response_time, Some(1.0));
    assert_eq!(get.max_response_time, 99.499);
    assert_eq!(get.total_content_length, 30);
    // 99.499 ms stays in Locust's 99 bucket though its HDR bucket's top
    // edge is above 99.5: values are kept within the raw min and max.
    assert_eq!(get.response_times, vec![(1, 1), (2, 1), (99, 1)]);
    let s = T0 as i64;
    assert_eq!(get.num_reqs_per_sec, vec![(s + 9, 2), (s + 11, 1)]);
    assert_eq!(get.num_fail_per_sec, vec![(s + 9, 1)]);
    assert_eq!(post.num_reqs_per_sec, vec![(s + 10, 1)]);
    assert_eq!(get.hdr.as_ref().map(|h| h.total_count()), Some(3));

    let t = &r.stats_total;
    assert_eq!(
        (t.name.as_str(), t.method.as_str(), t.hdr.as_ref()),
        ("Aggregated", "", None)
    );
    assert_eq!((t.num_requests, t.num_failures), (4, 2));
    assert_eq!(t.min_response_time, Some(0.005));
    assert_eq!(t.max_response_time, 99.499);
    assert_eq!(t.last_request_timestamp, Some(T0 as f64 + 12.1));
    assert_eq!(t.response_times, vec![(0, 1), (1, 1), (2, 1), (99, 1)]);
    assert_eq!(
        t.num_reqs_per_sec,
        vec![(s + 9, 2), (s + 10, 1), (s + 11, 1)]
    );
    assert_eq!(t.num_fail_per_sec, vec![(s + 9, 1), (s + 10, 1)]);

    assert_eq!(r.errors.len(), 2);
    let e = &r.errors[0];
    assert_eq!(
        (
            e.method.as_str(),
            e.name.as_str(),
            e.error.as_str(),
            e.occurrences
        ),
        ("GET", "/a", "HTTP 404 Not Found", 1)
    );
    assert_eq!(e.first_seen, Some(T0 as f64 + 10.2));
    assert_eq!(e.last_seen, Some(T0 as f64 + 10.2));
    assert_eq!(
        r.to_value().as_map().unwrap()[2].1.as_map().unwrap().len(),
        2
    );
}

#[test]
fn take_empties_the_builder_and_reuses_histograms() {
    let mut b = ReportBuilder::new_at(at_ms(0));
    let d = busy_delta(3, at_ms(1_000));
    b.add(&d);
    let first = b.take_report(at_ms(3_000), vec![], 0);
    assert_eq!(first.stats.len(), 3);
    assert!(b.rows.iter().all(|r| r.histogram.is_none()));
    assert_eq!(b.pool.len(), 3, "histograms kept for the next report");

    let idle = b.take_report(at_ms(6_000), vec![("U".into(), 0)], 0);
    assert!(idle.stats.is_empty() && idle.errors.is_empty());
    assert_eq!(
        idle.stats_total.start_time,
        T0 as f64 + 3.0,
        "the last take"
    );
    assert_eq!(idle.stats_total.num_requests, 0);
    assert_eq!(idle.stats_total.min_response_time, None);
    assert_eq!(idle.stats_total.last_request_timestamp, None);
    assert!(idle.stats_total.response_times.is_empty());
    // An idle report still goes through, and merges as nothing.
    let (delta, _) = through_bytes(idle).to_delta(at_ms(6_000));
    assert!(delta.is_empty());

    for round in 0..3 {
        b.add(&busy_delta(10 + round, at_ms(7_000)));
        let r = b.take_report(at_ms(9_000), vec![], 0);
        assert_eq!(r.stats.len(), 3);
        assert_eq!(b.pool.len(), 3, "round {round} allocated");
    }
    b.add(&d);
    b.reset(at_ms(20_000));
    let after = b.take_report(at_ms(21_000), vec![], 0);
    assert!(after.stats.is_empty());
    assert_eq!(after.stats_total.start_time, T0 as f64 + 20.0);
    assert!(b.take_exceptions().is_empty(), "reset drops exceptions");
}

#[test]
fn names_past_the_cap_fold_into_other() {
    let mut b = ReportBuilder::new_at(at_ms(0));
    // Failure-only deltas make rows without histograms (cheap).
    let mut d = StatsDelta::empty(at_ms(1_000));
    for i in 0..MAX_NAMES {
        d.failures.push(DeltaFailure {
            method: Method::Get,
            name: format!("/{i}").into(),
            failure: Failure::Status(500),
            count: 1,
        });
    }
    b.add(&d);
    b.add(&delta_of(
        &[
            (Method::Get, "/new", 10, Some(Failure::Status(500))),
            (Method::Get, "/0", 10, None),
        ],
        at_ms(1_500),
    ));
    let r = b.take_report(at_ms(2_000), vec![], 0);
    let names: Vec<_> = r.stats.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["(other)", "/0"]);
    assert_eq!(r.errors.len(), MAX_NAMES + 1);
    assert!(r.errors.iter().any(|e| e.name == OTHER_NAME));
}

#[test]
fn bad_request_types_are_named_once() {
    let mut r = parse_report(&hex(PY_STATS));
    let mut copy = r.stats[2].clone();
    copy.num_requests = 9;
    r.stats.push(copy);
    r.errors.push(ReportError {
        method: "custom".into(),
        name: "my thing".into(),
        error: "x".into(),
        occurrences: 1,
        first_seen: None,
        last_seen: None,
    });
    r.errors.push(ReportError {
        method: "not\na type".into(),
        name: "call".into(),
        error: "x".into(),
        occurrences: 1,
        first_seen: None,
        last_seen: None,
    });
    let (delta, unknown) = r.to_delta(at_ms(0));
    assert_eq!(unknown, vec!["not\na type call".to_string()]);
    // "custom" is a custom request type now (a Locust worker's own
    // `request_type`); a name no type may have is left out.
    assert_eq!(delta.failures.len(), 2);
    // Lower-case methods are Locust's `client.request("get", …)`.
    r.stats[0].method = "get".into();
    assert_eq!(r.to_delta(at_ms(0)).0.entries[0].method, Method::Get);
}
