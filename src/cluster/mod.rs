//! The cluster: a master and workers speaking Locust's wire protocol over
//! ZeroMQ, so a locusta worker can join a Python Locust master and a Python
//! Locust worker can join a locusta master.
//!
//! - `protocol`: messages (`[type, data, node_id]` in msgpack) and their
//!   typed forms; never panics on bytes from the network.
//! - `report`: a worker's `stats` payload (Locust's fields and units, plus
//!   our exact HDR buckets) built from engine deltas, and turned back into
//!   a delta at the master.
//! - `transport`: the ZeroMQ sockets (ROUTER on the master, DEALER with
//!   identity `hostname_hex` on the worker).
//! - `nodes`: the master's worker list, liveness and dispatch order.
//! - `open_report`: the open model's rate share in `spawn` and its part
//!   of a locusta worker's report (counters, corrected latencies).
//! - `report_decode`: the master's fast path from a `stats` message's
//!   bytes to a report, without a `Value` tree.
//! - `report_checks`: range checks on a report before the master merges it.
//! - `warnings`: rate-limited warnings about what peers send.
//! - `decoder`: decodes large messages off the network thread.
//! - `network`: the master's thread that owns the ROUTER and the run.
//! - `master_report`: the master's `worker_report` listeners (own thread).
//! - `master`: implements [`crate::engine::RunControl`] over the workers.
//! - `worker`: runs a local engine as the master says.
//!
//! This module does not own running users (`engine`) or reports (`report`).

mod decoder;
pub mod master;
mod master_report;
mod network;
pub mod nodes;
pub mod open_report;
pub mod protocol;
pub mod report;
mod report_builder;
mod report_checks;
#[doc(hidden)]
pub mod report_decode;
#[doc(hidden)]
pub mod sim;
pub mod transport;
mod values;
pub mod warnings;
pub mod worker;
