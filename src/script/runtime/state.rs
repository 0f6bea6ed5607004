//! Building a shard's Lua state: standard libraries, `require "locusta"`,
//! the native helpers the prelude calls (stop checks, waits, sleep, clock,
//! clients, exception records), the prelude chunks, the random seed; then
//! the user's script, and the class descriptions `finalize` returns.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mlua::{Function, LightUserData, Lua, LuaOptions, StdLib, Table, Value};

use super::errors::{error_text, load_error};
use super::pause::Heartbeat;
use super::stop::{lua_stopping, stop_from_ptr, wait, StopWatch};
use super::REQUEST_LISTENERS;
use crate::http::{ClientConfig, Target};
use crate::script::client::{self, ClientCtx};
use crate::script::{json, ClassInfo, ScriptError, ScriptSource, TagFilter, TaskInfo};
use crate::stats::ShardStats;

/// The prelude, as (chunk name, source) in load order; each chunk is
/// called with (module, native helpers, internal table, shared table).
/// See `lua/locusta.lua` for what each chunk owns.
const PRELUDE: &[(&str, &str)] = &[
    (
        "=[locusta/errors]",
        include_str!("../../../lua/prelude/errors.lua"),
    ),
    ("=[locusta]", include_str!("../../../lua/locusta.lua")),
    (
        "=[locusta/wait]",
        include_str!("../../../lua/prelude/wait.lua"),
    ),
    (
        "=[locusta/events]",
        include_str!("../../../lua/prelude/events.lua"),
    ),
    (
        "=[locusta/finalize]",
        include_str!("../../../lua/prelude/finalize.lua"),
    ),
    (
        "=[locusta/run]",
        include_str!("../../../lua/prelude/run.lua"),
    ),
];

/// A Lua state with the module and the script loaded, not yet finalized.
pub(super) struct State {
    pub(super) lua: Lua,
    pub(super) internal: Table,
    pub(super) hosts: Rc<RefCell<Vec<Option<Target>>>>,
}

impl State {
    pub(super) fn new(
        src: &ScriptSource,
        shard: usize,
        stats: Rc<RefCell<ShardStats>>,
        cfg: ClientConfig,
    ) -> Result<State, ScriptError> {
        // SAFETY: the `debug` library lets Lua code break mlua's invariants
        // (e.g. debug.setmetatable on its userdata); the prelude needs
        // debug.traceback/getinfo and scripts are trusted code the user runs.
        let lua = unsafe {
            Lua::unsafe_new_with(StdLib::ALL_SAFE | StdLib::DEBUG, LuaOptions::default())
        };
        gc_mode(&lua);
        let hosts = Rc::new(RefCell::new(Vec::new()));
        let internal =
            build(&lua, shard, stats, cfg, hosts.clone()).map_err(|e| ScriptError::Load {
                message: format!(
                    "{}: cannot set up the Lua state: {}",
                    src.path.display(),
                    error_text(&e)
                ),
            })?;
        let chunk = format!("@{}", src.path.display());
        lua.load(src.text.as_str())
            .set_name(chunk)
            .exec()
            .map_err(|e| load_error(src, &e))?;
        Ok(State {
            lua,
            internal,
            hosts,
        })
    }

    pub(super) fn finalize(
        &self,
        src: &ScriptSource,
        tags: &TagFilter,
    ) -> Result<Vec<ClassInfo>, ScriptError> {
        let finalize: Function = self
            .internal
            .get("finalize")
            .map_err(|e| load_error(src, &e))?;
        let classes: Table = finalize
            .call((tags.include.clone(), tags.exclude.clone()))
            .map_err(|e| load_error(src, &e))?;
        class_infos(&classes).map_err(|e| load_error(src, &e))
    }
}

fn class_infos(classes: &Table) -> mlua::Result<Vec<ClassInfo>> {
    let mut out = Vec::new();
    for c in classes.sequence_values::<Table>() {
        let c = c?;
        let mut tasks = Vec::new();
        for t in c.get::<Table>("tasks")?.sequence_values::<Table>() {
            let t = t?;
            tasks.push(TaskInfo {
                name: t.get("name")?,
                weight: t.get("weight")?,
                tags: t.get("tags")?,
            });
        }
        out.push(ClassInfo {
            name: c.get("name")?,
            weight: c.get("weight")?,
            fixed_count: c.get("fixed_count")?,
            host: c.get("host")?,
            tasks,
        });
    }
    Ok(out)
}

/// The state's setup: `package.preload.locusta`, the native helpers, the
/// prelude, the random seed. Returns the prelude's internal table.
fn build(
    lua: &Lua,
    shard: usize,
    stats: Rc<RefCell<ShardStats>>,
    cfg: ClientConfig,
    hosts: Rc<RefCell<Vec<Option<Target>>>>,
) -> mlua::Result<Table> {
    let listeners = lua.create_table()?;
    lua.set_named_registry_value(REQUEST_LISTENERS, &listeners)?;

    let module = lua.create_table()?;
    json::install(lua, &module)?;
    client::install(
        lua,
        &module,
        Rc::new(ClientCtx {
            stats: stats.clone(),
            cfg,
        }),
    )?;

    let native = lua.create_table()?;
    native.set("request_listeners", &listeners)?;
    // SAFETY: `lua_stopping` only reads a light userdata that run_user's
    // caller made from a live `Rc<StopSignal>` (see `stop_ptr`).
    native.set("stopping", unsafe { lua.create_c_function(lua_stopping)? })?;
    let watch = Rc::new(StopWatch::default());
    native.set(
        "wait",
        lua.create_async_function(move |_, (p, secs): (LightUserData, f64)| {
            let stop = stop_from_ptr(p);
            let watch = watch.clone();
            async move {
                if let Some(stop) = stop {
                    wait(&watch, &stop, secs).await;
                }
                Ok(())
            }
        })?,
    )?;
    let heartbeat = Rc::new(Heartbeat::new());
    native.set(
        "yield",
        lua.create_async_function(move |_, ()| {
            let heartbeat = heartbeat.clone();
            async move {
                heartbeat.pause().await;
                Ok(())
            }
        })?,
    )?;
    native.set(
        "sleep",
        lua.create_async_function(|_, secs: Value| {
            let d = match secs {
                Value::Integer(i) if i >= 0 => Ok(Duration::from_secs(i as u64)),
                Value::Number(n) => Duration::try_from_secs_f64(n).map_err(|_| ()),
                _ => Err(()),
            };
            async move {
                match d {
                    Ok(d) => {
                        monoio::time::sleep(d).await;
                        Ok(())
                    }
                    Err(()) => Err(mlua::Error::runtime(format!(
                        "locusta.sleep: expected a number of seconds >= 0, got {}",
                        describe_value(&secs)
                    ))),
                }
            }
        })?,
    )?;
    let rec_stats = stats.clone();
    native.set(
        "record_exception",
        lua.create_function(move |_, (msg, tb): (mlua::LuaString, mlua::LuaString)| {
            rec_stats
                .borrow_mut()
                .record_exception(&msg.to_string_lossy(), &tb.to_string_lossy());
            Ok(())
        })?,
    )?;
    let epoch = Instant::now();
    native.set(
        "now",
        lua.create_function(move |_, ()| Ok(epoch.elapsed().as_secs_f64()))?,
    )?;
    native.set(
        "new_client",
        lua.create_function(move |lua, idx: usize| {
            let host = hosts.borrow().get(idx).cloned().flatten();
            client::new_client(lua, host)
        })?,
    )?;
    native.set(
        "errmsg",
        lua.create_function(|_, v: Value| {
            Ok(match &v {
                Value::Error(e) => error_text(e),
                other => format!("error object is a {} value", other.type_name()),
            })
        })?,
    )?;

    let internal = lua.create_table()?;
    let shared = lua.create_table()?;
    for (name, chunk) in PRELUDE {
        lua.load(*chunk)
            .set_name(*name)
            .call::<()>((&module, &native, &internal, &shared))?;
    }

    let package: Table = lua.globals().get("package")?;
    let preload: Table = package.get("preload")?;
    let m = module.clone();
    preload.set(
        "locusta",
        lua.create_function(move |_, _: mlua::MultiValue| Ok(m.clone()))?,
    )?;

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let seed = nanos ^ (shard as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let math: Table = lua.globals().get("math")?;
    math.get::<Function>("randomseed")?
        .call::<()>((seed as i64, shard as i64))?;
    Ok(internal)
}

fn describe_value(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::Integer(i) => i.to_string(),
        other => format!("a {}", other.type_name()),
    }
}

/// Every request makes short-lived garbage (the call's future, the response
/// object); Lua 5.4's generational collector handles exactly that far more
/// cheaply than the incremental one (17.6 → 13.5 µs CPU per request and
/// 1.5 GB → 0.17 GB peak RSS in benches/lua/get.lua, 64 users, 5 s).
fn gc_mode(lua: &Lua) {
    use mlua::prelude::{LuaGcGenParams, LuaGcMode};
    lua.gc_set_mode(LuaGcMode::Generational(LuaGcGenParams::default()));
}
