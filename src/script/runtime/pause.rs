//! `N.yield`'s pause for users whose tasks never suspend: a heartbeat
//! timer tells whether the shard's timers still run, and the pause is a
//! yield or, when they are starved, a 1 ms sleep.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Pauses for users whose tasks may never suspend (zero wait time, no
/// I/O). Requeueing such a user is not enough: monoio only runs its timers
/// when its run queue drains, so a user that keeps itself runnable starves
/// every timer of the shard (the control loop's, the other users' waits).
/// A heartbeat timer notes when timers last ran; when that is too long ago
/// the pause is a real 1 ms sleep, which lets the run queue drain.
pub(super) struct Heartbeat {
    last: Cell<Instant>,
    running: Cell<bool>,
}

/// How often the heartbeat runs, and how late it may be before pauses sleep.
const HEARTBEAT: Duration = Duration::from_millis(10);
const HEARTBEAT_LATE: Duration = Duration::from_millis(25);

impl Heartbeat {
    pub(super) fn new() -> Self {
        Heartbeat {
            last: Cell::new(Instant::now()),
            running: Cell::new(false),
        }
    }

    pub(super) async fn pause(self: &Rc<Self>) {
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
            crate::engine::yield_now().await;
        }
    }
}
