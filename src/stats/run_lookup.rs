//! Reading one row of [`RunStats`] alone, for a script's `locusta.stats`
//! (a child of `run`, for its private rows): a row costs one row, not the
//! whole table that [`RunStats::view`] computes; every row's histogram,
//! for the reports' percentile spectra; and Aggregated's, assembled.

use std::borrow::Cow;
use std::time::SystemTime;

use hdrhistogram::Histogram;

use super::{add, RunRow, RunStats, OTHER_NAME};
use crate::http::Method;
use crate::stats::view::{us_to_ms, EntryRow};
use crate::stats::EntryHistogram;

impl RunStats {
    /// Every row's whole-run latency histogram (µs), in the view's order,
    /// and Aggregated's last: what reports draw percentile spectra from.
    pub fn histograms(&self) -> Vec<EntryHistogram> {
        let mut out: Vec<EntryHistogram> = self
            .rows
            .iter()
            .map(|r| EntryHistogram {
                method: r.method,
                name: r.name.to_string(),
                histogram: r.cumulative().into_owned(),
            })
            .collect();
        out.sort_by(|a, b| {
            let key = |e: &EntryHistogram| (e.name.clone(), e.method.map_or("", Method::as_str));
            key(a).cmp(&key(b))
        });
        out.push(EntryHistogram {
            method: None,
            name: "Aggregated".to_string(),
            histogram: self.aggregated_cumulative().into_owned(),
        });
        out
    }

    /// One row as [`RunStats::view`] shows it (`method` `None`: the
    /// Aggregated row), computed alone: a script's `locusta.stats` reads
    /// a row without paying for the whole table.
    pub fn row(&self, method: Option<Method>, name: &str, now: SystemTime) -> Option<EntryRow> {
        let elapsed = self
            .last_request
            .map(|t| t.min(now))
            .and_then(|t| t.duration_since(self.start_time).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        match method {
            None => Some(self.aggregated_view(elapsed)),
            Some(m) => {
                let row = self.find_row(m, name)?;
                Some(self.row_view(row, &row.cumulative(), elapsed))
            }
        }
    }

    /// The request types that have a row named `name`: HTTP methods in
    /// [`Method::ALL`] order, then custom types.
    pub fn methods_of(&self, name: &str) -> Vec<Method> {
        Method::known()
            .filter(|m| self.find_row(*m, name).is_some())
            .collect()
    }

    /// A row's whole-run latency percentile `q` (0..=1) in ms, as the
    /// tables read it (capped at the row's maximum); 0 without requests.
    pub fn row_percentile(&self, method: Option<Method>, name: &str, q: f64) -> Option<f64> {
        let (row, h) = match method {
            None => (&self.aggregated, self.aggregated_cumulative()),
            Some(m) => {
                let row = self.find_row(m, name)?;
                (row, row.cumulative())
            }
        };
        if h.is_empty() {
            return Some(0.0);
        }
        Some(us_to_ms(h.value_at_quantile(q).min(row.counts.max_us)))
    }

    /// Aggregated's row: its closed windows plus the open one.
    pub(super) fn aggregated_view(&self, elapsed: f64) -> EntryRow {
        self.row_view(&self.aggregated, &self.aggregated_cumulative(), elapsed)
    }

    /// Aggregated's whole-run histogram: the closed windows, the open one
    /// and what is pending (a copy unless only closed windows hold any).
    pub(super) fn aggregated_cumulative(&self) -> Cow<'_, Histogram<u64>> {
        if self.aggregated_second.is_empty() && self.rows.iter().all(|r| r.pending.is_empty()) {
            return Cow::Borrowed(&self.aggregated.histogram);
        }
        let mut h = self.aggregated.histogram.clone();
        add(&mut h, &self.aggregated_second);
        for row in &self.rows {
            row.pending.add_to(&mut h);
        }
        Cow::Owned(h)
    }

    fn find_row(&self, method: Method, name: &str) -> Option<&RunRow> {
        let i = match self.index[method.index()].get(name) {
            Some(&i) => i,
            None if name == OTHER_NAME => self.other_index[method.index()]?,
            None => return None,
        };
        self.rows.get(i)
    }
}
