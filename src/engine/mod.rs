//! The engine: shards of users (one pinned monoio runtime per CPU), the
//! control thread that runs the spawn ramp and merges stats, and the
//! [`Controller`] every front end drives a run through.
//!
//! Front ends (headless, dashboard) drive a run through the [`RunControl`]
//! trait, which the local [`Controller`] and the cluster master both
//! implement, so nothing here prints or knows about reports or workers.

mod control;
mod control_open;
mod cpu;
mod dispatch;
mod follow;
mod open;
mod pipelined;
mod population;
mod raw;
mod shard;
mod user;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{unbounded, Sender};

use crate::cli::IoMode;
use crate::http::{ClientConfig, Target};
use crate::script::{ScriptSource, TagFilter};
use crate::stats::{
    EntryHistogram, HistoryPoint, IntervalDrain, OpenDelta, OpenModelReport, OpenModelStats,
    RunStats, StatsDelta, StatsView,
};
pub use control::format_class_counts;
use control::{Control, ControlCmd};
pub(crate) use cpu::CpuMeter;
pub use cpu::CPU_WARNING_PERCENT;
pub use dispatch::{per_shard, subset, ClassSpec, Dispatcher};
pub use open::{NextIteration, OpenSlot};
pub use population::ON_STOP_LIMIT;
pub use raw::RawOptions;
pub use shard::build_uring_runtime;
use shard::{spawn_shard, ShardSpec};
pub use user::{yield_now, ConnectBackoff, Killable, StopSignal};

/// Locust's runner states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Ready,
    Spawning,
    Running,
    Stopping,
    Stopped,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Ready => "READY",
            RunState::Spawning => "SPAWNING",
            RunState::Running => "RUNNING",
            RunState::Stopping => "STOPPING",
            RunState::Stopped => "STOPPED",
        }
    }
}

/// The I/O driver the shards actually run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoDriver {
    IoUring,
    Epoll,
}

impl IoDriver {
    pub fn as_str(self) -> &'static str {
        match self {
            IoDriver::IoUring => "io_uring",
            IoDriver::Epoll => "epoll",
        }
    }
}

/// The parts of a run's state that are not stats.
#[derive(Clone, Copy, Debug)]
pub struct RunStatus {
    pub state: RunState,
    pub users: u32,
    pub target_users: u32,
    pub spawn_rate: f64,
    pub started_at: Option<Instant>,
}

/// One cluster worker as a master sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerInfo {
    /// Locust's node id, `hostname_hex`.
    pub id: String,
    /// Locust's worker states: ready, spawning, running, stopped, missing.
    pub state: String,
    pub users: u32,
    /// As the worker reports it: a Python worker's process CPU % (one
    /// thread), a locusta worker's % of the CPUs it may use.
    pub cpu_percent: f64,
    pub memory_bytes: u64,
}

/// Where the users of a run live.
#[derive(Clone, Debug, PartialEq)]
pub enum Topology {
    /// Shards in this process.
    Local { shards: usize, io_driver: IoDriver },
    /// A cluster master: users live on these workers.
    Master { workers: Vec<WorkerInfo> },
}

/// How often one task of one class ran (a task set counts as one task of
/// its class, as `--show-task-ratio` lists it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRuns {
    pub class: String,
    pub task: String,
    pub runs: u64,
}

/// Fastest arrival rate accepted (iterations per second, whole run): far
/// above what one box reaches, low enough that a one-second queue of them
/// stays small.
pub const MAX_ARRIVAL_RATE: f64 = 10_000_000.0;

/// An open-model run: iterations (a task of a user; a request in raw mode)
/// start at `rate` per second on a fixed schedule, however slow the server
/// gets, run by at most `max_users` users created as needed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpenModel {
    pub rate: f64,
    pub max_users: u32,
}

/// What a front end shows: status plus the computed stats table.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub status: RunStatus,
    pub elapsed: Duration,
    pub topology: Topology,
    pub stats: StatsView,
}

/// The one API front ends drive a run through: the local [`Controller`]
/// and the cluster master implement it, so the headless runner and the
/// dashboard never know whether the users are here or on workers.
pub trait RunControl: Send + Sync {
    /// Start (or restart after a stop, with fresh stats) ramping to `users`.
    fn start(&self, users: u32, rate: f64);
    /// Change the user target of a running swarm.
    fn set_target(&self, users: u32, rate: f64);
    /// Stop every user: gracefully within the stop timeout, then cancelled.
    fn stop(&self);
    fn reset_stats(&self);
    fn status(&self) -> RunStatus;
    fn snapshot(&self) -> Snapshot;
    /// Per-second history of the whole run (charts).
    fn history(&self) -> Vec<HistoryPoint>;
    /// Every row's whole-run latency histogram, Aggregated last (reports'
    /// percentile spectra).
    fn histograms(&self) -> Vec<EntryHistogram>;
    /// How often each task of each class ran since the start or the last
    /// reset (the report's task ratio); empty where it is not counted.
    fn task_runs(&self) -> Vec<TaskRuns> {
        Vec::new()
    }
    /// Per-row histograms of each second closed since the last call
    /// (`--hdr-log`); empty unless the run was built with its interval tap
    /// on. `flush`: also close the open second now (the end of a run).
    fn drain_intervals(&self, flush: bool) -> IntervalDrain {
        let _ = flush;
        IntervalDrain::default()
    }
    /// Start an open-model run (see [`OpenModel`]) instead of a user ramp;
    /// after a stop it starts with fresh stats, as `start` does.
    fn start_open(&self, model: OpenModel) {
        let _ = model;
        log::error!("this run cannot start an open-model run");
    }
    /// Change a running open-model run's arrival rate (iterations/s).
    fn set_arrival_rate(&self, rate: f64) {
        let _ = rate;
    }
    /// The open model's counters and corrected latencies; `None` in a
    /// closed-model run.
    fn open_model(&self) -> Option<crate::stats::OpenModelReport> {
        None
    }
    /// Only these user classes run from the next `start`/`set_target` on,
    /// shared by their weights (a shape's third value); `None`: all.
    fn set_classes(&self, classes: Option<Vec<String>>) {
        let _ = classes;
    }
    /// Block until the run reaches `state` or `timeout` passes.
    fn wait_for(&self, state: RunState, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.status().state == state {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.status().state == state
    }
}

/// What users run. `Send`: every shard builds its own copy from it.
#[derive(Clone, Debug)]
// Built once per run and cloned per shard: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Workload {
    /// Raw mode: each user requests these URLs (one origin) in turn, as
    /// `options` say (method, headers, body, pipelining, redirects).
    Raw {
        targets: Vec<Target>,
        options: RawOptions,
    },
    /// Lua user classes; relative paths go to `default_host` unless a
    /// class names its own host.
    Script {
        source: ScriptSource,
        tags: TagFilter,
        default_host: Option<Target>,
    },
}

impl Workload {
    /// Raw mode's single, implicit user class.
    pub fn raw_classes() -> Vec<ClassSpec> {
        vec![ClassSpec {
            name: "raw".into(),
            weight: 1,
            fixed_count: None,
        }]
    }
}

/// How to build an engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub shards: usize,
    pub io: IoMode,
    pub client: ClientConfig,
    pub workload: Workload,
    /// The user classes to dispatch (raw mode: one).
    pub classes: Vec<ClassSpec>,
    pub stop_timeout: Duration,
    /// Keep per-second histograms for "current" percentiles.
    pub keep_window: bool,
    /// Queue each second's per-row histograms for `--hdr-log` (costs a
    /// histogram per busy row per second: off unless asked for).
    pub intervals: bool,
    /// A copy of every shard delta merged goes here (a cluster worker
    /// reports them to its master).
    pub delta_tap: Option<Sender<StatsDelta>>,
    /// Open-model runs: a copy of every shard's open delta merged goes
    /// here (a cluster worker reports them beside `delta_tap`'s).
    pub open_tap: Option<Sender<OpenDelta>>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Driver(String),
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("nothing to run: no URL or no user class")]
    NothingToRun,
}

/// Drives one run: start, retarget, stop, reset, snapshot.
pub struct Controller {
    commands: Sender<ControlCmd>,
    stats: Arc<Mutex<RunStats>>,
    status: Arc<Mutex<RunStatus>>,
    /// Per shard, its latest task counts (see [`RunControl::task_runs`]).
    task_runs: Arc<Mutex<Vec<Vec<TaskRuns>>>>,
    /// The open model's table while an open run is the current one.
    open: Arc<Mutex<Option<OpenModelStats>>>,
    shards: usize,
    io_driver: IoDriver,
    threads: Vec<JoinHandle<()>>,
}

impl Controller {
    /// Start the shards (idle, no users) and the control thread.
    pub fn launch(cfg: EngineConfig) -> Result<Controller, EngineError> {
        let no_targets =
            matches!(&cfg.workload, Workload::Raw { targets, .. } if targets.is_empty());
        if no_targets || cfg.classes.is_empty() {
            return Err(EngineError::NothingToRun);
        }
        let cpus = allowed_cpus();
        let (report_tx, report_rx) = unbounded();
        let (ready_tx, ready_rx) = unbounded();
        let mut shard_txs = Vec::new();
        let mut threads = Vec::new();
        let run_stop = crate::script::limits::RunStop::new();
        let mut run_stats = RunStats::new(cfg.keep_window);
        if cfg.intervals {
            run_stats.enable_intervals();
        }
        let stats = Arc::new(Mutex::new(run_stats));
        for index in 0..cfg.shards {
            let (tx, rx) = unbounded();
            let spec = ShardSpec {
                index,
                shards: cfg.shards,
                cpu: (!cpus.is_empty()).then(|| cpus[index % cpus.len()]),
                io: cfg.io,
                client: cfg.client.clone(),
                workload: cfg.workload.clone(),
                classes: cfg.classes.iter().map(|c| c.name.clone()).collect(),
                run_stop: run_stop.clone(),
                stop_timeout: cfg.stop_timeout,
                run_stats: stats.clone(),
            };
            threads.push(spawn_shard(spec, rx, report_tx.clone(), ready_tx.clone())?);
            shard_txs.push(tx);
        }
        drop(ready_tx);
        let mut driver = None;
        let mut failure = None;
        for _ in 0..cfg.shards {
            match ready_rx.recv() {
                Ok(Ok(d)) => driver = Some(driver.unwrap_or(d)),
                Ok(Err(e)) => failure = Some(e),
                Err(_) => failure = Some("a shard thread died while starting".to_string()),
            }
        }
        if let Some(e) = failure {
            for tx in &shard_txs {
                let _ = tx.send(shard::ShardCmd::Shutdown);
            }
            return Err(EngineError::Driver(e));
        }
        let status = Arc::new(Mutex::new(RunStatus {
            state: RunState::Ready,
            users: 0,
            target_users: 0,
            spawn_rate: 0.0,
            started_at: None,
        }));
        let (cmd_tx, cmd_rx) = unbounded();
        let task_runs = Arc::new(Mutex::new(vec![Vec::new(); cfg.shards]));
        let open = Arc::new(Mutex::new(None));
        let control = Control {
            open: open.clone(),
            open_tap: cfg.open_tap.clone(),
            live_users: std::cell::RefCell::new(vec![0; cfg.shards]),
            open_running: std::cell::Cell::new(false),
            shards: shard_txs,
            classes: cfg.classes.clone(),
            reports: report_rx,
            commands: cmd_rx,
            stats: stats.clone(),
            status: status.clone(),
            stop_timeout: cfg.stop_timeout,
            task_runs: task_runs.clone(),
            delta_tap: cfg.delta_tap.clone(),
            run_stop,
        };
        threads.push(
            std::thread::Builder::new()
                .name("locusta-control".into())
                .spawn(move || control.run())?,
        );
        Ok(Controller {
            commands: cmd_tx,
            stats,
            status,
            task_runs,
            open,
            shards: cfg.shards,
            io_driver: driver.unwrap_or(IoDriver::Epoll),
            threads,
        })
    }

    pub fn io_driver(&self) -> IoDriver {
        self.io_driver
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    /// A cluster worker: hold exactly these users per class (in the order
    /// of `EngineConfig::classes`) at once; the master does the ramping.
    pub fn set_class_counts(&self, counts: Vec<u32>) {
        let _ = self.commands.send(ControlCmd::SetCounts(counts));
    }

    /// A cluster worker's report is due: shard 0 runs the script's
    /// report_to_master listeners (with `client_id`) and sends what they
    /// set to `answer` (raw mode: nothing to run, an empty answer).
    pub fn report_to_master(
        &self,
        client_id: &str,
        answer: Sender<crate::script::custom_data::CustomData>,
    ) {
        let ask = shard::ReportToMaster {
            client_id: client_id.to_string(),
            answer,
        };
        let _ = self.commands.send(ControlCmd::ReportToMaster(ask));
    }

    /// Run `f` on the open model's table (`None` unless the current or last
    /// run was an open one): reports that need its histograms or history.
    pub fn with_open_model<T>(&self, f: impl FnOnce(Option<&OpenModelStats>) -> T) -> T {
        f(self.open.lock().unwrap().as_ref())
    }

    /// Run `f` on the cumulative stats (reports that need more than a view).
    pub fn with_stats<T>(&self, f: impl FnOnce(&RunStats) -> T) -> T {
        f(&self.stats.lock().unwrap())
    }

    /// Stop the shards and the control thread and wait for them.
    pub fn shutdown(mut self) {
        let _ = self.commands.send(ControlCmd::Shutdown);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl RunControl for Controller {
    fn start(&self, users: u32, rate: f64) {
        let _ = self.commands.send(ControlCmd::Start { users, rate });
    }

    fn set_target(&self, users: u32, rate: f64) {
        let _ = self.commands.send(ControlCmd::SetTarget { users, rate });
    }

    fn stop(&self) {
        let _ = self.commands.send(ControlCmd::Stop);
    }

    fn reset_stats(&self) {
        let _ = self.commands.send(ControlCmd::ResetStats);
    }

    fn status(&self) -> RunStatus {
        *self.status.lock().unwrap()
    }

    fn snapshot(&self) -> Snapshot {
        let status = self.status();
        Snapshot {
            status,
            elapsed: status.started_at.map(|t| t.elapsed()).unwrap_or_default(),
            topology: Topology::Local {
                shards: self.shards,
                io_driver: self.io_driver,
            },
            stats: self.stats.lock().unwrap().view(SystemTime::now()),
        }
    }

    fn history(&self) -> Vec<HistoryPoint> {
        self.stats.lock().unwrap().history().to_vec()
    }

    fn histograms(&self) -> Vec<EntryHistogram> {
        self.stats.lock().unwrap().histograms()
    }

    fn task_runs(&self) -> Vec<TaskRuns> {
        sum_task_runs(&self.task_runs.lock().unwrap())
    }

    fn set_classes(&self, classes: Option<Vec<String>>) {
        let _ = self.commands.send(ControlCmd::SetClasses(classes));
    }

    fn drain_intervals(&self, flush: bool) -> IntervalDrain {
        let mut stats = self.stats.lock().unwrap();
        if flush {
            stats.cut_intervals(SystemTime::now());
        }
        stats.drain_intervals()
    }

    fn start_open(&self, model: OpenModel) {
        let _ = self.commands.send(ControlCmd::StartOpen(model));
    }

    fn set_arrival_rate(&self, rate: f64) {
        let _ = self.commands.send(ControlCmd::SetArrivalRate(rate));
    }

    fn open_model(&self) -> Option<OpenModelReport> {
        let open = self.open.lock().unwrap();
        open.as_ref().map(|o| o.report(SystemTime::now()))
    }
}

/// Every shard's counts summed per (class, task), in the order they first
/// appear (shards list the same tasks in the same order).
pub fn sum_task_runs(per_shard: &[Vec<TaskRuns>]) -> Vec<TaskRuns> {
    let mut out: Vec<TaskRuns> = Vec::new();
    for t in per_shard.iter().flatten() {
        match out
            .iter_mut()
            .find(|o| o.class == t.class && o.task == t.task)
        {
            Some(o) => o.runs = o.runs.saturating_add(t.runs),
            None => out.push(t.clone()),
        }
    }
    out
}

/// CPUs this process may run on (its affinity mask), in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Default shard count: one per CPU this process may run on.
pub fn allowed_cpu_count() -> usize {
    allowed_cpus().len().max(1)
}

pub(crate) fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: as above; pins only the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
