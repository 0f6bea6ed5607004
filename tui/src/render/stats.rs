//! The Stats view: Locust's request table with the Aggregated row.
//!
//! Owns the columns (type, name, requests, failures, median, p95, p99,
//! average, min, max, average size, current RPS, failures/s), their widths
//! (fitted to the numbers; on narrow terminals the least useful columns go
//! first), sorting by any column, and scrolling the endpoint rows while the
//! Aggregated row stays in view.

use std::cmp::Ordering;

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{dim, header_style, range_note};
use crate::app::{App, SortColumn, View};
use crate::format;
use crate::model::{DashboardSnapshot, StatsRow};

/// Lines besides the endpoint rows: column header, separator, Aggregated.
pub const CHROME: usize = 3;

/// The name column never gets narrower than this while a column can go.
const NAME_MIN: usize = 24;

/// Columns dropped on narrow terminals, first to go first.
const DROP_ORDER: [SortColumn; 4] = [
    SortColumn::Size,
    SortColumn::Min,
    SortColumn::Max,
    SortColumn::P99,
];

fn title(col: SortColumn) -> &'static str {
    match col {
        SortColumn::Type => "Type",
        SortColumn::Name => "Name",
        SortColumn::Requests => "Reqs",
        SortColumn::Failures => "Fails",
        SortColumn::Median => "Med",
        SortColumn::P95 => "p95",
        SortColumn::P99 => "p99",
        SortColumn::Average => "Avg",
        SortColumn::Min => "Min",
        SortColumn::Max => "Max",
        SortColumn::Size => "Size",
        SortColumn::Rps => "RPS",
        SortColumn::FailPerSec => "Fail/s",
    }
}

fn cell(row: &StatsRow, col: SortColumn) -> String {
    match col {
        SortColumn::Type => row.method.clone(),
        SortColumn::Name => row.name.clone(),
        SortColumn::Requests => row.requests.to_string(),
        SortColumn::Failures => row.failures.to_string(),
        SortColumn::Median => format::ms(row.median_ms),
        SortColumn::P95 => format::ms(row.p95_ms),
        SortColumn::P99 => format::ms(row.p99_ms),
        SortColumn::Average => format::ms(row.avg_ms),
        SortColumn::Min => format::ms(row.min_ms),
        SortColumn::Max => format::ms(row.max_ms),
        SortColumn::Size => format::size(row.avg_size),
        SortColumn::Rps => format::rate(row.current_rps),
        SortColumn::FailPerSec => format::rate(row.current_fail_per_sec),
    }
}

fn number(row: &StatsRow, col: SortColumn) -> f64 {
    match col {
        SortColumn::Type | SortColumn::Name => 0.0,
        SortColumn::Requests => row.requests as f64,
        SortColumn::Failures => row.failures as f64,
        SortColumn::Median => row.median_ms,
        SortColumn::P95 => row.p95_ms,
        SortColumn::P99 => row.p99_ms,
        SortColumn::Average => row.avg_ms,
        SortColumn::Min => row.min_ms,
        SortColumn::Max => row.max_ms,
        SortColumn::Size => row.avg_size,
        SortColumn::Rps => row.current_rps,
        SortColumn::FailPerSec => row.current_fail_per_sec,
    }
}

/// Row indexes in display order: by `col`, ties in Locust's order.
pub fn sorted(rows: &[StatsRow], col: SortColumn, descending: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..rows.len()).collect();
    let cmp = |a: &usize, b: &usize| -> Ordering {
        let (a, b) = (&rows[*a], &rows[*b]);
        match col {
            SortColumn::Type => (&a.method, &a.name).cmp(&(&b.method, &b.name)),
            SortColumn::Name => (&a.name, &a.method).cmp(&(&b.name, &b.method)),
            _ => number(a, col).total_cmp(&number(b, col)),
        }
    };
    if descending {
        idx.sort_by(|a, b| cmp(b, a));
    } else {
        idx.sort_by(cmp);
    }
    idx
}

/// The columns shown at `width` and the name column's width.
fn layout(widths: &[usize; 13], width: usize) -> (Vec<SortColumn>, usize) {
    let mut cols: Vec<SortColumn> = SortColumn::ALL.to_vec();
    let name_room = |cols: &[SortColumn]| {
        let fixed: usize = cols
            .iter()
            .filter(|c| **c != SortColumn::Name)
            .map(|c| widths[*c as usize] + 1)
            .sum();
        width.saturating_sub(fixed + 1)
    };
    for drop in DROP_ORDER {
        if name_room(&cols) >= NAME_MIN {
            break;
        }
        cols.retain(|c| *c != drop);
    }
    let name = name_room(&cols).max(title(SortColumn::Name).len());
    (cols, name)
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, snap: &DashboardSnapshot) {
    if area.height == 0 {
        return;
    }
    let order = sorted(&snap.rows, app.sort, app.descending);
    let cells: Vec<[String; 13]> = snap
        .rows
        .iter()
        .chain([&snap.aggregated])
        .map(|r| SortColumn::ALL.map(|c| cell(r, c)))
        .collect();
    let arrow = if app.descending { "▼" } else { "▲" };
    let heads = SortColumn::ALL.map(|c| {
        if c == app.sort {
            format!("{}{arrow}", title(c))
        } else {
            title(c).to_string()
        }
    });
    let mut widths = [0usize; 13];
    for (i, w) in widths.iter_mut().enumerate() {
        *w = cells
            .iter()
            .map(|r| r[i].chars().count())
            .chain([heads[i].chars().count()])
            .max()
            .unwrap_or(0);
    }
    let (cols, name_w) = layout(&widths, area.width as usize);
    let width_of = |c: SortColumn| {
        if c == SortColumn::Name {
            name_w
        } else {
            widths[c as usize]
        }
    };

    let line = |texts: &dyn Fn(SortColumn) -> (String, Style), base: Style| -> Line<'static> {
        let mut spans = vec![Span::raw(" ")];
        for &c in &cols {
            let (text, style) = texts(c);
            let w = width_of(c);
            let text = match c {
                SortColumn::Type => format!("{:<w$}", format::fit(&text, w)),
                SortColumn::Name => format!("{:<w$}", format::fit_middle(&text, w)),
                _ => format!("{text:>w$}"),
            };
            spans.push(Span::styled(text, base.patch(style)));
            spans.push(Span::raw(" "));
        }
        Line::from(spans)
    };

    let visible = area.height.saturating_sub(CHROME as u16) as usize;
    let first = app
        .scroll(View::Stats)
        .min(order.len().saturating_sub(visible));
    let mut lines = Vec::with_capacity(visible + CHROME);
    lines.push(line(
        &|c| {
            let style = if c == app.sort {
                Style::new().fg(Color::Cyan)
            } else {
                Style::new()
            };
            (heads[c as usize].clone(), style)
        },
        header_style(),
    ));
    for &i in order.iter().skip(first).take(visible) {
        let row = &snap.rows[i];
        lines.push(line(
            &|c| (cells[i][c as usize].clone(), fail_style(row, c)),
            Style::new(),
        ));
    }
    if order.is_empty() && visible > 0 {
        lines.push(Line::from(Span::styled(" no requests yet", dim())));
    }
    let note = range_note(first, visible, order.len());
    let rule = (area.width as usize).saturating_sub(note.chars().count() + 3);
    lines.push(Line::from(vec![
        Span::styled(format!(" ──{note}"), dim()),
        Span::styled("─".repeat(rule), dim()),
    ]));
    let agg = cells.len() - 1;
    lines.push(line(
        &|c| {
            (
                cells[agg][c as usize].clone(),
                fail_style(&snap.aggregated, c),
            )
        },
        Style::new().add_modifier(Modifier::BOLD),
    ));
    frame.render_widget(Paragraph::new(lines), area);
}

fn fail_style(row: &StatsRow, col: SortColumn) -> Style {
    let failing = match col {
        SortColumn::Failures => row.failures > 0,
        SortColumn::FailPerSec => row.current_fail_per_sec > 0.0,
        _ => false,
    };
    if failing {
        Style::new().fg(Color::Red)
    } else {
        Style::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, method: &str, requests: u64, p95: f64) -> StatsRow {
        StatsRow {
            method: method.into(),
            name: name.into(),
            requests,
            p95_ms: p95,
            ..StatsRow::default()
        }
    }

    #[test]
    fn sorting_keeps_locust_order_on_ties() {
        let rows = vec![
            row("/a", "GET", 5, 1.0),
            row("/a", "POST", 9, 3.0),
            row("/b", "GET", 5, 2.0),
        ];
        assert_eq!(sorted(&rows, SortColumn::Name, false), [0, 1, 2]);
        assert_eq!(sorted(&rows, SortColumn::Name, true), [2, 1, 0]);
        assert_eq!(sorted(&rows, SortColumn::Type, false), [0, 2, 1]);
        assert_eq!(sorted(&rows, SortColumn::Requests, true), [1, 0, 2]);
        assert_eq!(sorted(&rows, SortColumn::Requests, false), [0, 2, 1]);
        assert_eq!(sorted(&rows, SortColumn::P95, true), [1, 2, 0]);
    }

    #[test]
    fn narrow_terminals_drop_size_min_max_then_p99() {
        let widths = [4, 4, 6, 5, 4, 4, 4, 4, 4, 4, 4, 6, 6];
        let (cols, name) = layout(&widths, 200);
        assert_eq!(cols.len(), 13);
        assert!(name > 100);
        let (cols, name) = layout(&widths, 80);
        assert!(name >= NAME_MIN, "{name}");
        assert!(!cols.contains(&SortColumn::Size));
        let (cols, _) = layout(&widths, 50);
        for c in DROP_ORDER {
            assert!(!cols.contains(&c), "{c:?}");
        }
    }
}
