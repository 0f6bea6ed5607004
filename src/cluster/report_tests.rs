//! Tests of the `stats` payload (a child module of `report`, in its own
//! file to keep `report.rs` readable). The Python fixtures are bytes that
//! Locust 2.47.0's own stats code produced, with `time.time` pinned:
//!
//! ```python
//! import locust.stats as S
//! from locust.rpc.protocol import Message
//! clock = [1700000000.25]; S.time.time = lambda: clock[0]
//! stats = S.RequestStats()
//! stats.log_request("GET", "/items", 12.3456, 512)
//! stats.log_request("GET", "/items", 147.0, 1024)
//! clock[0] = 1700000001.75
//! stats.log_request("GET", "/items", 0.4, 0)
//! stats.log_request("POST", "/login", None, 0)
//! stats.log_request("POST", "/login", 3432.9, 20)
//! stats.log_error("POST", "/login", "HTTPError('500 Server Error')")
//! stats.log_request("custom", "my thing", 58760, 0)
//! data = {}   # what WorkerRunner._send_stats fires report_to_master with
//! data["stats"] = stats.serialize_stats()
//! data["stats_total"] = stats.total.get_stripped_report()
//! data["errors"] = stats.serialize_errors()
//! data["user_classes_count"] = {"WebsiteUser": 3, "Admin": 0}
//! data["user_count"] = 3
//! data["custom_listener_key"] = [1, 2]
//! Message("stats", data, "host_9c2f").serialize().hex()   # PY_STATS
//! # then, all entries reset: PY_IDLE_STATS
//! Message("stats", {"stats": stats.serialize_stats(),
//!     "stats_total": stats.total.get_stripped_report(), "errors": {},
//!     "user_classes_count": {"WebsiteUser": 0}, "user_count": 0},
//!     "host_9c2f").serialize().hex()
//! ```

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::cluster::protocol::{decode, encode, WorkerMessage};
use crate::stats::{ShardStats, StatsDelta};

pub(super) const PY_STATS: &str = "93a5737461747386a57374617473938ea46e616d65a62f6974656d73a66d6574686f64a3474554b66c6173745f726571756573745f74696d657374616d70cb41d954fc40700000aa73746172745f74696d65cb41d954fc40100000ac6e756d5f726571756573747303b16e756d5f6e6f6e655f726571756573747300ac6e756d5f6661696c7572657300b3746f74616c5f726573706f6e73655f74696d65cb4063f7dbf487fcb9b16d61785f726573706f6e73655f74696d65cb4062600000000000b16d696e5f726573706f6e73655f74696d65cb3fd999999999999ab4746f74616c5f636f6e74656e745f6c656e677468cd0600ae726573706f6e73655f74696d6573830c01cc96010001b06e756d5f726571735f7065725f73656382ce6553f10002ce6553f10101b06e756d5f6661696c5f7065725f736563808ea46e616d65a62f6c6f67696ea66d6574686f64a4504f5354b66c6173745f726571756573745f74696d657374616d70cb41d954fc40700000aa73746172745f74696d65cb41d954fc40700000ac6e756d5f726571756573747302b16e756d5f6e6f6e655f726571756573747301ac6e756d5f6661696c7572657301b3746f74616c5f726573706f6e73655f74696d65cb40aad1cccccccccdb16d61785f726573706f6e73655f74696d65cb40aad1cccccccccdb16d696e5f726573706f6e73655f74696d65cb40aad1cccccccccdb4746f74616c5f636f6e74656e745f6c656e67746814ae726573706f6e73655f74696d657381cd0d4801b06e756d5f726571735f7065725f73656381ce6553f10102b06e756d5f6661696c5f7065725f73656381ce6553f101018ea46e616d65a86d79207468696e67a66d6574686f64a6637573746f6db66c6173745f726571756573745f74696d657374616d70cb41d954fc40700000aa73746172745f74696d65cb41d954fc40700000ac6e756d5f726571756573747301b16e756d5f6e6f6e655f726571756573747300ac6e756d5f6661696c7572657300b3746f74616c5f726573706f6e73655f74696d65cde588b16d61785f726573706f6e73655f74696d65cde588b16d696e5f726573706f6e73655f74696d65cde588b4746f74616c5f636f6e74656e745f6c656e67746800ae726573706f6e73655f74696d657381cde67801b06e756d5f726571735f7065725f73656381ce6553f10101b06e756d5f6661696c5f7065725f73656380ab73746174735f746f74616c8ea46e616d65aa41676772656761746564a66d6574686f64a0b66c6173745f726571756573745f74696d657374616d70cb41d954fc40700000aa73746172745f74696d65cb41d954fc40100000ac6e756d5f726571756573747306b16e756d5f6e6f6e655f726571756573747301ac6e756d5f6661696c7572657301b3746f74616c5f726573706f6e73655f74696d65cb40ee7214a8c154cab16d61785f726573706f6e73655f74696d65cde588b16d696e5f726573706f6e73655f74696d65cb3fd999999999999ab4746f74616c5f636f6e74656e745f6c656e677468cd0614ae726573706f6e73655f74696d6573850c01cc96010001cd0d4801cde67801b06e756d5f726571735f7065725f73656382ce6553f10002ce6553f10104b06e756d5f6661696c5f7065725f73656381ce6553f10101a66572726f727381d9403336383266353665666435396633653635386235333361336566323631666666633335633333313361326338373731623166613663366635626565393433346486a46e616d65a62f6c6f67696ea66d6574686f64a4504f5354a56572726f72bd485454504572726f72282735303020536572766572204572726f722729ab6f6363757272656e63657301aa66697273745f7365656ecb41d954fc40700000a96c6173745f7365656ecb41d954fc40700000b2757365725f636c61737365735f636f756e7482ab576562736974655573657203a541646d696e00aa757365725f636f756e7403b3637573746f6d5f6c697374656e65725f6b6579920102a9686f73745f39633266";
const PY_IDLE_STATS: &str = "93a5737461747385a5737461747390ab73746174735f746f74616c8ea46e616d65aa41676772656761746564a66d6574686f64a0b66c6173745f726571756573745f74696d657374616d70c0aa73746172745f74696d65cb41d954fc40700000ac6e756d5f726571756573747300b16e756d5f6e6f6e655f726571756573747300ac6e756d5f6661696c7572657300b3746f74616c5f726573706f6e73655f74696d6500b16d61785f726573706f6e73655f74696d6500b16d696e5f726573706f6e73655f74696d65c0b4746f74616c5f636f6e74656e745f6c656e67746800ae726573706f6e73655f74696d657380b06e756d5f726571735f7065725f73656380b06e756d5f6661696c5f7065725f73656380a66572726f727380b2757365725f636c61737365735f636f756e7481ab576562736974655573657200aa757365725f636f756e7400a9686f73745f39633266";

pub(super) const T0: u64 = 1_700_000_000;

pub(super) fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_millis(ms)
}

pub(super) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub(super) fn parse_report(bytes: &[u8]) -> WorkerReport {
    match WorkerMessage::parse(&decode(bytes).unwrap()).unwrap() {
        WorkerMessage::Stats(r) => *r,
        other => panic!("not stats: {other:?}"),
    }
}

pub(super) fn through_bytes(report: WorkerReport) -> WorkerReport {
    parse_report(&encode(
        &WorkerMessage::Stats(Box::new(report)).to_message("w"),
    ))
}

#[test]
fn locust_rounding_table() {
    // Checked against Python: bucket_response_time(x) of Locust 2.47.
    let table: [(f64, u64); 30] = [
        (0.0, 0),
        (0.4999999, 0),
        (0.5, 0),
        (1.5, 2),
        (2.5, 2),
        (12.3456, 12),
        (99.4, 99),
        (99.5, 100),
        (100.0, 100),
        (101.4, 100),
        (104.99999999999999, 100),
        (105.0, 100),
        (115.0, 120),
        (147.0, 150),
        (150.00000000000003, 150),
        (985.0, 980),
        (995.0, 1000),
        (999.6, 1000),
        (1050.0, 1000),
        (1150.0, 1200),
        (1234.0, 1200),
        (1250.0, 1200),
        (3432.9, 3400),
        (9950.0, 10000),
        (10500.0, 10000),
        (11500.0, 12000),
        (12345.0, 12000),
        (58760.0, 59000),
        (125500.0, 126000),
        (3_600_000.0, 3_600_000),
    ];
    for (ms, want) in table {
        assert_eq!(locust_bucket_ms(ms), want, "{ms}");
    }
    assert_eq!(locust_bucket_ms(-3.0), 0);
    assert_eq!(locust_bucket_ms(f64::NAN), 0);
    assert_eq!(locust_bucket_ms(f64::INFINITY), u64::MAX);
    let _ = locust_bucket_ms(1e300);
    let _ = locust_bucket_ms(f64::MAX);
}

#[test]
fn python_stats_report_parses() {
    let r = parse_report(&hex(PY_STATS));
    assert_eq!(r.stats.len(), 3);
    assert_eq!(
        r.stats[0],
        ReportEntry {
            name: "/items".into(),
            method: "GET".into(),
            last_request_timestamp: Some(1_700_000_001.75),
            start_time: 1_700_000_000.25,
            num_requests: 3,
            num_none_requests: 0,
            num_failures: 0,
            total_response_time: 12.3456 + 147.0 + 0.4,
            max_response_time: 147.0,
            min_response_time: Some(0.4),
            total_content_length: 1536,
            response_times: vec![(12, 1), (150, 1), (0, 1)],
            num_reqs_per_sec: vec![(1_700_000_000, 2), (1_700_000_001, 1)],
            num_fail_per_sec: vec![],
            hdr: None,
        }
    );
    let login = &r.stats[1];
    assert_eq!(
        (login.name.as_str(), login.method.as_str()),
        ("/login", "POST")
    );
    assert_eq!(
        (
            login.num_requests,
            login.num_none_requests,
            login.num_failures
        ),
        (2, 1, 1)
    );
    assert_eq!(login.response_times, vec![(3400, 1)]);
    assert_eq!(login.num_fail_per_sec, vec![(1_700_000_001, 1)]);
    // Python ints where floats are usual.
    assert_eq!(r.stats[2].max_response_time, 58760.0);
    assert_eq!(r.stats[2].min_response_time, Some(58760.0));
    assert_eq!(r.stats_total.name, "Aggregated");
    assert_eq!(r.stats_total.method, "");
    assert_eq!(r.stats_total.num_requests, 6);
    assert_eq!(
        r.stats_total.response_times,
        vec![(12, 1), (150, 1), (0, 1), (3400, 1), (59000, 1)]
    );
    assert_eq!(
        r.errors,
        vec![ReportError {
            method: "POST".into(),
            name: "/login".into(),
            error: "HTTPError('500 Server Error')".into(),
            occurrences: 1,
            first_seen: Some(1_700_000_001.75),
            last_seen: Some(1_700_000_001.75),
        }]
    );
    assert_eq!(
        r.user_classes_count,
        vec![("WebsiteUser".into(), 3), ("Admin".into(), 0)]
    );
    assert_eq!(r.user_count, 3);

    let (delta, unknown) = r.to_delta(at_ms(3_000));
    assert!(unknown.is_empty(), "{unknown:?}");
    assert_eq!(delta.taken_at, at_ms(3_000));
    assert!(delta.exceptions.is_empty());
    // The third is a Python user's own request type ("custom").
    assert_eq!(delta.entries.len(), 3);
    assert_eq!(delta.entries[2].method.as_str(), "custom");
    let items = &delta.entries[0];
    assert_eq!((items.method, &*items.name), (Method::Get, "/items"));
    assert_eq!(
        items.histogram.buckets(),
        &[(0, 1), (12_000, 1), (150_000, 1)]
    );
    assert_eq!(
        items.counts,
        EntryCounts {
            requests: 3,
            failures: 0,
            total_us: 159_746,
            min_us: 400,
            max_us: 147_000,
            bytes: 1536,
        }
    );
    let login = &delta.entries[1];
    assert_eq!(login.method, Method::Post);
    assert_eq!(login.counts.requests, 2, "num_none_requests stay requests");
    assert_eq!(login.histogram.total_count(), 1, "only timed ones");
    assert_eq!(delta.failures.len(), 1);
    let f = &delta.failures[0];
    assert_eq!((f.method, &*f.name, f.count), (Method::Post, "/login", 1));
    assert_eq!(
        f.failure,
        Failure::Message("HTTPError('500 Server Error')".into())
    );

    let idle = parse_report(&hex(PY_IDLE_STATS));
    assert!(idle.stats.is_empty() && idle.errors.is_empty());
    assert_eq!(idle.stats_total.last_request_timestamp, None);
    assert_eq!(idle.stats_total.min_response_time, None);
    assert_eq!(idle.stats_total.total_response_time, 0.0);
    let (delta, unknown) = idle.to_delta(at_ms(0));
    assert!(delta.is_empty() && unknown.is_empty());
}

/// Locust's keys in `serialize()` order, as our entries carry them.
#[test]
fn entries_have_locusts_keys_in_order_and_int_keys() {
    let mut b = ReportBuilder::new_at(at_ms(0));
    b.add(&delta_of(&[(Method::Get, "/a", 1_500, None)], at_ms(900)));
    let report = b.take_report(at_ms(1_000), vec![("U".into(), 1)], 1);
    let Value::Map(top) = report.to_value() else {
        panic!()
    };
    let keys: Vec<_> = top.iter().map(|(k, _)| k.as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "stats",
            "stats_total",
            "errors",
            "user_classes_count",
            "user_count"
        ]
    );
    let entry = report.stats[0].to_value();
    let pairs = entry.as_map().unwrap();
    let keys: Vec<_> = pairs.iter().map(|(k, _)| k.as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "name",
            "method",
            "last_request_timestamp",
            "start_time",
            "num_requests",
            "num_none_requests",
            "num_failures",
            "total_response_time",
            "max_response_time",
            "min_response_time",
            "total_content_length",
            "response_times",
            "num_reqs_per_sec",
            "num_fail_per_sec",
            "hdr"
        ]
    );
    let rt = pairs[11].1.as_map().unwrap();
    assert_eq!(rt, &vec![(Value::from(2u64), Value::from(1u64))]);
    assert!(matches!(pairs[14].1, Value::Binary(_)));
    assert!(matches!(pairs[7].1, Value::F64(_)));
    let total = report.stats_total.to_value();
    assert_eq!(total.as_map().unwrap().len(), 14, "no hdr on the total");
}

#[test]
fn report_round_trips_and_float_keys_are_rounded() {
    let mut b = ReportBuilder::new_at(at_ms(0));
    b.add(&delta_of(
        &[
            (Method::Get, "/a", 1_500, None),
            (Method::Get, "/a", 250_000, Some(Failure::Status(503))),
            (Method::Delete, "/b", 7, None),
        ],
        at_ms(1_700),
    ));
    let report = b.take_report(at_ms(2_000), vec![("U".into(), 2)], 2);
    assert_eq!(
        WorkerReport::from_value(&report.to_value()),
        Ok(report.clone())
    );
    assert_eq!(through_bytes(report.clone()), report);

    // A Python worker whose bucket function returns floats.
    let mut entry = report.stats[0].to_value();
    let Value::Map(pairs) = &mut entry else {
        panic!()
    };
    for (k, v) in pairs.iter_mut() {
        match k.as_str() {
            Some("response_times") => {
                *v = Value::Map(vec![
                    (Value::F64(12.4), Value::from(1)),
                    (Value::F64(12.0), Value::F64(2.0)),
                    (Value::from(3), Value::from(1)),
                ])
            }
            Some("num_reqs_per_sec") => {
                *v = Value::Map(vec![(Value::F64(1_700_000_001.0), Value::from(4))])
            }
            Some("hdr") => *v = Value::Nil,
            _ => {}
        }
    }
    let parsed = ReportEntry::from_value("stats[0].".into(), &entry).unwrap();
    assert_eq!(parsed.response_times, vec![(12, 1), (12, 2), (3, 1)]);
    assert_eq!(parsed.num_reqs_per_sec, vec![(1_700_000_001, 4)]);
    assert_eq!(parsed.hdr, None);
    let one = WorkerReport {
        stats: vec![parsed],
        ..report
    };
    let (delta, _) = one.to_delta(at_ms(0));
    assert_eq!(
        delta.entries[0].histogram.buckets(),
        &[(3_000, 1), (12_000, 3)],
        "sorted, duplicates merged"
    );
}

fn field_problem(r: Result<WorkerReport, ProtocolError>) -> String {
    match r {
        Err(ProtocolError::Field { kind, problem }) => {
            assert_eq!(kind, "stats");
            problem
        }
        other => panic!("expected a field error, got {other:?}"),
    }
}

/// The Python report's data with `edit` applied to its first entry.
fn edited_entry(
    edit: impl FnOnce(&mut Vec<(Value, Value)>),
) -> Result<WorkerReport, ProtocolError> {
    let mut data = decode(&hex(PY_STATS)).unwrap().data;
    let Value::Map(top) = &mut data else { panic!() };
    let Value::Array(stats) = &mut top[0].1 else {
        panic!()
    };
    let Value::Map(entry) = &mut stats[0] else {
        panic!()
    };
    edit(entry);
    WorkerReport::from_value(&data)
}

fn set(entry: &mut [(Value, Value)], key: &str, v: Value) {
    let slot = entry
        .iter_mut()
        .find(|(k, _)| k.as_str() == Some(key))
        .unwrap();
    slot.1 = v;
}

#[test]
fn bad_reports_are_field_errors() {
    let required = [
        "name",
        "method",
        "start_time",
        "num_requests",
        "num_none_requests",
        "num_failures",
        "total_response_time",
        "max_response_time",
        "total_content_length",
        "response_times",
        "num_reqs_per_sec",
        "num_fail_per_sec",
    ];
    for key in required {
        let problem = field_problem(edited_entry(|e| e.retain(|(k, _)| k.as_str() != Some(key))));
        assert!(problem.contains(&format!("`stats[0].{key}`")), "{problem}");
        assert!(problem.contains("missing"), "{problem}");
    }
    // Optional: absent is None.
    let r = edited_entry(|e| {
        e.retain(|(k, _)| {
            !matches!(
                k.as_str(),
                Some("last_request_timestamp" | "min_response_time")
            )
        })
    })
    .unwrap();
    assert_eq!(r.stats[0].last_request_timestamp, None);
    assert_eq!(r.stats[0].min_response_time, None);

    let bad: [(&str, Value); 13] = [
        ("num_requests", Value::from(-1)),
        ("num_requests", Value::from("3")),
        ("num_failures", Value::F64(f64::NAN)),
        ("total_response_time", Value::F64(f64::NAN)),
        ("total_response_time", Value::F64(-0.5)),
        ("total_response_time", Value::F64(1e300)),
        ("max_response_time", Value::F64(f64::INFINITY)),
        ("min_response_time", Value::F64(-1.0)),
        ("start_time", Value::F64(f64::NEG_INFINITY)),
        ("response_times", Value::Array(vec![])),
        (
            "response_times",
            Value::Map(vec![(Value::from(-1), Value::from(1))]),
        ),
        (
            "num_reqs_per_sec",
            Value::Map(vec![(Value::from("x"), Value::from(1))]),
        ),
        (
            "num_fail_per_sec",
            Value::Map(vec![(Value::from(1), Value::from(-1))]),
        ),
    ];
    for (key, v) in bad {
        let shown = format!("{key} = {v}");
        let problem = field_problem(edited_entry(|e| set(e, key, v)));
        assert!(
            problem.contains(&format!("`stats[0].{key}`")),
            "{shown}: {problem}"
        );
    }
    let problem = field_problem(edited_entry(|e| {
        e.push((Value::from("hdr"), Value::Binary(vec![2, 5])))
    }));
    assert!(problem.contains("`stats[0].hdr`"), "{problem}");
    let problem = field_problem(edited_entry(|e| {
        e.push((Value::from("hdr"), Value::from("x")))
    }));
    assert!(problem.contains("`stats[0].hdr`"), "{problem}");

    type Pairs = Vec<(Value, Value)>;
    let top = |edit: &dyn Fn(&mut Pairs)| {
        let mut data = decode(&hex(PY_STATS)).unwrap().data;
        let Value::Map(m) = &mut data else { panic!() };
        edit(m);
        WorkerReport::from_value(&data)
    };
    for key in [
        "stats",
        "stats_total",
        "errors",
        "user_classes_count",
        "user_count",
    ] {
        let problem = field_problem(top(&|m| m.retain(|(k, _)| k.as_str() != Some(key))));
        assert!(problem.contains(&format!("`{key}`")), "{problem}");
    }
    let problem = field_problem(top(&|m| set(m, "stats", Value::from(1))));
    assert!(problem.contains("`stats`"), "{problem}");
    let problem = field_problem(top(&|m| set(m, "stats_total", Value::from(1))));
    assert!(problem.contains("stats_total"), "{problem}");
    let problem = field_problem(top(&|m| {
        set(
            m,
            "errors",
            Value::Map(vec![(Value::from("k"), Value::Map(vec![]))]),
        )
    }));
    assert!(problem.contains("`errors[0].method`"), "{problem}");
    let problem = field_problem(top(&|m| set(m, "user_count", Value::from(-3))));
    assert!(problem.contains("`user_count`"), "{problem}");
}

#[test]
fn error_keys_are_stable_fnv1a_128() {
    // Computed independently (Python) over b"GET./x.boom".
    assert_eq!(
        error_key("GET", "/x", "boom"),
        "2ed944d4c880b9a91053c560ef31088d"
    );
    assert_ne!(
        error_key("GET", "/x", "boom"),
        error_key("GET", "/x.", "boom")
    );
    assert_eq!(error_key("", "", "").len(), 32);
}

/// One shard delta: per `(method, name, µs, failure)` one request.
pub(super) fn delta_of(
    requests: &[(Method, &str, u64, Option<Failure>)],
    taken_at: SystemTime,
) -> StatsDelta {
    let mut shard = ShardStats::new();
    for (method, name, us, failure) in requests {
        let id = shard.entry(*method, name);
        match failure {
            Some(f) => shard.record_failure(id, *us, 10, f.clone()),
            None => shard.record(id, *us, 10),
        }
    }
    let mut d = shard.take_delta();
    d.taken_at = taken_at;
    d
}

/// Locust's report with two task counts, as a locusta worker sends it.
fn report_with_task_runs() -> WorkerReport {
    let mut r = parse_report(&hex(PY_STATS));
    r.task_runs = vec![
        TaskRuns {
            class: "WebsiteUser".into(),
            task: "browse".into(),
            runs: 7,
        },
        TaskRuns {
            class: "WebsiteUser".into(),
            task: "buy é".into(),
            runs: 1 << 40,
        },
    ];
    r
}

/// [`report_with_task_runs`] with its `locusta_task_runs` value replaced.
fn with_task_runs(v: Value) -> Result<WorkerReport, ProtocolError> {
    let mut data = report_with_task_runs().to_value();
    let Value::Map(pairs) = &mut data else {
        panic!("a report is a map")
    };
    for (k, val) in pairs.iter_mut() {
        if k.as_str() == Some("locusta_task_runs") {
            *val = v.clone();
        }
    }
    WorkerReport::from_value(&data)
}

#[test]
fn task_runs_round_trip_and_bad_ones_are_refused() {
    let sent = report_with_task_runs();
    let got = through_bytes(sent.clone());
    assert_eq!(got.task_runs, sent.task_runs);
    assert!(!got.task_runs.is_empty());
    // Locust's own payload has none: an empty list, not an error.
    assert!(parse_report(&hex(PY_STATS)).task_runs.is_empty());

    let row = |c: Value, t: Value, n: Value| Value::Array(vec![c, t, n]);
    let bad = [
        Value::from("x"),
        Value::Array(vec![Value::from(1)]),
        Value::Array(vec![row(
            Value::from("U"),
            Value::from("t"),
            Value::from(-1),
        )]),
        Value::Array(vec![row(Value::from(1), Value::from("t"), Value::from(1))]),
        Value::Array(vec![Value::Array(vec![Value::from("U"), Value::from("t")])]),
        Value::Array(vec![
            row(Value::from("U"), Value::from("t"), Value::from(1));
            crate::cluster::protocol::MAX_TASK_ROWS + 1
        ]),
    ];
    for v in bad {
        let e = with_task_runs(v.clone()).expect_err("a bad locusta_task_runs is refused");
        assert!(
            e.to_string().contains("locusta_task_runs"),
            "{e} names the key"
        );
    }
}
