//! Flags, config file and environment: usage errors stop before any load
//! (exit 2, a clear message) and precedence is file < env < flags.

mod common;

use std::time::Duration;

use common::*;

fn usage_error(args: &[&str], expect: &str) {
    let out = run_bounded(locusta().args(args), Duration::from_secs(10));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(expect),
        "{args:?}: expected `{expect}` in: {stderr}"
    );
}

#[test]
fn help_lists_locust_flags() {
    let out = run_bounded(locusta().arg("--help"), Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for flag in [
        "--host",
        "--users",
        "--spawn-rate",
        "--run-time",
        "--headless",
        "--csv",
        "--csv-full-history",
        "--only-summary",
        "--exit-code-on-error",
        "--stop-timeout",
        "--loglevel",
        "--shards",
        "--io",
        "--connect-timeout",
        "--timeout",
        "--demo",
        "--config",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn bad_input_is_a_usage_error() {
    let url = "http://127.0.0.1:9/";
    usage_error(&["--bogus", url], "--bogus");
    usage_error(&["-t", "5x", url], "not a run time");
    usage_error(&["-u", "many", url], "many");
    usage_error(&["-r", "0", url], "positive");
    usage_error(&["--io", "kqueue", url], "kqueue");
    usage_error(&["--timeout", "soon", url], "not a duration");
    usage_error(&["--timeout", "0", url], "at least 1ms");
    usage_error(&["--connect-timeout", "0s", url], "at least 1ms");
    usage_error(&["--exit-code-on-error", "256", url], "256");
    usage_error(&["--exit-code-on-error", "-1", url], "-1");
    usage_error(&["--headless"], "nothing to load");
    usage_error(&["ftp://127.0.0.1:9/"], "only http:// and https://");
    usage_error(
        &["http://127.0.0.1:9/", "http://127.0.0.2:9/"],
        "one origin",
    );
    usage_error(&["/path-only"], "--host");
    usage_error(
        &["-f", "/nonexistent/shop.lua", "-H", url],
        "cannot read /nonexistent/shop.lua",
    );
    usage_error(
        &["-f", "lua/examples/basic.lua", url],
        "is a URL: pass it as -H",
    );
    usage_error(
        &["--config", "/nonexistent/locusta.conf", url],
        "cannot read config file",
    );
}

#[test]
fn config_file_env_and_flags_in_that_order() {
    let server = TestServer::start(|_| ok(""));
    let dir = temp_dir("precedence");
    std::fs::write(
        dir.join("locusta.conf"),
        format!("# test config\nusers = 3\nspawn_rate = 50\nrun-time = 1s\nheadless = true\nhost = {}\nonly-summary = true\n", server.url("")),
    )
    .unwrap();
    let users_line = |out: &std::process::Output| {
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let line = stderr
            .lines()
            .find(|l| l.contains("Starting locusta"))
            .unwrap()
            .to_string();
        line
    };
    // File alone (./locusta.conf in the working directory).
    let out = run_bounded(locusta().current_dir(&dir), Duration::from_secs(20));
    assert!(
        users_line(&out).contains(" 3 user(s)"),
        "{}",
        users_line(&out)
    );
    // Env beats file.
    let out = run_bounded(
        locusta().current_dir(&dir).env("LOCUSTA_USERS", "5"),
        Duration::from_secs(20),
    );
    assert!(users_line(&out).contains(" 5 user(s)"));
    // Flag beats env.
    let out = run_bounded(
        locusta()
            .current_dir(&dir)
            .env("LOCUSTA_USERS", "5")
            .args(["-u", "7"]),
        Duration::from_secs(20),
    );
    assert!(users_line(&out).contains(" 7 user(s)"));
    // --config names another file; an unknown key names file and line.
    std::fs::write(dir.join("bad.conf"), "users = 2\nusres = 4\n").unwrap();
    usage_error(
        &["--config", dir.join("bad.conf").to_str().unwrap()],
        "bad.conf:2: unknown option `usres`",
    );
}
