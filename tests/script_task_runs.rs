//! The report's task ratio: how often each top-level task of each class
//! ran, counted in the Lua task loop and read by the engine once a second
//! (`ShardScript::task_runs`), checked against the script's own counters,
//! exactly, for weighted tasks and task sets, and after a reset.

use std::time::Duration;

use locusta::engine::TaskRuns;
use script_common::{block_on, load, script};

#[path = "common/script.rs"]
mod script_common;

fn runs(list: &[TaskRuns], class: &str, task: &str) -> u64 {
    list.iter()
        .find(|t| t.class == class && t.task == task)
        .unwrap_or_else(|| panic!("no {class}/{task} in {list:?}"))
        .runs
}

#[test]
fn counts_equal_what_the_tasks_saw() {
    let src = script(
        "ratio.lua",
        r#"
local locusta = require "locusta"
n = { browse = 0, buy = 0, set = 0, s1 = 0, s2 = 0 }
local Set = locusta.taskset { name = "Checkout" }
Set:task(function(self) n.set = n.set + 1; self:interrupt() end)
local Web = locusta.user { wait_time = locusta.constant(0) }
Web:task(3, { name = "browse" }, function() n.browse = n.browse + 1 end)
Web:task(1, { name = "buy" }, function() n.buy = n.buy + 1 end)
Web:task(1, Set)
local Seq = locusta.user { wait_time = locusta.constant(0) }
Seq:task(2, { name = "one" }, function() n.s1 = n.s1 + 1 end)
Seq:task(1, { name = "two" }, function() n.s2 = n.s2 + 1 end)
"#,
    );
    let shard = load(&src, &[]);
    block_on(async {
        shard.run_users(0, 3, Duration::from_millis(200)).await;
        shard.run_users(1, 2, Duration::from_millis(100)).await;
    });
    let got = shard.script.task_runs();
    let names: Vec<(&str, &str)> = got
        .iter()
        .map(|t| (t.class.as_str(), t.task.as_str()))
        .collect();
    let listed: Vec<(String, String)> = shard
        .script
        .classes()
        .iter()
        .flat_map(|c| c.tasks.iter().map(|t| (c.name.clone(), t.name.clone())))
        .collect();
    let listed: Vec<(&str, &str)> = listed
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(names, listed, "one count per listed task, in listing order");
    let web = &shard.script.classes()[0].name;
    let seq = &shard.script.classes()[1].name;
    let want = |code: &str| shard.num(code) as u64;
    assert_eq!(runs(&got, web, "browse"), want("return n.browse"));
    assert_eq!(runs(&got, web, "buy"), want("return n.buy"));
    // A task set counts once per entry into it (it interrupts after one task).
    assert_eq!(runs(&got, web, "Checkout"), want("return n.set"));
    assert_eq!(runs(&got, seq, "one"), want("return n.s1"));
    assert_eq!(runs(&got, seq, "two"), want("return n.s2"));
    let web_total = want("return n.browse + n.buy + n.set");
    assert!(web_total > 1_000, "only {web_total} tasks ran");
    // Weights 3:1:1.
    let share = runs(&got, web, "browse") as f64 / web_total as f64;
    assert!((share - 0.6).abs() < 0.06, "browse share {share}");

    shard.script.reset_task_runs();
    assert!(
        shard.script.task_runs().iter().all(|t| t.runs == 0),
        "a reset counts from zero"
    );
}
