//! The Lua user runtime without HTTP: `inspect`, load errors, task picking,
//! task sets, sequences, tags, wait times, exceptions, events, stop, and
//! many users in one state. Users run on a monoio runtime with timers;
//! what they did is read back from Lua globals (`ShardScript::eval`) or
//! from the shard's stats (`take_delta().exceptions`).

use std::cell::RefCell;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use locusta::engine::StopSignal;
use locusta::http::ClientConfig;
use locusta::script::runtime::{inspect, ShardContext, ShardScript};
use locusta::script::{ClassInfo, ScriptError, ScriptSource, TagFilter, TaskInfo};
use locusta::stats::{DeltaException, ShardStats};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A script file under a fresh temp dir, named `name`.
fn script(name: &str, text: &str) -> ScriptSource {
    let dir = std::env::temp_dir().join(format!(
        "locusta-rt-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, text).unwrap();
    ScriptSource::read(path.to_str().unwrap()).unwrap()
}

fn no_tags() -> TagFilter {
    TagFilter::default()
}

fn tags(include: &[&str], exclude: &[&str]) -> TagFilter {
    TagFilter {
        include: if include.is_empty() {
            None
        } else {
            Some(include.iter().map(|s| s.to_string()).collect())
        },
        exclude: exclude.iter().map(|s| s.to_string()).collect(),
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("monoio runtime")
        .block_on(f)
}

struct Shard {
    script: Rc<ShardScript>,
    stats: Rc<RefCell<ShardStats>>,
}

fn load_on(src: &ScriptSource, filter: &TagFilter, classes: &[&str], shard: usize) -> Shard {
    let stats = Rc::new(RefCell::new(ShardStats::new()));
    let classes: Vec<String> = classes.iter().map(|s| s.to_string()).collect();
    let script = ShardScript::load(
        src,
        filter,
        &classes,
        ShardContext {
            shard,
            stats: stats.clone(),
            client: ClientConfig::default(),
            default_host: None,
        },
    )
    .unwrap_or_else(|e| panic!("load failed: {e}"));
    Shard {
        script: Rc::new(script),
        stats,
    }
}

fn load(src: &ScriptSource, classes: &[&str]) -> Shard {
    load_on(src, &no_tags(), classes, 0)
}

fn load_error(name: &str, text: &str) -> String {
    let src = script(name, text);
    let e = inspect(&src, &no_tags()).expect_err("inspect should fail");
    let ScriptError::Load { message } = e;
    // The per-shard load reports the same.
    let stats = Rc::new(RefCell::new(ShardStats::new()));
    let e2 = ShardScript::load(
        &src,
        &no_tags(),
        &[],
        ShardContext {
            shard: 0,
            stats,
            client: ClientConfig::default(),
            default_host: None,
        },
    )
    .err()
    .expect("load should fail");
    assert_eq!(e2.to_string(), message);
    message
}

impl Shard {
    fn eval(&self, code: &str) -> String {
        self.script.eval(code)
    }

    fn num(&self, code: &str) -> f64 {
        let s = self.eval(code);
        s.parse()
            .unwrap_or_else(|_| panic!("{code} gave {s:?}, not a number"))
    }

    fn exceptions(&self) -> Vec<DeltaException> {
        self.stats.borrow_mut().take_delta().exceptions
    }

    /// Run `n` users of class index `class` for `run`, then stop them
    /// gracefully and wait (bounded) until all have ended.
    async fn run_users(&self, class: usize, n: usize, run: Duration) -> Duration {
        let mut stops = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..n {
            let stop = Rc::new(StopSignal::default());
            handles.push(monoio::spawn(self.script.user(class, stop.clone())));
            stops.push(stop);
        }
        monoio::time::sleep(run).await;
        let stopping = Instant::now();
        for s in &stops {
            s.stop_gracefully();
        }
        let all = async {
            for h in handles {
                h.await;
            }
        };
        monoio::select! {
            _ = all => {},
            _ = monoio::time::sleep(Duration::from_secs(10)) => panic!("users did not stop within 10 s"),
        }
        stopping.elapsed()
    }
}

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

    // -T checkout keeps only the tagged task; User2 is left with none.
    let e = inspect(&src, &tags(&["checkout"], &[]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("shop.lua:8: class User2 has no tasks left after --tags/--exclude-tags"),
        "{e}"
    );
    // -E checkout drops it; a taskset's tags apply to its tasks.
    let e = inspect(&src, &tags(&[], &["admin"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("class User2 has no tasks left"), "{e}");
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
fn weights_come_out_in_proportion() {
    let src = script(
        "weights.lua",
        r#"
local locusta = require "locusta"
counts = { a = 0, b = 0, c = 0 }
local U = locusta.user {}
U:task(6, function() counts.a = counts.a + 1 end)
U:task(3, function() counts.b = counts.b + 1 end)
U:task(1, function() counts.c = counts.c + 1 end)
"#,
    );
    let shard = load(&src, &[]);
    block_on(async {
        shard.run_users(0, 4, Duration::from_millis(150)).await;
    });
    let a = shard.num("return counts.a");
    let b = shard.num("return counts.b");
    let c = shard.num("return counts.c");
    let total = a + b + c;
    assert!(total > 20_000.0, "only {total} picks");
    for (got, want) in [(a, 0.6), (b, 0.3), (c, 0.1)] {
        let share = got / total;
        assert!(
            (share - want).abs() < want * 0.1,
            "share {share} vs {want} ({a} {b} {c})"
        );
    }
    assert!(shard.exceptions().is_empty());
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
fn sequence_runs_in_order_and_loops() {
    let src = script(
        "seq.lua",
        r#"
local locusta = require "locusta"
log = {}
local Checkout = locusta.sequence { name = "checkout" }
Checkout:task(function(self) log[#log + 1] = "a" end)
Checkout:task(2, function(self) log[#log + 1] = "b" end)
Checkout:task(function(self)
  log[#log + 1] = "c"
  if #log > 30 then self:interrupt() end
end)
local U = locusta.user { wait_time = locusta.constant(0) }
U:task(Checkout)
"#,
    );
    let shard = load(&src, &[]);
    block_on(async {
        shard.run_users(0, 1, Duration::from_millis(30)).await;
    });
    let log = shard.eval("return table.concat(log)");
    assert!(log.len() >= 8, "{log}");
    let expected: String = "abbc".repeat(log.len() / 4 + 1);
    assert_eq!(&log[..], &expected[..log.len()], "{log}");
    assert!(shard.exceptions().is_empty());
}

#[test]
fn nested_task_sets_and_interrupt_return_to_the_parent() {
    let src = script(
        "nested.lua",
        r#"
local locusta = require "locusta"
log = {}
checks = 0
local function put(s) log[#log + 1] = s end
local Inner = locusta.taskset { name = "inner" }
function Inner:on_start() put("[") end
function Inner:on_stop() put("]") end
Inner:task(function(self)
  self.n = (self.n or 0) + 1
  put("i")
  if self.parent.user ~= self.user or self.parent.parent ~= self.user then error("bad parents") end
  if self.client ~= self.user.client then error("bad client") end
  checks = checks + 1
  if self.n == 2 then self:interrupt() end
end)
local Outer = locusta.taskset { name = "outer", wait_time = locusta.constant(0) }
function Outer:on_start() put("{") end
function Outer:on_stop() put("}") end
Outer:task(1, Inner)
Outer:task(1, function(self)
  put("o")
  self.m = (self.m or 0) + 1
  if self.m == 2 then self:interrupt() end
end)
local U = locusta.user { wait_time = locusta.constant(0.001) }
U:task(Outer)
"#,
    );
    let shard = load(&src, &[]);
    block_on(async {
        shard.run_users(0, 1, Duration::from_millis(100)).await;
    });
    let log = shard.eval("return table.concat(log)");
    assert!(shard.exceptions().is_empty(), "{:?}", shard.exceptions());
    assert!(shard.num("return checks") >= 2.0, "{log}");
    // Every inner run is "[ii]" (interrupted after two tasks), every outer
    // run opens with "{" and ends with "}" after its second "o"; the last
    // run may be cut by the stop, which still closes what is open.
    assert!(log.contains("[ii]"), "{log}");
    assert!(log.starts_with('{'), "{log}");
    let mut depth = 0i32;
    let mut inner_tasks = 0;
    let mut outer_tasks = 0;
    for ch in log.chars() {
        match ch {
            '{' => {
                assert_eq!(depth, 0, "{log}");
                depth = 1;
                outer_tasks = 0;
            }
            '}' => {
                assert_eq!(depth, 1, "{log}");
                depth = 0;
            }
            '[' => {
                assert_eq!(depth, 1, "{log}");
                depth = 2;
                inner_tasks = 0;
            }
            ']' => {
                assert_eq!(depth, 2, "{log}");
                assert!(inner_tasks <= 2, "{log}");
                depth = 1;
            }
            'i' => {
                assert_eq!(depth, 2, "{log}");
                inner_tasks += 1;
            }
            'o' => {
                assert_eq!(depth, 1, "{log}");
                outer_tasks += 1;
                assert!(outer_tasks <= 2, "{log}");
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(depth, 0, "stop closes every open task set: {log}");
}

#[test]
fn tags_filter_what_runs() {
    let text = r#"
local locusta = require "locusta"
counts = { plain = 0, checkout = 0, admin = 0 }
local U = locusta.user {}
U:task(1, function() counts.plain = counts.plain + 1 end)
U:task(1, { tags = { "checkout" } }, function() counts.checkout = counts.checkout + 1 end)
local Admin = locusta.taskset { tags = { "admin" } }
Admin:task(function(self) counts.admin = counts.admin + 1; self:interrupt() end)
U:task(1, Admin)
"#;
    let src = script("tags.lua", text);
    let run = |filter: TagFilter| {
        let shard = load_on(&src, &filter, &[], 0);
        block_on(async {
            shard.run_users(0, 1, Duration::from_millis(30)).await;
        });
        (
            shard.num("return counts.plain"),
            shard.num("return counts.checkout"),
            shard.num("return counts.admin"),
        )
    };
    let (p, c, a) = run(tags(&["checkout"], &[]));
    assert!(p == 0.0 && c > 0.0 && a == 0.0, "{p} {c} {a}");
    let (p, c, a) = run(tags(&["admin"], &[]));
    assert!(p == 0.0 && c == 0.0 && a > 0.0, "{p} {c} {a}");
    let (p, c, a) = run(tags(&[], &["checkout"]));
    assert!(p > 0.0 && c == 0.0 && a > 0.0, "{p} {c} {a}");
    let (p, c, a) = run(tags(&[], &["admin", "checkout"]));
    assert!(p > 0.0 && c == 0.0 && a == 0.0, "{p} {c} {a}");
    let (p, c, a) = run(no_tags());
    assert!(p > 0.0 && c > 0.0 && a > 0.0, "{p} {c} {a}");
}

#[test]
fn task_errors_are_counted_with_file_line_and_the_user_carries_on() {
    let src = script(
        "boom.lua",
        r#"
local locusta = require "locusta"
runs, after = 0, 0
local U = locusta.user { wait_time = locusta.constant(0.001) }
local function deep() error("boom") end
U:task(1, function(self)
  runs = runs + 1
  deep()
  after = after + 1
end)
"#,
    );
    let shard = load(&src, &[]);
    block_on(async {
        shard.run_users(0, 2, Duration::from_millis(100)).await;
    });
    let runs = shard.num("return runs");
    assert!(runs >= 10.0, "runs {runs}");
    assert_eq!(shard.num("return after"), 0.0);
    let ex = shard.exceptions();
    assert_eq!(ex.len(), 1, "{ex:?}");
    assert!(
        ex[0].message.ends_with("boom.lua:5: boom"),
        "{}",
        ex[0].message
    );
    assert_eq!(ex[0].count as f64, runs);
    let tb = &ex[0].traceback;
    assert!(tb.starts_with("stack traceback:"), "{tb}");
    assert!(
        tb.contains("boom.lua:5: in ") && tb.contains("boom.lua:8: in function"),
        "{tb}"
    );
    assert!(!tb.contains("xpcall") && !tb.contains("[locusta]"), "{tb}");
}

#[test]
fn other_error_kinds_are_counted() {
    let src = script(
        "kinds.lua",
        r#"
local locusta = require "locusta"
local U = locusta.user { wait_time = locusta.constant(0.005) }
U:task(function(self) local t = nil; return t.x end)
U:task(function(self) error({ code = 1 }) end)
U:task(function(self) error(setmetatable({}, { __tostring = function() return "custom" end })) end)
U:task(function(self) locusta.sleep(-1) end)
U:task(function(self) self:interrupt() end)
U:task(function(self) error("no location", 0) end)
"#,
    );
    let shard = load(&src, &[]);
    block_on(async {
        shard.run_users(0, 1, Duration::from_millis(300)).await;
    });
    let ex = shard.exceptions();
    let messages: Vec<&str> = ex.iter().map(|e| e.message.as_str()).collect();
    let has = |needle: &str| messages.iter().any(|m| m.contains(needle));
    assert!(
        has("kinds.lua:4: attempt to index a nil value"),
        "{messages:#?}"
    );
    assert!(
        has("kinds.lua:5: error object is a table value"),
        "{messages:#?}"
    );
    assert!(has("kinds.lua:6: custom"), "{messages:#?}");
    assert!(has("kinds.lua:7:") && has("locusta.sleep"), "{messages:#?}");
    assert!(has("kinds.lua:8:") && has("interrupt"), "{messages:#?}");
    assert!(has("kinds.lua:9: no location"), "{messages:#?}");
}

#[test]
fn on_start_error_is_counted_and_the_user_stops() {
    let src = script(
        "startfail.lua",
        r#"
local locusta = require "locusta"
runs, stopped = 0, 0
local U = locusta.user { wait_time = locusta.constant(0.001) }
function U:on_start() error("login failed") end
function U:on_stop() stopped = stopped + 1 end
U:task(function() runs = runs + 1 end)
"#,
    );
    let shard = load(&src, &[]);
    block_on(async {
        let h = monoio::spawn(shard.script.user(0, Rc::new(StopSignal::default())));
        // The user ends by itself.
        monoio::select! {
            _ = h => {},
            _ = monoio::time::sleep(Duration::from_secs(5)) => panic!("user did not end"),
        }
    });
    assert_eq!(shard.num("return runs"), 0.0);
    assert_eq!(shard.num("return stopped"), 0.0);
    let ex = shard.exceptions();
    assert_eq!(ex.len(), 1);
    assert!(
        ex[0].message.ends_with("startfail.lua:5: login failed"),
        "{ex:?}"
    );
}

#[test]
fn wait_time_errors_are_counted() {
    let src = script(
        "badwait.lua",
        r#"
local locusta = require "locusta"
runs = 0
local U = locusta.user { wait_time = function(self) return "soon" end }
U:task(function() runs = runs + 1; locusta.sleep(0.01) end)
"#,
    );
    let shard = load(&src, &[]);
    block_on(async {
        shard.run_users(0, 1, Duration::from_millis(100)).await;
    });
    assert!(shard.num("return runs") >= 3.0);
    let ex = shard.exceptions();
    assert_eq!(ex.len(), 1, "{ex:?}");
    assert!(
        ex[0].message.contains("wait_time returned \"soon\""),
        "{ex:?}"
    );
}

#[test]
fn constant_pacing_keeps_its_rate() {
    let src = script(
        "pacing.lua",
        r#"
local locusta = require "locusta"
paced = 0
local P = locusta.user { wait_time = locusta.constant_pacing(0.1) }
P:task(function() paced = paced + 1; locusta.sleep(0.04) end)
"#,
    );
    let shard = load(&src, &[]);
    block_on(async {
        shard.run_users(0, 1, Duration::from_millis(1000)).await;
    });
    // One task every 0.1 s whatever the task's own 40 ms: ~10 in 1 s
    // (a plain wait of 0.1 s would give ~7).
    let paced = shard.num("return paced");
    assert!((8.0..=15.0).contains(&paced), "paced {paced} (want ~10)");
}

#[test]
fn constant_throughput_is_per_user() {
    let src = script(
        "throughput.lua",
        r#"
local locusta = require "locusta"
n = 0
local T = locusta.user { wait_time = locusta.constant_throughput(20) }
T:task(function() n = n + 1; locusta.sleep(0.02) end)
"#,
    );
    let shard = load(&src, &[]);
    block_on(async {
        shard.run_users(0, 2, Duration::from_millis(1000)).await;
    });
    let n = shard.num("return n");
    assert!(
        (20.0..=60.0).contains(&n),
        "n {n} (want ~40 for 2 users at 20/s)"
    );
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
        shard.run_users(0, std::env::var("USERS").map(|v| v.parse().unwrap()).unwrap_or(100), Duration::from_millis(1000)).await;
    });
    let n = shard.num("return n");
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "{n} tasks in {secs:.2} s: {:.0} ns per task",
        secs * 1e9 / n
    );
}
