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
use super::stop::{is_kill, kill_point, lua_stopping, stop_from_ptr, wait, StopWatch};
use super::watchdog::Watchdog;
use super::REQUEST_LISTENERS;
use crate::http::{ClientConfig, Target};
use crate::script::client::{self, ClientCtx};
use crate::script::limits::{process_exit_code, request_quit, set_process_exit_code};
use crate::script::stats::StatsHandle;
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
        "=[locusta/guard]",
        include_str!("../../../lua/prelude/guard.lua"),
    ),
    (
        "=[locusta/shape]",
        include_str!("../../../lua/prelude/shape.lua"),
    ),
    (
        "=[locusta/markov]",
        include_str!("../../../lua/prelude/markov.lua"),
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
    pub(super) dog: Rc<Watchdog>,
}

impl State {
    pub(super) fn new(
        src: &ScriptSource,
        shard: usize,
        stats: Rc<RefCell<ShardStats>>,
        cfg: ClientConfig,
        dog: Rc<Watchdog>,
        run_stats: Option<StatsHandle>,
    ) -> Result<State, ScriptError> {
        // SAFETY: the `debug` library lets Lua code break mlua's invariants
        // (e.g. debug.setmetatable on its userdata); the prelude needs
        // debug.traceback/getinfo and scripts are trusted code the user runs.
        let lua = unsafe {
            Lua::unsafe_new_with(StdLib::ALL_SAFE | StdLib::DEBUG, LuaOptions::default())
        };
        gc_mode(&lua);
        let setup_error = |e: mlua::Error| ScriptError::Load {
            message: format!(
                "{}: cannot set up the Lua state: {}",
                src.path.display(),
                error_text(&e)
            ),
        };
        if let Some(limit) = src.limits.lua_memory {
            lua.set_memory_limit(limit).map_err(setup_error)?;
        }
        dog.install(&lua).map_err(setup_error)?;
        // Found by `kill_point` (requests, sleeps) to name the user awaiting.
        lua.set_app_data(dog.clone());
        let slice_dog = dog.clone();
        let _slice = slice_dog.sync_slice(&lua);
        let hosts = Rc::new(RefCell::new(Vec::new()));
        let (module, internal) =
            build(&lua, shard, stats, cfg, src, hosts.clone(), &dog).map_err(setup_error)?;
        crate::script::stats::install(&lua, &module, run_stats).map_err(setup_error)?;
        dog.restart();
        let chunk = format!("@{}", src.path.display());
        lua.load(src.text.as_str())
            .set_name(chunk)
            .exec()
            .map_err(|e| load_error(src, &e))?;
        Ok(State {
            lua,
            internal,
            hosts,
            dog,
        })
    }

    pub(super) fn finalize(
        &self,
        src: &ScriptSource,
        tags: &TagFilter,
    ) -> Result<Vec<ClassInfo>, ScriptError> {
        let _slice = self.dog.sync_slice(&self.lua);
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
/// prelude, the random seed. Returns the module and the prelude's
/// internal table.
fn build(
    lua: &Lua,
    shard: usize,
    stats: Rc<RefCell<ShardStats>>,
    cfg: ClientConfig,
    src: &ScriptSource,
    hosts: Rc<RefCell<Vec<Option<Target>>>>,
    dog: &Rc<Watchdog>,
) -> mlua::Result<(Table, Table)> {
    let listeners = lua.create_table()?;
    lua.set_named_registry_value(REQUEST_LISTENERS, &listeners)?;

    let module = lua.create_table()?;
    json::install(lua, &module)?;
    // Depth of coroutines the script created that are running now; an
    // async call inside one would suspend the wrong coroutine.
    let nested = dog.nested.clone();
    client::install(
        lua,
        &module,
        Rc::new(ClientCtx {
            stats: stats.clone(),
            cfg,
            limits: *src.limits,
            nested: nested.clone(),
        }),
    )?;
    crate::script::tcp::install(lua, &module)?;

    let native = lua.create_table()?;
    native.set("request_listeners", &listeners)?;
    crate::script::fire::install(lua, &native, stats.clone())?;
    // SAFETY: `lua_stopping` only reads a light userdata that run_user's
    // caller made from a live `Rc<StopSignal>` (see `stop_ptr`).
    native.set("stopping", unsafe { lua.create_c_function(lua_stopping)? })?;
    let watch = Rc::new(StopWatch::default());
    native.set(
        "wait",
        lua.create_async_function(move |_, (p, secs): (LightUserData, f64)| {
            let stop = stop_from_ptr(p);
            let watch = watch.clone();
            // Boxed: mlua keeps a finished call's future until Lua collects
            // it, so only a pointer should stay behind (see `boxed`).
            boxed(async move {
                if let Some(stop) = stop {
                    wait(&watch, &stop, secs).await;
                }
                Ok(())
            })
        })?,
    )?;
    let heartbeat = Rc::new(Heartbeat::new());
    native.set(
        "yield",
        lua.create_async_function(move |_, ()| {
            let heartbeat = heartbeat.clone();
            boxed(async move {
                heartbeat.pause().await;
                Ok(())
            })
        })?,
    )?;
    // Open model: a user's wait for its next iteration (returns at once
    // when the user stops).
    native.set(
        "next_iteration",
        lua.create_async_function(move |_, p: LightUserData| {
            let stop = stop_from_ptr(p);
            boxed(async move {
                if let Some(stop) = stop {
                    if let Some(slot) = stop.open_slot() {
                        slot.next(&stop).await;
                    }
                }
                Ok(())
            })
        })?,
    )?;
    native.set(
        "is_open",
        lua.create_function(|_, p: LightUserData| {
            Ok(stop_from_ptr(p).is_some_and(|s| s.open_slot().is_some()))
        })?,
    )?;
    let depth = nested.clone();
    native.set(
        "sleep",
        lua.create_async_function(move |lua, secs: Value| {
            let inside = depth.get() > 0;
            let d = match secs {
                Value::Integer(i) if i >= 0 => Ok(Duration::from_secs(i as u64)),
                Value::Number(n) => Duration::try_from_secs_f64(n).map_err(|_| ()),
                _ => Err(()),
            };
            if inside {
                return boxed(std::future::ready(Err(nested_error("locusta.sleep"))));
            }
            match d {
                // A kill interrupts a sleep in a task (on_stop runs next).
                Ok(d) => boxed(kill_point(&lua, async move {
                    monoio::time::sleep(d).await;
                    Ok(())
                })),
                Err(()) => boxed(std::future::ready(Err(mlua::Error::runtime(format!(
                    "locusta.sleep: expected a number of seconds >= 0, got {}",
                    describe_value(&secs)
                ))))),
            }
        })?,
    )?;
    let (enter, leave) = (dog.clone(), dog.clone());
    native.set(
        "nested_enter",
        lua.create_function(move |_, co: Value| {
            enter.enter_nested(&co);
            Ok(())
        })?,
    )?;
    native.set(
        "nested_leave",
        lua.create_function(move |_, co: Value| {
            leave.leave_nested(&co);
            Ok(())
        })?,
    )?;
    let quit_dog = dog.clone();
    native.set(
        "quit",
        lua.create_function(move |_, code: Value| {
            let code = exit_code(&code)?;
            request_quit(code);
            if let Some(user) = quit_dog.current_user() {
                user.stop_gracefully();
            }
            Ok(())
        })?,
    )?;
    // locusta.process_exit_code (lua/prelude/guard.lua checks and names
    // the script's line on a bad value).
    native.set(
        "set_process_exit_code",
        lua.create_function(|_, v: Value| {
            let code = match v {
                Value::Nil => None,
                Value::Integer(i) => Some(i),
                Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => Some(n as i64),
                _ => return Ok(false),
            };
            Ok(set_process_exit_code(code))
        })?,
    )?;
    native.set(
        "process_exit_code",
        lua.create_function(|_, ()| Ok(process_exit_code()))?,
    )?;
    let stop_dog = dog.clone();
    native.set(
        "stop_user",
        lua.create_function(move |_, ()| {
            if let Some(user) = stop_dog.current_user() {
                user.stop_gracefully();
            }
            Ok(())
        })?,
    )?;
    native.set(
        "is_kill",
        lua.create_function(|_, v: Value| Ok(is_kill(&v)))?,
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
    native.set(
        "warn",
        lua.create_function(|_, msg: mlua::LuaString| {
            warn_once(&msg.to_string_lossy());
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
        lua.create_function(move |lua, (idx, stop): (usize, Option<LightUserData>)| {
            let host = hosts.borrow().get(idx).cloned().flatten();
            let open = stop.and_then(stop_from_ptr).and_then(|s| s.open_slot());
            client::new_user_client(lua, host, open)
        })?,
    )?;
    native.set(
        "close_client",
        lua.create_function(|lua, ud: mlua::AnyUserData| {
            if let Ok(c) = ud.borrow::<client::Client>() {
                c.close();
            }
            crate::script::tcp_io::close_user_sockets(lua);
            Ok(())
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
    Ok((module, internal))
}

type BoxedCall = std::pin::Pin<Box<dyn std::future::Future<Output = mlua::Result<()>>>>;

/// An async native's future, boxed: mlua keeps a finished call's future
/// alive until Lua's collector frees the call's userdata, and a user in a
/// long wait lets that userdata age into the old generation, which minor
/// collections do not visit. Boxed, what stays behind is a pointer (the
/// box is dropped when the call completes), not the future's whole state
/// (a timer, the stop watch) — invisible to Lua's collector and measured
/// at ~1 KB per wait with 1,000 users in think time.
fn boxed(f: impl std::future::Future<Output = mlua::Result<()>> + 'static) -> BoxedCall {
    Box::pin(f)
}

/// A load-time warning from the prelude (e.g. unreachable Markov states):
/// logged once per process, though every shard's state loads the script.
fn warn_once(msg: &str) {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if seen
        .get_or_insert_with(HashSet::new)
        .insert(msg.to_string())
    {
        log::warn!("{msg}");
    }
}

/// The error of an async call made inside a coroutine the script created.
pub(crate) fn nested_error(what: &str) -> mlua::Error {
    mlua::Error::runtime(format!(
        "{what} cannot be called inside a coroutine created by the script \
         (coroutine.create/wrap): it suspends the user's own coroutine; call it \
         from the task itself"
    ))
}

/// `locusta.quit(code)` / `os.exit(code)`: nil or true is 0, false is 1,
/// else an integer 0..=255.
fn exit_code(v: &Value) -> mlua::Result<i32> {
    let n = match v {
        Value::Nil | Value::Boolean(true) => return Ok(0),
        Value::Boolean(false) => return Ok(1),
        Value::Integer(i) => Some(*i),
        Value::Number(n) if n.fract() == 0.0 && n.is_finite() => Some(*n as i64),
        _ => None,
    };
    match n {
        Some(n) if (0..=255).contains(&n) => Ok(n as i32),
        _ => Err(mlua::Error::runtime(format!(
            "locusta.quit / os.exit: the exit code must be an integer 0-255, true or false (got {})",
            describe_value(v)
        ))),
    }
}

pub(crate) fn describe_value(v: &Value) -> String {
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
