//! Bytes from the network, as the master and the worker handle them:
//! decode, parse as either side's message, and turn a `stats` report into
//! the delta the master merges. None of it may panic.
//!
//! cd /work/main && RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz \
//!     decode_message -- -max_total_time=60

#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use locusta::cluster::protocol::{decode, MasterMessage, WorkerMessage};

fuzz_target!(|bytes: &[u8]| {
    let Ok(msg) = decode(bytes) else {
        return;
    };
    if let Ok(WorkerMessage::Stats(report)) = WorkerMessage::parse(&msg) {
        let (delta, _unknown) = report.to_delta(SystemTime::UNIX_EPOCH);
        assert!(delta.entries.len() <= report.stats.len());
        // A parsed report encodes again (the worker side of the same type).
        let _ = report.to_value();
    }
    let _ = MasterMessage::parse(&msg);
});
