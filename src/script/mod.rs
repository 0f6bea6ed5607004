//! Lua user scripts: Locust's user model in Lua 5.4 (mlua, vendored).
//!
//! One Lua state per shard (`ShardScript`), one coroutine per user. A
//! request from Lua is an async Rust call that suspends the user's coroutine
//! until the response arrives. This module owns loading and validating a
//! script, the `locusta` Lua API (prelude in `lua/locusta.lua`), users'
//! task loops, and the `client`/`response` bindings. It does not own how
//! many users of each class run where (the engine's dispatcher does) or
//! what the numbers mean (`stats`).
//!
//! Submodules:
//! - `runtime`: the Lua state, `require "locusta"`, user classes, tasks,
//!   task sets, wait times, events, exceptions, `inspect` (helper A).
//! - `client`: `self.client` and the response object (helper B);
//!   `client_request` sends and records one request, `client_build`
//!   serializes it, `client_redirect` follows its redirects and
//!   `client_decode` decodes compressed bodies when the script reads them.
//! - `json`: `locusta.json` and Lua <-> JSON (helper B).
//! - `limits`: what a script may cost (time without yielding, body size,
//!   Lua heap), `locusta.quit`'s exit code and `locusta.process_exit_code`.
//! - `stats`: `locusta.stats`, the run's stats as Locust's `StatsEntry`.
//! - `tcp`, `websocket`: `locusta.tcp` and `client:websocket` (on
//!   `tcp_io`, the socket core; `websocket_frame`, RFC 6455 framing).
//! - `fire`: recording a request the script timed itself
//!   (`locusta.events.request:fire`, `locusta.measure`).
//! - `custom_data`: cluster custom data (`report_to_master` /
//!   `worker_report`) between Lua and msgpack, bounded both ways.

use std::path::PathBuf;

/// The script as read from disk at startup: `Send`, so every shard thread
/// can build its own Lua state from it.
#[derive(Clone, Debug)]
pub struct ScriptSource {
    /// Shown in error messages and tracebacks (`shop.lua:12: …`).
    pub path: PathBuf,
    pub text: String,
    /// What each Lua state running it may cost (from the flags); shared,
    /// so the workload every shard gets a copy of stays small.
    pub limits: std::sync::Arc<ScriptLimits>,
}

impl ScriptSource {
    pub fn read(path: &str) -> Result<ScriptSource, ScriptError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScriptError::Load {
            message: format!("cannot read {path}: {e}"),
        })?;
        Ok(ScriptSource {
            path: PathBuf::from(path),
            text,
            limits: Default::default(),
        })
    }
}

/// A class's `host = locusta.DEMO_HOST`: the built-in demo target, started
/// for the run when no `-H` is given (a script made to try out, such as
/// the shipped examples); with `-H`, the class uses `-H` like a class
/// without a host. Any other class without a host and no `-H` is an error.
pub const DEMO_HOST: &str = "locusta:demo";

/// `-T/--tags` and `-E/--exclude-tags`.
#[derive(Clone, Debug, Default)]
pub struct TagFilter {
    /// When set, only tasks with at least one of these tags run.
    pub include: Option<Vec<String>>,
    /// Tasks with any of these tags never run.
    pub exclude: Vec<String>,
}

/// A user class as declared by the script (for `--list`, dispatch, checks).
#[derive(Clone, Debug, PartialEq)]
pub struct ClassInfo {
    pub name: String,
    pub weight: u32,
    pub fixed_count: Option<u32>,
    pub host: Option<String>,
    pub tasks: Vec<TaskInfo>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TaskInfo {
    pub name: String,
    pub weight: u32,
    pub tags: Vec<String>,
}

/// A script that cannot run: shown to the user before any user starts (exit 2).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScriptError {
    /// Syntax or runtime error while loading, or API misuse found at load
    /// time; `message` starts with `file:line:` where Lua knows it.
    #[error("{message}")]
    Load { message: String },
}

pub mod client;
mod client_build;
pub mod client_cookies;
pub mod client_decode;
mod client_options;
mod client_redirect;
mod client_request;
pub mod client_response;
mod client_sink;
pub mod custom_data;
pub mod fire;
pub mod json;
pub mod limits;
pub mod park;
pub mod runtime;
pub mod stats;
pub mod tcp;
mod tcp_io;
pub mod websocket;
mod websocket_frame;

pub use limits::{process_exit_code, quit_requested, ScriptLimits};
