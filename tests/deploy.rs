//! `deploy/` checked: every file there is read by one of these tests, with
//! the pinned tools (yamllint, kubernetes-validate, hadolint, shellcheck,
//! systemd-analyze) and by reading it against the binary and the code (the
//! flags and environment variables `locusta` accepts, the metric names
//! `src/web/metrics.rs` exports). `deploy/local-cluster.sh 2` runs for real
//! on 127.0.0.1. Not here: building the image (no container runtime) and
//! `promtool` (not on a package registry this project uses).

mod common;
#[path = "deploy_support/mod.rs"]
mod support;

use serde_json::Value;
use std::collections::BTreeSet;
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
            ("local-cluster.sh", _) => "local_cluster_*",
            (p, Some("service" | "env")) if p.starts_with("systemd/") => "systemd_*",
            (p, Some("yaml")) if p.starts_with("kubernetes/") => "kubernetes_*",
            (p, Some("json")) if p.starts_with("grafana/") => "grafana_*",
            (p, Some("yml")) if p.starts_with("prometheus/") => "prometheus_*",
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

fn manifests() -> Vec<PathBuf> {
    let dir = deploy_dir().join("kubernetes");
    let mut files: Vec<PathBuf> = files_under(&dir).into_iter().map(|p| dir.join(p)).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    assert!(
        files.len() >= 3,
        "cluster, nightly and interactive manifests: {files:?}"
    );
    files
}

#[test]
fn kubernetes_manifests_validate_against_the_api_schemas() {
    for file in manifests() {
        let ran = run(
            "kubernetes-validate",
            KUBERNETES_VALIDATE
                .command()
                .args(["--strict", "-k", KUBERNETES_VERSION])
                .arg(&file),
            TOOL_LIMIT,
        );
        let resources = yaml_documents(&file).len();
        assert!(
            ran.code == Some(0) && ran.stdout.matches(" passed ").count() == resources,
            "{} against Kubernetes {KUBERNETES_VERSION}: {resources} resources\n{}",
            file.display(),
            ran.both()
        );
    }
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

/// The pod templates of a manifest, with the kind and name they belong to.
fn pods(docs: &[Value]) -> Vec<(String, &Value)> {
    docs.iter()
        .filter_map(|d| {
            let kind = d["kind"].as_str().unwrap_or_default();
            let name = format!(
                "{kind}/{}",
                at(d, "metadata.name").as_str().unwrap_or_default()
            );
            match kind {
                "Deployment" | "Job" => Some((name, at(d, "spec.template.spec"))),
                "CronJob" => Some((name, at(d, "spec.jobTemplate.spec.template.spec"))),
                _ => None,
            }
        })
        .collect()
}

fn env_of(container: &Value) -> Vec<(String, Option<String>)> {
    container["env"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|v| {
                    (
                        v["name"].as_str().unwrap().to_string(),
                        v["value"].as_str().map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The rules the issue sets for the manifests, read from them.
#[test]
fn kubernetes_manifests_follow_the_setup_rules() {
    let mut kinds = BTreeSet::new();
    for file in manifests() {
        let docs = yaml_documents(&file);
        let f = file.file_name().unwrap().to_str().unwrap().to_string();
        for d in &docs {
            let kind = d["kind"].as_str().unwrap().to_string();
            assert_ne!(
                kind, "Ingress",
                "{f}: the master's Service is the only way in"
            );
            if kind == "Service" {
                let t = at(d, "spec.type").as_str().unwrap_or("ClusterIP");
                assert_eq!(t, "ClusterIP", "{f}: a Service open outside the cluster");
            }
            kinds.insert(kind);
        }
        for (name, pod) in pods(&docs) {
            let volumes = pod["volumes"].to_string();
            assert!(
                volumes.contains("\"locusta-script\""),
                "{f} {name}: the shared script ConfigMap"
            );
            assert_eq!(
                at(pod, "securityContext.runAsNonRoot"),
                &Value::Bool(true),
                "{f} {name}"
            );
            let c = &pod["containers"][0];
            let res = &c["resources"];
            assert!(
                res["requests"]["cpu"].is_string() && res["limits"]["cpu"].is_string(),
                "{f} {name}: resources"
            );
            let args = c["args"].to_string();
            if args.contains("--worker") {
                let anti = at(
                    pod,
                    "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution",
                );
                assert!(
                    anti.to_string().contains("kubernetes.io/hostname"),
                    "{f} {name}: workers one per node (required anti-affinity on the hostname)"
                );
            }
            if args.contains("--web") {
                let auth = c["env"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["name"] == "LOCUSTA_WEB_AUTH");
                assert!(
                    auth.is_some_and(|e| !at(e, "valueFrom.secretKeyRef.name").is_null()),
                    "{f} {name}: the web UI's login from a Secret"
                );
            }
        }
        if f == "nightly.yaml" {
            let cron = docs
                .iter()
                .find(|d| d["kind"] == "CronJob")
                .expect("nightly: a CronJob");
            let job = at(cron, "spec.jobTemplate.spec");
            let pod = at(job, "template.spec");
            assert_eq!(pod["restartPolicy"], "Never");
            let fails_on_3 = job["podFailurePolicy"].to_string().contains("FailJob")
                && job["podFailurePolicy"].to_string().contains('3');
            assert!(
                fails_on_3 || job["backoffLimit"] == 0,
                "nightly: a failed threshold (3) fails the Job"
            );
            let script = pod["containers"][0]["args"].to_string();
            for flag in ["--threshold", "--html", "--csv", "--json-file"] {
                assert!(script.contains(flag), "nightly: {flag}");
            }
            assert!(
                pod["volumes"].to_string().contains("persistentVolumeClaim"),
                "nightly: reports on a PVC"
            );
        }
    }
    for kind in [
        "CronJob",
        "Job",
        "Deployment",
        "Service",
        "PersistentVolumeClaim",
    ] {
        assert!(kinds.contains(kind), "no {kind} in deploy/kubernetes");
    }
}

/// Each container's flags and LOCUSTA_* values are ones this binary takes:
/// the run is parsed with `-l` (list the classes, run nothing).
#[test]
fn kubernetes_containers_run_flags_locusta_accepts() {
    let shop = repo().join("lua/examples/shop.lua");
    let bin = env!("CARGO_BIN_EXE_locusta");
    for file in manifests() {
        let docs = yaml_documents(&file);
        for (name, pod) in pods(&docs) {
            let c = &pod["containers"][0];
            let shell = c["command"][0] == "/bin/sh";
            let mut cmd = Command::new(if shell { "/bin/sh" } else { bin });
            for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("LOCUSTA_")) {
                cmd.env_remove(k);
            }
            for (k, v) in env_of(c) {
                // Secrets are not here: a stand-in login.
                cmd.env(&k, v.unwrap_or_else(|| "user:password".into()));
            }
            let args: Vec<String> = c["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    a.as_str()
                        .unwrap()
                        .replace("/etc/locusta/script/locustfile.lua", shop.to_str().unwrap())
                })
                .collect();
            let ran = if shell {
                // The nightly run's script, its reports in a scratch directory.
                let reports = scratch("nightly-reports");
                let script = args[0]
                    .replace("exec /usr/local/bin/locusta", &format!("exec {bin} -l"))
                    .replace("/reports/", &format!("{}/", reports.display()));
                let ran = run("nightly script", cmd.args(["-c", &script]), TOOL_LIMIT);
                let made = std::fs::read_dir(&reports).unwrap().count();
                assert_eq!(made, 1, "{name}: one dated reports directory");
                ran
            } else {
                run(&name, cmd.args(&args).arg("-l"), TOOL_LIMIT)
            };
            assert!(
                ran.code == Some(0) && ran.stdout.contains("Shopper"),
                "{}: {name}'s flags and environment\n{}",
                file.display(),
                ran.both()
            );
        }
    }
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

/// The Grafana dashboard is JSON whose queries name only metrics
/// src/web/metrics.rs exports, and it shows what the issue lists.
#[test]
fn grafana_dashboard_queries_exported_metrics() {
    let text = read(&deploy_dir().join("grafana/locusta-dashboard.json"));
    let dash: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let exported = metric_names(&read(&repo().join("src/web/metrics.rs")));
    assert!(
        !exported.is_empty(),
        "src/web/metrics.rs exports no locusta_* metric (yet)"
    );
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            exprs.push((
                panel["title"].as_str().unwrap().to_string(),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    for (title, expr) in &exprs {
        for name in metric_names(expr) {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| exported.contains(*b)));
            assert!(
                exported.contains(&name) || base.is_some(),
                "panel {title:?} queries {name}, which src/web/metrics.rs does not export ({exported:?})"
            );
        }
    }
    let all: String = exprs
        .iter()
        .map(|(_, e)| e.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "rate(locusta_requests_total",
        "rate(locusta_failures_total",
        "histogram_quantile(0.5,",
        "histogram_quantile(0.95,",
        "histogram_quantile(0.99,",
        "locusta_users",
        "locusta_workers",
    ] {
        assert!(
            all.contains(needle),
            "the dashboard has no query with {needle}"
        );
    }
}

/// `promtool` is not on PyPI: the scrape config is read as YAML, its keys
/// checked against Prometheus' scrape_config, and its systemd target
/// against the master's environment file.
#[test]
fn prometheus_config_scrapes_the_master() {
    const SCRAPE_KEYS: [&str; 14] = [
        "job_name",
        "scrape_interval",
        "scrape_timeout",
        "metrics_path",
        "scheme",
        "params",
        "basic_auth",
        "authorization",
        "tls_config",
        "static_configs",
        "kubernetes_sd_configs",
        "relabel_configs",
        "metric_relabel_configs",
        "honor_labels",
    ];
    let docs = yaml_documents(&deploy_dir().join("prometheus/prometheus.yml"));
    let jobs = docs[0]["scrape_configs"]
        .as_array()
        .expect("scrape_configs");
    assert!(!jobs.is_empty());
    let env = read(&deploy_dir().join("systemd/locusta-master.env"));
    let setting =
        |k: &str| unit_value(&env, k).unwrap_or_else(|| panic!("locusta-master.env: {k}"));
    let web = format!(
        "{}:{}",
        setting("LOCUSTA_WEB_HOST"),
        setting("LOCUSTA_WEB_PORT")
    );
    let user = setting("LOCUSTA_WEB_AUTH")
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let mut targets = Vec::new();
    for job in jobs {
        let name = job["job_name"].as_str().expect("job_name");
        for key in job.as_object().unwrap().keys() {
            assert!(
                SCRAPE_KEYS.contains(&key.as_str()),
                "{name}: {key} is no scrape_config key"
            );
        }
        assert_eq!(job["metrics_path"], "/metrics", "{name}");
        assert_eq!(
            at(job, "basic_auth.username").as_str(),
            Some(user.as_str()),
            "{name}: the web login"
        );
        assert!(
            at(job, "basic_auth.password_file").is_string(),
            "{name}: password from a file"
        );
        for sc in job["static_configs"].as_array().into_iter().flatten() {
            targets.extend(
                sc["targets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string()),
            );
        }
    }
    assert!(
        targets.contains(&web),
        "a scrape target at the master's web address {web}: {targets:?}"
    );
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
    use std::os::unix::process::CommandExt;
    let bin = env!("CARGO_BIN_EXE_locusta");
    let dir = scratch("local-cluster");
    let port = common::dead_port();
    let mut cmd = Command::new(deploy_dir().join("local-cluster.sh"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("LOCUSTA_")) {
        cmd.env_remove(k);
    }
    cmd.arg("2")
        .env("LOCUSTA_BIN", bin)
        .env("LOCUSTA_LOCAL_RUN_TIME", "5s")
        .env("LOCUSTA_LOCAL_DIR", &dir)
        .env("LOCUSTA_LOCAL_MASTER_PORT", port.to_string())
        // Its own process group: whatever it started is findable afterwards.
        .process_group(0);
    let out = dir.join("stdout");
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .expect("run deploy/local-cluster.sh");
    let pgid = child.id() as i32;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            // SAFETY: kill(2) on the process group this test created.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            panic!("local-cluster.sh did not finish in 90 s\n{}", read(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let printed = read(&out);
    let logs = format!("{printed}\nstderr:\n{}", read(&dir.join("stderr")));
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
    let mut left = true;
    for _ in 0..40 {
        // SAFETY: signal 0 only asks whether any process of the group exists.
        left = unsafe { libc::kill(-pgid, 0) } == 0;
        if !left {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if left {
        // SAFETY: as above; clean up before failing.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    assert!(
        !left,
        "processes of local-cluster.sh still running after it exited\n{logs}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
