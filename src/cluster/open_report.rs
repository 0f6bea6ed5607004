//! The open model between locusta peers: the spawn's rate share
//! ([`open_model_value`], [`parse_open_model`]), the `stats` report's
//! open-model part ([`OpenReport`]: iteration counters, raw mode's dropped
//! iterations per name, corrected-latency entries with exact HDR buckets),
//! its range checks, its delta form for the master, and the worker's
//! accumulator ([`OpenReportBuilder`]).
//!
//! All of it travels under locusta-only keys (`locusta_open_model`), which
//! a Locust peer ignores; a locusta master refuses open-model runs when a
//! Locust worker is connected (`network`). It does not own the split of
//! the rate across workers (`network`) nor the engine's scheduler.

use std::sync::Arc;
use std::time::SystemTime;

use super::protocol::{map_value, str_value, Fields, ProtocolError, Value};
use super::report::{ReportBuilder, ReportEntry};
use super::report_checks::{CheckError, MAX_REPORT_COUNT};
use crate::engine::{OpenModel, MAX_ARRIVAL_RATE};
use crate::http::Method;
use crate::stats::{
    IterationCounts, OpenDelta, SparseHistogram, StatsDelta, MAX_DROPPED_ROWS, MAX_NAMES,
};

/// The key of the open model in `spawn` and in `stats` data.
pub const OPEN_MODEL_KEY: &str = "locusta_open_model";

/// The spawn's `{"rate": f64, "max_users": int}`.
pub fn open_model_value(model: &OpenModel) -> Value {
    map_value(vec![
        ("rate", Value::F64(model.rate)),
        ("max_users", Value::from(model.max_users)),
    ])
}

/// Read a spawn's open model: a rate above 0 and at most
/// [`MAX_ARRIVAL_RATE`], a pool of at least one user.
pub fn parse_open_model(kind: &str, v: &Value) -> Result<OpenModel, ProtocolError> {
    let f = Fields::at(kind, format!("{OPEN_MODEL_KEY}."), v)?;
    let rate = f.number("rate")?;
    if !(rate > 0.0 && rate <= MAX_ARRIVAL_RATE) {
        return Err(f.error(
            "rate",
            &format!("is {rate}, not in (0, {MAX_ARRIVAL_RATE}]"),
        ));
    }
    let max_users = f.u32("max_users")?;
    if max_users == 0 {
        return Err(f.error("max_users", "is 0"));
    }
    Ok(OpenModel { rate, max_users })
}

/// What a worker's open model did since its previous report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpenReport {
    pub iterations: IterationCounts,
    /// `(method, name, dropped iterations)`, raw mode only.
    pub dropped_by_name: Vec<(String, String, u64)>,
    /// Corrected latencies (from the intended start), one entry per row
    /// with requests; Locust's entry shape with our `hdr` buckets.
    pub stats: Vec<ReportEntry>,
}

impl OpenReport {
    pub fn is_empty(&self) -> bool {
        self.iterations.is_zero() && self.dropped_by_name.is_empty() && self.stats.is_empty()
    }

    pub fn to_value(&self) -> Value {
        let i = &self.iterations;
        let dropped = self
            .dropped_by_name
            .iter()
            .map(|(m, n, c)| Value::Array(vec![str_value(m), str_value(n), Value::from(*c)]))
            .collect();
        map_value(vec![
            ("intended", Value::from(i.intended)),
            ("started", Value::from(i.started)),
            ("late", Value::from(i.late)),
            ("dropped", Value::from(i.dropped)),
            ("dropped_by_name", Value::Array(dropped)),
            (
                "stats",
                Value::Array(self.stats.iter().map(ReportEntry::to_value).collect()),
            ),
        ])
    }

    /// Read the report's open-model part (`v` is what `OPEN_MODEL_KEY`
    /// holds); mistyped fields are an error naming them.
    pub fn from_value(kind: &str, v: &Value) -> Result<OpenReport, ProtocolError> {
        let path = format!("{OPEN_MODEL_KEY}.");
        let f = Fields::at(kind, path.clone(), v)?;
        let iterations = IterationCounts {
            intended: f.count("intended")?,
            started: f.count("started")?,
            late: f.count("late")?,
            dropped: f.count("dropped")?,
        };
        let mut dropped_by_name = Vec::new();
        if let Some(v) = f.get("dropped_by_name") {
            let Value::Array(rows) = v else {
                return Err(f.mistyped("dropped_by_name", v, "an array"));
            };
            if rows.len() > MAX_DROPPED_ROWS {
                return Err(f.error("dropped_by_name", "has too many rows"));
            }
            for row in rows {
                let bad = || f.mistyped("dropped_by_name", row, "[method, name, count] rows");
                let Value::Array(cells) = row else {
                    return Err(bad());
                };
                let [m, n, c] = cells.as_slice() else {
                    return Err(bad());
                };
                let (Some(m), Some(n), Some(c)) =
                    (m.as_str(), n.as_str(), super::protocol::count_of(c))
                else {
                    return Err(bad());
                };
                dropped_by_name.push((m.to_string(), n.to_string(), c));
            }
        }
        let mut stats = Vec::new();
        if let Some(v) = f.get("stats") {
            let Value::Array(entries) = v else {
                return Err(f.mistyped("stats", v, "an array"));
            };
            if entries.len() > MAX_NAMES * Method::ALL.len() {
                return Err(f.error("stats", "has too many entries"));
            }
            for (i, e) in entries.iter().enumerate() {
                stats.push(ReportEntry::from_value(format!("{path}stats[{i}]."), e)?);
            }
        }
        Ok(OpenReport {
            iterations,
            dropped_by_name,
            stats,
        })
    }

    /// Refuse what cannot be true (see `report_checks`): every count at
    /// most 2^40, corrected entries as checked as the main ones.
    pub fn check(&self) -> Result<(), CheckError> {
        let i = &self.iterations;
        for (what, n) in [
            ("intended", i.intended),
            ("started", i.started),
            ("late", i.late),
            ("dropped", i.dropped),
        ] {
            if n > MAX_REPORT_COUNT {
                return Err(format!(
                    "open model: {n} {what} iterations (more than 2^40)"
                ));
            }
        }
        if i.late > i.started {
            return Err(format!(
                "open model: {} late of {} started iterations",
                i.late, i.started
            ));
        }
        let mut dropped = 0u64;
        for (m, n, c) in &self.dropped_by_name {
            dropped = dropped.saturating_add(*c);
            if dropped > i.dropped {
                return Err(format!(
                    "open model: dropped iterations of {m} {n} pass the {} dropped in all",
                    i.dropped
                ));
            }
        }
        let mut requests = 0u64;
        for (k, e) in self.stats.iter().enumerate() {
            e.check()
                .map_err(|p| format!("open model stats[{k}] ({}): {p}", e.name))?;
            requests = requests.saturating_add(e.num_requests);
        }
        if requests > MAX_REPORT_COUNT {
            return Err("open model: more than 2^40 corrected requests in all".into());
        }
        Ok(())
    }

    /// Corrected requests the report adds (after [`OpenReport::check`]).
    pub fn request_count(&self) -> u64 {
        self.stats
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.num_requests))
    }

    /// The delta the master merges into its `OpenModelStats`; rows whose
    /// request type cannot be registered are left out.
    pub fn to_delta(&self, received_at: SystemTime) -> OpenDelta<SparseHistogram> {
        let dropped_by_name = self
            .dropped_by_name
            .iter()
            .filter_map(|(m, n, c)| Some((Method::intern(m).ok()?, Arc::from(n.as_str()), *c)))
            .collect();
        let corrected = super::report::entries_to_delta(&mut self.stats.clone(), received_at).0;
        OpenDelta {
            iterations: self.iterations,
            dropped_by_name,
            corrected,
        }
    }
}

/// A worker's open-model deltas between two reports: counters summed, the
/// corrected latencies in a [`ReportBuilder`] of their own.
#[derive(Default)]
pub struct OpenReportBuilder {
    iterations: IterationCounts,
    dropped: std::collections::HashMap<(Method, Arc<str>), u64>,
    corrected: ReportBuilder,
}

impl OpenReportBuilder {
    pub fn add(&mut self, delta: &OpenDelta) {
        self.iterations.add(&delta.iterations);
        for (m, n, c) in &delta.dropped_by_name {
            let full = self.dropped.len() >= MAX_DROPPED_ROWS;
            let key = if full && !self.dropped.contains_key(&(*m, n.clone())) {
                (*m, Arc::from(crate::stats::OTHER_NAME))
            } else {
                (*m, n.clone())
            };
            let slot = self.dropped.entry(key).or_insert(0);
            *slot = slot.saturating_add(*c);
        }
        let corrected: &StatsDelta = &delta.corrected;
        self.corrected.add(corrected);
    }

    /// Everything since the last take (`None` when nothing happened, so a
    /// closed-model worker's reports stay Locust's payload).
    pub fn take(&mut self, now: SystemTime) -> Option<OpenReport> {
        let stats = self.corrected.take_report(now, Vec::new(), 0).stats;
        let mut dropped_by_name: Vec<(String, String, u64)> = self
            .dropped
            .drain()
            .map(|((m, n), c)| (m.as_str().to_string(), n.to_string(), c))
            .collect();
        dropped_by_name.sort();
        let report = OpenReport {
            iterations: std::mem::take(&mut self.iterations),
            dropped_by_name,
            stats,
        };
        (!report.is_empty()).then_some(report)
    }
}

#[cfg(test)]
#[path = "open_report_tests.rs"]
mod tests;
