//! The fast `stats` decoder against the general path: same result for
//! good, odd and hostile messages, and the fast path really taken for the
//! reports locusta and Locust workers send.

use std::time::SystemTime;

use super::*;
use crate::cluster::report::ReportBuilder;
use crate::http::Method;
use crate::stats::ShardStats;

/// A locusta worker's report: `names` names with HDR buckets, an error.
fn locusta_report(names: usize) -> WorkerReport {
    let mut shard = ShardStats::new();
    let mut x = 7u64;
    for e in 0..names {
        let id = shard.entry(Method::Get, &format!("/api/{e}"));
        for _ in 0..20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shard.record(id, 500 + x % 200_000, 512);
        }
        shard.record_failure(id, 1_000, 0, crate::stats::Failure::Message("boom".into()));
    }
    let mut builder = ReportBuilder::new();
    builder.add(&shard.take_delta());
    builder.take_report(SystemTime::now(), vec![("raw".into(), 3)], 3)
}

fn message(data: Value) -> Vec<u8> {
    message_of("stats", data)
}

fn message_of(kind: &str, data: Value) -> Vec<u8> {
    let mut out = Vec::new();
    let msg = Value::Array(vec![Value::from(kind), data, Value::from("worker_1")]);
    rmpv::encode::write_value(&mut out, &msg).unwrap();
    out
}

fn general(bytes: &[u8]) -> FromWorker {
    decode(bytes).map(|m| WorkerMessage::parse(&m))
}

/// Both paths agree; returns whether the fast one accepted.
fn agree(bytes: &[u8]) -> bool {
    assert_eq!(decode_from_worker(bytes), general(bytes));
    fast_stats(bytes).is_some()
}

fn map_of(v: &mut Value) -> &mut Vec<(Value, Value)> {
    match v {
        Value::Map(m) => m,
        _ => panic!("not a map"),
    }
}

fn first_entry(data: &mut Value) -> &mut Value {
    let stats = map_of(data)
        .iter_mut()
        .find(|(k, _)| k.as_str() == Some("stats"))
        .map(|(_, v)| v)
        .unwrap();
    match stats {
        Value::Array(a) => &mut a[0],
        _ => panic!("stats is not an array"),
    }
}

#[test]
fn a_locusta_report_takes_the_fast_path_and_reads_the_same() {
    let report = locusta_report(5);
    assert!(report.stats.iter().all(|e| e.hdr.is_some()));
    assert!(!report.errors.is_empty());
    let bytes = message(report.to_value());
    assert!(agree(&bytes));
    assert_eq!(fast_stats(&bytes), Some(report));
}

#[test]
fn a_locust_report_takes_the_fast_path() {
    // Locust's shape: no hdr, floats where ints are expected, nil
    // timestamps, keys in another order, an extra top-level key.
    let mut data = locusta_report(2).to_value();
    for entry in [first_entry(&mut data)] {
        let m = map_of(entry);
        m.retain(|(k, _)| k.as_str() != Some("hdr"));
        m.reverse();
        for (k, v) in m.iter_mut() {
            match k.as_str() {
                Some("num_requests") => *v = Value::F64(21.0),
                Some("last_request_timestamp") => *v = Value::Nil,
                Some("max_response_time") => *v = Value::from(200),
                _ => {}
            }
        }
    }
    map_of(&mut data).push((Value::from("extra"), Value::from("kept")));
    let bytes = message(data);
    assert!(agree(&bytes));
    let report = fast_stats(&bytes).unwrap();
    assert_eq!(report.stats[0].num_requests, 21);
    assert_eq!(report.stats[0].hdr, None);
    assert_eq!(report.custom, vec![("extra".into(), Value::from("kept"))]);
}

#[test]
fn custom_keys_are_kept_in_order_and_sent_again() {
    let mut report = locusta_report(1);
    report.custom = vec![
        ("b".into(), Value::Array(vec![Value::from(1), Value::Nil])),
        (
            "a".into(),
            Value::Map(vec![(Value::from(1), Value::from("x"))]),
        ),
        ("b".into(), Value::Nil),
    ];
    let bytes = message(report.to_value());
    assert!(agree(&bytes));
    assert_eq!(fast_stats(&bytes), Some(report));
}

#[test]
fn every_field_broken_every_way_reads_as_the_general_path_says() {
    let good = locusta_report(1).to_value();
    let keys: Vec<String> = match first_entry(&mut good.clone()) {
        Value::Map(m) => m.iter().map(|(k, _)| k.as_str().unwrap().into()).collect(),
        _ => unreachable!(),
    };
    let bad_values = [
        Value::Nil,
        Value::from(-1),
        Value::F64(f64::NAN),
        Value::F64(1e300),
        Value::from("7"),
        Value::Boolean(true),
        Value::Binary(vec![1, 2]),
        Value::Array(vec![]),
        Value::Map(vec![(Value::from("1"), Value::from(1))]),
        Value::Map(vec![(Value::from(1), Value::F64(-2.0))]),
        Value::F32(3.0),
    ];
    let mut fast_taken = 0;
    for key in &keys {
        for bad in &bad_values {
            let mut data = good.clone();
            for (k, v) in map_of(first_entry(&mut data)) {
                if k.as_str() == Some(key) {
                    *v = bad.clone();
                }
            }
            fast_taken += usize::from(agree(&message(data)));
        }
        // Missing, repeated.
        let mut data = good.clone();
        map_of(first_entry(&mut data)).retain(|(k, _)| k.as_str() != Some(key));
        agree(&message(data));
        let mut data = good.clone();
        let m = map_of(first_entry(&mut data));
        let pair = m
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .unwrap()
            .clone();
        m.push((pair.0, Value::Nil));
        agree(&message(data));
    }
    // Nil in an optional field and float counts stay on the fast path.
    assert!(fast_taken > 0);
    for top in [
        "stats",
        "stats_total",
        "errors",
        "user_count",
        "user_classes_count",
    ] {
        for bad in &bad_values {
            let mut data = good.clone();
            for (k, v) in map_of(&mut data) {
                if k.as_str() == Some(top) {
                    *v = bad.clone();
                }
            }
            agree(&message(data));
        }
        let mut data = good.clone();
        let m = map_of(&mut data);
        let pair = m
            .iter()
            .find(|(k, _)| k.as_str() == Some(top))
            .unwrap()
            .clone();
        m.push(pair);
        agree(&message(data));
    }
}

#[test]
fn unknown_entry_keys_and_odd_top_level_keys_read_the_same() {
    let good = locusta_report(1).to_value();
    let mut data = good.clone();
    map_of(first_entry(&mut data)).push((Value::from("extra"), Value::from(1)));
    agree(&message(data));
    let mut data = good.clone();
    map_of(&mut data).push((Value::from(5), Value::from(1)));
    agree(&message(data));
    let mut data = good;
    map_of(&mut data).insert(0, (Value::from("zzz"), Value::Nil));
    assert!(agree(&message(data)));
}

#[test]
fn every_truncation_and_trailing_bytes_read_the_same() {
    let bytes = message(locusta_report(1).to_value());
    for cut in 0..bytes.len() {
        assert!(!agree(&bytes[..cut]), "accepted {cut} bytes");
    }
    let mut longer = bytes.clone();
    longer.push(0xc0);
    assert!(!agree(&longer));
    // Not stats, bad node id, bad frame.
    agree(&message_of("heartbeat", locusta_report(1).to_value()));
    let mut bad_node = bytes.clone();
    *bad_node.last_mut().unwrap() = 0xff;
    agree(&bad_node);
    assert!(!agree(&[0x92, 0xa5, b's', b't', b'a', b't', b's', 0x80]));
}

#[test]
fn nesting_in_custom_values_stops_where_the_general_path_stops() {
    let mut accepted = Vec::new();
    for depth in 10..40 {
        let mut v = Value::Nil;
        for _ in 0..depth {
            v = Value::Array(vec![v]);
        }
        let mut data = locusta_report(1).to_value();
        map_of(&mut data).push((Value::from("deep"), v));
        accepted.push(agree(&message(data)));
    }
    assert!(accepted[0] && !accepted[accepted.len() - 1]);
}

#[test]
fn lying_lengths_and_nil_floods_are_refused_without_the_memory() {
    // A stats array that claims 2^32-1 entries of 4 bytes of input.
    let mut bytes = vec![0x93, 0xa5];
    bytes.extend_from_slice(b"stats");
    bytes.extend_from_slice(&[0x81, 0xa5]);
    bytes.extend_from_slice(b"stats");
    bytes.extend_from_slice(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x80]);
    assert!(!agree(&bytes));
    // A million nils where entries should be.
    let data = Value::Map(vec![(
        Value::from("stats"),
        Value::Array(vec![Value::Nil; 1_000_000]),
    )]);
    assert!(!agree(&message(data)));
    // A response_times map claiming 2^32-1 pairs.
    let mut data = locusta_report(1).to_value();
    for (k, v) in map_of(first_entry(&mut data)) {
        if k.as_str() == Some("response_times") {
            *v = Value::from("MARK");
        }
    }
    let mut bytes = message(data);
    let at = bytes.windows(5).position(|w| w == b"\xa4MARK").unwrap();
    bytes.splice(at..at + 5, [0xdf, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert!(!agree(&bytes));
}
