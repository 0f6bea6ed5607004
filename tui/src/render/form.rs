//! The start / edit form: users and spawn rate, typed in, over the view.
//!
//! Owns drawing the [`Form`] (title by kind, the focused field marked with
//! `›` and a block cursor, the last error, the keys); what typing does is
//! the state machine's (`app`).

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use super::{centered, dim};
use crate::app::{Form, FormField, FormKind};
use crate::format;
use crate::model::DashboardSnapshot;

const WIDTH: u16 = 56;
const FIELD_W: usize = 10;

pub fn render(frame: &mut Frame, area: Rect, form: &Form, snap: &DashboardSnapshot) {
    let title = match form.kind {
        FormKind::Start => " Start new swarm ",
        FormKind::Edit => " Edit running swarm ",
    };
    let field = |label: &str, value: &str, which: FormField| -> Line<'static> {
        let focused = form.focus == which;
        let marker = if focused { " › " } else { "   " };
        let mut spans = vec![
            Span::styled(marker.to_string(), Style::new().fg(Color::Cyan)),
            Span::raw(format!("{label:<32}")),
        ];
        let boxed = Style::new().add_modifier(Modifier::UNDERLINED);
        spans.push(Span::styled(value.to_string(), boxed));
        if focused {
            spans.push(Span::styled(
                " ",
                Style::new().add_modifier(Modifier::REVERSED),
            ));
        }
        let pad = FIELD_W.saturating_sub(value.len() + usize::from(focused));
        spans.push(Span::styled(" ".repeat(pad), boxed));
        Line::from(spans)
    };
    let mut lines = vec![
        Line::raw(""),
        Line::styled(
            format!("   host  {}", format::fit(&snap.host, WIDTH as usize - 11)),
            dim(),
        ),
        Line::raw(""),
        field("Number of users (peak)", &form.users, FormField::Users),
        field("Ramp up (users started/s)", &form.rate, FormField::Rate),
        Line::raw(""),
    ];
    lines.push(match &form.error {
        Some(e) => Line::styled(format!("   {e}"), Style::new().fg(Color::Red)),
        None => Line::raw(""),
    });
    let go = match form.kind {
        FormKind::Start => "start",
        FormKind::Edit => "apply",
    };
    lines.push(Line::from(vec![
        Span::styled("   Enter", Style::new().add_modifier(Modifier::BOLD)),
        Span::styled(format!(" {go}  "), dim()),
        Span::styled("Tab", Style::new().add_modifier(Modifier::BOLD)),
        Span::styled(" next field  ", dim()),
        Span::styled("Esc", Style::new().add_modifier(Modifier::BOLD)),
        Span::styled(" close  ", dim()),
        Span::styled("q", Style::new().add_modifier(Modifier::BOLD)),
        Span::styled(" quit", dim()),
    ]));
    let height = lines.len() as u16 + 2;
    let rect = centered(area, WIDTH, height);
    frame.render_widget(Clear, rect);
    let block = Block::new().borders(Borders::ALL).title(title);
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}
