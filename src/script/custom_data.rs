//! Custom data between a worker's script and the master's, both ways, with
//! bounds: Lua tables → msgpack for `report_to_master` (what a worker's
//! listeners set travels as extra top-level keys of its `stats` report, as
//! in Locust), and msgpack → Lua for `worker_report` on the master (what any
//! worker, locusta or Locust, sent).
//!
//! A worker's script is trusted but may be wrong: a value that cannot be
//! sent (a function, a cycle, too deep, too big, a key of Locust's payload)
//! is an error that names the key path. A peer is not trusted: what it sent
//! is converted within bounds and whatever does not fit is left out and
//! said in a warning, never a panic or an unbounded allocation.
//!
//! It does not own when listeners run (`runtime`, `cluster`).

use mlua::{Lua, Table, Value as LuaValue};
use rmpv::Value;

/// A worker's custom data for one report, or why there is none.
pub type CustomData = Result<Vec<(String, Value)>, CustomError>;

/// Why a firing of `report_to_master` gave no data (each kind is logged
/// at its own rate).
#[derive(Debug, thiserror::Error)]
pub enum CustomError {
    /// A listener raised (or the watchdog cut it): its message, file:line.
    #[error("a report_to_master listener failed: {0}")]
    Listener(String),
    /// What the listeners set cannot be sent: the key path and why.
    #[error("{0}")]
    Data(String),
}

/// Deepest nesting converted either way (the top-level table is depth 1).
pub const MAX_DEPTH: usize = 32;
/// Most bytes of custom data one report carries (about its msgpack size).
pub const MAX_BYTES: usize = 1 << 20;

/// Top-level keys a worker's data may not set: the report's own fields
/// (a Locust master would read them as stats) and locusta's (`locusta_*`).
const RESERVED: [&str; 5] = [
    "stats",
    "stats_total",
    "errors",
    "user_count",
    "user_classes_count",
];

/// Why a top-level key cannot be sent, if it cannot.
fn reserved(key: &str) -> Option<String> {
    if RESERVED.contains(&key) || key.starts_with("locusta_") {
        Some(format!(
            "report_to_master: data.{key} is a key of the stats report itself \
             (reserved: {}, locusta_*): use another name",
            RESERVED.join(", ")
        ))
    } else {
        None
    }
}

/// The table `report_to_master` listeners filled, as the report's extra
/// top-level keys (sorted by key, so a report is the same for the same
/// data). An error names the key path and what is wrong.
pub fn table_to_custom(data: &Table) -> Result<Vec<(String, Value)>, String> {
    let mut out = Vec::new();
    let mut enc = Encoder {
        budget: MAX_BYTES,
        path: Vec::new(),
    };
    for pair in data.pairs::<LuaValue, LuaValue>() {
        let (k, v) = pair.map_err(|e| format!("report_to_master: cannot read data: {e}"))?;
        let LuaValue::String(k) = &k else {
            return Err(format!(
                "report_to_master: data has the key {} (top-level keys must be strings)",
                super::runtime::describe(&k)
            ));
        };
        let key = k.to_string_lossy();
        if let Some(problem) = reserved(&key) {
            return Err(problem);
        }
        enc.charge(key.len() + 5)?;
        enc.path.push(key.clone());
        let value = enc.value(&v, 1)?;
        enc.path.pop();
        out.push((key, value));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

struct Encoder {
    /// Bytes still allowed.
    budget: usize,
    /// Key path of the value being converted, for errors.
    path: Vec<String>,
}

impl Encoder {
    fn where_(&self) -> String {
        format!("data.{}", self.path.join("."))
    }

    fn charge(&mut self, bytes: usize) -> Result<(), String> {
        match self.budget.checked_sub(bytes) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => Err(format!(
                "report_to_master: data is over {} KiB (at {}): send less",
                MAX_BYTES >> 10,
                self.where_()
            )),
        }
    }

    fn value(&mut self, v: &LuaValue, depth: usize) -> Result<Value, String> {
        Ok(match v {
            LuaValue::Nil => Value::Nil,
            LuaValue::Boolean(b) => {
                self.charge(1)?;
                Value::Boolean(*b)
            }
            LuaValue::Integer(i) => {
                self.charge(9)?;
                Value::from(*i)
            }
            LuaValue::Number(n) => {
                self.charge(9)?;
                Value::F64(*n)
            }
            LuaValue::String(s) => {
                let bytes = s.as_bytes();
                self.charge(bytes.len() + 5)?;
                match std::str::from_utf8(&bytes) {
                    Ok(text) => Value::from(text),
                    Err(_) => Value::Binary(bytes.to_vec()),
                }
            }
            LuaValue::Table(t) => self.table(t, depth + 1)?,
            other => {
                return Err(format!(
                    "report_to_master: {} is {}, which cannot be sent to the master \
                     (send nil, booleans, numbers, strings and tables of them)",
                    self.where_(),
                    super::runtime::describe(other)
                ))
            }
        })
    }

    fn table(&mut self, t: &Table, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "report_to_master: {} is nested deeper than {MAX_DEPTH} tables \
                 (a table that holds itself?)",
                self.where_()
            ));
        }
        self.charge(5)?;
        let len = t.raw_len();
        let mut pairs = Vec::new();
        let mut count = 0usize;
        for pair in t.pairs::<LuaValue, LuaValue>() {
            let (k, v) = pair.map_err(|e| format!("report_to_master: {}: {e}", self.where_()))?;
            count += 1;
            let (key, name) = match &k {
                LuaValue::String(s) => {
                    let text = s.to_string_lossy();
                    self.charge(text.len() + 5)?;
                    (Value::from(text.as_str()), text)
                }
                LuaValue::Integer(i) => {
                    self.charge(9)?;
                    (Value::from(*i), i.to_string())
                }
                other => {
                    return Err(format!(
                        "report_to_master: {} has the key {} (keys must be strings or integers)",
                        self.where_(),
                        super::runtime::describe(other)
                    ))
                }
            };
            self.path.push(name);
            let value = self.value(&v, depth)?;
            self.path.pop();
            pairs.push((key, value));
        }
        if len > 0 && count == len {
            // A sequence 1..n: an array, in order.
            pairs.sort_by_key(|(k, _)| k.as_i64());
            return Ok(Value::Array(pairs.into_iter().map(|(_, v)| v).collect()));
        }
        Ok(Value::Map(pairs))
    }
}

/// What [`bound_custom`] left out, for one warning.
#[derive(Debug, Default, PartialEq)]
pub struct Dropped {
    /// Values nested deeper than [`MAX_DEPTH`] (became nil).
    pub too_deep: u64,
    /// Values past the [`MAX_BYTES`] budget (became nil).
    pub over_budget: u64,
    /// Map entries whose key is not a string or an integer.
    pub bad_keys: u64,
    /// Extension values and integers past i64 (became nil).
    pub other: u64,
}

impl Dropped {
    pub fn any(&self) -> bool {
        *self != Dropped::default()
    }
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} values nested deeper than {MAX_DEPTH}, {} past {} KiB, \
             {} entries with keys that are not strings or integers, {} other values",
            self.too_deep,
            self.over_budget,
            MAX_BYTES >> 10,
            self.bad_keys,
            self.other
        )
    }
}

/// What a node costs of the budget besides its bytes: about the memory of
/// one decoded value, so a peer's million nils cost what they hold.
const PER_VALUE: usize = 16;

/// A peer's custom keys cut to what the master hands its listeners: at
/// most [`MAX_DEPTH`] deep and [`MAX_BYTES`] big, map keys strings or
/// integers, no extension types; what is cut becomes nil (entries with bad
/// keys are left out) and is counted. Work and memory are bounded by the
/// budget, whatever the peer sent.
pub fn bound_custom(custom: &[(String, Value)]) -> (Vec<(String, Value)>, Dropped) {
    let mut b = Bounder {
        budget: MAX_BYTES,
        dropped: Dropped::default(),
    };
    let mut out = Vec::new();
    for (k, v) in custom {
        if !b.take(PER_VALUE + k.len()) {
            b.dropped.over_budget += 1;
            continue;
        }
        out.push((k.clone(), b.value(v, 1)));
    }
    (out, b.dropped)
}

struct Bounder {
    budget: usize,
    dropped: Dropped,
}

impl Bounder {
    fn take(&mut self, bytes: usize) -> bool {
        match self.budget.checked_sub(bytes) {
            Some(left) => {
                self.budget = left;
                true
            }
            None => false,
        }
    }

    fn value(&mut self, v: &Value, depth: usize) -> Value {
        let size = match v {
            Value::String(s) => s.as_bytes().len(),
            Value::Binary(b) => b.len(),
            _ => 0,
        };
        if !self.take(PER_VALUE + size) {
            self.dropped.over_budget += 1;
            return Value::Nil;
        }
        match v {
            Value::Array(_) | Value::Map(_) if depth >= MAX_DEPTH => {
                self.dropped.too_deep += 1;
                Value::Nil
            }
            Value::Array(items) => {
                let mut kept = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if self.budget < PER_VALUE {
                        // The rest is cut off, not copied as nils.
                        self.dropped.over_budget += (items.len() - i) as u64;
                        break;
                    }
                    kept.push(self.value(item, depth + 1));
                }
                Value::Array(kept)
            }
            Value::Map(pairs) => {
                let mut kept = Vec::new();
                for (k, item) in pairs {
                    let key_ok = match k {
                        Value::String(_) => true,
                        Value::Integer(i) => i.as_i64().is_some(),
                        _ => false,
                    };
                    if !key_ok {
                        self.dropped.bad_keys += 1;
                        continue;
                    }
                    let key_len = k.as_str().map_or(0, str::len);
                    if self.budget < PER_VALUE || !self.take(PER_VALUE + key_len) {
                        self.dropped.over_budget += 1;
                        continue;
                    }
                    kept.push((k.clone(), self.value(item, depth + 1)));
                }
                Value::Map(kept)
            }
            Value::Ext(..) => {
                self.dropped.other += 1;
                Value::Nil
            }
            Value::Integer(i) if i.as_i64().is_none() => {
                // Past i64 (a u64 above 2^63): Lua's integers cannot hold it.
                Value::F64(i.as_f64().unwrap_or(f64::NAN))
            }
            other => other.clone(),
        }
    }
}

/// Custom keys ([`bound_custom`]ed) as the Lua table `worker_report`
/// listeners get: bin becomes a string, nil entries are absent (as in any
/// Lua table).
pub fn custom_to_table(lua: &Lua, custom: &[(String, Value)]) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for (k, v) in custom {
        t.raw_set(k.as_str(), to_lua(lua, v, 1)?)?;
    }
    Ok(t)
}

fn to_lua(lua: &Lua, v: &Value, depth: usize) -> mlua::Result<LuaValue> {
    Ok(match v {
        Value::Boolean(b) => LuaValue::Boolean(*b),
        Value::Integer(i) => match i.as_i64() {
            Some(n) => LuaValue::Integer(n),
            None => LuaValue::Number(i.as_f64().unwrap_or(f64::NAN)),
        },
        Value::F32(x) => LuaValue::Number(f64::from(*x)),
        Value::F64(x) => LuaValue::Number(*x),
        Value::String(s) => LuaValue::String(lua.create_string(s.as_bytes())?),
        Value::Binary(b) => LuaValue::String(lua.create_string(b)?),
        // Bounded already; a deeper one (not bounded) is cut here too.
        Value::Array(_) | Value::Map(_) if depth >= MAX_DEPTH => LuaValue::Nil,
        Value::Array(items) => {
            let t = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item, depth + 1)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Map(pairs) => {
            let t = lua.create_table()?;
            for (k, item) in pairs {
                let key = match k {
                    Value::String(s) => LuaValue::String(lua.create_string(s.as_bytes())?),
                    Value::Integer(i) => match i.as_i64() {
                        Some(n) => LuaValue::Integer(n),
                        None => continue,
                    },
                    _ => continue,
                };
                t.raw_set(key, to_lua(lua, item, depth + 1)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Nil | Value::Ext(..) => LuaValue::Nil,
    })
}

#[cfg(test)]
#[path = "custom_data_tests.rs"]
mod tests;
