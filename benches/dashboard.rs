//! Dashboard CPU: what one frame costs with 100 endpoints, paced at the
//! dashboard's 4 Hz for 10 s per view, as a real dashboard spends it:
//! computing the stats view (what `RunControl::snapshot` does under the
//! stats lock), copying the history, converting both with the adapter's
//! `to_dashboard`, laying out the frame and encoding the changed cells as
//! terminal escape sequences (crossterm, into a sink; the terminal is
//! 120x40).
//!
//! CPU time is the thread's (`CLOCK_THREAD_CPUTIME_ID`), so sleeping
//! between frames does not count. Between frames, outside the measured
//! part, a small delta is merged so the numbers (and the cells) change as
//! in a live run, and a history point is added every fourth frame. Target:
//! under 2 % of one core.
//!
//! `cargo bench --bench dashboard`

use std::io;
use std::time::{Duration, Instant, UNIX_EPOCH};

use locusta::dashboard::to_dashboard;
use locusta::engine::{IoDriver, RunState, RunStatus, Snapshot, Topology};
use locusta::http::Method;
use locusta::stats::{EntryId, Failure, RunStats, ShardStats};
use locusta_tui::ratatui::backend::CrosstermBackend;
use locusta_tui::ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use locusta_tui::ratatui::layout::Rect;
use locusta_tui::ratatui::{Terminal, TerminalOptions, Viewport};
use locusta_tui::{render, App, AppOptions, DashboardSnapshot};

const ENDPOINTS: usize = 100;
const HZ: u32 = 4;
const SECONDS: u32 = 10;
const HISTORY_SECONDS: u64 = 600;
const WIDTH: u16 = 120;
const HEIGHT: u16 = 40;

/// CPU time of the calling thread. `CLOCK_THREAD_CPUTIME_ID` is the
/// scheduler's exact runtime; `getrusage(RUSAGE_THREAD)` can be sampled at
/// the timer tick (4 ms), too coarse for a frame.
fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime fills the timespec it is given.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn latency_us(i: u64) -> u64 {
    100 + (i.wrapping_mul(2_654_435_761) % 50_000)
}

/// A shard's stats with 100 named entries.
fn shard_with_endpoints() -> (ShardStats, Vec<EntryId>) {
    let mut shard = ShardStats::new();
    let ids = (0..ENDPOINTS)
        .map(|i| {
            let method = if i % 3 == 0 {
                Method::Post
            } else {
                Method::Get
            };
            shard.entry(method, &format!("/api/v1/resource/{i:03}"))
        })
        .collect();
    (shard, ids)
}

/// Record `per_entry` requests on every entry (a few failing) and merge.
fn feed(run: &mut RunStats, shard: &mut ShardStats, ids: &[EntryId], per_entry: u64, seed: u64) {
    for (n, id) in ids.iter().enumerate() {
        for i in 0..per_entry {
            let k = seed + n as u64 * 1_000 + i;
            if k.is_multiple_of(97) {
                shard.record_failure(*id, latency_us(k), 0, Failure::Status(503));
            } else {
                shard.record(*id, latency_us(k), 512 + k % 1024);
            }
        }
    }
    let mut delta = shard.take_delta();
    run.merge(&mut delta);
    shard.recycle(delta);
}

struct Frames {
    snapshot: Duration,
    draw: Duration,
    frames: u32,
}

/// One view, paced at 4 Hz for `seconds` (not paced when 0: a smoke run
/// of a few frames, for `cargo test`).
fn measure(keys: &str, seconds: u32) -> Frames {
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut run = RunStats::new_at(false, start);
    let (mut shard, ids) = shard_with_endpoints();
    feed(&mut run, &mut shard, &ids, 200, 0);
    let mut now = start;
    let history_seconds = if seconds == 0 { 3 } else { HISTORY_SECONDS };
    for second in 0..history_seconds {
        now += Duration::from_secs(1);
        feed(&mut run, &mut shard, &ids, 1, second * 104_729);
        run.tick(now, 50);
    }

    let mut terminal = Terminal::with_options(
        CrosstermBackend::new(io::sink()),
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, WIDTH, HEIGHT)),
        },
    )
    .unwrap();
    let mut app = App::new(AppOptions {
        users: 50,
        spawn_rate: 10.0,
        step: 10,
        autostart: true,
    });
    app.resize(HEIGHT);
    for c in keys.chars() {
        app.handle_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }

    let status = RunStatus {
        state: RunState::Running,
        users: 50,
        target_users: 50,
        spawn_rate: 10.0,
        started_at: Some(Instant::now()),
    };
    let mut out = Frames {
        snapshot: Duration::ZERO,
        draw: Duration::ZERO,
        frames: 0,
    };
    let period = Duration::from_secs(1) / HZ;
    let mut next = Instant::now();
    let frames = if seconds == 0 { 2 } else { HZ * seconds };
    for frame in 0..frames {
        // Untimed: the run goes on between frames.
        feed(&mut run, &mut shard, &ids, 2, u64::from(frame) * 7_919);
        if frame % HZ == 0 {
            now += Duration::from_secs(1);
            run.tick(now, 50);
        }

        let t0 = thread_cpu();
        let snap = Snapshot {
            status,
            elapsed: Duration::from_secs(u64::from(frame) / 4 + 3_600),
            topology: Topology::Local {
                shards: 2,
                io_driver: IoDriver::IoUring,
            },
            stats: run.view(now),
        };
        let history = run.history().to_vec();
        let dash: DashboardSnapshot =
            to_dashboard(&snap, &history, "http://127.0.0.1:8080 with shop.lua");
        app.sync(&dash);
        let t1 = thread_cpu();
        terminal.draw(|f| render(f, &app, &dash)).unwrap();
        let t2 = thread_cpu();
        out.snapshot += t1 - t0;
        out.draw += t2 - t1;
        out.frames += 1;

        if seconds > 0 {
            next += period;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }
    out
}

fn report(label: &str, f: &Frames) -> f64 {
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(f.frames);
    let total = per(f.snapshot + f.draw);
    let share = total * f64::from(HZ) / 1e6 * 100.0;
    println!(
        "dashboard ({label}): {total:.0} µs CPU per frame, {share:.2} % of one core at {HZ} Hz \
         (snapshot {:.0} µs + draw {:.0} µs; {ENDPOINTS} endpoints, {HISTORY_SECONDS} s of history, {WIDTH}x{HEIGHT}, {} frames)",
        per(f.snapshot),
        per(f.draw),
        f.frames
    );
    share
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo test --all-targets` runs this without `--bench`: a smoke run.
    let seconds = if std::env::args().any(|a| a == "--bench") {
        SECONDS
    } else {
        println!("smoke run (cargo bench --bench dashboard measures)");
        0
    };
    let stats = measure("", seconds);
    let charts = measure("2", seconds);
    if seconds == 0 {
        println!("dashboard: {} frames drawn", stats.frames + charts.frames);
        return;
    }
    let a = report("Stats view", &stats);
    let b = report("Charts view", &charts);
    let worst = a.max(b);
    let total = (stats.snapshot + stats.draw).max(charts.snapshot + charts.draw);
    let per_frame = total.as_secs_f64() * 1e6 / f64::from(stats.frames);
    println!(
        "dashboard: {per_frame:.0} µs CPU per frame, {worst:.2} % of one core at {HZ} Hz (target < 2 %)"
    );
}
