//! Simulated users on a shard, and how they are told to stop.
//!
//! A user is a task on its shard's runtime. Raw mode (no script) is a Rust
//! loop: GET the plan's URLs in turn, no think time, one keep-alive
//! connection per user (like a browser session). Scripted users arrive with
//! the Lua issue and plug in beside [`run_raw_user`]. This module owns the
//! per-request hot path: send, time, record. It does not own spawning (see
//! `shard`) or the numbers' meaning (see `stats`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::http::{ClientConfig, Connection, DiscardBody, HttpError, Method, ResponseInfo};
use crate::stats::{EntryId, Failure, ShardStats};

/// One raw-mode request, serialized once per shard and shared by its users.
pub struct RawRequest {
    pub bytes: Rc<Vec<u8>>,
    pub entry: EntryId,
}

/// What raw-mode users on one shard do.
pub struct RawPlan {
    pub addr: std::net::SocketAddr,
    pub client: ClientConfig,
    pub requests: Vec<RawRequest>,
}

/// Stop request for one user: graceful (finish the current request or task),
/// then forced (the task is dropped at its next await point).
#[derive(Default)]
pub struct StopSignal {
    graceful: Cell<bool>,
    forced: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl StopSignal {
    pub fn stop_gracefully(&self) {
        self.graceful.set(true);
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

/// The raw-mode loop: requests in turn until asked to stop. `first` spreads
/// users over the URLs so each URL sees load from the first request on.
pub async fn run_raw_user(
    plan: Rc<RawPlan>,
    stats: Rc<RefCell<ShardStats>>,
    stop: Rc<StopSignal>,
    first: usize,
) {
    let mut conn = Connection::new(plan.addr, plan.client);
    let n = plan.requests.len();
    let mut i = first % n;
    // One clock read per request: a request ends when the next one starts.
    let mut started = Instant::now();
    while !stop.stopping() {
        let req = &plan.requests[i];
        let result = conn
            .send_since(started, &req.bytes, Method::Get, &mut DiscardBody)
            .await;
        let ended = Instant::now();
        let micros = ended.duration_since(started).as_micros() as u64;
        started = ended;
        let failed = record(&mut stats.borrow_mut(), req.entry, micros, result);
        if failed {
            // Some failures (EMFILE, refused on loopback) complete without
            // ever suspending; yield so the shard's control loop still runs.
            yield_now().await;
            started = Instant::now();
        }
        i += 1;
        if i == n {
            i = 0;
        }
    }
}

/// Count one request's outcome; true when it failed.
fn record(
    stats: &mut ShardStats,
    entry: EntryId,
    micros: u64,
    result: Result<ResponseInfo, HttpError>,
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
        Err(e) => {
            stats.record_failure(entry, micros, 0, Failure::Http(e));
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
