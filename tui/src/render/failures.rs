//! The Failures view: each distinct `(method, name, error)` with how often
//! it happened, most frequent first (Locust's Failures tab).
//!
//! Owns the failure table's columns and scrolling.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{dim, header_style, range_note};
use crate::app::{App, View};
use crate::format;
use crate::model::DashboardSnapshot;

/// Lines besides the failure rows: the column header and the range line.
pub const CHROME: usize = 2;

pub fn render(frame: &mut Frame, area: Rect, app: &App, snap: &DashboardSnapshot) {
    let rows = &snap.failures;
    if rows.is_empty() {
        let text = Line::from(Span::styled(" no failures", dim()));
        frame.render_widget(Paragraph::new(text), area);
        return;
    }
    let count_w = rows
        .iter()
        .map(|f| f.occurrences.to_string().len())
        .chain(["# fails".len()])
        .max()
        .unwrap_or(0);
    let method_w = rows
        .iter()
        .map(|f| f.method.len())
        .chain(["Method".len()])
        .max()
        .unwrap_or(0);
    let width = area.width as usize;
    let rest = width.saturating_sub(count_w + method_w + 4);
    let longest_name = rows
        .iter()
        .map(|f| f.name.chars().count())
        .max()
        .unwrap_or(0);
    let name_w = longest_name.max(4).min(rest * 2 / 5);
    let error_w = rest.saturating_sub(name_w + 1);

    let visible = (area.height as usize).saturating_sub(CHROME);
    let first = app
        .scroll(View::Failures)
        .min(rows.len().saturating_sub(visible));
    let mut lines = vec![Line::styled(
        format!(
            " {:>count_w$} {:<method_w$} {:<name_w$} {}",
            "# fails", "Method", "Name", "Error"
        ),
        header_style(),
    )];
    for f in rows.iter().skip(first).take(visible) {
        lines.push(Line::from(vec![
            Span::styled(
                format!(" {:>count_w$} ", f.occurrences),
                Style::new().fg(Color::Red),
            ),
            Span::raw(format!(
                "{:<method_w$} {:<name_w$} ",
                f.method,
                format::fit(&f.name, name_w)
            )),
            Span::raw(format::fit(&f.error, error_w)),
        ]));
    }
    let note = range_note(first, visible, rows.len());
    if !note.is_empty() {
        lines.push(Line::styled(format!(" ──{note}──"), dim()));
    }
    frame.render_widget(Paragraph::new(lines), area);
}
