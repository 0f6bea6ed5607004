//! The cluster master: [`MasterController`] implements [`RunControl`] over
//! workers, so the headless runner, CSV reports and the dashboard work on a
//! master exactly as on a local engine.
//!
//! One network thread owns the ROUTER socket and everything that changes
//! with messages: the worker list, the ramp, the merged stats. It polls the
//! socket with a short timeout, takes commands from front ends over a
//! channel, and publishes status and stats behind a mutex that front ends
//! only read. Users are spread as Locust does: per class (our
//! [`Dispatcher`]), then each class evenly over workers interleaved by
//! host, with absolute per-class counts in every `spawn`. An open-model
//! run (an arrival rate) is split instead: each locusta worker gets a
//! share of the rate and pool in proportion to the shards it announced
//! in `client_ready` ([`split_open`], sent by `network_open`), and Python
//! workers make it refuse to start.
//!
//! It does not own running users (workers do) or report formats (`report`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use crossbeam_channel::{unbounded, Sender};

use super::decoder::Decoder;
use super::network::Network;
use super::nodes::Nodes;
use super::transport::{self, RouterSocket};
use super::warnings::Warnings;
use crate::config::{Role, RunConfig};
use crate::engine::{
    sum_task_runs, Dispatcher, OpenModel, RunControl, RunState, RunStatus, Snapshot, TaskRuns,
    Topology, Workload,
};
use crate::stats::{
    EntryHistogram, HistoryPoint, IntervalDrain, OpenModelReport, OpenModelStats, RunStats,
};

pub(super) enum MasterCmd {
    Start {
        users: u32,
        rate: f64,
    },
    StartOpen(OpenModel),
    SetArrivalRate(f64),
    SetTarget {
        users: u32,
        rate: f64,
    },
    /// A load shape's class list (`None`: all classes).
    SetClasses(Option<Vec<String>>),
    Stop,
    ResetStats,
    Shutdown,
}

/// What front ends read; written only by the network thread.
pub(super) struct Shared {
    pub(super) status: RunStatus,
    pub(super) stats: RunStats,
    pub(super) workers: Vec<crate::engine::WorkerInfo>,
    /// Per worker, its task counts: the latest it reported and what they
    /// were at the last stats reset (workers count from their own start).
    pub(super) task_runs: HashMap<String, WorkerTaskRuns>,
    /// An open-model run's counters and corrected latencies, merged from
    /// the workers' reports (kept after the stop for the reports).
    pub(super) open: Option<OpenModelStats>,
    /// Connected Python (Locust) workers' node ids: they cannot run an
    /// open model, so such a run is refused while any is connected.
    pub(super) python_workers: Vec<String>,
}

/// One worker's cumulative task counts and their value at the last reset.
#[derive(Default)]
pub(super) struct WorkerTaskRuns {
    pub(super) latest: Vec<TaskRuns>,
    pub(super) at_reset: Vec<TaskRuns>,
}

/// Task-count rows the master keeps over all workers, including ones that
/// left (their tasks ran): a bound on what churning or hostile peers make
/// it hold (each report is already at most `MAX_TASK_ROWS`).
pub(super) const MAX_KEPT_TASK_ROWS: usize = 65_536;

impl Shared {
    /// Keep a worker's latest task counts, unless that would pass
    /// [`MAX_KEPT_TASK_ROWS`]; returns whether they were kept.
    pub(super) fn keep_task_runs(&mut self, worker: &str, runs: &[TaskRuns]) -> bool {
        let held: usize = self.task_runs.values().map(|w| w.latest.len()).sum();
        let own = self.task_runs.get(worker).map_or(0, |w| w.latest.len());
        if held - own + runs.len() > MAX_KEPT_TASK_ROWS {
            return false;
        }
        self.task_runs.entry(worker.to_string()).or_default().latest = runs.to_vec();
        true
    }

    /// A stats reset: count tasks from what the workers have now.
    pub(super) fn reset_task_runs(&mut self) {
        for w in self.task_runs.values_mut() {
            w.at_reset = w.latest.clone();
        }
    }

    /// Every worker's runs since the last reset, summed per task.
    fn task_runs_since_reset(&self) -> Vec<TaskRuns> {
        let per_worker: Vec<Vec<TaskRuns>> = self
            .task_runs
            .values()
            .map(|w| {
                w.latest
                    .iter()
                    .map(|t| {
                        let before = w
                            .at_reset
                            .iter()
                            .find(|b| b.class == t.class && b.task == t.task)
                            .map_or(0, |b| b.runs);
                        TaskRuns {
                            runs: t.runs.saturating_sub(before),
                            ..t.clone()
                        }
                    })
                    .collect()
            })
            .collect();
        sum_task_runs(&per_worker)
    }
}

/// The shared state, even if a thread panicked holding it: what is in it
/// is still the best there is, and a front end that panicked on a poisoned
/// lock would lose the run's reports too.
pub(super) fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A [`RunControl`] whose users run on workers.
pub struct MasterController {
    commands: Sender<MasterCmd>,
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<()>>,
}

impl MasterController {
    /// Bind the ROUTER and start the network thread; workers may connect
    /// from now on.
    pub fn launch(cfg: &RunConfig) -> anyhow::Result<MasterController> {
        let Role::Master {
            bind_host,
            bind_port,
            ..
        } = &cfg.role
        else {
            anyhow::bail!("MasterController::launch needs --master");
        };
        let ctx = transport::context();
        let router = RouterSocket::bind(&ctx, bind_host, *bind_port)?;
        // The endpoint really bound: with port 0 the system chose one.
        let bound = router
            .last_endpoint()
            .unwrap_or_else(|| transport::endpoint(bind_host, *bind_port));
        log::info!(
            "Starting locusta master {} on {bound}",
            env!("CARGO_PKG_VERSION"),
        );
        let shared = Arc::new(Mutex::new(Shared {
            status: RunStatus {
                state: RunState::Ready,
                users: 0,
                target_users: 0,
                spawn_rate: 0.0,
                started_at: None,
            },
            stats: {
                let mut stats = RunStats::new(cfg.keep_window());
                if cfg.reports.hdr_log.is_some() {
                    stats.enable_intervals();
                }
                stats
            },
            task_runs: HashMap::new(),
            workers: Vec::new(),
            open: None,
            python_workers: Vec::new(),
        }));
        let (tx, rx) = unbounded();
        let net = Network {
            router,
            commands: rx,
            shared: shared.clone(),
            nodes: Nodes::default(),
            dispatcher: Dispatcher::new(cfg.classes.clone()),
            classes: cfg.classes.clone(),
            host: spawn_host(&cfg.workload),
            stop_timeout: cfg.stop_timeout.as_secs_f64(),
            open_model: None,
            target: 0,
            rate: 1.0,
            dispatched: 0,
            next_ramp: None,
            stop_deadline: None,
            last_spawn_timestamp: 0.0,
            redispatch: false,
            warned: HashSet::new(),
            warnings: Warnings::default(),
            decoder: Decoder::start().context("cannot start the master's decoding thread")?,
            report_listeners: match &cfg.workload {
                Workload::Script { source, .. } => {
                    super::master_report::ReportListeners::start(source)
                }
                Workload::Raw { .. } => None,
            },
        };
        let thread = std::thread::Builder::new()
            .name("locusta-master".into())
            .spawn(move || {
                let _ctx = ctx;
                net.run()
            })
            .context("cannot start the master's network thread")?;
        Ok(MasterController {
            commands: tx,
            shared,
            thread: Some(thread),
        })
    }

    /// Block until `expected` workers are connected (`--expect-workers`),
    /// giving up after `max_wait` if set.
    pub fn wait_for_workers(
        &self,
        expected: u32,
        max_wait: Option<Duration>,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut next_log = started;
        loop {
            let connected = self.connected_workers();
            if connected >= expected as usize {
                return Ok(());
            }
            if max_wait.is_some_and(|w| started.elapsed() >= w) {
                anyhow::bail!(
                    "gave up waiting for workers: {connected} of {expected} connected after --expect-workers-max-wait {}s",
                    max_wait.unwrap_or_default().as_secs()
                );
            }
            if Instant::now() >= next_log {
                log::info!("Waiting for workers to be ready, {connected} of {expected} connected");
                next_log += Duration::from_secs(1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Why an open-model run cannot start now: the Python (Locust)
    /// workers connected, named; `None` when all are locusta workers.
    pub fn open_model_refusal(&self) -> Option<String> {
        refusal(&lock(&self.shared).python_workers)
    }

    pub fn connected_workers(&self) -> usize {
        let shared = lock(&self.shared);
        shared
            .workers
            .iter()
            .filter(|w| w.state != "missing")
            .count()
    }

    /// Tell every worker to quit, wait briefly for their last reports,
    /// stop the network thread.
    pub fn shutdown(mut self) {
        let _ = self.commands.send(MasterCmd::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MasterController {
    fn drop(&mut self) {
        let _ = self.commands.send(MasterCmd::Shutdown);
    }
}

impl RunControl for MasterController {
    fn start(&self, users: u32, rate: f64) {
        let _ = self.commands.send(MasterCmd::Start { users, rate });
    }

    fn set_target(&self, users: u32, rate: f64) {
        let _ = self.commands.send(MasterCmd::SetTarget { users, rate });
    }

    fn stop(&self) {
        let _ = self.commands.send(MasterCmd::Stop);
    }

    fn set_classes(&self, classes: Option<Vec<String>>) {
        let _ = self.commands.send(MasterCmd::SetClasses(classes));
    }

    fn reset_stats(&self) {
        let _ = self.commands.send(MasterCmd::ResetStats);
    }

    fn status(&self) -> RunStatus {
        lock(&self.shared).status
    }

    fn snapshot(&self) -> Snapshot {
        let shared = lock(&self.shared);
        let status = shared.status;
        Snapshot {
            status,
            elapsed: status.started_at.map(|t| t.elapsed()).unwrap_or_default(),
            topology: Topology::Master {
                workers: shared.workers.clone(),
            },
            stats: shared.stats.view(SystemTime::now()),
        }
    }

    fn history(&self) -> Vec<HistoryPoint> {
        lock(&self.shared).stats.history().to_vec()
    }

    fn histograms(&self) -> Vec<EntryHistogram> {
        lock(&self.shared).stats.histograms()
    }

    fn task_runs(&self) -> Vec<TaskRuns> {
        lock(&self.shared).task_runs_since_reset()
    }

    fn start_open(&self, model: OpenModel) {
        let _ = self.commands.send(MasterCmd::StartOpen(model));
    }

    fn set_arrival_rate(&self, rate: f64) {
        let _ = self.commands.send(MasterCmd::SetArrivalRate(rate));
    }

    fn open_model(&self) -> Option<OpenModelReport> {
        let shared = lock(&self.shared);
        shared.open.as_ref().map(|o| o.report(SystemTime::now()))
    }

    fn drain_intervals(&self, flush: bool) -> IntervalDrain {
        let mut shared = lock(&self.shared);
        if flush {
            shared.stats.cut_intervals(SystemTime::now());
        }
        shared.stats.drain_intervals()
    }
}

/// The refusal of an open-model run while Python workers are connected.
pub(super) fn refusal(python_workers: &[String]) -> Option<String> {
    (!python_workers.is_empty()).then(|| {
        format!(
            "an open-model run (--arrival-rate) needs locusta workers: Locust (Python) workers cannot run an arrival rate; stop or disconnect {}",
            python_workers.join(", ")
        )
    })
}

/// Split an open model across workers of these capacities (shards): the
/// rate in proportion, the pool likewise by largest remainder (so the
/// shares add up to it exactly), at least one user each.
pub(super) fn split_open(model: OpenModel, capacities: &[u32]) -> Vec<OpenModel> {
    let weights: Vec<u64> = capacities.iter().map(|&c| u64::from(c.max(1))).collect();
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return Vec::new();
    }
    let pool = u64::from(model.max_users);
    let mut users: Vec<u64> = weights.iter().map(|w| pool * w / total).collect();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    // Largest remainder first; ties to the earlier worker.
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(pool * weights[i] % total));
    let short = pool - users.iter().sum::<u64>();
    for &i in by_remainder.iter().take(short as usize) {
        users[i] += 1;
    }
    weights
        .iter()
        .zip(users)
        .map(|(&w, n)| OpenModel {
            rate: model.rate * w as f64 / total as f64,
            max_users: u32::try_from(n).unwrap_or(u32::MAX).max(1),
        })
        .collect()
}

/// The host a `spawn` names: the master's `-H` (workers without one use it).
fn spawn_host(workload: &Workload) -> Option<String> {
    match workload {
        Workload::Raw { targets, .. } => targets.first().map(|t| t.origin.clone()),
        Workload::Script { default_host, .. } => default_host.as_ref().map(|t| t.origin.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            status: RunStatus {
                state: RunState::Ready,
                users: 0,
                target_users: 0,
                spawn_rate: 0.0,
                started_at: None,
            },
            stats: RunStats::new(false),
            workers: Vec::new(),
            task_runs: HashMap::new(),
            open: None,
            python_workers: Vec::new(),
        }
    }

    #[test]
    fn open_model_splits_rate_equally_and_pool_without_loss() {
        let model = OpenModel {
            rate: 200.0,
            max_users: 7,
        };
        let shares = split_open(model, &[1, 1, 1]);
        assert_eq!(shares.len(), 3);
        let rate: f64 = shares.iter().map(|s| s.rate).sum();
        assert!((rate - 200.0).abs() < 1e-9);
        let pools: Vec<u32> = shares.iter().map(|s| s.max_users).collect();
        assert_eq!(pools, [3, 2, 2]);
        let tiny = split_open(
            OpenModel {
                rate: 1.0,
                max_users: 1,
            },
            &[1, 1],
        );
        assert!(
            tiny.iter().all(|s| s.max_users == 1),
            "every worker gets a user"
        );
        assert!(split_open(model, &[]).is_empty());
        assert!(refusal(&[]).is_none());
        let text = refusal(&["box_ab12".to_string()]).unwrap();
        assert!(text.contains("box_ab12"), "{text}");
    }

    #[test]
    fn open_model_splits_by_announced_shards() {
        let model = OpenModel {
            rate: 300.0,
            max_users: 10,
        };
        let shares = split_open(model, &[1, 2]);
        assert!((shares[0].rate - 100.0).abs() < 1e-9);
        assert!((shares[1].rate - 200.0).abs() < 1e-9);
        // 10/3 and 20/3: the larger remainder (2/3) takes the spare user.
        let pools: Vec<u32> = shares.iter().map(|s| s.max_users).collect();
        assert_eq!(pools, [3, 7]);
        // Huge capacities neither overflow nor lose the rate.
        let huge = split_open(model, &[u32::MAX, 1, 0]);
        let rate: f64 = huge.iter().map(|s| s.rate).sum();
        assert!((rate - 300.0).abs() < 1e-6, "{rate}");
        let pool: u32 = huge.iter().map(|s| s.max_users).sum();
        assert!(pool >= 10 && huge.iter().all(|s| s.max_users >= 1));
    }

    fn runs(task: &str, n: u64) -> TaskRuns {
        TaskRuns {
            class: "U".into(),
            task: task.into(),
            runs: n,
        }
    }

    #[test]
    fn workers_counts_sum_since_the_last_reset() {
        let mut s = shared();
        assert!(s.keep_task_runs("w1", &[runs("a", 10), runs("b", 1)]));
        assert!(s.keep_task_runs("w2", &[runs("a", 5)]));
        assert_eq!(s.task_runs_since_reset(), [runs("a", 15), runs("b", 1)]);
        s.reset_task_runs();
        assert!(s.keep_task_runs("w1", &[runs("a", 12), runs("b", 1)]));
        assert_eq!(s.task_runs_since_reset(), [runs("a", 2), runs("b", 0)]);
    }

    #[test]
    fn rows_kept_are_bounded_over_all_workers() {
        let mut s = shared();
        let many: Vec<TaskRuns> = (0..4096).map(|i| runs(&i.to_string(), 1)).collect();
        let fit = MAX_KEPT_TASK_ROWS / many.len();
        for w in 0..fit {
            assert!(s.keep_task_runs(&format!("w{w}"), &many));
        }
        assert!(!s.keep_task_runs("one-too-many", &many), "over the bound");
        // A known worker may still replace its own rows.
        assert!(s.keep_task_runs("w0", &many[..10]));
        let held: usize = s.task_runs.values().map(|w| w.latest.len()).sum();
        assert!(held <= MAX_KEPT_TASK_ROWS);
    }
}
