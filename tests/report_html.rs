//! `--html` end to end: the real binary runs a small Lua script against an
//! in-process server on 127.0.0.1 (hostile request names, failures with
//! markup, multi-line exceptions), then headless Chromium opens the report
//! with every connection sent to a dead proxy (no network), and the page
//! must have drawn all its charts with no script error; a screenshot must
//! show something. Without Chromium these tests skip, unless CI=true (then
//! it is required: `.ci/run` installs it). A cluster master writes the
//! report for its workers' requests. Every run is bounded in time.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cluster_common::{csv_total, free_port, master_cmd, worker_cmd, Proc};
use common::*;

/// Whether Chromium is here; without it, skip (or fail on CI).
fn have_chromium() -> bool {
    let ok = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("chromium is required on CI for the HTML report tests (.ci/run installs it)");
        }
        eprintln!("skipping: chromium is not installed (apt-get install chromium)");
    }
    ok
}

/// Headless Chromium on `file` with networking cut off (every request,
/// loopback included, goes to a proxy on the discard port where nothing
/// listens); `extra` picks the output (`--dump-dom`, `--screenshot=...`).
/// Returns (stdout, stderr).
fn chromium(dir: &Path, file: &Path, extra: &[&str]) -> (String, String) {
    // One browser at a time: each starts a dozen processes, and the
    // machine running the tests may be small.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let profile = dir.join(format!("profile-{}", extra.len()));
    // Files, not pipes: Chromium logs much to stderr, and a pipe nobody
    // reads until exit would fill and block it.
    let (out_path, err_path) = (dir.join("chromium.out"), dir.join("chromium.err"));
    let mut child = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--window-size=1280,3000",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", file.display()))
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let (stdout, stderr) = (read(&out_path), read(&err_path));
    assert!(status.success(), "chromium failed: {stderr}");
    (stdout, stderr)
}

/// `name="value"` of the first `<body ...>` tag in the DOM dump.
fn body_attr(dom: &str, name: &str) -> Option<u32> {
    let start = dom.find("<body")?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let key = format!("{name}=\"");
    let at = tag.find(&key)? + key.len();
    tag[at..].split('"').next()?.parse().ok()
}

/// What the page's scripts said: console lines (every `console.*` call and
/// every uncaught error) from the report's file.
fn page_console(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| (l.contains(":CONSOLE") && l.contains("file://")) || l.contains("Uncaught"))
        .collect()
}

fn script(dir: &Path, body: &str) -> String {
    let path = dir.join("report.lua");
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_string()
}

fn run_with_html(dir: &Path, script: &str, host: &str, html: &Path) -> std::process::Output {
    run_bounded(
        locusta().args(["-f", script, "-H", host]).args([
            "--headless",
            "--only-summary",
            "-u",
            "3",
            "-r",
            "10",
            "-t",
            "3s",
            "--exit-code-on-error",
            "0",
            "--csv",
            dir.join("run").to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    )
}

const HOSTILE: &str = r#"
local locusta = require "locusta"
local Web = locusta.user { name = "Web", wait_time = locusta.constant(0.05) }
Web:task(3, function(self)
  self.client:get("/ok", { name = "</script><script>document.title='pwned'</script>" })
  self.client:get("/ok", { name = "\"quoted\" & 'single' ünïcødé ✓ 日本" })
end)
Web:task(1, function(self)
  self.client:get("/fail", { name = "<img src=x onerror=alert(1)>", catch_response = true },
    function(r) r:failure("<b>Broken</b> & \"quoted\"") end)
  error("line one <b>bold</b>\nline two")
end)
"#;

#[test]
fn report_with_hostile_names_renders_every_chart_offline() {
    if !have_chromium() {
        return;
    }
    let server = TestServer::start(|_| ok("fine"));
    let dir = temp_dir("report-html");
    let script = script(&dir, HOSTILE);
    // Locust's placeholders: {u} users, {r} spawn rate, {t} run time (s).
    let out = run_with_html(
        &dir,
        &script,
        &server.url(""),
        &dir.join("r_{u}_{r}_{t}.html"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let file = dir.join("r_3_10_3.html");
    let html = std::fs::read_to_string(&file).expect("the report, named with -u -r -t");
    // The host is the origin alone (the script has its own row).
    let host = format!("<tr><th>Host</th><td>{}</td></tr>", server.url(""));
    assert!(html.contains(&host), "{host} not in the report");

    // Self-contained: nothing to fetch.
    for fetch in ["<link", "<script src", "<img", "<iframe", "@import", "url("] {
        assert!(
            !html.contains(fetch),
            "the report fetches something: {fetch}"
        );
    }
    // Exactly the report's own scripts; outside strings stayed text.
    assert_eq!(html.matches("<script").count(), 3);
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    let failure = "&lt;b&gt;Broken&lt;/b&gt; &amp; &quot;quoted&quot;";
    assert!(html.contains(failure), "the failure's message");
    assert!(html.contains("&quot;quoted&quot; &amp; &#39;single&#39; ünïcødé ✓ 日本"));
    // The exception: message and a multi-line traceback.
    let exceptions = &html[html.find("id=\"exceptions\"").unwrap()..];
    assert!(
        exceptions.contains("line one &lt;b&gt;bold&lt;/b&gt;"),
        "{exceptions}"
    );
    assert!(
        exceptions.contains("<pre>stack traceback:\n"),
        "{exceptions}"
    );

    let (dom, stderr) = chromium(&dir, &file, &["--dump-dom"]);
    let console = page_console(&stderr);
    assert!(console.is_empty(), "the page logged: {console:#?}");
    // History: requests/s, response times, users; spectra: the three names
    // and Aggregated.
    assert_eq!(body_attr(&dom, "data-charts"), Some(7), "{dom}");
    assert_eq!(body_attr(&dom, "data-charts-drawn"), Some(7));
    // The hostile names did not run: the title is the report's, no image.
    assert!(dom.contains("<title>locusta report: "), "{dom}");
    assert!(!dom.contains("pwned</title>") && !dom.contains("<img"));
    // Local times were filled in by the page's script.
    assert!(dom.contains("(local: "));

    let shot: PathBuf = dir.join("report.png");
    let arg = format!("--screenshot={}", shot.display());
    let (_, stderr) = chromium(&dir, &file, &[&arg]);
    assert!(page_console(&stderr).is_empty(), "{stderr}");
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    // A blank 1280x3000 page compresses to a few KB; tables and charts
    // take far more.
    assert!(png.len() > 60_000, "screenshot is only {} bytes", png.len());
}

#[test]
fn report_of_a_run_without_requests_still_renders() {
    if !have_chromium() {
        return;
    }
    let server = TestServer::start(|_| ok("unused"));
    let dir = temp_dir("report-html-empty");
    let script = script(
        &dir,
        r#"
local locusta = require "locusta"
local Idle = locusta.user { name = "Idle", wait_time = locusta.constant(0.2) }
Idle:task(1, function(self) end)
"#,
    );
    let file = dir.join("out/empty.html");
    let out = run_with_html(&dir, &script, &server.url(""), &file);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(server.connections(), 0);
    let html = std::fs::read_to_string(&file).expect("the report");
    assert!(html.contains("No requests were made during this run."));
    assert!(html.contains("No requests: no latency distribution."));

    let (dom, stderr) = chromium(&dir, &file, &["--dump-dom"]);
    let console = page_console(&stderr);
    assert!(console.is_empty(), "the page logged: {console:#?}");
    // The per-second history (users, zero rates) is still drawn; no spectra.
    let charts = body_attr(&dom, "data-charts").expect("the page's script ran");
    assert_eq!(body_attr(&dom, "data-charts-drawn"), Some(charts), "{dom}");
    assert!(charts == 3 || charts == 0, "{charts} charts");
    assert!(dom.contains("data-expected=\"0\""));
}

#[test]
fn a_masters_report_covers_the_cluster() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("report-html-master");
    let csv = dir.join("run");
    let file = dir.join("cluster.html");
    let port = free_port();
    let args = [
        "-u",
        "2",
        "-r",
        "100",
        "-t",
        "3s",
        "--expect-workers",
        "1",
        "--html",
        file.to_str().unwrap(),
    ];
    let limit = Duration::from_secs(40);
    let mut master = Proc::spawn(
        &dir,
        "master",
        &mut master_cmd(port, &server.url("/"), &args, &csv),
    );
    let mut worker = Proc::spawn(&dir, "worker", &mut worker_cmd(port));
    assert!(master.wait(limit).success(), "{}", master.logs());
    assert!(worker.wait(limit).success(), "{}", worker.logs());
    let html = std::fs::read_to_string(&file).expect("the master's report");
    assert!(html.contains("master of 1 worker(s)"), "{html}");
    // The worker's row, under the id the master logged for it.
    let log = master.stderr();
    let id = log
        .split("Worker ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no worker id in the master's log:\n{log}"));
    assert!(html.contains(&format!("<tr><td>{id}</td>")), "{id}: {html}");
    // The whole cluster's requests, as in the master's CSV.
    let total = csv_total(&csv);
    assert!(total > 0);
    let aggregated = format!("<td class=\"name\">Aggregated</td><td>{total}</td>");
    assert!(html.contains(&aggregated), "{aggregated}: {html}");

    if !have_chromium() {
        return;
    }
    let (dom, stderr) = chromium(&dir, &file, &["--dump-dom"]);
    let console = page_console(&stderr);
    assert!(console.is_empty(), "the page logged: {console:#?}");
    // History (3 charts), spectra of GET / and Aggregated.
    assert_eq!(body_attr(&dom, "data-charts"), Some(5), "{dom}");
    assert_eq!(body_attr(&dom, "data-charts-drawn"), Some(5));
}

/// An open-model (arrival-rate) run's report: the open-model section with
/// its counters, and every chart drawn offline, the corrected p99 series
/// and the corrected spectrum included.
#[test]
fn an_open_model_report_draws_its_corrected_charts() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("html-open-model");
    let file = dir.join("open.html");
    let out = run_bounded(
        locusta()
            .args(["--headless", "--only-summary", "--rate", "100", "-u", "5"])
            .args(["-t", "3s", "--html", file.to_str().unwrap()])
            .arg(server.url("/")),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.contains("<section id=\"open-model\">"), "{html}");
    assert!(html.contains("<tr><th>Dropped</th><td>0</td></tr>"));
    assert!(html.contains("\"cp99\":["), "corrected p99 per second");
    // GET / and Aggregated, then the corrected Aggregated.
    assert!(html.contains("data-expected=\"3\""));
    if !have_chromium() {
        return;
    }
    let (dom, stderr) = chromium(&dir, &file, &["--dump-dom"]);
    let console = page_console(&stderr);
    assert!(console.is_empty(), "the page logged: {console:#?}");
    // History (3 charts) and the 3 spectra.
    assert_eq!(body_attr(&dom, "data-charts"), Some(6), "{dom}");
    assert_eq!(body_attr(&dom, "data-charts-drawn"), Some(6));
}
