//! Custom data from workers (`report_to_master` → `worker_report`) with real
//! processes over ZeroMQ on 127.0.0.1: a locusta worker to a Locust 2.47
//! master and a Locust worker to a locusta master (`pip install
//! locust==2.47.0`; without it those tests say so and pass, except under
//! `CI=true`), two locusta workers whose per-report increments add up
//! exactly at a locusta master, a hostile peer's data, and worker listeners
//! that fail, loop or return what cannot be sent. Every run is bounded by
//! `-t`.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cluster_common::*;
use common::*;
use locusta::cluster::protocol::{MasterMessage, WorkerMessage};
use locusta::cluster::report::ReportBuilder;
use locusta::cluster::sim::SimWorker;
use rmpv::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// A worker script: users idle; each report carries `carts` (how many
/// reports this worker made so far), `inc = 1` and a nested table with the
/// listener's `client_id`; each call prints `RTM <n>`. The master side
/// prints `WR <node> <carts> <inc> <label> <sizes> <flag> <user_count>`.
const SCRIPT: &str = r#"
local locusta = require "locusta"
local U = locusta.user { name = "Shopper", wait_time = locusta.constant(0.05) }
U:task(1, function(self) end)
local n = 0
locusta.events.report_to_master:add_listener(function(data, client_id)
  n = n + 1
  data.carts = n
  data.inc = 1
  data.nested = { label = "cärt", sizes = { 1, 2, 3 }, ok = true, ratio = 0.5,
                  deep = { deeper = { x = 7 } }, id = client_id }
  print("RTM " .. n)
end)
locusta.events.worker_report(function(node_id, data)
  local nested = data.nested or {}
  print(string.format("WR %s %s %s %s %s %s %s", node_id, tostring(data.carts),
    tostring(data.inc), tostring(nested.label), table.concat(nested.sizes or {}, ","),
    tostring(nested.deep and nested.deep.deeper.x), tostring(data.user_count)))
end)
"#;

/// The Locust side's users: they idle (the tests are about reports).
const LOCUST_USER: &str = r#"
from locust import User, task, constant, events

class Shopper(User):
    wait_time = constant(1)

    @task
    def idle(self):
        pass
"#;

/// Lines of `out` that start with `tag `, split on spaces after it.
fn tagged<'a>(out: &'a str, tag: &str) -> Vec<Vec<&'a str>> {
    out.lines()
        .filter_map(|l| l.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')))
        .map(|r| r.split(' ').collect())
        .collect()
}

/// The largest `RTM n` a worker printed: how often its listeners ran.
fn listener_calls(stdout: &str) -> u64 {
    tagged(stdout, "RTM")
        .iter()
        .map(|f| f[0].parse::<u64>().unwrap())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_locusta_workers_data_reaches_a_locust_masters_worker_report() {
    let Some(locust) = locust() else { return };
    let dir = temp_dir("custom-data-locust-master");
    std::fs::write(
        dir.join("locustfile.py"),
        LOCUST_USER.to_string()
            + r#"
import json

@events.worker_report.add_listener
def on_report(client_id, data):
    with open("reports.jsonl", "a") as f:
        f.write(json.dumps({"client_id": client_id, "carts": data.get("carts"),
                            "nested": data.get("nested"), "inc": data.get("inc")}) + "\n")
"#,
    )
    .unwrap();
    std::fs::write(dir.join("s.lua"), SCRIPT).unwrap();
    let port = free_port();
    let mut master = spawn_locust_master(
        locust,
        &dir,
        port,
        &[
            "-u",
            "2",
            "-r",
            "100",
            "-t",
            "8s",
            "--expect-workers",
            "1",
            "-H",
            "http://127.0.0.1:1",
        ],
    );
    let mut w = Proc::spawn(
        &dir,
        "worker",
        worker_cmd(port).args(["-f", dir.join("s.lua").to_str().unwrap()]),
    );
    master.wait(LIMIT);
    assert!(w.wait(LIMIT).success(), "{}", w.logs());
    let logs = || format!("{}\n{}", master.logs(), w.logs());
    let reports = std::fs::read_to_string(dir.join("reports.jsonl")).unwrap_or_default();
    let reports: Vec<serde_json::Value> = reports
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // A Locust master hears a report every 3 s: at least two in 8 s.
    assert!(reports.len() >= 2, "{reports:?}\n{}", logs());
    let calls = listener_calls(&w.stdout());
    for (i, r) in reports.iter().enumerate() {
        // Each report carries the next firing's data: 1, 2, 3, ...
        assert_eq!(r["carts"], serde_json::json!(i + 1), "{reports:?}");
        assert_eq!(r["inc"], serde_json::json!(1));
        assert_eq!(
            r["nested"],
            serde_json::json!({
                "label": "cärt", "sizes": [1, 2, 3], "ok": true, "ratio": 0.5,
                "deep": {"deeper": {"x": 7}}, "id": r["client_id"],
            }),
            "{reports:?}"
        );
    }
    assert!(reports.len() as u64 <= calls, "{calls} calls\n{}", logs());
}

#[test]
fn a_locust_workers_data_reaches_a_locusta_masters_worker_report() {
    let Some(mut locust) = locust() else { return };
    let dir = temp_dir("custom-data-locusta-master");
    std::fs::write(
        dir.join("locustfile.py"),
        LOCUST_USER.to_string()
            + r#"

sent = 0

@events.report_to_master.add_listener
def on_report(client_id, data):
    global sent
    sent += 1
    data["carts"] = sent
    data["inc"] = 1
    data["nested"] = {"label": "cärt", "sizes": [1, 2, 3], "deep": {"deeper": {"x": 7}},
                      "raw": b"\x00\x01"}
"#,
    )
    .unwrap();
    std::fs::write(dir.join("s.lua"), SCRIPT).unwrap();
    let port = free_port();
    let csv = dir.join("run");
    let args = ["-u", "2", "-r", "100", "-t", "8s", "--expect-workers", "1"];
    let mut master = Proc::spawn(
        &dir,
        "master",
        master_cmd(port, "http://127.0.0.1:1", &args, &csv)
            .args(["-f", dir.join("s.lua").to_str().unwrap()]),
    );
    locust
        .current_dir(&dir)
        .args(["-f", "locustfile.py", "--worker"])
        .args(["--master-host", "127.0.0.1", "--master-port"])
        .arg(port.to_string());
    let mut w = Proc::spawn(&dir, "locust-worker", &mut locust);
    assert!(master.wait(LIMIT).success(), "{}", master.logs());
    w.wait(LIMIT);
    let logs = || format!("{}\n{}", master.logs(), w.logs());
    let err = master.stderr();
    let node = err
        .lines()
        .find_map(|l| l.split("Worker ").nth(1)?.split(" (index").next())
        .unwrap_or_else(|| panic!("no worker joined\n{}", logs()))
        .to_string();
    let out = master.stdout();
    let seen = tagged(&out, "WR");
    assert!(seen.len() >= 2, "{}", logs());
    for (i, f) in seen.iter().enumerate() {
        let carts = (i + 1).to_string();
        // user_count is the master's key, not custom data: nil.
        assert_eq!(
            f,
            &[node.as_str(), &carts, "1", "cärt", "1,2,3", "7", "nil"],
            "{}",
            logs()
        );
    }
}

#[test]
fn increments_from_two_locusta_workers_add_up_exactly_at_a_locusta_master() {
    let dir = temp_dir("custom-data-sum");
    std::fs::write(dir.join("s.lua"), SCRIPT).unwrap();
    let port = free_port();
    let csv = dir.join("run");
    let args = ["-u", "4", "-r", "100", "-t", "6s", "--expect-workers", "2"];
    let script = dir.join("s.lua");
    let mut master = Proc::spawn(
        &dir,
        "master",
        master_cmd(port, "http://127.0.0.1:1", &args, &csv).args(["-f", script.to_str().unwrap()]),
    );
    let mut workers: Vec<Proc> = (0..2)
        .map(|i| {
            Proc::spawn(
                &dir,
                &format!("worker{i}"),
                worker_cmd(port).args(["-f", script.to_str().unwrap()]),
            )
        })
        .collect();
    assert!(master.wait(LIMIT).success(), "{}", master.logs());
    for w in &mut workers {
        assert!(w.wait(LIMIT).success(), "{}", w.logs());
    }
    let mut sums: HashMap<String, u64> = HashMap::new();
    let mut last: HashMap<String, u64> = HashMap::new();
    for f in tagged(&master.stdout(), "WR") {
        if f[2] == "nil" {
            continue; // a report without custom data (none here, see below)
        }
        *sums.entry(f[0].to_string()).or_default() += f[2].parse::<u64>().unwrap();
        let carts: u64 = f[1].parse().unwrap();
        let prev = last.insert(f[0].to_string(), carts).unwrap_or(0);
        assert_eq!(carts, prev + 1, "each firing's data arrives once, in order");
    }
    assert_eq!(sums.len(), 2, "{}", master.logs());
    let mut calls: Vec<u64> = workers
        .iter()
        .map(|w| listener_calls(&w.stdout()))
        .collect();
    let mut summed: Vec<u64> = sums.values().copied().collect();
    calls.sort_unstable();
    summed.sort_unstable();
    // Reports every second for ~6 s: each worker fired 5 times or more,
    // and every firing reached the master.
    assert!(calls[0] >= 5, "{calls:?}");
    assert_eq!(summed, calls, "{}", master.logs());
}

/// A report of honest stats with `custom` keys on top.
fn report_with(custom: Vec<(String, Value)>) -> WorkerMessage {
    let mut report = ReportBuilder::new().take_report(
        std::time::SystemTime::now(),
        vec![("Shopper".into(), 0)],
        0,
    );
    report.custom = custom;
    WorkerMessage::Stats(Box::new(report))
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(Value::from(1), |v, _| Value::Array(vec![v]))
}

#[test]
fn a_hostile_peers_custom_data_is_bounded_and_the_master_keeps_answering() {
    let dir = temp_dir("custom-data-hostile");
    std::fs::write(
        dir.join("s.lua"),
        r#"
local locusta = require "locusta"
local U = locusta.user { name = "Shopper", wait_time = locusta.constant(1) }
U:task(1, function(self) end)
local function depth(v) local d = 0 while type(v) == "table" do d = d + 1 v = v[1] end return d end
locusta.events.worker_report(function(node_id, data)
  if data.ok == nil then return end
  local keys = 0
  for _ in pairs(data.weird or {}) do keys = keys + 1 end
  print(string.format("WR ok=%s huge=%s deep=%d weird_keys=%d big=%s bin=%d",
    tostring(data.ok), type(data.huge), depth(data.deep), keys,
    tostring(data.big), #(data.bin or "")))
end)
locusta.events.worker_report(function(node_id, data)
  error("master listener boom")
end)
"#,
    )
    .unwrap();
    let (mut master, sim) = master_with_simulated_worker(&dir, "6s");
    let hostile = report_with(vec![
        ("ok".into(), Value::from(true)),
        // 4 MiB: past the 1 MiB the listeners get.
        ("huge".into(), Value::from("x".repeat(4 << 20))),
        // As deep as the protocol decodes (its depth limit counts each
        // container twice).
        ("deep".into(), nested(12)),
        (
            "weird".into(),
            Value::Map(vec![
                (Value::Boolean(true), Value::from(1)),
                (Value::Array(vec![]), Value::from(2)),
                (Value::Nil, Value::from(3)),
                (Value::from("fine"), Value::Ext(7, vec![1, 2])),
                (Value::from(5), Value::F64(f64::NAN)),
            ]),
        ),
        ("big".into(), Value::from(u64::MAX)),
        ("bin".into(), Value::Binary(vec![0, 255, 7])),
    ]);
    let (heartbeats, quit) = answer_until_quit(&sim, |_| vec![hostile.clone()]);
    assert!(quit, "the master never said quit\n{}", master.logs());
    assert!(master.wait(LIMIT).success(), "{}", master.logs());
    assert!(heartbeats >= 3, "{heartbeats} heartbeats answered");
    let out = master.stdout();
    let seen = tagged(&out, "WR");
    assert!(!seen.is_empty(), "{}", master.logs());
    // The string that is past the budget is gone; the rest stays; keys
    // that are not strings or integers are left out, an extension value is
    // nil; a u64 past i64 is a float.
    assert!(
        seen.iter().all(|f| f
            == &[
                "ok=true",
                "huge=nil",
                "deep=12",
                "weird_keys=1",
                "big=1.844674407371e+19",
                "bin=3"
            ]),
        "{seen:?}\n{}",
        master.logs()
    );
    let err = master.stderr();
    assert!(err.contains("cut to bounds"), "{err}");
    assert!(err.contains("past 1024 KiB"), "{err}");
    assert!(
        err.contains("a worker_report listener failed: ")
            && err.contains("s.lua:15: master listener boom"),
        "{err}"
    );
}

/// A locusta master running `dir`'s s.lua for `run_time` with one user, and
/// a simulated worker (this process, the real protocol) joined to it.
fn master_with_simulated_worker(dir: &std::path::Path, run_time: &str) -> (Proc, SimWorker) {
    let port = free_port();
    let csv = dir.join("run");
    let args = [
        "-u",
        "1",
        "-r",
        "100",
        "-t",
        run_time,
        "--expect-workers",
        "1",
    ];
    let master = Proc::spawn(
        dir,
        "master",
        master_cmd(port, "http://127.0.0.1:1", &args, &csv)
            .args(["-f", dir.join("s.lua").to_str().unwrap()]),
    );
    let sim = SimWorker::connect(&zmq::Context::new(), "127.0.0.1", port).unwrap();
    assert!(
        sim.join(Duration::from_secs(10)),
        "no ack\n{}",
        master.logs()
    );
    (master, sim)
}

/// Play a worker until the master says quit (or [`LIMIT`]): every 500 ms
/// send what `turn(i)` gives and a heartbeat, answer stop and quit.
/// Returns the heartbeats the master sent and whether it said quit.
fn answer_until_quit(sim: &SimWorker, turn: impl Fn(usize) -> Vec<WorkerMessage>) -> (u32, bool) {
    let mut heartbeats = 0;
    let deadline = Instant::now() + LIMIT;
    let mut i = 0;
    while Instant::now() < deadline {
        for m in turn(i) {
            sim.send(m);
        }
        i += 1;
        sim.send(WorkerMessage::Heartbeat {
            state: "running".into(),
            cpu_percent: 1.0,
            memory_bytes: None,
        });
        let until = Instant::now() + Duration::from_millis(500);
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match sim.recv(left) {
                Some(MasterMessage::Heartbeat) => heartbeats += 1,
                Some(MasterMessage::Stop) => sim.send(WorkerMessage::ClientStopped),
                Some(MasterMessage::Quit) => {
                    sim.send(WorkerMessage::Quit);
                    return (heartbeats, true);
                }
                _ => {}
            }
        }
    }
    (heartbeats, false)
}

/// Listeners slower than the reports: the queue fills, the rest of the
/// reports' data is dropped with a warning, heartbeats are still answered
/// and the master exits cleanly.
#[test]
fn slow_worker_report_listeners_drop_data_with_a_warning_not_heartbeats() {
    let dir = temp_dir("custom-data-slow");
    std::fs::write(
        dir.join("s.lua"),
        r#"
local locusta = require "locusta"
local U = locusta.user { name = "Shopper", wait_time = locusta.constant(1) }
U:task(1, function(self) end)
local calls = 0
locusta.events.worker_report(function(node_id, data)
  calls = calls + 1
  print("WR " .. calls)
  io.stdout:flush()
  local t = os.clock()
  while os.clock() - t < 0.1 do end
end)
"#,
    )
    .unwrap();
    let (mut master, sim) = master_with_simulated_worker(&dir, "5s");
    // 100 reports per turn, 10 s of listener work per turn at 0.1 s each.
    const PER_TURN: usize = 100;
    let report = report_with(vec![("n".into(), Value::from(1))]);
    let (heartbeats, quit) = answer_until_quit(&sim, |i| {
        if i < 3 {
            vec![report.clone(); PER_TURN]
        } else {
            Vec::new()
        }
    });
    assert!(quit, "the master never said quit\n{}", master.logs());
    assert!(master.wait(LIMIT).success(), "{}", master.logs());
    assert!(heartbeats >= 3, "{heartbeats} heartbeats answered");
    let calls = tagged(&master.stdout(), "WR").len();
    assert!(
        (1..3 * PER_TURN).contains(&calls),
        "{calls} listener calls\n{}",
        master.logs()
    );
    let err = master.stderr();
    assert!(
        err.contains("the worker_report listeners are behind (32 reports waiting)"),
        "{err}"
    );
}

/// Worker listeners that raise, loop forever (cut by the watchdog) and set
/// what cannot be sent: each is a named warning, the reports keep flowing
/// and exactly the other firings' increments reach the master.
#[test]
fn failing_worker_listeners_are_named_and_the_other_reports_count() {
    let dir = temp_dir("custom-data-failing");
    let script = SCRIPT.replace(
        "  print(\"RTM \" .. n)\n",
        r#"  print("RTM " .. n)
  io.stdout:flush()
  if n == 2 then error("boom at report 2") end
  if n == 4 then data.f = function() end end
  if n == 8 then while true do end end
  if n == 10 then data.stats = 1 end
"#,
    );
    assert_ne!(script, SCRIPT);
    std::fs::write(dir.join("s.lua"), script).unwrap();
    let port = free_port();
    let csv = dir.join("run");
    let args = ["-u", "2", "-r", "100", "-t", "13s", "--expect-workers", "1"];
    let path = dir.join("s.lua");
    let mut master = Proc::spawn(
        &dir,
        "master",
        master_cmd(port, "http://127.0.0.1:1", &args, &csv).args(["-f", path.to_str().unwrap()]),
    );
    let mut w = Proc::spawn(
        &dir,
        "worker",
        worker_cmd(port).args(["-f", path.to_str().unwrap(), "--max-blocking-time", "1"]),
    );
    assert!(master.wait(LIMIT).success(), "{}", master.logs());
    assert!(w.wait(LIMIT).success(), "{}", w.logs());
    let calls = listener_calls(&w.stdout());
    assert!(calls >= 10, "{calls} calls\n{}", w.logs());
    let failed = [2u64, 4, 8, 10].iter().filter(|&&n| n <= calls).count() as u64;
    let out = master.stdout();
    let seen = tagged(&out, "WR");
    let sum: u64 = seen
        .iter()
        .filter(|f| f[2] != "nil")
        .map(|f| f[2].parse::<u64>().unwrap())
        .sum();
    assert_eq!(sum, calls - failed, "{}\n{}", master.logs(), w.logs());
    let log = w.stderr();
    for needle in [
        "a report_to_master listener failed: ",
        "s.lua:",
        "boom at report 2",
        "data.f is a function",
        "without yielding at ",
        "data.stats is a key of the stats report itself",
    ] {
        assert!(log.contains(needle), "no `{needle}` in\n{log}");
    }
}

/// The report without custom data has exactly Locust's keys (the payload
/// of a script without listeners is what it was); with custom data, the
/// keys follow them and come back in order.
#[test]
fn custom_keys_follow_locusts_keys_and_come_back_in_order() {
    use locusta::cluster::protocol::{decode, encode};
    let keys = |msg: &WorkerMessage| {
        let m = decode(&encode(&msg.to_message("w1"))).unwrap();
        let Value::Map(pairs) = m.data else { panic!() };
        pairs
            .iter()
            .map(|(k, _)| k.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let plain = report_with(Vec::new());
    let locust_keys = [
        "stats",
        "stats_total",
        "errors",
        "user_classes_count",
        "user_count",
    ];
    assert_eq!(keys(&plain), locust_keys);
    let custom = vec![
        ("zeta".to_string(), Value::from(1)),
        ("alpha".to_string(), Value::Array(vec![Value::from("x")])),
    ];
    let with = report_with(custom.clone());
    assert_eq!(keys(&with)[5..], ["zeta", "alpha"]);
    let back = WorkerMessage::parse(&decode(&encode(&with.to_message("w1"))).unwrap()).unwrap();
    let WorkerMessage::Stats(report) = back else {
        panic!()
    };
    assert_eq!(report.custom, custom);
}
