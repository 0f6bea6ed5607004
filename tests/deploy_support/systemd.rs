//! deploy/systemd and deploy/local-cluster.sh checked: the units verified by
//! systemd-analyze and read for their hardening, their environment files
//! against `locusta --help`, and the one-box rehearsal run for real with the
//! units' command lines. Part of `tests/deploy.rs`.

use super::common;
use super::rehearsal::Rehearsal;
use super::support::*;
use super::TOOL_LIMIT;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

const UNITS: [&str; 3] = [
    "locusta-master.service",
    "locusta-worker.service",
    "locusta@.service",
];

/// `systemd-analyze verify` on each unit as written, but for ExecStart's
/// binary, which is this build's (verify wants it to exist); the template
/// as an instance on CPUs 0-1. Any complaint fails.
#[test]
fn systemd_units_verify() {
    let dir = scratch("systemd");
    let bin = env!("CARGO_BIN_EXE_locusta");
    let mut names = Vec::new();
    for unit in UNITS {
        let text =
            read(&deploy_dir().join("systemd").join(unit)).replace("/usr/local/bin/locusta", bin);
        let name = unit.replace("@.", "@0-1.");
        std::fs::write(dir.join(&name), text).unwrap();
        names.push(name);
    }
    let ran = run(
        "systemd-analyze",
        SYSTEMD_ANALYZE
            .command()
            .args(["verify", "--man=no"])
            .args(&names)
            .current_dir(&dir),
        TOOL_LIMIT,
    );
    assert!(
        ran.code == Some(0) && ran.stderr.trim().is_empty(),
        "systemd-analyze verify {names:?}\n{}",
        ran.both()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Hardened as the issue asks, the template pinned by its instance, and the
/// environment files hold only settings `locusta --help` names.
#[test]
fn systemd_units_are_hardened_and_their_settings_known() {
    for unit in UNITS {
        let text = read(&deploy_dir().join("systemd").join(unit));
        for (key, want) in [
            ("DynamicUser", "yes"),
            ("ProtectSystem", "strict"),
            ("NoNewPrivileges", "yes"),
        ] {
            assert_eq!(
                unit_value(&text, key).as_deref(),
                Some(want),
                "{unit}: {key}"
            );
        }
        assert!(
            unit_value(&text, "LimitNOFILE").is_some(),
            "{unit}: LimitNOFILE"
        );
        assert!(
            text.contains("CPUAffinity"),
            "{unit}: CPUAffinity set or documented"
        );
    }
    let template = read(&deploy_dir().join("systemd/locusta@.service"));
    assert_eq!(unit_value(&template, "CPUAffinity").as_deref(), Some("%i"));
    let help = run(
        "locusta --help",
        Command::new(env!("CARGO_BIN_EXE_locusta")).arg("--help"),
        TOOL_LIMIT,
    );
    let known = known_env_vars(&help.stdout);
    assert!(known.len() > 20, "LOCUSTA_* variables in --help: {known:?}");
    for env in ["locusta-master.env", "locusta-worker.env"] {
        for (k, _) in unit_settings(&read(&deploy_dir().join("systemd").join(env))) {
            assert!(known.contains(&k), "{env}: {k} is no setting of locusta");
        }
    }
}

#[test]
fn local_cluster_passes_shellcheck() {
    let ran = run(
        "shellcheck",
        SHELLCHECK.command().arg("deploy/local-cluster.sh"),
        TOOL_LIMIT,
    );
    assert_eq!(
        ran.code,
        Some(0),
        "shellcheck found problems\n{}",
        ran.both()
    );
}

/// `deploy/local-cluster.sh 2`, the run shortened to 5 s: the units'
/// command lines, two workers on disjoint CPUs (when there are two), every
/// request the master counted sent by one of them, the reports written, a
/// zero exit, and none of its processes left afterwards.
#[test]
fn local_cluster_runs_a_master_and_two_workers() {
    let bin = env!("CARGO_BIN_EXE_locusta");
    let mut rehearsal = Rehearsal::start("local-cluster", 2, "5s");
    let status = rehearsal.wait(Duration::from_secs(90));
    let printed = rehearsal.stdout();
    let logs = rehearsal.logs();
    let dir = rehearsal.dir.clone();
    assert!(
        status.success(),
        "local-cluster.sh 2 failed: {status}\n{logs}"
    );

    // The units' command lines, with this build and the shop script.
    let shop = repo().join("lua/examples/shop.lua");
    for (unit, times) in [("locusta-master.service", 1), ("locusta-worker.service", 2)] {
        let exec =
            unit_value(&read(&deploy_dir().join("systemd").join(unit)), "ExecStart").unwrap();
        let line = format!(
            "+ {}",
            exec.replace("/usr/local/bin/locusta", bin)
                .replace("/etc/locusta/locustfile.lua", shop.to_str().unwrap())
        );
        let ran = printed.lines().filter(|l| l.starts_with(&line)).count();
        assert_eq!(
            ran, times,
            "{unit}'s ExecStart run {times}x: {line}\n{logs}"
        );
    }

    // Each worker's report: requests sent, and on which CPUs.
    let workers: Vec<(String, u64)> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("local-cluster: worker "))
        .map(|l| {
            let cpus = l
                .split(" on CPUs ")
                .nth(1)
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string();
            let sent = l
                .split("reported ")
                .nth(1)
                .and_then(|r| r.split(' ').next()?.parse().ok());
            (
                cpus,
                sent.unwrap_or_else(|| panic!("worker line without a count: {l}\n{logs}")),
            )
        })
        .collect();
    assert_eq!(workers.len(), 2, "two workers reported\n{logs}");
    assert!(
        workers.iter().all(|(_, n)| *n > 0),
        "every worker sent requests\n{logs}"
    );
    let total = common::aggregated(&dir.join("run_stats.csv"))["Request Count"]
        .parse::<u64>()
        .unwrap();
    assert_eq!(
        workers.iter().map(|(_, n)| n).sum::<u64>(),
        total,
        "the master's count is the workers' sum\n{logs}"
    );
    assert!(
        printed.contains("Aggregated"),
        "the master's summary printed\n{logs}"
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus >= 2 {
        let sets: Vec<BTreeSet<&str>> = workers
            .iter()
            .map(|(c, _)| c.split(',').collect())
            .collect();
        assert!(
            !sets[0].contains("any") && sets[0].is_disjoint(&sets[1]),
            "disjoint CPU sets: {workers:?}"
        );
    }
    for report in ["report.html", "stats.json", "run_stats.csv"] {
        assert!(dir.join(report).exists(), "{report} written\n{logs}");
    }

    // Nothing it started outlives it.
    assert!(
        !rehearsal.left_behind(),
        "processes of local-cluster.sh still running after it exited\n{logs}"
    );
}
