//! The Lua user runtime without HTTP: `inspect`, load errors, user
//! lifecycle (on_start/on_stop, graceful and forced stop), events, per-shard
//! random streams, and many users in one state. Users run on a monoio
//! runtime with timers; what they did is read back from Lua globals
//! (`ShardScript::eval`) or from the shard's stats (`take_delta().exceptions`).
//! Task picking and task sets are in `script_tasksets.rs`, counted errors
//! in `script_errors.rs`; the helpers in `common/script.rs`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use locusta::engine::StopSignal;
use locusta::http::ClientConfig;
use locusta::script::runtime::{inspect, ShardContext, ShardScript};
use locusta::script::{ClassInfo, TaskInfo};
use locusta::stats::ShardStats;
use script_common::{block_on, load, load_error, load_on, no_tags, script, tags};

#[path = "common/script.rs"]
mod script_common;

#[test]
fn inspect_describes_classes_tasks_and_tags() {
    let src = script(
        "shop.lua",
        r#"
local locusta = require "locusta"
local Shopper = locusta.user { name = "Shopper", weight = 3, wait_time = locusta.between(1, 2),
                               host = "http://127.0.0.1:9" }
function Shopper:browse() end
Shopper:task(3, Shopper.browse)
Shopper:task(1, { tags = { "checkout" }, name = "buy" }, function(self) end)
local Admin = locusta.user { fixed_count = 2 }
local Reports = locusta.taskset { name = "reports", tags = { "admin" } }
Reports:task(1, function(self) end)
Admin:task(2, Reports)
"#,
    );
    let classes = inspect(&src, &no_tags()).unwrap();
    assert_eq!(
        classes,
        vec![
            ClassInfo {
                name: "Shopper".into(),
                weight: 3,
                fixed_count: None,
                host: Some("http://127.0.0.1:9".into()),
                tasks: vec![
                    TaskInfo {
                        name: "browse".into(),
                        weight: 3,
                        tags: vec![]
                    },
                    TaskInfo {
                        name: "buy".into(),
                        weight: 1,
                        tags: vec!["checkout".into()]
                    },
                ],
            },
            ClassInfo {
                name: "User2".into(),
                weight: 1,
                fixed_count: Some(2),
                host: None,
                tasks: vec![TaskInfo {
                    name: "reports".into(),
                    weight: 2,
                    tags: vec!["admin".into()]
                }],
            },
        ]
    );

    // -T checkout keeps only the tagged task; User2 is left with none,
    // which is no error until User2 is selected to run (Locust's way).
    let classes = inspect(&src, &tags(&["checkout"], &[])).unwrap();
    assert_eq!(classes[0].tasks.len(), 1);
    assert!(classes[1].tasks.is_empty());
    // -E admin drops it; a taskset's tags apply to its tasks.
    let classes = inspect(&src, &tags(&[], &["admin"])).unwrap();
    assert!(classes[1].tasks.is_empty());
    let classes = inspect(&src, &tags(&["checkout", "admin"], &[])).unwrap();
    assert_eq!(classes[0].tasks.len(), 1);
    assert_eq!(classes[0].tasks[0].name, "buy");
    assert_eq!(classes[1].tasks[0].name, "reports");
    let classes = inspect(&src, &tags(&[], &["checkout"])).unwrap();
    assert_eq!(classes[0].tasks.len(), 1);
    assert_eq!(classes[0].tasks[0].name, "browse");
}

#[test]
fn load_errors_name_the_file_and_line() {
    let m = load_error(
        "syntax.lua",
        "local locusta = require 'locusta'\n\nlocal x = = 1\n",
    );
    assert!(m.contains("syntax.lua:3:"), "{m}");

    let m = load_error(
        "runtime.lua",
        "local locusta = require 'locusta'\nlocal t = nil\nt.x = 1\n",
    );
    assert!(m.contains("runtime.lua:3:") && m.contains("index"), "{m}");

    let m = load_error("none.lua", "local locusta = require 'locusta'\n");
    assert!(
        m.contains("none.lua") && m.contains("no user classes"),
        "{m}"
    );

    let m = load_error(
        "notasks.lua",
        "local locusta = require 'locusta'\n\nlocal U = locusta.user { name = 'Idle' }\n",
    );
    assert!(m.contains("notasks.lua:3: class Idle has no tasks"), "{m}");

    let m = load_error(
        "weight0.lua",
        "local locusta = require 'locusta'\nlocal U = locusta.user {\n weight = 0 }\nU:task(1, function() end)\n",
    );
    assert!(
        m.contains("weight0.lua:2:") && m.contains("weight must be a positive integer"),
        "{m}"
    );

    let m = load_error(
        "taskweight.lua",
        "local locusta = require 'locusta'\nlocal U = locusta.user {}\n\nU:task(0, function() end)\n",
    );
    assert!(
        m.contains("taskweight.lua:4:") && m.contains("task weight"),
        "{m}"
    );

    let m = load_error(
        "taskweight2.lua",
        "local locusta = require 'locusta'\nlocal U = locusta.user {}\nU:task('x', function() end)\n",
    );
    assert!(m.contains("taskweight2.lua:3:"), "{m}");

    let m = load_error(
        "wait.lua",
        "local locusta = require 'locusta'\nlocal U = locusta.user { wait_time = 5 }\nU:task(1, function() end)\n",
    );
    assert!(
        m.contains("wait.lua:2:") && m.contains("wait_time must be a function"),
        "{m}"
    );

    // wait_time assigned after the class was made is checked at the end.
    let m = load_error(
        "wait2.lua",
        "local locusta = require 'locusta'\nlocal U = locusta.user { name = 'W' }\nU.wait_time = 'soon'\nU:task(1, function() end)\n",
    );
    assert!(m.contains("wait2.lua:2:") && m.contains("wait_time"), "{m}");

    let m = load_error(
        "between.lua",
        "local locusta = require 'locusta'\nlocal U = locusta.user { wait_time = locusta.between(5, 1) }\n",
    );
    assert!(
        m.contains("between.lua:2:") && m.contains("less than min"),
        "{m}"
    );

    let m = load_error(
        "fn.lua",
        "local locusta = require 'locusta'\nlocal U = locusta.user {}\nU:task(1, 'not a function')\n",
    );
    assert!(
        m.contains("fn.lua:3:") && m.contains("expected a function"),
        "{m}"
    );

    let m = load_error(
        "fixed.lua",
        "local locusta = require 'locusta'\nlocal U = locusta.user { fixed_count = -1 }\nU:task(1, function() end)\n",
    );
    assert!(
        m.contains("fixed.lua:2:") && m.contains("fixed_count"),
        "{m}"
    );

    let m = load_error(
        "dup.lua",
        "local locusta = require 'locusta'\nlocal A = locusta.user { name = 'A' }\nA:task(function() end)\nlocal B = locusta.user { name = 'A' }\nB:task(function() end)\n",
    );
    assert!(m.contains("dup.lua:4:") && m.contains("duplicate"), "{m}");

    let m = load_error(
        "emptyset.lua",
        "local locusta = require 'locusta'\nlocal U = locusta.user {}\nlocal T = locusta.taskset {}\nU:task(1, T)\n",
    );
    assert!(
        m.contains("emptyset.lua:3:") && m.contains("has no tasks"),
        "{m}"
    );

    let m = load_error(
        "dot.lua",
        "local locusta = require 'locusta'\nlocal U = locusta.user {}\nU.task(1, function() end)\n",
    );
    assert!(m.contains("dot.lua:3:") && m.contains("':'"), "{m}");

    let src = script(
        "classes.lua",
        "local l = require 'locusta'\nlocal U = l.user{name='A'}\nU:task(function() end)\n",
    );
    let stats = Rc::new(RefCell::new(ShardStats::new()));
    let e = ShardScript::load(
        &src,
        &no_tags(),
        &["Nope".to_string()],
        ShardContext {
            shard: 0,
            stats,
            client: ClientConfig::default(),
            default_host: None,
            run_stop: None,
            run_stats: None,
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("unknown user class \"Nope\"") && e.contains("A"),
        "{e}"
    );
}

#[test]
fn on_start_once_per_user_and_on_stop_on_graceful_stop() {
    let src = script(
        "hooks.lua",
        r#"
local locusta = require "locusta"
started, stopped, runs, clients = 0, 0, 0, 0
local U = locusta.user { wait_time = locusta.constant(0.01) }
function U:on_start()
  started = started + 1
  self.id = started
  if self.client ~= nil then clients = clients + 1 end
end
function U:on_stop() stopped = stopped + 1 end
U:task(function(self)
  assert(self.id ~= nil)
  runs = runs + 1
end)
"#,
    );
    let shard = load(&src, &[]);
    block_on(async {
        shard.run_users(0, 10, Duration::from_millis(200)).await;
    });
    assert_eq!(shard.num("return started"), 10.0);
    assert_eq!(shard.num("return clients"), 10.0);
    assert_eq!(shard.num("return stopped"), 10.0);
    let runs = shard.num("return runs");
    assert!((50.0..=300.0).contains(&runs), "runs {runs}");
    assert!(shard.exceptions().is_empty());
}

#[test]
fn graceful_stop_cuts_a_long_wait_short() {
    let src = script(
        "longwait.lua",
        r#"
local locusta = require "locusta"
runs, stopped = 0, 0
local U = locusta.user { wait_time = locusta.constant(60) }
U:task(function() runs = runs + 1 end)
function U:on_stop() stopped = stopped + 1 end
"#,
    );
    let shard = load(&src, &[]);
    let took = block_on(shard.run_users(0, 100, Duration::from_millis(100)));
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    assert_eq!(shard.num("return runs"), 100.0);
    assert_eq!(shard.num("return stopped"), 100.0);
}

#[test]
fn forced_stop_drops_the_user() {
    let src = script(
        "forced.lua",
        r#"
local locusta = require "locusta"
stopped = 0
local U = locusta.user {}
U:task(function() locusta.sleep(60) end)
function U:on_stop() stopped = stopped + 1 end
"#,
    );
    let shard = load(&src, &[]);
    block_on(async {
        let stop = Rc::new(StopSignal::default());
        let user = shard.script.user(0, stop.clone());
        let forced = stop.forced();
        let h = monoio::spawn(async move {
            monoio::select! {
                _ = user => {},
                _ = forced => {},
            }
        });
        monoio::time::sleep(Duration::from_millis(50)).await;
        stop.stop_gracefully();
        monoio::time::sleep(Duration::from_millis(100)).await;
        stop.force();
        h.await;
    });
    // The task was still sleeping: no on_stop, nothing counted.
    assert_eq!(shard.num("return stopped"), 0.0);
    assert!(shard.exceptions().is_empty());
    // The state is still usable afterwards.
    assert_eq!(shard.eval("return 1 + 1"), "2");
}

#[test]
fn events_fire_on_shard_zero_only_and_errors_are_counted() {
    let text = r#"
local locusta = require "locusta"
started, stopped = 0, 0
locusta.events.test_start(function() started = started + 1 end)
locusta.events.test_start:add_listener(function() started = started + 10 end)
locusta.events.test_stop(function()
  locusta.sleep(0.01)
  stopped = stopped + 1
end)
locusta.events.test_stop(function() error("listener broke") end)
locusta.events.request(function(r) end)
local U = locusta.user {}
U:task(function() end)
"#;
    let src = script("events.lua", text);
    let shard = load_on(&src, &no_tags(), &[], 0);
    block_on(async {
        shard.script.test_start().await;
        shard.script.test_stop().await;
    });
    assert_eq!(shard.num("return started"), 11.0);
    assert_eq!(shard.num("return stopped"), 1.0);
    let ex = shard.exceptions();
    assert_eq!(ex.len(), 1);
    assert!(
        ex[0].message.ends_with("events.lua:10: listener broke"),
        "{ex:?}"
    );
    assert_eq!(
        shard.eval("return #debug.getregistry()['locusta.request_listeners']"),
        "1"
    );

    let other = load_on(&src, &no_tags(), &[], 1);
    block_on(async {
        other.script.test_start().await;
        other.script.test_stop().await;
    });
    assert_eq!(other.num("return started"), 0.0);
    assert_eq!(other.num("return stopped"), 0.0);
}

#[test]
fn random_streams_differ_per_shard() {
    let src = script(
        "rand.lua",
        "local l = require 'locusta'\nlocal U = l.user{}\nU:task(function() end)\n",
    );
    let a = load_on(&src, &no_tags(), &[], 0);
    let b = load_on(&src, &no_tags(), &[], 1);
    let code =
        "local t = {} for i = 1, 8 do t[i] = math.random(1000000) end return table.concat(t, ',')";
    assert_ne!(a.eval(code), b.eval(code));
}

#[test]
fn ten_thousand_users_in_one_state() {
    let src = script(
        "many.lua",
        r#"
local locusta = require "locusta"
started, runs, stopped = 0, 0, 0
local U = locusta.user { wait_time = locusta.between(0.05, 0.15) }
function U:on_start() started = started + 1 end
function U:on_stop() stopped = stopped + 1 end
U:task(function(self) runs = runs + 1; locusta.sleep(0.01) end)
"#,
    );
    let shard = load(&src, &[]);
    let base_kb = shard.num("collectgarbage('collect') return collectgarbage('count')");
    let t0 = Instant::now();
    let mut peak_kb = 0.0;
    block_on(async {
        let n = 10_000;
        let mut stops = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..n {
            let stop = Rc::new(StopSignal::default());
            handles.push(monoio::spawn(shard.script.user(0, stop.clone())));
            stops.push(stop);
        }
        monoio::time::sleep(Duration::from_millis(600)).await;
        peak_kb = shard.num("collectgarbage('collect') return collectgarbage('count')");
        for s in &stops {
            s.stop_gracefully();
        }
        for h in handles {
            h.await;
        }
    });
    let took = t0.elapsed();
    assert_eq!(shard.num("return started"), 10_000.0);
    assert_eq!(shard.num("return stopped"), 10_000.0);
    // Every user ran tasks; how many depends on the machine, so no timing
    // is asserted here (speed is measured in benches/, not in tests).
    let runs = shard.num("return runs");
    assert!(runs >= 10_000.0, "runs {runs}");
    let per_user_kb = (peak_kb - base_kb) / 10_000.0;
    eprintln!("Lua heap per user in think time: {per_user_kb:.2} KB; {runs} tasks in {took:?}");
    assert!(per_user_kb < 20.0, "{per_user_kb} KB per user");
    assert!(shard.exceptions().is_empty());
}

/// Per-task cost of the task loop alone (no I/O, zero wait): run with
/// `cargo test --release --test script_runtime task_loop_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn task_loop_cost() {
    let src = script(
        "cost.lua",
        r#"
local locusta = require "locusta"
n = 0
local U = locusta.user {}
U:task(3, function() n = n + 1 end)
U:task(1, function() n = n + 1 end)
"#,
    );
    let shard = load(&src, &[]);
    let t0 = Instant::now();
    block_on(async {
        shard
            .run_users(
                0,
                std::env::var("USERS")
                    .map(|v| v.parse().unwrap())
                    .unwrap_or(100),
                Duration::from_millis(1000),
            )
            .await;
    });
    let n = shard.num("return n");
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "{n} tasks in {secs:.2} s: {:.0} ns per task",
        secs * 1e9 / n
    );
}
