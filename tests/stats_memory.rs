//! Memory of a shard's stats per active name, measured with a counting
//! allocator (its own test binary, one test, so nothing else allocates
//! meanwhile). Prints the numbers; run with `--nocapture` to see them:
//! `cargo test --test stats_memory -- --nocapture`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::SystemTime;

use locusta::http::Method;
use locusta::stats::{RunStats, ShardStats};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const NAMES: usize = 1_000;
const PER_NAME: u64 = 200;

/// A typical name's latencies: 90% within ±50% of its median (2–8 ms,
/// different per name), 10% a tail up to 10× the median.
fn latency_us(name: usize, i: u64) -> u64 {
    let median = 2_000 + (name as u64 * 6_007) % 6_000;
    let x = (i.wrapping_mul(2_654_435_761) ^ name as u64).wrapping_mul(0x9e37_79b9) >> 7;
    if i % 10 == 9 {
        median + x % (9 * median)
    } else {
        median / 2 + x % median
    }
}

#[test]
fn a_shards_stats_cost_at_most_16_kib_per_active_name() {
    let before = live();
    let mut shard = ShardStats::new();
    let ids: Vec<_> = (0..NAMES)
        .map(|n| shard.entry(Method::Get, &format!("/api/items/{n}")))
        .collect();
    let mut run = RunStats::new(false);
    for round in 0..4 {
        for (n, &id) in ids.iter().enumerate() {
            for i in 0..PER_NAME {
                shard.record(id, latency_us(n, i + round * PER_NAME), 512);
            }
        }
        // What the control thread does with each delta.
        let mut delta = shard.take_delta();
        run.merge(&mut delta);
        shard.recycle(delta);
        run.tick(SystemTime::now(), 1);
    }
    let with_run = live() - before;
    drop(run);
    // What the shard holds between deltas: its rows and the recycled
    // histograms, i.e. the whole delta it sends every second.
    let shard_only = live() - before;
    let per_name = shard_only / NAMES as isize;
    println!(
        "shard stats, {NAMES} active names: {} KiB ({per_name} bytes per name); \
         with the run's table: {} KiB",
        shard_only / 1024,
        with_run / 1024,
    );
    assert!(
        per_name <= 16 * 1024,
        "{per_name} bytes per active name per shard"
    );
    drop(shard);
}
