//! The key state machine: every key the issue names, on `App` alone (no
//! terminal), against fixed snapshots.

use locusta_tui::fixtures;
use locusta_tui::render::help::KEYS;
use locusta_tui::{
    Action, App, AppOptions, DashboardSnapshot, FormField, FormKind, RunState, SortColumn, View,
};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ch(c: char) -> KeyEvent {
    key(KeyCode::Char(c))
}

fn options(autostart: bool) -> AppOptions {
    AppOptions {
        users: 5,
        spawn_rate: 2.0,
        step: 10,
        autostart,
    }
}

fn with_state(state: RunState) -> DashboardSnapshot {
    DashboardSnapshot {
        state,
        ..fixtures::local_run()
    }
}

/// An app with the form closed, synced to a snapshot in `state`.
fn app_in(state: RunState) -> App {
    let mut app = App::new(options(true));
    app.sync(&with_state(state));
    app
}

fn press(app: &mut App, keys: &str) -> Vec<Action> {
    keys.chars().map(|c| app.handle_key(ch(c))).collect()
}

#[test]
fn autostart_starts_at_once_without_a_form() {
    let app = App::new(options(true));
    assert!(app.form.is_none());
    assert_eq!(
        app.startup(),
        Action::Start {
            users: 5,
            rate: 2.0
        }
    );
}

#[test]
fn without_autostart_the_start_form_is_prefilled_from_the_flags() {
    let mut app = App::new(options(false));
    assert_eq!(app.startup(), Action::None);
    let form = app.form.clone().expect("start form");
    assert_eq!(form.kind, FormKind::Start);
    assert_eq!((form.users.as_str(), form.rate.as_str()), ("5", "2"));
    assert_eq!(form.focus, FormField::Users);
    // `s` in the form starts with what it holds.
    app.sync(&with_state(RunState::Ready));
    assert_eq!(
        app.handle_key(ch('s')),
        Action::Start {
            users: 5,
            rate: 2.0
        }
    );
    assert!(app.form.is_none());
}

#[test]
fn enter_in_the_start_form_starts() {
    let mut app = App::new(options(false));
    app.sync(&with_state(RunState::Ready));
    assert_eq!(
        app.handle_key(key(KeyCode::Enter)),
        Action::Start {
            users: 5,
            rate: 2.0
        }
    );
}

#[test]
fn s_and_enter_start_from_ready_and_stopped_only() {
    for state in [RunState::Ready, RunState::Stopped] {
        let mut app = app_in(state);
        assert_eq!(
            app.handle_key(ch('s')),
            Action::Start {
                users: 5,
                rate: 2.0
            }
        );
        assert_eq!(
            app.handle_key(key(KeyCode::Enter)),
            Action::Start {
                users: 5,
                rate: 2.0
            }
        );
    }
    for state in [RunState::Spawning, RunState::Running, RunState::Stopping] {
        let mut app = app_in(state);
        assert_eq!(app.handle_key(ch('s')), Action::None, "{state:?}");
        assert!(app.message.is_some(), "{state:?} explains why not");
    }
}

#[test]
fn plus_and_minus_move_the_target_by_the_step() {
    let mut app = app_in(RunState::Running);
    assert_eq!(
        press(&mut app, "++"),
        [
            Action::SetTarget {
                users: 15,
                rate: 2.0
            },
            Action::SetTarget {
                users: 25,
                rate: 2.0
            }
        ]
    );
    assert_eq!(
        app.handle_key(ch('-')),
        Action::SetTarget {
            users: 15,
            rate: 2.0
        }
    );
    // Never below one user.
    assert_eq!(
        press(&mut app, "--"),
        [
            Action::SetTarget {
                users: 5,
                rate: 2.0
            },
            Action::SetTarget {
                users: 1,
                rate: 2.0
            }
        ]
    );
    // --step 3
    let mut app = App::new(AppOptions {
        step: 3,
        ..options(true)
    });
    app.sync(&with_state(RunState::Spawning));
    assert_eq!(
        app.handle_key(ch('+')),
        Action::SetTarget {
            users: 8,
            rate: 2.0
        }
    );
}

#[test]
fn plus_before_the_start_changes_the_users_to_start_with() {
    let mut app = app_in(RunState::Ready);
    assert_eq!(app.handle_key(ch('+')), Action::None);
    assert_eq!(app.users, 15);
    assert_eq!(
        app.handle_key(ch('s')),
        Action::Start {
            users: 15,
            rate: 2.0
        }
    );
}

#[test]
fn e_opens_the_edit_form_typing_backspace_tab_enter() {
    let mut app = app_in(RunState::Running);
    assert_eq!(app.handle_key(ch('e')), Action::None);
    assert_eq!(app.form.as_ref().unwrap().kind, FormKind::Edit);
    // Users: "5" -> "" -> "120"; letters and a dot are not taken.
    app.handle_key(key(KeyCode::Backspace));
    press(&mut app, "12a.0");
    assert_eq!(app.form.as_ref().unwrap().users, "120");
    // Rate: "2" -> "2.5"; only one dot.
    app.handle_key(key(KeyCode::Tab));
    assert_eq!(app.form.as_ref().unwrap().focus, FormField::Rate);
    press(&mut app, ".5.");
    assert_eq!(app.form.as_ref().unwrap().rate, "2.5");
    assert_eq!(
        app.handle_key(key(KeyCode::Enter)),
        Action::SetTarget {
            users: 120,
            rate: 2.5
        }
    );
    assert!(app.form.is_none());
    assert_eq!((app.users, app.rate), (120, 2.5));
    // `+` then works from the new target.
    assert_eq!(
        app.handle_key(ch('+')),
        Action::SetTarget {
            users: 130,
            rate: 2.5
        }
    );
}

#[test]
fn the_form_refuses_bad_numbers_and_esc_closes_it() {
    let mut app = app_in(RunState::Running);
    app.handle_key(ch('e'));
    app.handle_key(key(KeyCode::Backspace));
    assert_eq!(app.handle_key(key(KeyCode::Enter)), Action::None);
    assert!(app.form.as_ref().unwrap().error.is_some());
    press(&mut app, "0");
    assert_eq!(app.handle_key(key(KeyCode::Enter)), Action::None, "0 users");
    app.handle_key(key(KeyCode::Backspace));
    press(&mut app, "7");
    app.handle_key(key(KeyCode::Down));
    app.handle_key(key(KeyCode::Backspace));
    press(&mut app, "0");
    assert_eq!(app.handle_key(key(KeyCode::Enter)), Action::None, "rate 0");
    assert_eq!(app.handle_key(key(KeyCode::Esc)), Action::None);
    assert!(app.form.is_none());
    assert_eq!(
        (app.users, app.rate),
        (5, 2.0),
        "a cancelled form changes nothing"
    );
}

#[test]
fn e_before_the_start_is_the_start_form() {
    let mut app = app_in(RunState::Stopped);
    app.handle_key(ch('e'));
    assert_eq!(app.form.as_ref().unwrap().kind, FormKind::Start);
    app.handle_key(key(KeyCode::Backspace));
    press(&mut app, "9");
    assert_eq!(
        app.handle_key(key(KeyCode::Enter)),
        Action::Start {
            users: 9,
            rate: 2.0
        }
    );
}

#[test]
fn x_stops_a_running_swarm_only() {
    assert_eq!(app_in(RunState::Running).handle_key(ch('x')), Action::Stop);
    assert_eq!(app_in(RunState::Spawning).handle_key(ch('x')), Action::Stop);
    for state in [RunState::Ready, RunState::Stopping, RunState::Stopped] {
        assert_eq!(app_in(state).handle_key(ch('x')), Action::None, "{state:?}");
    }
}

#[test]
fn r_resets_the_stats() {
    assert_eq!(
        app_in(RunState::Running).handle_key(ch('r')),
        Action::ResetStats
    );
    assert_eq!(
        app_in(RunState::Stopped).handle_key(ch('r')),
        Action::ResetStats
    );
}

#[test]
fn q_and_ctrl_c_quit_from_everywhere() {
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    for setup in ["", "?", "e"] {
        for quit in [ch('q'), ctrl_c] {
            let mut app = app_in(RunState::Running);
            press(&mut app, setup);
            assert_eq!(app.handle_key(quit), Action::Quit, "after {setup:?}");
            assert!(app.quit);
        }
    }
    // The start form too.
    let mut app = App::new(options(false));
    assert_eq!(app.handle_key(ctrl_c), Action::Quit);
}

#[test]
fn help_opens_on_question_mark_and_any_key_closes_it() {
    let mut app = app_in(RunState::Running);
    app.handle_key(ch('?'));
    assert!(app.help);
    // A key in help only closes it: `x` does not stop the run.
    assert_eq!(app.handle_key(ch('x')), Action::None);
    assert!(!app.help);
    app.handle_key(ch('?'));
    app.handle_key(key(KeyCode::Esc));
    assert!(!app.help);
}

#[test]
fn help_lists_every_key() {
    let listed: String = KEYS.iter().map(|(k, _)| format!("{k} ")).collect();
    for k in [
        "s",
        "Enter",
        "+",
        "-",
        "e",
        "x",
        "r",
        "Tab",
        "1-5",
        "Shift-Tab",
        "<",
        ">",
        "i",
        "↑",
        "↓",
        "PgUp",
        "PgDn",
        "?",
        "q",
        "Ctrl-C",
    ] {
        assert!(listed.contains(k), "{k} missing from the help");
    }
}

#[test]
fn tab_and_number_keys_switch_views() {
    let mut app = app_in(RunState::Running);
    assert_eq!(app.view, View::Stats);
    let mut seen = Vec::new();
    for _ in 0..4 {
        app.handle_key(key(KeyCode::Tab));
        seen.push(app.view);
    }
    // Workers is skipped off a master.
    assert_eq!(
        seen,
        [View::Charts, View::Failures, View::Exceptions, View::Stats]
    );
    app.handle_key(key(KeyCode::BackTab));
    assert_eq!(app.view, View::Exceptions);
    for (c, v) in [
        ('1', View::Stats),
        ('2', View::Charts),
        ('3', View::Failures),
        ('4', View::Exceptions),
    ] {
        app.handle_key(ch(c));
        assert_eq!(app.view, v);
    }
    app.handle_key(ch('5'));
    assert_eq!(app.view, View::Exceptions, "no Workers view off a master");
    assert!(app.message.is_some());

    let mut master = App::new(options(true));
    master.sync(&fixtures::master_run());
    master.handle_key(ch('5'));
    assert_eq!(master.view, View::Workers);
    master.handle_key(key(KeyCode::Tab));
    assert_eq!(master.view, View::Stats);
    master.handle_key(key(KeyCode::BackTab));
    assert_eq!(master.view, View::Workers);
}

#[test]
fn sort_cycles_through_every_column_and_inverts() {
    let mut app = app_in(RunState::Running);
    assert_eq!((app.sort, app.descending), (SortColumn::Name, false));
    let mut seen = vec![app.sort];
    for _ in 0..SortColumn::ALL.len() {
        app.handle_key(ch('>'));
        seen.push(app.sort);
    }
    assert_eq!(seen.first(), seen.last(), "a full cycle comes back");
    assert_eq!(&seen[..13], {
        let mut all = SortColumn::ALL.to_vec();
        all.rotate_left(1);
        all
    });
    app.handle_key(ch('>'));
    assert_eq!(
        (app.sort, app.descending),
        (SortColumn::Requests, true),
        "numbers: biggest first"
    );
    app.handle_key(ch('i'));
    assert!(!app.descending);
    app.handle_key(ch('<'));
    app.handle_key(ch('<'));
    assert_eq!(
        (app.sort, app.descending),
        (SortColumn::Type, false),
        "text: A to Z"
    );
    app.handle_key(ch('<'));
    assert_eq!(app.sort, SortColumn::FailPerSec, "wraps around");
}

#[test]
fn scrolling_is_bounded_by_the_rows_and_the_page() {
    let mut app = App::new(options(true));
    app.sync(&fixtures::many_endpoints(100));
    app.resize(24);
    // 24 rows: 3 header lines, the footer, and 3 lines of table chrome.
    let page = 24 - 4 - 3;
    app.handle_key(key(KeyCode::Down));
    assert_eq!(app.scroll(View::Stats), 1);
    app.handle_key(key(KeyCode::PageDown));
    assert_eq!(app.scroll(View::Stats), 1 + page);
    app.handle_key(key(KeyCode::End));
    assert_eq!(app.scroll(View::Stats), 100 - page);
    app.handle_key(key(KeyCode::Down));
    assert_eq!(
        app.scroll(View::Stats),
        100 - page,
        "no scrolling past the end"
    );
    app.handle_key(key(KeyCode::Up));
    assert_eq!(
        app.scroll(View::Stats),
        99 - page,
        "one up from the end moves"
    );
    app.handle_key(key(KeyCode::Home));
    assert_eq!(app.scroll(View::Stats), 0);
    // A taller terminal shows everything: nothing to scroll.
    app.resize(200);
    app.handle_key(key(KeyCode::PageDown));
    assert_eq!(app.scroll(View::Stats), 0);
}

#[test]
fn key_releases_are_ignored() {
    let mut app = app_in(RunState::Running);
    let mut release = ch('x');
    release.kind = KeyEventKind::Release;
    assert_eq!(app.handle_key(release), Action::None);
}

#[test]
fn a_stopped_swarm_restarts_with_the_last_numbers() {
    let mut app = app_in(RunState::Running);
    press(&mut app, "+");
    app.sync(&with_state(RunState::Stopped));
    assert_eq!(
        app.handle_key(ch('s')),
        Action::Start {
            users: 15,
            rate: 2.0
        }
    );
}

#[test]
fn a_load_shape_turns_off_the_keys_that_set_users() {
    let mut app = App::new(options(false));
    let snap = DashboardSnapshot {
        shape: Some("40 users @ 10/s".into()),
        ..fixtures::local_run()
    };
    app.sync(&snap);
    assert!(
        app.form.is_none(),
        "no start form: the shape sets the users"
    );
    for keys in ["+", "-", "e", "s"] {
        assert_eq!(press(&mut app, keys), vec![Action::None], "{keys}");
        let msg = app.message.clone().unwrap_or_default();
        assert!(msg.contains("load shape"), "{keys}: {msg}");
    }
    // Stopping and the views still work.
    assert_eq!(press(&mut app, "x"), vec![Action::Stop]);
}
