//! The Exceptions view: script errors with their count, message, the
//! nodes they happened on and the Lua traceback under each.
//!
//! Owns how an exception is laid out in lines ([`line_count`] tells the
//! state machine how far it can scroll) and scrolling through them.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{dim, header_style, range_note};
use crate::app::{App, View};
use crate::format;
use crate::model::{DashboardSnapshot, ExceptionRow};

/// Lines besides the exception lines: the column header and range line.
pub const CHROME: usize = 2;

/// Width of the count column.
const COUNT_W: usize = 7;

/// Traceback lines worth showing: not blank, tabs as two spaces.
fn traceback(e: &ExceptionRow) -> impl Iterator<Item = String> + '_ {
    e.traceback
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim_end().replace('\t', "  "))
}

/// Lines the exceptions take: one per exception plus its traceback.
pub fn line_count(exceptions: &[ExceptionRow]) -> usize {
    exceptions.iter().map(|e| 1 + traceback(e).count()).sum()
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, snap: &DashboardSnapshot) {
    if snap.exceptions.is_empty() {
        let text = Line::from(Span::styled(" no exceptions", dim()));
        frame.render_widget(Paragraph::new(text), area);
        return;
    }
    let width = area.width as usize;
    let mut all: Vec<Line> = Vec::new();
    for e in &snap.exceptions {
        let nodes = format!("  [{}]", e.nodes.join(", "));
        let room = width.saturating_sub(COUNT_W + 3 + nodes.chars().count());
        all.push(Line::from(vec![
            Span::styled(
                format!(" {:>COUNT_W$}  ", e.count),
                Style::new().fg(Color::Red),
            ),
            Span::styled(
                format::fit(&e.message, room),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::styled(nodes, dim()),
        ]));
        for line in traceback(e) {
            let text = format::fit(&line, width.saturating_sub(COUNT_W + 5));
            all.push(Line::styled(format!(" {:COUNT_W$}    {text}", ""), dim()));
        }
    }
    let visible = (area.height as usize).saturating_sub(CHROME);
    let first = app
        .scroll(View::Exceptions)
        .min(all.len().saturating_sub(visible));
    let total = all.len();
    let mut lines = vec![Line::styled(
        format!(" {:>COUNT_W$}  Message / traceback  [nodes]", "Count"),
        header_style(),
    )];
    lines.extend(all.into_iter().skip(first).take(visible));
    let note = range_note(first, visible, total);
    if !note.is_empty() {
        lines.push(Line::styled(format!(" ──{note}──"), dim()));
    }
    frame.render_widget(Paragraph::new(lines), area);
}
