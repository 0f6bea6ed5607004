//! One shard: an OS thread pinned to a CPU, running a monoio runtime that
//! holds this shard's users, their connections and their stats.
//!
//! Nothing on the request path crosses threads. The shard talks to the
//! control thread only through two crossbeam channels, polled from a small
//! control loop every [`CONTROL_TICK`]: commands in (how many users to hold,
//! stop, reset), one stats delta out per second. This module owns the user
//! set of a shard; what a user does is in `user`, the run as a whole in
//! `control`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::open::{OpenShard, OpenStart};
use super::population::{Population, ShardWorkload};
use super::raw::build_plan;
use super::{pin_to_cpu, IoDriver, TaskRuns, Workload};
use crate::cli::IoMode;
use crate::http::ClientConfig;
use crate::script::runtime::{ShardContext, ShardScript};
use crate::stats::{OpenDelta, ShardStats, StatsDelta};

/// How often a shard looks at its command channel.
const CONTROL_TICK: Duration = Duration::from_millis(20);
/// How often a shard sends its stats delta.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// io_uring submission queue size: enough for a few thousand users' ops in
/// one batch; monoio submits early if it fills.
const URING_ENTRIES: u32 = 4096;

pub(crate) enum ShardCmd {
    /// Users of each class this shard holds.
    SetUsers(Vec<u32>),
    /// A run starts: fire the script's test_start (before any user).
    TestStart,
    /// The ramp reached its target (this many users): fire the script's
    /// spawning_complete. Sent to shard 0, the one that runs listeners.
    SpawningComplete(u32),
    /// The process is over Locust's CPU threshold (this many %): fire the
    /// script's cpu_warning. Sent to shard 0, once per process.
    CpuWarning(u32),
    /// A cluster worker's report is due: run the script's report_to_master
    /// listeners and send what they set. Sent to shard 0.
    ReportToMaster(ReportToMaster),
    /// Stop every user: gracefully, then cancelled after `grace`.
    Stop {
        grace: Duration,
    },
    /// Every shard has stopped and its last delta is merged: fire the
    /// script's test_stop (it reads the final stats), then report
    /// `test_stopped`. Sent to shard 0, the one that runs the listeners.
    RunTestStop,
    /// Drop stats recorded so far; later reports carry the new epoch.
    ResetStats {
        epoch: u64,
    },
    Recycle(StatsDelta),
    /// Start an open-model run on this shard (see `open`).
    Open(OpenStart),
    /// A running open model's new rate for this shard (iterations/s).
    SetRate(f64),
    /// A corrected-latency delta back for reuse.
    RecycleOpen(StatsDelta),
    Shutdown,
}

/// What a `ReportToMaster` command carries: the worker's node id (the
/// listeners' `client_id`) and where the answer goes.
pub(crate) struct ReportToMaster {
    pub client_id: String,
    pub answer: Sender<crate::script::custom_data::CustomData>,
}

pub(crate) struct ShardReport {
    pub shard: usize,
    pub epoch: u64,
    pub delta: StatsDelta,
    /// The last report after a Stop: no user of this shard is left.
    pub stopped: bool,
    /// The answer to `RunTestStop`: the listeners ran (their requests are
    /// in this delta).
    pub test_stopped: bool,
    /// Scripts: how often each task ran since the start or the last reset.
    pub task_runs: Option<Vec<TaskRuns>>,
    /// Open-model runs: iterations and corrected latencies since the last
    /// report (`None` in a closed-model run).
    pub open: Option<OpenDelta>,
    /// User tasks alive on this shard.
    pub live_users: u32,
}

/// What a shard is given at start: `Send` data it turns into its local plan.
#[derive(Clone)]
pub(crate) struct ShardSpec {
    pub index: usize,
    pub shards: usize,
    pub cpu: Option<usize>,
    pub io: IoMode,
    pub client: ClientConfig,
    pub workload: Workload,
    /// Class names in the order `SetUsers` counts them.
    pub classes: Vec<String>,
    /// The run's stop deadline, read by the Lua watchdog.
    pub run_stop: std::sync::Arc<crate::script::limits::RunStop>,
    /// `--stop-timeout`: also the grace of users retired by a ramp-down.
    pub stop_timeout: Duration,
    /// The control thread's merged stats, read by `locusta.stats`.
    pub run_stats: crate::script::stats::StatsHandle,
}

/// io_uring with completions deferred to when the shard waits for them
/// (DEFER_TASKRUN, one thread per ring): the kernel does not interrupt the
/// shard for every completion, which measured ~12% less CPU per request
/// (see benches/README.md). Kernels before 6.1 lack it: plain io_uring then.
pub fn build_uring_runtime(
) -> std::io::Result<monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>> {
    let mut tuned = io_uring::IoUring::builder();
    tuned.setup_single_issuer().setup_defer_taskrun();
    let build = |urb| {
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .uring_builder(urb)
            .with_entries(URING_ENTRIES)
            .enable_timer()
            .build()
    };
    build(tuned).or_else(|e| {
        log::debug!("io_uring without DEFER_TASKRUN ({e})");
        build(io_uring::IoUring::builder())
    })
}

pub(crate) fn spawn_shard(
    spec: ShardSpec,
    commands: Receiver<ShardCmd>,
    reports: Sender<ShardReport>,
    ready: Sender<Result<IoDriver, String>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("locusta-shard-{}", spec.index))
        .spawn(move || {
            if let Some(cpu) = spec.cpu {
                if let Err(e) = pin_to_cpu(cpu) {
                    log::warn!("shard {}: cannot pin to CPU {cpu}: {e}", spec.index);
                }
            }
            let want_uring = spec.io != IoMode::Epoll;
            if want_uring {
                match build_uring_runtime() {
                    Ok(mut rt) => {
                        let driver = IoDriver::IoUring;
                        return rt.block_on(shard_loop(spec, driver, ready, commands, reports));
                    }
                    Err(e) if spec.io == IoMode::Uring => {
                        let _ = ready.send(Err(format!(
                            "io_uring is not available here ({e}); use --io epoll"
                        )));
                        return;
                    }
                    Err(e) => log::debug!("io_uring unavailable ({e}), using epoll"),
                }
            }
            match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()
            {
                Ok(mut rt) => {
                    let driver = IoDriver::Epoll;
                    rt.block_on(shard_loop(spec, driver, ready, commands, reports))
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("cannot start the epoll driver: {e}")));
                }
            }
        })
}

/// Build this shard's workload (a Lua state per shard for scripts).
fn build_workload(
    spec: &ShardSpec,
    stats: &Rc<RefCell<ShardStats>>,
) -> Result<ShardWorkload, String> {
    match &spec.workload {
        Workload::Raw { targets, options } => Ok(ShardWorkload::Raw(Rc::new(build_plan(
            targets,
            options,
            spec.client.clone(),
            &mut stats.borrow_mut(),
        )))),
        Workload::Script {
            source,
            tags,
            default_host,
        } => {
            let ctx = ShardContext {
                shard: spec.index,
                stats: stats.clone(),
                client: spec.client.clone(),
                default_host: default_host.clone(),
                run_stop: Some(spec.run_stop.clone()),
                run_stats: Some(spec.run_stats.clone()),
            };
            ShardScript::load(source, tags, &spec.classes, ctx)
                .map(|s| ShardWorkload::Script(Rc::new(s)))
                .map_err(|e| e.to_string())
        }
    }
}

async fn shard_loop(
    spec: ShardSpec,
    driver: IoDriver,
    ready: Sender<Result<IoDriver, String>>,
    commands: Receiver<ShardCmd>,
    reports: Sender<ShardReport>,
) {
    let stats = Rc::new(RefCell::new(ShardStats::new()));
    let workload = match build_workload(&spec, &stats) {
        Ok(w) => w,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(driver));
    // Raw mode's open model records its corrected latency per URL row.
    let open_rows = match &spec.workload {
        Workload::Raw { targets, options } => targets
            .iter()
            .map(|t| (options.method, std::sync::Arc::from(t.path.as_str())))
            .collect(),
        Workload::Script { .. } => Vec::new(),
    };
    let open = OpenShard::new(open_rows);
    // Shared with the open model's scheduler, which creates users as
    // iterations need them (borrowed briefly, never across an await).
    let users = Rc::new(RefCell::new(Population::new(
        workload,
        stats.clone(),
        spec.classes.clone(),
        spec.index,
        spec.shards,
    )));
    let mut epoch = 0u64;
    let mut stop_grace = spec.stop_timeout;
    let mut stopping = false;
    let mut next_report = Instant::now() + REPORT_EVERY;
    let script = match &users.borrow().workload {
        ShardWorkload::Script(s) => Some(s.clone()),
        ShardWorkload::Raw(_) => None,
    };
    if let Some(s) = &script {
        // Once per process: shard 0's state runs the init listeners.
        s.event("init", None).await;
    }
    let report = |epoch: u64, stopped: bool| ShardReport {
        shard: spec.index,
        epoch,
        delta: stats.borrow_mut().take_delta(),
        stopped,
        test_stopped: false,
        task_runs: script.as_ref().map(|s| s.task_runs()),
        open: open.used().then(|| open.take_delta()),
        live_users: u32::try_from(users.borrow().live()).unwrap_or(u32::MAX),
    };
    loop {
        monoio::time::sleep(CONTROL_TICK).await;
        while let Ok(cmd) = commands.try_recv() {
            match cmd {
                ShardCmd::SetUsers(counts) => {
                    stopping = false;
                    if open.used() {
                        open.forget();
                    }
                    users.borrow_mut().set_counts(&counts, stop_grace);
                }
                ShardCmd::Open(start) => {
                    stopping = false;
                    open.start(start, users.clone());
                }
                ShardCmd::SetRate(rate) => open.set_rate(rate),
                ShardCmd::RecycleOpen(delta) => open.recycle(delta),
                ShardCmd::TestStart => {
                    if let Some(script) = &script {
                        script.test_start().await;
                    }
                }
                ShardCmd::SpawningComplete(users) => {
                    if let Some(script) = &script {
                        script.event("spawning_complete", Some(users)).await;
                    }
                }
                ShardCmd::CpuWarning(percent) => {
                    if let Some(script) = &script {
                        script.event("cpu_warning", Some(percent)).await;
                    }
                }
                ShardCmd::ReportToMaster(ask) => {
                    let data = match &script {
                        Some(s) => s.report_to_master(&ask.client_id),
                        None => Ok(Vec::new()),
                    };
                    let _ = ask.answer.send(data);
                }
                ShardCmd::Stop { grace } => {
                    stop_grace = grace;
                    users.borrow_mut().stop_all(grace);
                    // After the users' stop flags: idle ones wake to see it.
                    open.stop();
                    stopping = true;
                }
                ShardCmd::RunTestStop => {
                    if let Some(script) = &script {
                        // Listeners that wait (a sleep, a request) are not
                        // cut by the watchdog: bound them as on_stop is.
                        let limit = super::population::ON_STOP_LIMIT;
                        if monoio::time::timeout(limit, script.test_stop())
                            .await
                            .is_err()
                        {
                            log::warn!("test_stop listeners still ran after {limit:?}: cut short");
                        }
                    }
                    let done = ShardReport {
                        test_stopped: true,
                        ..report(epoch, false)
                    };
                    if reports.send(done).is_err() {
                        return;
                    }
                }
                ShardCmd::ResetStats { epoch: e } => {
                    epoch = e;
                    if let Some(s) = &script {
                        s.reset_task_runs();
                        s.event("reset_stats", None).await;
                    }
                    open.reset();
                    let old = stats.borrow_mut().take_delta();
                    stats.borrow_mut().recycle(old);
                }
                ShardCmd::Recycle(delta) => stats.borrow_mut().recycle(delta),
                ShardCmd::Shutdown => {
                    users.borrow_mut().stop_all(Duration::ZERO);
                    open.stop();
                    if let Some(s) = &script {
                        let limit = super::population::ON_STOP_LIMIT;
                        let _ = monoio::time::timeout(limit, s.event("quitting", None)).await;
                    }
                    let _ = reports.send(report(epoch, true));
                    return;
                }
            }
        }
        let now = Instant::now();
        let killed = users.borrow_mut().force_overdue(now);
        if killed > 0 && !stopping {
            // A ramp-down's users past the stop timeout (Locust logs this
            // in stop_users; a whole-run stop is logged by the control
            // thread, once for all shards).
            log::info!(
                "Not all users finished their tasks & terminated in {} seconds. Stopping them...",
                super::control::secs_text(stop_grace)
            );
        }
        let live = users.borrow().live();
        if stopping && live == 0 {
            stopping = false;
            // test_stop fires later (RunTestStop), once every shard's last
            // delta is merged, so its listeners see the final stats.
            next_report = Instant::now() + REPORT_EVERY;
            if reports.send(report(epoch, true)).is_err() {
                return;
            }
        } else if now >= next_report {
            next_report += REPORT_EVERY;
            if reports.send(report(epoch, false)).is_err() {
                return; // the control thread is gone: nobody to work for
            }
        }
    }
}
