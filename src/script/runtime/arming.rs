//! Arming the watchdog's hook only when Lua runs long. In Lua 5.4 any count
//! hook makes the VM trap on every instruction of the hooked thread (the
//! count is kept by the trap), which cost ~13 % of the instructions of a
//! scripted GET. So no thread carries a hook while slices are short; a
//! process-wide arming thread looks at every Lua state's slice every
//! [`TICK`] and, once one has run [`Slot`]'s `arm_after`, sends the state's
//! OS thread [`SIGNAL`]. The handler, on that thread, sets the hook on the
//! Lua threads running there (the one the slice resumed and the coroutines
//! nested in it), as lua.c does for Ctrl-C: `lua_sethook` is made to be
//! called from a signal handler, never from another thread (it walks the
//! thread's call frames). The shard removes the hook when the slice ends.
//!
//! The running threads are a stack per OS thread ([`Running`], atomics in
//! a `const` thread-local, so the handler reads them without locks or
//! lazy initialisation); `watchdog` pushes and pops it. Everything pushed
//! must stay alive until popped (the caller holds it). It does not own
//! what the hook checks (`watchdog`).

use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mlua::ffi::{self, lua_Hook, lua_State};

/// How often the arming thread looks at the slices.
const TICK: Duration = Duration::from_millis(20);
/// Once armed, VM instructions between two looks at the clock (~2-10 µs
/// of Lua: an overrun is caught within microseconds of the limit).
const ARMED_EVERY: i32 = 1_000;
/// Deeper nesting than this is not armed (Lua's C stack limit, 200,
/// bounds how deep coroutines nest anyway).
const MAX_NEST: usize = 256;
/// Default disposition "ignore", so a stray one harms nothing; nothing
/// else in the process uses it.
const SIGNAL: libc::c_int = libc::SIGURG;

/// The Lua threads running on this OS thread, outermost first.
struct Running {
    depth: AtomicUsize,
    threads: [AtomicPtr<lua_State>; MAX_NEST],
    /// The signal set the hook during this slice.
    armed: AtomicBool,
}

thread_local! {
    static RUNNING: Running = const {
        Running {
            depth: AtomicUsize::new(0),
            threads: [const { AtomicPtr::new(null_mut()) }; MAX_NEST],
            armed: AtomicBool::new(false),
        }
    };
}

/// mlua's hook procedure for the state's global hook callback (the same
/// function for every state: it finds the callback through the state).
static HOOK: OnceLock<lua_Hook> = OnceLock::new();

/// Remember the hook procedure `lua_gethook` returns for a thread that has
/// mlua's global hook set.
pub(super) fn set_hook_proc(hook: lua_Hook) {
    let _ = HOOK.set(hook);
}

/// One Lua state's slice, as the arming thread sees it.
pub(super) struct Slot {
    thread: libc::pthread_t,
    /// When the current slice started ([`now_ns`]); 0 outside slices.
    start: AtomicU64,
    /// The slice already signalled (its `start`).
    signalled: AtomicU64,
    arm_after: u64,
}

impl Slot {
    /// Register the calling OS thread's state: slices longer than
    /// `arm_after` get the hook armed.
    pub(super) fn register(arm_after: Duration) -> Arc<Slot> {
        start_arming_thread();
        let slot = Arc::new(Slot {
            // SAFETY: pthread_self has no preconditions.
            thread: unsafe { libc::pthread_self() },
            start: AtomicU64::new(0),
            signalled: AtomicU64::new(0),
            arm_after: arm_after.as_nanos().min(u64::MAX as u128) as u64,
        });
        slots()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(slot.clone());
        slot
    }

    /// A slice starts on `thread` (alive until [`end`](Self::end)).
    pub(super) fn begin(&self, thread: *mut lua_State, now: Instant) {
        RUNNING.with(|r| {
            r.threads[0].store(thread, SeqCst);
            r.depth.store(1, SeqCst);
        });
        self.start.store(now_ns(now), SeqCst);
    }

    /// The slice ends: the hook comes off the thread it started on (nested
    /// threads were disarmed when popped). Whether the slice was armed.
    pub(super) fn end(&self) -> bool {
        RUNNING.with(|r| {
            r.depth.store(0, SeqCst);
            self.start.store(0, SeqCst);
            let armed = r.armed.swap(false, SeqCst);
            if armed {
                disarm(r.threads[0].load(SeqCst));
            }
            armed
        })
    }

    /// The slice's clock restarted (after an interruption): the arming
    /// thread may signal again.
    pub(super) fn restart(&self, now: Instant) {
        if self.start.load(SeqCst) != 0 {
            self.start.store(now_ns(now), SeqCst);
        }
    }
}

/// Unregister `slot` (its state is dropped, its OS thread may exit next).
/// Under the lock the arming thread holds while it signals: once this
/// returns, that OS thread is never signalled.
pub(super) fn unregister(slot: &Arc<Slot>) {
    let mut all = slots().lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|s| !Arc::ptr_eq(s, slot));
}

/// A nested thread (a coroutine the script resumes, a callback's thread)
/// starts running inside the slice; returns the depth to [`pop`] back to.
/// `thread` must stay alive until then.
pub(super) fn push(thread: *mut lua_State) -> usize {
    RUNNING.with(|r| {
        let d = r.depth.load(SeqCst);
        if d < MAX_NEST {
            r.threads[d].store(thread, SeqCst);
        }
        r.depth.store(d + 1, SeqCst);
        if r.armed.load(SeqCst) {
            arm(thread);
        }
        d
    })
}

/// Back to `depth`: `thread` (the one pushed there) stops running.
pub(super) fn pop(depth: usize, thread: *mut lua_State) {
    RUNNING.with(|r| {
        r.depth.store(depth, SeqCst);
        if r.armed.load(SeqCst) {
            disarm(thread);
        }
    })
}

fn arm(thread: *mut lua_State) {
    if let (Some(hook), false) = (HOOK.get(), thread.is_null()) {
        // SAFETY: `thread` is alive (pushed, not popped) and runs on this
        // OS thread; lua_sethook may interrupt the VM (lua.c's laction).
        unsafe { ffi::lua_sethook(thread, Some(*hook), ffi::LUA_MASKCOUNT, ARMED_EVERY) };
    }
}

pub(super) fn disarm(thread: *mut lua_State) {
    if !thread.is_null() {
        // SAFETY: as in `arm`.
        unsafe { ffi::lua_sethook(thread, None, 0, 0) };
    }
}

extern "C" fn on_signal(_: libc::c_int) {
    RUNNING.with(|r| {
        let depth = r.depth.load(SeqCst).min(MAX_NEST);
        if depth == 0 {
            return;
        }
        r.armed.store(true, SeqCst);
        for t in &r.threads[..depth] {
            arm(t.load(SeqCst));
        }
    })
}

fn slots() -> &'static Mutex<Vec<Arc<Slot>>> {
    static SLOTS: Mutex<Vec<Arc<Slot>>> = Mutex::new(Vec::new());
    &SLOTS
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_ns(now: Instant) -> u64 {
    (now.saturating_duration_since(base()).as_nanos() as u64).max(1)
}

/// Install the handler and start the thread, once per process.
fn start_arming_thread() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        base();
        // SAFETY: a handler that only touches atomics in a const
        // thread-local and calls lua_sethook, which is signal-safe.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            act.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(SIGNAL, &act, std::ptr::null_mut());
        }
        let spawned = std::thread::Builder::new()
            .name("locusta-watchdog".into())
            .spawn(|| loop {
                std::thread::sleep(TICK);
                let now = now_ns(Instant::now());
                let all = slots().lock().unwrap_or_else(|e| e.into_inner());
                for s in all.iter() {
                    let start = s.start.load(SeqCst);
                    if start != 0
                        && now.saturating_sub(start) >= s.arm_after
                        && s.signalled.swap(start, SeqCst) != start
                    {
                        // SAFETY: the thread is alive: its slot is
                        // registered, and unregistering takes this lock.
                        unsafe { libc::pthread_kill(s.thread, SIGNAL) };
                    }
                }
            });
        if let Err(e) = spawned {
            log::warn!(
                "cannot start the Lua watchdog thread ({e}): long-running Lua is not interrupted"
            );
        }
    });
}
