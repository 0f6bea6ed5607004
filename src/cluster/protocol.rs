//! Locust's master/worker messages: a msgpack array `[type, data, node_id]`
//! (strings as msgpack `str`, maps may have integer keys), and the typed
//! forms locusta sends and handles.
//!
//! Owns encoding and decoding only. Decoding never panics: bytes from the
//! network that are not a well-formed message are a [`ProtocolError`] the
//! caller logs and drops (a fuzz target in `tests/fuzz` holds it to that).
//! It does not own sockets (`transport`) or what a message makes a master
//! or worker do (`master`, `worker`).

use std::time::{SystemTime, UNIX_EPOCH};

pub use rmpv::Value;

use crate::cluster::report::WorkerReport;
pub(crate) use crate::cluster::values::*;

/// The Locust version a locusta peer says it speaks; Locust compares the
/// first four characters ("2.47") and only logs a mismatch.
pub const LOCUST_VERSION: &str = "2.47.0";

/// Bumped when locusta peers stop understanding each other's extensions
/// (1: HDR buckets in reports; 2: the shard count in `client_ready`); a
/// worker with another number is refused.
pub const LOCUSTA_PROTOCOL: u32 = 2;

/// The most shards a worker may announce (more is a lie or garbage).
pub const MAX_ANNOUNCED_SHARDS: u32 = 65_536;

/// One message as it travels: Locust's `[type, data, node_id]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub kind: String,
    pub data: Value,
    pub node_id: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtocolError {
    /// Not msgpack, truncated, trailing bytes, nested too deep.
    #[error("not a msgpack message: {0}")]
    Msgpack(String),
    /// msgpack, but not `[str, any, str]`.
    #[error("not a [type, data, node_id] message: {0}")]
    Shape(String),
    /// A known message type whose data lacks a field or has the wrong type.
    #[error("bad `{kind}` message: {problem}")]
    Field { kind: String, problem: String },
}

/// What a worker says to the master.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerMessage {
    /// `client_ready` with the worker's version.
    ClientReady(PeerVersion),
    Heartbeat {
        /// "ready", "spawning", "running", "stopped".
        state: String,
        cpu_percent: f64,
        memory_bytes: Option<u64>,
    },
    Spawning,
    SpawningComplete {
        user_classes_count: Vec<(String, u32)>,
        user_count: u32,
    },
    Stats(Box<WorkerReport>),
    /// Locust sends one per error; locusta adds `count` (absent: 1).
    Exception {
        msg: String,
        traceback: String,
        count: u64,
    },
    ClientStopped,
    Quit,
    /// `logs` (2.29+): shown at debug level, otherwise ignored.
    Logs(Vec<String>),
    /// A type this side does not know (Locust's custom messages).
    Other(String),
}

/// What a worker said in `client_ready`.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerVersion {
    /// A locusta worker: `"2.47.0 locusta/0.1.0 protocol 2 shards 4"`
    /// (Locust's version first, so a Locust master sees a matching "2.47"
    /// and only logs at debug level). `shards`: the worker's capacity,
    /// which an open-model run's rate is split by (1 when not said).
    Locusta {
        version: String,
        protocol: u32,
        shards: u32,
    },
    /// A Python Locust worker's `__version__`, e.g. "2.47.0".
    Locust(String),
    /// boomer's `-1`: skip the check.
    Any,
    /// Empty/false/null (pre-2.0 Locust) or anything else unusable.
    Unusable(String),
}

/// What the master says to a worker.
#[derive(Clone, Debug, PartialEq)]
pub enum MasterMessage {
    /// `ack`; `locusta_protocol` is our extra field, absent from Locust.
    Ack {
        index: u32,
        locusta_protocol: Option<u32>,
    },
    Spawn {
        /// The master's `time.time()`; a worker drops a spawn not newer
        /// than the last one it saw.
        timestamp: f64,
        /// Absolute users per class for this worker (all classes, zeros too).
        user_classes_count: Vec<(String, u32)>,
        host: Option<String>,
        stop_timeout: Option<f64>,
        /// locusta masters in an open-model run: this worker's share of
        /// the arrival rate and of the pool (key `locusta_open_model`,
        /// which a Locust worker would ignore: such runs refuse them).
        open_model: Option<crate::engine::OpenModel>,
    },
    /// Once per ramp, the cluster-wide user count (2.29+).
    SpawningComplete {
        user_count: u32,
    },
    Stop,
    Quit,
    Heartbeat,
    Reconnect,
    /// Our extension: the worker was refused; it logs `reason` and exits.
    Refused {
        reason: String,
    },
    Other(String),
}

/// Nesting `decode` accepts, in rmpv's units: each container costs two
/// levels and each string three, so a `stats` report (about 11 deep)
/// fits with room for custom messages, and a hostile `[[[[…]]]]` does not
/// recurse far.
pub const MAX_DEPTH: usize = 32;

/// Serialize: a 3-element msgpack array, strings as `str`.
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    // fixarray of 3, then the three values; borrowing the strings avoids
    // copying them (and the data, which may be a large report) into a Value.
    out.push(0x93);
    write_str(&mut out, &msg.kind);
    rmpv::encode::write_value(&mut out, &msg.data).expect("writing to a Vec cannot fail");
    write_str(&mut out, &msg.node_id);
    out
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let value = rmpv::ValueRef::String(rmpv::Utf8StringRef::from(s));
    rmpv::encode::write_value_ref(out, &value).expect("writing to a Vec cannot fail");
}

/// Parse bytes from the network. Refuses trailing bytes and nesting deeper
/// than 32; never panics.
///
/// rmpv does not preallocate from a length prefix (an array claiming four
/// billion elements fails at the first missing byte), so memory stays in
/// proportion to the input: up to 40 bytes of `Value` per input byte (a
/// msgpack nil is one byte), so the transport should cap message size.
pub fn decode(bytes: &[u8]) -> Result<Message, ProtocolError> {
    let mut rest = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut rest, MAX_DEPTH)
        .map_err(|e| ProtocolError::Msgpack(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ProtocolError::Msgpack(format!(
            "{} trailing bytes after the message",
            rest.len()
        )));
    }
    let Value::Array(items) = value else {
        return Err(ProtocolError::Shape(format!(
            "{}, not an array",
            describe(&value)
        )));
    };
    let [kind, data, node_id]: [Value; 3] = items.try_into().map_err(|items: Vec<Value>| {
        ProtocolError::Shape(format!("an array of {} elements, not 3", items.len()))
    })?;
    let kind = into_string(kind)
        .map_err(|v| ProtocolError::Shape(format!("type is {}, not a string", describe(&v))))?;
    let node_id = into_string(node_id)
        .map_err(|v| ProtocolError::Shape(format!("node id is {}, not a string", describe(&v))))?;
    Ok(Message {
        kind,
        data,
        node_id,
    })
}

fn into_string(v: Value) -> Result<String, Value> {
    match v {
        Value::String(s) if s.is_str() => Ok(s.into_str().unwrap_or_default()),
        other => Err(other),
    }
}

/// A short description of a value for error messages and logs: scalars
/// shown (strings cut at 64 characters), containers by kind only, so a
/// hostile message never makes a huge log line.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::F32(f) => f.to_string(),
        Value::F64(f) => f.to_string(),
        Value::String(s) => match s.as_str() {
            Some(s) if s.chars().count() > 64 => {
                let cut: String = s.chars().take(64).collect();
                format!("{cut:?}…")
            }
            Some(s) => format!("{s:?}"),
            None => "a string that is not UTF-8".into(),
        },
        Value::Binary(b) => format!("{} bytes of binary", b.len()),
        Value::Array(a) => format!("an array of {}", a.len()),
        Value::Map(m) => format!("a map of {}", m.len()),
        Value::Ext(t, _) => format!("an ext value of type {t}"),
    }
}

/// Unix time as Locust's `time.time()`: float seconds (0 before 1970).
pub fn unix_secs_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl PeerVersion {
    /// Read `client_ready`'s data.
    fn parse(data: &Value) -> PeerVersion {
        match data {
            Value::String(s) => match s.as_str() {
                Some("") | None => PeerVersion::Unusable(describe(data)),
                Some(s) => Self::parse_locusta(s).unwrap_or_else(|| PeerVersion::Locust(s.into())),
            },
            Value::Integer(i) if i.as_i64() == Some(-1) => PeerVersion::Any,
            other => PeerVersion::Unusable(describe(other)),
        }
    }

    /// `"2.47.0 locusta/0.1.0 protocol 2 shards 4"` (protocol 1 workers
    /// say no shards). A shard count that is not a number from 1 to
    /// [`MAX_ANNOUNCED_SHARDS`] makes the version unusable: a worker that
    /// lies about its capacity would skew every open-model split.
    fn parse_locusta(s: &str) -> Option<PeerVersion> {
        let (locust, rest) = s.split_once(" locusta/")?;
        let (version, rest) = rest.split_once(" protocol ")?;
        let starts_with_digit = locust.chars().next().is_some_and(|c| c.is_ascii_digit());
        if !starts_with_digit || version.is_empty() || version.contains(' ') {
            return None;
        }
        let (protocol, shards) = match rest.split_once(" shards ") {
            Some((protocol, shards)) => (protocol, Some(shards)),
            None => (rest, None),
        };
        let protocol = protocol.parse().ok()?;
        let shards = match shards {
            None => 1,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=MAX_ANNOUNCED_SHARDS).contains(&n) => n,
                _ => {
                    return Some(PeerVersion::Unusable(format!(
                        "{s:?}: its shard count is not a number from 1 to {MAX_ANNOUNCED_SHARDS}"
                    )))
                }
            },
        };
        Some(PeerVersion::Locusta {
            version: version.to_string(),
            protocol,
            shards,
        })
    }

    /// `client_ready`'s data. `Unusable` is only ever parsed; sending it
    /// sends nil (which parses back as `Unusable("nil")`).
    fn to_value(&self) -> Value {
        match self {
            PeerVersion::Locusta {
                version,
                protocol,
                shards,
            } => Value::from(format!(
                "{LOCUST_VERSION} locusta/{version} protocol {protocol} shards {shards}"
            )),
            PeerVersion::Locust(v) => str_value(v),
            PeerVersion::Any => Value::from(-1),
            PeerVersion::Unusable(_) => Value::Nil,
        }
    }
}

impl WorkerMessage {
    /// The typed form of a message a worker sent.
    pub fn parse(msg: &Message) -> Result<WorkerMessage, ProtocolError> {
        let kind = msg.kind.as_str();
        let data = &msg.data;
        Ok(match kind {
            "client_ready" => WorkerMessage::ClientReady(PeerVersion::parse(data)),
            "heartbeat" => {
                let f = Fields::of(kind, data)?;
                WorkerMessage::Heartbeat {
                    state: f.str("state")?.to_string(),
                    cpu_percent: f.number("current_cpu_usage")?,
                    memory_bytes: f.opt_count("current_memory_usage")?,
                }
            }
            "spawning" => WorkerMessage::Spawning,
            "spawning_complete" => {
                let f = Fields::of(kind, data)?;
                WorkerMessage::SpawningComplete {
                    user_classes_count: f.class_counts("user_classes_count")?,
                    user_count: f.u32("user_count")?,
                }
            }
            "stats" => WorkerMessage::Stats(Box::new(WorkerReport::from_value(data)?)),
            "exception" => {
                let f = Fields::of(kind, data)?;
                WorkerMessage::Exception {
                    msg: f.str("msg")?.to_string(),
                    traceback: f.str("traceback")?.to_string(),
                    count: f.opt_count("count")?.unwrap_or(1),
                }
            }
            "client_stopped" => WorkerMessage::ClientStopped,
            "quit" => WorkerMessage::Quit,
            "logs" => {
                let f = Fields::of(kind, data)?;
                let v = f.required("logs")?;
                let Value::Array(lines) = v else {
                    return Err(f.mistyped("logs", v, "an array"));
                };
                let lines = lines
                    .iter()
                    .map(|l| {
                        l.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| f.mistyped("logs", l, "an array of strings"))
                    })
                    .collect::<Result<_, _>>()?;
                WorkerMessage::Logs(lines)
            }
            other => WorkerMessage::Other(other.to_string()),
        })
    }

    /// The message to send, from `node_id`.
    pub fn to_message(&self, node_id: &str) -> Message {
        let (kind, data) = match self {
            WorkerMessage::ClientReady(v) => ("client_ready", v.to_value()),
            WorkerMessage::Heartbeat {
                state,
                cpu_percent,
                memory_bytes,
            } => {
                let mut pairs = vec![
                    ("state", str_value(state)),
                    ("current_cpu_usage", Value::F64(*cpu_percent)),
                ];
                if let Some(m) = memory_bytes {
                    pairs.push(("current_memory_usage", Value::from(*m)));
                }
                ("heartbeat", map_value(pairs))
            }
            WorkerMessage::Spawning => ("spawning", Value::Nil),
            WorkerMessage::SpawningComplete {
                user_classes_count,
                user_count,
            } => (
                "spawning_complete",
                map_value(vec![
                    ("user_classes_count", class_counts_value(user_classes_count)),
                    ("user_count", Value::from(*user_count)),
                ]),
            ),
            WorkerMessage::Stats(report) => ("stats", report.to_value()),
            WorkerMessage::Exception {
                msg,
                traceback,
                count,
            } => (
                "exception",
                map_value(vec![
                    ("msg", str_value(msg)),
                    ("traceback", str_value(traceback)),
                    ("count", Value::from(*count)),
                ]),
            ),
            WorkerMessage::ClientStopped => ("client_stopped", Value::Nil),
            WorkerMessage::Quit => ("quit", Value::Nil),
            WorkerMessage::Logs(lines) => (
                "logs",
                map_value(vec![
                    ("worker_id", str_value(node_id)),
                    (
                        "logs",
                        Value::Array(lines.iter().map(|l| str_value(l)).collect()),
                    ),
                ]),
            ),
            WorkerMessage::Other(kind) => (kind.as_str(), Value::Nil),
        };
        Message {
            kind: kind.to_string(),
            data,
            node_id: node_id.to_string(),
        }
    }
}

/// Our extension message: the master refuses a worker (data `{"reason"}`).
pub const REFUSED_KIND: &str = "locusta_refused";

impl MasterMessage {
    pub fn parse(msg: &Message) -> Result<MasterMessage, ProtocolError> {
        let kind = msg.kind.as_str();
        let data = &msg.data;
        Ok(match kind {
            "ack" => {
                // Masters before 2.11 sent no index.
                if data.is_nil() {
                    return Ok(MasterMessage::Ack {
                        index: 0,
                        locusta_protocol: None,
                    });
                }
                let f = Fields::of(kind, data)?;
                let locusta_protocol = match f.get("locusta_protocol") {
                    None => None,
                    Some(_) => Some(f.u32("locusta_protocol")?),
                };
                MasterMessage::Ack {
                    index: f.u32("index")?,
                    locusta_protocol,
                }
            }
            "spawn" => {
                let f = Fields::of(kind, data)?;
                MasterMessage::Spawn {
                    timestamp: f.number("timestamp")?,
                    user_classes_count: f.class_counts("user_classes_count")?,
                    host: f.opt_str("host")?.map(str::to_string),
                    stop_timeout: f.opt_non_negative("stop_timeout")?,
                    open_model: f
                        .get(super::open_report::OPEN_MODEL_KEY)
                        .map(|v| super::open_report::parse_open_model(kind, v))
                        .transpose()?,
                }
            }
            "spawning_complete" => {
                let f = Fields::of(kind, data)?;
                MasterMessage::SpawningComplete {
                    user_count: f.u32("user_count")?,
                }
            }
            "stop" => MasterMessage::Stop,
            "quit" => MasterMessage::Quit,
            "heartbeat" => MasterMessage::Heartbeat,
            "reconnect" => MasterMessage::Reconnect,
            REFUSED_KIND => {
                let f = Fields::of(kind, data)?;
                MasterMessage::Refused {
                    reason: f.str("reason")?.to_string(),
                }
            }
            other => MasterMessage::Other(other.to_string()),
        })
    }

    /// The message to send to the worker `node_id` (Locust routes replies
    /// by the node id inside the message too).
    pub fn to_message(&self, node_id: &str) -> Message {
        let (kind, data) = match self {
            MasterMessage::Ack {
                index,
                locusta_protocol,
            } => {
                let mut pairs = vec![("index", Value::from(*index))];
                if let Some(p) = locusta_protocol {
                    pairs.push(("locusta_protocol", Value::from(*p)));
                }
                ("ack", map_value(pairs))
            }
            MasterMessage::Spawn {
                timestamp,
                user_classes_count,
                host,
                stop_timeout,
                open_model,
            } => {
                let mut pairs = vec![
                    ("timestamp", Value::F64(*timestamp)),
                    ("user_classes_count", class_counts_value(user_classes_count)),
                    ("host", host.as_deref().map_or(Value::Nil, str_value)),
                    ("stop_timeout", stop_timeout.map_or(Value::Nil, Value::F64)),
                    // Locust workers read it (`job["parsed_options"]`);
                    // empty means "keep your own options".
                    ("parsed_options", Value::Map(Vec::new())),
                ];
                if let Some(model) = open_model {
                    pairs.push((
                        super::open_report::OPEN_MODEL_KEY,
                        super::open_report::open_model_value(model),
                    ));
                }
                ("spawn", map_value(pairs))
            }
            MasterMessage::SpawningComplete { user_count } => (
                "spawning_complete",
                map_value(vec![("user_count", Value::from(*user_count))]),
            ),
            MasterMessage::Stop => ("stop", Value::Nil),
            MasterMessage::Quit => ("quit", Value::Nil),
            MasterMessage::Heartbeat => ("heartbeat", Value::Nil),
            MasterMessage::Reconnect => ("reconnect", Value::Nil),
            MasterMessage::Refused { reason } => {
                (REFUSED_KIND, map_value(vec![("reason", str_value(reason))]))
            }
            MasterMessage::Other(kind) => (kind.as_str(), Value::Nil),
        };
        Message {
            kind: kind.to_string(),
            data,
            node_id: node_id.to_string(),
        }
    }
}

/// What a locusta worker running `shards` shards sends in `client_ready`.
pub fn locusta_client_ready(shards: usize) -> PeerVersion {
    PeerVersion::Locusta {
        version: env!("CARGO_PKG_VERSION").to_string(),
        protocol: LOCUSTA_PROTOCOL,
        shards: u32::try_from(shards)
            .unwrap_or(MAX_ANNOUNCED_SHARDS)
            .clamp(1, MAX_ANNOUNCED_SHARDS),
    }
}

#[cfg(test)]
#[path = "protocol_decode_tests.rs"]
mod decode_tests;
#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
