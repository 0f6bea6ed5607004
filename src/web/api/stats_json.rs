//! The API's JSON reads, with Locust 2.47's keys: `/stats/requests` (what
//! Locust's UI and the Prometheus exporters poll), `/exceptions`, `/tasks`,
//! and locusta's own `/stats/open_model`.
//!
//! Numbers are locusta's (HDR percentiles, milliseconds with decimals
//! where Locust rounds to whole ones); keys, nesting and types follow
//! Locust's `web.py` and `StatsEntry.to_dict`. It does not own computing
//! the stats (`stats`) nor the CSV and HTML downloads (`downloads`).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::engine::{RunState, Topology};
use crate::stats::{EntryRow, StatsView, PERCENTILES};

use super::super::{WebContext, WebRequest, WebResponse};

/// Rows listed, as Locust truncates (the UI slows down past it); the
/// Aggregated row always comes last, after them.
pub const MAX_ROWS: usize = 500;

/// Locust's `PERCENTILES_TO_STATISTICS` (per row) and
/// `PERCENTILES_TO_CHART` (the current ones of the whole run).
const STATISTICS: [f64; 2] = [0.95, 0.99];
const CHART: [f64; 2] = [0.5, 0.95];

/// Locust's lower-case runner state names.
pub fn state_name(state: RunState) -> &'static str {
    match state {
        RunState::Ready => "ready",
        RunState::Spawning => "spawning",
        RunState::Running => "running",
        RunState::Stopping => "stopping",
        RunState::Stopped => "stopped",
    }
}

/// `response_time_percentile_0.95`, as Python formats the float.
fn percentile_key(q: f64) -> String {
    format!("response_time_percentile_{q}")
}

/// The value at `q` among the reported percentiles.
fn at(percentiles: &[f64; 11], q: f64) -> f64 {
    PERCENTILES
        .iter()
        .position(|p| *p == q)
        .map_or(0.0, |i| percentiles[i])
}

/// Unix seconds as a float (Locust's `time.time()`).
fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One row as `StatsEntry.to_dict` (Aggregated: method `null`).
fn row(r: &EntryRow) -> Value {
    let mut m = Map::new();
    m.insert(
        "method".into(),
        r.method.map_or(Value::Null, |x| json!(x.as_str())),
    );
    m.insert("name".into(), json!(r.name));
    m.insert("num_requests".into(), json!(r.num_requests));
    m.insert("num_failures".into(), json!(r.num_failures));
    m.insert("min_response_time".into(), json!(r.min_ms));
    m.insert("max_response_time".into(), json!(r.max_ms));
    m.insert("current_rps".into(), json!(r.current_rps));
    m.insert("current_fail_per_sec".into(), json!(r.current_fail_per_sec));
    m.insert("avg_response_time".into(), json!(r.avg_ms));
    m.insert("median_response_time".into(), json!(r.median_ms));
    m.insert("total_rps".into(), json!(r.total_rps));
    m.insert("total_fail_per_sec".into(), json!(r.total_fail_per_sec));
    for q in STATISTICS {
        m.insert(percentile_key(q), json!(at(&r.percentiles_ms, q)));
    }
    m.insert("avg_content_length".into(), json!(r.avg_content_size));
    Value::Object(m)
}

/// `GET /stats/requests`.
pub fn requests(_req: &WebRequest, ctx: &WebContext) -> WebResponse {
    let snap = ctx.control.snapshot();
    WebResponse::json(&requests_json(
        &snap.stats,
        snap.status.state,
        snap.status.users,
        &snap.topology,
    ))
}

/// The body of `/stats/requests` (also what the page polls).
pub fn requests_json(view: &StatsView, state: RunState, users: u32, topology: &Topology) -> Value {
    let mut stats: Vec<Value> = view.entries.iter().take(MAX_ROWS).map(row).collect();
    stats.push(row(&view.aggregated));
    let errors: Vec<Value> = view
        .failures
        .iter()
        .take(MAX_ROWS)
        .map(|f| {
            json!({
                "method": f.method.as_str(),
                "name": f.name,
                "error": f.error,
                "occurrences": f.occurrences,
                "first_seen": epoch(f.first_seen),
                "last_seen": epoch(f.last_seen),
            })
        })
        .collect();
    let total = &view.aggregated;
    // Locust's "current" percentiles are over its last ~10 s; null when
    // the run keeps no per-second window, as Locust's None.
    let current: Map<String, Value> = CHART
        .iter()
        .map(|q| {
            let v = total
                .current_percentiles_ms
                .map_or(Value::Null, |p| json!(at(&p, *q)));
            (percentile_key(*q), v)
        })
        .collect();
    let mut out = json!({
        "stats": stats,
        "errors": errors,
        "current_rps": total.current_rps,
        "current_fail_per_sec": total.current_fail_per_sec,
        "total_rps": total.total_rps,
        "total_fail_per_sec": total.total_fail_per_sec,
        "fail_ratio": total.fail_ratio(),
        "current_response_time_percentiles": current,
        "state": state_name(state),
        "user_count": users,
    });
    if let Topology::Master { workers } = topology {
        let listed: Vec<Value> = workers
            .iter()
            .map(|w| {
                json!({
                    "id": w.id,
                    "state": w.state,
                    "user_count": w.users,
                    "cpu_usage": w.cpu_percent,
                    "memory_usage": w.memory_bytes,
                })
            })
            .collect();
        // Locust's worker_count leaves out missing workers.
        let count = workers.iter().filter(|w| w.state != "missing").count();
        out["workers"] = json!(listed);
        out["worker_count"] = json!(count);
    }
    out
}

/// `GET /exceptions`: Locust's `{"exceptions": [{count, msg, traceback,
/// nodes}]}`, nodes joined with ", ".
pub fn exceptions(_req: &WebRequest, ctx: &WebContext) -> WebResponse {
    let view = ctx.control.snapshot().stats;
    let rows: Vec<Value> = view
        .exceptions
        .iter()
        .map(|e| {
            json!({
                "count": e.count,
                "msg": e.message,
                "traceback": e.traceback,
                "nodes": e.nodes.join(", "),
            })
        })
        .collect();
    WebResponse::json(&json!({ "exceptions": rows }))
}

/// `GET /tasks`: Locust's `get_ratio` per class and in total, over the
/// users running now (one per unit of weight before any run).
pub fn tasks(_req: &WebRequest, ctx: &WebContext) -> WebResponse {
    let users = ctx.control.status().users;
    let users = (users > 0).then_some(users);
    let (classes, infos) = (&ctx.cfg.classes, &ctx.cfg.script_classes);
    let text = crate::task_ratio::json(classes, infos, users);
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => WebResponse::json(&v),
        Err(e) => {
            log::error!("web API: the task ratio JSON does not parse: {e}");
            WebResponse::text(500, "internal error: task ratio")
        }
    }
}

/// `GET /stats/open_model` (locusta's own): the open model's counters and
/// corrected latencies, or `null` in a closed-model run.
pub fn open_model(_req: &WebRequest, ctx: &WebContext) -> WebResponse {
    let Some(open) = ctx.control.open_model() else {
        return WebResponse::json(&Value::Null);
    };
    let c = &open.iterations;
    let total = &open.corrected.aggregated;
    WebResponse::json(&json!({
        "target_rate": open.target_rate,
        "max_users": open.max_users,
        "intended": c.intended,
        "started": c.started,
        "late": c.late,
        "dropped": c.dropped,
        "corrected_median_response_time": total.median_ms,
        "corrected_avg_response_time": total.avg_ms,
        "corrected_response_time_percentile_0.95": at(&total.percentiles_ms, 0.95),
        "corrected_response_time_percentile_0.99": at(&total.percentiles_ms, 0.99),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_pythons() {
        assert_eq!(percentile_key(0.95), "response_time_percentile_0.95");
        assert_eq!(percentile_key(0.5), "response_time_percentile_0.5");
        assert_eq!(percentile_key(0.99), "response_time_percentile_0.99");
    }

    #[test]
    fn a_view_has_locusts_shape() {
        let view = crate::report::test_view::sample_view();
        let topology = Topology::Master {
            workers: vec![crate::engine::WorkerInfo {
                id: "w1".into(),
                state: "running".into(),
                users: 3,
                cpu_percent: 12.5,
                memory_bytes: 1000,
            }],
        };
        let v = requests_json(&view, RunState::Running, 3, &topology);
        let stats = v["stats"].as_array().unwrap();
        assert_eq!(stats.len(), view.entries.len() + 1);
        let last = stats.last().unwrap();
        assert_eq!(last["name"], "Aggregated");
        assert!(last["method"].is_null());
        assert_eq!(v["state"], "running");
        assert_eq!(v["worker_count"], 1);
        assert_eq!(v["workers"][0]["cpu_usage"], 12.5);
        let local = Topology::Local {
            shards: 1,
            io_driver: crate::engine::IoDriver::Epoll,
        };
        let v = requests_json(&view, RunState::Ready, 0, &local);
        assert!(v.get("workers").is_none());
    }
}
