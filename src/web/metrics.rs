//! `GET /metrics`: the run in Prometheus' text exposition format 0.0.4.
//!
//! Owns the metric families (their names are fixed: dashboards query
//! them), how each is read from [`RunControl`] (`snapshot`, `histograms`,
//! `open_model`) and the text format itself: HELP/TYPE lines, label-value
//! escaping, the latency histogram's fixed buckets read from the HDR
//! histograms. It does not own the stats (`stats`), nor the server, base
//! path and auth (`server`).
//!
//! Counters count since the start of the run or the last stats reset (a
//! new swarm after a stop starts with fresh stats too): a reset brings
//! them back to 0, which Prometheus' `rate()`/`increase()` read as a
//! counter reset, as they do a restarted process.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::{WebContext, WebRequest, WebResponse};
use crate::config::{Role, RunConfig};
use crate::engine::{Dispatcher, RunControl, RunState, Snapshot, Topology};
use crate::http::Method;
use crate::stats::EntryHistogram;

/// The exposition format's media type (version 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The latency histogram's bucket bounds, in µs (the HDR unit) and as the
/// `le` label (seconds), `+Inf` aside.
const BUCKETS: [(u64, &str); 13] = [
    (1_000, "0.001"),
    (2_500, "0.0025"),
    (5_000, "0.005"),
    (10_000, "0.01"),
    (25_000, "0.025"),
    (50_000, "0.05"),
    (100_000, "0.1"),
    (250_000, "0.25"),
    (500_000, "0.5"),
    (1_000_000, "1"),
    (2_500_000, "2.5"),
    (5_000_000, "5"),
    (10_000_000, "10"),
];

/// Answer `/metrics`: GET (and HEAD) only.
pub fn handle(req: &WebRequest, ctx: &WebContext) -> WebResponse {
    if req.method != hyper::Method::GET && req.method != hyper::Method::HEAD {
        let mut resp = WebResponse::text(405, "/metrics answers GET only\n");
        resp.headers.push(("Allow", "GET, HEAD".to_string()));
        return resp;
    }
    WebResponse::new(200, CONTENT_TYPE, render(&*ctx.control, &ctx.cfg))
}

/// The whole exposition, read from `control` now.
pub fn render(control: &dyn RunControl, cfg: &RunConfig) -> String {
    let (snap, histograms) = consistent_read(control);
    let mut out = Exposition::default();
    write_info(&mut out, &snap);
    write_run(&mut out, &snap, cfg);
    write_requests(&mut out, &snap, &histograms);
    write_workers(&mut out, &snap);
    if let Some(open) = control.open_model() {
        let it = &open.iterations;
        let families = [
            (
                "locusta_iterations_intended_total",
                "Iterations the open model's schedule asked to start.",
                it.intended,
            ),
            (
                "locusta_iterations_started_total",
                "Iterations that started (on time or late).",
                it.started,
            ),
            (
                "locusta_iterations_dropped_total",
                "Iterations that could not start on time (no free user) and were dropped.",
                it.dropped,
            ),
        ];
        for (name, help, value) in families {
            out.family(name, help, "counter");
            out.sample(name, &[], value as f64);
        }
    }
    out.text
}

/// A snapshot and the histograms from the same stats merge: they are two
/// reads, and a merge (once a second) may fall between them, which would
/// make `_count` differ from `locusta_requests_total`. One retry is enough
/// unless merges come faster than the reads.
fn consistent_read(control: &dyn RunControl) -> (Snapshot, Vec<EntryHistogram>) {
    let mut histograms = control.histograms();
    let mut snap = control.snapshot();
    for _ in 0..2 {
        let recorded = histograms.last().map_or(0, |h| h.histogram.len());
        if recorded == snap.stats.aggregated.num_requests {
            break;
        }
        histograms = control.histograms();
        snap = control.snapshot();
    }
    (snap, histograms)
}

fn write_info(out: &mut Exposition, snap: &Snapshot) {
    let io_driver = match &snap.topology {
        Topology::Local { io_driver, .. } => io_driver.as_str(),
        // A master runs no users: its workers pick their own drivers.
        Topology::Master { .. } => "",
    };
    out.family(
        "locusta_info",
        "This locusta: its version and the I/O driver its users run on (empty on a master).",
        "gauge",
    );
    out.sample(
        "locusta_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("io_driver", io_driver),
        ],
        1.0,
    );
}

/// State, users, target and current rates.
fn write_run(out: &mut Exposition, snap: &Snapshot, cfg: &RunConfig) {
    let status = &snap.status;
    out.family(
        "locusta_state",
        "The run's state (Locust's runner states): 1 for the current one, 0 for the others.",
        "gauge",
    );
    let states = [
        (RunState::Ready, "ready"),
        (RunState::Spawning, "spawning"),
        (RunState::Running, "running"),
        (RunState::Stopping, "stopping"),
        (RunState::Stopped, "stopped"),
    ];
    for (state, label) in states {
        let on = if status.state == state { 1.0 } else { 0.0 };
        out.sample("locusta_state", &[("state", label)], on);
    }

    out.family(
        "locusta_users",
        "Users running, per user class (class=\"\" when the split is not known here).",
        "gauge",
    );
    match users_per_class(cfg, status.users) {
        Some(split) => {
            for (class, users) in split {
                out.sample("locusta_users", &[("class", &class)], f64::from(users));
            }
        }
        None => out.sample("locusta_users", &[("class", "")], f64::from(status.users)),
    }
    out.family(
        "locusta_target_users",
        "Users the run is ramping to (or holds).",
        "gauge",
    );
    out.sample("locusta_target_users", &[], f64::from(status.target_users));

    let agg = &snap.stats.aggregated;
    out.family(
        "locusta_current_rps",
        "Requests per second over the last (up to) 10 seconds.",
        "gauge",
    );
    out.sample("locusta_current_rps", &[], agg.current_rps);
    out.family(
        "locusta_current_fail_per_sec",
        "Failed requests per second over the last (up to) 10 seconds.",
        "gauge",
    );
    out.sample(
        "locusta_current_fail_per_sec",
        &[],
        agg.current_fail_per_sec,
    );
}

/// Users per class, by the dispatch rules the engine and the master use
/// (fixed counts first, then weights): exact for a closed-model run with
/// no load shape, on the process that dispatches. `None` where that split
/// is not what runs: a shape may pick the classes of each stage, an open
/// model creates users as iterations need them, and a worker holds what
/// its master sends it.
fn users_per_class(cfg: &RunConfig, users: u32) -> Option<Vec<(String, u32)>> {
    let dispatches = matches!(cfg.role, Role::Standalone | Role::Master { .. });
    if !dispatches || cfg.shape.is_some() || cfg.open_model.is_some() || cfg.classes.is_empty() {
        return None;
    }
    let counts = Dispatcher::new(cfg.classes.clone()).counts(users);
    Some(
        cfg.classes
            .iter()
            .map(|c| c.name.clone())
            .zip(counts)
            .collect(),
    )
}

/// Per `(method, name)`: requests, failures, the latency histogram.
fn write_requests(out: &mut Exposition, snap: &Snapshot, histograms: &[EntryHistogram]) {
    let stats = &snap.stats;
    out.family(
        "locusta_requests_total",
        "Requests since the start or the last stats reset, failed ones included.",
        "counter",
    );
    for row in &stats.entries {
        out.sample(
            "locusta_requests_total",
            &[("method", row.method_str()), ("name", &row.name)],
            row.num_requests as f64,
        );
    }
    out.family(
        "locusta_failures_total",
        "Failed requests since the start or the last stats reset, per error.",
        "counter",
    );
    for f in &stats.failures {
        out.sample(
            "locusta_failures_total",
            &[
                ("method", f.method.as_str()),
                ("name", &f.name),
                ("error", &f.error),
            ],
            f.occurrences as f64,
        );
    }
    const DURATION: &str = "locusta_request_duration_seconds";
    out.family(
        DURATION,
        "Response times since the start or the last stats reset (from the HDR histograms: \
         bucket bounds within 0.1%).",
        "histogram",
    );
    for h in histograms {
        // The Aggregated row (no method) is the sum of the others.
        let Some(method) = h.method else { continue };
        write_histogram(out, DURATION, method, &h.name, &h.histogram);
    }
}

fn write_histogram(
    out: &mut Exposition,
    family: &str,
    method: Method,
    name: &str,
    histogram: &Histogram<u64>,
) {
    let (cumulative, sum_us) = buckets(histogram);
    let bucket = format!("{family}_bucket");
    let method = method.as_str();
    for ((_, le), count) in BUCKETS.iter().zip(cumulative) {
        out.sample(
            &bucket,
            &[("method", method), ("name", name), ("le", le)],
            count as f64,
        );
    }
    let count = histogram.len() as f64;
    let labels = [("method", method), ("name", name)];
    out.sample(
        &bucket,
        &[("method", method), ("name", name), ("le", "+Inf")],
        count,
    );
    out.sample(&format!("{family}_sum"), &labels, sum_us / 1e6);
    out.sample(&format!("{family}_count"), &labels, count);
}

/// Cumulative counts at [`BUCKETS`], and the sum of all values (µs).
///
/// An HDR bucket holds a range of values (1 µs wide below 2 ms, 0.1% of
/// the value above); it counts under a bound only when its whole range
/// lies at or below it, so no bucket claims a request faster than it was.
/// The sum takes each bucket's middle value: within 0.1%, and it only ever
/// grows as values are added (a counter must not go down).
fn buckets(histogram: &Histogram<u64>) -> ([u64; BUCKETS.len()], f64) {
    let mut per_bucket = [0u64; BUCKETS.len()];
    let mut sum_us = 0.0;
    for v in histogram.iter_recorded() {
        let highest = v.value_iterated_to();
        let n = v.count_at_value();
        sum_us += histogram.median_equivalent(highest) as f64 * n as f64;
        if let Some(i) = BUCKETS.iter().position(|(bound, _)| highest <= *bound) {
            per_bucket[i] += n;
        }
    }
    let mut running = 0u64;
    for slot in &mut per_bucket {
        running += *slot;
        *slot = running;
    }
    (per_bucket, sum_us)
}

/// Per worker on a master: CPU and users (none standalone).
fn write_workers(out: &mut Exposition, snap: &Snapshot) {
    let workers = match &snap.topology {
        Topology::Master { workers } => workers.as_slice(),
        Topology::Local { .. } => &[],
    };
    out.family(
        "locusta_workers",
        "Workers connected to this master (not missing); 0 when not a master.",
        "gauge",
    );
    let connected = workers.iter().filter(|w| w.state != "missing").count();
    out.sample("locusta_workers", &[], connected as f64);
    out.family(
        "locusta_worker_cpu_percent",
        "CPU use each worker reports (a Python worker: one core's %; locusta: % of its CPUs).",
        "gauge",
    );
    for w in workers {
        out.sample(
            "locusta_worker_cpu_percent",
            &[("worker", &w.id)],
            w.cpu_percent,
        );
    }
    out.family("locusta_worker_users", "Users each worker runs.", "gauge");
    for w in workers {
        out.sample(
            "locusta_worker_users",
            &[("worker", &w.id)],
            f64::from(w.users),
        );
    }
}

/// The text being written.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// A family's HELP and TYPE lines.
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape_label(value));
            }
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(&format_value(value));
        self.text.push('\n');
    }
}

/// A label value as the format wants it: `\`, `"` and newline escaped.
fn escape_label(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.into()
}

/// HELP text escapes only `\` and newline.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Go's float syntax as Prometheus reads it (Rust writes `inf`, `NaN`).
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape_label("/plain"), "/plain");
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
    }

    #[test]
    fn values_in_prometheus_float_syntax() {
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
    }

    #[test]
    fn buckets_are_cumulative_and_exact_at_their_bounds() {
        let mut h = new_histogram();
        // 1 ms exactly (≤ 0.001), 1.001 ms (> 0.001), 7 ms, 3 s, 20 s.
        for us in [1_000u64, 1_001, 7_000, 3_000_000, 20_000_000] {
            h.record(us).unwrap();
        }
        let (cumulative, sum_us) = buckets(&h);
        let le = |bound: &str| {
            let i = BUCKETS.iter().position(|(_, l)| *l == bound).unwrap();
            cumulative[i]
        };
        assert_eq!(le("0.001"), 1);
        assert_eq!(le("0.0025"), 2);
        assert_eq!(le("0.005"), 2);
        assert_eq!(le("0.01"), 3);
        assert_eq!(le("2.5"), 3);
        assert_eq!(le("5"), 4);
        assert_eq!(le("10"), 4, "20 s lies above the last bound: only in +Inf");
        assert!(cumulative.windows(2).all(|w| w[0] <= w[1]));
        let exact = (1_000 + 1_001 + 7_000 + 3_000_000 + 20_000_000) as f64;
        assert!(
            (sum_us - exact).abs() <= exact * 0.001,
            "{sum_us} vs {exact}"
        );
    }

    #[test]
    fn samples_carry_their_labels_in_order() {
        let mut out = Exposition::default();
        out.family("x_total", "Things.", "counter");
        out.sample("x_total", &[("method", "GET"), ("name", "a\"b")], 2.0);
        out.sample("y", &[], 0.5);
        assert_eq!(
            out.text,
            "# HELP x_total Things.\n# TYPE x_total counter\n\
             x_total{method=\"GET\",name=\"a\\\"b\"} 2\ny 0.5\n"
        );
    }
}
