//! Micro benchmarks of the stats hot path and the control thread's merge.
//!
//! `record` and `entry` run once per request on a shard, so they bound the
//! stats share of CPU per request; `merge` and `view` run about once per
//! second per shard on the control thread. `master_report`: what a
//! cluster master spends on one worker's 50-name report (decode, delta,
//! merge), the cost `benches/cluster.rs` measures end to end.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use locusta::http::Method;
use locusta::stats::{new_histogram, Latencies, PagedHistogram, RunStats, ShardStats, StatsDelta};

const NAMES: [&str; 10] = [
    "/",
    "/login",
    "/api/items",
    "/api/items/[id]",
    "/api/cart",
    "/api/cart/add",
    "/api/checkout",
    "/static/app.js",
    "/static/app.css",
    "/health",
];

/// Latencies spread over 100 µs – 100 ms, so records touch many buckets.
fn latency_us(i: u64) -> u64 {
    100 + (i.wrapping_mul(2_654_435_761) % 100_000)
}

/// A delta as a busy shard sends it after one second: 10 names, 10k
/// requests each.
fn one_second_delta() -> StatsDelta {
    let mut shard = ShardStats::new();
    let ids: Vec<_> = NAMES.iter().map(|n| shard.entry(Method::Get, n)).collect();
    for i in 0..100_000u64 {
        shard.record(ids[(i % 10) as usize], latency_us(i), 512);
    }
    shard.take_delta()
}

fn shard_record(c: &mut Criterion) {
    let mut shard = ShardStats::new();
    let id = shard.entry(Method::Get, "/api/items");
    let mut i = 0u64;
    c.bench_function("ShardStats::record (one entry)", |b| {
        b.iter(|| {
            i += 1;
            shard.record(black_box(id), latency_us(i), 512);
        })
    });
}

/// The paged histogram a shard records into, next to the dense one it
/// replaced (same values, same run, so machine load hits both alike).
fn histogram_record(c: &mut Criterion) {
    let mut paged = PagedHistogram::new();
    let mut i = 0u64;
    c.bench_function("PagedHistogram::record", |b| {
        b.iter(|| {
            i += 1;
            paged.record(black_box(latency_us(i)));
        })
    });
    let mut dense = new_histogram();
    c.bench_function(
        "Histogram<u64>::saturating_record (dense, reference)",
        |b| {
            b.iter(|| {
                i += 1;
                dense.saturating_record(black_box(latency_us(i)));
            })
        },
    );
    // Merging one name's second (10k requests over 100 µs – 100 ms).
    let mut paged = PagedHistogram::new();
    let mut dense = new_histogram();
    for i in 0..10_000 {
        paged.record(latency_us(i));
        dense.saturating_record(latency_us(i));
    }
    let mut into = new_histogram();
    c.bench_function("PagedHistogram::add_to (10k requests)", |b| {
        b.iter(|| paged.add_to(black_box(&mut into)))
    });
    c.bench_function("Histogram<u64>::add (10k requests, reference)", |b| {
        b.iter(|| dense.add_to(black_box(&mut into)))
    });
}

fn shard_entry(c: &mut Criterion) {
    let mut shard = ShardStats::new();
    for name in NAMES {
        shard.entry(Method::Get, name);
    }
    c.bench_function("ShardStats::entry (existing name)", |b| {
        b.iter(|| shard.entry(Method::Get, black_box("/api/items/[id]")))
    });
}

fn run_merge(c: &mut Criterion) {
    let proto = one_second_delta();
    let mut run = RunStats::new(false);
    c.bench_function("RunStats::merge (1 s delta, 10 entries)", |b| {
        b.iter_batched_ref(
            || proto.clone(),
            |delta| run.merge(delta),
            BatchSize::SmallInput,
        )
    });
    let mut windowed = RunStats::new(true);
    c.bench_function(
        "RunStats::merge (1 s delta, 10 entries, keep_window)",
        |b| {
            b.iter_batched_ref(
                || proto.clone(),
                |delta| windowed.merge(delta),
                BatchSize::SmallInput,
            )
        },
    );
}

/// A locusta worker's `stats` message: 50 names, 50 requests each.
fn report_bytes() -> Vec<u8> {
    use locusta::cluster::protocol::{encode, WorkerMessage};
    let mut shard = ShardStats::new();
    for e in 0..50u64 {
        let id = shard.entry(Method::Get, &format!("/api/endpoint/{e}"));
        for i in 0..50 {
            shard.record(id, 500 + latency_us(e * 50 + i) * 2, 512);
        }
    }
    let mut builder = locusta::cluster::report::ReportBuilder::new();
    builder.add(&shard.take_delta());
    let report = builder.take_report(SystemTime::now(), vec![("raw".into(), 1)], 1);
    encode(&WorkerMessage::Stats(Box::new(report)).to_message("bench_worker"))
}

fn master_report(c: &mut Criterion) {
    use locusta::cluster::protocol::WorkerMessage;
    use locusta::cluster::report_decode::decode_from_worker;
    let bytes = report_bytes();
    c.bench_function("master: decode a 50-name stats report", |b| {
        b.iter(|| black_box(decode_from_worker(black_box(&bytes))))
    });
    let mut run = RunStats::new(false);
    c.bench_function("master: decode, check and merge a 50-name report", |b| {
        b.iter(|| {
            let Ok(Ok(WorkerMessage::Stats(mut report))) = decode_from_worker(&bytes) else {
                panic!("the bench report does not decode");
            };
            report.check().expect("an honest report");
            let (mut delta, _) = report.take_delta(SystemTime::now());
            run.merge(&mut delta);
        })
    });
}

fn run_tick_and_view(c: &mut Criterion) {
    let mut run = RunStats::new(true);
    run.merge(&mut one_second_delta());
    c.bench_function("RunStats::tick (10 entries, keep_window)", |b| {
        b.iter(|| run.tick(SystemTime::now(), 100))
    });
    c.bench_function("RunStats::view (10 entries)", |b| {
        b.iter(|| black_box(run.view(SystemTime::now())))
    });
}

criterion_group!(
    benches,
    shard_record,
    histogram_record,
    shard_entry,
    run_merge,
    master_report,
    run_tick_and_view
);
criterion_main!(benches);
