//! The terminal loop: raw mode and the alternate screen, keys in, a frame
//! out about four times a second, and the terminal always given back.
//!
//! Owns [`run`]: it enters the alternate screen behind a guard whose `Drop`
//! restores the terminal (every return, `?` and unwinding path), installs a
//! panic hook that restores it before the previous hook prints, polls input
//! with a 250 ms tick, takes a fresh [`DashboardSnapshot`] every tick (or
//! after a key that changed the run) and draws it. It holds no lock: the
//! [`RunHandle`] hands over plain data, so drawing never blocks the engine.

use std::io::{self, Stdout, Write};
use std::panic;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;

use crate::app::{Action, App, AppOptions};
use crate::model::RunHandle;
use crate::render::render;

/// How often the dashboard takes a snapshot and redraws.
pub const TICK: Duration = Duration::from_millis(250);

/// How the dashboard runs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub app: AppOptions,
    /// Set from outside (SIGTERM, `--run-time`, a failed report) to make the
    /// dashboard leave as if `q` was pressed; checked every tick.
    pub quit: Option<Arc<AtomicBool>>,
}

/// Why the dashboard returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuitReason {
    /// `q` or Ctrl-C.
    Key,
    /// The `quit` flag of [`Options`] was set.
    External,
    /// A thread panicked (the message is on stderr).
    Panic,
}

/// What happened, for the caller's end-of-run reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub reason: QuitReason,
}

/// Whether this process's terminal is in dashboard mode (raw + alternate).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set by the panic hook, so the loop stops drawing on a restored screen.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// Leave raw mode and the alternate screen, once (later calls do nothing).
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
        let _ = io::stdout().flush();
    }
}

/// Dashboard mode for as long as it lives.
struct TerminalGuard {
    previous_hook: Arc<dyn Fn(&panic::PanicHookInfo<'_>) + Sync + Send + 'static>,
}

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        let previous_hook: Arc<dyn Fn(&panic::PanicHookInfo<'_>) + Sync + Send> =
            Arc::from(panic::take_hook());
        let chained = previous_hook.clone();
        panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            restore();
            chained(info);
        }));
        let guard = TerminalGuard { previous_hook };
        ACTIVE.store(true, Ordering::SeqCst);
        enable_raw_mode()?;
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
        if !std::thread::panicking() {
            let previous = self.previous_hook.clone();
            panic::set_hook(Box::new(move |info| previous(info)));
        }
    }
}

/// Run the dashboard on this process's terminal until `q`, Ctrl-C or the
/// `quit` flag. It does not stop the run: the caller does that (and writes
/// its reports) once the terminal is back.
pub fn run(handle: &dyn RunHandle, options: Options) -> io::Result<Outcome> {
    PANICKED.store(false, Ordering::SeqCst);
    let _guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    terminal.clear()?;
    event_loop(&mut terminal, handle, &options)
}

fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    handle: &dyn RunHandle,
    options: &Options,
) -> io::Result<Outcome> {
    let mut app = App::new(options.app);
    perform(handle, app.startup());
    let mut snap = handle.snapshot();
    app.sync(&snap);
    let mut next_tick = Instant::now() + TICK;
    let mut dirty = true;
    loop {
        if PANICKED.load(Ordering::SeqCst) {
            return Ok(Outcome {
                reason: QuitReason::Panic,
            });
        }
        if options
            .quit
            .as_ref()
            .is_some_and(|q| q.load(Ordering::SeqCst))
        {
            return Ok(Outcome {
                reason: QuitReason::External,
            });
        }
        if dirty {
            let size = terminal.size()?;
            app.resize(size.height);
            terminal.draw(|frame| render(frame, &app, &snap))?;
            dirty = false;
        }
        let now = Instant::now();
        if now >= next_tick {
            // Skip ticks missed (a suspended process) rather than burst.
            next_tick = now + TICK;
            snap = handle.snapshot();
            app.sync(&snap);
            dirty = true;
            continue;
        }
        if !wait_for_input(next_tick - now)? {
            continue;
        }
        match event::read()? {
            Event::Key(key) if key.kind != KeyEventKind::Release => {
                let action = app.handle_key(key);
                if action == Action::Quit {
                    return Ok(Outcome {
                        reason: QuitReason::Key,
                    });
                }
                if action != Action::None {
                    perform(handle, action);
                    snap = handle.snapshot();
                    app.sync(&snap);
                }
                dirty = true;
            }
            Event::Resize(..) => dirty = true,
            _ => {}
        }
    }
}

/// Wait up to `timeout` for terminal input. crossterm 0.28 reads a terminal
/// that hung up (tmux killed, ssh dropped) in an endless loop (EIO is
/// neither WouldBlock nor Interrupted there), so the loop above would never
/// see the quit flag or SIGTERM again. Poll the terminal ourselves and let
/// crossterm read only when input is there and the terminal is alive.
fn wait_for_input(timeout: Duration) -> io::Result<bool> {
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(libc::STDIN_FILENO) } != 1 {
        // crossterm reads /dev/tty then: keep its own wait.
        return event::poll(timeout);
    }
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd, for the length given.
    match unsafe { libc::poll(&mut fd, 1, ms) } {
        0 => Ok(false),
        n if n < 0 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
        _ if fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 => Err(
            io::Error::new(io::ErrorKind::BrokenPipe, "the terminal hung up"),
        ),
        _ => event::poll(Duration::ZERO),
    }
}

fn perform(handle: &dyn RunHandle, action: Action) {
    match action {
        Action::Start { users, rate } => handle.start(users, rate),
        Action::SetTarget { users, rate } => handle.set_target(users, rate),
        Action::Stop => handle.stop(),
        Action::ResetStats => handle.reset_stats(),
        Action::None | Action::Quit => {}
    }
}
