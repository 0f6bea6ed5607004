//! Helpers for `tests/web_metrics.rs`: a `locusta --web` process and its
//! `/metrics` answers, each parsed by Prometheus' own parser through
//! `parse.py` beside this file (pip package prometheus-client==0.21.1),
//! with the checks every scrape must pass; CSV files read by Python's csv
//! module. Included with `#[path = "web_metrics_support/mod.rs"]`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{locusta, wait_bounded};

const PARSER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/web_metrics_support/parse.py"
);

/// Whether `prometheus_client` can be imported (else say how to get it).
pub fn parser_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "prometheus_client is missing: .ci/run must `pip install prometheus-client==0.21.1`"
        );
        eprintln!("skipped: pip install prometheus-client==0.21.1");
    }
    found
}

/// `parse.py` with `args`, `input` on stdin; its JSON answer.
pub fn python(args: &[&str], input: &str) -> Value {
    let mut child = Command::new("python3")
        .arg(PARSER)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = wait_bounded(child, Duration::from_secs(30));
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "parse.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parse.py prints JSON")
}

/// One sample as the Prometheus parser read it.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One scrape, parsed.
pub struct Scrape {
    /// Family name (as the parser names it: counters lose `_total`) → type.
    pub types: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
    pub text: String,
}

impl Scrape {
    pub fn parse(text: String) -> Scrape {
        let families = python(&["metrics"], &text);
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for f in families.as_array().unwrap() {
            types.insert(
                f["name"].as_str().unwrap().to_string(),
                f["type"].as_str().unwrap().to_string(),
            );
            for s in f["samples"].as_array().unwrap() {
                let value = match &s["value"] {
                    Value::Number(n) => n.as_f64().unwrap(),
                    other => panic!("not a finite number: {other}"),
                };
                let labels = s["labels"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                samples.push(Sample {
                    name: s["name"].as_str().unwrap().to_string(),
                    labels,
                    value,
                });
            }
        }
        Scrape {
            types,
            samples,
            text,
        }
    }

    pub fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// The value of the one sample `name` with exactly these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
            .collect();
        assert!(found.len() <= 1, "{name}{labels:?} twice:\n{}", self.text);
        found.first().copied()
    }

    pub fn sum(&self, name: &str) -> f64 {
        self.series(name).iter().map(|s| s.value).sum()
    }

    /// The state whose gauge is 1 (exactly one is).
    pub fn state(&self) -> String {
        let on: Vec<&Sample> = self
            .series("locusta_state")
            .into_iter()
            .filter(|s| s.value == 1.0)
            .collect();
        assert_eq!(on.len(), 1, "one state at a time:\n{}", self.text);
        assert_eq!(self.series("locusta_state").len(), 5, "{}", self.text);
        on[0].labels["state"].clone()
    }

    /// What holds in every scrape: the families and their types, and each
    /// histogram's buckets cumulative with `+Inf` equal to `_count`.
    pub fn check_shape(&self) {
        let types = [
            ("locusta_info", "gauge"),
            ("locusta_state", "gauge"),
            ("locusta_users", "gauge"),
            ("locusta_target_users", "gauge"),
            ("locusta_current_rps", "gauge"),
            ("locusta_current_fail_per_sec", "gauge"),
            ("locusta_requests", "counter"),
            ("locusta_failures", "counter"),
            ("locusta_request_duration_seconds", "histogram"),
            ("locusta_workers", "gauge"),
            ("locusta_worker_cpu_percent", "gauge"),
            ("locusta_worker_users", "gauge"),
        ];
        for (family, kind) in types {
            assert_eq!(
                self.types.get(family).map(String::as_str),
                Some(kind),
                "family {family}:\n{}",
                self.text
            );
        }
        let info = self.series("locusta_info");
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].value, 1.0);
        assert!(["io_uring", "epoll"].contains(&info[0].labels["io_driver"].as_str()));
        assert_eq!(info[0].labels["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(self.value("locusta_workers", &[]), Some(0.0));

        let les = [
            "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
            "5", "10", "+Inf",
        ];
        for count in self.series("locusta_request_duration_seconds_count") {
            let (method, name) = (&count.labels["method"], &count.labels["name"]);
            let mut last = 0.0;
            for le in les {
                let bucket = self
                    .value(
                        "locusta_request_duration_seconds_bucket",
                        &[("method", method), ("name", name), ("le", le)],
                    )
                    .unwrap_or_else(|| panic!("no bucket le={le} for {method} {name}"));
                assert!(bucket >= last, "{method} {name}: le={le} {bucket} < {last}");
                last = bucket;
            }
            assert_eq!(last, count.value, "{method} {name}: +Inf != _count");
            let sum = self
                .value(
                    "locusta_request_duration_seconds_sum",
                    &[("method", method), ("name", name)],
                )
                .unwrap();
            assert!(sum >= 0.0 && (count.value == 0.0) == (sum == 0.0), "{sum}");
        }
        let buckets = self.series("locusta_request_duration_seconds_bucket").len();
        assert_eq!(
            buckets,
            les.len() * self.series("locusta_request_duration_seconds_count").len()
        );
    }
}

/// A `locusta --web --web-port 0` process, its logs collected as they come.
pub struct WebRun {
    pub child: Option<Child>,
    pub port: u16,
    pub stderr: Arc<Mutex<String>>,
}

impl WebRun {
    pub fn start(args: &[&str]) -> WebRun {
        let mut child = locusta()
            .args(["--headless", "--web", "--web-port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn locusta");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (err, sink) = (child.stderr.take().unwrap(), stderr.clone());
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        // Drained so that the final tables never fill the pipe.
        let mut out = child.stdout.take().unwrap();
        thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let mut run = WebRun {
            child: Some(child),
            port: 0,
            stderr,
        };
        let marker = "Web UI and API on http://127.0.0.1:";
        let line = run.wait_log(marker, Duration::from_secs(30));
        let port = line.split(marker).nth(1).unwrap();
        run.port = port.trim_end_matches('/').parse().unwrap();
        run
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The first log line holding `needle`, waiting for it up to `limit`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.stderr().lines().find(|l| l.contains(needle)) {
                return l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` within {limit:?}:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `method /metrics`: status, content type, body.
    pub fn request(&self, method: &str) -> (u16, String, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to /metrics");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "{method} /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("read the /metrics answer");
        let raw = String::from_utf8(raw).expect("UTF-8 answer");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a complete head");
        let code = head.split(' ').nth(1).unwrap().parse().unwrap();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        if method != "HEAD" {
            let length: usize = header("content-length").parse().expect("Content-Length");
            assert_eq!(length, body.len(), "whole body");
        }
        (code, header("content-type"), body.to_string())
    }

    pub fn scrape(&self) -> Scrape {
        let (code, content_type, body) = self.request("GET");
        assert_eq!(code, 200, "{body}");
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        let scrape = Scrape::parse(body);
        scrape.check_shape();
        scrape
    }

    /// Wait for the process to exit; its exit code.
    pub fn finish(&mut self) -> Option<i32> {
        let child = self.child.take().unwrap();
        let out = wait_bounded(child, Duration::from_secs(60));
        out.status.code()
    }
}

impl Drop for WebRun {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A FIFO at `path`: a writer's `open()` waits for a reader.
pub fn make_fifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// CSV rows (Python's csv module: quoted fields with commas stay whole).
pub fn csv(path: &Path) -> Vec<Vec<String>> {
    let rows = python(&["csv", path.to_str().unwrap()], "");
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

/// Header name → index.
pub fn column(rows: &[Vec<String>], name: &str) -> usize {
    rows[0]
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", rows[0]))
}
