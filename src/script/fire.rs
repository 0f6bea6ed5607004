//! Recording a request the script timed itself: the native half of
//! `locusta.events.request:fire{...}` and `locusta.measure` (their Lua half,
//! which runs the `request` listeners, is `lua/prelude/events.lua`).
//!
//! It checks Locust's fields (`request_type`, `name`, `response_time` in
//! ms, `response_length`, `exception`) and records one request in the
//! shard's `ShardStats` exactly as `client_request` records an HTTP one:
//! same row key, same histogram, a failure under the exception's text, and
//! in an open-model run the same request from its iteration's intended
//! start. A bad field is returned as a message (the Lua half raises it at
//! the script's file:line); nothing is recorded then. It does not own the
//! stats table, nor the registry of request types (`http::method`).

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{Lua, Table, Value};

use crate::http::Method;
use crate::stats::{Failure, ShardStats};

/// The longest `name` a fired request may have (bytes).
pub const MAX_NAME_LEN: usize = 8 * 1024;
/// An `exception` text longer than this is cut (the failures table keys
/// rows by it).
pub const MAX_EXCEPTION_LEN: usize = 1024;
/// The histograms' top (1 h, in µs): a longer `response_time` is refused.
const MAX_RESPONSE_US: f64 = 3_600_000_000.0;

/// Install `native.record_request(request_type, name, response_time,
/// response_length, exception)` → nil, or the message of what is wrong.
pub fn install(lua: &Lua, native: &Table, stats: Rc<RefCell<ShardStats>>) -> mlua::Result<()> {
    native.set(
        "record_request",
        lua.create_function(
            move |lua, (kind, name, time, length, exception): (Value, Value, Value, Value, Value)| {
                let fired = match Fired::check(&kind, &name, &time, &length, &exception) {
                    Ok(f) => f,
                    Err(problem) => return Ok(Some(problem)),
                };
                fired.record(lua, &stats);
                Ok(None)
            },
        )?,
    )
}

/// One fired request, checked.
struct Fired {
    method: Method,
    name: String,
    elapsed_us: u64,
    bytes: u64,
    failure: Option<Failure>,
}

impl Fired {
    fn check(
        kind: &Value,
        name: &Value,
        time: &Value,
        length: &Value,
        exception: &Value,
    ) -> Result<Fired, String> {
        let kind = text(kind, "request_type")?;
        let method = Method::intern(&kind).map_err(|e| e.to_string())?;
        let name = text(name, "name")?;
        if name.len() > MAX_NAME_LEN {
            return Err(format!(
                "name is {} bytes long (at most {MAX_NAME_LEN})",
                name.len()
            ));
        }
        let ms = match time {
            Value::Integer(i) => *i as f64,
            Value::Number(n) => *n,
            other => {
                return Err(format!(
                    "response_time must be a number of milliseconds (got {})",
                    describe(other)
                ))
            }
        };
        let us = ms * 1000.0;
        if !(0.0..=MAX_RESPONSE_US).contains(&us) {
            return Err(format!(
                "response_time must be from 0 to 3600000 ms (got {})",
                describe(time)
            ));
        }
        let bytes = match length {
            Value::Nil => 0,
            Value::Integer(i) if *i >= 0 => *i as u64,
            Value::Number(n) if *n >= 0.0 && n.fract() == 0.0 && *n < 9.0e18 => *n as u64,
            other => {
                return Err(format!(
                    "response_length must be an integer >= 0 (got {})",
                    describe(other)
                ))
            }
        };
        let failure = match exception {
            Value::Nil | Value::Boolean(false) => None,
            Value::String(s) => Some(Failure::Message(cut(&s.to_string_lossy()).into())),
            other => {
                return Err(format!(
                    "exception must be nil or a message string (got {})",
                    describe(other)
                ))
            }
        };
        Ok(Fired {
            method,
            name,
            elapsed_us: us.round() as u64,
            bytes,
            failure,
        })
    }

    fn record(self, lua: &Lua, stats: &RefCell<ShardStats>) {
        let mut table = stats.borrow_mut();
        let id = table.entry(self.method, &self.name);
        match self.failure {
            None => table.record(id, self.elapsed_us, self.bytes),
            Some(f) => table.record_failure(id, self.elapsed_us, self.bytes, f),
        }
        drop(table);
        let open = crate::script::runtime::current_user(lua).and_then(|u| u.open_slot());
        if let Some(open) = open {
            open.record_corrected(self.method, &self.name, self.elapsed_us, self.bytes);
        }
    }
}

fn text(v: &Value, field: &str) -> Result<String, String> {
    match v {
        Value::String(s) if !s.as_bytes().is_empty() => Ok(s.to_string_lossy()),
        other => Err(format!(
            "{field} must be a non-empty string (got {})",
            describe(other)
        )),
    }
}

/// At most [`MAX_EXCEPTION_LEN`] bytes, cut on a character boundary.
fn cut(s: &str) -> &str {
    if s.len() <= MAX_EXCEPTION_LEN {
        return s;
    }
    let mut end = MAX_EXCEPTION_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn describe(v: &Value) -> String {
    match v {
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.as_bytes().len() <= 40 => format!("{:?}", s.to_string_lossy()),
        Value::String(s) => format!("a string of {} bytes", s.as_bytes().len()),
        other => format!("a {}", other.type_name()),
    }
}
