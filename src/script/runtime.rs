//! The Lua state per shard: `require "locusta"`, user classes, tasks, task
//! sets, wait times, events, exceptions, and the users' task loops.
//!
//! Most of the user model is Lua, in the prelude `lua/locusta.lua`
//! (compiled in): declarations, tag filtering, task picking over a
//! precomputed cumulative-weight array, the task loop with its error
//! handling. This file builds the state (standard libraries, the `locusta`
//! module, the native helpers the prelude calls), loads and validates the
//! script, and turns one user into one coroutine (`Function::call_async`),
//! which suspends on `locusta.sleep`, on wait times and on requests.
//!
//! Waits are cut short by a graceful stop. `StopSignal` has no waker for
//! the graceful flag, so users in a wait longer than [`STOP_POLL`] register
//! with the shard's [`StopWatch`], one task that checks their flags every
//! [`STOP_POLL`] while anyone waits (a few reads per user per tick, no
//! timer per user).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use mlua::{Function, LightUserData, Lua, LuaOptions, StdLib, Table, UserData, Value};

use super::client::{self, ClientCtx};
use super::{json, ClassInfo, ScriptError, ScriptSource, TagFilter, TaskInfo};
use crate::engine::StopSignal;
use crate::http::{ClientConfig, Target};
use crate::stats::ShardStats;

/// The prelude: task picking, wait-time helpers, task sets, events.
const PRELUDE: &str = include_str!("../../lua/locusta.lua");

/// Registry key of the `request` event's listeners (a sequence of
/// functions; the client calls them per request only when non-empty).
pub const REQUEST_LISTENERS: &str = "locusta.request_listeners";

/// How often the shard looks at the stop flags of users in a wait.
pub const STOP_POLL: Duration = Duration::from_millis(50);

/// Load the script in a throwaway Lua state to validate it and describe its
/// classes (main thread, at startup, before any shard starts).
pub fn inspect(src: &ScriptSource, tags: &TagFilter) -> Result<Vec<ClassInfo>, ScriptError> {
    let stats = Rc::new(RefCell::new(ShardStats::new()));
    let state = State::new(src, 0, stats, ClientConfig::default())?;
    state.finalize(src, tags)
}

/// What a shard's script needs from the engine.
pub struct ShardContext {
    /// 0-based; `test_start`/`test_stop` listeners run on shard 0 only.
    pub shard: usize,
    pub stats: Rc<RefCell<ShardStats>>,
    pub client: ClientConfig,
    /// From `-H`; a class's `host = "http://..."` overrides it.
    pub default_host: Option<Target>,
}

/// One Lua state per shard (`!Send`; created on the shard thread). Keep it
/// alive while any of its users' futures is alive.
pub struct ShardScript {
    lua: Lua,
    run_user: Function,
    fire: Function,
    stats: Rc<RefCell<ShardStats>>,
    shard: usize,
    classes: Vec<ClassInfo>,
}

impl ShardScript {
    /// `classes`: the selected class names, in the order the engine indexes
    /// them (empty: every class, in script order).
    pub fn load(
        src: &ScriptSource,
        tags: &TagFilter,
        classes: &[String],
        ctx: ShardContext,
    ) -> Result<ShardScript, ScriptError> {
        let state = State::new(src, ctx.shard, ctx.stats.clone(), ctx.client)?;
        let all = state.finalize(src, tags)?;
        let names: Vec<String> = if classes.is_empty() {
            all.iter().map(|c| c.name.clone()).collect()
        } else {
            classes.to_vec()
        };
        let mut selected = Vec::with_capacity(names.len());
        let mut hosts = Vec::with_capacity(names.len());
        for name in &names {
            let Some(info) = all.iter().find(|c| &c.name == name) else {
                let known: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
                return Err(ScriptError::Load {
                    message: format!(
                        "{}: unknown user class \"{name}\" (the script has: {})",
                        src.path.display(),
                        known.join(", ")
                    ),
                });
            };
            let host = match &info.host {
                Some(url) => Some(Target::parse(url).map_err(|e| ScriptError::Load {
                    message: format!("{}: class {}: host: {e}", src.path.display(), info.name),
                })?),
                None => ctx.default_host.clone(),
            };
            hosts.push(host);
            selected.push(info.clone());
        }
        *state.hosts.borrow_mut() = hosts;
        let select: Function = state
            .internal
            .get("select")
            .map_err(|e| load_error(src, &e))?;
        select.call::<()>(names).map_err(|e| load_error(src, &e))?;
        let run_user = state
            .internal
            .get("run_user")
            .map_err(|e| load_error(src, &e))?;
        let fire = state
            .internal
            .get("fire")
            .map_err(|e| load_error(src, &e))?;
        Ok(ShardScript {
            lua: state.lua,
            run_user,
            fire,
            stats: ctx.stats,
            shard: ctx.shard,
            classes: selected,
        })
    }

    /// The selected classes, in the engine's order.
    pub fn classes(&self) -> &[ClassInfo] {
        &self.classes
    }

    /// One simulated user of `classes[class]`, running until `stop` says so:
    /// on_start once, then tasks picked by weight with the class's wait_time
    /// between them, on_stop on a graceful stop. A graceful stop lets the
    /// current task finish and cuts a wait short; a forced stop is dropping
    /// this future. If on_start raises, the error is counted and the user
    /// ends (Locust's behaviour), without tasks or on_stop.
    pub fn user(&self, class: usize, stop: Rc<StopSignal>) -> Pin<Box<dyn Future<Output = ()>>> {
        let stats = self.stats.clone();
        let ptr = stop_ptr(&stop);
        let handle = match self.lua.create_userdata(StopHandle(stop.clone())) {
            Ok(h) => h,
            Err(e) => {
                record_error(&stats, &e);
                return Box::pin(std::future::ready(()));
            }
        };
        let call = self.run_user.call_async::<Value>((class, ptr, handle));
        Box::pin(async move {
            let _keep = stop;
            if let Err(e) = call.await {
                record_error(&stats, &e);
            }
        })
    }

    /// Fire `locusta.events.test_start` listeners (shard 0 only; errors go to
    /// the exceptions table).
    pub async fn test_start(&self) {
        self.fire_event("test_start").await
    }

    /// Fire `locusta.events.test_stop` listeners (shard 0 only).
    pub async fn test_stop(&self) {
        self.fire_event("test_stop").await
    }

    async fn fire_event(&self, which: &str) {
        if self.shard != 0 {
            return;
        }
        if let Err(e) = self.fire.call_async::<()>(which).await {
            record_error(&self.stats, &e);
        }
    }

    /// Run a chunk in this state and describe its result (tests, debugging).
    #[doc(hidden)]
    pub fn eval(&self, code: &str) -> String {
        match self.lua.load(code).set_name("=eval").eval::<Value>() {
            Ok(v) => match v.to_string() {
                Ok(s) => s,
                Err(e) => error_text(&e),
            },
            Err(e) => format!("error: {}", error_text(&e)),
        }
    }
}

fn record_error(stats: &Rc<RefCell<ShardStats>>, e: &mlua::Error) {
    let (message, traceback) = split_traceback(e);
    stats.borrow_mut().record_exception(&message, &traceback);
}

/// A Lua state with the module and the script loaded, not yet finalized.
struct State {
    lua: Lua,
    internal: Table,
    hosts: Rc<RefCell<Vec<Option<Target>>>>,
}

impl State {
    fn new(
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

    fn finalize(
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

    let internal: Table = lua
        .load(PRELUDE)
        .set_name("=[locusta]")
        .call((&module, &native))?;

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

/// Owns a user's stop signal for as long as its coroutine runs: run_user
/// holds it, so the light userdata `stop_ptr` made from it stays valid.
struct StopHandle(#[allow(dead_code)] Rc<StopSignal>);

impl UserData for StopHandle {}

/// The light userdata the prelude passes to `stopping` and `wait`.
fn stop_ptr(stop: &Rc<StopSignal>) -> LightUserData {
    LightUserData(Rc::as_ptr(stop) as *mut std::ffi::c_void)
}

/// `stopping(stop)`: a plain C function, because the task loop asks for
/// every task and an mlua callback with a userdata borrow costs ~5x more.
unsafe extern "C-unwind" fn lua_stopping(l: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    // SAFETY: Lua passes us its stack; the pointer, when not null, comes
    // from `stop_ptr` of an Rc that a StopHandle on the calling
    // coroutine's stack keeps alive (see `ShardScript::user`).
    unsafe {
        let p = mlua::ffi::lua_touserdata(l, 1) as *const StopSignal;
        let stopping = p.is_null() || (*p).stopping();
        mlua::ffi::lua_pushboolean(l, stopping as std::ffi::c_int);
    }
    1
}

/// The `Rc<StopSignal>` behind a `stop_ptr` (a new strong reference).
fn stop_from_ptr(p: LightUserData) -> Option<Rc<StopSignal>> {
    let p = p.0 as *const StopSignal;
    if p.is_null() {
        return None;
    }
    // SAFETY: as in `lua_stopping`, the pointer comes from `Rc::as_ptr` of
    // an Rc that is alive while the coroutine runs; we add a reference for
    // the new Rc before building it.
    unsafe {
        Rc::increment_strong_count(p);
        Some(Rc::from_raw(p))
    }
}

/// Sleep `secs`, or less when a graceful stop comes first.
async fn wait(watch: &Rc<StopWatch>, stop: &Rc<StopSignal>, secs: f64) {
    if stop.stopping() || secs.is_nan() || secs <= 0.0 {
        return;
    }
    let d = Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(u32::MAX as u64));
    if d <= STOP_POLL {
        monoio::time::sleep(d).await;
        return;
    }
    let sleep = monoio::time::sleep(d);
    let stopped = GracefulStop {
        watch: watch.clone(),
        stop: stop.clone(),
        slot: None,
    };
    monoio::select! {
        _ = sleep => {},
        _ = stopped => {},
    }
}

/// A user in a wait: its stop flag, and who to wake when it goes up.
type Waiter = (Rc<StopSignal>, Waker);

/// Users of one shard waiting for a graceful stop, and the ticker task that
/// wakes them when their flag goes up.
#[derive(Default)]
struct StopWatch {
    slots: RefCell<Vec<Option<Waiter>>>,
    free: RefCell<Vec<usize>>,
    waiting: Cell<usize>,
    ticking: Cell<bool>,
}

impl StopWatch {
    fn register(self: &Rc<Self>, stop: &Rc<StopSignal>, waker: &Waker) -> usize {
        let entry = Some((stop.clone(), waker.clone()));
        let mut slots = self.slots.borrow_mut();
        let slot = match self.free.borrow_mut().pop() {
            Some(i) => {
                slots[i] = entry;
                i
            }
            None => {
                slots.push(entry);
                slots.len() - 1
            }
        };
        drop(slots);
        self.waiting.set(self.waiting.get() + 1);
        if !self.ticking.get() {
            self.ticking.set(true);
            let me = self.clone();
            monoio::spawn(async move { me.tick().await });
        }
        slot
    }

    fn update(&self, slot: usize, waker: &Waker) {
        if let Some(Some((_, w))) = self.slots.borrow_mut().get_mut(slot) {
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
        }
    }

    fn unregister(&self, slot: usize) {
        if let Some(s) = self.slots.borrow_mut().get_mut(slot) {
            if s.take().is_some() {
                self.free.borrow_mut().push(slot);
                self.waiting.set(self.waiting.get() - 1);
            }
        }
    }

    async fn tick(self: Rc<Self>) {
        let mut wake = Vec::new();
        loop {
            monoio::time::sleep(STOP_POLL).await;
            if self.waiting.get() == 0 {
                self.ticking.set(false);
                return;
            }
            for (stop, waker) in self.slots.borrow().iter().flatten() {
                if stop.stopping() {
                    wake.push(waker.clone());
                }
            }
            for w in wake.drain(..) {
                w.wake();
            }
        }
    }
}

/// Resolves once the user's graceful stop flag is up.
struct GracefulStop {
    watch: Rc<StopWatch>,
    stop: Rc<StopSignal>,
    slot: Option<usize>,
}

impl Future for GracefulStop {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.stop.stopping() {
            return Poll::Ready(());
        }
        match self.slot {
            Some(slot) => self.watch.update(slot, cx.waker()),
            None => {
                let slot = self.watch.register(&self.stop, cx.waker());
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for GracefulStop {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.watch.unregister(slot);
        }
    }
}

/// Pauses for users whose tasks may never suspend (zero wait time, no
/// I/O). Requeueing such a user is not enough: monoio only runs its timers
/// when its run queue drains, so a user that keeps itself runnable starves
/// every timer of the shard (the control loop's, the other users' waits).
/// A heartbeat timer notes when timers last ran; when that is too long ago
/// the pause is a real 1 ms sleep, which lets the run queue drain.
struct Heartbeat {
    last: Cell<Instant>,
    running: Cell<bool>,
}

/// How often the heartbeat runs, and how late it may be before pauses sleep.
const HEARTBEAT: Duration = Duration::from_millis(10);
const HEARTBEAT_LATE: Duration = Duration::from_millis(25);

impl Heartbeat {
    fn new() -> Self {
        Heartbeat {
            last: Cell::new(Instant::now()),
            running: Cell::new(false),
        }
    }

    async fn pause(self: &Rc<Self>) {
        if !self.running.get() {
            self.running.set(true);
            self.last.set(Instant::now());
            let weak = Rc::downgrade(self);
            monoio::spawn(async move {
                loop {
                    monoio::time::sleep(HEARTBEAT).await;
                    match weak.upgrade() {
                        Some(h) => h.last.set(Instant::now()),
                        None => return,
                    }
                }
            });
        }
        if self.last.get().elapsed() > HEARTBEAT_LATE {
            monoio::time::sleep(Duration::from_millis(1)).await;
        } else {
            YieldNow(false).await;
        }
    }
}

/// Suspend once and let the other tasks of this shard run.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The message of a Lua error as a user wants to read it: the innermost
/// cause, without mlua's "runtime error:" prefix or traceback.
pub fn error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => error_text(cause),
        mlua::Error::RuntimeError(m) => strip_traceback(m).to_string(),
        mlua::Error::SyntaxError { message, .. } => strip_traceback(message).to_string(),
        mlua::Error::BadArgument {
            to,
            pos,
            name,
            cause,
        } => {
            let arg = match name {
                Some(n) => format!("bad argument '{n}'"),
                None => format!("bad argument #{pos}"),
            };
            match to {
                Some(to) => format!("{arg} to '{to}': {}", error_text(cause)),
                None => format!("{arg}: {}", error_text(cause)),
            }
        }
        mlua::Error::WithContext { context, cause } => {
            format!("{context}: {}", error_text(cause))
        }
        other => other.to_string(),
    }
}

fn strip_traceback(m: &str) -> &str {
    match m.find("\nstack traceback:") {
        Some(i) => &m[..i],
        None => m,
    }
}

/// (message, traceback) of an error that escaped the prelude's handlers.
fn split_traceback(e: &mlua::Error) -> (String, String) {
    let message = error_text(e);
    let traceback = match e {
        mlua::Error::CallbackError { traceback, .. } => traceback.clone(),
        mlua::Error::RuntimeError(m) => m
            .find("\nstack traceback:")
            .map(|i| m[i + 1..].to_string())
            .unwrap_or_default(),
        _ => String::new(),
    };
    (message, traceback)
}

/// A load-time error: `file:line: message` when Lua knows the line, else
/// prefixed with the script's path.
fn load_error(src: &ScriptSource, e: &mlua::Error) -> ScriptError {
    let mut message = error_text(e);
    let has_location = message
        .split_once(':')
        .map(|(_, rest)| {
            rest.split_once(':').is_some_and(|(line, _)| {
                !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit())
            })
        })
        .unwrap_or(false);
    if !has_location {
        // A Rust callback's error: find the script's line in mlua's traceback.
        let path = src.path.display().to_string();
        let line = match e {
            mlua::Error::CallbackError { traceback, .. } => traceback
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with(&path))
                .and_then(|l| {
                    let rest = &l[path.len()..];
                    let rest = rest.strip_prefix(':')?;
                    let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                    (!n.is_empty()).then_some(n)
                }),
            _ => None,
        };
        message = match line {
            Some(n) => format!("{path}:{n}: {message}"),
            None => format!("{path}: {message}"),
        };
    }
    ScriptError::Load { message }
}
