//! Unit tests of the HTML report: escaping, hostile names, both topologies,
//! the task section, file names, and the size of an hour-long report.

use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::Histogram;

use super::*;
use crate::engine::{ClassSpec, IoDriver, TaskRuns, WorkerInfo};
use crate::http::Method;
use crate::report::test_view::sample_view;
use crate::report::RunInfo;
use crate::script::{ClassInfo, TaskInfo};
use crate::stats::{new_histogram, EntryHistogram, HistoryPoint, StatsView};

fn info(topology: Topology) -> RunInfo {
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    RunInfo {
        version: "9.9.9",
        command_line: vec!["locusta".into(), "-f".into(), "my file.lua".into()],
        started: start,
        ended: start + Duration::from_secs(3723),
        host: "http://127.0.0.1:8080".into(),
        script: Some("my file.lua".into()),
        classes: vec![ClassSpec {
            name: "Web".into(),
            weight: 1,
            fixed_count: None,
        }],
        script_classes: vec![ClassInfo {
            name: "Web".into(),
            weight: 1,
            fixed_count: None,
            host: None,
            tasks: vec![
                TaskInfo {
                    name: "browse".into(),
                    weight: 3,
                    tags: vec![],
                },
                TaskInfo {
                    name: "buy".into(),
                    weight: 1,
                    tags: vec![],
                },
            ],
        }],
        topology,
        target_users: 10,
        spawn_rate: 2.5,
        run_time: Some(Duration::from_secs(3600)),
    }
}

fn local() -> Topology {
    Topology::Local {
        shards: 2,
        io_driver: IoDriver::IoUring,
    }
}

fn histograms_for(view: &StatsView, samples: u64) -> Vec<EntryHistogram> {
    view.entries
        .iter()
        .chain([&view.aggregated])
        .map(|r| {
            let mut histogram = new_histogram();
            for i in 0..samples.min(r.num_requests) {
                // A spread of 200 µs .. ~20 ms, deterministic.
                histogram.record(200 + (i * 7919) % 20_000).unwrap();
            }
            EntryHistogram {
                method: r.method,
                name: r.name.clone(),
                histogram,
            }
        })
        .collect()
}

fn report(view: StatsView, topology: Topology, task_runs: Vec<TaskRuns>) -> FinalReport {
    FinalReport {
        info: info(topology),
        histograms: histograms_for(&view, 1000),
        history: vec![HistoryPoint {
            unix_time: 1_700_000_001,
            user_count: 10,
            rps: 3.0,
            fail_per_sec: 0.5,
            p50_ms: 1.0,
            p95_ms: 2.0,
            p99_ms: 3.0,
        }],
        task_runs,
        open_model: None,
        stats: view,
    }
}

#[test]
fn escape_covers_markup_and_quotes() {
    assert_eq!(
        escape(r#"<a href="x">'&'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
    assert_eq!(escape("ünï ✓ 日本"), "ünï ✓ 日本");
}

#[test]
fn embedded_assets_cannot_end_their_elements() {
    for (what, text) in [("uPlot", UPLOT_JS), ("report.js", REPORT_JS)] {
        assert!(!text.to_ascii_lowercase().contains("</script"), "{what}");
        assert!(!text.contains("<!--"), "{what}");
    }
    assert!(!UPLOT_CSS.contains("</style") && !REPORT_CSS.contains("</style"));
    assert!(UPLOT_LICENSE.contains("MIT License"));
}

#[test]
fn hostile_names_errors_and_tracebacks_stay_text() {
    let mut view = sample_view();
    let evil = "</script><script>alert(1)</script>\"'&<!-- ünï ✓";
    view.entries[0].name = evil.to_string();
    view.failures[0].name = evil.to_string();
    view.failures[0].error = "<img src=x onerror=alert(2)>".to_string();
    view.exceptions[0].message = "<b>bold</b>".to_string();
    view.exceptions[0].traceback = "stack traceback:\n\t<x>.lua:3: in function\n\tline two".into();
    let mut r = report(view, local(), vec![]);
    r.info.host = "<h1>host</h1>".into();
    let html = render(&r);
    // Only the report's own three script elements.
    assert_eq!(html.matches("<script").count(), 3, "{html}");
    assert_eq!(html.matches("</script>").count(), 3);
    assert!(!html.contains("<img") && !html.contains("<b>bold") && !html.contains("<h1>host"));
    assert!(html.contains(
        "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;&lt;!-- ünï ✓"
    ));
    assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"));
    // The traceback keeps its lines (tabs as spaces).
    assert!(
        html.contains("<pre>stack traceback:\n  &lt;x&gt;.lua:3: in function\n  line two</pre>")
    );
    // The chart data carries the name, escaped for the script element.
    assert!(html.contains("\\u003c/script>\\u003cscript>alert(1)"));
}

#[test]
fn both_topologies_render() {
    let html = render(&report(sample_view(), local(), vec![]));
    assert!(html.contains("2 shard(s), I/O driver io_uring"), "{html}");
    let workers = vec![WorkerInfo {
        id: "box_<1>".into(),
        state: "running".into(),
        users: 7,
        cpu_percent: 12.5,
        memory_bytes: 3 * 1024 * 1024,
    }];
    let html = render(&report(sample_view(), Topology::Master { workers }, vec![]));
    assert!(html.contains("master of 1 worker(s)"));
    assert!(
        html.contains("<td>box_&lt;1&gt;</td><td>running</td><td>7</td><td>12.5</td><td>3.0</td>")
    );
}

#[test]
fn run_section_and_tables_show_the_runs_numbers() {
    let html = render(&report(sample_view(), local(), vec![]));
    assert!(html.contains("2023-11-14T22:13:20Z <span class=\"local\" data-epoch=\"1700000000\">"));
    assert!(html.contains("<th>Duration</th><td>1 h 2 min 3 s</td>"));
    assert!(html.contains("<code>locusta -f &#39;my file.lua&#39;</code>"));
    assert!(html.contains("<th>Spawn rate</th><td>2.5 users/s</td>"));
    // Requests table: /a with 10 requests, 1 failure; the same cells as the console.
    assert!(html.contains("<td>GET</td><td class=\"name\">/a</td><td>10</td><td>1(10.00%)</td>"));
    // Percentiles table leaves out /c (no requests), as the console does.
    let percentiles = &html[html.find("id=\"percentiles\"").unwrap()..];
    let percentiles = &percentiles[..percentiles.find("</section>").unwrap()];
    assert!(!percentiles.contains(">/c<") && percentiles.contains(">/a<"));
    assert!(percentiles.contains("<th>99.99%</th>"));
    // Spectra: /a, /b and Aggregated (/c has no requests).
    assert!(html.contains("data-expected=\"3\""));
}

#[test]
fn tasks_show_configured_and_actual_shares() {
    let html = render(&report(sample_view(), local(), vec![]));
    assert!(html.contains("<td class=\"task\">browse</td><td>75.0%</td><td>75.0%</td><td colspan=\"3\" class=\"empty\">not counted</td>"), "{html}");
    let runs = vec![
        TaskRuns {
            class: "Web".into(),
            task: "browse".into(),
            runs: 60,
        },
        TaskRuns {
            class: "Web".into(),
            task: "buy".into(),
            runs: 40,
        },
    ];
    let html = render(&report(sample_view(), local(), runs));
    assert!(html.contains("<td class=\"task\">buy</td><td>25.0%</td><td>25.0%</td><td>40</td><td>40.0%</td><td>40.0%</td>"));
    assert!(!html.contains("not counted"));
}

#[test]
fn an_empty_run_still_renders() {
    let mut view = sample_view();
    for r in view.entries.iter_mut().chain([&mut view.aggregated]) {
        r.num_requests = 0;
        r.num_failures = 0;
    }
    view.failures.clear();
    view.exceptions.clear();
    let mut r = report(view, local(), vec![]);
    r.history.clear();
    r.histograms.iter_mut().for_each(|h| h.histogram.reset());
    let html = render(&r);
    assert!(html.contains("No requests were made during this run."));
    assert!(html.contains("data-expected=\"0\""));
    assert!(html.contains("No failures.") && html.contains("No exceptions."));
    assert!(html.contains("\"spectra\":[]"));
}

#[test]
fn file_name_takes_locusts_placeholders() {
    let t = Some(Duration::from_secs(60));
    assert_eq!(
        file_name("r_{u}_{r}_{t}.html", 10, 2.0, t),
        "r_10_2_60.html"
    );
    assert_eq!(file_name("{r}.html", 1, 0.5, t), "0.5.html");
    assert_eq!(file_name("{t}/{u}.html", 3, 1.0, None), "{t}/3.html");
    assert_eq!(file_name("plain.html", 3, 1.0, t), "plain.html");
}

/// The report of a 1-hour run with 100 request names must stay under 2 MB
/// (`cargo test --lib report_size -- --nocapture` prints the size).
#[test]
fn report_size_for_an_hour_and_100_names() {
    let mut view = sample_view();
    let template = view.entries[0].clone();
    view.entries = (0..100)
        .map(|i| EntryRow {
            name: format!("/api/v1/resource-{i:03}/items?page=1&sort=desc"),
            method: Some(if i % 3 == 0 {
                Method::Post
            } else {
                Method::Get
            }),
            num_requests: 100_000 + i * 1_237,
            num_failures: i * 3,
            avg_ms: 12.345_678 + i as f64,
            total_rps: 27.777_777 + i as f64 / 7.0,
            percentiles_ms: std::array::from_fn(|k| 1.234_567 * (k + 1) as f64 + i as f64),
            ..template.clone()
        })
        .collect();
    view.aggregated.num_requests = view.entries.iter().map(|r| r.num_requests).sum();
    let mut r = report(view, local(), vec![]);
    r.histograms = histograms_for(&r.stats, 20_000);
    // Whole-run histograms of a real hour hold millions of samples: more
    // spectrum points (one per tenth of a decade up to the count).
    for h in &mut r.histograms {
        let mut big = Histogram::<u64>::new_from(&h.histogram);
        big.add(&h.histogram).unwrap();
        big.record_n(5_000, 10_000_000).unwrap();
        h.histogram = big;
    }
    r.history = (0..3600u64)
        .map(|s| HistoryPoint {
            unix_time: 1_700_000_000 + s,
            user_count: 1000,
            rps: 12_345.678_9 + (s % 97) as f64 * 3.456_7,
            fail_per_sec: 1.234_567 * (s % 13) as f64,
            p50_ms: 3.456_789 + (s % 17) as f64 / 7.0,
            p95_ms: 23.456_789 + (s % 19) as f64 / 3.0,
            p99_ms: 123.456_789 + (s % 23) as f64 / 11.0,
        })
        .collect();
    let html = render(&r);
    let blob = data::blob(&r);
    println!(
        "report for 3600 s x 100 names: {} bytes ({} of chart data, {} of uPlot)",
        html.len(),
        blob.len(),
        UPLOT_JS.len()
    );
    assert!(html.len() < 2 * 1024 * 1024, "{} bytes", html.len());
    // Eleven spectra: the ten busiest names and Aggregated.
    assert_eq!(blob.matches("\"name\":").count(), 11);
}

#[test]
fn open_model_section_and_charts_only_in_open_model_runs() {
    let closed = render(&report(sample_view(), local(), vec![]));
    assert!(!closed.contains("open-model"));
    assert!(!closed.contains("\"cp99\":"));
    let mut r = report(sample_view(), local(), vec![]);
    let mut open = crate::report::open_model::sample_open();
    open.history = vec![HistoryPoint {
        unix_time: r.history[0].unix_time,
        user_count: 10,
        rps: 2.0,
        fail_per_sec: 0.0,
        p50_ms: 1.0,
        p95_ms: 501.0,
        p99_ms: 501.0,
    }];
    r.open_model = Some(crate::report::OpenModel {
        report: open,
        achieved_rate: 1.5,
    });
    let page = render(&r);
    assert!(page.contains("<section id=\"open-model\">"));
    assert!(page.contains("<tr><th>Dropped</th><td>3</td></tr>"));
    assert!(page.contains("<tr><th>Started late</th><td>1</td></tr>"));
    assert!(page.contains("1.50 iterations/s"));
    assert!(page.contains("<th>corrected p99</th>"));
    assert!(
        page.contains("\"cp99\":[501]"),
        "corrected p99 per second in the blob"
    );
    assert!(
        page.contains("Aggregated (corrected"),
        "the corrected spectrum"
    );
    let expected = data::spectrum_rows(&r).len() + 1;
    assert!(page.contains(&format!("data-expected=\"{expected}\"")));
}
