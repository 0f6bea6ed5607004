//! The report's task ratio counts what really ran: a script whose two
//! tasks each make one request to their own path runs with a graceful stop
//! (so no task is cut mid-request), and the HTML report's "Runs" for each
//! task must equal the requests the stats CSV counted for its path, on two
//! shards of one process and on a master with two workers (whose counts
//! travel in their stats reports).

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;

use std::path::Path;
use std::time::Duration;

use cluster_common::{free_port, master_cmd, worker_cmd, Proc};
use common::*;

const SCRIPT: &str = r#"
local locusta = require "locusta"
local Shop = locusta.user { wait_time = locusta.constant(0.01) }
Shop:task(3, { name = "browse" }, function(self) self.client:get("/browse") end)
Shop:task(1, { name = "buy" }, function(self) self.client:get("/buy") end)
"#;

/// The requests of the row named `name` in `<csv>_stats.csv`.
fn csv_requests(csv: &Path, name: &str) -> u64 {
    let stats = csv.with_file_name(format!(
        "{}_stats.csv",
        csv.file_name().unwrap().to_str().unwrap()
    ));
    let rows = csv_rows(&stats);
    let col = rows[0].iter().position(|h| h == "Request Count").unwrap();
    rows.iter()
        .find(|r| r[1] == name)
        .unwrap_or_else(|| panic!("no row {name} in {rows:?}"))[col]
        .parse()
        .unwrap()
}

/// The "Runs" cell of a task's row in the report's Tasks table.
fn report_runs(html: &str, task: &str) -> u64 {
    let row = format!("<tr><td class=\"task\">{task}</td>");
    let at = html
        .find(&row)
        .unwrap_or_else(|| panic!("no task row {task} in the report"));
    let cells: Vec<&str> = html[at..]
        .split("</tr>")
        .next()
        .unwrap()
        .split("<td>")
        .skip(1)
        .map(|c| c.trim_end_matches("</td>"))
        .collect();
    // Configured of class, of total, then Runs.
    cells[2]
        .parse()
        .unwrap_or_else(|_| panic!("runs of {task}: {cells:?}"))
}

fn check(html_path: &Path, csv: &Path) {
    let html = std::fs::read_to_string(html_path).expect("the report");
    assert!(!html.contains("not counted"), "tasks were counted");
    let (browse, buy) = (report_runs(&html, "browse"), report_runs(&html, "buy"));
    assert_eq!(browse, csv_requests(csv, "/browse"));
    assert_eq!(buy, csv_requests(csv, "/buy"));
    assert!(browse + buy > 40, "only {browse} + {buy} tasks ran");
    assert!(browse > buy, "weights 3:1 gave {browse}:{buy}");
}

#[test]
fn task_runs_equal_requests_on_two_shards() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("report-tasks-local");
    let script = dir.join("tasks.lua");
    std::fs::write(&script, SCRIPT).unwrap();
    let (csv, html) = (dir.join("run"), dir.join("run.html"));
    let out = run_bounded(
        locusta()
            .args(["-f", script.to_str().unwrap(), "-H", &server.url("")])
            .args(["--headless", "--only-summary", "--shards", "2"])
            .args(["-u", "4", "-r", "100", "-t", "2s", "-s", "5"])
            .args(["--csv", csv.to_str().unwrap()])
            .args(["--html", html.to_str().unwrap()]),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    check(&html, &csv);
}

#[test]
fn a_masters_task_runs_are_its_workers() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("report-tasks-master");
    let script = dir.join("tasks.lua");
    std::fs::write(&script, SCRIPT).unwrap();
    let (csv, html) = (dir.join("run"), dir.join("run.html"));
    let port = free_port();
    let script = script.to_str().unwrap();
    let args = [
        "-f",
        script,
        "-u",
        "4",
        "-r",
        "100",
        "-t",
        "3s",
        "-s",
        "5",
        "--expect-workers",
        "2",
        "--html",
        html.to_str().unwrap(),
    ];
    let limit = Duration::from_secs(40);
    let mut master = Proc::spawn(
        &dir,
        "master",
        &mut master_cmd(port, &server.url(""), &args, &csv),
    );
    let mut workers: Vec<Proc> = (0..2)
        .map(|i| {
            Proc::spawn(
                &dir,
                &format!("worker{i}"),
                // A worker stops its users with its own -s: gracefully, so
                // no task is cut before its request is counted.
                worker_cmd(port).args(["-f", script, "-s", "5"]),
            )
        })
        .collect();
    assert!(master.wait(limit).success(), "{}", master.logs());
    for w in &mut workers {
        assert!(w.wait(limit).success(), "{}", w.logs());
    }
    check(&html, &csv);
}
