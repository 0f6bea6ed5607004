//! deploy/kubernetes checked: against the API schemas of a pinned Kubernetes
//! version, against the setup rules, and each container's flags and
//! LOCUSTA_* values against the binary. Part of `tests/deploy.rs`.

use super::support::*;
use super::TOOL_LIMIT;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

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
