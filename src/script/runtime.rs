//! The Lua state per shard: `require "locusta"`, user classes, tasks, task
//! sets, wait times, events, exceptions, and the users' task loops.
//!
//! Most of the user model is Lua, in the prelude (`lua/locusta.lua` and
//! `lua/prelude/*.lua`, compiled in): declarations, tag filtering, task
//! picking over a precomputed cumulative-weight array, the task loop with
//! its error handling. This file owns the shard's script as the engine sees
//! it ([`inspect`], [`ShardScript`]): loading and validating the script,
//! selecting classes, and turning one user into one coroutine (a Lua
//! thread driven by `watchdog::Watched`), which suspends on
//! `locusta.sleep`, on wait times (mlua async functions) and on requests
//! (parked with the driver, `script::park`).
//!
//! Submodules:
//! - `state`: building the Lua state (native helpers, prelude chunks) and
//!   loading the script.
//! - `stop`: graceful stop as Lua sees it, waits cut short by it (the
//!   shard's `StopWatch`, polled every [`STOP_POLL`]).
//! - `pause`: yields for users whose tasks never suspend.
//! - `errors`: error messages, tracebacks, load-time error locations.
//! - `watchdog`: Lua code that runs too long without yielding gets an error.
//! - `custom_report`: `report_to_master` listeners on shard 0 of a worker,
//!   `worker_report` listeners in the master's own state.
//! - `shape`: the script's load shape (`locusta.shape`/`locusta.stages`)
//!   for config and for the shape runner's own Lua state.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use mlua::{Function, Lua, Table, Value};

use super::limits::RunStop;
use super::{ClassInfo, ScriptError, ScriptSource, TagFilter};
use crate::engine::{StopSignal, TaskRuns};
use crate::http::{ClientConfig, Target};
use crate::stats::ShardStats;

mod arming;
mod custom_report;
mod errors;
mod naps;
mod pause;
mod shape;
mod state;
mod stop;
mod watchdog;

pub use custom_report::WorkerReportScript;
pub use errors::error_text;
use errors::{load_error, split_traceback};
pub use shape::ShapeScript;
use state::State;
pub(crate) use state::{describe_value as describe, nested_error};
pub(crate) use stop::{current_user, kill_point};
use stop::{stop_ptr, StopHandle};
pub(crate) use watchdog::call_nested;
use watchdog::{watched_call, Watchdog};

/// Registry key of the `request` event's listeners (a sequence of
/// functions; the client calls them per request only when non-empty).
pub const REQUEST_LISTENERS: &str = "locusta.request_listeners";

/// How often the shard looks at the stop flags of users in a wait.
pub const STOP_POLL: Duration = Duration::from_millis(50);

/// Load the script in a throwaway Lua state to validate it and describe its
/// classes (main thread, at startup, before any shard starts).
pub fn inspect(src: &ScriptSource, tags: &TagFilter) -> Result<Vec<ClassInfo>, ScriptError> {
    inspect_with_shape(src, tags).map(|(classes, _)| classes)
}

/// As [`inspect`], and the load shape the script declares, if any.
pub fn inspect_with_shape(
    src: &ScriptSource,
    tags: &TagFilter,
) -> Result<(Vec<ClassInfo>, Option<crate::shape::ShapeDecl>), ScriptError> {
    let stats = Rc::new(RefCell::new(ShardStats::new()));
    let dog = Watchdog::new(src.limits.max_blocking, None);
    let state = State::new(src, 0, stats, ClientConfig::default(), dog, None)?;
    let classes = state.finalize(src, tags)?;
    let shape = shape::read_decl(&state.internal).map_err(|e| load_error(src, &e))?;
    Ok((classes, shape))
}

/// What a shard's script needs from the engine.
pub struct ShardContext {
    /// 0-based; `test_start`/`test_stop` listeners run on shard 0 only.
    pub shard: usize,
    pub stats: Rc<RefCell<ShardStats>>,
    pub client: ClientConfig,
    /// From `-H`; a class's `host = "http://..."` overrides it.
    pub default_host: Option<Target>,
    /// The run's stop deadline, set by the control thread: past it, Lua
    /// code that does not yield is interrupted (`None` in tests that stop
    /// users themselves).
    pub run_stop: Option<Arc<RunStop>>,
    /// The run's merged stats, for `locusta.stats` (`None`: empty stats,
    /// in tests that run no engine).
    pub run_stats: Option<super::stats::StatsHandle>,
}

/// One Lua state per shard (`!Send`; created on the shard thread). Keep it
/// alive while any of its users' futures is alive.
pub struct ShardScript {
    lua: Lua,
    run_user: Function,
    fire: Function,
    /// The prelude's internal table (task counts).
    internal: Table,
    stats: Rc<RefCell<ShardStats>>,
    shard: usize,
    classes: Vec<ClassInfo>,
    dog: Rc<Watchdog>,
    /// `locusta.events.report_to_master`'s listener list (its length is
    /// read per report, so no listener costs no Lua call).
    report_listeners: Table,
}

impl ShardScript {
    /// `classes`: the selected class names, in the order the engine indexes
    /// them (empty: every class, in script order).
    pub fn load(
        src: &ScriptSource,
        tags: &TagFilter,
        classes: &[String],
        ctx: ShardContext,
    ) -> Result<ShardScript, ScriptError> {
        let dog = Watchdog::new(src.limits.max_blocking, ctx.run_stop.clone());
        let state = State::new(
            src,
            ctx.shard,
            ctx.stats.clone(),
            ctx.client,
            dog,
            ctx.run_stats,
        )?;
        let all = state.finalize(src, tags)?;
        let names: Vec<String> = if classes.is_empty() {
            all.iter().map(|c| c.name.clone()).collect()
        } else {
            classes.to_vec()
        };
        let mut selected = Vec::with_capacity(names.len());
        let mut hosts = Vec::with_capacity(names.len());
        for name in &names {
            let Some(info) = all.iter().find(|c| &c.name == name) else {
                let known: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
                return Err(ScriptError::Load {
                    message: format!(
                        "{}: unknown user class \"{name}\" (the script has: {})",
                        src.path.display(),
                        known.join(", ")
                    ),
                });
            };
            let host = match &info.host {
                Some(url) if url == super::DEMO_HOST => ctx.default_host.clone(),
                Some(url) => Some(Target::parse(url).map_err(|e| ScriptError::Load {
                    message: format!("{}: class {}: host: {e}", src.path.display(), info.name),
                })?),
                None => ctx.default_host.clone(),
            };
            hosts.push(host);
            selected.push(info.clone());
        }
        *state.hosts.borrow_mut() = hosts;
        let select: Function = state
            .internal
            .get("select")
            .map_err(|e| load_error(src, &e))?;
        select.call::<()>(names).map_err(|e| load_error(src, &e))?;
        let run_user = state
            .internal
            .get("run_user")
            .map_err(|e| load_error(src, &e))?;
        let fire = state
            .internal
            .get("fire")
            .map_err(|e| load_error(src, &e))?;
        let report_listeners = custom_report::listeners(&state.internal, "report_to_master")
            .map_err(|e| load_error(src, &e))?;
        Ok(ShardScript {
            report_listeners,
            lua: state.lua,
            run_user,
            fire,
            internal: state.internal.clone(),
            stats: ctx.stats,
            shard: ctx.shard,
            classes: selected,
            dog: state.dog,
        })
    }

    /// The selected classes, in the engine's order.
    pub fn classes(&self) -> &[ClassInfo] {
        &self.classes
    }

    /// One simulated user of `classes[class]`, running until `stop` says so:
    /// on_start once, then tasks picked by weight with the class's wait_time
    /// between them, on_stop on a graceful stop. A graceful stop lets the
    /// current task finish and cuts a wait short; a forced stop is dropping
    /// this future. If on_start raises, the error is counted and the user
    /// ends (Locust's behaviour), without tasks or on_stop.
    pub fn user(&self, class: usize, stop: Rc<StopSignal>) -> Pin<Box<dyn Future<Output = ()>>> {
        let stats = self.stats.clone();
        let ptr = stop_ptr(&stop);
        let handle = match self.lua.create_userdata(StopHandle(stop.clone())) {
            Ok(h) => h,
            Err(e) => {
                record_error(&stats, &e);
                return Box::pin(std::future::ready(()));
            }
        };
        let args = (class, ptr, handle);
        let call = match watched_call::<Value>(
            &self.lua,
            &self.dog,
            &self.run_user,
            args,
            Some(stop.clone()),
        ) {
            Ok(c) => c,
            Err(e) => {
                record_error(&stats, &e);
                return Box::pin(std::future::ready(()));
            }
        };
        Box::pin(async move {
            let _keep = stop;
            if let Err(e) = call.await {
                record_error(&stats, &e);
            }
        })
    }

    /// Fire `locusta.events.test_start` listeners (shard 0 only; errors go to
    /// the exceptions table).
    pub async fn test_start(&self) {
        self.fire_event("test_start").await
    }

    /// Fire `locusta.events.test_stop` listeners (shard 0 only; the engine
    /// calls it once every shard's last stats are merged).
    pub async fn test_stop(&self) {
        self.fire_event("test_stop").await
    }

    async fn fire_event(&self, which: &str) {
        self.event(which, None).await
    }

    /// Fire a `locusta.events` event the engine drives (`init`,
    /// `spawning_complete(user_count)`, `reset_stats`, `quitting`, ...):
    /// shard 0 only, so once per process; errors go to the exceptions
    /// table.
    pub async fn event(&self, which: &str, arg: Option<u32>) {
        if self.shard != 0 {
            return;
        }
        let call = watched_call::<()>(&self.lua, &self.dog, &self.fire, (which, arg), None);
        let outcome = match call {
            Ok(c) => c.await,
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            record_error(&self.stats, &e);
        }
    }

    /// How often each top-level task of each selected class ran since the
    /// start or [`reset_task_runs`](Self::reset_task_runs) (once a second,
    /// for the report's task ratio; nothing is counted per task in Rust).
    pub fn task_runs(&self) -> Vec<TaskRuns> {
        let counts: Vec<u64> = match self.internal_fn("task_runs").and_then(|f| f.call(())) {
            Ok(c) => c,
            Err(e) => {
                log::debug!("cannot read the task counts: {e}");
                return Vec::new();
            }
        };
        let names = self
            .classes
            .iter()
            .flat_map(|c| c.tasks.iter().map(move |t| (&c.name, &t.name)));
        names
            .zip(counts)
            .map(|((class, task), runs)| TaskRuns {
                class: class.clone(),
                task: task.clone(),
                runs,
            })
            .collect()
    }

    /// Count tasks from zero again (a stats reset).
    pub fn reset_task_runs(&self) {
        if let Err(e) = self
            .internal_fn("reset_task_runs")
            .and_then(|f| f.call::<()>(()))
        {
            log::debug!("cannot reset the task counts: {e}");
        }
    }

    fn internal_fn(&self, name: &str) -> mlua::Result<Function> {
        self.internal.get(name)
    }

    /// Run a chunk in this state and describe its result (tests, debugging).
    #[doc(hidden)]
    pub fn eval(&self, code: &str) -> String {
        let _slice = self.dog.sync_slice(&self.lua);
        match self.lua.load(code).set_name("=eval").eval::<Value>() {
            Ok(v) => match v.to_string() {
                Ok(s) => s,
                Err(e) => error_text(&e),
            },
            Err(e) => format!("error: {}", error_text(&e)),
        }
    }
}

fn record_error(stats: &Rc<RefCell<ShardStats>>, e: &mlua::Error) {
    let (message, traceback) = split_traceback(e);
    stats.borrow_mut().record_exception(&message, &traceback);
}
