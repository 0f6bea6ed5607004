//! `locusta.stats`: the run's stats as a script reads them, Locust's way
//! (`environment.stats.total`, `stats.get(name, method)`, `StatsEntry`
//! field names), typically in a `test_stop` listener to choose
//! `locusta.process_exit_code`.
//!
//! It reads the control thread's cumulative [`RunStats`] through a shared
//! handle, on demand, one row at a time: nothing here runs unless the
//! script asks, so the request path is untouched. This module does not own
//! the stats (`stats`, the engine) nor when test_stop fires (the engine
//! fires it once every shard's last delta is merged, so there the numbers
//! are the final table's). On a cluster worker the numbers are that
//! worker's own; a master runs no Lua.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use mlua::{Lua, Table, UserData, UserDataFields, UserDataMethods, Value};

use crate::http::Method;
use crate::stats::{EntryRow, RunStats};

/// The run's cumulative stats, as the control thread merges them.
pub type StatsHandle = Arc<Mutex<RunStats>>;

/// Install `locusta.stats`. `handle` is `None` outside a run (validating a
/// script, tests): the stats are then empty.
pub fn install(lua: &Lua, module: &Table, handle: Option<StatsHandle>) -> mlua::Result<()> {
    let handle = handle.unwrap_or_else(|| Arc::new(Mutex::new(RunStats::new(false))));
    module.set("stats", lua.create_userdata(Stats(handle))?)
}

fn lock(handle: &StatsHandle) -> MutexGuard<'_, RunStats> {
    // A panic elsewhere while merging leaves numbers worth reading.
    handle.lock().unwrap_or_else(|p| p.into_inner())
}

/// `locusta.stats`.
struct Stats(StatsHandle);

impl Stats {
    fn entry(&self, method: Option<Method>, name: &str) -> Option<Entry> {
        let row = lock(&self.0).row(method, name, SystemTime::now())?;
        Some(Entry {
            row,
            handle: self.0.clone(),
        })
    }
}

impl UserData for Stats {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("total", |_, s| Ok(s.entry(None, "Aggregated")));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // Locust's stats.get(name, method); nil when no such row. Without a
        // method: the row of that name, when only one method has it.
        methods.add_method("get", |_, s, (name, method): (Value, Value)| {
            let Value::String(name) = name else {
                return Err(mlua::Error::runtime(format!(
                    "locusta.stats:get(name, method): name must be a string (got a {})",
                    name.type_name()
                )));
            };
            let name = name.to_string_lossy();
            let method = match method {
                Value::Nil => {
                    let methods = lock(&s.0).methods_of(&name);
                    match methods.as_slice() {
                        [] => return Ok(None),
                        [one] => *one,
                        several => {
                            let list: Vec<&str> = several.iter().map(|m| m.as_str()).collect();
                            return Err(mlua::Error::runtime(format!(
                                "locusta.stats:get(\"{name}\"): several rows have that name ({}); \
                                 pass the method as the second argument",
                                list.join(", ")
                            )));
                        }
                    }
                }
                Value::String(m) => {
                    let text = m.to_string_lossy();
                    Method::lookup(&text).ok_or_else(|| {
                        mlua::Error::runtime(format!(
                            "locusta.stats:get: unknown method \"{text}\" (GET, POST, PUT, \
                             PATCH, DELETE, HEAD, OPTIONS, or a request type the process \
                             has recorded)"
                        ))
                    })?
                }
                other => {
                    return Err(mlua::Error::runtime(format!(
                        "locusta.stats:get(name, method): method must be a string (got a {})",
                        other.type_name()
                    )))
                }
            };
            Ok(s.entry(Some(method), &name))
        });
    }
}

/// One row (Locust's `StatsEntry`): its counts and times as of the moment
/// it was read; `:percentile(q)` reads the row's histogram when called.
struct Entry {
    row: EntryRow,
    handle: StatsHandle,
}

impl UserData for Entry {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("name", |_, e| Ok(e.row.name.clone()));
        fields.add_field_method_get("method", |_, e| Ok(e.row.method_str()));
        fields.add_field_method_get("num_requests", |_, e| Ok(e.row.num_requests));
        fields.add_field_method_get("num_failures", |_, e| Ok(e.row.num_failures));
        fields.add_field_method_get("fail_ratio", |_, e| Ok(e.row.fail_ratio()));
        fields.add_field_method_get("avg_response_time", |_, e| Ok(e.row.avg_ms));
        fields.add_field_method_get("min_response_time", |_, e| Ok(e.row.min_ms));
        fields.add_field_method_get("max_response_time", |_, e| Ok(e.row.max_ms));
        fields.add_field_method_get("median_response_time", |_, e| Ok(e.row.median_ms));
        fields.add_field_method_get("avg_content_length", |_, e| Ok(e.row.avg_content_size));
        fields.add_field_method_get("total_rps", |_, e| Ok(e.row.total_rps));
        fields.add_field_method_get("total_fail_per_sec", |_, e| Ok(e.row.total_fail_per_sec));
        fields.add_field_method_get("current_rps", |_, e| Ok(e.row.current_rps));
        fields.add_field_method_get("current_fail_per_sec", |_, e| {
            Ok(e.row.current_fail_per_sec)
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("percentile", |_, e, q: Value| e.percentile(&q));
        // Locust's name for it.
        methods.add_method("get_response_time_percentile", |_, e, q: Value| {
            e.percentile(&q)
        });
    }
}

impl Entry {
    /// Milliseconds at fraction `q` (0.95: p95), exact from the row's HDR
    /// histogram as the tables read it; 0 without requests.
    fn percentile(&self, q: &Value) -> mlua::Result<f64> {
        let q = match q {
            Value::Number(n) => *n,
            Value::Integer(i) => *i as f64,
            _ => f64::NAN,
        };
        if !(0.0..=1.0).contains(&q) {
            let got = match q {
                q if q.is_nan() => "not a number".to_string(),
                q => q.to_string(),
            };
            return Err(mlua::Error::runtime(format!(
                "percentile(q): q is a fraction from 0 to 1, such as 0.95 (got {got})"
            )));
        }
        let name = self.row.name.as_str();
        Ok(lock(&self.handle)
            .row_percentile(self.row.method, name, q)
            .unwrap_or(0.0))
    }
}
