//! Tests of message encoding and parsing (a child module of `protocol`, in
//! its own file to keep `protocol.rs` readable). The hex fixtures are bytes
//! Locust 2.47.0 itself produced (`locust.rpc.protocol.Message.serialize`,
//! msgpack 1.2.4); the script is in the comment of each.

use super::*;
use crate::cluster::report::{ReportEntry, ReportError};
use crate::engine::TaskRuns;
use crate::stats::SparseHistogram;

pub(crate) fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `Message("heartbeat", {"state": "running", "current_cpu_usage": 12.5,
/// "current_memory_usage": 52428800}, "host_9c2f").serialize()`
pub(super) const PY_HEARTBEAT: &str = "93a968656172746265617483a57374617465a772756e6e696e67b163757272656e745f6370755f7573616765cb4029000000000000b463757272656e745f6d656d6f72795f7573616765ce03200000a9686f73745f39633266";
/// `Message("client_ready", "2.47.0", "host_9c2f")`
pub(super) const PY_CLIENT_READY: &str =
    "93ac636c69656e745f7265616479a6322e34372e30a9686f73745f39633266";
/// `Message("spawning_complete", {"user_classes_count": {"WebsiteUser": 3},
/// "user_count": 3}, "host_9c2f")`
pub(super) const PY_SPAWNING_COMPLETE: &str = "93b1737061776e696e675f636f6d706c65746582b2757365725f636c61737365735f636f756e7481ab576562736974655573657203aa757365725f636f756e7403a9686f73745f39633266";
/// `Message("exception", {"msg": "ZeroDivisionError('division by zero')",
/// "traceback": '  File "locustfile.py", line 9, in t\n'}, "host_9c2f")`
pub(super) const PY_EXCEPTION: &str = "93a9657863657074696f6e82a36d7367d9255a65726f4469766973696f6e4572726f7228276469766973696f6e206279207a65726f2729a974726163656261636bd925202046696c6520226c6f6375737466696c652e7079222c206c696e6520392c20696e20740aa9686f73745f39633266";
/// `Message("spawn", {"timestamp": 1700000002.5, "user_classes_count":
/// {"WebsiteUser": 3, "Admin": 0}, "host": "http://example.com",
/// "stop_timeout": None, "parsed_options": {"num_users": 3, "tags": None}},
/// "host_9c2f")`
pub(super) const PY_SPAWN: &str = "93a5737061776e85a974696d657374616d70cb41d954fc40a00000b2757365725f636c61737365735f636f756e7482ab576562736974655573657203a541646d696e00a4686f7374b2687474703a2f2f6578616d706c652e636f6dac73746f705f74696d656f7574c0ae7061727365645f6f7074696f6e7382a96e756d5f757365727303a474616773c0a9686f73745f39633266";
/// `Message("ack", {"index": 2}, "host_9c2f")`
pub(super) const PY_ACK: &str = "93a361636b81a5696e64657802a9686f73745f39633266";

pub(super) fn through_bytes(msg: &Message) -> Message {
    decode(&encode(msg)).expect("our own bytes decode")
}

pub(super) fn sample_report() -> WorkerReport {
    let mut hdr = SparseHistogram::default();
    hdr.push(1_000, 2);
    hdr.push(150_000, 1);
    let entry = ReportEntry {
        name: "/items".into(),
        method: "GET".into(),
        last_request_timestamp: Some(1_700_000_001.75),
        start_time: 1_700_000_000.25,
        num_requests: 3,
        num_none_requests: 0,
        num_failures: 1,
        total_response_time: 152.0,
        max_response_time: 150.0,
        min_response_time: Some(1.0),
        total_content_length: 1536,
        response_times: vec![(1, 2), (150, 1)],
        num_reqs_per_sec: vec![(1_700_000_000, 2), (1_700_000_001, 1)],
        num_fail_per_sec: vec![(1_700_000_001, 1)],
        hdr: Some(hdr),
    };
    WorkerReport {
        stats: vec![entry.clone()],
        stats_total: ReportEntry {
            name: "Aggregated".into(),
            method: String::new(),
            hdr: None,
            ..entry
        },
        errors: vec![ReportError {
            method: "GET".into(),
            name: "/items".into(),
            error: "HTTP 500 Internal Server Error".into(),
            occurrences: 1,
            first_seen: Some(1_700_000_001.75),
            last_seen: None,
        }],
        user_classes_count: vec![("WebsiteUser".into(), 3), ("Admin".into(), 0)],
        user_count: 3,
        task_runs: vec![TaskRuns {
            class: "WebsiteUser".into(),
            task: "browse".into(),
            runs: 12,
        }],
        open_model: None,
        custom: Vec::new(),
    }
}

pub(super) fn all_worker_messages() -> Vec<WorkerMessage> {
    vec![
        WorkerMessage::ClientReady(locusta_client_ready(2)),
        WorkerMessage::ClientReady(PeerVersion::Locust("2.47.0".into())),
        WorkerMessage::ClientReady(PeerVersion::Any),
        WorkerMessage::ClientReady(PeerVersion::Unusable("nil".into())),
        WorkerMessage::Heartbeat {
            state: "running".into(),
            cpu_percent: 12.5,
            memory_bytes: Some(52_428_800),
        },
        WorkerMessage::Heartbeat {
            state: "ready".into(),
            cpu_percent: 0.0,
            memory_bytes: None,
        },
        WorkerMessage::Spawning,
        WorkerMessage::SpawningComplete {
            user_classes_count: vec![("B".into(), 2), ("A".into(), 0)],
            user_count: 2,
        },
        WorkerMessage::Stats(Box::new(sample_report())),
        WorkerMessage::Exception {
            msg: "boom".into(),
            traceback: "line 1\nline 2".into(),
            count: 7,
        },
        WorkerMessage::ClientStopped,
        WorkerMessage::Quit,
        WorkerMessage::Logs(vec!["a".into(), "b".into()]),
        WorkerMessage::Other("my_custom".into()),
    ]
}

pub(super) fn all_master_messages() -> Vec<MasterMessage> {
    vec![
        MasterMessage::Ack {
            index: 4,
            locusta_protocol: None,
        },
        MasterMessage::Ack {
            index: 0,
            locusta_protocol: Some(LOCUSTA_PROTOCOL),
        },
        MasterMessage::Spawn {
            timestamp: 1_700_000_002.5,
            user_classes_count: vec![("Zed".into(), 3), ("Alpha".into(), 0)],
            host: Some("http://example.com".into()),
            stop_timeout: Some(1.5),
            open_model: Some(crate::engine::OpenModel {
                rate: 12.5,
                max_users: 4,
            }),
        },
        MasterMessage::Spawn {
            timestamp: 1.0,
            user_classes_count: vec![],
            host: None,
            stop_timeout: None,
            open_model: None,
        },
        MasterMessage::SpawningComplete { user_count: 10 },
        MasterMessage::Stop,
        MasterMessage::Quit,
        MasterMessage::Heartbeat,
        MasterMessage::Reconnect,
        MasterMessage::Refused {
            reason: "protocol 2, this master speaks 1".into(),
        },
        MasterMessage::Other("update_user_class".into()),
    ]
}

#[test]
fn every_worker_message_round_trips_through_bytes() {
    for m in all_worker_messages() {
        let msg = m.to_message("host_9c2f");
        assert_eq!(msg.node_id, "host_9c2f");
        let back = through_bytes(&msg);
        assert_eq!(back, msg);
        assert_eq!(WorkerMessage::parse(&back), Ok(m.clone()), "{m:?}");
    }
}

#[test]
fn every_master_message_round_trips_through_bytes() {
    for m in all_master_messages() {
        let msg = m.to_message("host_9c2f");
        let back = through_bytes(&msg);
        assert_eq!(back, msg);
        assert_eq!(MasterMessage::parse(&back), Ok(m.clone()), "{m:?}");
    }
}

#[test]
fn encode_writes_what_python_writes() {
    let hb = WorkerMessage::Heartbeat {
        state: "running".into(),
        cpu_percent: 12.5,
        memory_bytes: Some(52_428_800),
    };
    assert_eq!(encode(&hb.to_message("host_9c2f")), hex(PY_HEARTBEAT));
    let ready = WorkerMessage::ClientReady(PeerVersion::Locust("2.47.0".into()));
    assert_eq!(encode(&ready.to_message("host_9c2f")), hex(PY_CLIENT_READY));
    let done = WorkerMessage::SpawningComplete {
        user_classes_count: vec![("WebsiteUser".into(), 3)],
        user_count: 3,
    };
    assert_eq!(
        encode(&done.to_message("host_9c2f")),
        hex(PY_SPAWNING_COMPLETE)
    );
    let ack = MasterMessage::Ack {
        index: 2,
        locusta_protocol: None,
    };
    assert_eq!(encode(&ack.to_message("host_9c2f")), hex(PY_ACK));
}

#[test]
fn python_worker_messages_parse() {
    let parse = |h: &str| WorkerMessage::parse(&decode(&hex(h)).unwrap()).unwrap();
    assert_eq!(
        parse(PY_HEARTBEAT),
        WorkerMessage::Heartbeat {
            state: "running".into(),
            cpu_percent: 12.5,
            memory_bytes: Some(52_428_800),
        }
    );
    assert_eq!(
        parse(PY_CLIENT_READY),
        WorkerMessage::ClientReady(PeerVersion::Locust("2.47.0".into()))
    );
    assert_eq!(
        parse(PY_SPAWNING_COMPLETE),
        WorkerMessage::SpawningComplete {
            user_classes_count: vec![("WebsiteUser".into(), 3)],
            user_count: 3,
        }
    );
    assert_eq!(
        parse(PY_EXCEPTION),
        WorkerMessage::Exception {
            msg: "ZeroDivisionError('division by zero')".into(),
            traceback: "  File \"locustfile.py\", line 9, in t\n".into(),
            count: 1,
        }
    );
    let msg = decode(&hex(PY_HEARTBEAT)).unwrap();
    assert_eq!(
        (msg.kind.as_str(), msg.node_id.as_str()),
        ("heartbeat", "host_9c2f")
    );
}

#[test]
fn python_master_messages_parse() {
    let parse = |h: &str| MasterMessage::parse(&decode(&hex(h)).unwrap()).unwrap();
    assert_eq!(
        parse(PY_SPAWN),
        MasterMessage::Spawn {
            timestamp: 1_700_000_002.5,
            user_classes_count: vec![("WebsiteUser".into(), 3), ("Admin".into(), 0)],
            host: Some("http://example.com".into()),
            stop_timeout: None,
            open_model: None,
        }
    );
    assert_eq!(
        parse(PY_ACK),
        MasterMessage::Ack {
            index: 2,
            locusta_protocol: None
        }
    );
    // Before 2.11 the ack had no data.
    let old = Message {
        kind: "ack".into(),
        data: Value::Nil,
        node_id: "w".into(),
    };
    assert_eq!(
        MasterMessage::parse(&old),
        Ok(MasterMessage::Ack {
            index: 0,
            locusta_protocol: None
        })
    );
}

#[test]
fn spawn_and_heartbeat_carry_locusts_keys() {
    let spawn = MasterMessage::Spawn {
        timestamp: 2.0,
        user_classes_count: vec![("Z".into(), 1), ("A".into(), 2)],
        host: None,
        stop_timeout: None,
        open_model: None,
    }
    .to_message("w");
    let Value::Map(pairs) = &spawn.data else {
        panic!("spawn data is a map")
    };
    let keys: Vec<_> = pairs.iter().map(|(k, _)| k.as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "timestamp",
            "user_classes_count",
            "host",
            "stop_timeout",
            "parsed_options"
        ]
    );
    assert_eq!(pairs[0].1, Value::F64(2.0));
    assert_eq!(
        pairs[1].1,
        Value::Map(vec![
            (Value::from("Z"), Value::from(1)),
            (Value::from("A"), Value::from(2))
        ]),
        "classes in the given order"
    );
    assert_eq!(pairs[2].1, Value::Nil);
    assert_eq!(pairs[4].1, Value::Map(vec![]));

    let ack = MasterMessage::Ack {
        index: 1,
        locusta_protocol: None,
    }
    .to_message("w");
    assert_eq!(
        ack.data,
        Value::Map(vec![(Value::from("index"), Value::from(1))])
    );
    let exc = WorkerMessage::Exception {
        msg: "m".into(),
        traceback: "t".into(),
        count: 1,
    }
    .to_message("w");
    assert_eq!(
        exc.data.as_map().unwrap().last().unwrap().0.as_str(),
        Some("count")
    );
}

pub(super) fn msg(kind: &str, data: Value) -> Message {
    Message {
        kind: kind.into(),
        data,
        node_id: "w".into(),
    }
}

pub(super) fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

#[test]
fn client_ready_versions() {
    let ready = |data: Value| match WorkerMessage::parse(&msg("client_ready", data)) {
        Ok(WorkerMessage::ClientReady(v)) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        ready(Value::from("2.47.0 locusta/0.3.1 protocol 7")),
        PeerVersion::Locusta {
            version: "0.3.1".into(),
            protocol: 7,
            shards: 1
        }
    );
    assert_eq!(
        ready(Value::from(format!(
            "{LOCUST_VERSION} locusta/{} protocol {LOCUSTA_PROTOCOL} shards 3",
            env!("CARGO_PKG_VERSION")
        ))),
        locusta_client_ready(3)
    );
    // A capacity that is garbage, zero, negative or absurd: unusable (the
    // master refuses the worker), never a huge share of the rate.
    for bad in ["x", "0", "-1", "65537", "99999999999", "", "2 shards 3"] {
        let text = format!("2.47.0 locusta/0.1.0 protocol 2 shards {bad}");
        match ready(Value::from(text.as_str())) {
            PeerVersion::Unusable(why) => assert!(why.contains("shard count"), "{why}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    assert_eq!(
        ready(Value::from("2.46.3")),
        PeerVersion::Locust("2.46.3".into())
    );
    // Not quite our format: a string a Locust master would accept.
    for s in [
        "2.47.0 locusta/ protocol 1",
        "2.47.0 locusta/0.1 protocol x",
        "locusta/0.1 protocol 1",
        " locusta/0.1 protocol 1",
        "x locusta/0.1 protocol 1",
        "2.47.0 locusta/0.1 protocol 99999999999",
    ] {
        assert_eq!(ready(Value::from(s)), PeerVersion::Locust(s.into()), "{s}");
    }
    assert_eq!(ready(Value::from(-1)), PeerVersion::Any);
    assert_eq!(ready(Value::Nil), PeerVersion::Unusable("nil".into()));
    assert_eq!(
        ready(Value::from(false)),
        PeerVersion::Unusable("false".into())
    );
    assert_eq!(ready(Value::from("")), PeerVersion::Unusable("\"\"".into()));
    assert_eq!(ready(Value::from(2)), PeerVersion::Unusable("2".into()));
    assert_eq!(ready(Value::F64(-1.0)), PeerVersion::Unusable("-1".into()));
    assert_eq!(
        ready(Value::Array(vec![Value::Nil])),
        PeerVersion::Unusable("an array of 1".into())
    );
    assert_eq!(
        WorkerMessage::ClientReady(PeerVersion::Any)
            .to_message("w")
            .data,
        Value::from(-1)
    );
}

pub(super) fn field_problem(r: Result<impl std::fmt::Debug, ProtocolError>) -> (String, String) {
    match r {
        Err(ProtocolError::Field { kind, problem }) => (kind, problem),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn worker_fields_are_checked_and_named() {
    let hb = |data| WorkerMessage::parse(&msg("heartbeat", data));
    let (kind, problem) = field_problem(hb(map(vec![("current_cpu_usage", Value::from(1))])));
    assert_eq!(kind, "heartbeat");
    assert!(
        problem.contains("`state`") && problem.contains("missing"),
        "{problem}"
    );
    let (_, problem) = field_problem(hb(map(vec![
        ("state", Value::from("running")),
        ("current_cpu_usage", Value::from("high")),
    ])));
    assert!(problem.contains("`current_cpu_usage`"), "{problem}");
    let (_, problem) = field_problem(hb(map(vec![
        ("state", Value::from("running")),
        ("current_cpu_usage", Value::F64(f64::NAN)),
    ])));
    assert!(problem.contains("`current_cpu_usage`"), "{problem}");
    let (_, problem) = field_problem(hb(map(vec![
        ("state", Value::from("running")),
        ("current_cpu_usage", Value::from(3)),
        ("current_memory_usage", Value::from(-5)),
    ])));
    assert!(problem.contains("`current_memory_usage`"), "{problem}");
    field_problem(hb(Value::Nil));
    field_problem(hb(Value::from("running")));
    // Ints where floats are usual, floats where ints are, nil for optional.
    assert_eq!(
        hb(map(vec![
            ("state", Value::from("ready")),
            ("current_cpu_usage", Value::from(3)),
            ("current_memory_usage", Value::F64(1024.0)),
            ("extra", Value::from("ignored")),
        ])),
        Ok(WorkerMessage::Heartbeat {
            state: "ready".into(),
            cpu_percent: 3.0,
            memory_bytes: Some(1024),
        })
    );
    assert_eq!(
        hb(map(vec![
            ("state", Value::from("ready")),
            ("current_cpu_usage", Value::F32(0.5)),
            ("current_memory_usage", Value::Nil),
        ])),
        Ok(WorkerMessage::Heartbeat {
            state: "ready".into(),
            cpu_percent: 0.5,
            memory_bytes: None,
        })
    );

    let done = |data| WorkerMessage::parse(&msg("spawning_complete", data));
    let (kind, problem) = field_problem(done(map(vec![
        ("user_classes_count", map(vec![("A", Value::from(-1))])),
        ("user_count", Value::from(1)),
    ])));
    assert_eq!(kind, "spawning_complete");
    assert!(problem.contains("`user_classes_count`"), "{problem}");
    let (_, problem) = field_problem(done(map(vec![
        ("user_classes_count", map(vec![])),
        ("user_count", Value::from(u64::from(u32::MAX) + 1)),
    ])));
    assert!(problem.contains("`user_count`"), "{problem}");
    let (_, problem) = field_problem(done(map(vec![
        (
            "user_classes_count",
            Value::Map(vec![(Value::from(1), Value::from(1))]),
        ),
        ("user_count", Value::from(1)),
    ])));
    assert!(problem.contains("`user_classes_count`"), "{problem}");

    let exc = |data| WorkerMessage::parse(&msg("exception", data));
    let (_, problem) = field_problem(exc(map(vec![("msg", Value::from("m"))])));
    assert!(problem.contains("`traceback`"), "{problem}");
    let (_, problem) = field_problem(exc(map(vec![
        ("msg", Value::from("m")),
        ("traceback", Value::from("t")),
        ("count", Value::from(-2)),
    ])));
    assert!(problem.contains("`count`"), "{problem}");

    let logs = |data| WorkerMessage::parse(&msg("logs", data));
    assert_eq!(
        logs(map(vec![
            ("worker_id", Value::from("w")),
            ("logs", Value::Array(vec![Value::from("x")]))
        ])),
        Ok(WorkerMessage::Logs(vec!["x".into()]))
    );
    let (_, problem) = field_problem(logs(map(vec![(
        "logs",
        Value::Array(vec![Value::from(1)]),
    )])));
    assert!(problem.contains("`logs`"), "{problem}");

    let (kind, problem) = field_problem(WorkerMessage::parse(&msg("stats", Value::Nil)));
    assert_eq!(kind, "stats");
    assert!(problem.contains("not a map"), "{problem}");
    // Data of nil-data messages is not looked at; unknown kinds pass.
    assert_eq!(
        WorkerMessage::parse(&msg("quit", Value::from(3))),
        Ok(WorkerMessage::Quit)
    );
    assert_eq!(
        WorkerMessage::parse(&msg("locustfile", map(vec![]))),
        Ok(WorkerMessage::Other("locustfile".into()))
    );
}

#[test]
fn master_fields_are_checked_and_named() {
    let spawn = |data| MasterMessage::parse(&msg("spawn", data));
    let (kind, problem) = field_problem(spawn(map(vec![("user_classes_count", map(vec![]))])));
    assert_eq!(kind, "spawn");
    assert!(problem.contains("`timestamp`"), "{problem}");
    let (_, problem) = field_problem(spawn(map(vec![
        ("timestamp", Value::from(5)),
        ("user_classes_count", map(vec![])),
        ("stop_timeout", Value::from(-1)),
    ])));
    assert!(problem.contains("`stop_timeout`"), "{problem}");
    let (_, problem) = field_problem(spawn(map(vec![
        ("timestamp", Value::from(5)),
        ("user_classes_count", map(vec![])),
        ("host", Value::from(5)),
    ])));
    assert!(problem.contains("`host`"), "{problem}");
    // An int timestamp and stop_timeout, absent host.
    assert_eq!(
        spawn(map(vec![
            ("timestamp", Value::from(5)),
            ("user_classes_count", map(vec![("U", Value::F64(2.0))])),
            ("stop_timeout", Value::from(3)),
        ])),
        Ok(MasterMessage::Spawn {
            timestamp: 5.0,
            user_classes_count: vec![("U".into(), 2)],
            host: None,
            stop_timeout: Some(3.0),
            open_model: None,
        })
    );
    let ack = |data| MasterMessage::parse(&msg("ack", data));
    let (_, problem) = field_problem(ack(map(vec![("index", Value::from("1"))])));
    assert!(problem.contains("`index`"), "{problem}");
    let (_, problem) = field_problem(ack(map(vec![
        ("index", Value::from(1)),
        ("locusta_protocol", Value::from(-1)),
    ])));
    assert!(problem.contains("`locusta_protocol`"), "{problem}");
    let (kind, problem) = field_problem(MasterMessage::parse(&msg(REFUSED_KIND, map(vec![]))));
    assert_eq!(kind, REFUSED_KIND);
    assert!(problem.contains("`reason`"), "{problem}");
    field_problem(MasterMessage::parse(&msg("spawning_complete", Value::Nil)));
    assert_eq!(
        MasterMessage::parse(&msg("stop", map(vec![]))),
        Ok(MasterMessage::Stop)
    );
}
