//! An open-model run (`--arrival-rate`) driven through the web API: a
//! `/swarm` starts the arrival rate with `user_count` as the pool,
//! `arrival_rate` changes it while it runs, a swarm without it is refused
//! (the pool is fixed), and `/stats/open_model` shows the counters. A real
//! process against an in-process server on 127.0.0.1, bounded in time.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;
#[path = "web_support/client.rs"]
mod web_client;

use std::time::Duration;

use cluster_common::Proc;
use common::{locusta, ok, temp_dir, TestServer};
use web_client::{get, post_form, wait_stats, web_addr};

const LIMIT: Duration = Duration::from_secs(20);
const SIGTERM: i32 = 15;

fn open_model(addr: std::net::SocketAddr) -> serde_json::Value {
    let r = get(addr, "/stats/open_model");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn a_swarm_starts_the_arrival_rate_and_arrival_rate_changes_it() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("web-open-model");
    let mut p = Proc::spawn(
        &dir,
        "locusta",
        locusta()
            .args(["--arrival-rate", "50", "--web-port", "0", "--shards", "1"])
            .args(["--only-summary"])
            .arg(server.url("/")),
    );
    let addr = web_addr(|| p.stderr(), LIMIT);
    wait_stats(addr, "", LIMIT, "ready", |s| s["state"] == "ready");
    assert!(open_model(addr).is_null(), "nothing runs before /swarm");
    // Locust's fields; the rate is --arrival-rate's.
    let r = post_form(addr, "/swarm", "user_count=4&spawn_rate=1");
    assert_eq!(r.status, 200, "{}", r.text());
    wait_stats(addr, "", LIMIT, "running", |s| s["state"] == "running");
    let open = open_model(addr);
    assert_eq!(open["target_rate"], 50.0, "{open}");
    assert_eq!(open["max_users"], 4, "{open}");
    // The pool is fixed while it runs: a plain swarm is refused, naming
    // the field that would work.
    let r = post_form(addr, "/swarm", "user_count=8&spawn_rate=1");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("arrival_rate"), "{}", r.text());
    let r = post_form(addr, "/swarm", "user_count=4&spawn_rate=1&arrival_rate=120");
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let open = open_model(addr);
        if open["target_rate"] == 120.0 && open["started"].as_u64().unwrap_or(0) > 20 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{open}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for bad in [
        "arrival_rate=0",
        "arrival_rate=abc",
        "arrival_rate=-5",
        "arrival_rate=1e99",
    ] {
        let r = post_form(addr, "/swarm", &format!("user_count=4&spawn_rate=1&{bad}"));
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.text().contains("arrival_rate"), "{}", r.text());
    }
    p.signal(SIGTERM);
    assert_eq!(p.wait(LIMIT).code(), Some(0), "{}", p.stderr());
    assert!(server.requests().len() > 20, "{}", p.stderr());
}

#[test]
fn arrival_rate_is_refused_in_a_closed_model_run() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("web-open-model-closed");
    let mut p = Proc::spawn(
        &dir,
        "locusta",
        locusta()
            .args(["--web-port", "0", "--shards", "1", "--only-summary"])
            .arg(server.url("/")),
    );
    let addr = web_addr(|| p.stderr(), LIMIT);
    let r = post_form(addr, "/swarm", "user_count=1&spawn_rate=1&arrival_rate=10");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("--arrival-rate"), "{}", r.text());
    assert_eq!(server.connections(), 0, "nothing started");
    p.signal(SIGTERM);
    assert_eq!(p.wait(LIMIT).code(), Some(0), "{}", p.stderr());
}
