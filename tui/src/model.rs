//! The dashboard's plain-data model and the [`RunHandle`] it drives a run
//! through.
//!
//! Owns [`DashboardSnapshot`] (everything one frame shows: run state, users,
//! where the users live, the stats rows, failures, exceptions and the
//! per-second history) and the trait a front end implements to connect the
//! dashboard to an engine. Nothing here knows about terminals, keys or
//! layout; the engine's own types stay in the `locusta` crate and an adapter
//! there converts them into these.

use std::time::Duration;

/// Locust's runner states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RunState {
    #[default]
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

    /// Users are (being) started: a new target applies at once.
    pub fn is_active(self) -> bool {
        matches!(self, RunState::Spawning | RunState::Running)
    }
}

/// One cluster worker as the master sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerRow {
    pub id: String,
    /// Locust's worker states: ready, spawning, running, stopped, missing.
    pub state: String,
    pub users: u32,
    pub cpu_percent: f64,
    pub memory_bytes: u64,
}

/// Where the users of a run live.
#[derive(Clone, Debug, PartialEq)]
pub enum Topology {
    /// Engine shards in this process, on this I/O driver.
    Local { shards: usize, io_driver: String },
    /// A cluster master: the users live on these workers.
    Master { workers: Vec<WorkerRow> },
}

impl Default for Topology {
    fn default() -> Self {
        Topology::Local {
            shards: 1,
            io_driver: String::new(),
        }
    }
}

/// One row of the Stats view: an endpoint, or the Aggregated row. Times in
/// milliseconds, cumulative since the start or the last reset; the rates
/// are "current" (the last ~10 s), as in Locust's web UI.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsRow {
    /// The request method; empty for Aggregated.
    pub method: String,
    pub name: String,
    pub requests: u64,
    pub failures: u64,
    pub median_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub avg_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// Mean response body bytes.
    pub avg_size: f64,
    pub current_rps: f64,
    pub current_fail_per_sec: f64,
}

impl StatsRow {
    /// Failures as a fraction of requests (Locust's `fail_ratio`).
    pub fn fail_ratio(&self) -> f64 {
        if self.requests > 0 {
            self.failures as f64 / self.requests as f64
        } else if self.failures > 0 {
            1.0
        } else {
            0.0
        }
    }
}

/// One distinct failure: `(method, name, error)` and how often.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FailureRow {
    pub method: String,
    pub name: String,
    pub error: String,
    pub occurrences: u64,
}

/// One distinct script error.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExceptionRow {
    pub count: u64,
    pub message: String,
    pub traceback: String,
    /// Where it happened: `local`, or worker ids.
    pub nodes: Vec<String>,
}

/// One closed second of the run (the charts).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HistoryPoint {
    pub unix_time: u64,
    pub users: u32,
    pub rps: f64,
    pub fail_per_sec: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

/// Everything one frame of the dashboard shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DashboardSnapshot {
    pub state: RunState,
    pub users: u32,
    pub target_users: u32,
    pub spawn_rate: f64,
    /// Since the swarm started.
    pub elapsed: Duration,
    /// Where load goes (host, and the script).
    pub host: String,
    pub topology: Topology,
    /// Endpoints in Locust's order (name, then method).
    pub rows: Vec<StatsRow>,
    pub aggregated: StatsRow,
    /// Most occurrences first.
    pub failures: Vec<FailureRow>,
    /// Most occurrences first.
    pub exceptions: Vec<ExceptionRow>,
    /// Per-second points, oldest first.
    pub history: Vec<HistoryPoint>,
    /// While a load shape drives the run: its current target (`40 users @
    /// 10/s`, `250.0 it/s`); start, edit and `+`/`-` are off then.
    pub shape: Option<String>,
    /// An open-model (arrival-rate) run's line; `None` in closed runs.
    pub open_model: Option<OpenModelLine>,
}

/// What the status line shows of an open-model run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OpenModelLine {
    /// Iterations per second asked for and started.
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub dropped: u64,
    /// Aggregated p95 measured from the intended starts.
    pub corrected_p95_ms: f64,
}

impl DashboardSnapshot {
    pub fn workers(&self) -> &[WorkerRow] {
        match &self.topology {
            Topology::Master { workers } => workers,
            Topology::Local { .. } => &[],
        }
    }

    pub fn is_master(&self) -> bool {
        matches!(self.topology, Topology::Master { .. })
    }
}

/// What the dashboard drives a run through. Every call must return quickly
/// (send a command, copy a snapshot): the dashboard calls them from its
/// drawing thread and never holds a lock of its own across them.
pub trait RunHandle {
    /// Start a swarm ramping to `users` at `rate` users per second (after a
    /// stop: a new swarm, with fresh stats).
    fn start(&self, users: u32, rate: f64);
    /// Change the user target of a running swarm.
    fn set_target(&self, users: u32, rate: f64);
    fn stop(&self);
    fn reset_stats(&self);
    fn snapshot(&self) -> DashboardSnapshot;
}
