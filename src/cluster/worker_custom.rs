//! A worker's custom data (`report_to_master`) for each report: asks the
//! engine's shard 0 to run the script's listeners when a report is due and,
//! when the last firing set data, waits for the answer at most [`WAIT`], so
//! a slow or stuck listener never holds the worker's loop (heartbeats, the
//! master's messages); a script whose listeners set nothing (or that has
//! none) makes only its first report wait. An answer that comes later goes with
//! the next report, and no new firing is asked for while one is pending,
//! so each firing's data is sent exactly once.
//!
//! It does not own the listeners (`script::runtime`) or the payload
//! (`report`).

use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, TryRecvError};
use rmpv::Value;

use crate::cluster::warnings::Warnings;
use crate::engine::Controller;
use crate::script::custom_data::{CustomData, CustomError};

/// Longest a report waits for shard 0's answer (its control loop looks at
/// commands every 20 ms; listeners are plain calls).
const WAIT: Duration = Duration::from_millis(500);

pub(super) struct CustomAsk {
    /// The firing asked for and not answered yet.
    pending: Option<Receiver<CustomData>>,
    /// The last firing set data (or this is the first): wait for this one's.
    wait: bool,
}

impl Default for CustomAsk {
    fn default() -> Self {
        CustomAsk {
            pending: None,
            wait: true,
        }
    }
}

impl CustomAsk {
    /// The custom keys for the report being sent now (empty: none, and the
    /// payload stays Locust's). `scripted`: raw mode has no listeners.
    pub(super) fn take(
        &mut self,
        engine: Option<&Controller>,
        scripted: bool,
        node_id: &str,
        warnings: &mut Warnings,
    ) -> Vec<(String, Value)> {
        let Some(engine) = engine.filter(|_| scripted) else {
            self.pending = None;
            return Vec::new();
        };
        let answer = self.pending.get_or_insert_with(|| {
            let (tx, rx) = bounded(1);
            engine.report_to_master(node_id, tx);
            rx
        });
        let received = if self.wait {
            answer.recv_timeout(WAIT)
        } else {
            answer.try_recv().map_err(|e| match e {
                TryRecvError::Empty => RecvTimeoutError::Timeout,
                TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        };
        match received {
            Ok(Ok(data)) => {
                self.pending = None;
                self.wait = !data.is_empty();
                data
            }
            Ok(Err(problem)) => {
                self.pending = None;
                let kind = match problem {
                    CustomError::Listener(_) => "report_to_master listener",
                    CustomError::Data(_) => "report_to_master data",
                };
                warnings.warn(kind, Instant::now(), || {
                    format!("{problem}: this report goes without custom data")
                });
                Vec::new()
            }
            // Not waited for: it goes with the next report.
            Err(RecvTimeoutError::Timeout) if !self.wait => Vec::new(),
            Err(RecvTimeoutError::Timeout) => {
                warnings.warn("report_to_master late", Instant::now(), || {
                    format!(
                        "the report_to_master listeners did not finish within {} ms: this \
                         report goes without custom data (what they set goes with the next)",
                        WAIT.as_millis()
                    )
                });
                Vec::new()
            }
            // The engine that was asked is gone (a new host started another).
            Err(RecvTimeoutError::Disconnected) => {
                self.pending = None;
                Vec::new()
            }
        }
    }
}
