//! Locust's flags and their edge cases, on the real binary: --show-task-ratio
//! (compared byte for byte with real Locust when it is installed),
//! --tags with several classes, --csv into a missing directory,
//! --csv-full-history without --csv, `-t 2S`, --processes, --print-stats.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(30);

/// The same classes in Lua and in Python, for side-by-side runs.
const SHOP_LUA: &str = r#"
local locusta = require "locusta"
local Shop = locusta.user { name = "Shop", weight = 3, wait_time = locusta.constant(0.05) }
Shop:task(3, { name = "browse", tags = { "browse" } }, function(self) self.client:get("/browse") end)
Shop:task(1, { name = "buy" }, function(self) self.client:get("/buy") end)
local Admin = locusta.user { name = "Admin", wait_time = locusta.constant(0.05) }
Admin:task(1, { name = "admin" }, function(self) self.client:get("/admin") end)
"#;

const SHOP_PY: &str = r#"
from locust import HttpUser, task, tag, constant
class Shop(HttpUser):
    weight = 3
    wait_time = constant(0.05)
    @tag("browse")
    @task(3)
    def browse(self): self.client.get("/browse")
    @task(1)
    def buy(self): self.client.get("/buy")
class Admin(HttpUser):
    wait_time = constant(0.05)
    @task
    def admin(self): self.client.get("/admin")
"#;

/// Locust 2.47's `--show-task-ratio` for SHOP_PY, captured from a real run.
const RATIO_TEXT: &str = "
 Task ratio per User class
--------------------------------------------------------------------------------
 75.0       Shop                                              
   75.0       browse                                          
   25.0       buy                                             
 25.0       Admin                                             
   100.0      admin                                           

 Total task ratio
--------------------------------------------------------------------------------
 75.0       Shop                                              
   56.2       browse                                          
   18.8       buy                                             
 25.0       Admin                                             
   25.0       admin                                           
";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// `python3 -m locust`, or None when Locust is not installed here.
fn locust() -> Option<Command> {
    let ok = Command::new("python3")
        .args(["-m", "locust", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped the Locust comparison: locust is not installed");
        return None;
    }
    let mut c = Command::new("python3");
    c.args(["-m", "locust"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("LOCUST_") {
            c.env_remove(k);
        }
    }
    Some(c)
}

#[test]
fn show_task_ratio_prints_locusts_text_and_json() {
    let dir = temp_dir("task-ratio");
    let lua = write(&dir, "shop.lua", SHOP_LUA);
    let py = write(&dir, "shop.py", SHOP_PY);
    // No host needed: nothing runs.
    let out = run_bounded(locusta().args(["-f", &lua, "--show-task-ratio"]), LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), RATIO_TEXT);

    // -u 10: 7.5 and 2.5 users round half to even (8 and 2), as Python.
    let json_args = ["--show-task-ratio-json", "-u", "10"];
    let out = run_bounded(locusta().args(["-f", &lua]).args(json_args), LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let ours = text(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&ours).expect("valid JSON");
    assert_eq!(v["per_class"]["Shop"]["ratio"], 0.8);
    assert_eq!(v["per_class"]["Shop"]["tasks"]["browse"]["ratio"], 0.75);
    assert_eq!(v["total"]["Admin"]["tasks"]["admin"]["ratio"], 0.2);

    // A selected class only.
    let out = run_bounded(
        locusta().args(["-f", &lua, "Admin", "--show-task-ratio-json"]),
        LIMIT,
    );
    let admin: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(admin["total"]["Admin"]["ratio"], 1.0);
    assert!(admin["total"].get("Shop").is_none());

    let Some(mut locust) = locust() else { return };
    let theirs = run_bounded(
        locust.args(["-f", &py]).args(json_args),
        Duration::from_secs(60),
    );
    assert_eq!(theirs.status.code(), Some(0), "{}", text(&theirs.stderr));
    assert_eq!(ours, text(&theirs.stdout), "JSON differs from Locust's");
}

#[test]
fn tags_filter_only_the_selected_classes() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("tags-select");
    let lua = write(&dir, "shop.lua", SHOP_LUA);
    let host = server.url("");
    let run = |extra: &[&str]| {
        run_bounded(
            locusta()
                .args(["-f", &lua, "--headless", "-u", "2", "-r", "100", "-t", "2s"])
                .args(["--only-summary", "--shards", "1", "-H", &host])
                .args(extra),
            LIMIT,
        )
    };
    // Admin is not selected: that it has no `browse` task does not matter.
    let out = run(&["Shop", "--tags", "browse"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("no tasks left"));
    let paths: Vec<String> = server.requests();
    assert!(
        paths.iter().any(|r| r.starts_with("GET /browse ")),
        "{paths:?}"
    );
    assert!(
        paths.iter().all(|r| r.starts_with("GET /browse ")),
        "{paths:?}"
    );

    // Both selected: Admin is dropped with a warning, Shop runs.
    let before = server.requests().len();
    let out = run(&["--tags", "browse"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("WARNING/locusta: Admin had no tasks left after filtering"),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"All users spawned: {"Shop": 2} (2 total users)"#),
        "{stderr}"
    );
    let paths = server.requests();
    assert!(paths.len() > before);
    assert!(paths[before..]
        .iter()
        .all(|r| r.starts_with("GET /browse ")));

    // No class left: refused before any load.
    let before = server.requests().len();
    let out = run(&["Admin", "--tags", "browse"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no user class has tasks left after --tags/--exclude-tags (Admin)"),
        "{stderr}"
    );
    assert_eq!(server.requests().len(), before);
}

#[test]
fn csv_creates_missing_directories() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("csv-mkdir");
    let prefix = dir.join("out/deeper/run");
    let out = run_bounded(
        locusta()
            .args(["--headless", "-u", "1", "-t", "1s", "--only-summary"])
            .args(["--csv", prefix.to_str().unwrap(), &server.url("/")]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for f in ["run_stats.csv", "run_stats_history.csv", "run_failures.csv"] {
        assert!(dir.join("out/deeper").join(f).is_file(), "{f} missing");
    }

    // Hostile: the directory's place is taken by a file.
    std::fs::write(dir.join("blocker"), "x").unwrap();
    let prefix = dir.join("blocker/sub/run");
    let out = run_bounded(
        locusta()
            .args(["--headless", "-u", "1", "-t", "1s", "--only-summary"])
            .args(["--csv", prefix.to_str().unwrap(), &server.url("/")]),
        LIMIT,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot create the directory for --csv"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_match_locust() {
    let url = format!("http://127.0.0.1:{}/", dead_port());
    let cases: [(&[&str], &str); 4] = [
        (
            &["--csv-full-history"],
            "'--csv-full-history' requires '--csv'.",
        ),
        (&["-t", "2S"], "not a run time"),
        (&["-t", "1H"], "not a run time"),
        (&["-t", "5M"], "not a run time"),
    ];
    for (args, expect) in cases {
        let out = run_bounded(locusta().args(args).arg(&url), LIMIT);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
    // Lower-case units still work.
    let out = run_bounded(
        locusta().args(["--headless", "-t", "1s", "--only-summary", &url]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));

    let Some(_) = locust() else { return };
    let dir = temp_dir("usage-locust");
    let py = write(&dir, "shop.py", SHOP_PY);
    for args in [&["--csv-full-history"][..], &["-t", "2S"][..]] {
        let mut c = locust().unwrap();
        c.args(["-f", &py, "--headless", "-H", &url]).args(args);
        let out = run_bounded(&mut c, Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(2), "Locust {args:?}");
    }
}

#[test]
fn processes_is_accepted_with_a_warning() {
    let server = TestServer::start(|_| ok("x"));
    let out = run_bounded(
        locusta()
            .args(["--headless", "-u", "1", "-t", "1s", "--only-summary"])
            .args(["--processes", "4", &server.url("/")]),
        LIMIT,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("WARNING/locusta: --processes 4 is ignored"),
        "{stderr}"
    );
    assert!(!server.requests().is_empty());
}

/// Periodic tables: the request table's header line, once per table.
fn tables(stdout: &str) -> usize {
    stdout
        .lines()
        .filter(|l| l.starts_with("Type ") && l.contains("# fails"))
        .count()
}

#[test]
fn print_stats_follows_locusts_rule() {
    let server = TestServer::start(|_| ok("x"));
    let run = |extra: &[&str]| {
        let out = run_bounded(
            locusta()
                .args(["--headless", "-u", "1", "-t", "3s"])
                .args(extra)
                .arg(server.url("/")),
            LIMIT,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        tables(&text(&out.stdout))
    };
    // Headless prints the periodic table (every 2 s) and the final one.
    assert!(run(&["--print-stats"]) >= 2);
    assert!(run(&[]) >= 2);
    // --only-summary wins over --print-stats, as in Locust.
    assert_eq!(run(&["--print-stats", "--only-summary"]), 1);
}
