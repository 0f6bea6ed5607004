//! The threshold grammar's table (good and bad expressions, with the
//! messages), and verdicts on a fixed report.

use std::time::{Duration, SystemTime};

use super::*;
use crate::engine::{IoDriver, Topology};
use crate::report::test_view::sample_view;
use crate::report::RunInfo;
use crate::stats::EntryHistogram;

fn named(text: &str, method: Option<(Method, &str)>) -> RowRef {
    RowRef::Named {
        text: text.into(),
        method: method.map(|(m, n)| (m, n.to_string())),
    }
}

#[test]
fn good_expressions_parse() {
    use Metric::*;
    let agg = RowRef::Aggregated;
    let cases: Vec<(&str, RowRef, Metric, Op, f64)> = vec![
        ("p95<300ms", agg.clone(), Percentile(95.0), Op::Lt, 300.0),
        (
            " p95 < 300 ms ",
            agg.clone(),
            Percentile(95.0),
            Op::Lt,
            300.0,
        ),
        ("p99.9<=1.5s", agg.clone(), Percentile(99.9), Op::Le, 1500.0),
        ("p99.99>250us", agg.clone(), Percentile(99.99), Op::Gt, 0.25),
        ("P50>=2", agg.clone(), Percentile(50.0), Op::Ge, 2.0),
        ("p100<1s", agg.clone(), Percentile(100.0), Op::Lt, 1000.0),
        ("avg<20ms", agg.clone(), Avg, Op::Lt, 20.0),
        ("max<2s", agg.clone(), Max, Op::Lt, 2000.0),
        ("rps>100", agg.clone(), Rps, Op::Gt, 100.0),
        ("rps>=50/s", agg.clone(), Rps, Op::Ge, 50.0),
        ("fail_ratio<1%", agg.clone(), FailRatio, Op::Lt, 0.01),
        ("fail_ratio<0.05", agg.clone(), FailRatio, Op::Lt, 0.05),
        ("failures<=10", agg.clone(), Failures, Op::Le, 10.0),
        ("requests>1000", agg.clone(), Requests, Op::Gt, 1000.0),
        (
            "Aggregated: p95<1s",
            agg.clone(),
            Percentile(95.0),
            Op::Lt,
            1000.0,
        ),
        (
            "GET /api/cart: p95<300ms",
            named("GET /api/cart", Some((Method::Get, "/api/cart"))),
            Percentile(95.0),
            Op::Lt,
            300.0,
        ),
        (
            "/api/cart:avg<5",
            named("/api/cart", None),
            Avg,
            Op::Lt,
            5.0,
        ),
        // Names hold ':' themselves: the split is at the last ':' that a
        // metric and an operator follow.
        (
            "http://x/a: p95<1s",
            named("http://x/a", None),
            Percentile(95.0),
            Op::Lt,
            1000.0,
        ),
        (
            "POST http://h:8080/a:b: max<1s",
            named(
                "POST http://h:8080/a:b",
                Some((Method::Post, "http://h:8080/a:b")),
            ),
            Max,
            Op::Lt,
            1000.0,
        ),
        (
            "/t?x=a<b: failures<1",
            named("/t?x=a<b", None),
            Failures,
            Op::Lt,
            1.0,
        ),
        (
            "avg: p95<1s",
            named("avg", None),
            Percentile(95.0),
            Op::Lt,
            1000.0,
        ),
    ];
    for (text, row, metric, op, value) in cases {
        let t = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(t.text, text.trim(), "{text}");
        assert_eq!(t.row, row, "{text}");
        assert_eq!(t.metric, metric, "{text}");
        assert_eq!(t.op, op, "{text}");
        assert!((t.value - value).abs() < 1e-9, "{text}: {}", t.value);
    }
}

#[test]
fn bad_expressions_say_what_is_wrong() {
    let cases = [
        ("", "empty threshold"),
        (
            "p95<3xs",
            "'3xs': unknown unit 'xs' (use us, ms, s, or a plain number of ms)",
        ),
        (
            "p95<1%",
            "'1%': '%' does not fit p95 (use us, ms, s, or a plain number of ms)",
        ),
        (
            "fail_ratio<5",
            "'5': fail_ratio is a fraction from 0 to 1; write '5%' for percent",
        ),
        ("fail_ratio<1ms", "'1ms': 'ms' does not fit fail_ratio"),
        ("fail_ratio<150%", "at most 100%"),
        ("failures<2.5", "use a whole number"),
        ("requests<10s", "'s' does not fit requests"),
        ("rps>1k", "unknown unit 'k'"),
        ("p95<", "no value after the operator (example: 'p95<300ms')"),
        ("p95<fast", "'fast' is not a number"),
        ("p95<-1", "cannot be negative"),
        (
            "p95=300ms",
            "'=' is not an operator here (use <, <=, > or >=)",
        ),
        ("p95==300ms", "'==' is not an operator here"),
        ("p95 300ms", "no operator in 'p95 300ms'"),
        ("<300ms", "no metric before the operator"),
        ("p95x<1s", "unknown metric 'p95x'"),
        ("latency<1s", "unknown metric 'latency' (use p50"),
        ("p0<1s", "'p0': a percentile is above 0 and at most 100"),
        ("p101<1s", "at most 100"),
        ("p(95)<1s", "'p(95)' is not a metric"),
        ("GET /api p95<1s", "'GET /api p95' is not a metric"),
        ("/api: p95x<1s", "unknown metric 'p95x'"),
        (" : p95<1s", "empty row name before ':'"),
    ];
    for (text, want) in cases {
        match parse(text) {
            Ok(t) => panic!("{text:?} parsed as {t:?}"),
            Err(e) => assert!(e.contains(want), "{text:?}: got {e:?}, want {want:?}"),
        }
    }
}

fn histogram(values_us: &[u64]) -> Histogram<u64> {
    let mut h = crate::stats::new_histogram();
    for v in values_us {
        h.record(*v).unwrap();
    }
    h
}

/// The sample view (GET /a: 10 requests, 1 failure; POST /b…: 5; GET /c:
/// none) with histograms whose percentiles we know.
fn report() -> FinalReport {
    let stats = sample_view();
    let a: Vec<u64> = (1..=10).map(|i| i * 100).collect(); // 0.1 .. 1.0 ms
    let b = [2_000u64; 5];
    let mut agg = histogram(&a);
    agg.add(histogram(&b)).unwrap();
    let row = |m, n: &str, h| EntryHistogram {
        method: m,
        name: n.into(),
        histogram: h,
    };
    let histograms = vec![
        row(Some(Method::Get), "/a", histogram(&a)),
        row(Some(Method::Post), "/b?q=\"x\",y", histogram(&b)),
        row(Some(Method::Get), "/c", histogram(&[])),
        row(None, "Aggregated", agg),
    ];
    let now = SystemTime::now();
    FinalReport {
        info: RunInfo {
            version: "test",
            command_line: vec![],
            started: now - Duration::from_secs(4),
            ended: now,
            host: "http://127.0.0.1".into(),
            script: None,
            classes: vec![],
            script_classes: vec![],
            topology: Topology::Local {
                shards: 1,
                io_driver: IoDriver::Epoll,
            },
            target_users: 1,
            spawn_rate: 1.0,
            run_time: None,
        },
        stats,
        history: vec![],
        histograms,
        task_runs: vec![],
        open_model: None,
    }
}

fn verdicts(exprs: &[&str]) -> Vec<Verdict> {
    let ts: Vec<Threshold> = exprs.iter().map(|e| parse(e).unwrap()).collect();
    evaluate(&ts, &report())
}

#[test]
fn verdicts_read_the_histograms_and_counts() {
    let v = verdicts(&[
        "p50<=0.5ms",
        "GET /a: p90<0.9ms",
        "/a: p99.9>=1ms",
        "avg<1ms",
        "fail_ratio<5%",
        "failures<2",
        "requests>=15",
        "max<3s",
        "/b?q=\"x\",y: p50>1ms",
        "rps>3",
    ]);
    let lines: Vec<&str> = v.iter().map(|v| v.line.as_str()).collect();
    // The sample's Aggregated p50 is the 8th of 15 values: 0.8 ms.
    assert_eq!(lines[0], "FAIL  p50<=0.5ms  (p50 = 0.80 ms)");
    assert_eq!(lines[1], "FAIL  GET /a: p90<0.9ms  (p90 = 0.90 ms)");
    assert_eq!(lines[2], "PASS  /a: p99.9>=1ms  (p99.9 = 1.00 ms)");
    assert_eq!(lines[3], "PASS  avg<1ms  (avg = 0.60 ms)");
    assert_eq!(lines[4], "FAIL  fail_ratio<5%  (fail_ratio = 6.67%)");
    assert_eq!(lines[5], "PASS  failures<2  (failures = 1)");
    assert_eq!(lines[6], "PASS  requests>=15  (requests = 15)");
    assert_eq!(lines[7], "PASS  max<3s  (max = 3.50 ms)");
    assert_eq!(lines[8], "PASS  /b?q=\"x\",y: p50>1ms  (p50 = 1.20 ms)");
    assert_eq!(lines[9], "PASS  rps>3  (rps = 3.8 req/s)");
    assert!((v[3].measured.unwrap() - 0.6).abs() < 1e-9);
}

#[test]
fn missing_rows_and_empty_rows_fail() {
    let v = verdicts(&[
        "/nope: p95<1s",
        "GET /b?q=\"x\",y: failures<1",
        "/c: p95<1s",
        "/c: requests<1",
    ]);
    assert!(!v[0].passed);
    assert!(
        v[0].line
            .contains("no such row: no request was named '/nope'"),
        "{}",
        v[0].line
    );
    assert!(!v[1].passed, "POST only: GET has no such row");
    assert!(v[1].line.contains("no such row"), "{}", v[1].line);
    assert_eq!(v[2].line, "FAIL  /c: p95<1s  (no requests to measure)");
    assert!(v[3].passed, "{}", v[3].line);
}

#[test]
fn several_methods_of_one_name_are_judged_as_one() {
    let mut r = report();
    // A POST /a beside GET /a: 5 requests at 2 ms, 2 of them failed.
    let mut post = r.stats.entries[0].clone();
    post.method = Some(Method::Post);
    post.num_requests = 5;
    post.num_failures = 2;
    post.avg_ms = 2.0;
    post.max_ms = 2.0;
    r.stats.entries.push(post);
    r.histograms.insert(
        1,
        EntryHistogram {
            method: Some(Method::Post),
            name: "/a".into(),
            histogram: histogram(&[2_000; 5]),
        },
    );
    let ts: Vec<Threshold> = [
        "/a: requests<=15",
        "/a: fail_ratio<=20%",
        "/a: p50<1ms",
        "POST /a: p50<1ms",
    ]
    .iter()
    .map(|e| parse(e).unwrap())
    .collect();
    let v = evaluate(&ts, &r);
    assert_eq!(v[0].measured, Some(15.0));
    assert!(
        v[0].line.ends_with("(requests = 15 over GET, POST /a)"),
        "{}",
        v[0].line
    );
    assert_eq!(v[1].measured, Some(0.2));
    assert!(v[1].passed);
    // 15 values: 0.1..1.0 ms and five of 2 ms; the 8th is 0.8 ms.
    assert_eq!(v[2].measured, Some(0.8));
    assert_eq!(v[3].measured, Some(2.0));
    assert!(!v[3].passed);
}

#[test]
fn only_growing_counters_abort_early() {
    let stats = sample_view();
    let check = |e: &str| breached(&[parse(e).unwrap()], &stats);
    assert_eq!(
        check("failures<1").as_deref(),
        Some("threshold 'failures<1' can no longer pass (failures = 1)")
    );
    assert!(check("requests<=14").is_some());
    assert!(check("max<1ms").is_some());
    assert!(check("/a: max<1ms").is_some());
    assert!(check("p100<1ms").is_some());
    assert_eq!(check("failures<2"), None);
    // These can still recover, or a later row may appear: no abort.
    for e in [
        "fail_ratio<1%",
        "p95<1us",
        "avg<1us",
        "requests>100",
        "rps>1000",
        "/nope: failures<1",
    ] {
        assert_eq!(check(e), None, "{e}");
    }
}
