//! The terminal dashboard front end: adapts a [`RunControl`] to the
//! `locusta-tui` crate and does what headless does around it.
//!
//! Owns converting the engine's [`Snapshot`] and history into the
//! dashboard's plain [`DashboardSnapshot`] ([`to_dashboard`]), forwarding the
//! dashboard's actions to the run, and the rest of a run with a terminal:
//! `--csv` files every second while the swarm runs, `-t` counted from the
//! start, `--threshold-abort`, SIGTERM (and SIGINT/SIGHUP) as `q`, log lines held back while the
//! dashboard owns the screen and printed after it, and on quit the same end
//! as headless (stop, final CSV, Locust's final tables, exit code). Drawing
//! and keys are the `locusta-tui` crate's.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use locusta_tui::{AppOptions, DashboardSnapshot, Options, QuitReason, RunHandle};

use crate::config::RunConfig;
use crate::engine::{RunControl, RunState, Snapshot, Topology};
use crate::headless;
use crate::report::hdr_log::HdrLog;
use crate::report::CsvWriter;
use crate::stats::{EntryRow, HistoryPoint, PERCENTILES};

/// How often the background ticker looks at the clock and the run.
const POLL: Duration = Duration::from_millis(50);
const CSV_EVERY: Duration = Duration::from_secs(1);
/// Log bytes kept while the dashboard owns the terminal (the newest).
const LOG_KEEP: usize = 1 << 20;

/// Run the dashboard until the user quits; returns the exit code.
pub fn run(cfg: &RunConfig, control: &dyn RunControl) -> anyhow::Result<i32> {
    let quit = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, quit.clone())
            .context("cannot install the signal handler")?;
    }
    let csv = headless::open_csv(cfg)?;
    let hdr = headless::open_hdr_log(cfg)?;
    if let Some(t) = cfg.run_time {
        log::info!("Run time limit set to {} seconds", t.as_secs());
    }
    // A load shape starts the run itself (the ticker applies its answers)
    // and the dashboard shows its target instead of asking for users.
    let mut shape = crate::shape::start_for(cfg);
    let handle = Handle {
        control,
        host: cfg.target_label.clone(),
        shape: shape.as_ref().map(|s| s.target_handle()),
        open_model: cfg.open_model,
    };
    let options = Options {
        app: AppOptions {
            users: cfg.users,
            spawn_rate: cfg.spawn_rate,
            step: cfg.step,
            // An open model's rate and pool come from the flags: no form.
            autostart: cfg.autostart || shape.is_some() || cfg.open_model.is_some(),
        },
        quit: Some(quit.clone()),
    };

    let logs = StderrCapture::begin();
    let done = AtomicBool::new(false);
    let (outcome, ticked) = std::thread::scope(|s| {
        let shape = &mut shape;
        let ticker = s.spawn(|| ticker(cfg, control, (csv, hdr), shape, &quit, &done));
        let outcome = {
            // Also on a panic, or the scope would wait for the ticker forever.
            let _stop_ticker = SetOnDrop(&done);
            locusta_tui::run(&handle, options)
        };
        (outcome, ticker.join())
    });
    drop(logs);

    let (mut csv, mut hdr, hdr_ok, shape_failed) = match ticked {
        Ok(Ok(files)) => files,
        Ok(Err(e)) => return Err(e),
        Err(panic) => std::panic::resume_unwind(panic),
    };
    match outcome {
        Ok(o) if o.reason == QuitReason::Panic => {
            log::error!("a thread panicked (message above): stopping and writing reports")
        }
        Ok(_) => log::info!("Quitting: stopping and writing reports"),
        Err(e) => log::error!("the dashboard failed: {e}; stopping and writing reports"),
    }
    headless::end_run(cfg, control, csv.as_mut(), &mut hdr, hdr_ok, shape_failed)
}

/// Raises its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Beside the dashboard: `--csv` and `--hdr-log` every second while users
/// run, `-t` (from the latest start) by raising `quit`, and the load shape's
/// answers (its end stops the run; the dashboard stays to be read). Hands
/// the writers back for the final write, with whether the log was all
/// written and whether the shape failed.
type Ticked = (Option<CsvWriter>, Option<HdrLog>, bool, bool);

fn ticker(
    cfg: &RunConfig,
    control: &dyn RunControl,
    (mut csv, mut hdr): (Option<CsvWriter>, Option<HdrLog>),
    shape: &mut Option<crate::shape::ShapeRunner>,
    quit: &AtomicBool,
    done: &AtomicBool,
) -> anyhow::Result<Ticked> {
    let mut hdr_ok = true;
    let mut shape_ended = false;
    let mut shape_failed = false;
    let mut next_csv = Instant::now() + CSV_EVERY;
    let mut next_abort_check = Instant::now() + headless::ABORT_CHECK_EVERY;
    headless::warn_unabortable(cfg);
    let mut was_running = false;
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(POLL);
        if let (Some(end), false) = (shape.as_mut().and_then(|s| s.poll(control)), shape_ended) {
            shape_ended = true;
            shape_failed = matches!(end, crate::shape::ShapeEnd::Failed(_));
            control.stop();
        }
        let status = control.status();
        // --reset-stats: as Locust's UI runs, at every completed ramp.
        let now_running = status.state == RunState::Running;
        if cfg.reset_stats && now_running && !was_running {
            log::info!("Resetting stats");
            control.reset_stats();
        }
        was_running = now_running;
        let running = matches!(
            status.state,
            RunState::Spawning | RunState::Running | RunState::Stopping
        );
        if let Some(code) = crate::script::quit_requested() {
            if !quit.swap(true, Ordering::SeqCst) {
                log::info!("The script called locusta.quit({code}): stopping and writing reports");
            }
        }
        if let (Some(limit), Some(started)) = (cfg.run_time, status.started_at) {
            if running && started.elapsed() >= limit && !quit.swap(true, Ordering::SeqCst) {
                log::info!("--run-time limit reached, shutting down");
            }
        }
        let now = Instant::now();
        // --threshold-abort, as headless; not during a ramp that
        // --reset-stats will wipe.
        let resetting = cfg.reset_stats && status.state == RunState::Spawning;
        if running && !resetting && now >= next_abort_check && !quit.load(Ordering::SeqCst) {
            next_abort_check = now + headless::ABORT_CHECK_EVERY;
            if headless::threshold_abort(cfg, control) {
                quit.store(true, Ordering::SeqCst);
            }
        }
        if now >= next_csv {
            next_csv = (next_csv + CSV_EVERY).max(now);
            hdr_ok &= headless::write_hdr_log(&mut hdr, control, false);
            if let (Some(csv), true) = (csv.as_mut(), running) {
                match headless::write_csv(csv, control, false) {
                    // No second closed yet: try again just after the tick.
                    Ok(false) => next_csv = now + headless::CSV_RETRY,
                    Ok(true) => {}
                    Err(e) => {
                        quit.store(true, Ordering::SeqCst);
                        return Err(e);
                    }
                }
            }
        }
    }
    Ok((csv, hdr, hdr_ok, shape_failed))
}

/// The dashboard's view of a [`RunControl`].
struct Handle<'a> {
    control: &'a dyn RunControl,
    host: String,
    /// The load shape's current target, when a shape drives the run.
    shape: Option<std::sync::Arc<std::sync::Mutex<Option<crate::shape::Target>>>>,
    /// `--arrival-rate`: starting (and restarting) runs the open model.
    open_model: Option<crate::engine::OpenModel>,
}

impl RunHandle for Handle<'_> {
    fn start(&self, users: u32, rate: f64) {
        // With a shape, the shape starts the run (the dashboard's
        // autostart is only there to skip the start form).
        if self.shape.is_some() {
            return;
        }
        match self.open_model {
            Some(model) => self.control.start_open(model),
            None => self.control.start(users, rate),
        }
    }

    fn set_target(&self, users: u32, rate: f64) {
        self.control.set_target(users, rate);
    }

    fn stop(&self) {
        self.control.stop();
    }

    fn reset_stats(&self) {
        self.control.reset_stats();
    }

    fn snapshot(&self) -> DashboardSnapshot {
        let raw = self.control.snapshot();
        let mut snap = to_dashboard(&raw, &self.control.history(), &self.host);
        let stopped = snap.state == locusta_tui::RunState::Stopped;
        snap.shape = self.shape.as_ref().map(|t| {
            match *t.lock().unwrap_or_else(|p| p.into_inner()) {
                // A shape run's users stop when the shape ends (or on `x`).
                _ if stopped => "ended".into(),
                Some(target) => target.describe(),
                None => "starting".into(),
            }
        });
        snap.open_model = open_model_line(self.control, &raw);
        snap
    }
}

/// The status line's open-model numbers (`None` in closed runs).
fn open_model_line(
    control: &dyn RunControl,
    snap: &Snapshot,
) -> Option<locusta_tui::OpenModelLine> {
    let open = control.open_model()?;
    let now = std::time::SystemTime::now();
    Some(locusta_tui::OpenModelLine {
        target_rate: open.target_rate,
        achieved_rate: crate::report::open_model::achieved_rate(&open, snap.stats.start_time, now),
        dropped: open.iterations.dropped,
        corrected_p95_ms: open.corrected.aggregated.percentiles_ms[percentile_index(0.95)],
    })
}

fn percentile_index(q: f64) -> usize {
    PERCENTILES
        .iter()
        .position(|p| (p - q).abs() < 1e-9)
        .expect("a reported percentile")
}

fn stats_row(r: &EntryRow, p95: usize, p99: usize) -> locusta_tui::StatsRow {
    locusta_tui::StatsRow {
        method: r.method_str().to_string(),
        name: r.name.clone(),
        requests: r.num_requests,
        failures: r.num_failures,
        median_ms: r.median_ms,
        p95_ms: r.percentiles_ms[p95],
        p99_ms: r.percentiles_ms[p99],
        avg_ms: r.avg_ms,
        min_ms: r.min_ms,
        max_ms: r.max_ms,
        avg_size: r.avg_content_size,
        current_rps: r.current_rps,
        current_fail_per_sec: r.current_fail_per_sec,
    }
}

/// The engine's snapshot and history as the dashboard's plain data.
pub fn to_dashboard(snap: &Snapshot, history: &[HistoryPoint], host: &str) -> DashboardSnapshot {
    let (p95, p99) = (percentile_index(0.95), percentile_index(0.99));
    let stats = &snap.stats;
    DashboardSnapshot {
        state: match snap.status.state {
            RunState::Ready => locusta_tui::RunState::Ready,
            RunState::Spawning => locusta_tui::RunState::Spawning,
            RunState::Running => locusta_tui::RunState::Running,
            RunState::Stopping => locusta_tui::RunState::Stopping,
            RunState::Stopped => locusta_tui::RunState::Stopped,
        },
        users: snap.status.users,
        target_users: snap.status.target_users,
        spawn_rate: snap.status.spawn_rate,
        elapsed: snap.elapsed,
        host: host.to_string(),
        topology: match &snap.topology {
            Topology::Local { shards, io_driver } => locusta_tui::Topology::Local {
                shards: *shards,
                io_driver: io_driver.as_str().to_string(),
            },
            Topology::Master { workers } => locusta_tui::Topology::Master {
                workers: workers
                    .iter()
                    .map(|w| locusta_tui::WorkerRow {
                        id: w.id.clone(),
                        state: w.state.clone(),
                        users: w.users,
                        cpu_percent: w.cpu_percent,
                        memory_bytes: w.memory_bytes,
                    })
                    .collect(),
            },
        },
        rows: stats
            .entries
            .iter()
            .map(|r| stats_row(r, p95, p99))
            .collect(),
        aggregated: stats_row(&stats.aggregated, p95, p99),
        failures: stats
            .failures
            .iter()
            .map(|f| locusta_tui::FailureRow {
                method: f.method.as_str().to_string(),
                name: f.name.clone(),
                error: f.error.clone(),
                occurrences: f.occurrences,
            })
            .collect(),
        exceptions: stats
            .exceptions
            .iter()
            .map(|e| locusta_tui::ExceptionRow {
                count: e.count,
                message: e.message.clone(),
                traceback: e.traceback.clone(),
                nodes: e.nodes.clone(),
            })
            .collect(),
        history: history
            .iter()
            .map(|p| locusta_tui::HistoryPoint {
                unix_time: p.unix_time,
                users: p.user_count,
                rps: p.rps,
                fail_per_sec: p.fail_per_sec,
                p50_ms: p.p50_ms,
                p95_ms: p.p95_ms,
            })
            .collect(),
        open_model: None,
        shape: None,
    }
}

/// While the dashboard owns the terminal, whatever goes to stderr (log
/// lines, a panic message) is collected from a pipe instead of scribbling
/// over the screen; dropping this puts stderr back and prints it there.
struct StderrCapture {
    saved: RawFd,
    reader: Option<JoinHandle<Vec<u8>>>,
}

impl StderrCapture {
    /// Only when stderr is the terminal; `None` if it is not (or on error).
    fn begin() -> Option<StderrCapture> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let mut fds: [RawFd; 2] = [-1; 2];
        // SAFETY: plain fd calls; every fd opened here is closed or owned
        // by a File on each path.
        unsafe {
            if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                return None;
            }
            let saved = libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3);
            if saved < 0 || libc::dup2(fds[1], 2) < 0 {
                libc::close(fds[0]);
                libc::close(fds[1]);
                if saved >= 0 {
                    libc::close(saved);
                }
                return None;
            }
            libc::close(fds[1]);
            let mut pipe = std::fs::File::from_raw_fd(fds[0]);
            let reader = std::thread::Builder::new()
                .name("locusta-log".into())
                .spawn(move || {
                    let mut kept = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        match pipe.read(&mut chunk) {
                            Ok(0) => break,
                            Ok(n) => kept.extend_from_slice(&chunk[..n]),
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Err(_) => break,
                        }
                        if kept.len() > 2 * LOG_KEEP {
                            kept.drain(..kept.len() - LOG_KEEP);
                        }
                    }
                    kept
                });
            match reader {
                Ok(r) => Some(StderrCapture {
                    saved,
                    reader: Some(r),
                }),
                Err(_) => {
                    libc::dup2(saved, 2);
                    libc::close(saved);
                    None
                }
            }
        }
    }
}

impl Drop for StderrCapture {
    fn drop(&mut self) {
        // SAFETY: `saved` is ours; dup2 closes the pipe's write end, so the
        // reader sees end-of-file.
        unsafe {
            libc::dup2(self.saved, 2);
            libc::close(self.saved);
        }
        if let Some(Ok(kept)) = self.reader.take().map(JoinHandle::join) {
            let _ = std::io::stderr().write_all(&kept);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{IoDriver, RunStatus};
    use crate::report::test_view::sample_view;

    #[test]
    fn snapshots_convert_with_locusts_percentiles() {
        let snap = Snapshot {
            status: RunStatus {
                state: RunState::Running,
                users: 7,
                target_users: 10,
                spawn_rate: 2.5,
                started_at: None,
            },
            elapsed: Duration::from_secs(61),
            topology: Topology::Local {
                shards: 2,
                io_driver: IoDriver::IoUring,
            },
            stats: sample_view(),
        };
        let history = [HistoryPoint {
            unix_time: 5,
            user_count: 7,
            rps: 1.5,
            fail_per_sec: 0.5,
            p50_ms: 2.0,
            p95_ms: 9.0,
            p99_ms: 12.0,
        }];
        let d = to_dashboard(&snap, &history, "http://h:1");
        assert_eq!(d.state, locusta_tui::RunState::Running);
        assert_eq!((d.users, d.target_users, d.spawn_rate), (7, 10, 2.5));
        assert_eq!(d.host, "http://h:1");
        assert_eq!(
            d.topology,
            locusta_tui::Topology::Local {
                shards: 2,
                io_driver: "io_uring".into()
            }
        );
        assert_eq!(d.rows.len(), 3);
        let a = &d.rows[0];
        assert_eq!((a.method.as_str(), a.name.as_str()), ("GET", "/a"));
        assert_eq!((a.requests, a.failures), (10, 1));
        // sample_view's /a: p95 0.9 ms, p99 2.0 ms.
        assert_eq!((a.median_ms, a.p95_ms, a.p99_ms), (0.4, 0.9, 2.0));
        assert_eq!(
            (a.avg_size, a.current_rps, a.current_fail_per_sec),
            (1500.0, 2.0, 0.1)
        );
        assert_eq!(d.aggregated.method, "");
        assert_eq!(d.aggregated.requests, 15);
        assert_eq!(d.failures[0].error, "HTTP 503 Service Unavailable");
        assert_eq!(d.exceptions[0].nodes, ["local", "w1"]);
        assert_eq!(d.history[0].users, 7);
        assert_eq!(d.history[0].p95_ms, 9.0);
    }
}
