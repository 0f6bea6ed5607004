//! Drawing one frame: the header, the view tabs, the current view, the
//! footer and any overlay (help, start/edit form).
//!
//! Owns the screen layout (which rows the header, tabs, body and footer
//! take, and so how many list rows each view shows: [`list_rows`]) and the
//! parts every view shares. Each view draws itself in its own module. It is
//! a pure function of the [`App`] and a [`DashboardSnapshot`]: no I/O, no
//! clock, so the same inputs give the same screen (the golden tests).

pub mod charts;
pub mod exceptions;
pub mod failures;
pub mod form;
pub mod help;
pub mod stats;
pub mod workers;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::{App, View};
use crate::format;
use crate::model::{DashboardSnapshot, RunState, Topology};

/// Rows above the body: two header lines and the tabs.
const TOP: u16 = 3;
/// Rows below the body: the footer.
const BOTTOM: u16 = 1;

/// Style of column headers in every list view.
pub(crate) fn header_style() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

pub(crate) fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// Height of the body on a terminal `height` rows high.
pub fn body_rows(height: u16) -> u16 {
    height.saturating_sub(TOP + BOTTOM)
}

/// How many list rows `view` shows on a terminal `height` rows high (for
/// scrolling): the body less the view's own header and footer lines.
pub fn list_rows(view: View, height: u16) -> usize {
    let body = body_rows(height) as usize;
    match view {
        View::Stats => body.saturating_sub(stats::CHROME),
        View::Charts => 0,
        View::Failures => body.saturating_sub(failures::CHROME),
        View::Exceptions => body.saturating_sub(exceptions::CHROME),
        View::Workers => body.saturating_sub(workers::CHROME),
    }
}

/// Draw the whole dashboard.
pub fn render(frame: &mut Frame, app: &App, snap: &DashboardSnapshot) {
    let area = frame.area();
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(TOP),
        Constraint::Fill(1),
        Constraint::Length(BOTTOM),
    ])
    .areas(area);
    let [head1, head2, tabs] = Layout::vertical([Constraint::Length(1); 3]).areas(top);
    frame.render_widget(Paragraph::new(status_line(snap)), head1);
    frame.render_widget(Paragraph::new(host_line(snap, head2.width)), head2);
    frame.render_widget(Paragraph::new(tab_line(app, snap)), tabs);
    match app.view {
        View::Stats => stats::render(frame, body, app, snap),
        View::Charts => charts::render(frame, body, snap),
        View::Failures => failures::render(frame, body, app, snap),
        View::Exceptions => exceptions::render(frame, body, app, snap),
        View::Workers => workers::render(frame, body, app, snap),
    }
    frame.render_widget(Paragraph::new(footer_line(app)), bottom);
    if let Some(f) = &app.form {
        form::render(frame, area, f, snap);
    } else if app.help {
        help::render(frame, area, app);
    }
}

fn state_style(state: RunState) -> Style {
    let color = match state {
        RunState::Ready => Color::Cyan,
        RunState::Spawning => Color::Yellow,
        RunState::Running => Color::Green,
        RunState::Stopping => Color::Magenta,
        RunState::Stopped => Color::Red,
    };
    Style::new()
        .fg(Color::Black)
        .bg(color)
        .add_modifier(Modifier::BOLD)
}

/// `locusta RUNNING  users 10/10  RPS 1234.5  fail 0.00%  0:01:23`
fn status_line(snap: &DashboardSnapshot) -> Line<'static> {
    let agg = &snap.aggregated;
    let label = |s: &'static str| Span::styled(s, dim());
    let value = |s: String| Span::styled(s, Style::new().bold());
    let fail_style = if agg.failures > 0 {
        Style::new().bold().fg(Color::Red)
    } else {
        Style::new().bold()
    };
    let mut spans = vec![
        Span::styled(" locusta ", Style::new().bold()),
        Span::styled(
            format!(" {} ", snap.state.as_str()),
            state_style(snap.state),
        ),
        label("  users "),
        value(format!("{}/{}", snap.users, snap.target_users)),
        label(if snap.shape.is_some() { "  shape " } else { "" }),
        value(snap.shape.clone().unwrap_or_default()),
        label("  RPS "),
        value(format::rate(agg.current_rps)),
        label("  fail "),
        Span::styled(format::percent(agg.fail_ratio()), fail_style),
        label("  elapsed "),
        value(format::clock(snap.elapsed)),
    ];
    spans.extend(open_model_spans(snap));
    Line::from(spans)
}

/// Open-model runs: `  rate 199.8/200.0/s  dropped 3  corrected p95 12.3 ms`
/// (dropped in red when any).
fn open_model_spans(snap: &DashboardSnapshot) -> Vec<Span<'static>> {
    let Some(open) = &snap.open_model else {
        return Vec::new();
    };
    let dropped_style = if open.dropped > 0 {
        Style::new().bold().fg(Color::Red)
    } else {
        Style::new().bold()
    };
    vec![
        Span::styled("  rate ", dim()),
        Span::styled(
            format!(
                "{}/{}/s",
                format::rate(open.achieved_rate),
                format::rate(open.target_rate)
            ),
            Style::new().bold(),
        ),
        Span::styled("  dropped ", dim()),
        Span::styled(open.dropped.to_string(), dropped_style),
        Span::styled("  corrected p95 ", dim()),
        Span::styled(
            format!("{} ms", format::ms(open.corrected_p95_ms)),
            Style::new().bold(),
        ),
    ]
}

/// `host http://…` on the left, shards and I/O driver (or workers) right.
fn host_line(snap: &DashboardSnapshot, width: u16) -> Line<'static> {
    let right = match &snap.topology {
        Topology::Local { shards, io_driver } => {
            let s = if *shards == 1 { "" } else { "s" };
            format!("{shards} shard{s} on {io_driver} ")
        }
        Topology::Master { workers } => {
            let users: u32 = workers.iter().map(|w| w.users).sum();
            let s = if workers.len() == 1 { "" } else { "s" };
            format!("{} worker{s}, {users} users ", workers.len())
        }
    };
    let room = (width as usize).saturating_sub(right.chars().count() + 8);
    let host = format::fit(&snap.host, room);
    let pad = (width as usize).saturating_sub(7 + host.chars().count() + right.chars().count());
    Line::from(vec![
        Span::styled(" host  ", dim()),
        Span::raw(host),
        Span::raw(" ".repeat(pad)),
        Span::styled(right, dim()),
    ])
}

/// ` 1 Stats  2 Charts  3 Failures (2)  4 Exceptions  5 Workers`
fn tab_line(app: &App, snap: &DashboardSnapshot) -> Line<'static> {
    let mut spans = vec![Span::raw(" ")];
    for (i, view) in app.views().iter().enumerate() {
        let count = match view {
            View::Failures => snap.failures.len(),
            View::Exceptions => snap.exceptions.len(),
            View::Workers => snap.workers().len(),
            _ => 0,
        };
        let text = if count > 0 {
            format!(" {} {} ({count}) ", i + 1, view.title())
        } else {
            format!(" {} {} ", i + 1, view.title())
        };
        let style = if *view == app.view {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else if count > 0 && matches!(view, View::Failures | View::Exceptions) {
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        };
        spans.push(Span::styled(text, style));
        spans.push(Span::raw(" "));
    }
    Line::from(spans)
}

/// The last key's message, or the keys.
fn footer_line(app: &App) -> Line<'static> {
    if let Some(m) = &app.message {
        return Line::from(Span::styled(
            format!(" {m}"),
            Style::new().fg(Color::Yellow),
        ));
    }
    let keys: [(&str, String); 8] = [
        ("s", "start".into()),
        ("+/-", format!("users ±{}", app.step)),
        ("e", "edit".into()),
        ("x", "stop".into()),
        ("r", "reset".into()),
        ("Tab", "view".into()),
        ("?", "help".into()),
        ("q", "quit".into()),
    ];
    let mut spans = Vec::new();
    for (key, what) in keys {
        spans.push(Span::styled(format!(" {key}"), Style::new().bold()));
        spans.push(Span::styled(format!(" {what} "), dim()));
    }
    Line::from(spans)
}

/// A centered rectangle of at most `width` x `height` inside `area`.
pub(crate) fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// A scroll position note for a list: `rows 11-27 of 100`, or nothing
/// when everything fits.
pub(crate) fn range_note(first: usize, shown: usize, total: usize) -> String {
    if total <= shown || shown == 0 {
        String::new()
    } else {
        format!(" {}-{} of {total} ", first + 1, (first + shown).min(total))
    }
}
