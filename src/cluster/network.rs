//! The master's network thread: owns the ROUTER socket, the worker list,
//! the ramp and the merged stats, and publishes status for front ends
//! ([`super::master::MasterController`]). It polls the socket with a short
//! timeout, serves commands in between, and never blocks on a worker.
//!
//! It does not own the socket setup (`transport`), message shapes
//! (`protocol`) or the worker bookkeeping rules (`nodes`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;

use super::decoder::Decoder;
use super::master::{lock, MasterCmd, Shared, MAX_KEPT_TASK_ROWS};
use super::nodes::{NodeState, Nodes, StopWait};
use super::protocol::{MasterMessage, ProtocolError, WorkerMessage};
use super::report_checks::{MAX_REPORT_COUNT, MAX_RUN_COUNT};
use super::report_decode::{decode_from_worker, FromWorker};
use super::transport::RouterSocket;
use super::warnings::Warnings;
use crate::engine::{per_shard, ClassSpec, Dispatcher, OpenModel, RunState, CPU_WARNING_PERCENT};
use crate::stats::{Delta, DeltaException, SparseHistogram};

/// Longest the network thread sleeps in `poll`: the ramp and commands are
/// served at least this often.
const POLL: Duration = Duration::from_millis(50);
/// How long `shutdown` waits for workers' last reports after `quit`.
const QUIT_GRACE: Duration = Duration::from_secs(1);

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The network thread's state.
pub(super) struct Network {
    pub(super) router: RouterSocket,
    pub(super) commands: Receiver<MasterCmd>,
    pub(super) shared: Arc<Mutex<Shared>>,
    pub(super) nodes: Nodes,
    pub(super) dispatcher: Dispatcher,
    pub(super) classes: Vec<ClassSpec>,
    pub(super) host: Option<String>,
    pub(super) stop_timeout: f64,
    /// The whole run's open model while one runs (workers get shares).
    pub(super) open_model: Option<OpenModel>,
    /// Users asked for, the spawn rate, and users handed out so far.
    pub(super) target: u32,
    pub(super) rate: f64,
    pub(super) dispatched: u32,
    pub(super) next_ramp: Option<Instant>,
    pub(super) stop_deadline: Option<Instant>,
    pub(super) last_spawn_timestamp: f64,
    /// Workers changed: send everyone their counts again.
    pub(super) redispatch: bool,
    /// Refused request types warned about (at most `MAX_WARNED_NAMES`).
    pub(super) warned: HashSet<String>,
    /// What peers send wrong, logged at most once per kind per 5 s.
    pub(super) warnings: Warnings,
    pub(super) decoder: Decoder,
    /// The script's worker_report listeners, if it has any.
    pub(super) report_listeners: Option<super::master_report::ReportListeners>,
}

#[path = "network_open.rs"]
mod open;
use super::report::{unknown_type_line, MAX_WARNED_NAMES};

/// A peer that has not joined says `client_ready` (a few dozen bytes) or
/// things that are dropped anyway: anything bigger from it is dropped
/// unread, so a stranger cannot make the master spend time decoding.
const MAX_STRANGER_MESSAGE: usize = 64 << 10;

impl Network {
    pub(super) fn run(mut self) {
        let mut next_second = Instant::now() + Duration::from_secs(1);
        loop {
            let now = Instant::now();
            let mut wait = POLL.min(next_second.saturating_duration_since(now));
            if let Some(t) = self.next_ramp {
                wait = wait.min(t.saturating_duration_since(now));
            }
            if self.router.poll(wait) {
                // Bounded, so a flood of reports cannot starve commands.
                for _ in 0..1000 {
                    let Some((from, payload)) = self.router.try_recv_raw() else {
                        break;
                    };
                    self.receive(&from, payload);
                }
            }
            self.take_decoded();
            while let Ok(cmd) = self.commands.try_recv() {
                if let MasterCmd::Shutdown = cmd {
                    self.quit_workers();
                    return;
                }
                self.command(cmd);
            }
            let now = Instant::now();
            if self.next_ramp.is_some_and(|t| now >= t) {
                self.ramp_step(now);
            }
            if now >= next_second {
                next_second += Duration::from_secs(1);
                if next_second < now {
                    next_second = now + Duration::from_secs(1);
                }
                self.every_second(now);
            }
            if std::mem::take(&mut self.redispatch)
                && matches!(self.state(), RunState::Spawning | RunState::Running)
            {
                self.dispatch();
            }
            self.check_stopped(now);
            self.publish();
        }
    }

    fn state(&self) -> RunState {
        lock(&self.shared).status.state
    }

    fn set_state(&self, state: RunState) {
        lock(&self.shared).status.state = state;
    }

    fn publish(&self) {
        let mut shared = lock(&self.shared);
        shared.status.users = self.nodes.user_count();
        shared.status.target_users = self.target;
        shared.status.spawn_rate = self.rate;
        shared.workers = self.nodes.infos();
        shared.python_workers = self
            .nodes
            .iter()
            .filter(|n| !n.locusta && n.state != NodeState::Missing)
            .map(|n| n.id.clone())
            .collect();
    }

    fn send(&self, msg: MasterMessage, to: &str) {
        self.router.send(&msg.to_message(to));
    }

    fn command(&mut self, cmd: MasterCmd) {
        let state = self.state();
        let running = matches!(state, RunState::Spawning | RunState::Running);
        match cmd {
            MasterCmd::StartOpen(model) if !running => self.start_open(model, state),
            MasterCmd::StartOpen(_) => {
                log::warn!("an open-model run cannot start while a run is going: stop it first")
            }
            MasterCmd::SetArrivalRate(rate) => self.set_arrival_rate(rate),
            MasterCmd::Start { users, rate } if !running => {
                self.open_model = None;
                self.fresh_stats(state, None);
                if self.nodes.dispatch_order().is_empty() {
                    log::warn!(
                        "Starting with no worker connected: users go to workers as they join"
                    );
                }
                self.retarget(users, rate);
            }
            MasterCmd::Start { users, rate } | MasterCmd::SetTarget { users, rate } => {
                if running {
                    self.retarget(users, rate);
                }
            }
            MasterCmd::SetClasses(only) => {
                // Workers get the new per-class counts of the users
                // dispatched so far (their dropped classes ramp down).
                self.dispatcher =
                    Dispatcher::new(crate::engine::subset(&self.classes, only.as_deref()));
                self.redistribute();
            }
            MasterCmd::Stop if running => self.stop_workers(),
            MasterCmd::Stop => {}
            MasterCmd::ResetStats => {
                let mut shared = lock(&self.shared);
                shared.stats.reset();
                shared.reset_task_runs();
                if let Some(open) = shared.open.as_mut() {
                    open.reset();
                }
            }
            MasterCmd::Shutdown => {}
        }
    }

    /// A new run's stats (and its open-model stats, or none).
    fn fresh_stats(&self, state: RunState, open: Option<crate::stats::OpenModelStats>) {
        let mut shared = lock(&self.shared);
        if state == RunState::Stopped {
            // Keeps the --hdr-log tap (and what it queued).
            shared.stats.renew();
            // Workers' engines count a new run from zero.
            shared.task_runs.clear();
        } else {
            shared.stats.reset();
            shared.reset_task_runs();
        }
        shared.open = open;
        shared.status.started_at = Some(Instant::now());
    }

    fn retarget(&mut self, users: u32, rate: f64) {
        self.target = users;
        self.rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        self.set_state(RunState::Spawning);
        self.next_ramp = Some(Instant::now());
        log::info!(
            "Ramping to {users} users at a rate of {:.2} per second",
            self.rate
        );
    }

    /// One step of the ramp: Locust adds `max(1, floor(rate))` users per
    /// step, steps `step / rate` seconds apart.
    fn ramp_step(&mut self, now: Instant) {
        let step = (self.rate.floor() as u32).max(1);
        self.dispatched = if self.dispatched < self.target {
            (self.dispatched + step).min(self.target)
        } else {
            self.dispatched.saturating_sub(step).max(self.target)
        };
        self.dispatch();
        if self.dispatched == self.target {
            self.next_ramp = None;
            self.set_state(RunState::Running);
            for id in self.nodes.dispatch_order() {
                let user_count = self.target;
                self.send(MasterMessage::SpawningComplete { user_count }, &id);
            }
            let counts = self.dispatcher.counts(self.target);
            log::info!(
                "All users spawned: {} on {} workers",
                crate::engine::format_class_counts(&self.classes, &counts),
                self.nodes.connected()
            );
        } else {
            self.next_ramp = Some(now + Duration::from_secs_f64(f64::from(step) / self.rate));
        }
    }

    /// Send every worker that takes users its absolute per-class counts for
    /// `self.dispatched` users in all (open model: its share of the rate).
    fn dispatch(&mut self) {
        if let Some(model) = self.open_model {
            return self.dispatch_open(model);
        }
        let order = self.nodes.dispatch_order();
        if order.is_empty() {
            return;
        }
        let counts = self.dispatcher.counts(self.dispatched);
        let rows = per_shard(&counts, order.len());
        // Strictly rising: a worker drops a spawn not newer than the last.
        let timestamp = unix_now().max(self.last_spawn_timestamp + 1e-6);
        self.last_spawn_timestamp = timestamp;
        for (id, row) in order.iter().zip(rows) {
            let user_classes_count = self
                .classes
                .iter()
                .zip(row)
                .map(|(c, n)| (c.name.clone(), n))
                .collect();
            let spawn = MasterMessage::Spawn {
                timestamp,
                user_classes_count,
                host: self.host.clone(),
                stop_timeout: Some(self.stop_timeout),
                open_model: None,
            };
            self.send(spawn, id);
        }
    }

    /// Give the current users out again (a worker joined, left or
    /// vanished) once the messages at hand are handled: a hundred workers
    /// joining at once cost one round of `spawn`s, not a hundred.
    fn redistribute(&mut self) {
        self.redispatch = true;
    }

    fn stop_workers(&mut self) {
        self.next_ramp = None;
        // The open model's stats stay (the reports read them after).
        self.open_model = None;
        self.dispatched = 0;
        self.set_state(RunState::Stopping);
        let ids: Vec<String> = self.nodes.dispatch_order();
        for id in &ids {
            self.send(MasterMessage::Stop, id);
            if let Some(n) = self.nodes.get_mut(id) {
                n.stop_wait = StopWait::ClientStopped;
            }
        }
        // Python workers report the last requests up to 3 s later.
        self.stop_deadline =
            Some(Instant::now() + Duration::from_secs_f64(self.stop_timeout + 4.0));
        log::info!("Stopping {} workers", ids.len());
    }

    fn check_stopped(&mut self, now: Instant) {
        if self.state() != RunState::Stopping {
            return;
        }
        let timed_out = self.stop_deadline.is_some_and(|d| now >= d);
        if timed_out {
            for n in self
                .nodes
                .iter_mut()
                .filter(|n| n.stop_wait != StopWait::Nothing)
            {
                log::warn!("worker {} did not confirm the stop in time", n.id);
                n.stop_wait = StopWait::Nothing;
            }
        }
        if !self.nodes.waiting_for_stop() {
            self.stop_deadline = None;
            self.set_state(RunState::Stopped);
        }
    }

    fn every_second(&mut self, now: Instant) {
        let missing = self.nodes.check_liveness(now);
        for id in &missing {
            log::warn!(
                "Worker {id} missing: no heartbeat for 3 s; its users go to the other workers"
            );
        }
        if !missing.is_empty() {
            self.redistribute();
        }
        self.warnings.flush(now, false);
        let users = self.nodes.user_count();
        let now = SystemTime::now();
        let mut shared = lock(&self.shared);
        shared.stats.tick(now, users);
        if let Some(open) = shared.open.as_mut() {
            open.tick(now, users);
        }
    }

    fn quit_workers(&mut self) {
        let ids: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.state != NodeState::Missing)
            .map(|n| n.id.clone())
            .collect();
        for id in &ids {
            self.send(MasterMessage::Quit, id);
        }
        // Their last reports and `quit` replies; nothing waits on them.
        let deadline = Instant::now() + QUIT_GRACE;
        while !ids.is_empty()
            && (self.nodes.connected() > 0 || self.decoder.busy())
            && Instant::now() < deadline
        {
            if self.router.poll(POLL) {
                while let Some((from, payload)) = self.router.try_recv_raw() {
                    self.receive(&from, payload);
                }
            }
            self.take_decoded();
        }
        self.warnings.flush(Instant::now(), true);
    }

    /// Decode and handle one message, unless it is too big for a peer
    /// that has not joined.
    fn receive(&mut self, from: &str, payload: Result<Vec<u8>, ProtocolError>) {
        let now = Instant::now();
        let payload = match payload {
            Ok(p) => p,
            Err(e) => return self.malformed(from, &e, now),
        };
        if payload.len() > MAX_STRANGER_MESSAGE && self.nodes.get_mut(from).is_none() {
            let size = payload.len();
            self.warnings.warn("large message from a stranger", now, || {
                format!("dropped a message of {size} bytes unread from {from}, which has not joined")
            });
            return;
        }
        if self.decoder.must_queue(from, payload.len()) {
            let size = payload.len();
            if !self.decoder.submit(from, payload) {
                self.warnings.warn("decoder busy", now, || {
                    format!("dropped a message of {size} bytes from {from}: too many large messages waiting to be decoded")
                });
            }
            return;
        }
        self.decoded(from, decode_from_worker(&payload), now);
    }

    fn decoded(&mut self, from: &str, msg: FromWorker, now: Instant) {
        match msg {
            Ok(parsed) => self.handle(from, parsed),
            Err(e) => self.malformed(from, &e, now),
        }
    }

    /// Handle what the decoding thread has finished.
    fn take_decoded(&mut self) {
        while let Some((from, msg)) = self.decoder.try_recv() {
            self.decoded(&from, msg, Instant::now());
        }
    }

    fn malformed(&mut self, from: &str, e: &ProtocolError, now: Instant) {
        self.warnings.warn("malformed message", now, || {
            format!("dropped a malformed message from {from}: {e}")
        });
    }

    fn handle(&mut self, from: &str, parsed: Result<WorkerMessage, ProtocolError>) {
        let parsed = match parsed {
            Ok(m) => m,
            Err(e) => {
                return self.warnings.warn("bad message", Instant::now(), || {
                    format!("dropped a malformed message from {from}: {e}")
                })
            }
        };
        let now = Instant::now();
        if let WorkerMessage::ClientReady(version) = parsed {
            self.client_ready(from, version, now);
            return;
        }
        let Some(node) = self.nodes.get_mut(from) else {
            self.message_from_unknown(from, &parsed);
            return;
        };
        node.last_seen = now;
        match parsed {
            WorkerMessage::ClientReady(_) => unreachable!("handled above"),
            WorkerMessage::Heartbeat {
                state,
                cpu_percent,
                memory_bytes,
            } => {
                let came_back = node.state == NodeState::Missing;
                node.state = NodeState::from_heartbeat(&state);
                // A share of the worker's CPUs, as Locust reads it; a claim
                // outside 0..=100 is shown clamped, never as 309 digits.
                let claimed = cpu_percent;
                let cpu_percent = claimed.clamp(0.0, 100.0);
                node.cpu_percent = cpu_percent;
                node.memory_bytes = memory_bytes.unwrap_or(node.memory_bytes);
                if cpu_percent > CPU_WARNING_PERCENT && !node.cpu_warned {
                    node.cpu_warned = true;
                    log::warn!(
                        "Worker {from} is at {cpu_percent:.0}% CPU: its response times may be inflated by the load box itself; add workers (warned once per worker)"
                    );
                }
                self.send(MasterMessage::Heartbeat, from);
                if claimed != cpu_percent {
                    self.warnings.warn("CPU out of range", now, || {
                        format!("Worker {from} claims {claimed:.3e}% CPU, outside 0 to 100: counted as {cpu_percent:.0}%")
                    });
                }
                if came_back {
                    log::info!("Worker {from} is back (heartbeat, {state})");
                    self.redistribute();
                }
            }
            WorkerMessage::Spawning => node.state = NodeState::Spawning,
            WorkerMessage::SpawningComplete { user_count, .. } => {
                node.state = NodeState::Running;
                node.users = user_count;
            }
            WorkerMessage::Stats(mut report) => {
                node.users = report.user_count;
                if node.stop_wait == StopWait::StatsAfterStop {
                    node.stop_wait = StopWait::Nothing;
                }
                if node.state == NodeState::Stopped {
                    node.users = 0;
                }
                self.merge_report(from, &mut report, now);
                if let Some(listeners) = &self.report_listeners {
                    listeners.push(from, &report.custom, &mut self.warnings, now);
                }
            }
            WorkerMessage::Exception {
                msg,
                traceback,
                count,
            } => {
                if count > MAX_REPORT_COUNT {
                    self.warnings.warn("bad report", now, || {
                        format!(
                            "dropped an exception from worker {from} claiming {count} occurrences"
                        )
                    });
                    return;
                }
                let mut delta: Delta<SparseHistogram> = Delta::empty(SystemTime::now());
                delta.exceptions.push(DeltaException {
                    message: msg,
                    traceback,
                    count,
                    node: Some(from.into()),
                });
                lock(&self.shared).stats.merge(&mut delta);
            }
            WorkerMessage::ClientStopped => {
                node.state = NodeState::Stopped;
                node.users = 0;
                node.stop_wait = match (node.stop_wait, node.locusta) {
                    (StopWait::ClientStopped, false) => StopWait::StatsAfterStop,
                    _ => StopWait::Nothing,
                };
                log::info!("Worker {from} reported that it has stopped");
                if self.state() != RunState::Stopping {
                    self.redistribute();
                }
            }
            WorkerMessage::Quit => {
                self.nodes.remove(from);
                log::info!("Worker {from} quit; {} connected", self.nodes.connected());
                self.redistribute();
            }
            WorkerMessage::Logs(lines) => {
                for line in lines {
                    log::debug!("[{from}] {line}");
                }
            }
            WorkerMessage::Other(kind) => self.warnings.warn("unknown message type", now, || {
                format!("dropped a message of unknown type `{kind}` from {from}")
            }),
        }
    }

    fn message_from_unknown(&mut self, from: &str, msg: &WorkerMessage) {
        match msg {
            // Locust asks such a worker to quit; ours then rejoins.
            WorkerMessage::Spawning | WorkerMessage::SpawningComplete { .. } => {
                log::warn!("Got a spawn message from unknown worker {from}: asking it to quit");
                self.send(MasterMessage::Quit, from);
            }
            WorkerMessage::Quit => {}
            // A restarted master must not count a previous run's requests.
            _ => log::debug!("dropped a message from unknown worker {from}"),
        }
    }

    /// Merge a report whose numbers can be true; drop any other whole
    /// (one rate-limited warning names the worker).
    fn merge_report(&mut self, from: &str, report: &mut super::report::WorkerReport, now: Instant) {
        let checked = report.check().and_then(|()| {
            let run = lock(&self.shared).stats.total_requests();
            match run.checked_add(report.request_count()) {
                Some(n) if n <= MAX_RUN_COUNT => Ok(()),
                _ => Err(format!("the run's request count ({run}) would pass 2^62")),
            }
        });
        if let Err(problem) = checked {
            self.warnings.warn("bad report", now, || {
                format!("dropped a report from worker {from}: {problem}")
            });
            return;
        }
        let (mut delta, unknown) = report.take_delta(SystemTime::now());
        for name in unknown {
            // Each name once while few, then rate-limited: no set that grows with a peer.
            if self.warned.len() < MAX_WARNED_NAMES && self.warned.insert(name.clone()) {
                log::warn!("{}", unknown_type_line(from, &name));
            } else if !self.warned.contains(&name) {
                let line = || unknown_type_line(from, &name);
                self.warnings.warn("request type", now, line);
            }
        }
        let mut shared = lock(&self.shared);
        shared.stats.merge(&mut delta);
        if let Some(part) = &report.open_model {
            if let Err(problem) = open::merge_open(part, &mut shared) {
                self.warnings.warn("bad report", now, || {
                    format!("dropped the open-model part of a report from worker {from}: {problem}")
                });
            }
        }
        if !report.task_runs.is_empty() && !shared.keep_task_runs(from, &report.task_runs) {
            drop(shared);
            self.warnings.warn("task counts", now, || {
                format!(
                    "task counts from worker {from} not kept: the master keeps at most \
                     {MAX_KEPT_TASK_ROWS} rows of them"
                )
            });
        }
    }
}
