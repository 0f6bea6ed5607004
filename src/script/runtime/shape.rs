//! The script's load shape as Rust sees it: reading what
//! `lua/prelude/shape.lua` recorded ([`read_decl`], at load, for config),
//! and [`ShapeScript`], the Lua state the shape runner (`crate::shape`)
//! calls a shape function in, once a second, under the watchdog.
//!
//! It does not decide what an answer means (`crate::shape::check_answer`)
//! nor when to ask (`crate::shape::ShapeRunner`).

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{Function, MultiValue, Table, Value};

use super::errors::{error_text, load_error};
use super::state::State;
use super::watchdog::Watchdog;
use crate::http::ClientConfig;
use crate::script::{ScriptError, ScriptSource};
use crate::shape::{Answer, AnswerClasses, AnswerValue, ShapeDecl, Stage, StageTarget, Stages};
use crate::stats::ShardStats;

/// What the prelude recorded in `I.shape` (already checked there).
pub(super) fn read_decl(internal: &Table) -> mlua::Result<Option<ShapeDecl>> {
    let Some(shape) = internal.get::<Option<Table>>("shape")? else {
        return Ok(None);
    };
    let at: String = shape.get("where")?;
    let kind: String = shape.get("kind")?;
    if kind == "function" {
        return Ok(Some(ShapeDecl::Function { at }));
    }
    let mut stages = Vec::new();
    for s in shape.get::<Table>("stages")?.sequence_values::<Table>() {
        let s = s?;
        let target = match s.get::<Option<f64>>("rate")? {
            Some(rate) => StageTarget::Rate(rate),
            None => StageTarget::Users {
                users: s.get("users")?,
                spawn_rate: s.get("spawn_rate")?,
            },
        };
        stages.push(Stage {
            duration: s.get("duration")?,
            target,
            classes: s.get("classes")?,
        });
    }
    Ok(Some(ShapeDecl::Stages(Stages {
        at,
        stages,
        start_rate: shape.get::<Option<f64>>("start_rate")?.unwrap_or(0.0),
        max_users: shape.get("max_users")?,
    })))
}

/// A Lua state with the script loaded, holding its shape function
/// (`!Send`: built on the shape runner's thread).
pub struct ShapeScript {
    state: State,
    func: Function,
}

impl ShapeScript {
    /// Load the script in a state of its own and find its shape function.
    pub fn load(src: &ScriptSource) -> Result<ShapeScript, ScriptError> {
        let stats = Rc::new(RefCell::new(ShardStats::new()));
        let dog = Watchdog::new(src.limits.max_blocking, None);
        let state = State::new(src, 0, stats, ClientConfig::default(), dog, None)?;
        let func = state
            .internal
            .get::<Table>("shape")
            .and_then(|s| s.get::<Function>("fn"))
            .map_err(|e| load_error(src, &e))?;
        Ok(ShapeScript { state, func })
    }

    /// Call the function with `run_time`; an error (raised, or cut by the
    /// watchdog) is its message with the script's file:line.
    pub fn call(&self, run_time: f64) -> Result<Answer, String> {
        let _slice = self.state.dog.sync_slice(&self.state.lua);
        let values: MultiValue = self.func.call(run_time).map_err(|e| error_text(&e))?;
        let mut it = values.into_iter();
        let first = it.next().unwrap_or(Value::Nil);
        if first.is_nil() {
            return Ok(Answer::End);
        }
        let users = number(&first);
        let spawn_rate = number(&it.next().unwrap_or(Value::Nil));
        let classes = match it.next().unwrap_or(Value::Nil) {
            Value::Nil => AnswerClasses::All,
            Value::Table(t) => class_list(&t),
            other => AnswerClasses::Bad(describe(&other)),
        };
        Ok(Answer::Values {
            users,
            spawn_rate,
            classes,
        })
    }
}

fn number(v: &Value) -> AnswerValue {
    match v {
        Value::Integer(i) => AnswerValue::Number(*i as f64),
        Value::Number(n) => AnswerValue::Number(*n),
        other => AnswerValue::Other(describe(other)),
    }
}

fn class_list(t: &Table) -> AnswerClasses {
    let len = t.raw_len();
    let mut names = Vec::with_capacity(len.min(1024));
    let mut keys = 0usize;
    for pair in t.pairs::<Value, Value>() {
        let Ok((_, v)) = pair else {
            return AnswerClasses::Bad("a table that cannot be read".into());
        };
        keys += 1;
        match v {
            Value::String(s) => names.push(s.to_string_lossy()),
            other => return AnswerClasses::Bad(format!("a list holding {}", describe(&other))),
        }
    }
    if keys != len {
        return AnswerClasses::Bad("a table that is not a list".into());
    }
    // pairs() walks the hash part in no order: take the list's order.
    let ordered: Result<Vec<String>, _> = (1..=len).map(|i| t.raw_get::<String>(i)).collect();
    match ordered {
        Ok(n) => AnswerClasses::List(n),
        Err(_) => AnswerClasses::List(names),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("a string {:?}", s.to_string_lossy()),
        Value::Boolean(b) => format!("a boolean {b}"),
        other => format!("a {}", other.type_name()),
    }
}
