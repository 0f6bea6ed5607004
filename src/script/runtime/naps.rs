//! Think-time waits of one shard's users on one timer: a heap of
//! (deadline, slot) and one driver task that sleeps until the earliest
//! deadline and wakes the users whose time has come. A waiting user's
//! future holds a [`Nap`] (a slot index and a deadline), not a monoio
//! `Sleep` of its own (~640 bytes, cache-line aligned, kept for the whole
//! wait): with 10,000 users in think time that is ~6 MB of RSS less (see
//! benches/README.md, RSS per idle user).
//!
//! It does not own graceful stops (`stop::StopWatch` cuts a wait short by
//! dropping its `Nap`) nor short sleeps inside tasks (`locusta.sleep`).
//! Precision is the driver's monoio timer, as for a `Sleep` of one's own.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A deadline this far ahead stands for "never" (an overflowing one).
const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);

/// One waiting user's place: its waker until its deadline passes.
struct Slot {
    /// Bumped whenever the slot is freed, so a stale heap entry (a nap
    /// dropped early) is recognised and skipped.
    generation: u32,
    waker: Option<Waker>,
    due: bool,
}

/// The shard's naps (one per shard, like `StopWatch`).
#[derive(Default)]
pub(crate) struct Naps {
    heap: RefCell<BinaryHeap<Reverse<(Instant, usize, u32)>>>,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<usize>>,
    /// Naps registered and not yet dropped.
    live: Cell<usize>,
    /// A driver task exists.
    driving: Cell<bool>,
    /// When the driver's current sleep ends (`None`: it is not sleeping).
    driver_until: Cell<Option<Instant>>,
    driver_waker: RefCell<Option<Waker>>,
    /// An earlier deadline than the driver's sleep arrived: it must look again.
    poked: Cell<bool>,
}

impl Naps {
    /// A wait of `d` from now.
    pub(crate) fn nap(self: &Rc<Self>, d: Duration) -> Nap {
        let now = Instant::now();
        let deadline = now.checked_add(d.min(FAR)).unwrap_or(now);
        Nap {
            naps: self.clone(),
            deadline,
            slot: None,
        }
    }

    fn register(self: &Rc<Self>, deadline: Instant, waker: &Waker) -> (usize, u32) {
        let mut slots = self.slots.borrow_mut();
        let slot = match self.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                slots.push(Slot {
                    generation: 0,
                    waker: None,
                    due: false,
                });
                slots.len() - 1
            }
        };
        let s = &mut slots[slot];
        s.waker = Some(waker.clone());
        s.due = false;
        let generation = s.generation;
        drop(slots);
        self.live.set(self.live.get() + 1);
        let mut heap = self.heap.borrow_mut();
        // Entries of naps dropped early stay until their deadline; rebuild
        // when they outnumber the live ones, so the heap stays bounded.
        if heap.len() > 2 * self.live.get() + 64 {
            let slots = self.slots.borrow();
            heap.retain(|Reverse((_, i, g))| {
                slots[*i].generation == *g && slots[*i].waker.is_some()
            });
        }
        heap.push(Reverse((deadline, slot, generation)));
        drop(heap);
        if !self.driving.get() {
            self.driving.set(true);
            let me = self.clone();
            monoio::spawn(async move { me.drive().await });
        } else if self
            .driver_until
            .get()
            .is_some_and(|until| deadline < until)
        {
            self.poked.set(true);
            if let Some(w) = self.driver_waker.borrow_mut().take() {
                w.wake();
            }
        }
        (slot, generation)
    }

    fn release(&self, slot: usize) {
        let mut slots = self.slots.borrow_mut();
        if let Some(s) = slots.get_mut(slot) {
            s.generation = s.generation.wrapping_add(1);
            s.waker = None;
            s.due = false;
            self.free.borrow_mut().push(slot);
            self.live.set(self.live.get() - 1);
        }
    }

    /// Wake the naps whose deadline passed; the earliest one left, if any.
    fn wake_due(&self, wake: &mut Vec<Waker>) -> Option<Instant> {
        let now = Instant::now();
        let mut heap = self.heap.borrow_mut();
        let mut slots = self.slots.borrow_mut();
        while let Some(&Reverse((deadline, i, g))) = heap.peek() {
            let s = &mut slots[i];
            if s.generation != g || s.due {
                heap.pop();
                continue;
            }
            if deadline > now {
                return Some(deadline);
            }
            heap.pop();
            s.due = true;
            wake.extend(s.waker.take());
        }
        None
    }

    /// The driver: sleeps until the earliest deadline (or until poked by an
    /// earlier one), wakes what is due, ends when no nap is left.
    async fn drive(self: Rc<Self>) {
        let mut wake = Vec::new();
        loop {
            let next = self.wake_due(&mut wake);
            for w in wake.drain(..) {
                w.wake();
            }
            let Some(until) = next else {
                self.driving.set(false);
                self.driver_until.set(None);
                return;
            };
            self.driver_until.set(Some(until));
            self.poked.set(false);
            let sleep = monoio::time::sleep(until.saturating_duration_since(Instant::now()));
            let poke = Poked(&self);
            monoio::select! {
                _ = sleep => {},
                _ = poke => {},
            }
            self.driver_until.set(None);
        }
    }
}

/// Resolves when the driver is poked (an earlier deadline arrived).
struct Poked<'a>(&'a Naps);

impl Future for Poked<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.poked.get() {
            return Poll::Ready(());
        }
        *self.0.driver_waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// One user's wait: ready once its deadline has passed.
pub(crate) struct Nap {
    naps: Rc<Naps>,
    deadline: Instant,
    slot: Option<(usize, u32)>,
}

impl Future for Nap {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        match this.slot {
            Some((i, _)) => {
                let mut slots = this.naps.slots.borrow_mut();
                let s = &mut slots[i];
                if s.due {
                    return Poll::Ready(());
                }
                match &mut s.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    w => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            None => {
                if Instant::now() >= this.deadline {
                    return Poll::Ready(());
                }
                this.slot = Some(this.naps.register(this.deadline, cx.waker()));
                Poll::Pending
            }
        }
    }
}

impl Drop for Nap {
    fn drop(&mut self) {
        if let Some((i, _)) = self.slot {
            self.naps.release(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: impl Future<Output = ()>) {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(f);
    }

    /// A later, shorter nap pokes the driver and ends first; none ends
    /// before its deadline; the driver ends with the last nap.
    #[test]
    fn naps_end_in_deadline_order_and_not_early() {
        run(async {
            let naps = Rc::new(Naps::default());
            let order = Rc::new(RefCell::new(Vec::new()));
            let mut tasks = Vec::new();
            for (tag, ms) in [(0u32, 300u64), (1, 30), (2, 120)] {
                let (naps, order) = (naps.clone(), order.clone());
                tasks.push(monoio::spawn(async move {
                    let t0 = Instant::now();
                    naps.nap(Duration::from_millis(ms)).await;
                    assert!(
                        t0.elapsed() >= Duration::from_millis(ms),
                        "nap {tag} ended early"
                    );
                    order.borrow_mut().push(tag);
                }));
                monoio::time::sleep(Duration::from_millis(5)).await;
            }
            for t in tasks {
                t.await;
            }
            assert_eq!(*order.borrow(), vec![1, 2, 0]);
            assert_eq!(naps.live.get(), 0);
            assert!(!naps.driving.get(), "the driver ends with the last nap");
        });
    }

    /// Naps dropped before their deadline free their slots, and their
    /// stale heap entries do not pile up.
    #[test]
    fn dropped_naps_are_forgotten() {
        run(async {
            let naps = Rc::new(Naps::default());
            for _ in 0..1000 {
                let nap = naps.nap(Duration::from_secs(600));
                monoio::select! {
                    _ = nap => panic!("a 600 s nap ended"),
                    _ = monoio::time::sleep(Duration::from_millis(0)) => {},
                }
            }
            assert_eq!(naps.live.get(), 0);
            assert!(naps.slots.borrow().len() <= 1, "slots are reused");
            assert!(naps.heap.borrow().len() <= 67, "stale entries are dropped");
            naps.nap(Duration::from_millis(10)).await;
        });
    }
}
