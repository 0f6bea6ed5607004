//! locusta's terminal dashboard: drive and watch a run from a terminal, the
//! way Locust's web UI does from a browser.
//!
//! The crate knows nothing of the engine. A front end implements
//! [`RunHandle`] (start, retarget, stop, reset, snapshot) and hands plain
//! [`DashboardSnapshot`]s over; [`run`] owns the terminal until the user
//! quits. Inside, three parts stay apart so each is tested alone:
//! - [`app`]: the pure state machine (keys in, [`Action`]s out);
//! - [`mod@render`]: one frame from an [`App`] and a snapshot, one module per
//!   view (golden-text tests on ratatui's `TestBackend`);
//! - `terminal`: raw mode, the alternate screen, the 250 ms tick, and
//!   restoring the terminal on every exit path, panics included.

pub mod app;
pub mod fixtures;
pub mod format;
pub mod model;
pub mod render;
mod terminal;

pub use app::{Action, App, AppOptions, Form, FormField, FormKind, SortColumn, View};
pub use model::{
    DashboardSnapshot, ExceptionRow, FailureRow, HistoryPoint, OpenModelLine, RunHandle, RunState,
    StatsRow, Topology, WorkerRow,
};
/// The ratatui (and through it crossterm) this crate draws with, for
/// callers that drive [`fn@render`] on a backend of their own (benchmarks).
pub use ratatui;
pub use render::render;
pub use terminal::{run, Options, Outcome, QuitReason, TICK};
