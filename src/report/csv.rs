//! Locust's `--csv PREFIX` files, byte-compatible where tools look.
//!
//! Owns the four files' headers, column and row order, cell formats and
//! quoting (Python `csv.writer` defaults: minimal quoting, `\r\n`), the
//! UTC timestamp format of `_failures.csv`, and [`CsvWriter`], which keeps
//! the files open: history rows are appended, the other three files are
//! rewritten in place. It does not own when to write (the front end calls
//! it every second and at the end) nor computing any number (`stats`).
//!
//! History: one row (set of rows with `--csv-full-history`) per second the
//! run's stats closed, stamped with that second and its user count, never
//! two for the same second, none for seconds without users (Locust writes
//! none before the start nor after the stop); a second the front end was
//! too stalled to write stays a gap rather than a repeat of the next one.
//!
//! Differences from Locust, on purpose: times are milliseconds with up to 3
//! decimals (µs precision) instead of whole ms, and rates use up to 6
//! decimals instead of Python's `str(float)`; both parse as numbers
//! wherever Locust's do.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::stats::{EntryRow, StatsView};

/// `PREFIX_stats.csv` header (Locust 2.x).
pub const STATS_HEADER: &str = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%";
/// `PREFIX_stats_history.csv` header.
pub const HISTORY_HEADER: &str = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size";
/// `PREFIX_failures.csv` header (with Locust 2.44's seen times).
pub const FAILURES_HEADER: &str = "Method,Name,Error,Occurrences,First Seen,Last Seen";
/// `PREFIX_exceptions.csv` header.
pub const EXCEPTIONS_HEADER: &str = "Count,Message,Traceback,Nodes";

pub(super) const EOL: &str = "\r\n";

/// Append one CSV record to `out`, quoting only fields that need it.
pub(super) fn push_record<S: AsRef<str>>(out: &mut String, fields: impl IntoIterator<Item = S>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let field = field.as_ref();
        if field.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push_str(EOL);
}

/// `x` with at most `places` decimals, trailing zeros dropped.
fn decimal(x: f64, places: usize) -> String {
    if x == 0.0 || !x.is_finite() {
        return "0".to_string();
    }
    let s = format!("{x:.places$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A time in ms with µs precision.
fn ms(x: f64) -> String {
    decimal(x, 3)
}

/// Percentile cells: `N/A` for a row with no requests, as Locust writes.
pub(super) fn percentile_cells(row: &EntryRow, values: &[f64; 11]) -> Vec<String> {
    if row.num_requests == 0 {
        vec!["N/A".to_string(); values.len()]
    } else {
        values.iter().map(|&v| ms(v)).collect()
    }
}

fn all_rows(view: &StatsView) -> impl Iterator<Item = &EntryRow> {
    view.entries.iter().chain(std::iter::once(&view.aggregated))
}

/// The whole `PREFIX_stats.csv`: entries sorted by (name, method), then
/// Aggregated with an empty Type.
pub fn stats_csv(view: &StatsView) -> String {
    let mut out = String::from(STATS_HEADER) + EOL;
    for row in all_rows(view) {
        let mut cells = vec![
            row.method_str().to_string(),
            row.name.clone(),
            row.num_requests.to_string(),
            row.num_failures.to_string(),
            ms(row.median_ms),
            ms(row.avg_ms),
            ms(row.min_ms),
            ms(row.max_ms),
            decimal(row.avg_content_size, 3),
            decimal(row.total_rps, 6),
            decimal(row.total_fail_per_sec, 6),
        ];
        cells.extend(percentile_cells(row, &row.percentiles_ms));
        push_record(&mut out, cells);
    }
    out
}

/// The rows `PREFIX_stats_history.csv` gets at `now`: the Aggregated row
/// with cumulative percentiles, or with `full_history` every entry and then
/// Aggregated, all with current-window percentiles (Locust's `use_current`;
/// 0 where the run keeps no window, like Locust's `or 0`).
pub fn history_rows(
    view: &StatsView,
    user_count: u32,
    now: SystemTime,
    full_history: bool,
) -> String {
    let timestamp = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .to_string();
    let entries = if full_history { &view.entries[..] } else { &[] };
    let mut out = String::new();
    for row in entries.iter().chain(std::iter::once(&view.aggregated)) {
        let percentiles = if full_history {
            row.current_percentiles_ms.unwrap_or([0.0; 11])
        } else {
            row.percentiles_ms
        };
        let mut cells = vec![
            timestamp.clone(),
            user_count.to_string(),
            row.method_str().to_string(),
            row.name.clone(),
            format!("{:.6}", row.current_rps),
            format!("{:.6}", row.current_fail_per_sec),
        ];
        cells.extend(percentile_cells(row, &percentiles));
        cells.extend([
            row.num_requests.to_string(),
            row.num_failures.to_string(),
            ms(row.median_ms),
            ms(row.avg_ms),
            ms(row.min_ms),
            ms(row.max_ms),
            decimal(row.avg_content_size, 3),
        ]);
        push_record(&mut out, cells);
    }
    out
}

/// A history CSV from the run's per-second points alone (the web API's
/// `/stats/requests_full_history/csv` when no `--csv` file is written):
/// one Aggregated row per second with users, rates, p50, p95 and p99;
/// the cells the points do not keep are `N/A`.
pub fn history_points_csv(points: &[crate::stats::HistoryPoint]) -> String {
    let mut out = String::from(HISTORY_HEADER) + EOL;
    let na = || "N/A".to_string();
    for p in points.iter().filter(|p| p.user_count > 0) {
        let mut cells = vec![
            p.unix_time.to_string(),
            p.user_count.to_string(),
            String::new(),
            "Aggregated".to_string(),
            format!("{:.6}", p.rps),
            format!("{:.6}", p.fail_per_sec),
        ];
        // 50% 66% 75% 80% 90% 95% 98% 99% 99.9% 99.99% 100%
        let known = [(0, p.p50_ms), (5, p.p95_ms), (7, p.p99_ms)];
        cells.extend((0..11).map(|i| {
            known
                .iter()
                .find(|(at, _)| *at == i)
                .map_or_else(na, |(_, v)| ms(*v))
        }));
        cells.extend((0..7).map(|_| na()));
        push_record(&mut out, cells);
    }
    out
}

/// The whole `PREFIX_failures.csv`, most occurrences first.
pub fn failures_csv(view: &StatsView) -> String {
    let mut out = String::from(FAILURES_HEADER) + EOL;
    for f in &view.failures {
        push_record(
            &mut out,
            [
                f.method.as_str().to_string(),
                f.name.clone(),
                f.error.clone(),
                f.occurrences.to_string(),
                utc_timestamp(f.first_seen),
                utc_timestamp(f.last_seen),
            ],
        );
    }
    out
}

/// The whole `PREFIX_exceptions.csv`; nodes joined with ", " as Locust does.
pub fn exceptions_csv(view: &StatsView) -> String {
    let mut out = String::from(EXCEPTIONS_HEADER) + EOL;
    for e in &view.exceptions {
        push_record(
            &mut out,
            [
                e.count.to_string(),
                e.message.clone(),
                e.traceback.clone(),
                e.nodes.join(", "),
            ],
        );
    }
    out
}

/// `%Y-%m-%dT%H:%M:%SZ` in UTC; times before 1970 show as the epoch.
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`: eras of 400 years, March-based years so the
/// leap day is last).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * march_month + 2) / 5 + 1) as u32;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// One open CSV file; errors name its path.
struct CsvFile {
    path: String,
    file: File,
}

impl CsvFile {
    fn create(path: String, header: &str) -> io::Result<Self> {
        let file = File::create(&path).map_err(|e| with_path(&path, e))?;
        let mut f = CsvFile { path, file };
        f.append(&format!("{header}{EOL}"))?;
        Ok(f)
    }

    /// Replace the whole contents (readers never see a half-written row for
    /// long: one write, then truncate to it).
    fn rewrite(&mut self, text: &str) -> io::Result<()> {
        let result = (|| {
            self.file.seek(SeekFrom::Start(0))?;
            self.file.write_all(text.as_bytes())?;
            self.file.set_len(text.len() as u64)?;
            self.file.flush()
        })();
        result.map_err(|e| with_path(&self.path, e))
    }

    fn append(&mut self, text: &str) -> io::Result<()> {
        let result = self
            .file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.flush());
        result.map_err(|e| with_path(&self.path, e))
    }
}

fn with_path(path: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{path}: {e}"))
}

/// The four open `--csv` files of a run (five in an open-model run).
pub struct CsvWriter {
    prefix: String,
    full_history: bool,
    /// Unix second of the last history second handled (written, or skipped
    /// for having no users).
    history_second: Option<u64>,
    stats: CsvFile,
    history: CsvFile,
    failures: CsvFile,
    exceptions: CsvFile,
    /// `PREFIX_open_model.csv`, created at the first open-model write, so
    /// closed-model runs write Locust's four files only.
    open_model: Option<CsvFile>,
}

impl CsvWriter {
    /// Create (truncate) `PREFIX_stats.csv`, `PREFIX_stats_history.csv`,
    /// `PREFIX_failures.csv` and `PREFIX_exceptions.csv`, each with its
    /// header. `full_history`: Locust's `--csv-full-history`.
    pub fn create(prefix: &str, full_history: bool) -> io::Result<Self> {
        Ok(CsvWriter {
            prefix: prefix.to_string(),
            full_history,
            history_second: None,
            stats: CsvFile::create(format!("{prefix}_stats.csv"), STATS_HEADER)?,
            history: CsvFile::create(format!("{prefix}_stats_history.csv"), HISTORY_HEADER)?,
            failures: CsvFile::create(format!("{prefix}_failures.csv"), FAILURES_HEADER)?,
            exceptions: CsvFile::create(format!("{prefix}_exceptions.csv"), EXCEPTIONS_HEADER)?,
            open_model: None,
        })
    }

    /// Append the history rows of the view's latest closed second, once:
    /// with its time and user count, and only if it had users. Returns
    /// `false` when no second closed since the last call (the rows would
    /// repeat the previous ones): the caller may try again shortly.
    pub fn append_history(&mut self, view: &StatsView) -> io::Result<bool> {
        let Some(second) = view.last_second else {
            return Ok(false);
        };
        if self.history_second.is_some_and(|s| s >= second.unix_time) {
            return Ok(false);
        }
        self.history_second = Some(second.unix_time);
        if second.user_count == 0 {
            return Ok(true);
        }
        let at = UNIX_EPOCH + Duration::from_secs(second.unix_time);
        let rows = history_rows(view, second.user_count, at, self.full_history);
        self.history.append(&rows)?;
        Ok(true)
    }

    /// Rewrite the stats, failures and exceptions files with `view`.
    pub fn write_snapshot(&mut self, view: &StatsView) -> io::Result<()> {
        self.stats.rewrite(&stats_csv(view))?;
        self.failures.rewrite(&failures_csv(view))?;
        self.exceptions.rewrite(&exceptions_csv(view))
    }

    /// Rewrite `PREFIX_open_model.csv` (created on the first call).
    pub fn write_open_model(
        &mut self,
        view: &StatsView,
        open: &crate::stats::OpenModelReport,
    ) -> io::Result<()> {
        if self.open_model.is_none() {
            let path = format!("{}_open_model.csv", self.prefix);
            let header = super::open_model::OPEN_MODEL_HEADER;
            self.open_model = Some(CsvFile::create(path, header)?);
        }
        match &mut self.open_model {
            Some(f) => f.rewrite(&super::open_model::open_model_csv(view, open)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
#[path = "csv_tests.rs"]
mod tests;
