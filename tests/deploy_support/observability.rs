//! deploy/grafana and deploy/prometheus checked: the dashboard's queries
//! against the metric names src/web/metrics.rs exports, the scrape config
//! against Prometheus' keys and the master's settings. Part of `tests/deploy.rs`.

use super::rehearsal::Rehearsal;
use super::support::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::time::Duration;

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

/// What Prometheus would get: the rehearsal's master (the units' command
/// line) scraped while its swarm runs has every metric the dashboard queries.
#[test]
fn a_running_masters_metrics_hold_the_dashboards() {
    let wanted = metric_names(&read(&deploy_dir().join("grafana/locusta-dashboard.json")));
    let mut rehearsal = Rehearsal::start("scrape", 1, "6s");
    let line = rehearsal.wait_line("local-cluster: http://", Duration::from_secs(30));
    let url = line.split(' ').nth(1).unwrap().to_string();
    // Users spawn at once (spawn rate = users): after 2 s requests are counted.
    std::thread::sleep(Duration::from_secs(2));
    let scraped = http_get(&url);
    let status = rehearsal.wait(Duration::from_secs(60));
    assert!(status.success(), "{}", rehearsal.logs());
    assert!(scraped.starts_with("HTTP/1.1 200"), "GET {url}:\n{scraped}");
    let have = metric_names(&scraped);
    let missing: Vec<&String> = wanted.iter().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "GET {url} lacks {missing:?}:\n{scraped}"
    );
}

/// One plain HTTP/1.1 GET on 127.0.0.1, the whole answer as text.
fn http_get(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    assert!(
        addr.starts_with("127.0.0.1:"),
        "tests stay on 127.0.0.1: {url}"
    );
    let mut s =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}
