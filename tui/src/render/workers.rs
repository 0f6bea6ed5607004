//! The Workers view (on a cluster master): each worker's id, state, users,
//! CPU and memory, with the totals under them.
//!
//! Owns the worker table's columns and scrolling.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{dim, header_style, range_note};
use crate::app::{App, View};
use crate::format;
use crate::model::{DashboardSnapshot, WorkerRow};

/// Lines besides the worker rows: column header, separator, totals.
pub const CHROME: usize = 3;

/// Above this a worker is too busy to measure well (Locust warns at 90 %).
const CPU_WARN: f64 = 90.0;

fn state_style(state: &str) -> Style {
    match state {
        "running" => Style::new().fg(Color::Green),
        "spawning" => Style::new().fg(Color::Yellow),
        "missing" => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        _ => Style::new(),
    }
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, snap: &DashboardSnapshot) {
    let workers: &[WorkerRow] = snap.workers();
    if workers.is_empty() {
        let text = Line::from(Span::styled(" no workers connected", dim()));
        frame.render_widget(Paragraph::new(text), area);
        return;
    }
    let width = area.width as usize;
    let (state_w, users_w, cpu_w, mem_w) = (9, 7, 7, 10);
    let longest = workers
        .iter()
        .map(|w| w.id.chars().count())
        .max()
        .unwrap_or(0);
    let id_w = width
        .saturating_sub(state_w + users_w + cpu_w + mem_w + 6)
        .min(longest.max("3 workers".len()) + 2)
        .max(2);
    let visible = (area.height as usize).saturating_sub(CHROME);
    let first = app
        .scroll(View::Workers)
        .min(workers.len().saturating_sub(visible));
    let mut lines = vec![Line::styled(
        format!(
            " {:<id_w$} {:<state_w$} {:>users_w$} {:>cpu_w$} {:>mem_w$}",
            "Worker", "State", "Users", "CPU %", "Memory"
        ),
        header_style(),
    )];
    for w in workers.iter().skip(first).take(visible) {
        let cpu_style = if w.cpu_percent > CPU_WARN {
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        };
        lines.push(Line::from(vec![
            Span::raw(format!(" {:<id_w$} ", format::fit(&w.id, id_w))),
            Span::styled(format!("{:<state_w$} ", w.state), state_style(&w.state)),
            Span::raw(format!("{:>users_w$} ", w.users)),
            Span::styled(format!("{:>cpu_w$.1} ", w.cpu_percent), cpu_style),
            Span::raw(format!("{:>mem_w$}", format::bytes(w.memory_bytes))),
        ]));
    }
    let note = range_note(first, visible, workers.len());
    let rule = width.saturating_sub(note.chars().count() + 3);
    lines.push(Line::from(vec![
        Span::styled(format!(" ──{note}"), dim()),
        Span::styled("─".repeat(rule), dim()),
    ]));
    let users: u32 = workers.iter().map(|w| w.users).sum();
    let cpu = workers.iter().map(|w| w.cpu_percent).sum::<f64>() / workers.len() as f64;
    let mem: u64 = workers.iter().map(|w| w.memory_bytes).sum();
    let total = format!("{} workers", workers.len());
    lines.push(Line::styled(
        format!(
            " {:<id_w$} {:<state_w$} {:>users_w$} {:>cpu_w$.1} {:>mem_w$}",
            total,
            "",
            users,
            cpu,
            format::bytes(mem)
        ),
        Style::new().add_modifier(Modifier::BOLD),
    ));
    frame.render_widget(Paragraph::new(lines), area);
}
