//! The shape runner: a thread that asks the shape what to run once a
//! second (the first time at once), and the front end's side that applies
//! the answers to a [`RunControl`].
//!
//! The thread owns the shape's Lua state (a function shape; stages need
//! none), so a slow or stuck shape function never holds the front end: the
//! watchdog (`--max-blocking-time`) cuts it, and the answer is a failure.
//! The front end calls [`ShapeRunner::poll`] from its loop (every 50 ms):
//! the first answer starts the run (`start` or `start_open`), later ones
//! retarget it only when the target changed (an open-model rate is set
//! every second: it ramps), with `set_classes` first when the class list
//! changes. It never stops the run itself: `poll` returns a [`ShapeEnd`]
//! and the front end ends the run as it does on `-t`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};

use super::{check_answer, ShapeDecl, Target, Tick};
use crate::engine::{OpenModel, RunControl};
use crate::script::runtime::ShapeScript;
use crate::script::ScriptSource;

/// Why a shape ended the run.
#[derive(Clone, Debug, PartialEq)]
pub enum ShapeEnd {
    /// The shape returned nil / the last stage is over.
    Finished,
    /// It raised, returned garbage or ran too long: the message says what,
    /// with file:line.
    Failed(String),
}

enum Step {
    Tick(Tick),
    End(ShapeEnd),
}

/// Runs a shape for one run; dropping it stops its thread (a shape
/// function in the middle of a call ends at its watchdog limit).
pub struct ShapeRunner {
    steps: Receiver<Step>,
    stop: Arc<AtomicBool>,
    /// What was last applied (`None`: nothing yet).
    applied: Option<Tick>,
    /// The shape's current target, for front ends to show.
    current: Arc<Mutex<Option<Target>>>,
    ended: Option<ShapeEnd>,
}

impl ShapeRunner {
    /// Start asking `decl` (from `source`), once a second from now.
    /// `classes`: the run's class names (a shape may only list these);
    /// `pool`: the open model's users when rate stages set no `max_users`.
    pub fn start(
        decl: &ShapeDecl,
        source: Option<&ScriptSource>,
        classes: Vec<String>,
        pool: u32,
    ) -> ShapeRunner {
        let (tx, rx) = unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let decl = decl.clone();
            let source = source.cloned();
            let stop = stop.clone();
            let tx2 = tx.clone();
            std::thread::Builder::new()
                .name("locusta-shape".into())
                .spawn(move || ask(decl, source, classes, pool, &stop, &tx2))
        };
        if let Err(e) = thread {
            let _ = tx.send(Step::End(ShapeEnd::Failed(format!(
                "cannot start the shape's thread: {e}"
            ))));
        }
        log::info!("The load shape at {} drives the run", decl.at());
        ShapeRunner {
            steps: rx,
            stop,
            applied: None,
            current: Arc::new(Mutex::new(None)),
            ended: None,
        }
    }

    /// Apply what the shape asked for since the last call. `Some` once the
    /// shape ends the run (then on every later call): the caller stops it.
    pub fn poll(&mut self, control: &dyn RunControl) -> Option<ShapeEnd> {
        while self.ended.is_none() {
            match self.steps.try_recv() {
                Ok(Step::Tick(tick)) => self.apply(control, tick),
                Ok(Step::End(end)) => {
                    match &end {
                        ShapeEnd::Finished => log::info!("The load shape ended the run"),
                        ShapeEnd::Failed(why) => {
                            log::error!("load shape: {why}; stopping the run")
                        }
                    }
                    self.ended = Some(end);
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    self.ended = Some(ShapeEnd::Failed("the shape's thread died".into()));
                }
            }
        }
        self.ended.clone()
    }

    /// The target the shape asks for now (`None` before its first answer).
    pub fn target(&self) -> Option<Target> {
        *self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle on the current target that outlives borrows of the runner
    /// (the dashboard's snapshot reads it from another thread).
    pub fn target_handle(&self) -> Arc<Mutex<Option<Target>>> {
        self.current.clone()
    }

    fn apply(&mut self, control: &dyn RunControl, tick: Tick) {
        let first = self.applied.is_none();
        let prev = self.applied.as_ref();
        if first || prev.is_some_and(|p| p.classes != tick.classes) {
            if let Some(list) = &tick.classes {
                log::info!("Load shape: only {} run", list.join(", "));
            } else if !first {
                log::info!("Load shape: every user class runs");
            }
            control.set_classes(tick.classes.clone());
        }
        match (tick.target, prev.map(|p| p.target)) {
            (Target::Users { users, spawn_rate }, None) => control.start(users, spawn_rate),
            (Target::Rate { rate, max_users }, None) => {
                control.start_open(OpenModel { rate, max_users })
            }
            (Target::Users { users, spawn_rate }, Some(p)) => {
                if p != tick.target {
                    control.set_target(users, spawn_rate);
                }
            }
            (Target::Rate { rate, .. }, Some(_)) => control.set_arrival_rate(rate),
        }
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(tick.target);
        self.applied = Some(tick);
    }
}

impl Drop for ShapeRunner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The thread: one answer a second until the shape ends, fails or the
/// runner is dropped.
fn ask(
    decl: ShapeDecl,
    source: Option<ScriptSource>,
    classes: Vec<String>,
    pool: u32,
    stop: &AtomicBool,
    out: &Sender<Step>,
) {
    let script = match &decl {
        ShapeDecl::Stages(_) => None,
        ShapeDecl::Function { at } => {
            let loaded = source
                .as_ref()
                .ok_or_else(|| "no script to run the shape function from".to_string())
                .and_then(|src| ShapeScript::load(src).map_err(|e| e.to_string()));
            match loaded {
                Ok(s) => Some(s),
                Err(e) => {
                    let why = format!("cannot load the shape function of {at}: {e}");
                    let _ = out.send(Step::End(ShapeEnd::Failed(why)));
                    return;
                }
            }
        }
    };
    let started = Instant::now();
    for second in 1u64.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let run_time = started.elapsed().as_secs_f64();
        let step = match (&decl, &script) {
            (ShapeDecl::Stages(s), _) => match s.tick_at(run_time, pool) {
                Some(t) => Step::Tick(t),
                None => Step::End(ShapeEnd::Finished),
            },
            (ShapeDecl::Function { at }, Some(script)) => {
                let answer = script
                    .call(run_time)
                    .map_err(|e| format!("the shape function of {at} failed: {e}"))
                    .and_then(|a| {
                        check_answer(a, &classes).map_err(|e| {
                            format!("the shape function of {at} returned garbage: {e}")
                        })
                    });
                match answer {
                    Ok(Some(t)) => Step::Tick(t),
                    Ok(None) => Step::End(ShapeEnd::Finished),
                    Err(e) => Step::End(ShapeEnd::Failed(e)),
                }
            }
            (ShapeDecl::Function { .. }, None) => return,
        };
        let last = matches!(step, Step::End(_));
        if out.send(step).is_err() || last {
            return;
        }
        // Sleep in slices so a dropped runner ends the thread soon.
        let next = started + Duration::from_secs(second);
        while let Some(left) = next.checked_duration_since(Instant::now()) {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}
