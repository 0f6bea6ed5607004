//! Request statistics: per-shard HDR histograms and counters, the deltas
//! shards send every second, the run's merged table and its history.
//!
//! Flow: each shard records into its own [`ShardStats`] (no locks, no
//! allocation once warm; latencies in a [`PagedHistogram`]) and sends a
//! [`StatsDelta`] every report tick; the control thread folds it into
//! [`RunStats`] with `merge`, returns it to the shard for
//! [`ShardStats::recycle`], and calls `tick` once per second to close a
//! window. Front ends read a [`StatsView`]: plain numbers in
//! milliseconds, the same ones in every report.
//!
//! Latency is in microseconds in `hdrhistogram::Histogram<u64>` (1 µs to
//! 1 h, 3 significant digits); percentiles are read from the merged
//! histograms, never re-bucketed the way Locust rounds response times.
//!
//! This module does not own measuring requests (the engine times them),
//! deciding what failed (`http`, scripts) or formatting (`report`).

mod failure;
mod history;
mod intervals;
mod locust_buckets;
mod open_model;
mod paged;
mod run;
mod shard;
mod sparse;
mod view;

pub use failure::Failure;
pub use history::{HistoryPoint, HISTORY_CAP};
pub use intervals::{IntervalDrain, IntervalSet, MAX_QUEUED_HISTOGRAMS, MAX_QUEUED_SETS};
pub use locust_buckets::{locust_bucket_ms, locust_buckets};
#[cfg(test)]
pub(crate) use open_model::sample_delta;
pub use open_model::{
    IterationCounts, OpenDelta, OpenModelReport, OpenModelStats, MAX_DROPPED_ROWS,
};
pub use paged::PagedHistogram;
pub use run::{RunStats, WINDOW_SECONDS};
pub use shard::{
    new_histogram, other_failure, Delta, DeltaEntry, DeltaException, DeltaFailure, EntryCounts,
    EntryId, Latencies, ShardStats, StatsDelta, HISTOGRAM_MAX_US, HISTOGRAM_SIGFIG, MAX_EXCEPTIONS,
    MAX_FAILURES, MAX_NAMES, OTHER_FAILURE, OTHER_NAME,
};
pub use sparse::{SparseError, SparseHistogram};
pub use view::{
    percentiles_ms, percentiles_us, us_to_ms, EntryHistogram, EntryRow, ExceptionRow, FailureRow,
    StatsView, PERCENTILES,
};
