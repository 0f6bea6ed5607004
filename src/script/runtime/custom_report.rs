//! The Lua side of cluster custom data: on a worker, shard 0 runs the
//! script's `report_to_master(data, client_id)` listeners when a report is
//! due ([`ShardScript::report_to_master`]); on the master, one Lua state of
//! its own runs `worker_report(node_id, data)` listeners for every report
//! received ([`WorkerReportScript`], `!Send`: built on its thread).
//!
//! Listeners are plain calls under the watchdog (they may not wait: a
//! sleep or a request in one is an error); an error names file:line and
//! ends that firing only. Conversions and their bounds are
//! `crate::script::custom_data`; when to fire is `crate::cluster`.

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{Function, Lua, Table};

use super::errors::{error_text, load_error};
use super::state::State;
use super::watchdog::Watchdog;
use super::ShardScript;
use crate::http::ClientConfig;
use crate::script::custom_data::{custom_to_table, table_to_custom, CustomData, CustomError};
use crate::script::{ScriptError, ScriptSource};
use crate::stats::ShardStats;

/// The listener list of `locusta.events[which]` (a table the prelude keeps
/// and scripts append to).
pub(super) fn listeners(internal: &Table, which: &str) -> mlua::Result<Table> {
    internal.get::<Function>("listeners")?.call(which)
}

/// Call every function of `list` with `args`, each on a fresh watchdog
/// slice; the first error stops the firing and is returned with file:line.
fn call_each(
    lua: &Lua,
    list: &Table,
    dog: &Watchdog,
    args: impl mlua::IntoLuaMulti + Clone,
) -> Result<(), String> {
    for f in list.sequence_values::<Function>() {
        let f = f.map_err(|e| error_text(&e))?;
        let _slice = dog.sync_slice(lua);
        f.call::<()>(args.clone()).map_err(|e| {
            let text = error_text(&e);
            // The watchdog's error has no position: name the listener.
            let info = f.info();
            match (info.short_src, info.line_defined) {
                (Some(src), Some(line)) if !text.contains(&src) => {
                    format!("{text} (the listener at {src}:{line})")
                }
                _ => text,
            }
        })?;
    }
    Ok(())
}

impl ShardScript {
    /// Run the script's `report_to_master` listeners on a fresh table and
    /// return what they set, as a report's custom keys. No listener: empty,
    /// without calling Lua. A listener error or data that cannot be sent:
    /// `Err` naming it (the report goes without custom data).
    pub fn report_to_master(&self, client_id: &str) -> CustomData {
        let list = &self.report_listeners;
        if list.raw_len() == 0 {
            return Ok(Vec::new());
        }
        let data = self
            .lua
            .create_table()
            .map_err(|e| CustomError::Listener(error_text(&e)))?;
        call_each(&self.lua, list, &self.dog, (data.clone(), client_id))
            .map_err(CustomError::Listener)?;
        table_to_custom(&data).map_err(CustomError::Data)
    }
}

/// The master's Lua state for `worker_report` listeners: the script loaded
/// once more, on the thread that fires them.
pub struct WorkerReportScript {
    state: State,
    listeners: Table,
}

impl WorkerReportScript {
    /// Load the script; `None` when it adds no `worker_report` listener at
    /// load (the master then keeps no state and forwards nothing).
    pub fn load(src: &ScriptSource) -> Result<Option<WorkerReportScript>, ScriptError> {
        let stats = Rc::new(RefCell::new(ShardStats::new()));
        let dog = Watchdog::new(src.limits.max_blocking, None);
        let state = State::new(src, 0, stats, ClientConfig::default(), dog, None)?;
        let listeners =
            listeners(&state.internal, "worker_report").map_err(|e| load_error(src, &e))?;
        if listeners.raw_len() == 0 {
            return Ok(None);
        }
        Ok(Some(WorkerReportScript { state, listeners }))
    }

    /// Fire the listeners with `(node_id, data)`, `custom` already cut to
    /// bounds (`custom_data::bound_custom`); `Err` is a listener's error
    /// with file:line.
    pub fn fire(&self, node_id: &str, custom: &[(String, rmpv::Value)]) -> Result<(), String> {
        let data = custom_to_table(&self.state.lua, custom).map_err(|e| error_text(&e))?;
        call_each(
            &self.state.lua,
            &self.listeners,
            &self.state.dog,
            (node_id, data),
        )
        .map_err(|e| format!("a worker_report listener failed: {e}"))
    }
}
