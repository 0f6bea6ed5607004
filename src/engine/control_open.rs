//! The control thread's open-model side: starting an open run (the pool
//! split over shards, each shard's share of the rate and its first due
//! time), rate changes, and refusing closed-model commands meanwhile. The
//! control loop itself (merging the shards' open deltas, ticks, resets,
//! stops) is in `control`; the schedule is in `open`.

use std::time::{Duration, Instant};

use super::control::{Control, Ramp};
use super::dispatch::{per_shard, ClassSpec};
use super::open::OpenStart;
use super::shard::ShardCmd;
use super::{OpenModel, RunState, MAX_ARRIVAL_RATE};
use crate::stats::OpenModelStats;

/// How an open run's total is split: each shard's share of the pool (it
/// runs that share of the rate).
pub(super) struct OpenSplit {
    pub(super) shares: Vec<f64>,
}

impl Control {
    /// A closed-model command while an open run is running: refused, with
    /// a log line (true); false when there is no open run going.
    pub(super) fn refuse_while_open(&self, what: &str) -> bool {
        let state = self.status.lock().unwrap().state;
        let busy =
            self.open_running.get() && matches!(state, RunState::Spawning | RunState::Running);
        if busy {
            log::warn!("an open-model run is going: {what} does not apply (stop it first, or change its arrival rate)");
        }
        busy
    }

    /// A closed-model run starts: no open-model table any more.
    pub(super) fn close_open(&self) {
        if self.open_running.get() {
            self.open_running.set(false);
            *self.open.lock().unwrap() = None;
        }
    }

    pub(super) fn start_open(
        &self,
        model: OpenModel,
        epoch: &mut u64,
        ramp: &mut Ramp,
        split: &mut OpenSplit,
    ) {
        if let Err(why) = check_open(&model) {
            log::error!("cannot start an open-model run: {why}");
            return;
        }
        let state = self.status.lock().unwrap().state;
        if matches!(state, RunState::Spawning | RunState::Running) {
            if self.open_running.get() {
                // Already open: a new start is a new rate.
                self.set_open_rate(model.rate, split);
            } else {
                log::warn!("a user ramp is running: stop it before starting an open-model run");
            }
            return;
        }
        self.begin_test(epoch);
        let shards = self.shards.len();
        // Not the dispatcher: its sequence holds one entry per user, and a
        // pool is only a bound (users are created lazily), maybe a huge one.
        let counts = pool_counts(&self.classes, model.max_users);
        let rows = per_shard(&counts, shards);
        let pool = f64::from(model.max_users);
        split.shares = rows
            .iter()
            .map(|row| f64::from(row.iter().fold(0u32, |s, n| s.saturating_add(*n))) / pool)
            .collect();
        ramp.target = 0;
        ramp.current = 0.0;
        ramp.sent.iter_mut().for_each(|s| s.clear());
        self.open_running.set(true);
        self.live_users.borrow_mut().iter_mut().for_each(|n| *n = 0);
        *self.open.lock().unwrap() = Some(OpenModelStats::new(model.rate, model.max_users));
        {
            let mut status = self.status.lock().unwrap();
            status.state = RunState::Running;
            status.users = 0;
            status.target_users = model.max_users;
            status.spawn_rate = model.rate;
        }
        log::info!(
            "Open model: {} iterations per second, run by up to {} users created as needed",
            model.rate,
            model.max_users
        );
        // Shards read commands every few ms: start the schedule a little
        // later so no shard begins behind it. Shard i's first iteration is
        // the run's i-th, so the shards' schedules interleave.
        let t0 = Instant::now() + START_DELAY;
        for (i, ((tx, row), share)) in self
            .shards
            .iter()
            .zip(rows)
            .zip(split.shares.iter())
            .enumerate()
        {
            let start = OpenStart {
                rate: model.rate * share,
                classes: row,
                first_due: t0 + Duration::from_secs_f64(i as f64 / model.rate),
                first_url: i as u32,
                url_step: shards as u32,
            };
            let _ = tx.send(ShardCmd::Open(start));
        }
    }

    /// A running open model's new total rate, split as its pool is.
    pub(super) fn set_open_rate(&self, rate: f64, split: &OpenSplit) {
        if !(rate.is_finite() && (0.0..=MAX_ARRIVAL_RATE).contains(&rate)) {
            log::error!(
                "arrival rate {rate} refused: give iterations per second, 0 to {MAX_ARRIVAL_RATE}"
            );
            return;
        }
        let state = self.status.lock().unwrap().state;
        if !self.open_running.get() || !matches!(state, RunState::Spawning | RunState::Running) {
            log::debug!("no open-model run is going: arrival rate {rate} ignored");
            return;
        }
        if let Some(open) = self.open.lock().unwrap().as_mut() {
            open.set_rate(rate);
        }
        self.status.lock().unwrap().spawn_rate = rate;
        log::info!("Arrival rate now {rate} iterations per second");
        for (tx, share) in self.shards.iter().zip(&split.shares) {
            let _ = tx.send(ShardCmd::SetRate(rate * share));
        }
    }
}

/// How far ahead of its start command an open run's schedule begins.
const START_DELAY: Duration = Duration::from_millis(30);

/// Why an open model cannot run, if it cannot (the library API takes any
/// number; the CLI checks the same bounds).
pub(crate) fn check_open(model: &OpenModel) -> Result<(), String> {
    let rate = model.rate;
    if !(rate.is_finite() && rate > 0.0 && rate <= MAX_ARRIVAL_RATE) {
        return Err(format!(
            "arrival rate {rate}: give iterations per second, above 0 and at most {MAX_ARRIVAL_RATE}"
        ));
    }
    if model.max_users == 0 {
        return Err("a pool of 0 users runs nothing: give -u or --max-users of at least 1".into());
    }
    Ok(())
}

/// An open model's pool per class: `fixed_count` classes first, the rest
/// by weight (largest remainders get the leftover users), in O(classes).
pub(crate) fn pool_counts(classes: &[ClassSpec], pool: u32) -> Vec<u32> {
    let mut counts = vec![0u32; classes.len()];
    let mut left = pool;
    for (count, class) in counts.iter_mut().zip(classes) {
        if let Some(fixed) = class.fixed_count {
            *count = fixed.min(left);
            left -= *count;
        }
    }
    let weighted: Vec<usize> = (0..classes.len())
        .filter(|&i| classes[i].fixed_count.is_none() && classes[i].weight > 0)
        .collect();
    let total: u64 = weighted.iter().map(|&i| u64::from(classes[i].weight)).sum();
    if total == 0 {
        return counts;
    }
    let mut given = 0u32;
    let mut rests = Vec::with_capacity(weighted.len());
    for &i in &weighted {
        let share = u64::from(left) * u64::from(classes[i].weight);
        let n = (share / total) as u32;
        counts[i] = n;
        given += n;
        rests.push((share % total, i));
    }
    rests.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in rests.into_iter().take((left - given) as usize) {
        counts[i] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_is_shared_by_fixed_counts_then_weights_even_when_huge() {
        let spec = |name: &str, weight, fixed| ClassSpec {
            name: name.into(),
            weight,
            fixed_count: fixed,
        };
        let classes = [
            spec("a", 3, None),
            spec("b", 1, None),
            spec("f", 1, Some(2)),
        ];
        assert_eq!(pool_counts(&classes, 10), vec![6, 2, 2]);
        assert_eq!(pool_counts(&classes, 1), vec![0, 0, 1]);
        let huge = pool_counts(&classes, u32::MAX);
        assert_eq!(
            huge.iter().map(|n| u64::from(*n)).sum::<u64>(),
            u64::from(u32::MAX)
        );
    }
}
