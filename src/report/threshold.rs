//! `--threshold EXPR`: pass/fail rules on the final stats (k6's thresholds,
//! Gatling's assertions), their grammar and their verdicts.
//!
//! Grammar: `[NAME:] METRIC OP VALUE`, e.g. `p95<300ms`, `fail_ratio<1%`,
//! `GET /api/cart: p99.9<=1.5s`, `http://x/a: max<2s`. This module owns
//! parsing ([`parse`], clap's value parser: a bad expression is a usage
//! error before the run), judging the final report ([`evaluate`]), and
//! telling when a threshold can no longer pass mid-run ([`breached`], for
//! `--threshold-abort`). It does not own when to check or how the exit
//! status is chosen (the front ends, `headless::finish`).
//!
//! Every latency is read from the rows' HDR histograms, so `p99.9` is as
//! exact as the tables' percentiles (any `pNN[.NN]` works, not only the
//! tables' columns).

use hdrhistogram::Histogram;

use super::FinalReport;
use crate::http::Method;
use crate::stats::{EntryHistogram, EntryRow, StatsView};

/// What a threshold measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// `pNN[.NN]`: the latency percentile, in (0, 100]; `p100` is `max`.
    Percentile(f64),
    Avg,
    Max,
    /// Requests per second over the run (Locust's `total_rps`).
    Rps,
    /// Failures / requests, 0..=1.
    FailRatio,
    Failures,
    Requests,
}

/// What kind of value a metric compares against, i.e. which units fit.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// Milliseconds; `us`, `ms`, `s`, or a plain number of ms.
    Time,
    /// A fraction; `%` or a plain number 0..=1.
    Ratio,
    /// A whole number of requests.
    Count,
    /// Per second; a plain number or `/s`.
    Rate,
}

const METRICS_HELP: &str =
    "use p50 … p99.99 (any pNN), avg, max, rps, fail_ratio, failures or requests";

impl Metric {
    fn parse(word: &str) -> Result<Metric, String> {
        let lower = word.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "avg" => Metric::Avg,
            "max" => Metric::Max,
            "rps" => Metric::Rps,
            "fail_ratio" => Metric::FailRatio,
            "failures" => Metric::Failures,
            "requests" => Metric::Requests,
            p if p.starts_with('p') && p.len() > 1 => {
                let digits = &p[1..];
                let plain = digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                    && !digits.starts_with('.')
                    && !digits.ends_with('.')
                    && digits.matches('.').count() <= 1;
                let q: f64 = match digits.parse() {
                    Ok(q) if plain => q,
                    _ => return Err(format!("unknown metric '{word}' ({METRICS_HELP})")),
                };
                if !(q > 0.0 && q <= 100.0) {
                    return Err(format!(
                        "'{word}': a percentile is above 0 and at most 100 (p50, p99.9, p100 = max)"
                    ));
                }
                Metric::Percentile(q)
            }
            _ => return Err(format!("unknown metric '{word}' ({METRICS_HELP})")),
        })
    }

    fn kind(self) -> Kind {
        match self {
            Metric::Percentile(_) | Metric::Avg | Metric::Max => Kind::Time,
            Metric::FailRatio => Kind::Ratio,
            Metric::Failures | Metric::Requests => Kind::Count,
            Metric::Rps => Kind::Rate,
        }
    }

    /// The metric as written in verdicts: `p95`, `p99.9`, `fail_ratio`.
    pub fn label(self) -> String {
        match self {
            Metric::Percentile(q) => format!("p{q}"),
            Metric::Avg => "avg".into(),
            Metric::Max => "max".into(),
            Metric::Rps => "rps".into(),
            Metric::FailRatio => "fail_ratio".into(),
            Metric::Failures => "failures".into(),
            Metric::Requests => "requests".into(),
        }
    }

    /// `value` (in the metric's base unit) as people read it.
    fn show(self, value: f64) -> String {
        match self.kind() {
            Kind::Time => format!("{} ms", super::format_ms(value)),
            Kind::Ratio => format!("{}%", trim_float(value * 100.0, 2)),
            Kind::Count => format!("{value:.0}"),
            Kind::Rate => format!("{} req/s", trim_float(value, 1)),
        }
    }
}

/// `x` with at most `decimals` decimals, trailing zeros dropped.
fn trim_float(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Op::Lt => measured < limit,
            Op::Le => measured <= limit,
            Op::Gt => measured > limit,
            Op::Ge => measured >= limit,
        }
    }
}

/// Which stats row a threshold judges.
#[derive(Clone, Debug, PartialEq)]
pub enum RowRef {
    /// No NAME, or NAME `Aggregated`.
    Aggregated,
    /// `GET /api/cart` (method and name) or `/api/cart` (every method).
    Named {
        /// As written (trimmed): also matched as a whole name when no row
        /// has the method and the rest (a name that starts with `GET `).
        text: String,
        /// Parsed from a leading method word, when there is one.
        method: Option<(Method, String)>,
    },
}

impl RowRef {
    fn parse(text: &str) -> RowRef {
        if text.eq_ignore_ascii_case("Aggregated") {
            return RowRef::Aggregated;
        }
        let method = text.split_once(' ').and_then(|(m, rest)| {
            let rest = rest.trim_start();
            Method::parse(m)
                .filter(|_| !rest.is_empty())
                .map(|m| (m, rest.to_string()))
        });
        RowRef::Named {
            text: text.to_string(),
            method,
        }
    }
}

/// One parsed `--threshold` expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// As given, trimmed (what verdicts print).
    pub text: String,
    pub row: RowRef,
    pub metric: Metric,
    pub op: Op,
    /// In the metric's base unit: ms for latencies, a fraction for
    /// `fail_ratio`, a count, or requests per second.
    pub value: f64,
}

impl Threshold {
    /// Whether the threshold, once failed mid-run, can never pass again:
    /// counters only grow (`failures`, `requests`) and so does `max`, so
    /// `<`/`<=` on them is lost for good once crossed.
    pub fn fails_for_good(&self) -> bool {
        let growing = match self.metric {
            Metric::Failures | Metric::Requests | Metric::Max => true,
            Metric::Percentile(q) => q >= 100.0,
            _ => false,
        };
        growing && matches!(self.op, Op::Lt | Op::Le)
    }
}

/// Parse one expression (clap's value parser: clap shows the error with
/// the flag, and the run does not start: exit 2).
pub fn parse(text: &str) -> Result<Threshold, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty threshold (example: 'p95<300ms')".into());
    }
    let (name, expr) = match split_name(text) {
        Some((name, expr)) => {
            let name = name.trim();
            if name.is_empty() {
                return Err(format!(
                    "empty row name before ':' in '{text}' (drop the ':' for the Aggregated row)"
                ));
            }
            (Some(name), expr)
        }
        None => (None, text),
    };
    let Some(at) = expr.find(['<', '>']) else {
        return Err(match expr.find(['=', '!']) {
            Some(i) => {
                let op: String = expr[i..]
                    .chars()
                    .take_while(|c| "=!".contains(*c))
                    .collect();
                format!("'{op}' is not an operator here (use <, <=, > or >=)")
            }
            None => format!("no operator in '{expr}' (use <, <=, > or >=, as in 'p95<300ms')"),
        });
    };
    let word = expr[..at].trim();
    let (op, rest) = match (&expr[at..at + 1], expr[at + 1..].strip_prefix('=')) {
        ("<", Some(rest)) => (Op::Le, rest),
        ("<", None) => (Op::Lt, &expr[at + 1..]),
        (_, Some(rest)) => (Op::Ge, rest),
        (_, None) => (Op::Gt, &expr[at + 1..]),
    };
    if word.is_empty() {
        return Err(format!(
            "no metric before the operator in '{expr}' ({METRICS_HELP})"
        ));
    }
    if !is_metric_word(word) {
        return Err(format!(
            "'{word}' is not a metric ({METRICS_HELP}); a row name goes before ': ', \
             as in 'GET /api: p95<300ms'"
        ));
    }
    let metric = Metric::parse(word)?;
    let value = parse_value(metric, word, rest.trim())?;
    Ok(Threshold {
        text: text.to_string(),
        row: name.map_or(RowRef::Aggregated, RowRef::parse),
        metric,
        op,
        value,
    })
}

/// `NAME: EXPR` split at the last ':' that a metric and an operator follow
/// (names may hold ':' themselves: `http://x/a: p95<1s`); `None` when no
/// ':' does (a plain `p95<1s`).
fn split_name(text: &str) -> Option<(&str, &str)> {
    text.char_indices()
        .rev()
        .filter(|&(_, c)| c == ':')
        .map(|(i, _)| (&text[..i], &text[i + 1..]))
        .find(|(_, rest)| {
            let rest = rest.trim_start();
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(rest.len());
            let word = &rest[..end];
            word.starts_with(|c: char| c.is_ascii_alphabetic())
                && rest[end..].trim_start().starts_with(['<', '>', '=', '!'])
        })
}

fn is_metric_word(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_alphabetic())
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// `300ms`, `1.5s`, `1%`, `0.01`, `20`, `100/s`: in the metric's base unit.
fn parse_value(metric: Metric, word: &str, text: &str) -> Result<f64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim());
    if text.is_empty() {
        return Err(format!(
            "no value after the operator (example: '{word}<{}')",
            example(metric)
        ));
    }
    let n: f64 = match number.parse() {
        Ok(n) => n,
        _ if text.starts_with('-') => {
            return Err(format!("'{text}': {word} cannot be negative"));
        }
        _ => {
            return Err(format!(
                "'{text}' is not a number (example: '{word}<{}')",
                example(metric)
            ))
        }
    };
    let unknown = |hint: &str| {
        if ["us", "µs", "ms", "s", "%", "/s"].contains(&unit) {
            format!("'{text}': '{unit}' does not fit {word} ({hint})")
        } else {
            format!("'{text}': unknown unit '{unit}' ({hint})")
        }
    };
    match metric.kind() {
        Kind::Time => {
            let hint = "use us, ms, s, or a plain number of ms";
            let scale = match unit {
                "" | "ms" => 1.0,
                "us" | "µs" => 0.001,
                "s" => 1000.0,
                _ => return Err(unknown(hint)),
            };
            Ok(n * scale)
        }
        Kind::Ratio => match unit {
            "%" if n <= 100.0 => Ok(n / 100.0),
            "%" => Err(format!("'{text}': {word} is at most 100%")),
            "" if n <= 1.0 => Ok(n),
            "" => Err(format!(
                "'{text}': {word} is a fraction from 0 to 1; write '{n}%' for percent"
            )),
            _ => Err(unknown("use % or a plain fraction such as 0.01")),
        },
        Kind::Count => match unit {
            "" if n.fract() == 0.0 => Ok(n),
            "" => Err(format!(
                "'{text}': {word} counts requests: use a whole number"
            )),
            _ => Err(unknown("a plain whole number")),
        },
        Kind::Rate => match unit {
            "" | "/s" => Ok(n),
            _ => Err(unknown("a plain number of requests per second")),
        },
    }
}

fn example(metric: Metric) -> &'static str {
    match metric.kind() {
        Kind::Time => "300ms",
        Kind::Ratio => "1%",
        Kind::Count => "10",
        Kind::Rate => "100",
    }
}

/// A threshold's outcome on the final stats.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub threshold: Threshold,
    pub passed: bool,
    /// What was measured, in the metric's base unit; `None` when there was
    /// nothing to measure (no such row, no requests), which fails.
    pub measured: Option<f64>,
    /// The line printed for it: `PASS  p95<300ms  (p95 = 12.3 ms)`.
    pub line: String,
}

/// Judge every threshold on the final report, in the order given.
pub fn evaluate(thresholds: &[Threshold], report: &FinalReport) -> Vec<Verdict> {
    thresholds
        .iter()
        .map(|t| {
            let rows = select(&t.row, &report.stats);
            let measured = measure(t.metric, &t.row, &rows, |row| {
                histogram_of(row, &report.histograms)
            });
            let (passed, detail) = match &measured {
                Ok(v) => (
                    t.op.holds(*v, t.value),
                    format!(
                        "{} = {}{}",
                        t.metric.label(),
                        t.metric.show(*v),
                        over(&rows)
                    ),
                ),
                Err(why) => (false, why.clone()),
            };
            let word = if passed { "PASS" } else { "FAIL" };
            Verdict {
                threshold: t.clone(),
                passed,
                measured: measured.ok(),
                line: format!("{word}  {}  ({detail})", t.text),
            }
        })
        .collect()
}

/// For `--threshold-abort`: the first threshold that failed for good on
/// the stats so far (see [`Threshold::fails_for_good`]), as the line to
/// log. The others can still recover (a slow ramp's p95 is not the run's),
/// so they are judged at the end only.
pub fn breached(thresholds: &[Threshold], stats: &StatsView) -> Option<String> {
    thresholds
        .iter()
        .filter(|t| t.fails_for_good())
        .find_map(|t| {
            let rows = select(&t.row, stats);
            // Counters and max need no histogram.
            let v = measure(t.metric, &t.row, &rows, |_| None).ok()?;
            (!t.op.holds(v, t.value)).then(|| {
                format!(
                    "threshold '{}' can no longer pass ({} = {})",
                    t.text,
                    t.metric.label(),
                    t.metric.show(v)
                )
            })
        })
}

/// The rows a threshold judges: Aggregated; or the rows with that method
/// and name; or, when there are none, every row with the whole NAME as
/// its name (`/api/cart` for each method, or a name that starts with a
/// method word).
fn select<'a>(row: &RowRef, stats: &'a StatsView) -> Vec<&'a EntryRow> {
    let (text, method) = match row {
        RowRef::Aggregated => return vec![&stats.aggregated],
        RowRef::Named { text, method } => (text, method),
    };
    if let Some((m, name)) = method {
        let exact: Vec<&EntryRow> = stats
            .entries
            .iter()
            .filter(|e| e.method == Some(*m) && e.name == *name)
            .collect();
        if !exact.is_empty() {
            return exact;
        }
    }
    stats.entries.iter().filter(|e| e.name == *text).collect()
}

fn histogram_of<'a>(row: &EntryRow, all: &'a [EntryHistogram]) -> Option<&'a Histogram<u64>> {
    all.iter()
        .find(|h| h.method == row.method && h.name == row.name)
        .map(|h| &h.histogram)
}

/// ` over GET, POST /api/cart` when several rows were judged as one.
fn over(rows: &[&EntryRow]) -> String {
    if rows.len() < 2 {
        return String::new();
    }
    let methods: Vec<&str> = rows.iter().map(|r| r.method_str()).collect();
    format!(" over {} {}", methods.join(", "), rows[0].name)
}

/// The metric over `rows` taken as one (several methods of one name: their
/// counts summed, their histograms merged), or why it cannot be measured.
fn measure<'a>(
    metric: Metric,
    target: &RowRef,
    rows: &[&'a EntryRow],
    histogram: impl Fn(&'a EntryRow) -> Option<&'a Histogram<u64>>,
) -> Result<f64, String> {
    if rows.is_empty() {
        let name = match target {
            RowRef::Named { text, .. } => text.as_str(),
            RowRef::Aggregated => "Aggregated",
        };
        return Err(format!(
            "no such row: no request was named '{name}' (use the table's Name, or 'METHOD name')"
        ));
    }
    let requests: u64 = rows.iter().map(|r| r.num_requests).sum();
    let failures: u64 = rows.iter().map(|r| r.num_failures).sum();
    let max_ms = rows.iter().map(|r| r.max_ms).fold(0.0, f64::max);
    let q = match metric {
        Metric::Requests => return Ok(requests as f64),
        Metric::Failures => return Ok(failures as f64),
        Metric::Rps => return Ok(rows.iter().map(|r| r.total_rps).sum()),
        _ if requests == 0 => return Err("no requests to measure".into()),
        Metric::FailRatio => return Ok(failures as f64 / requests as f64),
        Metric::Avg => {
            let total: f64 = rows.iter().map(|r| r.avg_ms * r.num_requests as f64).sum();
            return Ok(total / requests as f64);
        }
        Metric::Max => return Ok(max_ms),
        Metric::Percentile(q) if q >= 100.0 => return Ok(max_ms),
        Metric::Percentile(q) => q,
    };
    let mut parts = rows.iter().filter_map(|r| histogram(r));
    let Some(first) = parts.next() else {
        return Err("no latency histogram for this row".into());
    };
    let mut merged;
    let h = match parts.next() {
        None => first,
        Some(second) => {
            merged = first.clone();
            for part in std::iter::once(second).chain(parts) {
                if merged.add(part).is_err() {
                    return Err("its rows' histograms cannot be merged".into());
                }
            }
            &merged
        }
    };
    if h.is_empty() {
        return Err("no response times recorded".into());
    }
    // As the tables: the bucket's upper edge, capped at the raw maximum.
    let max_us = (max_ms * 1000.0).round() as u64;
    Ok(h.value_at_quantile(q / 100.0).min(max_us) as f64 / 1000.0)
}

#[cfg(test)]
#[path = "threshold_tests.rs"]
mod tests;
