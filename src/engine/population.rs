//! The users living on one shard: how many of each class, starting and
//! retiring them, and what each one runs (a raw-mode loop or a Lua user).
//!
//! The shard loop tells a [`Population`] how many users of each class to
//! hold; the population spawns or retires tasks to match. Retiring is
//! graceful (finish the current request or task, then on_stop); after the
//! stop timeout a raw user is dropped, and a Lua user is killed as Locust
//! kills a greenlet: the request or sleep in progress is interrupted, its
//! on_stop runs (and is counted), and only a user still running
//! [`ON_STOP_LIMIT`] later is dropped. What a user does is in `user` (raw)
//! and `script` (Lua).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::follow::run_following_user;
use super::open::{run_open_raw_user, OpenSlot};
use super::pipelined::run_pipelined_user;
use super::user::{run_raw_user, RawPlan, StopSignal};
use crate::script::runtime::ShardScript;
use crate::stats::ShardStats;

/// What the users of a shard run.
pub(crate) enum ShardWorkload {
    Raw(Rc<RawPlan>),
    Script(Rc<ShardScript>),
}

impl ShardWorkload {
    fn user(
        &self,
        class: usize,
        stop: Rc<StopSignal>,
        stats: &Rc<RefCell<ShardStats>>,
        first: usize,
    ) -> Pin<Box<dyn Future<Output = ()>>> {
        match self {
            // Each loop pays only for what its flags ask.
            ShardWorkload::Raw(plan) if plan.options.follow_redirects => {
                Box::pin(run_following_user(plan.clone(), stats.clone(), stop, first))
            }
            ShardWorkload::Raw(plan) if plan.options.pipeline > 1 => {
                Box::pin(run_pipelined_user(plan.clone(), stats.clone(), stop, first))
            }
            ShardWorkload::Raw(plan) => {
                Box::pin(run_raw_user(plan.clone(), stats.clone(), stop, first))
            }
            ShardWorkload::Script(script) => script.user(class, stop),
        }
    }

    /// An open-model user: runs iterations handed to `slot`.
    fn open_user(
        &self,
        class: usize,
        stop: Rc<StopSignal>,
        stats: &Rc<RefCell<ShardStats>>,
        slot: Rc<OpenSlot>,
    ) -> Pin<Box<dyn Future<Output = ()>>> {
        stop.set_open(slot.clone());
        match self {
            ShardWorkload::Raw(plan) => {
                Box::pin(run_open_raw_user(plan.clone(), stats.clone(), slot, stop))
            }
            // The prelude sees the slot through the user's stop handle.
            ShardWorkload::Script(script) => script.user(class, stop),
        }
    }
}

/// How long a killed Lua user's on_stop may run before the user is dropped
/// (its requests also end at the request timeout, its busy loops at
/// --max-blocking-time; this bounds everything else, e.g. a long sleep).
pub const ON_STOP_LIMIT: Duration = Duration::from_secs(10);

/// A user task that is on its way out, and when it gets killed (or dropped).
struct Retiring {
    stop: Rc<StopSignal>,
    deadline: Instant,
}

pub(crate) struct Population {
    pub workload: ShardWorkload,
    stats: Rc<RefCell<ShardStats>>,
    /// Running users per class, oldest first.
    active: Vec<Vec<Rc<StopSignal>>>,
    /// Users stopping gracefully, by deadline (one grace per shard, so
    /// pushed in deadline order: popped from the front, O(1) per user).
    retiring: VecDeque<Retiring>,
    /// Killed Lua users running their on_stop, by deadline.
    killed: VecDeque<Retiring>,
    /// User tasks still alive, active or retiring.
    live: Rc<Cell<usize>>,
    spawned: usize,
    shard: usize,
    shards: usize,
    /// Class names, for `-L DEBUG` lines.
    names: Vec<String>,
}

impl Population {
    pub fn new(
        workload: ShardWorkload,
        stats: Rc<RefCell<ShardStats>>,
        names: Vec<String>,
        shard: usize,
        shards: usize,
    ) -> Self {
        Population {
            workload,
            stats,
            active: vec![Vec::new(); names.len()],
            retiring: VecDeque::new(),
            killed: VecDeque::new(),
            live: Rc::new(Cell::new(0)),
            spawned: 0,
            shard,
            shards,
            names,
        }
    }

    /// Hold `counts[class]` users of each class.
    pub fn set_counts(&mut self, counts: &[u32], grace: Duration) {
        for (class, &want) in counts.iter().enumerate().take(self.active.len()) {
            let want = want as usize;
            while self.active[class].len() < want {
                self.spawn(class);
            }
            while self.active[class].len() > want {
                let stop = self.active[class].pop().expect("len checked");
                self.retire(stop, grace);
            }
        }
    }

    pub fn stop_all(&mut self, grace: Duration) {
        let zeros = vec![0; self.active.len()];
        self.set_counts(&zeros, grace);
    }

    /// Kill retiring users whose stop timeout has passed (and drop killed
    /// users past [`ON_STOP_LIMIT`]); returns how many were killed whose
    /// task was still running.
    pub fn force_overdue(&mut self, now: Instant) -> usize {
        let mut killed = 0;
        while self.retiring.front().is_some_and(|r| now >= r.deadline) {
            if let Some(r) = self.retiring.pop_front() {
                if !r.stop.done() {
                    killed += 1;
                    self.kill(r.stop, now);
                }
            }
        }
        while self.killed.front().is_some_and(|r| now >= r.deadline) {
            if let Some(r) = self.killed.pop_front() {
                r.stop.force();
            }
        }
        killed
    }

    /// User tasks still running (active or finishing).
    pub fn live(&self) -> usize {
        self.live.get()
    }

    /// Start an open-model user of `class` holding its first iteration.
    pub fn spawn_open(&mut self, class: usize, slot: Rc<OpenSlot>) {
        let stop = Rc::new(StopSignal::default());
        let user = self
            .workload
            .open_user(class, stop.clone(), &self.stats, slot);
        // Open users that ended by themselves (StopUser, a failed on_start)
        // are replaced by new ones: prune the ended now and then, so a run
        // of short-lived users keeps a bounded list.
        let live = self.live.get();
        if let Some(list) = self.active.get_mut(class) {
            if list.len() >= 2 * live.max(16) {
                list.retain(|s| !s.done());
            }
        }
        self.launch(class, stop, user);
    }

    fn spawn(&mut self, class: usize) {
        let stop = Rc::new(StopSignal::default());
        // Global user number, so raw users on all shards cover the URLs evenly.
        let first = self.spawned * self.shards + self.shard;
        let user = self.workload.user(class, stop.clone(), &self.stats, first);
        self.launch(class, stop, user);
    }

    fn launch(
        &mut self,
        class: usize,
        stop: Rc<StopSignal>,
        user: Pin<Box<dyn Future<Output = ()>>>,
    ) {
        let first = self.spawned * self.shards + self.shard;
        self.spawned += 1;
        let live = LiveGuard::new(self.live.clone());
        let forced = stop.forced();
        // Per user, never per request: these lines cost nothing unless
        // -L DEBUG is on (checked once here, not in the user's loop).
        let debug = log::log_enabled!(log::Level::Debug).then(|| {
            let class = self.names.get(class).map_or("?", |n| n.as_str());
            format!("shard {}: user {first} ({class})", self.shard)
        });
        if let Some(who) = &debug {
            log::debug!("{who} started");
        }
        let done = stop.clone();
        monoio::spawn(async move {
            let _live = live;
            let how = monoio::select! {
                _ = user => "ended",
                _ = forced => "cancelled",
            };
            if let Some(who) = debug {
                log::debug!("{who} stopped ({how})");
            }
            done.set_done();
        });
        self.active[class].push(stop);
    }

    fn retire(&mut self, stop: Rc<StopSignal>, grace: Duration) {
        stop.stop_gracefully();
        let now = Instant::now();
        if grace.is_zero() {
            self.kill(stop, now);
        } else {
            self.retiring.push_back(Retiring {
                stop,
                deadline: now + grace,
            });
        }
    }

    /// Raw users have no on_stop: dropped at once. Lua users get theirs.
    fn kill(&mut self, stop: Rc<StopSignal>, now: Instant) {
        match self.workload {
            ShardWorkload::Raw(_) => stop.force(),
            ShardWorkload::Script(_) => {
                stop.kill();
                self.killed.push_back(Retiring {
                    stop,
                    deadline: now + ON_STOP_LIMIT,
                });
            }
        }
    }
}

/// Counts a user task as live until it ends or is dropped.
struct LiveGuard(Rc<Cell<usize>>);

impl LiveGuard {
    fn new(live: Rc<Cell<usize>>) -> Self {
        live.set(live.get() + 1);
        LiveGuard(live)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}
