//! Load shapes (Locust's LoadTestShape): what a script declares with
//! `locusta.shape(fn)` or `locusta.stages {...}`, what it asks for at a
//! given second of the run, and the runner that asks once a second and
//! drives a [`RunControl`](crate::engine::RunControl) with the answers.
//!
//! Owns: the declaration ([`ShapeDecl`], read from the script by
//! `script::runtime::shape`), the stages' schedule ([`Stages::tick_at`]),
//! checking a shape function's answers ([`check_answer`]) and the runner
//! thread ([`ShapeRunner`]). It does not own the Lua side (the prelude's
//! `lua/prelude/shape.lua` records and checks declarations; the runner's
//! Lua state is `script::runtime::ShapeScript`), the engine's ramp or open
//! model (it only calls `start`/`set_target`/`start_open`/
//! `set_arrival_rate`/`set_classes`), nor where reports go (the front end
//! ends the run when the shape says so).

mod runner;

pub use runner::{ShapeEnd, ShapeRunner};

/// The runner for `cfg`'s shape, started now (`None`: no shape). Call it
/// where the run would start: it starts the run at its first answer.
pub fn start_for(cfg: &crate::config::RunConfig) -> Option<ShapeRunner> {
    let decl = cfg.shape.as_ref()?;
    let source = match &cfg.workload {
        crate::engine::Workload::Script { source, .. } => Some(source),
        crate::engine::Workload::Raw { .. } => None,
    };
    let classes = cfg.classes.iter().map(|c| c.name.clone()).collect();
    Some(ShapeRunner::start(
        decl,
        source,
        classes,
        cfg.max_users.unwrap_or(cfg.users),
    ))
}

/// Most users a shape may ask for at once: more is a shape's bug (a unit
/// mix-up, a runaway formula), not a load test; it ends the run.
pub const MAX_SHAPE_USERS: u32 = 10_000_000;

/// What the script declared.
#[derive(Clone, Debug, PartialEq)]
pub enum ShapeDecl {
    /// `locusta.shape(fn)` at `at` (`file:line`): called once a second in
    /// the runner's own Lua state.
    Function { at: String },
    /// `locusta.stages {...}`.
    Stages(Stages),
}

impl ShapeDecl {
    /// `file:line` of the declaration.
    pub fn at(&self) -> &str {
        match self {
            ShapeDecl::Function { at } => at,
            ShapeDecl::Stages(s) => &s.at,
        }
    }

    /// Rate stages: an open-model run.
    pub fn is_open_model(&self) -> bool {
        match self {
            ShapeDecl::Function { .. } => false,
            ShapeDecl::Stages(s) => s
                .stages
                .iter()
                .any(|st| matches!(st.target, StageTarget::Rate(_))),
        }
    }

    /// Every class the stages list must be one of `run` (the run's
    /// classes); the error is `file:line: ...`.
    pub fn check_classes(&self, run: &[&str]) -> Result<(), String> {
        match self.listed_classes().into_iter().find(|n| !run.contains(n)) {
            Some(bad) => Err(format!(
                "{}: locusta.stages: unknown user class \"{bad}\" (the run has: {})",
                self.at(),
                run.join(", ")
            )),
            None => Ok(()),
        }
    }

    /// Every class name the declaration lists (stages' `classes`).
    pub fn listed_classes(&self) -> Vec<&str> {
        match self {
            ShapeDecl::Function { .. } => Vec::new(),
            ShapeDecl::Stages(s) => s
                .stages
                .iter()
                .filter_map(|st| st.classes.as_ref())
                .flatten()
                .map(String::as_str)
                .collect(),
        }
    }
}

/// k6's stages: each lasts `duration` seconds and ends at the sum of the
/// durations so far; after the last one the run ends.
#[derive(Clone, Debug, PartialEq)]
pub struct Stages {
    pub at: String,
    pub stages: Vec<Stage>,
    /// Rate stages: the arrival rate the first stage ramps from.
    pub start_rate: f64,
    /// Rate stages: the user pool (`None`: `--max-users`, else `-u`).
    pub max_users: Option<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub duration: f64,
    pub target: StageTarget,
    /// Only these classes run during the stage (`None`: all).
    pub classes: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StageTarget {
    /// Hold `users`, ramping at `spawn_rate` (`None`: as fast as it takes
    /// to get there by the end of the stage, at least 1/s).
    Users { users: u32, spawn_rate: Option<f64> },
    /// Arrival rate at the end of the stage (linear ramp from the previous).
    Rate(f64),
}

/// What a shape asks for at one second.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub target: Target,
    /// Only these classes run (`None`: all).
    pub classes: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// Closed model: `users`, ramped at `spawn_rate` users/s.
    Users { users: u32, spawn_rate: f64 },
    /// Open model: `rate` iterations/s from a pool of `max_users`.
    Rate { rate: f64, max_users: u32 },
}

impl Target {
    /// As the dashboard shows it: `100 users @ 10/s` or `250.0 it/s`.
    pub fn describe(&self) -> String {
        match self {
            Target::Users { users, spawn_rate } => format!("{users} users @ {spawn_rate}/s"),
            Target::Rate { rate, .. } => format!("{rate:.1} it/s"),
        }
    }
}

impl Stages {
    /// What the stages ask for `run_time` seconds into the run; `None`
    /// once the last stage is over. `pool`: the open model's user pool
    /// when the stages do not set `max_users`.
    pub fn tick_at(&self, run_time: f64, pool: u32) -> Option<Tick> {
        let mut start = 0.0;
        let mut prev_users = 0u32;
        let mut prev_rate = self.start_rate;
        for stage in &self.stages {
            let end = start + stage.duration;
            if run_time < end {
                let target = match stage.target {
                    StageTarget::Users { users, spawn_rate } => Target::Users {
                        users,
                        spawn_rate: spawn_rate.unwrap_or_else(|| {
                            (f64::from(users.abs_diff(prev_users)) / stage.duration).max(1.0)
                        }),
                    },
                    StageTarget::Rate(rate) => {
                        // The rate holds for the second from `run_time`
                        // (one tick): the ramp's value in its middle, so
                        // the iterations of a ramp add up to its area.
                        let mid = (run_time + 0.5).min(end);
                        let done = ((mid - start) / stage.duration).clamp(0.0, 1.0);
                        Target::Rate {
                            rate: prev_rate + (rate - prev_rate) * done,
                            max_users: self.max_users.unwrap_or(pool).max(1),
                        }
                    }
                };
                return Some(Tick {
                    target,
                    classes: stage.classes.clone(),
                });
            }
            start = end;
            match stage.target {
                StageTarget::Users { users, .. } => prev_users = users,
                StageTarget::Rate(rate) => prev_rate = rate,
            }
        }
        None
    }
}

/// A shape function's answer as Lua gave it, before checking.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// `nil`: the run ends.
    End,
    Values {
        users: AnswerValue,
        spawn_rate: AnswerValue,
        classes: AnswerClasses,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum AnswerValue {
    Number(f64),
    /// Anything else, described (`a string "x"`, `a table`).
    Other(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum AnswerClasses {
    All,
    List(Vec<String>),
    /// Not a list of strings: what it was.
    Bad(String),
}

/// Check a shape function's answer: `Ok(None)` ends the run, an error
/// says what was wrong (the caller adds where).
pub fn check_answer(answer: Answer, known: &[String]) -> Result<Option<Tick>, String> {
    let (users, spawn_rate, classes) = match answer {
        Answer::End => return Ok(None),
        Answer::Values {
            users,
            spawn_rate,
            classes,
        } => (users, spawn_rate, classes),
    };
    let users = match users {
        AnswerValue::Number(u)
            if u.is_finite() && u >= 0.0 && u.fract() == 0.0 && u <= f64::from(MAX_SHAPE_USERS) =>
        {
            u as u32
        }
        AnswerValue::Number(u) => {
            return Err(format!(
                "users must be an integer from 0 to {MAX_SHAPE_USERS} (got {u})"
            ))
        }
        AnswerValue::Other(what) => {
            return Err(format!(
                "users must be a number (got {what}); return users, spawn_rate [, classes], or nil to end the run"
            ))
        }
    };
    let spawn_rate = match spawn_rate {
        AnswerValue::Number(r) if r.is_finite() && r > 0.0 => r,
        AnswerValue::Number(r) => return Err(format!("spawn_rate must be a number > 0 (got {r})")),
        AnswerValue::Other(what) => {
            return Err(format!("spawn_rate must be a number > 0 (got {what})"))
        }
    };
    let classes = match classes {
        AnswerClasses::All => None,
        AnswerClasses::Bad(what) => {
            return Err(format!(
                "the third value must be a list of user class names (got {what})"
            ))
        }
        AnswerClasses::List(names) => {
            if names.is_empty() {
                return Err("the class list is empty: name at least one user class".into());
            }
            if let Some(bad) = names.iter().find(|n| !known.contains(n)) {
                return Err(format!(
                    "unknown user class \"{bad}\" (the run has: {})",
                    known.join(", ")
                ));
            }
            Some(names)
        }
    };
    Ok(Some(Tick {
        target: Target::Users { users, spawn_rate },
        classes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(n: u32, rate: f64) -> StageTarget {
        StageTarget::Users {
            users: n,
            spawn_rate: Some(rate),
        }
    }

    fn stages(list: Vec<(f64, StageTarget)>) -> Stages {
        Stages {
            at: "s.lua:1".into(),
            stages: list
                .into_iter()
                .map(|(duration, target)| Stage {
                    duration,
                    target,
                    classes: None,
                })
                .collect(),
            start_rate: 0.0,
            max_users: None,
        }
    }

    #[test]
    fn stages_end_at_the_sum_of_durations() {
        let s = stages(vec![(2.0, users(5, 5.0)), (3.0, users(10, 1.0))]);
        let at = |t| s.tick_at(t, 1).map(|t| t.target);
        assert_eq!(
            at(0.0),
            Some(Target::Users {
                users: 5,
                spawn_rate: 5.0
            })
        );
        assert_eq!(
            at(1.99),
            Some(Target::Users {
                users: 5,
                spawn_rate: 5.0
            })
        );
        assert_eq!(
            at(2.0),
            Some(Target::Users {
                users: 10,
                spawn_rate: 1.0
            })
        );
        assert_eq!(
            at(4.9),
            Some(Target::Users {
                users: 10,
                spawn_rate: 1.0
            })
        );
        assert_eq!(at(5.0), None);
    }

    #[test]
    fn rate_stages_ramp_linearly_from_the_previous_rate() {
        let mut s = stages(vec![
            (10.0, StageTarget::Rate(100.0)),
            (10.0, StageTarget::Rate(100.0)),
        ]);
        s.start_rate = 20.0;
        let rate = |t| match s.tick_at(t, 7).unwrap().target {
            Target::Rate { rate, max_users } => {
                assert_eq!(max_users, 7);
                rate
            }
            other => panic!("{other:?}"),
        };
        // Each tick's rate is the ramp's at the middle of its second.
        assert_eq!(rate(0.0), 24.0);
        assert_eq!(rate(5.0), 64.0);
        assert_eq!(rate(9.6), 100.0);
        assert_eq!(rate(15.0), 100.0);
    }

    #[test]
    fn default_spawn_rate_gets_there_by_the_end_of_the_stage() {
        let s = stages(vec![(
            10.0,
            StageTarget::Users {
                users: 50,
                spawn_rate: None,
            },
        )]);
        assert_eq!(
            s.tick_at(0.0, 1).unwrap().target,
            Target::Users {
                users: 50,
                spawn_rate: 5.0
            }
        );
    }

    #[test]
    fn garbage_answers_are_refused() {
        let known = vec!["A".to_string(), "B".to_string()];
        let ans = |u: AnswerValue, r: AnswerValue, c: AnswerClasses| Answer::Values {
            users: u,
            spawn_rate: r,
            classes: c,
        };
        use AnswerValue::{Number as N, Other as O};
        for bad in [
            ans(N(-1.0), N(1.0), AnswerClasses::All),
            ans(N(f64::NAN), N(1.0), AnswerClasses::All),
            ans(N(1e12), N(1.0), AnswerClasses::All),
            ans(N(1.5), N(1.0), AnswerClasses::All),
            ans(O("a string \"x\"".into()), N(1.0), AnswerClasses::All),
            ans(N(1.0), N(0.0), AnswerClasses::All),
            ans(N(1.0), N(f64::INFINITY), AnswerClasses::All),
            ans(N(1.0), N(1.0), AnswerClasses::Bad("a number".into())),
            ans(N(1.0), N(1.0), AnswerClasses::List(vec!["C".into()])),
            ans(N(1.0), N(1.0), AnswerClasses::List(vec![])),
        ] {
            assert!(check_answer(bad.clone(), &known).is_err(), "{bad:?}");
        }
        assert_eq!(check_answer(Answer::End, &known), Ok(None));
        let ok = check_answer(
            ans(N(3.0), N(2.0), AnswerClasses::List(vec!["B".into()])),
            &known,
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok.classes, Some(vec!["B".to_string()]));
    }
}
