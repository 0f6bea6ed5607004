//! Locust's HTTP API on a real locusta process: drive a run with
//! `/swarm`, watch `/stats/requests` fill, change users, reset, stop and
//! restart; the CSV downloads against the `--csv` files; 400s for bad form
//! values; basic auth and the base path; the open-address refusal; a
//! master with two workers driven through the API. Every run is bounded,
//! every socket on 127.0.0.1.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;
#[path = "web_support/client.rs"]
mod web_client;

use std::time::Duration;

use cluster_common::{free_port, worker_cmd, Proc};
use common::{locusta, ok, temp_dir, TestServer};
use web_client::{aggregated, get, post_form, request, wait_stats, web_addr};

const LIMIT: Duration = Duration::from_secs(20);
const SIGTERM: i32 = 15;

fn requests_of(stats: &serde_json::Value) -> u64 {
    aggregated(stats)["num_requests"].as_u64().unwrap()
}

#[test]
fn a_run_driven_entirely_through_the_api() {
    let server = TestServer::start(|_| ok("hello"));
    let dir = temp_dir("web-api-drive");
    let csv = dir.join("run");
    // No --headless and stdout is a file: the web front end, waiting.
    let mut p = Proc::spawn(
        &dir,
        "locusta",
        locusta()
            .args(["--web-port", "0", "--shards", "1", "--only-summary"])
            .args(["--csv", csv.to_str().unwrap()])
            .arg(server.url("/hello")),
    );
    let addr = web_addr(|| p.stderr(), LIMIT);
    let ready = wait_stats(addr, "", LIMIT, "ready", |s| s["state"] == "ready");
    assert_eq!(ready["user_count"], 0);
    assert_eq!(requests_of(&ready), 0);
    assert!(
        ready.get("workers").is_none(),
        "no workers key off a master"
    );
    assert_eq!(server.connections(), 0, "nothing loads before /swarm");

    let r = post_form(addr, "/swarm", "user_count=3&spawn_rate=100&host=");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Swarming started");
    assert_eq!(body["host"], server.url(""));
    let running = wait_stats(addr, "", LIMIT, "3 users and requests", |s| {
        s["state"] == "running" && s["user_count"] == 3 && requests_of(s) > 50
    });
    let row = &running["stats"][0];
    assert_eq!(row["method"], "GET");
    assert_eq!(row["name"], "/hello");
    assert_eq!(aggregated(&running)["name"], "Aggregated");
    assert!(aggregated(&running)["method"].is_null());
    assert!(running["total_rps"].as_f64().unwrap() > 0.0);
    assert_eq!(running["fail_ratio"], 0.0);

    // A swarm while running changes the users (Locust's "edit").
    let r = post_form(addr, "/swarm", "user_count=5&spawn_rate=100");
    assert_eq!(r.status, 200, "{}", r.text());
    wait_stats(addr, "", LIMIT, "5 users", |s| s["user_count"] == 5);
    // The current percentiles come from the per-second window.
    let s = wait_stats(addr, "", LIMIT, "current percentiles", |s| {
        s["current_response_time_percentiles"]["response_time_percentile_0.95"].is_number()
    });
    assert!(s["current_rps"].as_f64().unwrap() > 0.0);

    // Reset: the counts start again from (near) zero.
    let before = requests_of(&get(addr, "/stats/requests").json());
    let r = request(addr, "POST", "/stats/reset", &[], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    let after = requests_of(&get(addr, "/stats/requests").json());
    assert!(
        after < before,
        "reset: {after} requests after, {before} before"
    );

    // The CSV download is the --csv file's format.
    let dl = get(addr, "/stats/requests/csv");
    assert_eq!(dl.status, 200);
    assert!(dl.header("content-type").unwrap().starts_with("text/csv"));
    let disposition = dl.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment;filename=Locust_")
            && disposition.ends_with("_requests.csv"),
        "{disposition}"
    );
    let file = std::fs::read_to_string(dir.join("run_stats.csv")).unwrap();
    let header = |t: &str| t.lines().next().unwrap_or("").to_string();
    assert_eq!(header(&dl.text()), header(&file));
    let names = |t: &str| -> Vec<String> {
        t.lines()
            .skip(1)
            .map(|l| l.split(',').take(2).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(names(&dl.text()), vec!["GET,/hello", ",Aggregated"]);
    for (path, first) in [
        ("/stats/failures/csv", "Method,Name,Error,Occurrences"),
        ("/exceptions/csv", "Count,Message,Traceback,Nodes"),
        (
            "/stats/requests_full_history/csv",
            "Timestamp,User Count,Type,Name",
        ),
    ] {
        let r = get(addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.text().starts_with(first), "{path}: {}", r.text());
    }
    assert_eq!(
        get(addr, "/exceptions").json(),
        serde_json::json!({"exceptions": []})
    );
    let tasks = get(addr, "/tasks").json();
    assert_eq!(tasks["per_class"]["raw"]["ratio"], 1.0);
    let report = get(addr, "/stats/report?download=1");
    assert_eq!(report.status, 200);
    assert!(report.text().contains("<html"));
    assert!(report
        .header("content-disposition")
        .unwrap()
        .ends_with(".html"));
    assert_eq!(get(addr, "/stats/open_model").text(), "null");

    // Stop: users go; the process keeps serving; a new swarm restarts.
    let r = post_form(addr, "/stop", "");
    assert_eq!(
        r.json(),
        serde_json::json!({"success": true, "message": "Test stopped"})
    );
    wait_stats(addr, "", LIMIT, "stopped", |s| {
        s["state"] == "stopped" && s["user_count"] == 0
    });
    // run_time: the swarm stops by itself.
    let r = post_form(addr, "/swarm", "user_count=2&spawn_rate=100&run_time=2s");
    assert_eq!(r.json()["run_time"], 2);
    wait_stats(addr, "", LIMIT, "restarted", |s| s["state"] == "running");
    wait_stats(addr, "", LIMIT, "stopped by run_time", |s| {
        s["state"] == "stopped"
    });
    assert!(p.stderr().contains("--run-time limit reached"));

    // SIGTERM ends the process: exit 0 and the reports written.
    p.signal(SIGTERM);
    let status = p.wait(LIMIT);
    let stderr = p.stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let file = std::fs::read_to_string(dir.join("run_stats.csv")).unwrap();
    assert!(file.contains("GET,/hello,"), "{file}");
    assert!(p.stdout().contains("Aggregated"), "final tables printed");
}

#[test]
fn bad_form_values_get_a_400_naming_the_field() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("web-api-bad");
    let mut p = Proc::spawn(
        &dir,
        "locusta",
        locusta()
            .args(["--web-port", "0", "--shards", "1"])
            .arg(server.url("/")),
    );
    let addr = web_addr(|| p.stderr(), LIMIT);
    let cases: [(&[u8], &str); 13] = [
        (b"user_count=abc&spawn_rate=1", "user_count"),
        (b"user_count=-1&spawn_rate=1", "user_count"),
        (b"user_count=1.5&spawn_rate=1", "user_count"),
        (
            b"user_count=99999999999999999999&spawn_rate=1",
            "user_count",
        ),
        (b"user_count=4000000000&spawn_rate=1", "user_count"),
        (b"spawn_rate=1", "missing user_count"),
        (b"user_count=1", "missing spawn_rate"),
        (b"user_count=1&spawn_rate=0", "spawn_rate"),
        (b"user_count=1&spawn_rate=1e400", "spawn_rate"),
        (b"user_count=1&spawn_rate=1&run_time=forever", "run_time"),
        (b"user_count=1&spawn_rate=1&host=http://elsewhere:1", "host"),
        (b"\xff\xfe\x00garbage", "UTF-8"),
        (b"user_count=%zz&spawn_rate=1", "user_count"),
    ];
    for (body, needle) in cases {
        let r = request(
            addr,
            "POST",
            "/swarm",
            &["Content-Type: application/x-www-form-urlencoded"],
            body,
        );
        let shown = String::from_utf8_lossy(body);
        assert_eq!(r.status, 400, "{shown}: {}", r.text());
        let v = r.json();
        assert_eq!(v["success"], false, "{shown}");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{shown}: {msg}");
    }
    // A body past the limit, and the wrong methods.
    let huge = vec![b'a'; 100 * 1024];
    assert_eq!(request(addr, "POST", "/swarm", &[], &huge).status, 413);
    assert_eq!(get(addr, "/swarm").status, 405);
    assert_eq!(get(addr, "/stop").status, 405);
    assert_eq!(get(addr, "/nothing-here").status, 404);
    assert_eq!(get(addr, "/stats/report?download=%ff").status, 400);
    // Nothing started: the target saw no request.
    let s = get(addr, "/stats/requests").json();
    assert_eq!(s["state"], "ready");
    assert_eq!(server.connections(), 0);
    p.signal(SIGTERM);
    let status = p.wait(LIMIT);
    let stderr = p.stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn basic_auth_and_the_base_path_guard_every_endpoint() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("web-api-auth");
    // Headless with --web: the server serves beside a headless run.
    let mut p = Proc::spawn(
        &dir,
        "locusta",
        locusta()
            .args(["--headless", "--only-summary", "-u", "1", "-t", "30s"])
            .args(["--shards", "1", "--web", "--web-port", "0"])
            .args(["--web-auth", "admin:s3cret", "--web-base-path", "/lo/"])
            .arg(server.url("/")),
    );
    let addr = web_addr(|| p.stderr(), LIMIT);
    assert!(p.stderr().contains(&format!("http://{addr}/lo/")));
    let good = "Authorization: Basic YWRtaW46czNjcmV0"; // admin:s3cret
    let wrong = "Authorization: Basic YWRtaW46bm9wZQ=="; // admin:nope
    for path in [
        "/lo/stats/requests",
        "/lo/swarm",
        "/lo/stop",
        "/lo/stats/requests/csv",
    ] {
        let method = if path.ends_with("swarm") || path.ends_with("stop") {
            "POST"
        } else {
            "GET"
        };
        let r = request(addr, method, path, &[], b"");
        assert_eq!(r.status, 401, "{path} without credentials");
        assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
        assert_eq!(
            request(addr, method, path, &[wrong], b"").status,
            401,
            "{path}"
        );
    }
    let r = request(addr, "GET", "/lo/stats/requests", &[good], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["user_count"], 1);
    // Outside the base path: nothing.
    assert_eq!(
        request(addr, "GET", "/stats/requests", &[good], b"").status,
        404
    );
    assert_eq!(
        request(addr, "GET", "/lox/stats/requests", &[good], b"").status,
        404
    );
    p.signal(SIGTERM);
    let status = p.wait(LIMIT);
    assert_eq!(status.code(), Some(0), "{}", p.stderr());
}

#[test]
fn an_open_address_without_auth_is_refused_before_the_run() {
    let server = TestServer::start(|_| ok("x"));
    let out = common::run_bounded(
        locusta()
            .args([
                "--headless",
                "-u",
                "1",
                "-t",
                "5s",
                "--web",
                "--web-host",
                "0.0.0.0",
            ])
            .args(["--web-port", "0"])
            .arg(server.url("/")),
        LIMIT,
    );
    let stderr = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--web-host 0.0.0.0") && stderr.contains("--web-auth"),
        "{stderr}"
    );
    assert_eq!(server.connections(), 0, "no load before the refusal");
    // The web front end (no --headless, no terminal) checks the same.
    let out = common::run_bounded(
        locusta()
            .args(["-u", "1", "--web-host", "0.0.0.0", "--web-port", "0"])
            .arg(server.url("/")),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out.stderr));
}

#[test]
fn a_master_with_two_workers_driven_through_the_api() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("web-api-master");
    let port = free_port();
    let csv = dir.join("run");
    // The web front end on a master: it waits for /swarm, not for workers.
    let mut master = Proc::spawn(
        &dir,
        "master",
        locusta()
            .args(["--master", "--master-bind-port", &port.to_string()])
            .args(["--web-port", "0", "--only-summary", "-H", &server.url("")])
            .args(["--csv", csv.to_str().unwrap()]),
    );
    let addr = web_addr(|| master.stderr(), LIMIT);
    let mut w1 = Proc::spawn(&dir, "w1", &mut worker_cmd(port));
    let mut w2 = Proc::spawn(&dir, "w2", &mut worker_cmd(port));
    let s = wait_stats(addr, "", LIMIT, "two workers", |s| s["worker_count"] == 2);
    let workers = s["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    for w in workers {
        for key in ["id", "state", "user_count", "cpu_usage", "memory_usage"] {
            assert!(w.get(key).is_some(), "worker lacks {key}: {w}");
        }
    }
    let r = post_form(addr, "/swarm", "user_count=4&spawn_rate=100");
    assert_eq!(r.status, 200, "{}", r.text());
    let s = wait_stats(addr, "", LIMIT, "4 users on 2 workers with requests", |s| {
        let per_worker: Vec<u64> = s["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["user_count"].as_u64().unwrap())
            .collect();
        s["user_count"] == 4 && per_worker == [2, 2] && requests_of(s) > 0
    });
    assert!(s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|w| w["state"] == "running"));
    let r = post_form(addr, "/stop", "");
    assert_eq!(r.status, 200);
    wait_stats(addr, "", LIMIT, "stopped", |s| s["user_count"] == 0);
    master.signal(SIGTERM);
    let status = master.wait(LIMIT);
    assert_eq!(status.code(), Some(0), "{}", master.stderr());
    for w in [&mut w1, &mut w2] {
        w.wait(LIMIT);
    }
    assert!(std::fs::read_to_string(dir.join("run_stats.csv"))
        .unwrap()
        .contains("Aggregated"));
}

#[test]
fn autostart_runs_for_its_run_time_then_keeps_serving() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("web-api-autostart");
    let html = dir.join("report.html");
    let mut p = Proc::spawn(
        &dir,
        "locusta",
        locusta()
            .args(["--autostart", "-u", "2", "-r", "100", "-t", "2s"])
            .args(["--web-port", "0", "--shards", "1", "--only-summary"])
            .args(["--html", html.to_str().unwrap()])
            .arg(server.url("/")),
    );
    let addr = web_addr(|| p.stderr(), LIMIT);
    wait_stats(addr, "", LIMIT, "autostarted", |s| {
        s["user_count"] == 2 && requests_of(s) > 0
    });
    let s = wait_stats(addr, "", LIMIT, "stopped by -t", |s| {
        s["state"] == "stopped"
    });
    assert!(requests_of(&s) > 0);
    // Still serving after the stop (Locust's UI stays up): a new swarm runs.
    std::thread::sleep(Duration::from_millis(500));
    let r = post_form(addr, "/swarm", "user_count=1&spawn_rate=10");
    assert_eq!(r.status, 200, "{}", r.text());
    wait_stats(addr, "", LIMIT, "restarted", |s| s["user_count"] == 1);
    p.signal(SIGTERM);
    let status = p.wait(LIMIT);
    assert_eq!(status.code(), Some(0), "{}", p.stderr());
    let report = std::fs::read_to_string(&html).expect("--html written at exit");
    assert!(report.contains("Aggregated"));
}
