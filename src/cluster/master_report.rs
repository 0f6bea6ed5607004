//! The master's `worker_report` listeners: one thread of its own holds a
//! Lua state with the script and fires them for every `stats` report
//! received (from locusta or Locust workers) with the report's custom keys.
//! The network thread only cuts the keys to bounds (`bound_custom`, work
//! bounded whatever the peer sent) and hands them over a bounded queue; a
//! full queue drops the report's data with a rate-limited warning, so a
//! slow listener (or one cut by the watchdog) never holds heartbeats.
//!
//! It does not own the conversions (`script::custom_data`) or the Lua state
//! (`script::runtime::WorkerReportScript`).

use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use rmpv::Value;

use super::warnings::Warnings;
use crate::script::custom_data::{bound_custom, Dropped};
use crate::script::runtime::WorkerReportScript;
use crate::script::ScriptSource;

/// Reports waiting for the listeners; each holds at most
/// `custom_data::MAX_BYTES` (about) of data.
const QUEUE: usize = 32;

type Item = (String, Vec<(String, Value)>, Dropped);

/// How long the master, at exit, lets the listeners finish the reports
/// still queued (the workers' last ones arrive just before it).
const DRAIN: Duration = Duration::from_secs(2);

/// The network thread's end of the queue.
pub(super) struct ReportListeners {
    queue: Option<Sender<Item>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ReportListeners {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it is empty.
        self.queue = None;
        let deadline = Instant::now() + DRAIN;
        while let Some(t) = &self.thread {
            if t.is_finished() {
                let _ = self.thread.take().map(std::thread::JoinHandle::join);
            } else if Instant::now() >= deadline {
                log::warn!("worker_report listeners still busy at exit: the rest is dropped");
                return;
            } else {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl ReportListeners {
    /// Load the script in a thread of its own; `None` when it has no
    /// `worker_report` listener (or cannot load there: logged).
    pub(super) fn start(src: &ScriptSource) -> Option<ReportListeners> {
        let (ready_tx, ready_rx) = bounded(1);
        let (queue, items) = bounded(QUEUE);
        let src = src.clone();
        let spawned = std::thread::Builder::new()
            .name("locusta-worker-report".into())
            .spawn(move || match WorkerReportScript::load(&src) {
                Ok(Some(script)) => {
                    let _ = ready_tx.send(true);
                    serve(&script, &items);
                }
                Ok(None) => {
                    let _ = ready_tx.send(false);
                }
                Err(e) => {
                    log::warn!("worker_report listeners will not run: {e}");
                    let _ = ready_tx.send(false);
                }
            });
        let thread = match spawned {
            Ok(t) => t,
            Err(e) => {
                log::warn!("worker_report listeners will not run: cannot start their thread: {e}");
                return None;
            }
        };
        match ready_rx.recv() {
            Ok(true) => {
                log::info!("The script's worker_report listeners run for every worker report");
                Some(ReportListeners {
                    queue: Some(queue),
                    thread: Some(thread),
                })
            }
            _ => None,
        }
    }

    /// A stats report from `from` arrived: queue its custom keys.
    pub(super) fn push(
        &self,
        from: &str,
        custom: &[(String, Value)],
        warnings: &mut Warnings,
        now: Instant,
    ) {
        let Some(queue) = &self.queue else { return };
        let (data, dropped) = bound_custom(custom);
        match queue.try_send((from.to_string(), data, dropped)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => warnings.warn("worker_report queue", now, || {
                format!(
                    "the worker_report listeners are behind ({QUEUE} reports waiting): \
                     the report of worker {from} did not reach them"
                )
            }),
            // The listeners' thread is gone (it logged why).
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn serve(script: &WorkerReportScript, items: &Receiver<Item>) {
    let mut warnings = Warnings::default();
    // Ends when the network thread drops its sender.
    for (from, data, dropped) in items {
        let now = Instant::now();
        if dropped.any() {
            warnings.warn("worker_report data", now, || {
                format!("custom data of worker {from} cut to bounds: {dropped}")
            });
        }
        if let Err(e) = script.fire(&from, &data) {
            warnings.warn("worker_report", now, || e);
        }
        warnings.flush(now, false);
    }
    warnings.flush(Instant::now(), true);
}
