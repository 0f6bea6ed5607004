//! Lua users whose connect fails pause before the next one (10 ms doubling
//! to 1 s, as raw users do), so a run starved of file descriptors makes
//! requests with the users that got a connection instead of spinning on
//! `too many open files`. The low limit is set on the child alone.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn lua_users_back_off_after_a_failed_connect() {
    let server = TestServer::start(|_| ok("x"));
    let dir = temp_dir("lua-connect-backoff");
    let script = dir.join("nowait.lua");
    std::fs::write(
        &script,
        "local locusta = require \"locusta\"\n\
         local U = locusta.user {}\n\
         U:task(1, function(self) self.client:get(\"/\") end)\n",
    )
    .unwrap();
    let prefix = dir.join("l");
    let users = 400u64;
    let out = run_bounded(
        with_nofile(&mut locusta(), 256)
            .args([
                "--headless",
                "-u",
                &users.to_string(),
                "-r",
                "1000",
                "-t",
                "3s",
            ])
            .args(["--shards", "2", "--only-summary", "--csv"])
            .args([prefix.to_str().unwrap(), "-f", script.to_str().unwrap()])
            .args(["-H", &server.url("")]),
        Duration::from_secs(60),
    );
    let stderr = text(&out.stderr);
    let agg = aggregated(&dir.join("l_stats.csv"));
    let failures: u64 = agg["Failure Count"].parse().unwrap();
    let requests: u64 = agg["Request Count"].parse().unwrap();
    // A user whose connects keep failing tries about 10 times in 3 s
    // (10, 20, 40 ... 1000 ms apart); without the pause, tens of thousands.
    assert!(failures > 0, "{agg:?}\n{stderr}");
    assert!(
        failures <= users * 15,
        "{failures} failed connects of {requests} requests: no backoff"
    );
    assert!(requests > failures, "{agg:?}");
    let failures_csv = std::fs::read_to_string(dir.join("l_failures.csv")).unwrap();
    assert!(
        failures_csv.contains("too many open files"),
        "{failures_csv}"
    );
}
