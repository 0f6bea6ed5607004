//! The Charts view: requests/s with failures/s, p50 and p95 latency, and
//! users, over the run's per-second history.
//!
//! Owns turning history points into chart series (thinned to about two
//! points per terminal cell, so a day-long run draws as fast as a minute),
//! the axes (zero-based, a little headroom, the span shown as `-5m00s` to
//! `now`) and the three stacked charts.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;

use super::dim;
use crate::format;
use crate::model::{DashboardSnapshot, HistoryPoint};

/// One line of a chart: its name, colour and value per point.
struct Series {
    name: &'static str,
    color: Color,
    value: fn(&HistoryPoint) -> f64,
    unit: &'static str,
}

pub fn render(frame: &mut Frame, area: Rect, snap: &DashboardSnapshot) {
    if snap.history.is_empty() {
        let text = Line::from(Span::styled(
            " no history yet: a point per second once the swarm starts",
            dim(),
        ));
        frame.render_widget(Paragraph::new(text), area);
        return;
    }
    let areas = Layout::vertical([
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
    ])
    .split(area);
    let charts: [&[Series]; 3] = [
        &[
            Series {
                name: "Requests/s",
                color: Color::Green,
                value: |p| p.rps,
                unit: "",
            },
            Series {
                name: "Failures/s",
                color: Color::Red,
                value: |p| p.fail_per_sec,
                unit: "",
            },
        ],
        &[
            Series {
                name: "p50",
                color: Color::Cyan,
                value: |p| p.p50_ms,
                unit: " ms",
            },
            Series {
                name: "p95",
                color: Color::Magenta,
                value: |p| p.p95_ms,
                unit: " ms",
            },
        ],
        &[Series {
            name: "Users",
            color: Color::Yellow,
            value: |p| f64::from(p.users),
            unit: "",
        }],
    ];
    for (series, area) in charts.iter().zip(areas.iter()) {
        chart(frame, *area, &snap.history, series);
    }
}

fn chart(frame: &mut Frame, area: Rect, history: &[HistoryPoint], series: &[Series]) {
    let last = history.last().copied().unwrap_or_default();
    let mut title = vec![Span::raw(" ")];
    for s in series {
        title.push(Span::styled(
            format!("{} ", s.name),
            Style::new().fg(s.color),
        ));
        let v = (s.value)(&last);
        let text = if s.unit.is_empty() && s.name == "Users" {
            format!("{v:.0}")
        } else if s.unit.is_empty() {
            format::rate(v)
        } else {
            format::ms(v)
        };
        title.push(Span::styled(
            format!("{text}{}  ", s.unit),
            Style::new().bold(),
        ));
    }
    let cap = usize::from(area.width).max(1) * 2;
    let data: Vec<Vec<(f64, f64)>> = series.iter().map(|s| thin(history, s.value, cap)).collect();
    let top = data.iter().flatten().map(|p| p.1).fold(0.0f64, f64::max);
    let top = nice_ceiling(top);
    let first = history.first().map_or(0, |p| p.unix_time);
    let span = last.unix_time.saturating_sub(first);
    let datasets = series
        .iter()
        .zip(&data)
        .map(|(s, d)| {
            Dataset::default()
                .name(s.name)
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(s.color))
                .data(d)
        })
        .collect();
    let x_axis = Axis::default()
        .bounds([0.0, (span as f64).max(1.0)])
        .labels([format!("-{}", format::span(span)), "now".to_string()])
        .style(dim());
    let y_axis = Axis::default()
        .bounds([0.0, top])
        .labels(["0".to_string(), format::axis(top)])
        .style(dim());
    let chart = Chart::new(datasets)
        .block(
            Block::new()
                .borders(Borders::TOP)
                .border_style(dim())
                .title(Line::from(title)),
        )
        .x_axis(x_axis)
        .y_axis(y_axis)
        .legend_position(None);
    frame.render_widget(chart, area);
}

/// The points of one series, x in seconds since the first point, averaged
/// in buckets so there are at most about `cap` of them.
fn thin(history: &[HistoryPoint], value: fn(&HistoryPoint) -> f64, cap: usize) -> Vec<(f64, f64)> {
    let first = history.first().map_or(0, |p| p.unix_time);
    let x = |p: &HistoryPoint| p.unix_time.saturating_sub(first) as f64;
    let per = history.len().div_ceil(cap.max(1)).max(1);
    if per == 1 {
        return history.iter().map(|p| (x(p), value(p))).collect();
    }
    history
        .chunks(per)
        .map(|c| {
            let sum: f64 = c.iter().map(value).sum();
            (x(&c[c.len() - 1]), sum / c.len() as f64)
        })
        .collect()
}

/// A round axis top just above `v`: 1, 2 or 5 times a power of ten.
fn nice_ceiling(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let v = v * 1.05;
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(0.9), 1.0);
        assert_eq!(nice_ceiling(1234.0), 2000.0);
        assert_eq!(nice_ceiling(2000.0), 2500.0);
        assert_eq!(nice_ceiling(45.0), 50.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
    }

    #[test]
    fn long_histories_are_thinned_to_the_width() {
        let history: Vec<HistoryPoint> = (0..86_400u64)
            .map(|t| HistoryPoint {
                unix_time: 1_000 + t,
                rps: (t % 2) as f64,
                ..HistoryPoint::default()
            })
            .collect();
        let d = thin(&history, |p| p.rps, 200);
        assert!(d.len() <= 200 && d.len() >= 190, "{}", d.len());
        assert!((d[0].1 - 0.5).abs() < 0.01, "averaged: {}", d[0].1);
        assert_eq!(d.last().unwrap().0, 86_399.0);
        let short = thin(&history[..10], |p| p.rps, 200);
        assert_eq!(short.len(), 10);
        assert_eq!(short[3], (3.0, 1.0));
    }
}
