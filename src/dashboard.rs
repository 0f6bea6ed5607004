//! The terminal dashboard front end: adapts a [`RunControl`] to the
//! `locusta-tui` crate. (Being built: falls back to headless for now.)

use crate::config::RunConfig;
use crate::engine::RunControl;

/// Run the dashboard until the user quits; returns the exit code.
pub fn run(cfg: &RunConfig, control: &dyn RunControl) -> anyhow::Result<i32> {
    log::warn!("the dashboard is not built yet: running headless");
    crate::headless::run(cfg, control)
}
