//! The users living on one shard: how many of each class, starting and
//! retiring them, and what each one runs (a raw-mode loop or a Lua user).
//!
//! The shard loop tells a [`Population`] how many users of each class to
//! hold; the population spawns or retires tasks to match. Retiring is
//! graceful (finish the current request or task) and becomes forced after
//! the stop timeout. What a user does is in `user` (raw) and `script` (Lua).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

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
            ShardWorkload::Raw(plan) => {
                Box::pin(run_raw_user(plan.clone(), stats.clone(), stop, first))
            }
            ShardWorkload::Script(script) => script.user(class, stop),
        }
    }
}

/// A user task that is on its way out, and when it gets cancelled.
struct Retiring {
    stop: Rc<StopSignal>,
    deadline: Instant,
}

pub(crate) struct Population {
    pub workload: ShardWorkload,
    stats: Rc<RefCell<ShardStats>>,
    /// Running users per class, oldest first.
    active: Vec<Vec<Rc<StopSignal>>>,
    retiring: Vec<Retiring>,
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
            retiring: Vec::new(),
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

    /// Cancel retiring users whose stop timeout has passed.
    pub fn force_overdue(&mut self, now: Instant) {
        self.retiring.retain(|r| {
            if now >= r.deadline {
                r.stop.force();
                false
            } else {
                true
            }
        });
    }

    /// User tasks still running (active or finishing).
    pub fn live(&self) -> usize {
        self.live.get()
    }

    fn spawn(&mut self, class: usize) {
        let stop = Rc::new(StopSignal::default());
        // Global user number, so raw users on all shards cover the URLs evenly.
        let first = self.spawned * self.shards + self.shard;
        self.spawned += 1;
        let live = LiveGuard::new(self.live.clone());
        let user = self.workload.user(class, stop.clone(), &self.stats, first);
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
        monoio::spawn(async move {
            let _live = live;
            let how = monoio::select! {
                _ = user => "ended",
                _ = forced => "cancelled",
            };
            if let Some(who) = debug {
                log::debug!("{who} stopped ({how})");
            }
        });
        self.active[class].push(stop);
    }

    fn retire(&mut self, stop: Rc<StopSignal>, grace: Duration) {
        stop.stop_gracefully();
        if grace.is_zero() {
            stop.force();
        } else {
            self.retiring.push(Retiring {
                stop,
                deadline: Instant::now() + grace,
            });
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
