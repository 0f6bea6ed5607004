//! The open model's reports end to end (the real binary, an in-process
//! server on 127.0.0.1): `PREFIX_open_model.csv`, the JSON keys and the
//! console's corrected column, with dropped iterations against a slow
//! server; a closed-model run writes none of it.

mod common;

use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

fn row<'a>(rows: &'a [Vec<String>], name: &str) -> &'a Vec<String> {
    rows.iter().find(|r| r[1] == name).unwrap()
}

fn num(cell: &str) -> u64 {
    cell.parse().unwrap()
}

#[test]
fn a_slow_server_shows_dropped_iterations_in_every_report() {
    // 200 ms a reply, 2 users: at most ~10 iterations/s of the 50 asked.
    let server = TestServer::start(|_| {
        std::thread::sleep(Duration::from_millis(200));
        ok("slow")
    });
    let dir = temp_dir("open-model-report");
    let prefix = dir.join("out");
    let out = run_bounded(
        locusta()
            .args([
                "--headless",
                "--rate",
                "50",
                "-u",
                "2",
                "-t",
                "3s",
                "--json",
            ])
            .args(["--csv", prefix.to_str().unwrap()])
            .arg(server.url("/slow")),
        LIMIT,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = csv_rows(&dir.join("out_open_model.csv"));
    assert_eq!(
        rows[0].join(","),
        "Type,Name,Intended,Started,Dropped,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
    );
    // Locust's files keep their columns; the rows follow stats.csv.
    let stats = csv_rows(&dir.join("out_stats.csv"));
    assert_eq!(stats[0][2], "Request Count");
    let names: Vec<&str> = rows.iter().skip(1).map(|r| r[1].as_str()).collect();
    let stat_names: Vec<&str> = stats.iter().skip(1).map(|r| r[1].as_str()).collect();
    assert_eq!(names, stat_names);
    let slow = row(&rows, "/slow");
    let (intended, started, dropped) = (num(&slow[2]), num(&slow[3]), num(&slow[4]));
    assert_eq!(intended, started + dropped);
    // 3 s at 50/s is 150 intended; 2 users at 200 ms run at most ~30,
    // the one-second queue holds up to 50: at least 40 dropped (margin
    // for a slow start), and some started.
    assert!(dropped >= 40, "dropped {dropped}");
    assert!(started >= 5, "started {started}");
    let total = row(&rows, "Aggregated");
    assert!(num(&total[4]) >= dropped, "{total:?}");
    assert!(
        num(&total[2]) >= num(&total[3]) + num(&total[4]),
        "{total:?}"
    );
    // Corrected p99: the queue's wait is in it (well over the 200 ms).
    let p99: f64 = total[12].parse().unwrap();
    assert!(p99 >= 400.0, "corrected p99 {p99} ms");
    // JSON: Locust's list, with the open-model keys.
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = &json.as_array().unwrap()[0];
    assert_eq!(entry["name"], "/slow");
    assert_eq!(entry["dropped_iterations"].as_u64(), Some(dropped));
    assert!(entry["corrected_percentiles"]["0.99"].as_f64().unwrap() >= 400.0);
    let totals = &entry["open_model"];
    assert_eq!(totals["target_rate"], 50.0);
    assert_eq!(totals["dropped_iterations"].as_u64(), Some(num(&total[4])));
    assert_eq!(totals["started_iterations"].as_u64(), Some(num(&total[3])));
    // Console (stderr with --json): corrected beside measured.
    let console = text(&out.stderr);
    assert!(console.contains("corrected = from each iteration's intended start"));
    assert!(
        console.contains(&format!("dropped {}", num(&total[4]))),
        "{console}"
    );
}

#[test]
fn a_closed_run_writes_no_open_model_report() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("closed-model-report");
    let prefix = dir.join("out");
    let out = run_bounded(
        locusta()
            .args(["--headless", "-u", "2", "-t", "2s", "--json"])
            .args(["--csv", prefix.to_str().unwrap()])
            .arg(server.url("/")),
        LIMIT,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.join("out_stats.csv").exists());
    assert!(!dir.join("out_open_model.csv").exists());
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("corrected"), "{stdout}");
    assert!(!text(&out.stderr).contains("corrected"));
}
