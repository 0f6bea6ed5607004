//! The help overlay: every key the dashboard knows, and what the Stats
//! columns mean.
//!
//! Owns the key list's text ([`KEYS`], also what the tests check against
//! the state machine) and drawing it in a box over the current view.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use super::{centered, dim};
use crate::app::App;

/// Every key and what it does (the `+`/`-` step is filled in at render).
pub const KEYS: [(&str, &str); 13] = [
    (
        "s, Enter",
        "start the swarm (users and rate from the form or flags)",
    ),
    ("+ / -", "raise / lower the target users by {step}"),
    ("e", "edit users and spawn rate"),
    ("x", "stop the swarm"),
    ("r", "reset the stats"),
    (
        "Tab, 1-5",
        "next view / Stats Charts Failures Exceptions Workers",
    ),
    ("Shift-Tab", "previous view"),
    ("< / >", "sort Stats by the previous / next column"),
    ("i", "invert the sort order"),
    ("↑ ↓ j k", "scroll a line"),
    ("PgUp PgDn", "scroll a page (Home, End: top, bottom)"),
    ("?", "this help (any key closes it)"),
    ("q, Ctrl-C", "quit: stop, write the --csv reports, exit"),
];

const NOTE: &str = "Times in ms, Size in bytes; RPS and Fail/s over the last 10 s.";

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let key_w = KEYS
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut lines = vec![Line::raw("")];
    for (key, what) in KEYS {
        let what = what.replace("{step}", &app.step.to_string());
        lines.push(Line::from(vec![
            Span::styled(
                format!(" {key:<key_w$}  "),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::raw(what),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(format!(" {NOTE}"), dim()));
    let width = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 3;
    let height = lines.len() as u16 + 2;
    let rect = centered(area, width, height);
    frame.render_widget(Clear, rect);
    let block = Block::new().borders(Borders::ALL).title(" Keys ");
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}
