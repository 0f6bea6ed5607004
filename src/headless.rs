//! The headless front end: start the swarm, print Locust's tables, write the
//! CSV files every second, stop on `-t`, SIGINT or SIGTERM, and always write
//! the final reports before returning the exit code.
//!
//! It drives the run only through [`RunControl`], so it works the same on a
//! local engine and on a cluster master.
//!
//! The end of a run (`stop_and_wait`, `finish`) and the CSV files
//! (`open_csv`, `write_csv`) are shared with the dashboard front end, so
//! both end a run the same way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::RunConfig;
use crate::engine::{RunControl, RunState};
use crate::report::{self, CsvWriter};

const POLL: Duration = Duration::from_millis(50);
const CSV_EVERY: Duration = Duration::from_secs(1);
/// When the run's second had not closed yet at a CSV write, the next write
/// comes this much later (then every second again), so writes fall just
/// after the stats' ticks and every second gets its history row.
pub(crate) const CSV_RETRY: Duration = Duration::from_millis(250);
const PRINT_EVERY: Duration = Duration::from_secs(2);

/// Run to completion; returns the process exit code.
pub fn run(cfg: &RunConfig, controller: &dyn RunControl) -> anyhow::Result<i32> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())
            .context("cannot install the signal handler")?;
    }
    let mut csv = open_csv(cfg)?;

    controller.start(cfg.users, cfg.spawn_rate);
    let started = Instant::now();
    if let Some(t) = cfg.run_time {
        log::info!("Run time limit set to {} seconds", t.as_secs());
    }
    let mut next_csv = started + CSV_EVERY;
    let mut next_print = started + PRINT_EVERY;
    let mut reset_pending = cfg.reset_stats;
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
        if cfg.run_time.is_some_and(|t| started.elapsed() >= t) {
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
        if now >= next_csv {
            next_csv += CSV_EVERY;
            if let Some(csv) = csv.as_mut() {
                if !write_csv(csv, controller, false)? {
                    next_csv = now + CSV_RETRY;
                }
            }
        }
        if cfg.print_stats && now >= next_print {
            next_print += PRINT_EVERY;
            let snap = controller.snapshot();
            report::print(&format!("{}\n", report::request_table(&snap.stats, true)));
        }
    }

    stop_and_wait(cfg, controller);
    let code = finish(cfg, controller, csv.as_mut())?;
    // locusta.quit(n) / os.exit(n) chose the exit status.
    Ok(crate::script::quit_requested().unwrap_or(code))
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

/// Create the directory part of `path` (`out/run` -> `out`) when missing.
/// `path` is a prefix or a file name, not a directory itself.
pub fn create_parent_dir(path: &str) -> std::io::Result<()> {
    match std::path::Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

/// Stop every user and wait (stop timeout + killed users' on_stop bound +
/// 5 s at most) for the run to reach Stopped.
pub(crate) fn stop_and_wait(cfg: &RunConfig, controller: &dyn RunControl) {
    controller.stop();
    let grace = cfg.stop_timeout + crate::engine::ON_STOP_LIMIT + Duration::from_secs(5);
    if !controller.wait_for(RunState::Stopped, grace) {
        log::warn!("users did not stop within {grace:?}; reporting what arrived");
    }
}

/// The end of a run, once users stopped: the final CSV files, Locust's
/// final tables on stdout, and the exit code (`--exit-code-on-error` when
/// any request failed or a script raised an error, else 0).
pub(crate) fn finish(
    cfg: &RunConfig,
    controller: &dyn RunControl,
    csv: Option<&mut CsvWriter>,
) -> anyhow::Result<i32> {
    let snap = controller.snapshot();
    if let Some(csv) = csv {
        write_csv(csv, controller, true)?;
    }
    let failed = snap.stats.aggregated.num_failures > 0 || !snap.stats.exceptions.is_empty();
    let code = if failed { cfg.exit_code_on_error } else { 0 };
    // Locust's line, logged before its final tables.
    log::info!("Shutting down (exit code {code})");
    report::print(&format!("{}\n", report::request_table(&snap.stats, false)));
    report::print(&format!("{}\n", report::percentile_table(&snap.stats)));
    let failures = report::failures_table(&snap.stats);
    if !failures.is_empty() {
        report::print(&format!("{failures}\n"));
    }
    let exceptions = report::exceptions_table(&snap.stats);
    if !exceptions.is_empty() {
        report::print(&format!("{exceptions}\n"));
    }
    Ok(code)
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
    Ok(new_second)
}
