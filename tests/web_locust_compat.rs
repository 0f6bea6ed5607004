//! Locust-API compatibility: `web_support/locust_client.py`, a client
//! written against Locust 2.47's HTTP API (urllib only; it parses
//! `/stats/requests` as the Prometheus locust_exporter does), drives a run
//! unchanged against a real Locust 2.47 and against locusta, both loading
//! the same in-process server; then the JSON key sets of every endpoint
//! are compared between the two, recursively, and the CSV headers must be
//! equal. Needs `python3` with `locust==2.47.0` (skipped with a message
//! when Locust is missing, failed in CI as `common::locust` says).

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;
#[path = "web_support/client.rs"]
mod web_client;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cluster_common::{free_port, worker_cmd, Proc};
use common::{locust, locusta, ok, status, temp_dir, TestServer};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);
const SIGTERM: i32 = 15;

/// Keys locusta has and Locust 2.47 does not (documented extras): none
/// today. Listed as `endpoint:path` as `key_paths` spells them.
const LOCUSTA_ONLY: &[&str] = &[];

/// The same user, both sides: GET /hello then GET /fail (a 500).
const SCRIPT: &str = r#"local locusta = require "locusta"
local WebUser = locusta.user { name = "WebUser", wait_time = locusta.constant(0.01) }
WebUser:task(1, { name = "hello_then_fail" }, function(self)
  self.client:get("/hello")
  self.client:get("/fail")
end)
"#;

fn target() -> TestServer {
    TestServer::start(|path| {
        if path.starts_with("/fail") {
            status(500, "Internal Server Error")
        } else {
            ok("hello")
        }
    })
}

/// Run the client against `base`; its JSON output.
fn client(base: &str, host: &str, workers: u32, logs: &dyn Fn() -> String) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web_support/locust_client.py");
    let out = common::run_bounded(
        Command::new("python3")
            .arg(script)
            .args([base, host, &workers.to_string()]),
        LIMIT,
    );
    assert!(
        out.status.success(),
        "the Locust client failed against {base}:\n{}\n--- server logs:\n{}",
        common::text(&out.stderr),
        logs()
    );
    serde_json::from_slice(&out.stdout).expect("the client prints JSON")
}

/// Every key path in `v`: objects by key, arrays as `[]` (the union over
/// their elements), and the maps keyed by class or task names (`/tasks`)
/// as `*`, so names do not count, only the shape.
fn key_paths(v: &Value, at: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            let named = at.ends_with(".per_class")
                || at.ends_with(".total")
                || (at.ends_with(".tasks") && at != ".tasks");
            for (k, child) in m {
                let path = format!("{at}.{}", if named { "*" } else { k });
                out.insert(path.clone());
                key_paths(child, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                key_paths(item, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

fn compare(locust: &Value, ours: &Value) {
    let (mut theirs_keys, mut our_keys) = (BTreeSet::new(), BTreeSet::new());
    key_paths(locust, "", &mut theirs_keys);
    key_paths(ours, "", &mut our_keys);
    // After the reset and stop, either side may or may not have had a
    // failing request in between (timing): the keys of an error entry are
    // compared in the running snapshot, not here.
    for keys in [&mut theirs_keys, &mut our_keys] {
        keys.retain(|k| !k.starts_with(".stopped.errors[]."));
    }
    // The comparison sees deep keys, not just the top level.
    for deep in [
        ".running.stats[].response_time_percentile_0.95",
        ".running.errors[].occurrences",
        ".running.current_response_time_percentiles.response_time_percentile_0.5",
        ".tasks.per_class.*.tasks.*.ratio",
    ] {
        assert!(
            theirs_keys.contains(deep),
            "Locust's keys lack {deep}: {theirs_keys:#?}"
        );
    }
    let missing: Vec<_> = theirs_keys.difference(&our_keys).collect();
    let extra: Vec<_> = our_keys
        .difference(&theirs_keys)
        .filter(|k| !LOCUSTA_ONLY.contains(&k.as_str()))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "key sets differ\nLocust has, locusta lacks: {missing:#?}\nlocusta has, Locust lacks: {extra:#?}"
    );
    // CSV downloads: the same header line and type; both attachments.
    for csv in ["requests_csv", "failures_csv", "exceptions_csv"] {
        assert_eq!(ours[csv], locust[csv], "{csv}");
    }
    for key in ["content_type", "disposition"] {
        assert_eq!(ours["report"][key], locust["report"][key], "report {key}");
    }
    assert_eq!(ours["reset"], locust["reset"]);
    assert_eq!(ours["stop"], locust["stop"]);
    for side in [ours, locust] {
        assert_eq!(side["swarm"]["success"], true);
        assert_eq!(side["swarm"]["message"], "Swarming started");
    }
}

/// Locust 2.47 standalone with its web UI (waiting for /swarm).
fn run_locust(dir: &Path, host: &str) -> Option<Value> {
    let mut cmd = locust()?;
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web_support/compat_locustfile.py"),
        dir.join("locustfile.py"),
    )
    .unwrap();
    let port = free_port();
    cmd.current_dir(dir)
        .args(["-f", "locustfile.py", "--web-host", "127.0.0.1"])
        .args(["--web-port", &port.to_string(), "-H", host]);
    let p = Proc::spawn(dir, "locust", &mut cmd);
    web_client::web_addr_from(|| p.stderr(), "Starting web interface at http://", LIMIT);
    let out = client(&format!("http://127.0.0.1:{port}"), host, 0, &|| p.logs());
    p.signal(SIGTERM);
    Some(out)
}

/// locusta's web front end (no --headless, stdout not a terminal).
fn run_locusta(dir: &Path, host: &str, extra: &[&str]) -> (Value, Proc) {
    let script = dir.join("compat.lua");
    std::fs::write(&script, SCRIPT).unwrap();
    let p = Proc::spawn(
        dir,
        "locusta",
        locusta()
            .args(["-f", script.to_str().unwrap(), "-H", host])
            .args(["--web-port", "0", "--shards", "1"])
            .args(extra),
    );
    let addr = web_client::web_addr(|| p.stderr(), LIMIT);
    let out = client(&format!("http://{addr}"), host, 0, &|| p.logs());
    (out, p)
}

#[test]
fn a_locust_api_client_runs_unchanged_and_sees_locusts_keys() {
    let server = target();
    let host = server.url("");
    let dir = temp_dir("web-compat");
    let (ours, mut p) = run_locusta(&dir, &host, &[]);
    p.signal(SIGTERM);
    let code = p.wait(LIMIT).code();
    // The client reset the stats before stopping: no failures left to count.
    assert_eq!(code, Some(0), "{}", p.logs());
    assert!(!p.stderr().contains("panicked"), "{}", p.logs());
    let Some(theirs) = run_locust(&dir, &host) else {
        return;
    };
    compare(&theirs, &ours);
}

#[test]
fn a_master_answers_the_client_with_its_workers() {
    let server = target();
    let host = server.url("");
    let dir = temp_dir("web-compat-master");
    let port = free_port();
    let script = dir.join("compat.lua");
    std::fs::write(&script, SCRIPT).unwrap();
    let master = Proc::spawn(
        &dir,
        "master",
        locusta()
            .args(["--master", "--master-bind-port", &port.to_string()])
            .args(["-f", script.to_str().unwrap(), "-H", &host])
            .args(["--web-port", "0"]),
    );
    let addr = web_client::web_addr(|| master.stderr(), LIMIT);
    let _w1 = Proc::spawn(
        &dir,
        "w1",
        worker_cmd(port).args(["-f", script.to_str().unwrap()]),
    );
    let _w2 = Proc::spawn(
        &dir,
        "w2",
        worker_cmd(port).args(["-f", script.to_str().unwrap()]),
    );
    web_client::wait_stats(addr, "", LIMIT, "two workers", |s| s["worker_count"] == 2);
    let out = client(&format!("http://{addr}"), &host, 2, &|| master.logs());
    let workers = out["running"]["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    master.signal(SIGTERM);
}
