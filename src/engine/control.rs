//! The control thread: owns the run's state machine, the spawn ramp and the
//! cumulative stats.
//!
//! It tells each shard how many users of each class to hold (see
//! `dispatch`; ramped at the spawn rate), merges the shards' one-second deltas into [`RunStats`], and
//! closes a one-second history window every second. A stop ends in
//! order: every shard reports its users gone (with its last delta), then
//! shard 0 fires the script's test_stop on the merged, final stats, and
//! only then is the run `Stopped`. Front ends never talk to
//! shards; they call the `Controller`, which sends [`ControlCmd`]s here.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{select, tick, Receiver, Sender};

use super::control_open::OpenSplit;
use super::dispatch::{per_shard, subset, ClassSpec, Dispatcher};
use super::shard::{ShardCmd, ShardReport};
use super::{OpenModel, RunState, RunStatus, TaskRuns};
use crate::stats::{OpenDelta, OpenModelStats, RunStats, StatsDelta};

/// Granularity of the spawn ramp.
const SPAWN_TICK: Duration = Duration::from_millis(100);
/// Close a history window anyway if not every shard reported for this long.
const WINDOW_BACKSTOP: Duration = Duration::from_millis(1500);

pub(crate) enum ControlCmd {
    Start {
        users: u32,
        rate: f64,
    },
    SetTarget {
        users: u32,
        rate: f64,
    },
    /// A cluster worker: hold exactly these users per class, at once (the
    /// master does the ramping).
    SetCounts(Vec<u32>),
    /// Start an open-model run (arrival rate, lazily created users).
    StartOpen(OpenModel),
    /// A running open model's new total rate (iterations/s; 0 pauses).
    SetArrivalRate(f64),
    /// Only these classes run (a load shape's list; `None`: all): the
    /// ramp's dispatcher shares users over them, the others go to 0.
    SetClasses(Option<Vec<String>>),
    Stop,
    ResetStats,
    /// A cluster worker's report is due: shard 0 runs report_to_master.
    ReportToMaster(super::shard::ReportToMaster),
    Shutdown,
}

pub(crate) struct Control {
    pub shards: Vec<Sender<ShardCmd>>,
    pub classes: Vec<ClassSpec>,
    pub reports: Receiver<ShardReport>,
    pub commands: Receiver<ControlCmd>,
    pub stats: Arc<Mutex<RunStats>>,
    pub status: Arc<Mutex<RunStatus>>,
    pub stop_timeout: Duration,
    /// Per shard, its latest task counts (scripts).
    pub task_runs: Arc<Mutex<Vec<Vec<TaskRuns>>>>,
    /// A copy of every merged shard delta goes here (cluster workers).
    pub delta_tap: Option<Sender<StatsDelta>>,
    /// The open model's table (`None` unless the current or last run was
    /// an open one), and where copies of its deltas go (cluster workers).
    pub open: Arc<Mutex<Option<OpenModelStats>>>,
    pub open_tap: Option<Sender<OpenDelta>>,
    /// Per shard, its user tasks alive at its last report.
    pub live_users: std::cell::RefCell<Vec<u32>>,
    /// The current (or last) run is an open-model one.
    pub open_running: std::cell::Cell<bool>,
    /// Tells shards stuck in Lua code that the run must end (their command
    /// channel is not read while Lua runs).
    pub run_stop: std::sync::Arc<crate::script::limits::RunStop>,
}

pub(super) struct Ramp {
    pub(super) target: u32,
    rate: f64,
    /// Users asked for so far; fractional so slow rates still progress.
    pub(super) current: f64,
    /// Per shard, the class counts last sent.
    pub(super) sent: Vec<Vec<u32>>,
    dispatcher: Dispatcher,
}

impl Control {
    pub fn run(self) {
        let spawn_tick = tick(SPAWN_TICK);
        let second = tick(Duration::from_secs(1));
        let mut ramp = Ramp {
            target: 0,
            rate: 1.0,
            current: 0.0,
            sent: vec![Vec::new(); self.shards.len()],
            dispatcher: Dispatcher::new(self.classes.clone()),
        };
        let mut epoch = 0u64;
        let mut stopped_shards = vec![false; self.shards.len()];
        // Every shard stopped; shard 0 runs the test_stop listeners.
        let mut test_stop_pending = false;
        // A history window closes once every shard has reported into it, so
        // each second holds one report per shard (a timer alone would catch
        // zero or two and make per-second rates jitter).
        let mut reported = vec![false; self.shards.len()];
        let mut window_closed = Instant::now();
        let mut last_tick = Instant::now();
        // When users still running after a stop get killed (for the log
        // line Locust prints then).
        let mut kill_at: Option<Instant> = None;
        let mut split = OpenSplit { shares: Vec::new() };
        let mut cpu = super::cpu::CpuWatch::new();
        loop {
            select! {
                recv(self.commands) -> cmd => match cmd {
                    Ok(ControlCmd::Start { users, rate }) => {
                        if !self.refuse_while_open("a user ramp") {
                            self.begin_test(&mut epoch);
                            self.close_open();
                            self.retarget(&mut ramp, users, rate);
                        }
                    }
                    Ok(ControlCmd::StartOpen(model)) => {
                        self.start_open(model, &mut epoch, &mut ramp, &mut split);
                    }
                    Ok(ControlCmd::SetArrivalRate(rate)) => {
                        self.set_open_rate(rate, &split);
                    }
                    Ok(ControlCmd::SetCounts(counts)) => {
                        self.begin_test(&mut epoch);
                        self.close_open();
                        let users = counts.iter().fold(0u32, |sum, n| sum.saturating_add(*n));
                        ramp.target = users;
                        ramp.current = f64::from(users);
                        let rows = per_shard(&counts, self.shards.len());
                        for ((tx, sent), want) in self.shards.iter().zip(ramp.sent.iter_mut()).zip(rows) {
                            if *sent != want {
                                *sent = want.clone();
                                let _ = tx.send(ShardCmd::SetUsers(want));
                            }
                        }
                        let mut status = self.status.lock().unwrap();
                        status.target_users = users;
                        status.state = RunState::Running;
                        status.users = users;
                    }
                    Ok(ControlCmd::SetTarget { users, rate }) => {
                        let state = self.status.lock().unwrap().state;
                        let open = self.refuse_while_open("a new user count");
                        if !open && matches!(state, RunState::Spawning | RunState::Running) {
                            self.retarget(&mut ramp, users, rate);
                        }
                    }
                    Ok(ControlCmd::SetClasses(only)) => {
                        ramp.dispatcher = Dispatcher::new(subset(&self.classes, only.as_deref()));
                        let state = self.status.lock().unwrap().state;
                        if matches!(state, RunState::Spawning | RunState::Running) {
                            // Users of dropped classes retire as in any
                            // ramp-down (gracefully); the listed ones fill in.
                            let users = ramp.current.floor() as u32;
                            self.send_counts(&mut ramp, users);
                        }
                    }
                    Ok(ControlCmd::Stop) => {
                        let state = self.status.lock().unwrap().state;
                        if matches!(state, RunState::Spawning | RunState::Running) {
                            ramp.target = 0;
                            ramp.current = 0.0;
                            ramp.sent.iter_mut().for_each(|s| s.clear());
                            stopped_shards.iter_mut().for_each(|s| *s = false);
                            test_stop_pending = false;
                            self.run_stop.stop_within(self.stop_timeout);
                            kill_at = (!self.stop_timeout.is_zero())
                                .then(|| Instant::now() + self.stop_timeout);
                            for tx in &self.shards {
                                let _ = tx.send(ShardCmd::Stop { grace: self.stop_timeout });
                            }
                            self.set_state(RunState::Stopping, 0);
                        }
                    }
                    Ok(ControlCmd::ResetStats) => {
                        epoch += 1;
                        self.reset(epoch);
                    }
                    Ok(ControlCmd::ReportToMaster(ask)) => {
                        // Dropped sender when shard 0 is gone: the worker
                        // sees it disconnected and reports without data.
                        if let Some(tx) = self.shards.first() {
                            let _ = tx.send(ShardCmd::ReportToMaster(ask));
                        }
                    }
                    Ok(ControlCmd::Shutdown) | Err(_) => {
                        self.run_stop.stop_within(Duration::ZERO);
                        for tx in &self.shards {
                            let _ = tx.send(ShardCmd::Shutdown);
                        }
                        return;
                    }
                },
                recv(self.reports) -> report => {
                    let Ok(mut report) = report else { return };
                    if let Some(slot) = self.live_users.borrow_mut().get_mut(report.shard) {
                        *slot = report.live_users;
                    }
                    if let Some(mut open) = report.open.take() {
                        if report.epoch == epoch && self.open_running.get() {
                            if let Some(tap) = &self.open_tap {
                                let _ = tap.send(open.clone());
                            }
                            if let Some(stats) = self.open.lock().unwrap().as_mut() {
                                stats.merge(&mut open);
                            }
                        }
                        let _ = self.shards[report.shard].send(ShardCmd::RecycleOpen(open.corrected));
                    }
                    if self.open_running.get() {
                        let users: u32 = self.live_users.borrow().iter().fold(0u32, |s, n| s.saturating_add(*n));
                        let mut status = self.status.lock().unwrap();
                        if status.state == RunState::Running {
                            status.users = users;
                        }
                    }
                    if report.epoch == epoch {
                        if let Some(tap) = &self.delta_tap {
                            let _ = tap.send(report.delta.clone());
                        }
                        self.stats.lock().unwrap().merge(&mut report.delta);
                        if let Some(runs) = report.task_runs.take() {
                            if let Some(slot) = self.task_runs.lock().unwrap().get_mut(report.shard) {
                                *slot = runs;
                            }
                        }
                    }
                    let _ = self.shards[report.shard].send(ShardCmd::Recycle(report.delta));
                    reported[report.shard] = true;
                    if reported.iter().all(|r| *r) {
                        reported.iter_mut().for_each(|r| *r = false);
                        self.close_window();
                        window_closed = Instant::now();
                    }
                    let stopping = self.status.lock().unwrap().state == RunState::Stopping;
                    if report.stopped && stopping && !test_stop_pending {
                        stopped_shards[report.shard] = true;
                        if stopped_shards.iter().all(|s| *s) {
                            // Shards kill their users at the deadline, and
                            // may be done before the next tick looks.
                            self.log_kill(&mut kill_at, Instant::now());
                            kill_at = None;
                            // Every shard's last delta is merged now: the
                            // test_stop listeners read the final stats.
                            match self.shards.first().map(|tx| tx.send(ShardCmd::RunTestStop)) {
                                Some(Ok(())) => test_stop_pending = true,
                                _ => self.set_state(RunState::Stopped, 0),
                            }
                        }
                    }
                    if report.test_stopped && test_stop_pending {
                        test_stop_pending = false;
                        // Unless a new start came in meanwhile.
                        if stopping {
                            self.set_state(RunState::Stopped, 0);
                        }
                    }
                },
                recv(spawn_tick) -> _ => {
                    let now = Instant::now();
                    if self.status.lock().unwrap().state == RunState::Stopping {
                        self.log_kill(&mut kill_at, now);
                    }
                    self.step_ramp(&mut ramp, now - last_tick);
                    last_tick = now;
                },
                recv(second) -> _ => {
                    if let Some(percent) = cpu.check(Instant::now()) {
                        self.cpu_warning(percent);
                    }
                    // Backstop for a shard that stopped reporting.
                    if window_closed.elapsed() > WINDOW_BACKSTOP {
                        reported.iter_mut().for_each(|r| *r = false);
                        self.close_window();
                        window_closed = Instant::now();
                    }
                },
            }
        }
    }

    /// Locust's warning, once per process; shard 0 fires the script's
    /// cpu_warning listeners.
    fn cpu_warning(&self, percent: f64) {
        log::warn!(
            "CPU usage above {:.0}% ({percent:.0}% of the CPUs this process may use)! \
             This may constrain your throughput and may even give inconsistent response \
             time measurements! Run fewer users per box, or more workers",
            super::CPU_WARNING_PERCENT
        );
        if let Some(tx) = self.shards.first() {
            let _ = tx.send(ShardCmd::CpuWarning(percent.round() as u32));
        }
    }

    /// A swarm starts from Ready or Stopped: fire test_start; after a stop
    /// the new swarm starts from clean stats, as Locust does.
    pub(super) fn begin_test(&self, epoch: &mut u64) {
        let state = self.status.lock().unwrap().state;
        if matches!(state, RunState::Ready | RunState::Stopped) {
            if state == RunState::Stopped {
                *epoch += 1;
                self.reset(*epoch);
            }
            self.status.lock().unwrap().started_at = Some(Instant::now());
            self.run_stop.clear();
            for tx in &self.shards {
                let _ = tx.send(ShardCmd::TestStart);
            }
        }
    }

    fn close_window(&self) {
        let users = self.status.lock().unwrap().users;
        let now = SystemTime::now();
        self.stats.lock().unwrap().tick(now, users);
        if let Some(open) = self.open.lock().unwrap().as_mut() {
            open.tick(now, users);
        }
    }

    fn reset(&self, epoch: u64) {
        self.stats.lock().unwrap().reset();
        if let Some(open) = self.open.lock().unwrap().as_mut() {
            open.reset();
        }
        self.task_runs
            .lock()
            .unwrap()
            .iter_mut()
            .for_each(Vec::clear);
        for tx in &self.shards {
            let _ = tx.send(ShardCmd::ResetStats { epoch });
        }
    }

    fn retarget(&self, ramp: &mut Ramp, users: u32, rate: f64) {
        ramp.target = users;
        ramp.rate = rate.max(f64::MIN_POSITIVE);
        {
            let mut status = self.status.lock().unwrap();
            status.target_users = users;
            status.spawn_rate = rate;
            if status.users == users {
                return;
            }
            status.state = RunState::Spawning;
        }
        log::info!("Ramping to {users} users at a rate of {rate:.2} per second");
        if log::log_enabled!(log::Level::Debug) {
            let counts = ramp.dispatcher.counts(users);
            log::debug!("Ramping to {}", format_class_counts(&self.classes, &counts));
        }
        // Like Locust, the first user of a ramp starts at once, the next
        // after 1/rate seconds.
        let target = f64::from(users);
        ramp.current = if ramp.current < target {
            (ramp.current.floor() + 1.0).min(target)
        } else {
            (ramp.current.ceil() - 1.0).max(target)
        };
        self.step_ramp(ramp, Duration::ZERO);
    }

    fn step_ramp(&self, ramp: &mut Ramp, dt: Duration) {
        let state = self.status.lock().unwrap().state;
        if state != RunState::Spawning {
            return;
        }
        let target = f64::from(ramp.target);
        let step = ramp.rate * dt.as_secs_f64();
        ramp.current = if ramp.current < target {
            (ramp.current + step).min(target)
        } else {
            (ramp.current - step).max(target)
        };
        let users = ramp.current.floor() as u32;
        let counts = self.send_counts(ramp, users);
        let done = users == ramp.target;
        self.set_state(
            if done {
                RunState::Running
            } else {
                RunState::Spawning
            },
            users,
        );
        if done {
            log::info!(
                "All users spawned: {}",
                format_class_counts(&self.classes, &counts)
            );
            // The script's spawning_complete listeners run on shard 0.
            if let Some(tx) = self.shards.first() {
                let _ = tx.send(ShardCmd::SpawningComplete(users));
            }
        }
    }

    /// Tell each shard its per-class counts for `users` in all (only the
    /// shards whose counts changed); returns the per-class counts.
    fn send_counts(&self, ramp: &mut Ramp, users: u32) -> Vec<u32> {
        let counts = ramp.dispatcher.counts(users);
        let rows = per_shard(&counts, self.shards.len());
        for (shard, ((tx, sent), want)) in self
            .shards
            .iter()
            .zip(ramp.sent.iter_mut())
            .zip(rows)
            .enumerate()
        {
            if *sent != want {
                log::debug!("shard {shard}: hold {want:?} users per class (ramp at {users})");
                *sent = want.clone();
                let _ = tx.send(ShardCmd::SetUsers(want));
            }
        }
        counts
    }

    /// Locust's line when users are still running at the stop timeout
    /// (they get killed), once per stop.
    fn log_kill(&self, kill_at: &mut Option<Instant>, now: Instant) {
        if kill_at.is_some_and(|t| now >= t) {
            *kill_at = None;
            log::info!(
                "Not all users finished their tasks & terminated in {} seconds. Stopping them...",
                secs_text(self.stop_timeout)
            );
        }
    }

    fn set_state(&self, state: RunState, users: u32) {
        let mut status = self.status.lock().unwrap();
        status.state = state;
        status.users = users;
    }
}

/// Seconds as Locust prints its stop timeout: `2`, or `2.5`.
pub(crate) fn secs_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}", d.as_secs_f64())
    }
}

/// Locust's `_format_user_classes_count_for_log`: a JSON object of users
/// per class, sorted by name, then the total:
/// `{"Admin": 2, "Shop": 9} (11 total users)`.
pub fn format_class_counts(classes: &[ClassSpec], counts: &[u32]) -> String {
    let mut pairs: Vec<(&str, u32)> = classes
        .iter()
        .zip(counts.iter().copied().chain(std::iter::repeat(0)))
        .map(|(c, n)| (c.name.as_str(), n))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let total = pairs
        .iter()
        .fold(0u32, |sum, (_, n)| sum.saturating_add(*n));
    let body: Vec<String> = pairs
        .iter()
        .map(|(name, n)| {
            let name = serde_json::to_string(name).unwrap_or_else(|_| "\"?\"".into());
            format!("{name}: {n}")
        })
        .collect();
    format!("{{{}}} ({total} total users)", body.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_counts_read_as_locusts() {
        let spec = |name: &str| ClassSpec {
            name: name.into(),
            weight: 1,
            fixed_count: None,
        };
        let classes = [spec("Shop"), spec("Browse"), spec("Admin")];
        assert_eq!(
            format_class_counts(&classes, &[9, 3, 2]),
            r#"{"Admin": 2, "Browse": 3, "Shop": 9} (14 total users)"#
        );
    }
}
