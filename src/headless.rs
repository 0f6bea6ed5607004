//! The headless front end: start the swarm, print Locust's tables, write the
//! CSV files every second, stop on `-t`, SIGINT or SIGTERM, and always write
//! the final reports before returning the exit code.
//!
//! It drives the run only through [`RunControl`], so it works the same on a
//! local engine and on a cluster master.
//!
//! The end of a run (`stop_and_wait`, `finish`), the CSV files
//! (`open_csv`, `write_csv`) and the final report's data (`gather`) are
//! shared with the dashboard and web front ends, so all end a run the same
//! way (the web API also renders `/stats/report` from `gather`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;

use crate::config::RunConfig;
use crate::engine::{RunControl, RunState, Workload};
use crate::report::hdr_log::HdrLog;
use crate::report::progress::{self, Progress};
use crate::report::{self, CsvWriter};

const POLL: Duration = Duration::from_millis(50);
const CSV_EVERY: Duration = Duration::from_secs(1);
/// When the run's second had not closed yet at a CSV write, the next write
/// comes this much later (then every second again), so writes fall just
/// after the stats' ticks and every second gets its history row.
pub(crate) const CSV_RETRY: Duration = Duration::from_millis(250);
const PRINT_EVERY: Duration = Duration::from_secs(2);
/// The progress line and the HDR log's intervals (the stats' second).
const EVERY_SECOND: Duration = Duration::from_secs(1);

/// Run to completion; returns the process exit code.
pub fn run(cfg: &RunConfig, controller: &dyn RunControl) -> anyhow::Result<i32> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())
            .context("cannot install the signal handler")?;
    }
    let mut csv = open_csv(cfg)?;
    let mut hdr = open_hdr_log(cfg)?;
    // Not on --only-summary, nor when stderr is a file or a pipe.
    let show_progress = cfg.print_stats && progress::available();

    // A load shape starts the run at its first answer (at once).
    let mut shape = crate::shape::start_for(cfg);
    let mut shape_failed = false;
    if shape.is_none() {
        match cfg.open_model {
            Some(model) => controller.start_open(model),
            None => controller.start(cfg.users, cfg.spawn_rate),
        }
    }
    let started = Instant::now();
    if let Some(t) = cfg.run_time {
        log::info!("Run time limit set to {} seconds", t.as_secs());
    }
    let mut next_csv = started + CSV_EVERY;
    let mut next_print = started + PRINT_EVERY;
    let mut next_second = started + EVERY_SECOND;
    let mut hdr_ok = true;
    let mut reset_pending = cfg.reset_stats;
    let mut next_abort_check = started + ABORT_CHECK_EVERY;
    warn_unabortable(cfg);
    loop {
        std::thread::sleep(POLL);
        if interrupted.load(Ordering::Relaxed) {
            log::info!("Got a stop signal: stopping and writing reports");
            break;
        }
        if let Some(code) = crate::script::quit_requested() {
            log::info!("The script called locusta.quit({code}): stopping and writing reports");
            break;
        }
        match shape.as_mut().and_then(|s| s.poll(controller)) {
            Some(crate::shape::ShapeEnd::Finished) => break,
            Some(crate::shape::ShapeEnd::Failed(_)) => {
                shape_failed = true;
                break;
            }
            None => {}
        }
        if shape.is_none() && cfg.run_time.is_some_and(|t| started.elapsed() >= t) {
            log::info!("--run-time limit reached, shutting down");
            break;
        }
        // Locust's --reset-stats: once, when the ramp first completes.
        if reset_pending && controller.status().state == RunState::Running {
            reset_pending = false;
            log::info!("Resetting stats");
            controller.reset_stats();
        }
        let now = Instant::now();
        // Not before --reset-stats: what crossed then is about to go.
        if !reset_pending && now >= next_abort_check {
            next_abort_check += ABORT_CHECK_EVERY;
            if threshold_abort(cfg, controller) {
                break;
            }
        }
        if now >= next_csv {
            next_csv += CSV_EVERY;
            if let Some(csv) = csv.as_mut() {
                if !write_csv(csv, controller, false)? {
                    next_csv = now + CSV_RETRY;
                }
            }
        }
        if now >= next_second {
            next_second += EVERY_SECOND;
            hdr_ok &= write_hdr_log(&mut hdr, controller, false);
            if show_progress {
                progress::show(&progress_of(cfg, controller));
            }
        }
        if cfg.print_stats && now >= next_print {
            next_print += PRINT_EVERY;
            let snap = controller.snapshot();
            console(cfg, &report::request_table(&snap.stats, true));
            if let Some(open) = controller.open_model() {
                let achieved = report::open_model::achieved_rate(
                    &open,
                    snap.stats.start_time,
                    SystemTime::now(),
                );
                let table = report::open_model::latency_table(&snap.stats, &open, achieved);
                console(cfg, &table);
            }
        }
    }

    drop(shape);
    progress::clear();
    end_run(
        cfg,
        controller,
        csv.as_mut(),
        &mut hdr,
        hdr_ok,
        shape_failed,
    )
}

/// How every front end (headless, dashboard, web) ends a run: stop the
/// users if any still run, close the HDR log's last interval, [`finish`],
/// and the exit code: a failed HDR log or load shape turns a 0 into 1,
/// and `locusta.quit(n)` / `os.exit(n)` beat everything.
pub(crate) fn end_run(
    cfg: &RunConfig,
    controller: &dyn RunControl,
    csv: Option<&mut CsvWriter>,
    hdr: &mut Option<HdrLog>,
    hdr_ok: bool,
    shape_failed: bool,
) -> anyhow::Result<i32> {
    if !matches!(
        controller.status().state,
        RunState::Ready | RunState::Stopped
    ) {
        stop_and_wait(cfg, controller);
    }
    let hdr_ok = write_hdr_log(hdr, controller, true) && hdr_ok;
    let mut code = finish(cfg, controller, csv)?;
    if (!hdr_ok || shape_failed) && code == 0 {
        code = 1;
    }
    Ok(crate::script::quit_requested().unwrap_or(code))
}

/// How often `--threshold-abort` looks at the stats (they change once a
/// second, when the shards' deltas are merged).
pub(crate) const ABORT_CHECK_EVERY: Duration = Duration::from_secs(1);

/// `--threshold-abort` with no threshold that can fail before the end:
/// say so at the start rather than let the user wait for an abort.
pub(crate) fn warn_unabortable(cfg: &RunConfig) {
    let opts = &cfg.reports;
    if opts.threshold_abort && !opts.thresholds.iter().any(|t| t.fails_for_good()) {
        log::warn!(
            "--threshold-abort: no threshold here can fail before the end (only failures, \
             requests and max with < or <= can); they are judged when the run ends"
        );
    }
}

/// `--threshold-abort`: whether a threshold failed for good on the stats
/// so far (logged, with the measured value); the caller stops the run.
pub(crate) fn threshold_abort(cfg: &RunConfig, controller: &dyn RunControl) -> bool {
    let opts = &cfg.reports;
    if !opts.threshold_abort || !opts.thresholds.iter().any(|t| t.fails_for_good()) {
        return false;
    }
    let stats = controller.snapshot().stats;
    match report::threshold::breached(&opts.thresholds, &stats) {
        Some(why) => {
            log::warn!("{why}: stopping the run and writing reports (--threshold-abort)");
            true
        }
        None => false,
    }
}

/// `--csv PREFIX`: create the four files (with their headers) now, and
/// the prefix's directory first when missing, as Locust does.
pub(crate) fn open_csv(cfg: &RunConfig) -> anyhow::Result<Option<CsvWriter>> {
    Ok(match &cfg.csv_prefix {
        Some(prefix) => Some({
            create_parent_dir(prefix)
                .with_context(|| format!("cannot create the directory for --csv {prefix}"))?;

            CsvWriter::create(prefix, cfg.csv_full_history)
                .with_context(|| format!("cannot create the CSV files for --csv {prefix}"))?
        }),
        None => None,
    })
}

/// `--hdr-log FILE`: create it with its headers now, so a path that
/// cannot be written stops the run before it starts.
pub(crate) fn open_hdr_log(cfg: &RunConfig) -> anyhow::Result<Option<HdrLog>> {
    cfg.reports
        .hdr_log
        .as_deref()
        .map(|path| HdrLog::create(path, SystemTime::now()))
        .transpose()
}

/// Append the intervals closed since the last call (`last`: and the open
/// one, at the end of the run). A write error is said once and ends the
/// log, not the run; returns false then (the exit status becomes 1).
pub(crate) fn write_hdr_log(
    hdr: &mut Option<HdrLog>,
    controller: &dyn RunControl,
    last: bool,
) -> bool {
    let Some(log) = hdr.as_mut() else {
        return true;
    };
    match log.write(&controller.drain_intervals(last)) {
        Ok(()) => true,
        Err(e) => {
            progress::clear();
            log::error!("{e:#}; no more intervals are written to it");
            *hdr = None;
            false
        }
    }
}

/// What the progress line shows now.
fn progress_of(cfg: &RunConfig, controller: &dyn RunControl) -> Progress {
    let snap = controller.snapshot();
    let total = &snap.stats.aggregated;
    Progress {
        elapsed: snap.elapsed,
        run_time: cfg.run_time,
        users: snap.status.users,
        target_users: snap.status.target_users,
        rps: total.current_rps,
        requests: total.num_requests,
        failures: total.num_failures,
    }
}

/// A console table (and its blank line): on stdout, or on stderr when
/// `--json` owns stdout (so `locusta --json ... | jq` parses).
fn console(cfg: &RunConfig, table: &str) {
    progress::clear();
    if cfg.reports.json_stdout {
        report::eprint_line(table);
    } else {
        report::print(&format!("{table}\n"));
    }
}

/// Create the directory part of `path` (`out/run` -> `out`) when missing.
/// `path` is a prefix or a file name, not a directory itself.
pub fn create_parent_dir(path: &str) -> std::io::Result<()> {
    match std::path::Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

/// Stop every user and wait (stop timeout + killed users' on_stop bound +
/// the test_stop listeners' bound + 5 s at most) for the run to reach
/// Stopped.
pub(crate) fn stop_and_wait(cfg: &RunConfig, controller: &dyn RunControl) {
    controller.stop();
    let grace = cfg.stop_timeout + 2 * crate::engine::ON_STOP_LIMIT + Duration::from_secs(5);
    if !controller.wait_for(RunState::Stopped, grace) {
        log::warn!("users did not stop within {grace:?}; reporting what arrived");
    }
}

/// Exit status when a `--threshold` failed (k6 uses 99; 3 keeps clear of
/// Locust's 1 and usage errors' 2).
pub const THRESHOLD_FAILED: i32 = 3;

/// The end of a run, once users stopped: the final CSV files, Locust's
/// final tables on stdout, the HTML and JSON reports, the thresholds'
/// verdicts, and the exit code: the script's `locusta.process_exit_code`
/// when set, else 3 when a threshold failed, else `--exit-code-on-error`
/// when any request failed or a script raised an error, else 1 when a
/// report could not be written, else 0. (`locusta.quit(n)` beats them
/// all: the callers apply it.)
pub(crate) fn finish(
    cfg: &RunConfig,
    controller: &dyn RunControl,
    csv: Option<&mut CsvWriter>,
) -> anyhow::Result<i32> {
    if let Some(csv) = csv {
        write_csv(csv, controller, true)?;
    }
    let final_report = gather(cfg, controller);
    let stats = &final_report.stats;
    let failed = stats.aggregated.num_failures > 0 || !stats.exceptions.is_empty();
    let mut code = if failed { cfg.exit_code_on_error } else { 0 };
    console(cfg, &report::request_table(stats, false));
    console(cfg, &report::percentile_table(stats));
    if let Some(open) = &final_report.open_model {
        let table = report::open_model::latency_table(stats, &open.report, open.achieved_rate);
        console(cfg, &table);
    }
    let failures = report::failures_table(stats);
    if !failures.is_empty() {
        console(cfg, &failures);
    }
    let exceptions = report::exceptions_table(stats);
    if !exceptions.is_empty() {
        console(cfg, &exceptions);
    }
    if !write_reports(cfg, &final_report) && code == 0 {
        code = 1;
    }
    let verdicts = report::threshold::evaluate(&cfg.reports.thresholds, &final_report);
    if !verdicts.is_empty() {
        let mut text = String::from("Thresholds:\n");
        for v in &verdicts {
            text += &format!("    {}\n", v.line);
        }
        console(cfg, &text);
    }
    if verdicts.iter().any(|v| !v.passed) {
        code = THRESHOLD_FAILED;
    }
    // Locust's environment.process_exit_code, set by a test_stop listener.
    if let Some(chosen) = crate::script::process_exit_code() {
        code = chosen;
    }
    // Locust's line, logged at the end of its run.
    log::info!("Shutting down (exit code {code})");
    Ok(code)
}

/// The final stats and what the reports say about the run (also the web
/// API's `/stats/report`, taken while the run goes on).
pub(crate) fn gather(cfg: &RunConfig, controller: &dyn RunControl) -> report::FinalReport {
    let snap = controller.snapshot();
    let ended = SystemTime::now();
    let started = snap
        .status
        .started_at
        .and_then(|t| ended.checked_sub(t.elapsed()))
        .unwrap_or(snap.stats.start_time);
    let script = match &cfg.workload {
        Workload::Script { source, .. } => Some(source.path.display().to_string()),
        Workload::Raw { .. } => None,
    };
    // Over the time requests were made, as Locust's total_rps (not up to
    // now: the stop and the reports' writing are not the schedule's).
    // From the swarm's start (or a later reset), not the engine's launch.
    let last = snap.stats.last_request.unwrap_or(ended);
    let since = started.max(snap.stats.start_time);
    let open_model = controller.open_model().map(|open| report::OpenModel {
        achieved_rate: report::open_model::achieved_rate(&open, since, last),
        report: open,
    });
    report::FinalReport {
        open_model,
        info: report::RunInfo {
            version: env!("CARGO_PKG_VERSION"),
            command_line: std::env::args().collect(),
            started,
            ended,
            host: target_host(cfg),
            script,
            classes: cfg.classes.clone(),
            script_classes: cfg.script_classes.clone(),
            topology: snap.topology,
            target_users: snap.status.target_users,
            spawn_rate: snap.status.spawn_rate,
            run_time: cfg.run_time,
        },
        history: controller.history(),
        histograms: controller.histograms(),
        task_runs: controller.task_runs(),
        stats: snap.stats,
    }
}

/// Where load went: `-H`, else the classes' own hosts, else the raw URLs'
/// origin (the start-up line's label also names the script).
pub(crate) fn target_host(cfg: &RunConfig) -> String {
    let host = match &cfg.workload {
        Workload::Raw { targets, .. } => targets.first().map(|t| t.origin.clone()),
        Workload::Script {
            default_host: Some(t),
            ..
        } => Some(t.origin.clone()),
        Workload::Script { .. } => {
            let run = |name: &str| cfg.classes.iter().any(|c| c.name == name);
            let hosts: Vec<&str> = cfg
                .script_classes
                .iter()
                .filter(|c| run(&c.name))
                .filter_map(|c| c.host.as_deref())
                .collect();
            (!hosts.is_empty()).then(|| hosts.join(", "))
        }
    };
    host.unwrap_or_else(|| cfg.target_label.clone())
}

/// `--html`, `--json`, `--json-file`: each written on its own, so one that
/// fails (a full disk, a missing directory we cannot create) is said and
/// the others are still written. Returns whether all were.
fn write_reports(cfg: &RunConfig, final_report: &report::FinalReport) -> bool {
    let opts = &cfg.reports;
    if opts.json_stdout {
        report::print(&report::json::render(final_report));
    }
    let mut all = true;
    // Locust's {u}, {r}, {t} in the --html file name.
    let html = opts
        .html
        .as_deref()
        .map(|p| report::html::file_name(p, cfg.users, cfg.spawn_rate, cfg.run_time));
    let files = [
        ("--html", html, report::html::render as fn(&_) -> String),
        (
            "--json-file",
            opts.json_file.as_deref().map(report::json::file_name),
            report::json::render,
        ),
    ];
    for (flag, path, render) in files {
        let Some(path) = path.as_deref() else {
            continue;
        };
        let written =
            create_parent_dir(path).and_then(|()| std::fs::write(path, render(final_report)));
        if let Err(e) = written {
            report::eprint_line(&format!("error: cannot write {flag} {path}: {e}"));
            all = false;
        }
    }
    all
}

/// Append the history rows of the latest closed second (if not written
/// yet) and rewrite the stats, failures and exceptions files (`last`: the
/// final write, for error messages). Returns whether a new second was
/// there to write (see `CsvWriter::append_history`).
pub(crate) fn write_csv(
    csv: &mut CsvWriter,
    controller: &dyn RunControl,
    last: bool,
) -> anyhow::Result<bool> {
    let snap = controller.snapshot();
    let what = if last { "final" } else { "periodic" };
    let new_second = csv
        .append_history(&snap.stats)
        .with_context(|| format!("writing the {what} stats history CSV"))?;
    csv.write_snapshot(&snap.stats)
        .with_context(|| format!("writing the {what} stats CSV"))?;
    if let Some(open) = controller.open_model() {
        csv.write_open_model(&snap.stats, &open)
            .with_context(|| format!("writing the {what} open-model CSV"))?;
    }
    Ok(new_second)
}
