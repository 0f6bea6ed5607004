//! The open model's wire parts: round trips, hostile values refused, the
//! worker's accumulator, and the master's merge.

use std::time::SystemTime;

use super::*;
use crate::cluster::protocol::{decode, encode, MasterMessage, WorkerMessage};
use crate::cluster::report::WorkerReport;
use crate::stats::OpenModelStats;

/// A worker's open delta: "/a" had a 1 ms and a 501 ms corrected request,
/// 3 dropped iterations.
fn delta() -> OpenDelta {
    crate::stats::sample_delta("/a", 6)
}

fn report_with(open: Option<OpenReport>) -> WorkerReport {
    let mut builder = ReportBuilder::new();
    let mut r = builder.take_report(SystemTime::now(), vec![], 1);
    r.open_model = open;
    r
}

fn through_the_wire(r: &WorkerReport) -> Result<WorkerReport, ProtocolError> {
    let bytes = encode(&WorkerMessage::Stats(Box::new(r.clone())).to_message("w1"));
    match WorkerMessage::parse(&decode(&bytes).unwrap())? {
        WorkerMessage::Stats(r) => Ok(*r),
        other => panic!("{other:?}"),
    }
}

#[test]
fn builder_reports_then_master_merges_exactly() {
    let mut builder = OpenReportBuilder::default();
    assert!(builder.take(SystemTime::now()).is_none(), "nothing: no key");
    builder.add(&delta());
    builder.add(&delta());
    let part = builder.take(SystemTime::now()).unwrap();
    assert!(builder.take(SystemTime::now()).is_none(), "taken");
    assert_eq!(part.iterations.intended, 12);
    assert_eq!(part.dropped_by_name, vec![("GET".into(), "/a".into(), 6)]);
    let got = through_the_wire(&report_with(Some(part.clone()))).unwrap();
    assert_eq!(got.open_model.as_ref(), Some(&part));
    got.check().unwrap();
    let mut stats = OpenModelStats::new(10.0, 2);
    let mut shared_delta = got.open_model.unwrap().to_delta(SystemTime::now());
    stats.merge(&mut shared_delta);
    let view = stats.report(SystemTime::now());
    assert_eq!(view.iterations.dropped, 6);
    assert_eq!(view.dropped_of(Method::Get, "/a"), 6);
    assert_eq!(view.corrected.aggregated.num_requests, 4);
    // Exact HDR buckets crossed the wire: 501 ms stays 501 ms (±0.1 %).
    assert!((500.0..=502.0).contains(&view.corrected.aggregated.max_ms));
}

#[test]
fn a_closed_run_report_carries_no_open_key() {
    let r = report_with(None);
    let bytes = encode(&WorkerMessage::Stats(Box::new(r.clone())).to_message("w1"));
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(OPEN_MODEL_KEY));
    assert_eq!(through_the_wire(&r).unwrap().open_model, None);
}

#[test]
fn lies_are_refused_never_a_panic() {
    let mut builder = OpenReportBuilder::default();
    builder.add(&delta());
    let honest = builder.take(SystemTime::now()).unwrap();
    let lie = |f: &dyn Fn(&mut OpenReport)| {
        let mut p = honest.clone();
        f(&mut p);
        through_the_wire(&report_with(Some(p))).and_then(|r| {
            r.check()
                .map_err(|problem| ProtocolError::Field {
                    kind: "check".into(),
                    problem,
                })
                .map(|()| r)
        })
    };
    assert!(lie(&|_| {}).is_ok());
    assert!(lie(&|p| p.iterations.dropped = 1 << 41).is_err());
    assert!(lie(&|p| p.iterations.late = 5).is_err(), "late > started");
    assert!(lie(&|p| p.dropped_by_name[0].2 = 4).is_err(), "row > total");
    assert!(lie(&|p| p.stats[0].num_failures = 99).is_err());
    assert!(lie(&|p| p.stats[0].max_response_time = 1e12).is_err());
    // Mistyped values: a decode error naming the field.
    let mut data = report_with(Some(honest.clone())).to_value();
    if let Value::Map(pairs) = &mut data {
        for (k, v) in pairs.iter_mut() {
            if k.as_str() == Some(OPEN_MODEL_KEY) {
                *v = map_value(vec![("intended", Value::from("many"))]);
            }
        }
    }
    let err = WorkerReport::from_value(&data).unwrap_err().to_string();
    assert!(err.contains("intended"), "{err}");
    // A row that is not [method, name, count].
    let mut p = honest.to_value();
    if let Value::Map(pairs) = &mut p {
        for (k, v) in pairs.iter_mut() {
            if k.as_str() == Some("dropped_by_name") {
                *v = Value::Array(vec![Value::Array(vec![Value::from(1)])]);
            }
        }
    }
    assert!(OpenReport::from_value("stats", &p).is_err());
}

#[test]
fn spawn_shares_round_trip_and_bad_rates_are_refused() {
    let spawn = MasterMessage::Spawn {
        timestamp: 1.0,
        user_classes_count: vec![],
        host: None,
        stop_timeout: None,
        open_model: Some(OpenModel {
            rate: 100.5,
            max_users: 3,
        }),
    };
    let msg = decode(&encode(&spawn.to_message("w"))).unwrap();
    assert_eq!(MasterMessage::parse(&msg).unwrap(), spawn);
    for (rate, users) in [
        (Value::F64(0.0), Value::from(1)),
        (Value::F64(f64::NAN), Value::from(1)),
        (Value::F64(1e300), Value::from(1)),
        (Value::from("fast"), Value::from(1)),
        (Value::F64(5.0), Value::from(0)),
        (Value::F64(5.0), Value::from(-1)),
    ] {
        let v = map_value(vec![("rate", rate), ("max_users", users)]);
        assert!(parse_open_model("spawn", &v).is_err(), "{v:?}");
    }
}
