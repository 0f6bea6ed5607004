//! Fixed snapshot data for the rendering tests, the golden files and
//! benchmarks: a local run of a small shop, the same run seen from a
//! cluster master, and a table of many endpoints.
//!
//! Owns nothing the dashboard needs at run time; everything here is
//! deterministic (no clock, no randomness), so a golden screen only changes
//! when rendering does.

use std::time::Duration;

use crate::model::{
    DashboardSnapshot, ExceptionRow, FailureRow, HistoryPoint, RunState, StatsRow, Topology,
    WorkerRow,
};

/// A row with every number derived from `requests` and `base_ms`.
fn row(
    method: &str,
    name: &str,
    requests: u64,
    failures: u64,
    base_ms: f64,
    size: f64,
) -> StatsRow {
    StatsRow {
        method: method.into(),
        name: name.into(),
        requests,
        failures,
        median_ms: base_ms,
        p95_ms: base_ms * 3.0,
        p99_ms: base_ms * 5.5,
        avg_ms: base_ms * 1.2,
        min_ms: if requests > 0 { base_ms / 4.0 } else { 0.0 },
        max_ms: base_ms * 12.0,
        avg_size: size,
        current_rps: requests as f64 / 3723.0 * 1.1,
        current_fail_per_sec: failures as f64 / 3723.0,
    }
}

/// 120 seconds of a ramp to 50 users, with a wobble so lines show.
pub fn history(seconds: u64) -> Vec<HistoryPoint> {
    (0..seconds)
        .map(|t| {
            let users = (t as u32).min(50);
            HistoryPoint {
                unix_time: 1_700_000_000 + t,
                users,
                rps: f64::from(users) * 20.0 + (t % 7) as f64 * 5.0,
                fail_per_sec: if t % 10 == 0 { 3.0 } else { 0.5 },
                p50_ms: 12.0 + (t % 5) as f64,
                p95_ms: 40.0 + (t % 11) as f64 * 2.0,
            }
        })
        .collect()
}

/// A local run an hour in: seven endpoints (one never requested, one
/// name too long for narrow terminals), failures, one script error.
pub fn local_run() -> DashboardSnapshot {
    let rows = vec![
        row("GET", "/", 182_340, 0, 1.83, 5120.0),
        row("GET", "/api/products", 91_002, 0, 4.1, 18_230.0),
        row("DELETE", "/cart/:id", 0, 0, 0.0, 0.0),
        row("POST", "/cart", 40_411, 1_212, 7.35, 96.0),
        row("POST", "/login", 5_000, 0, 95.2, 64.0),
        row("GET", "/products/:id", 455_120, 3, 2.46, 2048.0),
        row(
            "GET",
            "/search?q=a-very-long-query-string-that-needs-cutting&page=2",
            1_234,
            0,
            310.0,
            40_960.0,
        ),
    ];
    let aggregated = StatsRow {
        method: String::new(),
        name: "Aggregated".into(),
        requests: rows.iter().map(|r| r.requests).sum(),
        failures: rows.iter().map(|r| r.failures).sum(),
        median_ms: 2.9,
        p95_ms: 21.0,
        p99_ms: 120.0,
        avg_ms: 5.12,
        min_ms: 0.21,
        max_ms: 3720.0,
        avg_size: 4410.0,
        current_rps: 212.7,
        current_fail_per_sec: 0.4,
    };
    DashboardSnapshot {
        state: RunState::Running,
        users: 50,
        target_users: 50,
        spawn_rate: 10.0,
        elapsed: Duration::from_secs(3723),
        host: "http://127.0.0.1:8080 with lua/examples/shop.lua".into(),
        topology: Topology::Local {
            shards: 2,
            io_driver: "io_uring".into(),
        },
        rows,
        aggregated,
        failures: vec![
            FailureRow {
                method: "POST".into(),
                name: "/cart".into(),
                error: "HTTP 503 Service Unavailable".into(),
                occurrences: 1_212,
            },
            FailureRow {
                method: "GET".into(),
                name: "/products/:id".into(),
                error: "connection refused (os error 111) while connecting to 127.0.0.1:8080".into(),
                occurrences: 3,
            },
        ],
        exceptions: vec![ExceptionRow {
            count: 2,
            message: "lua/examples/shop.lua:42: attempt to index a nil value (field 'token')"
                .into(),
            traceback: "stack traceback:\n\tlua/examples/shop.lua:42: in function <lua/examples/shop.lua:40>\n\t[C]: in ?".into(),
            nodes: vec!["local".into()],
        }],
        history: history(120),
        open_model: None,
        shape: None,
    }
}

/// The same run on a master with three workers, one of them gone missing.
pub fn master_run() -> DashboardSnapshot {
    let workers = vec![
        WorkerRow {
            id: "loadbox-1_5f3a9c".into(),
            state: "running".into(),
            users: 25,
            cpu_percent: 41.5,
            memory_bytes: 52_428_800,
        },
        WorkerRow {
            id: "loadbox-2_77e0d1".into(),
            state: "running".into(),
            users: 25,
            cpu_percent: 95.2,
            memory_bytes: 61_865_984,
        },
        WorkerRow {
            id: "loadbox-3_0b12ef".into(),
            state: "missing".into(),
            users: 0,
            cpu_percent: 0.0,
            memory_bytes: 0,
        },
    ];
    DashboardSnapshot {
        topology: Topology::Master { workers },
        ..local_run()
    }
}

/// A fresh dashboard: nothing started yet.
pub fn ready() -> DashboardSnapshot {
    DashboardSnapshot {
        state: RunState::Ready,
        users: 0,
        target_users: 0,
        elapsed: Duration::ZERO,
        rows: Vec::new(),
        aggregated: StatsRow {
            name: "Aggregated".into(),
            ..StatsRow::default()
        },
        failures: Vec::new(),
        exceptions: Vec::new(),
        history: Vec::new(),
        ..local_run()
    }
}

/// `n` endpoints with distinct names and numbers (benchmarks, scrolling).
pub fn many_endpoints(n: usize) -> DashboardSnapshot {
    let rows = (0..n)
        .map(|i| {
            row(
                if i % 3 == 0 { "POST" } else { "GET" },
                &format!("/api/v1/resource/{i:03}"),
                1_000 + (i as u64 * 7919) % 50_000,
                (i as u64 * 31) % 17,
                0.5 + (i % 40) as f64 * 0.75,
                512.0 + (i % 9) as f64 * 100.0,
            )
        })
        .collect();
    DashboardSnapshot {
        rows,
        history: history(600),
        ..local_run()
    }
}
