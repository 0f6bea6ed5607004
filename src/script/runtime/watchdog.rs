//! The watchdog of a shard's Lua state: Lua code that runs too long without
//! yielding gets a Lua error, so a busy loop in a task, `on_start`,
//! `on_stop` or an event listener can never hold the shard (its control
//! loop, its other users, the end of the run).
//!
//! One Lua state runs one coroutine at a time, so one clock per state is
//! enough: a slice starts whenever Rust hands control to Lua (each poll of
//! a user's or an event's future, [`Watched`]; a load or a shape call,
//! [`Watchdog::sync_slice`]). Short slices cost nothing: the count hook
//! that compares the slice with the limit is armed only once a slice has
//! run long (`arming`: in Lua 5.4 an armed count hook traps every VM
//! instruction). A slice that ran longer than the limit gets `task ran 5 s
//! without yielding`; once the run's stop deadline ([`RunStop`]) has
//! passed, a slice longer than [`STOP_SLICE`] gets interrupted too and its
//! user is told to stop, so a stop always completes. After an interruption
//! the clock restarts, so the error handlers (and the user's next task) get
//! a fresh slice.
//!
//! Lua that runs on other threads inside a slice is pushed on the slice's
//! stack so the hook reaches it: coroutines the script resumes
//! ([`Watchdog::enter_nested`], from lua/prelude/guard.lua) and callbacks
//! Rust calls ([`call_nested`]: `catch_response` blocks, `request`
//! listeners).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use mlua::debug::Debug;
use mlua::{ffi, ffi::lua_State, FromLuaMulti, Function, HookTriggers, IntoLuaMulti, Lua};
use mlua::{Thread, Value, VmState};

use super::arming::{self, Slot};
use crate::engine::StopSignal;
use crate::script::limits::{format_secs, RunStop};
use crate::script::park::{parking, Park, Parking};

/// While the run is past its stop deadline, how long a slice may run.
const STOP_SLICE: Duration = Duration::from_millis(100);
/// Finished callback threads kept for reuse.
const POOL: usize = 16;

pub(crate) struct Watchdog {
    /// When Lua last got control (start of the current slice).
    slice_start: Cell<Instant>,
    /// The user whose coroutine is being polled (none for events).
    current: RefCell<Option<Rc<StopSignal>>>,
    limit: Duration,
    run_stop: Option<Arc<RunStop>>,
    /// Depth of coroutines the script created that are running now (see
    /// lua/prelude/guard.lua). Zero whenever the executor polls: such a
    /// coroutine never suspends, so none is mid-run then, whatever an
    /// error between resume and its bookkeeping left behind.
    pub(crate) nested: Rc<Cell<u32>>,
    /// The script's coroutines running in this slice and the depth each
    /// was pushed at; held so that they stay alive while on the stack
    /// (a resume that raised leaves its entry until the slice ends).
    coroutines: RefCell<Vec<(Thread, usize)>>,
    /// Interruptions past the stop deadline in this slice.
    stop_cuts: Cell<u32>,
    /// The hook suspended the slice's coroutine for good (see `check`).
    abandon: Cell<bool>,
    /// Finished threads for [`call_nested`].
    pool: RefCell<Vec<Thread>>,
    slot: Arc<Slot>,
}

impl Watchdog {
    pub(crate) fn new(limit: Duration, run_stop: Option<Arc<RunStop>>) -> Rc<Watchdog> {
        // Armed by half the shortest slice that may be cut, so the check
        // runs before the limit whatever the arming thread's tick.
        let arm_after = limit.min(STOP_SLICE) / 2;
        Rc::new(Watchdog {
            slice_start: Cell::new(Instant::now()),
            current: RefCell::new(None),
            limit,
            run_stop,
            nested: Rc::new(Cell::new(0)),
            coroutines: RefCell::new(Vec::new()),
            stop_cuts: Cell::new(0),
            abandon: Cell::new(false),
            pool: RefCell::new(Vec::new()),
            slot: Slot::register(arm_after),
        })
    }

    /// Restart the clock of the current slice (loading a script's chunk
    /// after the prelude).
    pub(crate) fn restart(&self) {
        let now = Instant::now();
        self.slice_start.set(now);
        self.slot.restart(now);
    }

    /// A slice of Lua called synchronously from Rust (loading, a shape
    /// call): on the state's main thread until the guard drops.
    pub(crate) fn sync_slice(&self, lua: &Lua) -> SyncSlice<'_> {
        let prev = self.begin(lua.current_thread().state(), None);
        SyncSlice(self, prev)
    }

    /// Give `lua` the hook procedure, with no thread hooked yet: mlua's
    /// global hook calls our check on whatever thread `arming` arms.
    pub(crate) fn install(self: &Rc<Self>, lua: &Lua) -> mlua::Result<()> {
        let me = self.clone();
        lua.set_global_hook(HookTriggers::new().every_nth_instruction(1), move |l, d| {
            me.check(l, d)
        })?;
        // SAFETY: the main thread of a live state, on its own OS thread.
        if let Some(hook) = unsafe { mlua::ffi::lua_gethook(lua.current_thread().state()) } {
            arming::set_hook_proc(hook);
        }
        // The same callback with no trigger: mlua gives new threads (and
        // takes from the main thread) a hook with an empty mask, i.e. none.
        let me = self.clone();
        lua.set_global_hook(HookTriggers::new(), move |l, d| me.check(l, d))
    }

    fn begin(
        &self,
        thread: *mut lua_State,
        user: Option<Rc<StopSignal>>,
    ) -> Option<Rc<StopSignal>> {
        let now = Instant::now();
        self.slice_start.set(now);
        self.nested.set(0);
        self.stop_cuts.set(0);
        self.slot.begin(thread, now);
        self.current.replace(user)
    }

    fn end(&self, prev: Option<Rc<StopSignal>>) {
        let armed = self.slot.end();
        let mut coroutines = self.coroutines.borrow_mut();
        if armed {
            for (t, _) in coroutines.iter() {
                arming::disarm(t.state());
            }
        }
        coroutines.clear();
        *self.current.borrow_mut() = prev;
    }

    /// The script resumes `co` (guard.lua's coroutine.resume / wrap).
    pub(crate) fn enter_nested(&self, co: &Value) {
        self.nested.set(self.nested.get().saturating_add(1));
        if let Value::Thread(t) = co {
            let depth = arming::push(t.state());
            self.coroutines.borrow_mut().push((t.clone(), depth));
        }
    }

    /// `co`'s resume returned: it and anything a failed resume left above
    /// it come off the stack.
    pub(crate) fn leave_nested(&self, co: &Value) {
        self.nested.set(self.nested.get().saturating_sub(1));
        let Value::Thread(t) = co else { return };
        let mut coroutines = self.coroutines.borrow_mut();
        let Some(at) = coroutines.iter().rposition(|(c, _)| c == t) else {
            return;
        };
        for (c, depth) in coroutines.drain(at..).rev() {
            arming::pop(depth, c.state());
        }
    }

    fn check(&self, lua: &Lua, at: &Debug) -> mlua::Result<VmState> {
        let now = Instant::now();
        let ran = now.saturating_duration_since(self.slice_start.get());
        if ran >= self.limit {
            self.restart();
            return Err(mlua::Error::runtime(format!(
                "task ran {} without yielding{} (--max-blocking-time)",
                format_secs(self.limit),
                place(at)
            )));
        }
        if ran >= STOP_SLICE && self.run_stop.as_ref().is_some_and(|s| s.passed(now)) {
            self.restart();
            if let Some(user) = &*self.current.borrow() {
                user.stop_gracefully();
            }
            // The script caught the first error and kept going (a pcall in
            // a loop): suspend the coroutine instead, which no pcall can
            // catch, and end its future (`Watched`) with this error.
            let cuts = self.stop_cuts.get();
            self.stop_cuts.set(cuts.saturating_add(1));
            // SAFETY: the running thread of this state, on this OS thread.
            if cuts > 0 && unsafe { ffi::lua_isyieldable(lua.current_thread().state()) } != 0 {
                self.abandon.set(true);
                return Ok(VmState::Yield);
            }
            return Err(mlua::Error::runtime(format!(
                "interrupted: the run is stopping and this code has not yielded{}",
                place(at)
            )));
        }
        Ok(VmState::Continue)
    }

    /// The user currently running, if any (`locusta.quit` and `self:stop()`
    /// stop it; `kill_point` watches it).
    pub(crate) fn current_user(&self) -> Option<Rc<StopSignal>> {
        self.current.borrow().clone()
    }

    /// A thread running `f`: a finished one reused, or a new one.
    fn thread_for(&self, lua: &Lua, f: &Function) -> mlua::Result<Thread> {
        if let Some(t) = self.pool.borrow_mut().pop() {
            if t.reset(f.clone()).is_ok() {
                return Ok(t);
            }
        }
        lua.create_thread(f.clone())
    }

    fn give_back(&self, t: Thread) {
        let mut pool = self.pool.borrow_mut();
        if pool.len() < POOL && t.status() == mlua::thread::ThreadStatus::Finished {
            pool.push(t);
        }
    }
}

/// " at file:line" of the Lua code the hook interrupted: the error is seen
/// (and located) where the user's own frame is, which for a loop in a
/// coroutine or a callback is the call that led there.
fn place(at: &Debug) -> String {
    match (at.source().short_src, at.current_line()) {
        (Some(src), Some(line)) => format!(" at {src}:{line}"),
        _ => String::new(),
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        arming::unregister(&self.slot);
    }
}

/// A synchronous slice (see [`Watchdog::sync_slice`]); ends when dropped.
pub(crate) struct SyncSlice<'a>(&'a Watchdog, Option<Rc<StopSignal>>);

impl Drop for SyncSlice<'_> {
    fn drop(&mut self) {
        self.0.end(self.1.take());
    }
}

/// `f(args)` on a thread of its own, watched: each poll is a slice on that
/// thread, for `user` (a user's run, an event's listeners).
pub(crate) fn watched_call<R: FromLuaMulti + 'static>(
    lua: &Lua,
    dog: &Rc<Watchdog>,
    f: &Function,
    args: impl IntoLuaMulti,
    user: Option<Rc<StopSignal>>,
) -> mlua::Result<Watched<impl Future<Output = mlua::Result<R>>>> {
    let thread = lua.create_thread(f.clone())?;
    let state = thread.state();
    Ok(Watched {
        inner: Box::pin(thread.into_async::<R>(args)?),
        dog: dog.clone(),
        user,
        thread: state,
        park: Rc::new(Park::default()),
        parking: parking(lua),
    })
}

/// A future that runs Lua (a user, an event): each poll starts a new slice
/// on the watchdog's clock and names the user being polled.
pub(crate) struct Watched<F> {
    inner: Pin<Box<F>>,
    dog: Rc<Watchdog>,
    user: Option<Rc<StopSignal>>,
    /// The Lua thread `inner` resumes (alive as long as `inner`).
    thread: *mut lua_State,
    /// Where the thread's requests wait (see `script::park`).
    park: Rc<Park>,
    parking: Rc<Parking>,
}

impl<R, F: Future<Output = mlua::Result<R>>> Future for Watched<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let prev = this.dog.begin(this.thread, this.user.clone());
        let out = this.park.drive(&this.parking, this.inner.as_mut(), cx);
        this.dog.end(prev);
        if this.dog.abandon.replace(false) {
            // Never resumed again: the thread is dropped with this future.
            return Poll::Ready(Err(mlua::Error::runtime(
                "interrupted: the run is stopping and this code kept running \
                 after its error was caught: abandoned",
            )));
        }
        out
    }
}

/// `f(args)` from Rust inside a slice (a callback the script gave a
/// request, a listener), on a thread pushed on the slice's stack while it
/// runs, so the watchdog reaches a busy loop there too.
pub(crate) async fn call_nested<R: FromLuaMulti + 'static>(
    lua: &Lua,
    f: &Function,
    args: impl IntoLuaMulti,
) -> mlua::Result<R> {
    let Some(dog) = lua.app_data_ref::<Rc<Watchdog>>().map(|d| d.clone()) else {
        return crate::script::park::call(lua, f, args).await;
    };
    let thread = dog.thread_for(lua, f)?;
    let nested = Nested {
        thread: thread.state(),
        inner: Box::pin(thread.clone().into_async::<R>(args)?),
        park: Rc::new(Park::default()),
        parking: parking(lua),
    };
    let out = nested.await;
    dog.give_back(thread);
    out
}

struct Nested<F> {
    thread: *mut lua_State,
    inner: Pin<Box<F>>,
    park: Rc<Park>,
    parking: Rc<Parking>,
}

impl<F: Future> Future for Nested<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let depth = arming::push(this.thread);
        let out = this.park.drive(&this.parking, this.inner.as_mut(), cx);
        arming::pop(depth, this.thread);
        out
    }
}
