//! What a user's task loop runs, and when: tasks picked by weight,
//! sequences, nested task sets and interrupt, tag filters, and the pacing
//! wait times (constant_pacing, constant_throughput). Helpers in
//! `common/script.rs`.

use std::time::Duration;

use locusta::script::TagFilter;
use script_common::{block_on, load, load_on, no_tags, script, tags};

#[path = "common/script.rs"]
mod script_common;

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
    // Bounded by picks, not by time: a loaded machine gets more windows.
    let picks = || shard.num("return counts.a + counts.b + counts.c");
    for _ in 0..60 {
        block_on(async {
            shard.run_users(0, 4, Duration::from_millis(150)).await;
        });
        if picks() > 20_000.0 {
            break;
        }
    }
    let a = shard.num("return counts.a");
    let b = shard.num("return counts.b");
    let c = shard.num("return counts.c");
    let total = a + b + c;
    assert!(total > 20_000.0, "only {total} picks in 60 windows");
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
