//! The open model (arrival rate) on one shard: the schedule of iterations,
//! the pool of users that run them, the bounded queue, and the counters
//! and corrected-latency table a shard reports.
//!
//! The k-th iteration of a shard is due at `first_due + k / rate` (the
//! control thread staggers shards' first dues so they interleave). One
//! scheduler task per run sleeps until the next due time and hands out
//! every iteration due at each wake, in order: to an idle user (woken), else
//! to a new user if the pool allows one (users are created lazily), else to
//! a FIFO queue of at most one second's worth, else it is dropped and
//! counted. A user finishing an iteration takes the next one from the queue
//! (it started late) or waits idle. A rate change keeps the schedule
//! continuous: the next due is the last one plus the new interval.
//!
//! Every request of an iteration is recorded twice: measured from its send
//! (the shard's normal table) and measured plus how late its iteration
//! started (the corrected table here). This module owns that schedule and
//! the raw-mode open loop; it does not own the user tasks' lifetime
//! (`population`), Lua's side (`script`), nor merging (`control`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::population::Population;
use super::user::{record, yield_now, ConnectBackoff, RawPlan, StopSignal};
use crate::http::{Connection, DiscardBody, Method};
use crate::stats::{EntryId, IterationCounts, OpenDelta, ShardStats, StatsDelta};

/// Longest the scheduler sleeps before it looks at its rate again (a rate
/// change or a stop is seen within this).
const RECHECK: Duration = Duration::from_millis(50);
/// Most iterations handed out in one go before the scheduler yields, so a
/// scheduler far behind its schedule cannot hold the shard.
const BURST: u32 = 4096;
/// Queue capacity reserved up front (it grows to its cap only if needed,
/// then keeps its memory: no allocation per iteration in steady state).
const QUEUE_RESERVE: usize = 1024;

/// One iteration: when it should have started, and (raw mode) which URL.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Iteration {
    intended: Instant,
    url: u32,
}

/// A user's end of the open model: the iteration handed to it, and how
/// late the one it runs now started (its requests' corrected latency).
pub struct OpenSlot {
    shard: Rc<OpenShard>,
    pending: Cell<Option<Iteration>>,
    waker: RefCell<Option<Waker>>,
    lateness_us: Cell<u64>,
    url: Cell<u32>,
    /// In the shard's idle list.
    idle: Cell<bool>,
    /// The user's task ended (or was dropped): hand it nothing.
    gone: Cell<bool>,
}

impl OpenSlot {
    /// A slot holding `first`, the iteration its new user starts with.
    pub(crate) fn new(shard: Rc<OpenShard>, first: Iteration) -> Rc<OpenSlot> {
        let slot = Rc::new(OpenSlot {
            shard,
            pending: Cell::new(None),
            waker: RefCell::new(None),
            lateness_us: Cell::new(0),
            url: Cell::new(0),
            idle: Cell::new(false),
            gone: Cell::new(false),
        });
        slot.begin(first);
        slot
    }

    /// How late the current iteration started, in µs.
    pub fn lateness_us(&self) -> u64 {
        self.lateness_us.get()
    }

    /// Record one request's corrected latency (`measured_us` + lateness) on
    /// the row `(method, name)` of the shard's corrected table.
    pub fn record_corrected(&self, method: Method, name: &str, measured_us: u64, bytes: u64) {
        let mut table = self.shard.corrected.borrow_mut();
        let id = table.entry(method, name);
        table.record(id, measured_us.saturating_add(self.lateness_us()), bytes);
    }

    pub(crate) fn set_gone(&self) {
        self.gone.set(true);
        self.waker.borrow_mut().take();
    }

    /// Wait for the next iteration: true when one began, false when the
    /// user must stop (a stop, or the open run ended).
    pub fn next<'a>(self: &'a Rc<Self>, stop: &'a StopSignal) -> NextIteration<'a> {
        NextIteration { slot: self, stop }
    }

    fn begin(&self, it: Iteration) {
        let late = Instant::now().saturating_duration_since(it.intended);
        self.lateness_us
            .set(late.as_micros().min(u128::from(u64::MAX)) as u64);
        self.url.set(it.url);
    }
}

pub struct NextIteration<'a> {
    slot: &'a Rc<OpenSlot>,
    stop: &'a StopSignal,
}

impl Future for NextIteration<'_> {
    type Output = bool;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let slot = self.slot;
        if let Some(it) = slot.pending.take() {
            slot.begin(it);
            return Poll::Ready(true);
        }
        let shard = &slot.shard;
        if self.stop.stopping() || !shard.running.get() {
            return Poll::Ready(false);
        }
        if let Some(it) = shard.queue.borrow_mut().pop_front() {
            shard.count(|c| {
                c.started += 1;
                c.late += 1;
            });
            slot.begin(it);
            return Poll::Ready(true);
        }
        if !slot.idle.get() {
            slot.idle.set(true);
            shard.idle.borrow_mut().push_back(slot.clone());
        }
        let mut w = slot.waker.borrow_mut();
        if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *w = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// What the control thread tells a shard when an open run starts.
#[derive(Clone, Debug)]
pub(crate) struct OpenStart {
    /// This shard's iterations per second.
    pub rate: f64,
    /// Users this shard may create, per class (the dispatcher's share).
    pub classes: Vec<u32>,
    /// When this shard's first iteration is due.
    pub first_due: Instant,
    /// Raw mode: the URL of the first iteration, and the step to the next
    /// (the number of shards: URLs are round robin over all iterations).
    pub first_url: u32,
    pub url_step: u32,
}

/// One shard's open-model state (shared by its scheduler and its users).
pub(crate) struct OpenShard {
    corrected: Rc<RefCell<ShardStats>>,
    idle: RefCell<VecDeque<Rc<OpenSlot>>>,
    queue: RefCell<VecDeque<Iteration>>,
    queue_cap: Cell<usize>,
    counts: Cell<IterationCounts>,
    /// Raw mode: per URL, its row and its dropped iterations since the
    /// last report.
    rows: Vec<(Method, Arc<str>)>,
    dropped: RefCell<Vec<u64>>,
    /// Iterations per second on this shard (0: paused).
    rate: Cell<f64>,
    running: Cell<bool>,
    /// An open run was started on this shard (it reports open deltas).
    used: Cell<bool>,
    generation: Cell<u64>,
    pool: Cell<usize>,
    class_caps: RefCell<Vec<u32>>,
    class_made: RefCell<Vec<u64>>,
    made: Cell<u64>,
}

impl OpenShard {
    /// `rows`: raw mode's URLs as rows (method, name), empty for scripts.
    pub fn new(rows: Vec<(Method, Arc<str>)>) -> Rc<OpenShard> {
        let mut corrected = ShardStats::new();
        for (m, n) in &rows {
            corrected.entry(*m, n);
        }
        let dropped = vec![0; rows.len()];
        Rc::new(OpenShard {
            corrected: Rc::new(RefCell::new(corrected)),
            idle: RefCell::new(VecDeque::new()),
            queue: RefCell::new(VecDeque::new()),
            queue_cap: Cell::new(1),
            counts: Cell::new(IterationCounts::default()),
            rows,
            dropped: RefCell::new(dropped),
            rate: Cell::new(0.0),
            running: Cell::new(false),
            used: Cell::new(false),
            generation: Cell::new(0),
            pool: Cell::new(0),
            class_caps: RefCell::new(Vec::new()),
            class_made: RefCell::new(Vec::new()),
            made: Cell::new(0),
        })
    }

    pub fn used(&self) -> bool {
        self.used.get()
    }

    fn count(&self, f: impl FnOnce(&mut IterationCounts)) {
        let mut c = self.counts.get();
        f(&mut c);
        self.counts.set(c);
    }

    /// Start an open run on this shard: its scheduler runs until `stop` or
    /// the next start.
    pub fn start(self: &Rc<Self>, spec: OpenStart, users: Rc<RefCell<Population>>) {
        self.stop();
        let pool: u32 = spec.classes.iter().fold(0u32, |s, n| s.saturating_add(*n));
        self.pool.set(pool as usize);
        self.class_made.replace(vec![0; spec.classes.len()]);
        self.class_caps.replace(spec.classes.clone());
        self.made.set(0);
        self.used.set(true);
        self.running.set(true);
        self.set_rate(spec.rate);
        {
            let mut q = self.queue.borrow_mut();
            let want = self.queue_cap.get().min(QUEUE_RESERVE);
            let len = q.len();
            q.reserve(want.saturating_sub(len));
        }
        let generation = self.generation.get();
        monoio::spawn(schedule(self.clone(), users, generation, spec));
    }

    /// A new rate for this shard; the queue's cap follows (one second's
    /// worth, at least 1).
    pub fn set_rate(&self, rate: f64) {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            0.0
        };
        self.rate.set(rate);
        self.queue_cap.set((rate.ceil() as usize).max(1));
    }

    /// End the open run: no new iterations; queued ones are discarded (not
    /// counted as dropped: the run ended, nothing was refused); idle users
    /// are woken to see their stop.
    pub fn stop(&self) {
        self.running.set(false);
        self.generation.set(self.generation.get().wrapping_add(1));
        self.queue.borrow_mut().clear();
        let idle: Vec<Rc<OpenSlot>> = self.idle.borrow_mut().drain(..).collect();
        for slot in idle {
            slot.idle.set(false);
            if let Some(w) = slot.waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// A closed-model run starts: this shard reports no open deltas.
    pub fn forget(&self) {
        self.stop();
        self.used.set(false);
    }

    /// Locust's reset: counters and corrected latencies start over.
    pub fn reset(&self) {
        self.counts.set(IterationCounts::default());
        self.dropped.borrow_mut().iter_mut().for_each(|d| *d = 0);
        let mut table = self.corrected.borrow_mut();
        let old = table.take_delta();
        table.recycle(old);
    }

    pub fn recycle(&self, delta: StatsDelta) {
        self.corrected.borrow_mut().recycle(delta);
    }

    /// What this shard counted since its last report.
    pub fn take_delta(&self) -> OpenDelta {
        let iterations = self.counts.replace(IterationCounts::default());
        let mut dropped_by_name = Vec::new();
        for (n, (method, name)) in self.dropped.borrow_mut().iter_mut().zip(&self.rows) {
            if *n > 0 {
                dropped_by_name.push((*method, name.clone(), *n));
                *n = 0;
            }
        }
        let corrected = self.corrected.borrow_mut().take_delta();
        OpenDelta {
            iterations,
            dropped_by_name,
            corrected,
        }
    }

    /// Hand one due iteration out: idle user, new user, queue, or drop.
    fn dispatch(self: &Rc<Self>, it: Iteration, users: &RefCell<Population>) {
        self.count(|c| c.intended += 1);
        loop {
            let slot = self.idle.borrow_mut().pop_front();
            let Some(slot) = slot else { break };
            slot.idle.set(false);
            if slot.gone.get() {
                continue;
            }
            slot.pending.set(Some(it));
            if let Some(w) = slot.waker.borrow_mut().take() {
                w.wake();
            }
            self.count(|c| c.started += 1);
            return;
        }
        let live = users.borrow().live();
        if live < self.pool.get() {
            let class = self.next_class();
            let slot = OpenSlot::new(self.clone(), it);
            users.borrow_mut().spawn_open(class, slot);
            self.count(|c| c.started += 1);
            return;
        }
        let mut queue = self.queue.borrow_mut();
        if queue.len() < self.queue_cap.get() {
            queue.push_back(it);
            return;
        }
        drop(queue);
        self.count(|c| c.dropped += 1);
        if let Some(d) = self.dropped.borrow_mut().get_mut(it.url as usize) {
            *d += 1;
        }
    }

    /// The class of the next user created: the one furthest below its
    /// weighted share of the users made so far (smooth, and exact for a
    /// full pool).
    fn next_class(&self) -> usize {
        let caps = self.class_caps.borrow();
        let mut made = self.class_made.borrow_mut();
        let pool = self.pool.get().max(1) as f64;
        let total = (self.made.get() + 1) as f64;
        let mut best = 0;
        let mut best_deficit = f64::NEG_INFINITY;
        for (c, (&cap, &m)) in caps.iter().zip(made.iter()).enumerate() {
            if cap == 0 {
                continue;
            }
            let deficit = f64::from(cap) / pool * total - m as f64;
            if deficit > best_deficit {
                best_deficit = deficit;
                best = c;
            }
        }
        if let Some(m) = made.get_mut(best) {
            *m += 1;
        }
        self.made.set(self.made.get() + 1);
        best
    }
}

/// `base + k * interval`, as an instant.
fn due(base: Instant, k: u64, interval: f64) -> Instant {
    base + Duration::from_secs_f64(k as f64 * interval)
}

/// The shard's scheduler for one open run (ends when the run stops or a
/// new one starts: its `generation` is no longer the shard's).
async fn schedule(
    open: Rc<OpenShard>,
    users: Rc<RefCell<Population>>,
    generation: u64,
    spec: OpenStart,
) {
    let urls = open.rows.len().max(1) as u32;
    let mut url = spec.first_url % urls;
    let step = spec.url_step % urls;
    let mut base = spec.first_due;
    let mut k: u64 = 0;
    let mut interval = 0.0f64;
    let mut paused = true;
    let mut first = true;
    loop {
        if !open.running.get() || open.generation.get() != generation {
            return;
        }
        let rate = open.rate.get();
        if rate <= 0.0 {
            paused = true;
            monoio::time::sleep(RECHECK).await;
            continue;
        }
        let want = 1.0 / rate;
        if paused {
            // Resuming after a pause starts a new schedule from now; the
            // very first one starts at the given first due.
            if !first {
                base = Instant::now();
                k = 0;
            }
            first = false;
            paused = false;
            interval = want;
        } else if want != interval {
            // Continuous: the next due is the last one plus the new interval.
            if k > 0 {
                base = due(base, k - 1, interval);
                k = 1;
            }
            interval = want;
        }
        let now = Instant::now();
        let mut n = 0;
        loop {
            let intended = due(base, k, interval);
            if intended > now || n >= BURST {
                break;
            }
            open.dispatch(Iteration { intended, url }, &users);
            k += 1;
            url += step;
            if url >= urls {
                url -= urls;
            }
            n += 1;
        }
        if n >= BURST {
            yield_now().await;
            continue;
        }
        let wait = due(base, k, interval).saturating_duration_since(Instant::now());
        if wait.is_zero() {
            yield_now().await;
        } else {
            monoio::time::sleep(wait.min(RECHECK)).await;
        }
    }
}

/// Raw mode's open loop: each iteration is one request of its URL, on
/// the user's keep-alive connection; latency recorded twice.
pub(crate) async fn run_open_raw_user(
    plan: Rc<RawPlan>,
    stats: Rc<RefCell<ShardStats>>,
    slot: Rc<OpenSlot>,
    stop: Rc<StopSignal>,
) {
    let mut conn = Connection::to(plan.endpoint.clone(), plan.client.clone());
    let mut backoff = ConnectBackoff::default();
    // The corrected table's raw rows were made first, in URL order.
    let corrected = slot.shard.corrected.clone();
    while slot.next(&stop).await {
        let url = slot.url.get() as usize;
        let Some(req) = plan.requests.get(url) else {
            continue;
        };
        let started = Instant::now();
        let connects_before = (conn.is_connected(), conn.connects());
        let result = conn
            .send_since(started, &req.bytes, plan.options.method, &mut DiscardBody)
            .await;
        let micros = started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        let bytes = result.as_ref().map_or(0, |r| r.body_len);
        let failed = record(&mut stats.borrow_mut(), req.entry, micros, result);
        corrected.borrow_mut().record(
            url as EntryId,
            micros.saturating_add(slot.lateness_us()),
            bytes,
        );
        let connect_failed = !connects_before.0 && conn.connects() == connects_before.1;
        backoff.pace(&stop, connect_failed, failed).await;
    }
}
