//! Lua user scripts through the real binary: the shipped examples against
//! the built-in shop target, dispatch by weight, tags, class selection,
//! `--list`, load errors (exit 2, file:line) and task errors (exceptions).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use locusta::demo::DemoTarget;

fn write_script(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn headless(script: &str, host: &str, extra: &[&str]) -> std::process::Output {
    run_bounded(
        locusta()
            .args(["-f", script, "-H", host, "--headless", "--only-summary"])
            .args(extra),
        Duration::from_secs(40),
    )
}

/// Request count per stats name from a `_stats.csv` (Aggregated excluded).
fn counts_by_name(path: &Path) -> HashMap<String, u64> {
    csv_rows(path)[1..]
        .iter()
        .filter(|r| r[1] != "Aggregated")
        .map(|r| (r[1].clone(), r[2].parse().unwrap()))
        .collect()
}

#[test]
fn every_example_runs_against_the_shop() {
    let target = DemoTarget::start().unwrap();
    for example in [
        "basic",
        "login_token",
        "sequential_checkout",
        "tags",
        "catch_response",
        "shop",
    ] {
        let out = headless(
            &format!("lua/examples/{example}.lua"),
            &target.base_url(),
            &[
                "-u",
                "20",
                "-r",
                "20",
                "-t",
                "3s",
                "--exit-code-on-error",
                "0",
            ],
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{example}: {stderr}");
        let stdout = text(&out.stdout);
        assert!(stdout.contains("Aggregated"), "{example}: {stdout}");
        let exceptions_free = !stdout.contains("Exceptions") && !stdout.contains("Traceback");
        assert!(exceptions_free, "{example} raised: {stdout}");
    }
}

#[test]
fn weights_fixed_count_and_on_start_once_per_user() {
    let server = TestServer::start(|_| ok("{}"));
    let dir = temp_dir("weights");
    let script = write_script(
        &dir,
        "w.lua",
        r#"
local locusta = require "locusta"
local A = locusta.user { name = "A", weight = 3, wait_time = locusta.constant(0.2) }
function A:on_start() self.client:get("/start/A") end
A:task(1, function(self) self.client:get("/a") end)
local B = locusta.user { name = "B", weight = 1, wait_time = locusta.constant(0.2) }
function B:on_start() self.client:get("/start/B") end
B:task(1, function(self) self.client:get("/b") end)
local Admin = locusta.user { name = "Admin", fixed_count = 2, wait_time = locusta.constant(0.2) }
function Admin:on_start() self.client:get("/start/Admin") end
Admin:task(1, function(self) self.client:get("/admin") end)
"#,
    );
    let prefix = dir.join("w");
    let out = headless(
        &script,
        &server.url(""),
        &[
            "-u",
            "42",
            "-r",
            "100",
            "-t",
            "2s",
            "--csv",
            prefix.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let counts = counts_by_name(&dir.join("w_stats.csv"));
    assert_eq!(counts["/start/Admin"], 2, "{counts:?}");
    assert_eq!(counts["/start/A"], 30, "{counts:?}");
    assert_eq!(counts["/start/B"], 10, "{counts:?}");
}

#[test]
fn tags_and_class_selection() {
    let target = DemoTarget::start().unwrap();
    let dir = temp_dir("tags");
    let prefix = dir.join("t");
    let csv = ["--csv", prefix.to_str().unwrap()];
    let run = |extra: &[&str]| {
        let mut args = vec![
            "-u",
            "10",
            "-r",
            "100",
            "-t",
            "2s",
            "--exit-code-on-error",
            "0",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&csv);
        headless("lua/examples/tags.lua", &target.base_url(), &args)
    };
    let out = run(&["-T", "checkout"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let names: Vec<String> = counts_by_name(&dir.join("t_stats.csv"))
        .into_keys()
        .collect();
    assert_eq!(names, ["/api/checkout"]);

    let out = run(&["-E", "checkout"]);
    assert_eq!(out.status.code(), Some(0));
    let counts = counts_by_name(&dir.join("t_stats.csv"));
    assert!(!counts.contains_key("/api/checkout") && counts.contains_key("/api/products"));

    // Positional names select classes; an unknown one is a usage error.
    let out = headless("lua/examples/shop.lua", &target.base_url(), &["Nobody"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no user class named `Nobody`"));
    let prefix = dir.join("b");
    let out = headless(
        "lua/examples/shop.lua",
        &target.base_url(),
        &[
            "-u",
            "5",
            "-r",
            "50",
            "-t",
            "2s",
            "--csv",
            prefix.to_str().unwrap(),
            "Browser",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let counts = counts_by_name(&dir.join("b_stats.csv"));
    assert!(
        !counts.contains_key("/api/login"),
        "Shopper ran: {counts:?}"
    );
}

#[test]
fn list_prints_classes_and_tasks() {
    let out = run_bounded(
        locusta().args(["-f", "lua/examples/shop.lua", "--list"]),
        Duration::from_secs(10),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("Shopper (weight 3)"), "{stdout}");
    assert!(stdout.contains("Browser (weight 1)"), "{stdout}");
    assert!(stdout.contains("checkout"), "{stdout}");
}

#[test]
fn broken_scripts_stop_before_any_load() {
    let server = TestServer::start(|_| ok(""));
    let dir = temp_dir("broken");
    let cases = [
        ("syntax.lua", "local x = \nlocal locusta = require 'locusta'\n)", "syntax.lua:2: unexpected symbol"),
        (
            "notasks.lua",
            "local locusta = require 'locusta'\nlocal U = locusta.user {}\n",
            "no tasks",
        ),
        (
            "weight.lua",
            "local locusta = require 'locusta'\nlocal U = locusta.user { weight = 0 }\nU:task(1, function() end)\n",
            "weight",
        ),
        ("raise.lua", "error('boom at load')\n", "raise.lua:1: boom at load"),
    ];
    for (name, code, expect) in cases {
        let script = write_script(&dir, name, code);
        let out = headless(&script, &server.url(""), &["-u", "1", "-t", "1s"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(expect),
            "{name}: expected `{expect}` in {stderr}"
        );
    }
    assert!(server.requests().is_empty(), "a broken script sent load");
}

#[test]
fn task_errors_are_counted_and_the_user_carries_on() {
    let server = TestServer::start(|_| ok("{}"));
    let dir = temp_dir("taskerr");
    let script = write_script(
        &dir,
        "err.lua",
        "local locusta = require 'locusta'\n\
         local U = locusta.user { wait_time = locusta.constant(0.05) }\n\
         U:task(1, function(self)\n\
           self.client:get('/before')\n\
           error('task went wrong')\n\
         end)\n",
    );
    let prefix = dir.join("e");
    let out = headless(
        &script,
        &server.url(""),
        &[
            "-u",
            "2",
            "-r",
            "10",
            "-t",
            "2s",
            "--csv",
            prefix.to_str().unwrap(),
        ],
    );
    // Exceptions make the run fail, as in Locust.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let counts = counts_by_name(&dir.join("e_stats.csv"));
    assert!(
        counts["/before"] > 10,
        "users stopped after the error: {counts:?}"
    );
    let exceptions = std::fs::read_to_string(dir.join("e_exceptions.csv")).unwrap();
    assert!(
        exceptions.contains("err.lua:5: task went wrong"),
        "{exceptions}"
    );
}
