//! The data half of the HTML report: what its charts draw, as one JSON blob
//! the page's script reads (`<script type="application/json">`).
//!
//! Owns the blob's shape (per-second history, the busiest rows' latency
//! spectra), writing numbers compactly (3 significant digits) so an hour
//! of history stays small, and making the JSON safe inside a `<script>`
//! element. It does not own the page's HTML (the parent module, `report::html`) nor drawing
//! (`assets/report.js`).

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use crate::report::FinalReport;
use crate::stats::{EntryHistogram, EntryRow};

/// Spectrum charts drawn for the busiest request names (plus Aggregated).
pub const SPECTRUM_NAMES: usize = 10;

/// Points per decade of 1/(1-q) on the spectrum's x axis.
const SPECTRUM_STEPS_PER_DECADE: u32 = 10;

/// The blob for `report`, ready to sit inside a `<script>` element: every
/// `<` is written as `\u003c`, so no string from outside (a request name
/// `</script>`, an HTML comment opener) can end the element or change how
/// the browser parses it; `JSON.parse` reads the escapes back.
pub fn blob(report: &FinalReport) -> String {
    let data = json!({
        "history": history(report),
        "spectra": spectra(report),
    });
    script_safe(&data.to_string())
}

/// JSON text with `<` escaped (only possible inside JSON strings, where
/// `\u003c` means the same character).
pub fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
}

/// `x` rounded to 3 significant digits, never finer than needed and never
/// to fewer than whole units (12345.6 -> 12346); integral values become
/// JSON integers (`12`, not `12.0`). Non-finite numbers become 0.
pub fn compact(x: f64) -> Value {
    let rounded = round3(x);
    if rounded.fract() == 0.0 && rounded.abs() < 1e15 {
        Value::from(rounded as i64)
    } else {
        Value::from(rounded)
    }
}

/// `x` to 3 significant digits (whole units at least); 0 when not finite.
fn round3(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return 0.0;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 12);
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

fn series(values: impl Iterator<Item = f64>) -> Value {
    Value::Array(values.map(compact).collect())
}

/// Seven aligned arrays, one value per second: unix time, users, requests/s,
/// failures/s, p50/p95/p99 in ms.
fn history(report: &FinalReport) -> Value {
    let h = &report.history;
    let mut map = Map::new();
    map.insert(
        "t".into(),
        Value::Array(h.iter().map(|p| Value::from(p.unix_time)).collect()),
    );
    map.insert(
        "users".into(),
        Value::Array(h.iter().map(|p| Value::from(p.user_count)).collect()),
    );
    map.insert("rps".into(), series(h.iter().map(|p| p.rps)));
    map.insert("fps".into(), series(h.iter().map(|p| p.fail_per_sec)));
    map.insert("p50".into(), series(h.iter().map(|p| p.p50_ms)));
    map.insert("p95".into(), series(h.iter().map(|p| p.p95_ms)));
    map.insert("p99".into(), series(h.iter().map(|p| p.p99_ms)));
    if let Some(open) = &report.open_model {
        // Corrected p99 at the main history's seconds (null where the
        // corrected table closed no window that second).
        let by_second: std::collections::HashMap<u64, f64> = open
            .report
            .history
            .iter()
            .map(|p| (p.unix_time, p.p99_ms))
            .collect();
        let cp99 = h
            .iter()
            .map(|p| {
                by_second
                    .get(&p.unix_time)
                    .map_or(Value::Null, |v| compact(*v))
            })
            .collect();
        map.insert("cp99".into(), Value::Array(cp99));
    }
    Value::Object(map)
}

/// The rows that get a spectrum chart: the [`SPECTRUM_NAMES`] busiest
/// entries (most requests first, ties by table order), then Aggregated;
/// rows without requests have nothing to draw and are left out.
pub fn spectrum_rows(report: &FinalReport) -> Vec<&EntryRow> {
    let stats = &report.stats;
    let mut busy: Vec<&EntryRow> = stats
        .entries
        .iter()
        .filter(|r| r.num_requests > 0)
        .collect();
    busy.sort_by_key(|r| std::cmp::Reverse(r.num_requests));
    busy.truncate(SPECTRUM_NAMES);
    if stats.aggregated.num_requests > 0 {
        busy.push(&stats.aggregated);
    }
    busy
}

/// The row's label in charts: `GET /a`, or `Aggregated`.
pub fn row_label(row: &EntryRow) -> String {
    match row.method {
        Some(m) => format!("{} {}", m.as_str(), row.name),
        None => row.name.clone(),
    }
}

/// The corrected Aggregated's spectrum in an open-model run, from its
/// Locust percentiles (the report holds no corrected histograms): points
/// `(1/(1-q), ms)` for q up to 99.99 % while below the count, then the
/// maximum at x = count. `None` without corrected requests.
pub fn corrected_spectrum(report: &FinalReport) -> Option<Vec<(f64, f64)>> {
    let row = &report.open_model.as_ref()?.report.corrected.aggregated;
    let n = row.num_requests as f64;
    if row.num_requests == 0 {
        return None;
    }
    let mut points: Vec<(f64, f64)> = crate::stats::PERCENTILES
        .iter()
        .zip(row.percentiles_ms)
        .filter(|(q, _)| **q < 1.0)
        .map(|(q, ms)| (round3(1.0 / (1.0 - q)), ms))
        .filter(|(x, _)| *x < n)
        .collect();
    points.push((n, row.max_ms));
    Some(points)
}

fn spectra(report: &FinalReport) -> Value {
    let find = |row: &EntryRow| -> Option<&EntryHistogram> {
        report
            .histograms
            .iter()
            .find(|h| h.method == row.method && h.name == row.name)
    };
    let charts = spectrum_rows(report)
        .into_iter()
        .filter_map(|row| {
            let hist = find(row)?;
            let max_us = (row.max_ms * 1000.0).round() as u64;
            let points = spectrum(&hist.histogram, max_us);
            if points.is_empty() {
                return None;
            }
            Some(json!({
                "name": row_label(row),
                "x": series(points.iter().map(|p| p.0)),
                "y": series(points.iter().map(|p| p.1)),
            }))
        })
        .collect::<Vec<Value>>();
    let mut charts = charts;
    if let Some(points) = corrected_spectrum(report) {
        charts.push(json!({
            "name": "Aggregated (corrected, from its percentiles)",
            "x": series(points.iter().map(|p| p.0)),
            "y": series(points.iter().map(|p| p.1)),
        }));
    }
    Value::Array(charts)
}

/// HdrHistogram's percentile spectrum of `histogram` (µs): points
/// `(1/(1-q), latency ms)` at 10 steps per decade of 1/(1-q) (q = 0, 0.206,
/// 0.369, ... 0.9, ... 0.99, ...) while 1/(1-q) stays below the count `n`
/// (beyond, every quantile is the maximum), then the maximum at x = n.
/// x is rounded as the blob writes it, so x rises strictly as written.
/// Values are capped at `max_us` (the row's raw maximum, as the stats
/// tables cap theirs). Empty for an empty histogram.
pub fn spectrum(histogram: &Histogram<u64>, max_us: u64) -> Vec<(f64, f64)> {
    let n = histogram.len();
    if n == 0 {
        return Vec::new();
    }
    let max_us = if max_us == 0 { histogram.max() } else { max_us };
    let ms = |us: u64| us.min(max_us) as f64 / 1000.0;
    let mut points = Vec::new();
    for step in 0u32.. {
        let x = round3(10f64.powf(f64::from(step) / f64::from(SPECTRUM_STEPS_PER_DECADE)));
        if x >= n as f64 {
            break;
        }
        let q = 1.0 - 1.0 / x;
        points.push((x, ms(histogram.value_at_quantile(q))));
    }
    points.push((n as f64, ms(max_us)));
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn compact_keeps_three_significant_digits() {
        assert_eq!(compact(0.0).to_string(), "0");
        assert_eq!(compact(12.0).to_string(), "12");
        assert_eq!(compact(1.23456).to_string(), "1.23");
        assert_eq!(compact(0.0123456).to_string(), "0.0123");
        assert_eq!(compact(123.456).to_string(), "123");
        assert_eq!(compact(12345.6).to_string(), "12346");
        assert_eq!(compact(-0.30000001).to_string(), "-0.3");
        assert_eq!(compact(f64::NAN).to_string(), "0");
        assert_eq!(compact(f64::INFINITY).to_string(), "0");
    }

    #[test]
    fn script_safe_cannot_close_the_element() {
        let json = json!({ "name": "</script><script>alert(1)</script><!--" }).to_string();
        let safe = script_safe(&json);
        assert!(!safe.contains('<'), "{safe}");
        let back: Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["name"], "</script><script>alert(1)</script><!--");
    }

    #[test]
    fn spectrum_of_one_to_thousand_ms() {
        // 1000 samples: 1 ms, 2 ms, ... 1000 ms.
        let h = hist((1..=1000).map(|ms| ms * 1000));
        let points = spectrum(&h, 1_000_000);
        // x = 1 (q = 0): the minimum.
        assert_eq!(points[0].0, 1.0);
        assert!((points[0].1 - 1.0).abs() < 0.01, "{:?}", points[0]);
        // x = 10 (q = 0.9): 900 ms; x = 100 (q = 0.99): 990 ms (HDR's
        // 3 digits: within 0.1%).
        let at = |x: f64| points.iter().find(|p| (p.0 - x).abs() < 1e-9).unwrap().1;
        assert!((at(10.0) - 900.0).abs() <= 1.0, "{}", at(10.0));
        assert!((at(100.0) - 990.0).abs() <= 1.0, "{}", at(100.0));
        // Three decades below n = 1000: 30 steps, then the max at x = n.
        assert_eq!(points.len(), 31);
        assert_eq!(*points.last().unwrap(), (1000.0, 1000.0));
        // x rises strictly, latency never falls.
        for w in points.windows(2) {
            assert!(w[1].0 > w[0].0 && w[1].1 >= w[0].1, "{w:?}");
        }
    }

    #[test]
    fn spectrum_x_rises_strictly_for_every_count() {
        let mut h = hist([]);
        for n in 1..=3000u64 {
            h.record(1000 + n).unwrap();
            let xs: Vec<String> = spectrum(&h, 0)
                .iter()
                .map(|p| compact(p.0).to_string())
                .collect();
            let parsed: Vec<f64> = xs.iter().map(|x| x.parse().unwrap()).collect();
            assert!(parsed.windows(2).all(|w| w[0] < w[1]), "n={n}: {xs:?}");
            assert_eq!(*parsed.last().unwrap(), n as f64);
        }
    }

    #[test]
    fn spectrum_caps_at_the_raw_max_and_handles_tiny_counts() {
        assert!(spectrum(&hist([]), 0).is_empty());
        // One sample: just the max, at x = 1.
        assert_eq!(spectrum(&hist([1234]), 1234), vec![(1.0, 1.234)]);
        // The bucket edge of 100_000 µs is above it; the row's max caps it.
        let points = spectrum(&hist([100_000, 100_000]), 100_000);
        assert!(points.iter().all(|p| p.1 <= 100.0), "{points:?}");
    }
}
