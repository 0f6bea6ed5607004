//! Reading and writing the fields of msgpack maps from the network:
//! counts and numbers that may arrive as ints or floats, required and
//! optional keys with errors that name them, and the small builders the
//! messages are written with. Never panics on what a peer sends.
//!
//! It does not own the messages themselves (`protocol`, `report`).

use super::protocol::{describe, ProtocolError, Value};
use crate::engine::TaskRuns;

/// The largest response time in ms that still fits in a `u64` of µs;
/// bigger values in a report are a bad message (and could not become
/// infinite when converted).
pub(crate) const MAX_MS: f64 = (u64::MAX / 1000) as f64;

/// A msgpack number (or not) without the `Value` around it, so the
/// streaming decoder (`report_decode`) and the `Value` readers share the
/// rules below.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scalar {
    Nil,
    /// An integer ≥ 0.
    Uint(u64),
    /// An integer < 0.
    Negative(i64),
    Float(f64),
    /// A boolean, string, container, …
    Other,
}

impl Scalar {
    pub(crate) fn of(v: &Value) -> Scalar {
        match v {
            Value::Nil => Scalar::Nil,
            Value::Integer(i) => match (i.as_u64(), i.as_i64()) {
                (Some(n), _) => Scalar::Uint(n),
                (None, Some(n)) => Scalar::Negative(n),
                (None, None) => Scalar::Other,
            },
            Value::F64(f) => Scalar::Float(*f),
            Value::F32(f) => Scalar::Float(f64::from(*f)),
            _ => Scalar::Other,
        }
    }

    /// A non-negative integer: an int, or a float rounded half-to-even
    /// (Python may send `3.0`). Negative, NaN, infinite and too large: `None`.
    pub(crate) fn count(self) -> Option<u64> {
        let f = match self {
            Scalar::Uint(n) => return Some(n),
            Scalar::Float(f) => f,
            _ => return None,
        };
        let r = f.round_ties_even();
        // 2^64 as f64; NaN fails both comparisons.
        (0.0..18_446_744_073_709_551_616.0)
            .contains(&r)
            .then_some(r as u64)
    }

    /// A finite number, int or float.
    pub(crate) fn number(self) -> Option<f64> {
        let f = match self {
            Scalar::Uint(n) => n as f64,
            Scalar::Negative(n) => n as f64,
            Scalar::Float(f) => f,
            _ => return None,
        };
        f.is_finite().then_some(f)
    }

    /// A finite number that is not negative.
    pub(crate) fn non_negative(self) -> Option<f64> {
        self.number().filter(|f| *f >= 0.0)
    }

    /// A response time in ms: ≥ 0 and small enough to be a `u64` of µs.
    pub(crate) fn ms(self) -> Option<f64> {
        self.non_negative().filter(|f| *f <= MAX_MS)
    }
}

/// A non-negative integer: see [`Scalar::count`].
pub(crate) fn count_of(v: &Value) -> Option<u64> {
    Scalar::of(v).count()
}

/// A finite number, int or float.
pub(crate) fn number_of(v: &Value) -> Option<f64> {
    Scalar::of(v).number()
}

/// A finite number that is not negative.
pub(crate) fn non_negative_of(v: &Value) -> Option<f64> {
    Scalar::of(v).non_negative()
}

/// The fields of one map in a message's data, with errors that name the
/// message type and the field (`stats[2].num_requests: …`).
pub(crate) struct Fields<'a> {
    kind: &'a str,
    /// Where the map is inside the data ("" at the top, else `stats[2].`).
    path: String,
    map: &'a [(Value, Value)],
}

impl<'a> Fields<'a> {
    /// The data of a `kind` message, which must be a map.
    pub(crate) fn of(kind: &'a str, data: &'a Value) -> Result<Self, ProtocolError> {
        Self::at(kind, String::new(), data)
    }

    /// A nested map; `path` names it in errors and ends with a dot.
    pub(crate) fn at(kind: &'a str, path: String, data: &'a Value) -> Result<Self, ProtocolError> {
        match data {
            Value::Map(map) => Ok(Fields { kind, path, map }),
            other => {
                let what = if path.is_empty() {
                    "data".to_string()
                } else {
                    path.trim_end_matches('.').to_string()
                };
                Err(field_error(
                    kind,
                    format!("{what} is {}, not a map", describe(other)),
                ))
            }
        }
    }

    /// Every key and value, in message order.
    pub(crate) fn pairs(&self) -> &'a [(Value, Value)] {
        self.map
    }

    pub(crate) fn error(&self, key: &str, problem: &str) -> ProtocolError {
        field_error(self.kind, format!("`{}{key}` {problem}", self.path))
    }

    /// The value under `key`; absent and nil are both `None`. With a key
    /// repeated, the last one wins, as in Python's dict.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
            .filter(|v| !v.is_nil())
    }

    pub(crate) fn required(&self, key: &str) -> Result<&'a Value, ProtocolError> {
        self.get(key).ok_or_else(|| self.error(key, "is missing"))
    }

    pub(crate) fn str(&self, key: &str) -> Result<&'a str, ProtocolError> {
        let v = self.required(key)?;
        v.as_str().ok_or_else(|| self.mistyped(key, v, "a string"))
    }

    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>, ProtocolError> {
        self.get(key)
            .map(|v| v.as_str().ok_or_else(|| self.mistyped(key, v, "a string")))
            .transpose()
    }

    pub(crate) fn count(&self, key: &str) -> Result<u64, ProtocolError> {
        let v = self.required(key)?;
        count_of(v).ok_or_else(|| self.mistyped(key, v, "a non-negative integer"))
    }

    pub(crate) fn opt_count(&self, key: &str) -> Result<Option<u64>, ProtocolError> {
        self.get(key)
            .map(|v| count_of(v).ok_or_else(|| self.mistyped(key, v, "a non-negative integer")))
            .transpose()
    }

    pub(crate) fn u32(&self, key: &str) -> Result<u32, ProtocolError> {
        let v = self.required(key)?;
        count_of(v)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| self.mistyped(key, v, "an integer from 0 to 2^32-1"))
    }

    /// A finite number, int or float.
    pub(crate) fn number(&self, key: &str) -> Result<f64, ProtocolError> {
        let v = self.required(key)?;
        number_of(v).ok_or_else(|| self.mistyped(key, v, "a finite number"))
    }

    /// A finite number ≥ 0 (times, durations, timestamps).
    pub(crate) fn non_negative(&self, key: &str) -> Result<f64, ProtocolError> {
        let v = self.required(key)?;
        non_negative_of(v).ok_or_else(|| self.mistyped(key, v, "a finite number ≥ 0"))
    }

    pub(crate) fn opt_non_negative(&self, key: &str) -> Result<Option<f64>, ProtocolError> {
        self.get(key)
            .map(|v| non_negative_of(v).ok_or_else(|| self.mistyped(key, v, "a finite number ≥ 0")))
            .transpose()
    }

    /// A response time in ms: ≥ 0 and small enough to be a `u64` of µs.
    pub(crate) fn ms(&self, key: &str) -> Result<f64, ProtocolError> {
        let v = self.required(key)?;
        ms_of(v).ok_or_else(|| self.mistyped(key, v, "a response time in ms"))
    }

    pub(crate) fn opt_ms(&self, key: &str) -> Result<Option<f64>, ProtocolError> {
        self.get(key)
            .map(|v| ms_of(v).ok_or_else(|| self.mistyped(key, v, "a response time in ms")))
            .transpose()
    }

    /// A `{str: int}` map (`user_classes_count`), in the order received.
    pub(crate) fn class_counts(&self, key: &str) -> Result<Vec<(String, u32)>, ProtocolError> {
        let v = self.required(key)?;
        let Value::Map(map) = v else {
            return Err(self.mistyped(key, v, "a map"));
        };
        map.iter()
            .map(|(k, n)| {
                let class = k
                    .as_str()
                    .ok_or_else(|| self.error(key, &format!("has the key {}", describe(k))))?;
                let n = count_of(n)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        self.error(key, &format!("has {} users for {class:?}", describe(n)))
                    })?;
                Ok((class.to_string(), n))
            })
            .collect()
    }

    /// locusta's optional `[[class, task, runs], ...]` (a Locust peer
    /// sends none and ignores ours); at most [`MAX_TASK_ROWS`] rows.
    pub(crate) fn task_runs(&self, key: &str) -> Result<Vec<TaskRuns>, ProtocolError> {
        let Some(v) = self.get(key) else {
            return Ok(Vec::new());
        };
        let Value::Array(rows) = v else {
            return Err(self.mistyped(key, v, "an array"));
        };
        if rows.len() > MAX_TASK_ROWS {
            return Err(self.error(
                key,
                &format!("has {} rows (at most {MAX_TASK_ROWS})", rows.len()),
            ));
        }
        rows.iter()
            .map(|row| match row {
                Value::Array(r) if r.len() == 3 => {
                    match (r[0].as_str(), r[1].as_str(), count_of(&r[2])) {
                        (Some(class), Some(task), Some(runs)) => Ok(TaskRuns {
                            class: class.to_string(),
                            task: task.to_string(),
                            runs,
                        }),
                        _ => Err(self.error(key, &format!("has the row {}", describe(row)))),
                    }
                }
                _ => Err(self.error(key, &format!("has the row {}", describe(row)))),
            })
            .collect()
    }

    pub(crate) fn mistyped(&self, key: &str, v: &Value, want: &str) -> ProtocolError {
        self.error(key, &format!("is {}, not {want}", describe(v)))
    }
}

fn ms_of(v: &Value) -> Option<f64> {
    Scalar::of(v).ms()
}

pub(crate) fn field_error(kind: &str, problem: String) -> ProtocolError {
    ProtocolError::Field {
        kind: kind.to_string(),
        problem,
    }
}

pub(crate) fn str_value(s: &str) -> Value {
    Value::from(s)
}

/// A map with string keys, in the given order.
pub(crate) fn map_value(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(pairs.into_iter().map(|(k, v)| (str_value(k), v)).collect())
}

/// `{class: count}` in the given order.
/// Task-count rows a report may carry: far above any script's tasks, and
/// a bound on what a hostile worker makes the master keep.
pub(crate) const MAX_TASK_ROWS: usize = 4096;

pub(crate) fn task_runs_value(runs: &[TaskRuns]) -> Value {
    Value::Array(
        runs.iter()
            .map(|t| {
                Value::Array(vec![
                    str_value(&t.class),
                    str_value(&t.task),
                    Value::from(t.runs),
                ])
            })
            .collect(),
    )
}

pub(crate) fn class_counts_value(counts: &[(String, u32)]) -> Value {
    Value::Map(
        counts
            .iter()
            .map(|(class, n)| (str_value(class), Value::from(*n)))
            .collect(),
    )
}
