//! What the end-of-run reports (HTML, JSON, thresholds) are rendered from:
//! one [`FinalReport`], gathered once after users stopped, so every report
//! of a run shows the same numbers.
//!
//! This module owns the shape of that data, not gathering it (the front
//! ends, through `RunControl`) nor rendering it (`html`, `json`,
//! `threshold`).

use std::time::{Duration, SystemTime};

use crate::engine::{ClassSpec, TaskRuns, Topology};
use crate::script::ClassInfo;
use crate::stats::{EntryHistogram, HistoryPoint, OpenModelReport, StatsView};

/// The run itself: when, what, where, how many.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// locusta's version.
    pub version: &'static str,
    /// The process's arguments, program name first.
    pub command_line: Vec<String>,
    /// When the swarm started (stats reset: when they restarted).
    pub started: SystemTime,
    /// When the final stats were taken.
    pub ended: SystemTime,
    /// Where load went (`-H`, a class's host, or the raw URL's origin).
    pub host: String,
    /// The script's path; `None` in raw mode.
    pub script: Option<String>,
    /// The user classes run, with weights or fixed counts.
    pub classes: Vec<ClassSpec>,
    /// What the script declares (tasks, weights); empty in raw mode.
    pub script_classes: Vec<ClassInfo>,
    /// Shards and I/O driver, or a master's workers.
    pub topology: Topology,
    /// `-u` (the last target set) and `-r`.
    pub target_users: u32,
    pub spawn_rate: f64,
    /// `-t`, when given.
    pub run_time: Option<Duration>,
}

/// Everything the end-of-run reports show.
#[derive(Clone, Debug)]
pub struct FinalReport {
    pub info: RunInfo,
    pub stats: StatsView,
    /// One point per second since the start or the last reset.
    pub history: Vec<HistoryPoint>,
    /// Per row, Aggregated last.
    pub histograms: Vec<EntryHistogram>,
    /// How often each task ran; empty where not counted.
    pub task_runs: Vec<TaskRuns>,
    /// An open-model run's counters and corrected latencies (`None`:
    /// closed model).
    pub open_model: Option<OpenModel>,
}

/// What the end-of-run reports show of an open-model run.
#[derive(Clone, Debug)]
pub struct OpenModel {
    pub report: OpenModelReport,
    /// Iterations started per second over the run.
    pub achieved_rate: f64,
}
