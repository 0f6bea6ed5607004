//! Errors in users' code are counted, not fatal: task errors with the
//! script's file:line and a traceback without the prelude's frames, other
//! error kinds, a failing on_start (the user stops), a wait_time that
//! returns no number. Helpers in `common/script.rs`.

use std::rc::Rc;
use std::time::Duration;

use locusta::engine::StopSignal;
use script_common::{block_on, load, script};

#[path = "common/script.rs"]
mod script_common;

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
    // The other prelude chunks are named "[locusta/...]".
    assert!(!tb.contains("[locusta/"), "{tb}");
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
    // The bad wait is replaced by a 1 s wait, not by none: one task ran.
    assert_eq!(shard.num("return runs"), 1.0);
    let ex = shard.exceptions();
    assert_eq!(ex.len(), 1, "{ex:?}");
    assert!(
        ex[0].message.contains("wait_time returned \"soon\""),
        "{ex:?}"
    );
}
