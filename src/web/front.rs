//! The web front end: what runs when there is no terminal to draw the
//! dashboard on and no `--headless` (a container, a service), as Locust's
//! web UI does.
//!
//! The run waits in READY for `POST /swarm` (the page's start form) unless
//! `--autostart` starts it at once with -u/-r (or the load shape); `-t`
//! then stops that swarm. A stopped run may be started again from the
//! page: the process keeps serving until SIGINT or SIGTERM, then stops the
//! users and writes every report (`--csv`, `--html`, `--json`...) and
//! returns the exit code, exactly as a headless run ends (it reuses
//! `headless`'s end of run; nothing is copied).
//!
//! It does not own the server (`server`, started by the binary beside this
//! loop) nor what the endpoints do (`api`); like them it drives the run
//! only through [`RunControl`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::RunConfig;
use crate::engine::RunControl;
use crate::headless;

const POLL: Duration = Duration::from_millis(50);
const EVERY_SECOND: Duration = Duration::from_secs(1);

/// Serve the run until a stop signal (or the script's `locusta.quit`);
/// returns the process exit code.
pub fn run(cfg: &RunConfig, control: &dyn RunControl) -> anyhow::Result<i32> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())
            .context("cannot install the signal handler")?;
    }
    let mut csv = headless::open_csv(cfg)?;
    let mut hdr = headless::open_hdr_log(cfg)?;
    let mut shape = None;
    let mut stop_at = None;
    if cfg.autostart {
        shape = crate::shape::start_for(cfg);
        if shape.is_none() {
            match cfg.open_model {
                Some(model) => control.start_open(model),
                None => control.start(cfg.users, cfg.spawn_rate),
            }
            if let Some(t) = cfg.run_time {
                log::info!("Run time limit set to {} seconds", t.as_secs());
                stop_at = Some(Instant::now() + t);
            }
        }
    } else {
        log::info!(
            "No terminal and no --headless: the web front end waits for a swarm to be started \
             from the page or with POST /swarm (pass --autostart to start -u/-r at once, \
             --headless for a run without the web UI)"
        );
    }
    let mut next_second = Instant::now() + EVERY_SECOND;
    let mut hdr_ok = true;
    let mut shape_failed = false;
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
        match shape.as_mut().and_then(|s| s.poll(control)) {
            Some(crate::shape::ShapeEnd::Finished) => {
                log::info!("The load shape ended: the swarm stops; the web UI still serves");
                shape = None;
                control.stop();
            }
            Some(crate::shape::ShapeEnd::Failed(_)) => {
                shape_failed = true;
                shape = None;
                control.stop();
            }
            None => {}
        }
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            stop_at = None;
            log::info!("--run-time limit reached: the swarm stops; the web UI still serves");
            control.stop();
        }
        let now = Instant::now();
        if now >= next_second {
            next_second += EVERY_SECOND;
            if let Some(csv) = csv.as_mut() {
                headless::write_csv(csv, control, false)?;
            }
            hdr_ok &= headless::write_hdr_log(&mut hdr, control, false);
        }
    }
    drop(shape);
    headless::end_run(cfg, control, csv.as_mut(), &mut hdr, hdr_ok, shape_failed)
}
