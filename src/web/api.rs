//! Locust's HTTP API (its `web.py`, 2.47): the same paths, form fields and
//! JSON keys, so Locust's own clients and exporters work unchanged.
//!
//! This file owns the routing of the API paths and the endpoints that
//! drive the run: `POST /swarm` (start, or change the users of a running
//! swarm), `POST /stop`, `/stats/reset`, and the `run_time` timer a swarm
//! may set. What the read-only endpoints say lives in `api/stats_json.rs`
//! (JSON) and `api/downloads.rs` (CSV files and the HTML report). It does
//! not own the page, `/metrics`, or the server's gate (base path, auth,
//! body limit): see `page`, `metrics`, `server`.
//!
//! Everything goes through [`RunControl`](crate::engine::RunControl); no
//! endpoint touches a shard. Form values from outside are checked here and
//! refused with a 400 naming the field, never a panic.

mod downloads;
mod form;
mod stats_json;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::json;

use super::{WebContext, WebRequest, WebResponse};
use crate::config::Role;
use crate::engine::{RunControl, RunState, Workload};

pub use form::{parse_form, FormError};
/// For the page and `/metrics`: Locust's state names and the body of
/// `/stats/requests`, so every endpoint says the same.
pub use stats_json::{requests_json, state_name};

/// Users one `/swarm` may ask for, whatever the machine (a master's users
/// live on workers; a standalone run is also checked against memory).
pub const MAX_USER_COUNT: u32 = 10_000_000;
/// Fastest spawn rate accepted (users per second).
pub const MAX_SPAWN_RATE: f64 = 1_000_000.0;
/// Longest `run_time` accepted (a year): longer is a typo.
pub const MAX_RUN_TIME: Duration = Duration::from_secs(365 * 24 * 3600);

pub fn handle(req: &WebRequest, ctx: &WebContext) -> WebResponse {
    let method = &req.method;
    let get = *method == Method::GET || *method == Method::HEAD;
    let post = *method == Method::POST;
    let (ok, resp): (bool, fn(&WebRequest, &WebContext) -> WebResponse) = match req.path.as_str() {
        "/swarm" => (post, swarm),
        "/stop" => (post, stop),
        // Locust 2.47 takes POST; GET too, as older Locust UIs sent it
        // (not HEAD: a HEAD must change nothing).
        "/stats/reset" => (post || *method == Method::GET, reset),
        "/stats/requests" => (get, stats_json::requests),
        "/exceptions" => (get, stats_json::exceptions),
        "/tasks" => (get, stats_json::tasks),
        "/stats/open_model" => (get, stats_json::open_model),
        "/stats/requests/csv" => (get, downloads::requests_csv),
        "/stats/requests_full_history/csv" => (get, downloads::full_history_csv),
        "/stats/failures/csv" => (get, downloads::failures_csv),
        "/exceptions/csv" => (get, downloads::exceptions_csv),
        "/stats/report" => (get, downloads::report),
        _ => return WebResponse::not_found(),
    };
    if !ok {
        let mut r = WebResponse::text(405, format!("{} does not take {method}", req.path));
        let allow = if matches!(req.path.as_str(), "/swarm" | "/stop") {
            "POST"
        } else if req.path == "/stats/reset" {
            "GET, POST"
        } else {
            "GET, HEAD"
        };
        r.headers.push(("Allow", allow.into()));
        return r;
    }
    resp(req, ctx)
}

/// Locust's answer to a refused `/swarm` (`success: false`), with a 400.
fn refuse(ctx: &WebContext, why: impl Into<String>) -> WebResponse {
    let message = why.into();
    log::warn!("web API: /swarm refused: {message}");
    let body = json!({"success": false, "message": message, "host": configured_host(ctx)});
    WebResponse::new(400, "application/json", body.to_string())
}

/// The host the run loads (Locust's `environment.host`).
fn configured_host(ctx: &WebContext) -> String {
    crate::headless::target_host(&ctx.cfg)
}

/// What a `/swarm` form asks for, checked.
#[derive(Debug, PartialEq)]
struct SwarmForm {
    user_count: u32,
    spawn_rate: f64,
    run_time: Option<Duration>,
    /// locusta's own field for open-model runs (`--arrival-rate`):
    /// iterations per second; `None` keeps the configured rate.
    arrival_rate: Option<f64>,
}

fn swarm(req: &WebRequest, ctx: &WebContext) -> WebResponse {
    let fields = match parse_form(&req.body) {
        Ok(f) => f,
        Err(e) => return refuse(ctx, e.to_string()),
    };
    let form = match check_swarm(&fields, ctx) {
        Ok(f) => f,
        Err(why) => return refuse(ctx, why),
    };
    if ctx.cfg.shape.is_some() {
        return refuse(
            ctx,
            "this run follows its script's load shape, which sets users and rates itself: \
             start it with --autostart or --headless",
        );
    }
    let control = &ctx.control;
    let running = matches!(
        control.status().state,
        RunState::Spawning | RunState::Running
    );
    if let Some(configured) = ctx.cfg.open_model {
        // An open-model run: user_count is the pool, the rate is
        // --arrival-rate unless the form gives arrival_rate.
        if running {
            let Some(rate) = form.arrival_rate else {
                return refuse(
                    ctx,
                    "an open-model run keeps its pool while it runs: send arrival_rate \
                     (iterations per second) to change its rate, or stop it first",
                );
            };
            RUN_TIMER.cancel();
            log::info!("web API: changing the arrival rate to {rate}/s");
            control.set_arrival_rate(rate);
        } else {
            RUN_TIMER.cancel();
            let model = crate::engine::OpenModel {
                rate: form.arrival_rate.unwrap_or(configured.rate),
                max_users: form.user_count,
            };
            log::info!(
                "web API: starting an open-model run at {}/s with up to {} user(s)",
                model.rate,
                model.max_users
            );
            control.start_open(model);
        }
        return swarm_started(ctx, form.run_time);
    }
    RUN_TIMER.cancel();
    if running {
        log::info!(
            "web API: changing the swarm to {} user(s) at {}/s",
            form.user_count,
            form.spawn_rate
        );
        control.set_target(form.user_count, form.spawn_rate);
    } else {
        log::info!(
            "web API: starting {} user(s) at {}/s",
            form.user_count,
            form.spawn_rate
        );
        control.start(form.user_count, form.spawn_rate);
    }
    swarm_started(ctx, form.run_time)
}

/// Locust's answer to a started swarm; arms the run-time timer.
fn swarm_started(ctx: &WebContext, run_time: Option<Duration>) -> WebResponse {
    let mut body = json!({
        "success": true,
        "message": "Swarming started",
        "host": configured_host(ctx),
    });
    if let Some(t) = run_time {
        log::info!("Run time limit set to {} seconds", t.as_secs());
        RUN_TIMER.arm(ctx.control.clone(), t);
        body["run_time"] = json!(t.as_secs());
    }
    WebResponse::json(&body)
}

/// Check the fields Locust's `/swarm` reads; others are ignored, as
/// Locust ignores fields that are no option of the run.
fn check_swarm(fields: &[(String, String)], ctx: &WebContext) -> Result<SwarmForm, String> {
    let field = |name: &str| {
        fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
    };
    let user_count = match field("user_count") {
        None => return Err("missing user_count (the number of users, e.g. user_count=10)".into()),
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| {
                format!("invalid user_count value: {v:?} (must be a whole number, 0 or more)")
            })
            .and_then(|n| {
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n <= MAX_USER_COUNT)
                    .ok_or_else(|| {
                        format!("user_count {n} is over the most accepted, {MAX_USER_COUNT}")
                    })
            })?,
    };
    let spawn_rate = match field("spawn_rate") {
        None => {
            return Err("missing spawn_rate (users started per second, e.g. spawn_rate=5)".into())
        }
        Some(v) => match v.parse::<f64>() {
            Ok(r) if r.is_finite() && r > 0.0 && r <= MAX_SPAWN_RATE => r,
            Ok(_) => {
                return Err(format!(
                    "invalid spawn_rate value: {v:?} (must be above 0 and at most {MAX_SPAWN_RATE})"
                ))
            }
            Err(_) => {
                return Err(format!(
                    "invalid spawn_rate value: {v:?} (must be a number)"
                ))
            }
        },
    };
    let run_time = match field("run_time") {
        None | Some("") => None,
        Some(v) => match crate::config::parse_run_time(v) {
            Ok(t) if t > Duration::ZERO && t <= MAX_RUN_TIME => Some(t),
            _ => {
                return Err(format!(
                    "invalid run_time value: {v:?}; valid run_time formats are: 20, 20s, 3m, 2h, \
                     1h20m, 3h30m10s, etc. (above 0, at most a year)"
                ))
            }
        },
    };
    if let Some(host) = field("host") {
        check_host(host, ctx)?;
    }
    let arrival_rate = match field("arrival_rate") {
        None | Some("") => None,
        Some(v) => match v.parse::<f64>() {
            Ok(r) if r.is_finite() && r > 0.0 && r <= crate::engine::MAX_ARRIVAL_RATE => Some(r),
            _ => {
                return Err(format!(
                "invalid arrival_rate value: {v:?} (iterations per second, above 0 and at most {})",
                crate::engine::MAX_ARRIVAL_RATE
            ))
            }
        },
    };
    if arrival_rate.is_some() && ctx.cfg.open_model.is_none() {
        return Err(
            "arrival_rate applies to open-model runs only (start locusta with --arrival-rate)"
                .into(),
        );
    }
    fits(user_count, ctx)?;
    Ok(SwarmForm {
        user_count,
        spawn_rate,
        run_time,
        arrival_rate,
    })
}

/// The engine's target is fixed when it starts (each shard's connections
/// and TLS are built for it): a `host` field may only repeat it.
fn check_host(host: &str, ctx: &WebContext) -> Result<(), String> {
    let configured = configured_host(ctx);
    let norm = |h: &str| h.trim().trim_end_matches('/').to_ascii_lowercase();
    if host.is_empty() || norm(host) == norm(&configured) {
        return Ok(());
    }
    Err(format!(
        "host {host:?} differs from this run's host {configured:?}: locusta fixes the target \
         when it starts; restart it with -H {host} (or send host empty)"
    ))
}

/// A standalone run's users must fit in this machine's memory and file
/// table, as at the start (`-u`); a master's live on its workers.
fn fits(users: u32, ctx: &WebContext) -> Result<(), String> {
    if ctx.cfg.role != Role::Standalone {
        return Ok(());
    }
    let per_user = match ctx.cfg.workload {
        Workload::Raw { .. } => crate::limits::RAW_USER_BYTES,
        Workload::Script { .. } => crate::limits::LUA_USER_BYTES,
    };
    let machine = crate::limits::Machine::read(crate::limits::open_files_limit());
    crate::limits::check_fits(u64::from(users), per_user, ctx.cfg.shards, &machine)
        .map_err(|e| format!("user_count {users}: {e}"))
}

fn stop(_req: &WebRequest, ctx: &WebContext) -> WebResponse {
    RUN_TIMER.cancel();
    log::info!("web API: stopping the swarm");
    ctx.control.stop();
    WebResponse::json(&json!({"success": true, "message": "Test stopped"}))
}

fn reset(_req: &WebRequest, ctx: &WebContext) -> WebResponse {
    log::info!("Resetting stats");
    ctx.control.reset_stats();
    WebResponse::text(200, "ok")
}

/// A swarm's `run_time`: stops the run when it passes, unless a later
/// `/swarm` or `/stop` cancelled it first. Process-wide because a process
/// runs one web server over one run; each arming is a generation, and a
/// waiting thread only stops the run if its generation is still current.
pub struct RunTimer {
    generation: AtomicU64,
}

/// How often a waiting timer looks whether it was cancelled.
const TIMER_POLL: Duration = Duration::from_millis(100);

pub static RUN_TIMER: RunTimer = RunTimer {
    generation: AtomicU64::new(0),
};

impl RunTimer {
    /// Cancel the armed timer, if any.
    pub fn cancel(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Stop `control`'s run after `after` (cancelling the one armed).
    pub fn arm(&'static self, control: Arc<dyn RunControl>, after: Duration) {
        let mine = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let deadline = Instant::now() + after;
        let spawned = std::thread::Builder::new()
            .name("locusta-run-time".into())
            .spawn(move || {
                while self.generation.load(Ordering::SeqCst) == mine {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        log::info!("--run-time limit reached, stopping the swarm");
                        control.stop();
                        return;
                    }
                    std::thread::sleep(left.min(TIMER_POLL));
                }
            });
        if let Err(e) = spawned {
            log::error!(
                "web API: cannot start the run_time timer: {e}; the run will not stop by itself"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn swarm_form_values_are_checked() {
        // check_swarm's number rules need no run: only `fits` and `host`
        // read the context, and those are tested end to end.
        let bad = [
            (vec![("spawn_rate", "1")], "missing user_count"),
            (vec![("user_count", "1")], "missing spawn_rate"),
            (
                vec![("user_count", "abc"), ("spawn_rate", "1")],
                "user_count",
            ),
            (
                vec![("user_count", "-1"), ("spawn_rate", "1")],
                "user_count",
            ),
            (
                vec![("user_count", "99999999999"), ("spawn_rate", "1")],
                "over",
            ),
            (vec![("user_count", "1"), ("spawn_rate", "0")], "spawn_rate"),
            (
                vec![("user_count", "1"), ("spawn_rate", "nan")],
                "spawn_rate",
            ),
            (
                vec![("user_count", "1"), ("spawn_rate", "inf")],
                "spawn_rate",
            ),
            (
                vec![("user_count", "1"), ("spawn_rate", "1"), ("run_time", "5x")],
                "run_time",
            ),
            (
                vec![("user_count", "1"), ("spawn_rate", "1"), ("run_time", "0")],
                "run_time",
            ),
        ];
        for (form, want) in bad {
            let err = check_numbers(&fields(&form)).unwrap_err();
            assert!(err.contains(want), "{form:?}: {err}");
        }
        let ok = check_numbers(&fields(&[
            ("user_count", "10"),
            ("spawn_rate", "2.5"),
            ("run_time", "1h30m"),
        ]))
        .unwrap();
        assert_eq!(
            ok,
            SwarmForm {
                user_count: 10,
                spawn_rate: 2.5,
                run_time: Some(Duration::from_secs(5400)),
                arrival_rate: None,
            }
        );
    }

    /// `check_swarm` without the context's checks (host, memory).
    fn check_numbers(fields: &[(String, String)]) -> Result<SwarmForm, String> {
        let cli = <crate::cli::Cli as clap::Parser>::parse_from([
            "locusta",
            "--master",
            "http://127.0.0.1:9/",
        ]);
        let cfg = crate::config::RunConfig::from_cli(&cli).map_err(|e| e.to_string())?;
        let ctx = WebContext {
            control: Arc::new(NoRun),
            cfg: Arc::new(cfg),
        };
        check_swarm(fields, &ctx)
    }

    struct NoRun;

    impl RunControl for NoRun {
        fn start(&self, _: u32, _: f64) {}
        fn set_target(&self, _: u32, _: f64) {}
        fn stop(&self) {}
        fn reset_stats(&self) {}
        fn status(&self) -> crate::engine::RunStatus {
            unreachable!("not read by check_swarm")
        }
        fn snapshot(&self) -> crate::engine::Snapshot {
            unreachable!("not read by check_swarm")
        }
        fn history(&self) -> Vec<crate::stats::HistoryPoint> {
            Vec::new()
        }
        fn histograms(&self) -> Vec<crate::stats::EntryHistogram> {
            Vec::new()
        }
    }
}
