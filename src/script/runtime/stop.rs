//! Graceful stop as the prelude sees it: the stop flag handed to Lua as a
//! light userdata (`stopping`, a plain C function on the task loop's hot
//! path), and waits that a graceful stop cuts short. `StopSignal` has no
//! waker for the graceful flag, so users in a wait longer than
//! [`STOP_POLL`] register with the shard's [`StopWatch`], one task that
//! checks their flags every [`STOP_POLL`] while anyone waits; the waits'
//! timer is the shard's [`Naps`].

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mlua::{LightUserData, UserData};

use super::naps::Naps;
use super::STOP_POLL;
use crate::engine::StopSignal;

/// Owns a user's stop signal for as long as its coroutine runs: run_user
/// holds it, so the light userdata `stop_ptr` made from it stays valid.
pub(super) struct StopHandle(#[allow(dead_code)] pub(super) Rc<StopSignal>);

impl UserData for StopHandle {}

/// The light userdata the prelude passes to `stopping` and `wait`.
pub(super) fn stop_ptr(stop: &Rc<StopSignal>) -> LightUserData {
    LightUserData(Rc::as_ptr(stop) as *mut std::ffi::c_void)
}

/// `stopping(stop)`: a plain C function, because the task loop asks for
/// every task and an mlua callback with a userdata borrow costs ~5x more.
pub(super) unsafe extern "C-unwind" fn lua_stopping(
    l: *mut mlua::ffi::lua_State,
) -> std::ffi::c_int {
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
pub(super) fn stop_from_ptr(p: LightUserData) -> Option<Rc<StopSignal>> {
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
pub(super) async fn wait(watch: &Rc<StopWatch>, stop: &Rc<StopSignal>, secs: f64) {
    if stop.stopping() || secs.is_nan() || secs <= 0.0 {
        return;
    }
    let d = Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(u32::MAX as u64));
    // The shard's one timer, not a `Sleep` per waiting user (see `naps`).
    let nap = watch.naps.nap(d);
    if d <= STOP_POLL {
        nap.await;
        return;
    }
    let stopped = GracefulStop {
        watch: watch.clone(),
        stop: stop.clone(),
        slot: None,
    };
    monoio::select! {
        _ = nap => {},
        _ = stopped => {},
    }
}

/// A user in a wait: its stop flag, and who to wake when it goes up.
type Waiter = (Rc<StopSignal>, Waker);

/// Users of one shard waiting for a graceful stop, and the ticker task that
/// wakes them when their flag goes up.
#[derive(Default)]
pub(super) struct StopWatch {
    slots: RefCell<Vec<Option<Waiter>>>,
    free: RefCell<Vec<usize>>,
    waiting: Cell<usize>,
    ticking: Cell<bool>,
    /// The timer of the waits themselves.
    naps: Rc<Naps>,
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

/// The error an await pending when its user was killed returns (the
/// prelude turns it into its KILLED sentinel: the user's on_stop runs).
#[derive(Debug, thiserror::Error)]
#[error("the user was stopped (--stop-timeout passed): its on_stop runs next")]
pub struct UserKilled;

/// `fut`, interrupted with [`UserKilled`] if the user calling it is killed
/// while it is pending (Locust's GreenletExit at the user's current
/// await). Call it where the await is created: the watchdog names the user
/// being polled then.
pub(crate) fn kill_point<T>(
    lua: &mlua::Lua,
    fut: impl Future<Output = mlua::Result<T>>,
) -> impl Future<Output = mlua::Result<T>> {
    let k = crate::engine::Killable::new(fut, current_user(lua));
    async move {
        k.await
            .unwrap_or_else(|| Err(mlua::Error::external(UserKilled)))
    }
}

/// The user whose coroutine runs now (none outside users: events, tests).
pub(crate) fn current_user(lua: &mlua::Lua) -> Option<Rc<StopSignal>> {
    lua.app_data_ref::<Rc<super::watchdog::Watchdog>>()
        .and_then(|dog| dog.current_user())
}

/// Whether a Lua error value is a [`UserKilled`] (for the prelude).
pub(super) fn is_kill(v: &mlua::Value) -> bool {
    matches!(v, mlua::Value::Error(e) if e.downcast_ref::<UserKilled>().is_some())
}
