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
mod tests {
    use super::*;
    use crate::report::test_view::sample_view;
    use crate::stats::HistoryPoint;

    #[test]
    fn history_points_fill_what_they_keep_and_mark_the_rest() {
        let point = |t, users| HistoryPoint {
            unix_time: t,
            user_count: users,
            rps: 10.5,
            fail_per_sec: 0.5,
            p50_ms: 1.5,
            p95_ms: 9.0,
            p99_ms: 12.25,
        };
        let csv = history_points_csv(&[point(100, 0), point(101, 3)]);
        let lines: Vec<&str> = csv.split(EOL).filter(|l| !l.is_empty()).collect();
        assert_eq!(lines[0], HISTORY_HEADER);
        // The second with no users is skipped, as the --csv history does.
        assert_eq!(lines.len(), 2, "{csv}");
        let cells: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(cells.len(), HISTORY_HEADER.split(',').count());
        assert_eq!(
            &cells[..7],
            ["101", "3", "", "Aggregated", "10.500000", "0.500000", "1.5"]
        );
        assert_eq!((cells[11], cells[13], cells[8]), ("9", "12.25", "N/A"));
    }

    #[test]
    fn headers_are_locusts_character_for_character() {
        // Copied from shared/reference/locust.md section 2.1.
        let stats = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%";
        let history = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size";
        assert_eq!(STATS_HEADER, stats);
        assert_eq!(HISTORY_HEADER, history);
        assert_eq!(
            FAILURES_HEADER,
            "Method,Name,Error,Occurrences,First Seen,Last Seen"
        );
        assert_eq!(EXCEPTIONS_HEADER, "Count,Message,Traceback,Nodes");
        let view = sample_view();
        assert!(stats_csv(&view).starts_with(&format!("{stats}\r\n")));
        assert!(failures_csv(&view)
            .starts_with("Method,Name,Error,Occurrences,First Seen,Last Seen\r\n"));
    }

    #[test]
    fn stats_rows_order_quoting_and_na() {
        let text = stats_csv(&sample_view());
        assert!(text.ends_with("\r\n"));
        assert!(
            !text.replace("\r\n", "").contains('\n'),
            "only CRLF line ends"
        );
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(
            lines[1],
            "GET,/a,10,1,0.4,0.414,0.2,3.5,1500,2.5,0.25,0.4,0.5,0.6,0.7,0.8,0.9,1,2,3,3.4,3.5"
        );
        assert!(
            lines[2].starts_with("POST,\"/b?q=\"\"x\"\",y\",5,0,"),
            "{}",
            lines[2]
        );
        assert_eq!(
            lines[3],
            "GET,/c,0,0,0,0,0,0,0,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A"
        );
        assert!(
            lines[4].starts_with(",Aggregated,15,1,"),
            "Aggregated last, empty Type"
        );
        assert_eq!(lines[5], "");
        assert_eq!(lines.len(), 6);
    }

    #[test]
    fn history_rows_default_and_full() {
        let view = sample_view();
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_900);
        let agg_only = history_rows(&view, 42, now, false);
        assert_eq!(agg_only.matches("\r\n").count(), 1);
        assert!(
            agg_only.starts_with("1700000000,42,,Aggregated,12.345679,0.100000,0.5,"),
            "{agg_only}"
        );
        assert!(
            agg_only.ends_with(",15,1,0.5,0.6,0.2,3.5,1000\r\n"),
            "{agg_only}"
        );

        let full = history_rows(&view, 42, now, true);
        let lines: Vec<&str> = full.split("\r\n").collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("1700000000,42,GET,/a,"));
        assert!(
            lines[0].contains(",9,9,9,9,9,9,9,9,9,9,9,"),
            "current percentiles: {}",
            lines[0]
        );
        assert!(lines[2].starts_with("1700000000,42,GET,/c,0.000000,0.000000,N/A,"));
        assert!(lines[3].starts_with("1700000000,42,,Aggregated,"));
    }

    #[test]
    fn failures_and_exceptions_rows() {
        let view = sample_view();
        assert_eq!(
            failures_csv(&view).split("\r\n").nth(1).unwrap(),
            "GET,/a,HTTP 503 Service Unavailable,1,2023-11-14T22:13:20Z,2023-11-14T22:13:25Z"
        );
        assert_eq!(
            exceptions_csv(&view),
            "Count,Message,Traceback,Nodes\r\n2,attempt to index a nil value,\"stack traceback:\ntask.lua:3: in function\",\"local, w1\"\r\n"
        );
    }

    #[test]
    fn utc_formatting_of_known_dates() {
        // Expected values checked with `date -u -d @SECONDS`.
        let t = |s: u64| utc_timestamp(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(t(0), "1970-01-01T00:00:00Z");
        assert_eq!(t(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(t(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(t(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(t(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(t(1_709_208_000), "2024-02-29T12:00:00Z");
        assert_eq!(t(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(t(4_102_444_800), "2100-01-01T00:00:00Z");
        assert_eq!(
            t(4_107_542_400),
            "2100-03-01T00:00:00Z",
            "2100 is not a leap year"
        );
        assert_eq!(
            utc_timestamp(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn number_cells() {
        assert_eq!(decimal(0.0, 3), "0");
        assert_eq!(decimal(12.0, 3), "12");
        assert_eq!(decimal(0.4144, 3), "0.414");
        assert_eq!(decimal(2.5, 6), "2.5");
        assert_eq!(decimal(1234.5678, 3), "1234.568");
    }

    fn second(unix_time: u64, user_count: u32) -> HistoryPoint {
        HistoryPoint {
            unix_time,
            user_count,
            rps: 1.0,
            fail_per_sec: 0.0,
            p50_ms: 1.0,
            p95_ms: 2.0,
            p99_ms: 3.0,
        }
    }

    fn temp_prefix(name: &str) -> (std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("locusta-csv-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let prefix = dir.join("run").to_string_lossy().into_owned();
        (dir, prefix)
    }

    #[test]
    fn history_has_one_row_per_closed_second_with_users() {
        let (dir, prefix) = temp_prefix("history");
        let mut w = CsvWriter::create(&prefix, false).unwrap();
        let mut view = sample_view();
        let mut wrote = Vec::new();
        // Before the first tick, then a 0-user second before the start.
        for (last, users) in [(None, 0), (Some(99), 0), (Some(100), 5), (Some(100), 5)] {
            view.last_second = last.map(|t| second(t, users));
            wrote.push(w.append_history(&view).unwrap());
        }
        // A stall: 101..=103 were never seen; 104 is written, then the
        // repeated calls a catching-up timer makes write nothing.
        for t in [104, 104, 104, 103, 105] {
            view.last_second = Some(second(t, 7));
            wrote.push(w.append_history(&view).unwrap());
        }
        // After the stop: the user count is 0 again.
        view.last_second = Some(second(106, 0));
        wrote.push(w.append_history(&view).unwrap());
        assert_eq!(
            wrote,
            [false, true, true, false, true, false, false, false, true, true]
        );
        let text = std::fs::read_to_string(format!("{prefix}_stats_history.csv")).unwrap();
        let stamps: Vec<(&str, &str)> = text
            .split("\r\n")
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(|l| {
                let mut cells = l.split(',');
                (cells.next().unwrap(), cells.next().unwrap())
            })
            .collect();
        assert_eq!(stamps, [("100", "5"), ("104", "7"), ("105", "7")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writer_creates_rewrites_and_appends() {
        let (dir, prefix) = temp_prefix("test");
        let mut w = CsvWriter::create(&prefix, false).unwrap();
        let read =
            |suffix: &str| std::fs::read_to_string(format!("{prefix}_{suffix}.csv")).unwrap();
        assert_eq!(read("stats_history"), format!("{HISTORY_HEADER}\r\n"));
        assert_eq!(read("stats"), format!("{STATS_HEADER}\r\n"));
        let mut view = sample_view();
        for s in 0..3 {
            view.last_second = Some(second(100 + s, 1));
            assert!(w.append_history(&view).unwrap());
            w.write_snapshot(&view).unwrap();
        }
        assert_eq!(read("stats"), stats_csv(&view));
        assert_eq!(read("stats_history").matches("\r\n").count(), 4);
        // A smaller snapshot truncates the old contents.
        let mut small = view.clone();
        small.failures.clear();
        w.write_snapshot(&small).unwrap();
        assert_eq!(read("failures"), format!("{FAILURES_HEADER}\r\n"));
        assert_eq!(read("exceptions"), exceptions_csv(&view));
        let err = CsvWriter::create("/nonexistent-dir/x", false)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("/nonexistent-dir/x_stats.csv"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
