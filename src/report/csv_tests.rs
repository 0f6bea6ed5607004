//! Tests of `csv`: Locust's columns and number formats.

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
    assert!(
        failures_csv(&view).starts_with("Method,Name,Error,Occurrences,First Seen,Last Seen\r\n")
    );
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
    let read = |suffix: &str| std::fs::read_to_string(format!("{prefix}_{suffix}.csv")).unwrap();
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
