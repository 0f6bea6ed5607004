//! Markov task sets (`locusta.markov`, Locust's MarkovTaskSet): the order
//! of a deterministic chain, transition frequencies against the chain's
//! stationary distribution, interrupt and the start state per instance,
//! each load-time validation error with file:line (also exit 2 through the
//! binary), and the unreachable-state warning. Helpers in
//! `common/script.rs` and `common/mod.rs`.

use std::time::Duration;

use script_common::{block_on, load, load_error, script};

#[path = "common/script.rs"]
mod script_common;

mod common;

#[test]
fn deterministic_chain_runs_in_order_from_start() {
    let src = script(
        "chain.lua",
        r#"
local locusta = require "locusta"
log = {}
local function step(name)
  return function(self)
    log[#log + 1] = name
    if #log >= 40 then self:interrupt() end
  end
end
local Flow = locusta.markov {
  start = "b",
  a = { task = step("a"), to = { b = 1 } },
  b = { task = step("b"), to = { "c" } },
  c = { task = step("c"), to = { { "a", 3 } } },
}
local U = locusta.user { wait_time = locusta.constant(0) }
U:task(Flow)
"#,
    );
    let shard = load(&src, &[]);
    block_on(async {
        shard.run_users(0, 1, Duration::from_millis(50)).await;
    });
    let log = shard.eval("return table.concat(log)");
    assert!(log.len() >= 40, "{log}");
    // Each entry into the set starts at `start` (b): interrupt after 40
    // steps re-enters it, so the 41st step is b again.
    let expected: String = "bca".repeat(14);
    assert_eq!(&log[..40], &expected[..40], "{log}");
    assert_eq!(&log[40..41], "b", "{log}");
    assert!(shard.exceptions().is_empty());
}

#[test]
fn transition_frequencies_match_the_stationary_distribution() {
    // browse -> browse 1, cart 1; cart -> browse 1, checkout 1;
    // checkout -> browse 1. Stationary: browse 4/7, cart 2/7, checkout 1/7.
    let src = script(
        "freq.lua",
        r#"
local locusta = require "locusta"
counts = { browse = 0, cart = 0, checkout = 0 }
local function count(name) return function() counts[name] = counts[name] + 1 end end
local Shop = locusta.markov {
  start = "browse",
  browse = { task = count("browse"), to = { browse = 1, cart = 1 } },
  cart = { task = count("cart"), to = { browse = 1, checkout = 1 } },
  checkout = { task = count("checkout"), to = { browse = 1 } },
}
local U = locusta.user {}
U:task(Shop)
"#,
    );
    let shard = load(&src, &[]);
    block_on(async {
        shard.run_users(0, 4, Duration::from_millis(150)).await;
    });
    let b = shard.num("return counts.browse");
    let c = shard.num("return counts.cart");
    let k = shard.num("return counts.checkout");
    let total = b + c + k;
    assert!(total > 5_000.0, "only {total} steps");
    for (got, want) in [(b, 4.0 / 7.0), (c, 2.0 / 7.0), (k, 1.0 / 7.0)] {
        let share = got / total;
        assert!(
            (share - want).abs() < want * 0.1,
            "share {share} vs {want} ({b} {c} {k})"
        );
    }
    assert!(shard.exceptions().is_empty());
}

#[test]
fn wait_time_on_start_and_on_stop_as_a_task_set() {
    let src = script(
        "hooks.lua",
        r#"
local locusta = require "locusta"
started, stopped, steps = 0, 0, 0
local Flow = locusta.markov {
  start = "s",
  wait_time = locusta.constant(0.05),
  on_start = function(self) started = started + 1 end,
  on_stop = function(self) stopped = stopped + 1 end,
  s = { task = function(self) steps = steps + 1 end, to = { s = 1 } },
}
local U = locusta.user { wait_time = locusta.constant(10) }
U:task(Flow)
"#,
    );
    let shard = load(&src, &[]);
    block_on(async {
        shard.run_users(0, 1, Duration::from_millis(400)).await;
    });
    // The set's own wait (0.05 s) applies between steps, not the user's 10 s.
    let steps = shard.num("return steps");
    assert!((2.0..=12.0).contains(&steps), "{steps} steps in 0.4 s");
    assert_eq!(shard.num("return started"), 1.0);
    assert_eq!(shard.num("return stopped"), 1.0);
}

#[test]
fn validation_errors_name_the_file_and_line() {
    let head = "local locusta = require 'locusta'\n";
    let user = "\nlocal U = locusta.user {}\nU:task(F)\n";
    for (body, want) in [
        ("local F = locusta.markov { start = 'a' }", "bad.lua:2: no states in markov task set markov@"),
        (
            "local F = locusta.markov { name = 'Flow',\n a = { task = function() end, to = { a = 1 } } }",
            "bad.lua:2: Flow: start must name the first state, as in start = \"a\" (got a nil)",
        ),
        (
            "local F = locusta.markov { start = 'x', name = 'Flow',\n a = { task = function() end, to = { a = 1 } } }",
            "bad.lua:2: Flow: start names no state: \"x\" (states: a)",
        ),
        (
            "local F = locusta.markov { start = 'a',\n a = { task = function() end,\n to = { nowhere = 1 } } }",
            "bad.lua:3: transition to nowhere from a is invalid since no such state exists",
        ),
        (
            "local F = locusta.markov { start = 'a', name = 'Flow',\n a = { task = function() end, to = { dead = 1 } },\n dead = { task = function() end } }",
            "bad.lua:3: Flow.dead cannot be used as a target for a transition since it does not define any transitions of its own (used as a transition from a)",
        ),
        (
            "local F = locusta.markov { start = 'a', name = 'Flow',\n a = { task = function() end, to = { a = 1 },\n tags = { 'x' } } }",
            "bad.lua:3: tags are unsupported in markov task sets",
        ),
        (
            "local F = locusta.markov { start = 'a', name = 'Flow',\n a = { task = 'nope', to = { a = 1 } } }",
            "bad.lua:2: Flow.a: task must be a function or a task set",
        ),
        (
            "local F = locusta.markov { start = 'a', name = 'Flow',\n a = { task = function() end, to = { a = -1 } } }",
            "bad.lua:3: Flow.a: the weight of the transition to a must be an integer >= 0",
        ),
        (
            "local F = locusta.markov { start = 'a', name = 'Flow',\n a = { task = function() end, to = { b = 0 } },\n b = { task = function() end, to = { b = 1 } } }",
            "bad.lua:3: Flow: the start state a has no transitions",
        ),
        (
            "local F = locusta.markov { start = 'a', name = 'Flow',\n a = { task = function() end, too = { a = 1 } } }",
            "bad.lua:3: Flow.a: unknown key \"too\"",
        ),
        (
            "local F = locusta.markov { start = 'a', name = 'Flow',\n a = { task = function() end, to = { a = 1 } } }\nF:task(function() end)",
            "bad.lua:2: Flow: a markov task set takes states",
        ),
    ] {
        let msg = load_error("bad.lua", &format!("{head}{body}{user}"));
        assert!(msg.contains(want), "want {want:?}\ngot  {msg:?}");
    }
}

#[test]
fn binary_exits_2_on_a_bad_chain_and_warns_about_unreachable_states() {
    let dir = common::temp_dir("markov-bin");
    let bad = dir.join("dead.lua");
    std::fs::write(
        &bad,
        "local locusta = require 'locusta'\nlocal F = locusta.markov { start = 'a',\n  a = { task = function() end, to = { b = 1 } },\n  b = { task = function() end } }\nlocal U = locusta.user {}\nU:task(F)\n",
    )
    .unwrap();
    let out = common::run_bounded(
        common::locusta().args([
            "-f",
            bad.to_str().unwrap(),
            "--headless",
            "-u",
            "1",
            "-t",
            "1s",
            "-H",
            "http://127.0.0.1:9",
        ]),
        Duration::from_secs(30),
    );
    let stderr = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("dead.lua:3: "), "{stderr}");
    assert!(
        stderr.contains("does not define any transitions"),
        "{stderr}"
    );

    let warn = dir.join("island.lua");
    std::fs::write(
        &warn,
        "local locusta = require 'locusta'\nlocal F = locusta.markov { start = 'a', name = 'Flow',\n  a = { task = function() end, to = { a = 1 } },\n  island = { task = function() end, to = { a = 1 } } }\nlocal U = locusta.user {}\nU:task(F)\n",
    )
    .unwrap();
    let out = common::run_bounded(
        common::locusta().args(["-f", warn.to_str().unwrap(), "--list"]),
        Duration::from_secs(30),
    );
    let stderr = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let line = "island.lua:2: the following markov states are unreachable in Flow: island";
    assert_eq!(stderr.matches(line).count(), 1, "once: {stderr}");
}
