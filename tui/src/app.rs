//! The dashboard's state machine: what a key does.
//!
//! Owns [`App`] (the current view, the Stats sort, scroll positions, the
//! start/edit form, the help overlay, the users and spawn rate the next
//! start or `+`/`-` uses, and whether to quit) and the [`Action`]s a key
//! asks of the run. It is pure: no terminal, no clock, no run handle; the
//! terminal loop feeds it keys and snapshots ([`App::sync`]) and carries out
//! the actions, and the renderer only reads it.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::model::{DashboardSnapshot, RunState};
use crate::render;

/// Users added or removed by `+`/`-` unless `--step` says otherwise.
pub const DEFAULT_STEP: u32 = 10;

/// Longest number a form field takes.
const FIELD_MAX: usize = 9;

/// Rows moved by PgUp/PgDn beyond the visible page.
const MIN_PAGE: usize = 1;

/// The dashboard's views, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Stats,
    Charts,
    Failures,
    Exceptions,
    /// Only on a cluster master.
    Workers,
}

impl View {
    pub const ALL: [View; 5] = [
        View::Stats,
        View::Charts,
        View::Failures,
        View::Exceptions,
        View::Workers,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Stats => "Stats",
            View::Charts => "Charts",
            View::Failures => "Failures",
            View::Exceptions => "Exceptions",
            View::Workers => "Workers",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The Stats view's columns, left to right; any of them sorts the rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortColumn {
    Type,
    Name,
    Requests,
    Failures,
    Median,
    P95,
    P99,
    Average,
    Min,
    Max,
    Size,
    Rps,
    FailPerSec,
}

impl SortColumn {
    pub const ALL: [SortColumn; 13] = [
        SortColumn::Type,
        SortColumn::Name,
        SortColumn::Requests,
        SortColumn::Failures,
        SortColumn::Median,
        SortColumn::P95,
        SortColumn::P99,
        SortColumn::Average,
        SortColumn::Min,
        SortColumn::Max,
        SortColumn::Size,
        SortColumn::Rps,
        SortColumn::FailPerSec,
    ];

    /// Numbers sort biggest first when chosen; text A to Z.
    pub fn default_descending(self) -> bool {
        !matches!(self, SortColumn::Type | SortColumn::Name)
    }

    fn shifted(self, by: isize) -> SortColumn {
        let n = Self::ALL.len() as isize;
        let i = Self::ALL.iter().position(|c| *c == self).unwrap_or(0) as isize;
        Self::ALL[(i + by).rem_euclid(n) as usize]
    }
}

/// What a key asks of the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// Nothing for the run (the screen may still change).
    None,
    Start {
        users: u32,
        rate: f64,
    },
    SetTarget {
        users: u32,
        rate: f64,
    },
    Stop,
    ResetStats,
    /// Stop the run, write the reports, leave.
    Quit,
}

/// Starting a new swarm, or changing the running one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormKind {
    Start,
    Edit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormField {
    Users,
    Rate,
}

/// The users / spawn rate form, with its fields as typed.
#[derive(Clone, Debug, PartialEq)]
pub struct Form {
    pub kind: FormKind,
    pub users: String,
    pub rate: String,
    pub focus: FormField,
    /// Why the last submit was refused.
    pub error: Option<String>,
}

impl Form {
    fn field(&mut self) -> &mut String {
        match self.focus {
            FormField::Users => &mut self.users,
            FormField::Rate => &mut self.rate,
        }
    }

    fn parse(&self) -> Result<(u32, f64), String> {
        let users = match self.users.parse::<u32>() {
            Ok(u) if u >= 1 => u,
            _ => return Err("users: a whole number, at least 1".into()),
        };
        let rate = match self.rate.parse::<f64>() {
            Ok(r) if r > 0.0 && r.is_finite() => r,
            _ => return Err("spawn rate: a number above 0".into()),
        };
        Ok((users, rate))
    }
}

/// How the dashboard starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AppOptions {
    /// `-u`: users for the first start.
    pub users: u32,
    /// `-r`: users started per second.
    pub spawn_rate: f64,
    /// `--step`: users added or removed by `+`/`-`.
    pub step: u32,
    /// `--autostart`: start at once instead of showing the start form.
    pub autostart: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            users: 1,
            spawn_rate: 1.0,
            step: DEFAULT_STEP,
            autostart: false,
        }
    }
}

/// The dashboard's state between frames.
#[derive(Clone, Debug)]
pub struct App {
    pub view: View,
    pub sort: SortColumn,
    pub descending: bool,
    /// First row shown, per view.
    scroll: [usize; 5],
    /// Rows (or lines) each view has, from the last snapshot.
    lens: [usize; 5],
    /// Terminal height, for page sizes.
    height: u16,
    pub form: Option<Form>,
    pub help: bool,
    /// Users the next start or `+`/`-` works from.
    pub users: u32,
    pub rate: f64,
    pub step: u32,
    autostart: bool,
    /// The run's state at the last snapshot.
    pub state: RunState,
    pub master: bool,
    /// A load shape drives the run (from the last snapshot): the keys that
    /// set users are off.
    pub shape: bool,
    /// One line of feedback about the last key, shown in the footer.
    pub message: Option<String>,
    pub quit: bool,
}

impl App {
    pub fn new(options: AppOptions) -> App {
        let mut app = App {
            view: View::Stats,
            sort: SortColumn::Name,
            descending: false,
            scroll: [0; 5],
            lens: [0; 5],
            height: 24,
            form: None,
            help: false,
            users: options.users.max(1),
            rate: if options.spawn_rate > 0.0 {
                options.spawn_rate
            } else {
                1.0
            },
            step: options.step.max(1),
            autostart: options.autostart,
            state: RunState::Ready,
            master: false,
            shape: false,
            message: None,
            quit: false,
        };
        if !options.autostart {
            app.open_form(FormKind::Start);
        }
        app
    }

    /// What to do before the first frame: start at once with `--autostart`.
    pub fn startup(&self) -> Action {
        if self.autostart {
            Action::Start {
                users: self.users,
                rate: self.rate,
            }
        } else {
            Action::None
        }
    }

    /// Take in a fresh snapshot: run state, topology, list lengths.
    pub fn sync(&mut self, snap: &DashboardSnapshot) {
        self.state = snap.state;
        self.master = snap.is_master();
        self.shape = snap.shape.is_some();
        if self.shape {
            // The start form has nothing to ask: the shape sets users.
            self.form = None;
        }
        if !self.master && self.view == View::Workers {
            self.view = View::Stats;
        }
        self.lens = [
            snap.rows.len(),
            0,
            snap.failures.len(),
            render::exceptions::line_count(&snap.exceptions),
            snap.workers().len(),
        ];
        for v in View::ALL {
            self.scroll[v.index()] = self.scroll[v.index()].min(self.max_scroll(v));
        }
    }

    /// The terminal's height, for page sizes and scroll limits.
    pub fn resize(&mut self, height: u16) {
        self.height = height;
        for v in View::ALL {
            self.scroll[v.index()] = self.scroll[v.index()].min(self.max_scroll(v));
        }
    }

    /// First row shown in `view`.
    pub fn scroll(&self, view: View) -> usize {
        self.scroll[view.index()]
    }

    /// Views that Tab and the number keys reach (Workers only on a master).
    pub fn views(&self) -> &'static [View] {
        if self.master {
            &View::ALL
        } else {
            &View::ALL[..4]
        }
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        self.message = None;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
            return self.quit();
        }
        if ctrl {
            return Action::None;
        }
        if self.help {
            return match key.code {
                KeyCode::Char('q') => self.quit(),
                _ => {
                    self.help = false;
                    Action::None
                }
            };
        }
        if self.form.is_some() {
            return self.form_key(key.code);
        }
        let sets_users = matches!(
            key.code,
            KeyCode::Char('s' | 'e' | '+' | '=' | '-' | '_') | KeyCode::Enter
        );
        if self.shape && sets_users {
            self.message = Some(
                "a load shape drives this run: it sets the users (s, e, + and - are off)".into(),
            );
            return Action::None;
        }
        match key.code {
            KeyCode::Char('q') => self.quit(),
            KeyCode::Char('s') | KeyCode::Enter => self.start(),
            KeyCode::Char('+') | KeyCode::Char('=') => self.nudge(self.step as i64),
            KeyCode::Char('-') | KeyCode::Char('_') => self.nudge(-(self.step as i64)),
            KeyCode::Char('e') => {
                let kind = if self.state.is_active() {
                    FormKind::Edit
                } else {
                    FormKind::Start
                };
                self.open_form(kind);
                Action::None
            }
            KeyCode::Char('x') => {
                if self.state.is_active() {
                    self.message = Some("stopping".into());
                    Action::Stop
                } else {
                    self.message = Some(format!("nothing to stop: {}", self.state.as_str()));
                    Action::None
                }
            }
            KeyCode::Char('r') => {
                self.message = Some("stats reset".into());
                Action::ResetStats
            }
            KeyCode::Char('?') => {
                self.help = true;
                Action::None
            }
            KeyCode::Tab => self.cycle_view(1),
            KeyCode::BackTab => self.cycle_view(-1),
            KeyCode::Char(c @ '1'..='5') => {
                let i = c as usize - '1' as usize;
                match self.views().get(i) {
                    Some(v) => self.view = *v,
                    None => self.message = Some("Workers: only on a master (--master)".into()),
                }
                Action::None
            }
            KeyCode::Char('>') | KeyCode::Char('.') => self.shift_sort(1),
            KeyCode::Char('<') | KeyCode::Char(',') => self.shift_sort(-1),
            KeyCode::Char('i') => {
                self.descending = !self.descending;
                Action::None
            }
            KeyCode::Up | KeyCode::Char('k') => self.scroll_by(-1),
            KeyCode::Down | KeyCode::Char('j') => self.scroll_by(1),
            KeyCode::PageUp => self.scroll_by(-(self.page() as isize)),
            KeyCode::PageDown | KeyCode::Char(' ') => self.scroll_by(self.page() as isize),
            KeyCode::Home | KeyCode::Char('g') => self.scroll_by(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.scroll_by(isize::MAX / 2),
            _ => Action::None,
        }
    }

    fn quit(&mut self) -> Action {
        self.quit = true;
        Action::Quit
    }

    fn open_form(&mut self, kind: FormKind) {
        self.form = Some(Form {
            kind,
            users: self.users.to_string(),
            rate: crate::format::spawn_rate(self.rate),
            focus: FormField::Users,
            error: None,
        });
    }

    fn start(&mut self) -> Action {
        match self.state {
            RunState::Ready | RunState::Stopped => Action::Start {
                users: self.users,
                rate: self.rate,
            },
            RunState::Stopping => {
                self.message = Some("still stopping: start again once STOPPED".into());
                Action::None
            }
            RunState::Spawning | RunState::Running => {
                self.message = Some("already running: e edits users, x stops".into());
                Action::None
            }
        }
    }

    fn nudge(&mut self, by: i64) -> Action {
        let users = (i64::from(self.users) + by).clamp(1, i64::from(u32::MAX)) as u32;
        self.users = users;
        if self.state.is_active() {
            self.message = Some(format!("target: {users} users"));
            Action::SetTarget {
                users,
                rate: self.rate,
            }
        } else {
            self.message = Some(format!("users for the next start: {users}"));
            Action::None
        }
    }

    fn form_key(&mut self, code: KeyCode) -> Action {
        let Some(form) = self.form.as_mut() else {
            return Action::None;
        };
        match code {
            KeyCode::Esc => {
                self.form = None;
                Action::None
            }
            KeyCode::Char('q') => self.quit(),
            KeyCode::Enter | KeyCode::Char('s') => match form.parse() {
                Ok((users, rate)) => {
                    self.form = None;
                    self.users = users;
                    self.rate = rate;
                    if self.state.is_active() {
                        self.message = Some(format!("target: {users} users at {rate}/s"));
                        Action::SetTarget { users, rate }
                    } else {
                        self.start()
                    }
                }
                Err(e) => {
                    form.error = Some(e);
                    Action::None
                }
            },
            KeyCode::Tab | KeyCode::BackTab | KeyCode::Up | KeyCode::Down => {
                form.focus = match form.focus {
                    FormField::Users => FormField::Rate,
                    FormField::Rate => FormField::Users,
                };
                Action::None
            }
            KeyCode::Backspace => {
                form.field().pop();
                form.error = None;
                Action::None
            }
            KeyCode::Char(c) if c.is_ascii_digit() || c == '.' => {
                let rate = form.focus == FormField::Rate;
                let field = form.field();
                let dot_ok = rate && !field.contains('.');
                if field.len() < FIELD_MAX && (c != '.' || dot_ok) {
                    field.push(c);
                }
                form.error = None;
                Action::None
            }
            _ => Action::None,
        }
    }

    fn cycle_view(&mut self, by: isize) -> Action {
        let views = self.views();
        let n = views.len() as isize;
        let i = views.iter().position(|v| *v == self.view).unwrap_or(0) as isize;
        self.view = views[(i + by).rem_euclid(n) as usize];
        Action::None
    }

    fn shift_sort(&mut self, by: isize) -> Action {
        self.sort = self.sort.shifted(by);
        self.descending = self.sort.default_descending();
        if self.view != View::Stats {
            self.message = Some(format!("sorting applies to Stats ({:?})", self.sort));
        }
        Action::None
    }

    fn page(&self) -> usize {
        render::list_rows(self.view, self.height).max(MIN_PAGE)
    }

    fn max_scroll(&self, view: View) -> usize {
        self.lens[view.index()].saturating_sub(render::list_rows(view, self.height))
    }

    fn scroll_by(&mut self, by: isize) -> Action {
        let i = self.view.index();
        let max = self.max_scroll(self.view);
        self.scroll[i] = self.scroll[i].saturating_add_signed(by).min(max);
        Action::None
    }
}
