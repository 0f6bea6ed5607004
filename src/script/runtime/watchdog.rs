//! The watchdog of a shard's Lua state: Lua code that runs too long without
//! yielding gets a Lua error, so a busy loop in a task, `on_start`,
//! `on_stop` or an event listener can never hold the shard (its control
//! loop, its other users, the end of the run).
//!
//! One Lua state runs one coroutine at a time, so one clock per state is
//! enough: [`Watched`] notes the time whenever Rust hands control to Lua
//! (each poll of a user's or an event's future), and an instruction-count
//! hook ([`HOOK_EVERY`] VM instructions) compares it with now. A slice that
//! ran longer than the limit gets `task ran 5 s without yielding`; once the
//! run's stop deadline ([`RunStop`]) has passed, a slice longer than
//! [`STOP_SLICE`] gets interrupted too and its user is told to stop, so a
//! stop always completes. After an interruption the clock restarts, so the
//! error handlers (and the user's next task) get a fresh slice.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use mlua::{HookTriggers, Lua, VmState};

use crate::engine::StopSignal;
use crate::script::limits::{format_secs, RunStop};

/// VM instructions between two looks at the clock. A clock read costs
/// ~25 ns; the VM runs ~100-500 M instructions/s, so this is well under
/// 0.1 % of a busy loop, and nothing at all for code that yields sooner.
pub(crate) const HOOK_EVERY: u32 = 10_000;
/// While the run is past its stop deadline, how long a slice may run.
const STOP_SLICE: Duration = Duration::from_millis(100);

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
}

impl Watchdog {
    pub(crate) fn new(limit: Duration, run_stop: Option<Arc<RunStop>>) -> Rc<Watchdog> {
        Rc::new(Watchdog {
            slice_start: Cell::new(Instant::now()),
            current: RefCell::new(None),
            limit,
            run_stop,
            nested: Rc::new(Cell::new(0)),
        })
    }

    /// Lua gets control now (loading a script, running a chunk).
    pub(crate) fn restart(&self) {
        self.slice_start.set(Instant::now());
    }

    /// Install the count hook on `lua` (every thread created later, by
    /// mlua or by `coroutine.create`, inherits it).
    pub(crate) fn install(self: &Rc<Self>, lua: &Lua) -> mlua::Result<()> {
        let me = self.clone();
        lua.set_global_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_, _| me.check(),
        )
    }

    fn check(&self) -> mlua::Result<VmState> {
        let now = Instant::now();
        let ran = now.saturating_duration_since(self.slice_start.get());
        if ran >= self.limit {
            self.slice_start.set(now);
            return Err(mlua::Error::runtime(format!(
                "task ran {} without yielding (--max-blocking-time)",
                format_secs(self.limit)
            )));
        }
        if ran >= STOP_SLICE && self.run_stop.as_ref().is_some_and(|s| s.passed(now)) {
            self.slice_start.set(now);
            if let Some(user) = &*self.current.borrow() {
                user.stop_gracefully();
            }
            return Err(mlua::Error::runtime(
                "interrupted: the run is stopping and this code has not yielded",
            ));
        }
        Ok(VmState::Continue)
    }

    /// The user currently running, if any (`locusta.quit` and `self:stop()`
    /// stop it; `kill_point` watches it).
    pub(crate) fn current_user(&self) -> Option<Rc<StopSignal>> {
        self.current.borrow().clone()
    }
}

/// A future that runs Lua (a user, an event): each poll starts a new slice
/// on the watchdog's clock and names the user being polled.
pub(crate) struct Watched<F> {
    pub(crate) inner: Pin<Box<F>>,
    pub(crate) dog: Rc<Watchdog>,
    pub(crate) user: Option<Rc<StopSignal>>,
}

impl<F: Future> Future for Watched<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        this.dog.slice_start.set(Instant::now());
        this.dog.nested.set(0);
        let prev = this.dog.current.replace(this.user.clone());
        let out = this.inner.as_mut().poll(cx);
        *this.dog.current.borrow_mut() = prev;
        out
    }
}
