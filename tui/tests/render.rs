//! Golden-text rendering: each view, the help overlay and the forms drawn
//! from fixed snapshots on ratatui's `TestBackend` at 80x24 and 120x40,
//! compared with `tests/golden/*.txt` (colours are not compared). After a
//! deliberate change, `UPDATE_GOLDEN=1 cargo test -p locusta-tui --test
//! render` rewrites the files; review them by eye before committing.

use std::path::PathBuf;

use locusta_tui::fixtures;
use locusta_tui::{render, App, AppOptions, DashboardSnapshot};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn app_for(snap: &DashboardSnapshot, height: u16, keys: &str) -> App {
    let mut app = App::new(AppOptions {
        users: 50,
        spawn_rate: 10.0,
        step: 10,
        autostart: true,
    });
    app.sync(snap);
    app.resize(height);
    for c in keys.chars() {
        let code = match c {
            '\t' => KeyCode::Tab,
            '\n' => KeyCode::Enter,
            '\u{8}' => KeyCode::Backspace,
            'J' => KeyCode::PageDown,
            c => KeyCode::Char(c),
        };
        app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
    }
    app
}

/// The screen as text: one line per row, trailing blanks dropped.
fn screen(app: &App, snap: &DashboardSnapshot, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| render(f, app, snap)).unwrap();
    let buf = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn golden(name: &str, actual: &str) {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "golden",
        &format!("{name}.txt"),
    ]
    .iter()
    .collect();
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "{name} differs from {} (UPDATE_GOLDEN=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
}

/// Render `snap` after `keys` at both sizes and compare with the goldens.
fn check(name: &str, snap: &DashboardSnapshot, keys: &str) {
    for (w, h) in SIZES {
        let app = app_for(snap, h, keys);
        golden(&format!("{name}_{w}x{h}"), &screen(&app, snap, w, h));
    }
}

#[test]
fn stats_view() {
    check("stats", &fixtures::local_run(), "");
}

#[test]
fn stats_sorted_by_p95_descending() {
    // Name -> Requests -> Failures -> Median -> P95.
    check("stats_sorted_p95", &fixtures::local_run(), ">>>>");
}

#[test]
fn stats_scrolled_with_many_endpoints() {
    check("stats_scrolled", &fixtures::many_endpoints(100), "J");
}

#[test]
fn stats_before_the_start() {
    let snap = fixtures::ready();
    for (w, h) in SIZES {
        let mut app = app_for(&snap, h, "");
        app.form = None;
        golden(&format!("stats_empty_{w}x{h}"), &screen(&app, &snap, w, h));
    }
}

#[test]
fn charts_view() {
    check("charts", &fixtures::local_run(), "2");
}

#[test]
fn failures_view() {
    check("failures", &fixtures::local_run(), "3");
}

#[test]
fn exceptions_view() {
    check("exceptions", &fixtures::local_run(), "4");
}

#[test]
fn workers_view_on_a_master() {
    check("workers", &fixtures::master_run(), "5");
}

#[test]
fn help_overlay() {
    check("help", &fixtures::local_run(), "?");
}

#[test]
fn edit_form_while_running() {
    // Users field: 50 -> 75, Rate field: 10 -> 2.5.
    check(
        "edit_form",
        &fixtures::local_run(),
        "e\u{8}\u{8}75\t\u{8}\u{8}2.5",
    );
}

#[test]
fn start_form_with_an_error() {
    let snap = fixtures::ready();
    for (w, h) in SIZES {
        let app = App::new(AppOptions {
            users: 50,
            spawn_rate: 10.0,
            step: 10,
            autostart: false,
        });
        let mut app = app;
        app.sync(&snap);
        app.resize(h);
        for code in [KeyCode::Backspace, KeyCode::Backspace, KeyCode::Enter] {
            app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
        }
        golden(&format!("start_form_{w}x{h}"), &screen(&app, &snap, w, h));
    }
}

#[test]
fn tiny_and_odd_sizes_do_not_panic() {
    let snaps = [
        fixtures::local_run(),
        fixtures::master_run(),
        fixtures::ready(),
        fixtures::many_endpoints(100),
    ];
    for snap in &snaps {
        for keys in ["", "2", "3", "4", "5", "?", "e", "JJJ"] {
            for (w, h) in [
                (1, 1),
                (10, 3),
                (20, 5),
                (40, 10),
                (79, 23),
                (200, 8),
                (30, 60),
            ] {
                let app = app_for(snap, h, keys);
                screen(&app, snap, w, h);
            }
        }
    }
}

/// An open-model run's status line: achieved/target rate, dropped
/// iterations and the corrected p95 (closed runs' goldens stay as they are).
#[test]
fn open_model_numbers_on_the_status_line() {
    let snap = DashboardSnapshot {
        open_model: Some(locusta_tui::OpenModelLine {
            target_rate: 200.0,
            achieved_rate: 199.5,
            dropped: 7,
            corrected_p95_ms: 12.5,
        }),
        ..fixtures::local_run()
    };
    let app = app_for(&snap, 40, "");
    let text = screen(&app, &snap, 160, 40);
    let first = text.lines().next().unwrap();
    assert!(first.contains("rate 199.5/200.0/s"), "{first}");
    assert!(first.contains("dropped 7"), "{first}");
    assert!(first.contains("corrected p95 12.5 ms"), "{first}");
    let closed = screen(&app, &fixtures::local_run(), 160, 40);
    assert!(!closed.contains("dropped"), "{closed}");
}
