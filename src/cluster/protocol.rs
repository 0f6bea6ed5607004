//! Locust's master/worker messages: a msgpack array `[type, data, node_id]`
//! (strings as msgpack `str`, maps may have integer keys), and the typed
//! forms locusta sends and handles.
//!
//! Owns encoding and decoding only. Decoding never panics: bytes from the
//! network that are not a well-formed message are a [`ProtocolError`] the
//! caller logs and drops (a fuzz target in `tests/fuzz` holds it to that).
//! It does not own sockets (`transport`) or what a message makes a master
//! or worker do (`master`, `worker`).

pub use rmpv::Value;

use crate::cluster::report::WorkerReport;

/// The Locust version a locusta peer says it speaks; Locust compares the
/// first four characters ("2.47") and only logs a mismatch.
pub const LOCUST_VERSION: &str = "2.47.0";

/// Bumped when locusta peers stop understanding each other's extensions
/// (the HDR buckets in reports); a worker with another number is refused.
pub const LOCUSTA_PROTOCOL: u32 = 1;

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
    /// A locusta worker: `"2.47.0 locusta/0.1.0 protocol 1"` (Locust's
    /// version first, so a Locust master sees a matching "2.47" and only
    /// logs at debug level).
    Locusta { version: String, protocol: u32 },
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
    },
    /// Once per ramp, the cluster-wide user count (2.29+).
    SpawningComplete { user_count: u32 },
    Stop,
    Quit,
    Heartbeat,
    Reconnect,
    /// Our extension: the worker was refused; it logs `reason` and exits.
    Refused { reason: String },
    Other(String),
}

/// Serialize: a 3-element msgpack array, strings as `str`.
pub fn encode(msg: &Message) -> Vec<u8> {
    todo!()
}

/// Parse bytes from the network. Refuses trailing bytes and nesting deeper
/// than 32; never panics.
pub fn decode(bytes: &[u8]) -> Result<Message, ProtocolError> {
    todo!()
}

impl WorkerMessage {
    /// The typed form of a message a worker sent.
    pub fn parse(msg: &Message) -> Result<WorkerMessage, ProtocolError> {
        todo!()
    }

    /// The message to send, from `node_id`.
    pub fn to_message(&self, node_id: &str) -> Message {
        todo!()
    }
}

impl MasterMessage {
    pub fn parse(msg: &Message) -> Result<MasterMessage, ProtocolError> {
        todo!()
    }

    /// The message to send to the worker `node_id` (Locust routes replies
    /// by the node id inside the message too).
    pub fn to_message(&self, node_id: &str) -> Message {
        todo!()
    }
}

/// What a locusta worker sends in `client_ready`.
pub fn locusta_client_ready() -> PeerVersion {
    PeerVersion::Locusta {
        version: env!("CARGO_PKG_VERSION").to_string(),
        protocol: LOCUSTA_PROTOCOL,
    }
}
