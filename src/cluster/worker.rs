//! The cluster worker: joins a master (locusta's or Locust's), runs the
//! users it is told to on a local engine, and reports.
//!
//! One loop on the main thread owns the DEALER socket: it answers the
//! master, sends a heartbeat every second and a stats report (Locust's
//! payload plus our HDR buckets) built from the engine's delta tap: every
//! three seconds to a Locust master, as Locust's workers do, every second
//! to a locusta master, whose history is then as smooth as a local run's. The engine starts at the first `spawn`, so a worker without
//! `-H` runs against the host the master names. If the master goes silent
//! the worker stops its users and keeps knocking until a master answers.
//!
//! Each report also carries what the script's `report_to_master`
//! listeners set (`worker_custom`).
//!
//! It does not own the engine (`engine`), the payload (`report`) or
//! sockets (`transport`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use crossbeam_channel::{unbounded, Receiver};

use super::open_report::OpenReportBuilder;
use super::protocol::{locusta_client_ready, MasterMessage, WorkerMessage};
use super::report::ReportBuilder;
use super::transport::{self, DealerSocket};
use super::warnings::Warnings;
use crate::config::{Role, RunConfig};
use crate::engine::{Controller, CpuMeter, Dispatcher, OpenModel, RunControl, RunState};
use crate::stats::{OpenDelta, StatsDelta};

const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Locust's `WORKER_REPORT_INTERVAL`, for a Locust master.
const REPORT_EVERY: Duration = Duration::from_secs(3);
/// A locusta master (its `ack` says so) gets a report every second, so its
/// per-second history and current RPS are as smooth as a local run's.
const REPORT_EVERY_LOCUSTA: Duration = Duration::from_secs(1);
/// `client_ready` is sent again this often until the master acks.
const CONNECT_RETRY: Duration = Duration::from_secs(5);
/// The master answers every heartbeat; this long without a word from a
/// locusta master and the worker stops its users and rejoins (a restarted
/// master gets its workers back within seconds).
const MASTER_SILENT: Duration = Duration::from_secs(6);
/// A busy Python master may answer late: Locust's own workers allow 60 s
/// (`MASTER_HEARTBEAT_TIMEOUT`), and so do we.
const LOCUST_MASTER_SILENT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

#[path = "worker_custom.rs"]
mod custom;
#[path = "worker_spawn.rs"]
mod spawn;

/// Run as a worker until the master says quit or a signal arrives.
pub fn run(cfg: &RunConfig) -> anyhow::Result<i32> {
    let Role::Worker {
        master_host,
        master_port,
    } = &cfg.role
    else {
        anyhow::bail!("cluster::worker::run needs --worker");
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())
            .context("cannot install the signal handler")?;
    }
    let ctx = transport::context();
    let (tap_tx, tap_rx) = unbounded();
    let (open_tap_tx, open_tap_rx) = unbounded();
    let mut worker = Worker {
        open_tap_tx,
        open_tap_rx,
        open: OpenReportBuilder::default(),
        open_model: None,
        cfg,
        node_id: transport::new_node_id(),
        engine: None,
        engine_host: None,
        tap_tx,
        warnings: Warnings::default(),
        tap_rx,
        builder: ReportBuilder::new(),
        state: "ready",
        classes_count: idle_counts(cfg),
        user_count: 0,
        last_spawn_timestamp: f64::NEG_INFINITY,
        warned_classes: false,
        dispatcher: Dispatcher::new(cfg.classes.clone()),
        cpu: CpuMeter::new(),
        sent: (0, 0),
        report_every: REPORT_EVERY,
        custom: custom::CustomAsk::default(),
    };
    log::info!(
        "Starting locusta worker {} as {}, master at {}",
        env!("CARGO_PKG_VERSION"),
        worker.node_id,
        transport::endpoint(master_host, *master_port)
    );
    let code = loop {
        let socket = DealerSocket::connect(&ctx, &worker.node_id, master_host, *master_port)?;
        match worker.join(&socket, &interrupted)? {
            Joined::Yes => {}
            Joined::Interrupted => break 0,
        }
        match worker.serve(&socket, &interrupted)? {
            Session::Quit => break 0,
            Session::Rejoin => continue,
        }
    };
    if let Some(engine) = worker.engine.take() {
        engine.shutdown();
    }
    log::info!(
        "Worker done: reported {} requests ({} failures) to the master",
        worker.sent.0,
        worker.sent.1
    );
    // locusta.quit(n) / os.exit(n), else locusta.process_exit_code, chose
    // the exit status.
    Ok(crate::script::quit_requested()
        .or_else(crate::script::process_exit_code)
        .unwrap_or(code))
}

enum Joined {
    Yes,
    Interrupted,
}

enum Session {
    Quit,
    /// Recreate the socket and join again (master lost, or `reconnect`).
    Rejoin,
}

struct Worker<'a> {
    cfg: &'a RunConfig,
    node_id: String,
    engine: Option<Controller>,
    /// The host `engine` loads (the master's, from a spawn).
    engine_host: Option<String>,
    /// Handed to each engine started (a new host starts a new one).
    tap_tx: crossbeam_channel::Sender<StatsDelta>,
    /// What the master sends wrong, logged at most once per kind per 5 s.
    warnings: Warnings,
    tap_rx: Receiver<StatsDelta>,
    builder: ReportBuilder,
    /// The engine's open-model deltas (`EngineConfig::open_tap`), summed
    /// into `open` until the next report.
    open_tap_tx: crossbeam_channel::Sender<OpenDelta>,
    open_tap_rx: Receiver<OpenDelta>,
    open: OpenReportBuilder,
    /// This worker's share of an open-model run while one runs.
    open_model: Option<OpenModel>,
    /// Locust's worker state words, sent in heartbeats.
    state: &'static str,
    /// Per class as the master named them (what we echo back).
    classes_count: Vec<(String, u32)>,
    user_count: u32,
    last_spawn_timestamp: f64,
    warned_classes: bool,
    dispatcher: Dispatcher,
    cpu: CpuMeter,
    /// Requests and failures reported to the master(s), for the exit line.
    sent: (u64, u64),
    report_every: Duration,
    /// The script's report_to_master data for the next report.
    custom: custom::CustomAsk,
}

fn idle_counts(cfg: &RunConfig) -> Vec<(String, u32)> {
    cfg.classes.iter().map(|c| (c.name.clone(), 0)).collect()
}

impl Worker<'_> {
    fn send(&self, socket: &DealerSocket, msg: WorkerMessage) {
        socket.send(&msg.to_message(&self.node_id));
    }

    /// Send `client_ready` until the master acks.
    fn join(&mut self, socket: &DealerSocket, interrupted: &AtomicBool) -> anyhow::Result<Joined> {
        let mut attempts = 0u32;
        loop {
            self.send(
                socket,
                WorkerMessage::ClientReady(locusta_client_ready(self.cfg.shards)),
            );
            attempts += 1;
            if attempts == 2 || attempts.is_multiple_of(12) {
                log::warn!(
                    "No answer from the master yet: still trying (every {}s)",
                    CONNECT_RETRY.as_secs()
                );
            }
            let deadline = Instant::now() + CONNECT_RETRY;
            while Instant::now() < deadline {
                if interrupted.load(Ordering::Relaxed) {
                    return Ok(Joined::Interrupted);
                }
                // Requests of a swarm whose master is gone count nowhere.
                while self.tap_rx.try_recv().is_ok() {}
                while self.open_tap_rx.try_recv().is_ok() {}
                if !socket.poll(POLL) {
                    continue;
                }
                while let Some(msg) = socket.try_recv() {
                    match msg.and_then(|m| MasterMessage::parse(&m)) {
                        Ok(MasterMessage::Ack {
                            index,
                            locusta_protocol,
                        }) => {
                            self.report_every = if locusta_protocol.is_some() {
                                REPORT_EVERY_LOCUSTA
                            } else {
                                REPORT_EVERY
                            };
                            log::info!("Connected to the master as worker index {index}");
                            self.builder = ReportBuilder::new();
                            self.open = OpenReportBuilder::default();
                            return Ok(Joined::Yes);
                        }
                        Ok(MasterMessage::Refused { reason }) => {
                            anyhow::bail!("the master refused this worker: {reason}")
                        }
                        Ok(other) => log::debug!("ignored {other:?} while joining"),
                        Err(e) => self.warnings.warn("malformed message", Instant::now(), || {
                            format!("dropped a malformed message from the master: {e}")
                        }),
                    }
                }
            }
        }
    }

    /// Serve a joined master until it quits, vanishes, or we are told to stop.
    fn serve(
        &mut self,
        socket: &DealerSocket,
        interrupted: &AtomicBool,
    ) -> anyhow::Result<Session> {
        let mut last_heard = Instant::now();
        let mut next_heartbeat = Instant::now();
        let mut next_report = Instant::now() + self.report_every;
        loop {
            if socket.poll(POLL) {
                while let Some(msg) = socket.try_recv() {
                    last_heard = Instant::now();
                    let parsed = match msg.and_then(|m| MasterMessage::parse(&m)) {
                        Ok(m) => m,
                        Err(e) => {
                            self.warnings.warn("malformed message", Instant::now(), || {
                                format!("dropped a malformed message from the master: {e}")
                            });
                            continue;
                        }
                    };
                    if let Some(end) = self.handle(socket, parsed)? {
                        return Ok(end);
                    }
                }
            }
            self.drain_tap();
            if interrupted.load(Ordering::Relaxed) {
                log::info!("Got a stop signal: stopping users and leaving the master");
                self.finish(socket);
                return Ok(Session::Quit);
            }
            if let Some(code) = crate::script::quit_requested() {
                // Locust's runner.quit() on a worker: its users stop, the
                // worker says quit and exits; the master goes on with the
                // other workers.
                log::info!(
                    "The script called locusta.quit({code}): stopping users and leaving the master"
                );
                self.finish(socket);
                return Ok(Session::Quit);
            }
            if self.state == "stopping"
                && self
                    .engine
                    .as_ref()
                    .is_none_or(|e| e.status().state == RunState::Stopped)
            {
                self.stopped(socket);
            }
            let now = Instant::now();
            if now >= next_heartbeat {
                next_heartbeat = now + HEARTBEAT_EVERY;
                self.warnings.flush(now, false);
                let (cpu_percent, memory_bytes) = (self.cpu.percent(), rss_bytes());
                let state = self.state.to_string();
                self.send(
                    socket,
                    WorkerMessage::Heartbeat {
                        state,
                        cpu_percent,
                        memory_bytes,
                    },
                );
            }
            if now >= next_report {
                next_report = now + self.report_every;
                self.report(socket);
            }
            let silent_limit = if self.report_every == REPORT_EVERY_LOCUSTA {
                MASTER_SILENT
            } else {
                LOCUST_MASTER_SILENT
            };
            if last_heard.elapsed() > silent_limit {
                log::warn!(
                    "The master has been silent for {}s: stopping users and rejoining",
                    silent_limit.as_secs()
                );
                self.stop_users();
                self.state = "ready";
                return Ok(Session::Rejoin);
            }
        }
    }

    fn handle(
        &mut self,
        socket: &DealerSocket,
        msg: MasterMessage,
    ) -> anyhow::Result<Option<Session>> {
        match msg {
            MasterMessage::Spawn {
                timestamp,
                user_classes_count,
                host,
                open_model,
                ..
            } => {
                self.send(socket, WorkerMessage::Spawning);
                if timestamp <= self.last_spawn_timestamp {
                    log::info!("Discarded a spawn message not newer than the previous one");
                    return Ok(None);
                }
                self.last_spawn_timestamp = timestamp;
                match open_model {
                    Some(share) => self.spawn_open(socket, share, host.as_deref()),
                    None => self.spawn(socket, user_classes_count, host.as_deref()),
                }
            }
            MasterMessage::Stop => {
                log::info!("The master asked to stop");
                self.stop_users();
                self.state = "stopping";
            }
            MasterMessage::Quit => {
                log::info!("Got quit message from master, shutting down...");
                self.finish(socket);
                return Ok(Some(Session::Quit));
            }
            MasterMessage::Reconnect => {
                log::warn!("The master asked this worker to reconnect");
                return Ok(Some(Session::Rejoin));
            }
            MasterMessage::Refused { reason } => {
                anyhow::bail!("the master refused this worker: {reason}")
            }
            MasterMessage::SpawningComplete { user_count } => {
                log::info!("The master reports all {user_count} users spawned");
            }
            MasterMessage::Heartbeat | MasterMessage::Ack { .. } => {}
            MasterMessage::Other(kind) => {
                self.warnings
                    .warn("unknown message type", Instant::now(), || {
                        format!("dropped a message of unknown type `{kind}` from the master")
                    })
            }
        }
        Ok(None)
    }

    fn stop_users(&mut self) {
        if let Some(engine) = &self.engine {
            engine.stop();
        }
        self.open_model = None;
        self.user_count = 0;
        self.classes_count = idle_counts(self.cfg);
    }

    /// The users are down after a `stop`: last stats, `client_stopped`,
    /// then ready for the next swarm (boomer's order; no sleep).
    fn stopped(&mut self, socket: &DealerSocket) {
        self.drain_tap();
        self.report(socket);
        self.send(socket, WorkerMessage::ClientStopped);
        self.send(
            socket,
            WorkerMessage::ClientReady(locusta_client_ready(self.cfg.shards)),
        );
        self.state = "ready";
        self.last_spawn_timestamp = f64::NEG_INFINITY;
    }

    /// Quit or a signal: stop users, send what they did, say goodbye.
    fn finish(&mut self, socket: &DealerSocket) {
        self.stop_users();
        if let Some(engine) = &self.engine {
            let grace =
                self.cfg.stop_timeout + crate::engine::ON_STOP_LIMIT + Duration::from_secs(2);
            if !engine.wait_for(RunState::Stopped, grace) {
                log::warn!("users did not stop within {grace:?}");
            }
        }
        self.drain_tap();
        self.report(socket);
        self.send(socket, WorkerMessage::Quit);
        // Let libzmq put the last messages on the wire (linger is 0).
        std::thread::sleep(Duration::from_millis(200));
    }

    fn drain_tap(&mut self) {
        while let Ok(delta) = self.tap_rx.try_recv() {
            self.builder.add(&delta);
        }
        while let Ok(delta) = self.open_tap_rx.try_recv() {
            self.open.add(&delta);
        }
    }

    fn report(&mut self, socket: &DealerSocket) {
        for (msg, traceback, count) in self.builder.take_exceptions() {
            self.send(
                socket,
                WorkerMessage::Exception {
                    msg,
                    traceback,
                    count,
                },
            );
        }
        if let (Some(_), Some(engine)) = (self.open_model, &self.engine) {
            // The pool grows as iterations need users.
            self.user_count = engine.status().users;
        }
        let now = SystemTime::now();
        let mut report = self
            .builder
            .take_report(now, self.classes_count.clone(), self.user_count);
        if let Some(engine) = &self.engine {
            report.task_runs = engine.task_runs();
        }
        // Only when the open model counted something: a closed run's
        // report stays Locust's payload.
        report.open_model = self.open.take(now);
        let scripted = matches!(self.cfg.workload, crate::engine::Workload::Script { .. });
        report.custom = self.custom.take(
            self.engine.as_ref(),
            scripted,
            &self.node_id,
            &mut self.warnings,
        );
        self.sent.0 += report.stats_total.num_requests;
        self.sent.1 += report.stats_total.num_failures;
        self.send(socket, WorkerMessage::Stats(Box::new(report)));
    }
}

/// Resident memory, as Locust's `current_memory_usage`.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}
