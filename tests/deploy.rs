//! `deploy/` checked: every file there is read by one of these tests, with
//! the pinned tools (yamllint, kubernetes-validate, hadolint, shellcheck,
//! systemd-analyze) and by reading it against the binary and the code (the
//! flags and environment variables `locusta` accepts, the metric names
//! `src/web/metrics.rs` exports). `deploy/local-cluster.sh 2` runs for real
//! on 127.0.0.1. Not here: building the image (no container runtime) and
//! `promtool` (not on a package registry this project uses).
//! This file: the coverage of deploy/, YAML style, the Containerfile; the
//! other parts in `deploy_support/` (kubernetes, systemd with the one-box
//! rehearsal, observability), tools and parsing in `deploy_support/mod.rs`.

mod common;
#[path = "deploy_support/kubernetes.rs"]
mod kubernetes;
#[path = "deploy_support/observability.rs"]
mod observability;
#[path = "deploy_support/rehearsal.rs"]
mod rehearsal;
#[path = "deploy_support/mod.rs"]
mod support;
#[path = "deploy_support/systemd.rs"]
mod systemd;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

const TOOL_LIMIT: Duration = Duration::from_secs(120);

/// Which test reads each file of deploy/; a file no test reads fails here.
#[test]
fn every_file_in_deploy_is_checked() {
    let covered = |p: &str| -> Option<&str> {
        let ext = Path::new(p).extension().and_then(|e| e.to_str());
        Some(match (p, ext) {
            ("README.md" | "tuning.md", _) => "markdown_links_resolve",
            (".yamllint", _) => "yaml_passes_yamllint",
            ("Containerfile" | "Containerfile.dockerignore", _) => "containerfile_*",
            ("local-cluster.sh", _) => "systemd::local_cluster_*",
            (p, Some("service" | "env")) if p.starts_with("systemd/") => "systemd::*",
            (p, Some("yaml")) if p.starts_with("kubernetes/") => "kubernetes::*",
            (p, Some("json")) if p.starts_with("grafana/") => "observability::grafana_*",
            (p, Some("yml")) if p.starts_with("prometheus/") => "observability::prometheus_*",
            _ => return None,
        })
    };
    let unchecked: Vec<PathBuf> = files_under(&deploy_dir())
        .into_iter()
        .filter(|p| covered(p.to_str().unwrap()).is_none())
        .collect();
    assert!(
        unchecked.is_empty(),
        "files in deploy/ no test checks: {unchecked:?}"
    );
}

#[test]
fn markdown_links_resolve() {
    for doc in ["README.md", "tuning.md"] {
        let path = deploy_dir().join(doc);
        let text = read(&path);
        for link in text.split("](").skip(1).filter_map(|s| s.split(')').next()) {
            if link.contains("://") || link.starts_with('#') {
                continue;
            }
            let target = deploy_dir().join(link.split('#').next().unwrap());
            assert!(
                target.exists(),
                "deploy/{doc} links to {link}, which does not exist"
            );
        }
    }
}

#[test]
fn yaml_passes_yamllint() {
    let ran = run(
        "yamllint",
        YAMLLINT
            .command()
            .args(["--strict", "-c", "deploy/.yamllint", "deploy/"]),
        TOOL_LIMIT,
    );
    assert_eq!(ran.code, Some(0), "yamllint found problems\n{}", ran.both());
}

#[test]
fn containerfile_passes_hadolint() {
    let ran = run(
        "hadolint",
        HADOLINT.command().arg("deploy/Containerfile"),
        TOOL_LIMIT,
    );
    assert_eq!(ran.code, Some(0), "hadolint found problems\n{}", ran.both());
}

/// Multi-stage, non-root, the binary and the examples only; and what the
/// build stage copies is enough for cargo to read the workspace and for
/// every file the binary embeds (`include_str!`). Not built here: that
/// is the image build's own (minutes) job.
#[test]
fn containerfile_builds_from_what_it_copies() {
    let text = read(&deploy_dir().join("Containerfile"));
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let froms: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage");
    for &i in &froms {
        let image = lines[i].split_whitespace().nth(1).unwrap();
        assert!(
            image.contains(':') && !image.ends_with(":latest"),
            "pinned base image: {image}"
        );
    }
    let (build, runtime) = lines.split_at(froms[1]);
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "non-root numeric user: {user}"
    );
    let copies: Vec<&str> = runtime
        .iter()
        .filter(|l| l.starts_with("COPY "))
        .copied()
        .collect();
    assert_eq!(
        copies,
        [
            "COPY --from=build /src/target/release/locusta /usr/local/bin/locusta",
            "COPY lua/examples /etc/locusta/examples"
        ],
        "the runtime image holds the binary and the examples only"
    );
    // The build stage's context, as the build would see it.
    let ignored: Vec<String> = read(&deploy_dir().join("Containerfile.dockerignore"))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let ctx = scratch("containerfile-context");
    for l in build.iter().filter(|l| l.starts_with("COPY ")) {
        let words: Vec<&str> = l.split_whitespace().collect();
        for src in &words[1..words.len() - 1] {
            assert!(
                !ignored.iter().any(|i| i == src),
                "{src} is copied and ignored"
            );
            let from = repo().join(src);
            let status = Command::new("cp")
                .arg("-r")
                .arg(&from)
                .arg(ctx.join(src))
                .status()
                .unwrap();
            assert!(status.success(), "COPY {src}: not in the repository");
        }
    }
    // `cargo fetch` loads every target of the manifest (a declared bench
    // whose file was not copied fails it); `cargo metadata` would not.
    let ran = run(
        "cargo fetch",
        Command::new(env!("CARGO"))
            .args(["fetch", "--offline", "--locked"])
            .current_dir(&ctx),
        TOOL_LIMIT,
    );
    assert_eq!(
        ran.code,
        Some(0),
        "cargo cannot read the copied workspace\n{}",
        ran.both()
    );
    for dir in ["src", "tui/src"] {
        for f in files_under(&repo().join(dir)) {
            let file = Path::new(dir).join(&f);
            let text = read(&repo().join(&file));
            for inc in text
                .split("include_str!(\"")
                .skip(1)
                .filter_map(|s| s.split('"').next())
            {
                let embedded = ctx.join(file.parent().unwrap()).join(inc);
                assert!(
                    embedded.exists(),
                    "{} embeds {inc}: not copied into the build",
                    file.display()
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&ctx);
}
