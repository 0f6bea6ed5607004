//! Simulated users on a shard, and how they are told to stop.
//!
//! A user is a task on its shard's runtime. Raw mode (no script) is a Rust
//! loop: request the plan's URLs in turn (the raw-mode flags' method,
//! headers and body, see `raw`), no think time, one keep-alive connection
//! per user (like a browser session); `--pipeline` and `--follow-redirects`
//! have loops of their own (`pipelined`, `follow`) so this one stays as
//! cheap as it was. Scripted users arrive with
//! the Lua issue and plug in beside [`run_raw_user`]. This module owns the
//! per-request hot path: send, time, record. It does not own spawning (see
//! `shard`) or the numbers' meaning (see `stats`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::http::{ClientConfig, Connection, DiscardBody, HttpError, ResponseInfo};
use crate::stats::{EntryId, Failure, ShardStats};

/// One raw-mode request, serialized once per shard and shared by its users.
pub struct RawRequest {
    pub bytes: Rc<Vec<u8>>,
    pub entry: EntryId,
    /// The absolute URL, the base a redirect's `Location` resolves against.
    pub url: Rc<str>,
}

/// What raw-mode users on one shard do.
pub struct RawPlan {
    pub endpoint: crate::http::Endpoint,
    pub client: ClientConfig,
    /// One per URL, in the order given.
    pub requests: Vec<RawRequest>,
    /// The flags the requests were built from (method, headers, body,
    /// pipeline depth, redirects).
    pub options: super::RawOptions,
    /// With `--pipeline N > 1`: `batches[i]` is N requests from URL `i` on.
    pub batches: Vec<Rc<Vec<u8>>>,
}

/// Stop request for one user, in three steps: graceful (finish the current
/// request or task, then on_stop), killed (a Lua user's request or sleep in
/// progress is interrupted, then on_stop runs: Locust's `GreenletExit`),
/// forced (the task is dropped at its next await point).
#[derive(Default)]
pub struct StopSignal {
    graceful: Cell<bool>,
    killed: Cell<bool>,
    forced: Cell<bool>,
    /// The user's task has ended.
    done: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    /// The user's task, while it awaits something a kill interrupts.
    kill_waker: RefCell<Option<Waker>>,
    /// An open-model user: where its iterations come from (Lua users find
    /// it through their stop handle).
    open: RefCell<Option<Rc<super::open::OpenSlot>>>,
}

impl StopSignal {
    pub fn stop_gracefully(&self) {
        self.graceful.set(true);
    }

    /// Interrupt what the user awaits now (see [`Killable`]); what it
    /// awaits afterwards (its on_stop) runs normally.
    pub fn kill(&self) {
        self.graceful.set(true);
        self.killed.set(true);
        if let Some(w) = self.kill_waker.borrow_mut().take() {
            w.wake();
        }
    }

    pub fn force(&self) {
        self.graceful.set(true);
        self.forced.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    pub fn stopping(&self) -> bool {
        self.graceful.get()
    }

    pub fn killed(&self) -> bool {
        self.killed.get()
    }

    pub fn done(&self) -> bool {
        self.done.get()
    }

    /// The open-model slot of this user (`None`: a closed-model user).
    pub fn open_slot(&self) -> Option<Rc<super::open::OpenSlot>> {
        self.open.borrow().clone()
    }

    pub(crate) fn set_open(&self, slot: Rc<super::open::OpenSlot>) {
        *self.open.borrow_mut() = Some(slot);
    }

    pub(crate) fn set_done(&self) {
        self.done.set(true);
        // Nothing will await again: let go of the task's wakers.
        self.waker.borrow_mut().take();
        self.kill_waker.borrow_mut().take();
        // The slot points back at the shard; the user will not iterate again.
        if let Some(slot) = self.open.borrow_mut().take() {
            slot.set_gone();
        }
    }

    /// Resolves once [`StopSignal::force`] is called.
    pub fn forced(self: &Rc<Self>) -> Forced {
        Forced(self.clone())
    }
}

pub struct Forced(Rc<StopSignal>);

impl Future for Forced {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.forced.get() {
            return Poll::Ready(());
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// An await a kill interrupts: `inner`, unless the user's [`StopSignal`]
/// is killed while it is pending, then `None` at once (and `inner` is
/// dropped, with whatever connection it held). Only an await begun before
/// the kill is interrupted, so the on_stop that runs after it is not.
pub struct Killable<F> {
    inner: Option<Pin<Box<F>>>,
    stop: Option<Rc<StopSignal>>,
}

impl<F: Future> Killable<F> {
    /// `stop`: the user awaiting (`None`: nothing interrupts it).
    pub fn new(inner: F, stop: Option<Rc<StopSignal>>) -> Self {
        let stop = stop.filter(|s| !s.killed());
        Killable {
            inner: Some(Box::pin(inner)),
            stop,
        }
    }
}

impl<F: Future> Future for Killable<F> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(stop) = &this.stop {
            if stop.killed() {
                this.inner = None;
                return Poll::Ready(None);
            }
        }
        let out = inner.as_mut().poll(cx);
        match out {
            Poll::Ready(v) => {
                this.inner = None;
                Poll::Ready(Some(v))
            }
            Poll::Pending => {
                if let Some(stop) = &this.stop {
                    let mut slot = stop.kill_waker.borrow_mut();
                    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *slot = Some(cx.waker().clone());
                    }
                }
                Poll::Pending
            }
        }
    }
}

/// The raw-mode loop: requests in turn until asked to stop. `first` spreads
/// users over the URLs so each URL sees load from the first request on.
pub async fn run_raw_user(
    plan: Rc<RawPlan>,
    stats: Rc<RefCell<ShardStats>>,
    stop: Rc<StopSignal>,
    first: usize,
) {
    let mut conn = Connection::to(plan.endpoint.clone(), plan.client.clone());
    let n = plan.requests.len();
    let mut i = first % n;
    // One clock read per request: a request ends when the next one starts.
    let mut started = Instant::now();
    let mut backoff = ConnectBackoff::default();
    while !stop.stopping() {
        let req = &plan.requests[i];
        let connects_before = (conn.is_connected(), conn.connects());
        let result = conn
            .send_since(started, &req.bytes, plan.options.method, &mut DiscardBody)
            .await;
        let ended = Instant::now();
        let micros = ended.duration_since(started).as_micros() as u64;
        started = ended;
        let failed = record(&mut stats.borrow_mut(), req.entry, micros, result);
        // A connect was needed and none succeeded: the connect failed.
        let connect_failed = !connects_before.0 && conn.connects() == connects_before.1;
        if backoff.pace(&stop, connect_failed, failed).await {
            started = Instant::now();
        }
        i += 1;
        if i == n {
            i = 0;
        }
    }
}

/// The first and the largest pause after a failed connect.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A user's pause after failed connects: 10 ms, doubling to 1 s, back to
/// 10 ms after a connect succeeds. It is a real timer sleep, so the shard
/// reaches its driver and control loop even when every user fails at once.
/// Public so Lua users' connect path (`script`) can pace itself the same way.
#[derive(Debug, Default)]
pub struct ConnectBackoff {
    next: Option<Duration>,
}

impl ConnectBackoff {
    pub fn reset(&mut self) {
        self.next = None;
    }

    /// The pause to take now; the following one is twice as long (capped).
    pub fn step(&mut self) -> Duration {
        let now = self.next.unwrap_or(BACKOFF_FIRST);
        self.next = Some(now.saturating_mul(2).min(BACKOFF_MAX));
        now
    }

    /// What a raw user does after each request (or batch, or redirect
    /// chain): pause after a failed connect, yield after another failure;
    /// true when it did either (the caller restarts its clock). A connect
    /// can fail without ever suspending (EMFILE from socket(), refused on
    /// loopback): retrying at once would keep the task runnable forever,
    /// and monoio runs timers and reaps completions only when its run queue
    /// drains, so the shard's control loop (reports, -t, stop) would never
    /// run again.
    pub async fn pace(&mut self, stop: &StopSignal, connect_failed: bool, failed: bool) -> bool {
        if connect_failed {
            self.wait(stop).await;
            return true;
        }
        self.reset();
        if failed {
            yield_now().await;
            return true;
        }
        false
    }

    /// Sleep the next pause; a graceful stop ends it early (polled every
    /// `BACKOFF_FIRST`, so a stopping user never waits the full second).
    pub async fn wait(&mut self, stop: &StopSignal) {
        let until = Instant::now() + self.step();
        while !stop.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            monoio::time::sleep(left.min(BACKOFF_FIRST)).await;
        }
    }
}

/// Count one request's outcome; true when it failed.
pub(super) fn record(
    stats: &mut ShardStats,
    entry: EntryId,
    micros: u64,
    result: Result<ResponseInfo, HttpError>,
) -> bool {
    record_outcome(stats, entry, micros, result.map_err(Failure::Http))
}

/// `record` for an outcome already named as a [`Failure`] (a redirect
/// chain's own failures are messages, not transport errors).
pub(super) fn record_outcome(
    stats: &mut ShardStats,
    entry: EntryId,
    micros: u64,
    result: Result<ResponseInfo, Failure>,
) -> bool {
    match result {
        Ok(r) if r.status < 400 => {
            stats.record(entry, micros, r.body_len);
            false
        }
        Ok(r) => {
            stats.record_failure(entry, micros, r.body_len, Failure::Status(r.status));
            true
        }
        Err(f) => {
            stats.record_failure(entry, micros, 0, f);
            true
        }
    }
}

/// Suspend once and let the other tasks of this shard run.
pub fn yield_now() -> impl Future<Output = ()> {
    YieldNow(false)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = ConnectBackoff::default();
        let steps: Vec<u128> = (0..10).map(|_| b.step().as_millis()).collect();
        assert_eq!(steps, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.step(), BACKOFF_FIRST);
    }

    /// The raw loop's future is what every raw user's task carries and what
    /// each poll walks through: the rare parts (connect, TLS handshake) and
    /// the request deadline are boxed so it stays small: 1,664 bytes on
    /// 2026-12-07 (x86_64), most of it the connection and the pinned write
    /// and read ops of `exchange`. The bound catches growth, not noise.
    #[test]
    fn raw_loop_future_stays_small() {
        let targets = [crate::http::Target::parse("http://127.0.0.1:1/").unwrap()];
        let mut stats = ShardStats::new();
        let options = super::super::RawOptions::default();
        let plan =
            super::super::raw::build_plan(&targets, &options, ClientConfig::default(), &mut stats);
        let stats = Rc::new(RefCell::new(stats));
        let fut = run_raw_user(Rc::new(plan), stats, Rc::default(), 0);
        let size = std::mem::size_of_val(&fut);
        eprintln!("run_raw_user future: {size} bytes");
        assert!(size <= 2048, "the raw loop's future grew to {size} bytes");
    }
}
