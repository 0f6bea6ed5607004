//! A validated run: what the flags mean once checked together.
//!
//! `cli` parses text into flags; this module checks combinations (a URL or a
//! host is needed, raw-mode URLs share one origin, the TLS files load) and
//! produces the [`RunConfig`] the front ends run. Every problem is a
//! [`ConfigError`] shown to the user before anything starts (exit 2).

use std::time::Duration;

mod raw;
use raw::{raw_flags_given, raw_options, raw_targets, MAX_RAW_BODY};

use crate::cli::{self, Cli, IoMode};
use crate::engine::{ClassSpec, EngineConfig, OpenModel, Workload};
use crate::http::{ClientConfig, Target};
use crate::report::threshold::Threshold;
use crate::script::runtime::inspect_with_shape;
use crate::script::{ClassInfo, ScriptError, ScriptSource, TagFilter};
use crate::shape::ShapeDecl;
use crate::stats::StatsDelta;

/// Everything a headless run needs, checked.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub users: u32,
    pub spawn_rate: f64,
    pub run_time: Option<Duration>,
    pub csv_prefix: Option<String>,
    pub csv_full_history: bool,
    pub only_summary: bool,
    pub exit_code_on_error: i32,
    /// End-of-run reports besides the CSV files and tables.
    pub reports: ReportOptions,
    pub stop_timeout: Duration,
    pub shards: usize,
    pub io: IoMode,
    pub client: ClientConfig,
    pub workload: Workload,
    /// The user classes to run, in dispatch order.
    pub classes: Vec<ClassSpec>,
    /// What the script declares (empty in raw mode), for `--list`.
    pub script_classes: Vec<ClassInfo>,
    /// Where load goes, for the start-up line.
    pub target_label: String,
    /// Standalone, cluster master or cluster worker.
    pub role: Role,
    /// `--headless`: no dashboard.
    pub headless: bool,
    /// Dashboard: start the swarm at once with `users`/`spawn_rate`.
    pub autostart: bool,
    /// Dashboard: users added or removed per `+`/`-`.
    pub step: u32,
    /// `--max-users`: a worker refuses spawns over it.
    pub max_users: Option<u32>,
    /// `--arrival-rate`/`--rate`: an open-model run (else closed: -u at -r).
    pub open_model: Option<OpenModel>,
    /// `--reset-stats`: reset the statistics once spawning completes.
    pub reset_stats: bool,
    /// Print the periodic table: headless unless `--only-summary`, or
    /// `--print-stats` (Locust's rule).
    pub print_stats: bool,
    /// The script's load shape (`locusta.shape`/`locusta.stages`): it
    /// sets users and rates instead of -u/-r/-t.
    pub shape: Option<ShapeDecl>,
    /// The web server (`--web`...), when it serves.
    pub web: Option<crate::web::WebConfig>,
}

/// `--html`, `--json`, `--json-file`, `--threshold`, `--hdr-log`: what the
/// end of a run writes besides Locust's tables and CSV files.
#[derive(Clone, Debug, Default)]
pub struct ReportOptions {
    pub html: Option<String>,
    pub json_stdout: bool,
    pub json_file: Option<String>,
    pub thresholds: Vec<Threshold>,
    pub threshold_abort: bool,
    pub hdr_log: Option<String>,
}

/// Where this process sits in a run.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    /// Users run here.
    Standalone,
    /// Users run on workers that connect here.
    Master {
        bind_host: String,
        bind_port: u16,
        expect_workers: u32,
        expect_workers_max_wait: Option<Duration>,
    },
    /// Users run here, told by a master.
    Worker {
        master_host: String,
        master_port: u16,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("nothing to load: give a URL (raw mode), e.g. `locusta --headless -u 10 -t 30s http://127.0.0.1:8080/`, or try `locusta --demo`")]
    NoTarget,
    #[error("{0}")]
    Script(#[from] ScriptError),
    #[error("{0}")]
    Web(#[from] crate::web::WebConfigError),
    #[error("no user class named `{name}` in {script}; it has: {available}")]
    UnknownClass {
        name: String,
        script: String,
        available: String,
    },
    #[error(
        "with -f, positional arguments are user class names; `{0}` is a URL: pass it as -H/--host"
    )]
    UrlWithScript(String),
    #[error("user class `{0}` has no host: give -H/--host (e.g. -H http://127.0.0.1:8080) or set `host = \"http://...\"` in the class")]
    NoHost(String),
    /// A class asks for the demo target and no -H was given: the binary
    /// starts the demo target and builds the config again.
    #[error("user class `{0}` asks for the built-in demo target (host = locusta.DEMO_HOST) and none is running: give -H/--host")]
    DemoHost(String),
    #[error("{0}")]
    Url(#[from] crate::http::UrlError),
    #[error("raw-mode URLs must share one origin: `{first}` and `{other}` differ")]
    MixedOrigins { first: String, other: String },
    #[error("`{0}` is a path; give --host (e.g. -H http://127.0.0.1:8080) or a full http:// or https:// URL")]
    PathWithoutHost(String),
    #[error("--users must be at least 1")]
    NoUsers,
    #[error("'--csv-full-history' requires '--csv'.")]
    FullHistoryWithoutCsv,
    #[error("no user class has tasks left after --tags/--exclude-tags ({0})")]
    NoTasksLeft(String),
    #[error("{0} only apply to raw mode (URLs, no -f); a script sets its requests itself")]
    RawFlagsWithScript(String),
    #[error("--arrival-rate/--rate cannot be combined with {0}: an iteration is one request timed from its intended start")]
    OpenModelWith(&'static str),
    #[error("--pipeline {0} and --follow-redirects do not go together: a redirect's next hop cannot join a pipeline already written")]
    PipelineWithRedirects(u32),
    #[error("the request body ({body} bytes) times --pipeline {depth} is over {} MiB a batch", MAX_RAW_BODY >> 20)]
    BatchTooLarge { body: usize, depth: u32 },
    #[error("cannot read --data-file {path}: {reason}")]
    DataFile { path: String, reason: String },
    #[error("{0}")]
    Tls(#[from] crate::http::tls::TlsConfigError),
    #[error("--source-ip {ip}: not usable as a local address on this machine ({reason})")]
    SourceIp {
        ip: std::net::IpAddr,
        reason: String,
    },
}

/// `--source-ip`, each checked by binding to it: a typo or an address of
/// another box stops the run before it starts, not as failures in it.
fn source_ips(ips: &[std::net::IpAddr]) -> Result<std::sync::Arc<[std::net::IpAddr]>, ConfigError> {
    for &ip in ips {
        crate::http::dial::check_source_ip(ip)
            .map_err(|reason| ConfigError::SourceIp { ip, reason })?;
    }
    Ok(ips.into())
}

impl RunConfig {
    pub fn from_cli(cli: &Cli) -> Result<RunConfig, ConfigError> {
        let script = cli
            .locustfile
            .as_deref()
            .map(ScriptSource::read)
            .transpose()?;
        Self::from_cli_with_script(cli, script)
    }

    /// As [`from_cli`](Self::from_cli), with the script already in hand (the
    /// demo's is compiled into the binary).
    pub fn from_cli_with_script(
        cli: &Cli,
        script: Option<ScriptSource>,
    ) -> Result<RunConfig, ConfigError> {
        if cli.users == 0 {
            return Err(ConfigError::NoUsers);
        }
        if cli.csv_full_history && cli.csv_prefix.is_none() {
            return Err(ConfigError::FullHistoryWithoutCsv);
        }
        if cli.arrival_rate.is_some() {
            if cli.pipeline.is_some_and(|p| p > 1) {
                return Err(ConfigError::OpenModelWith("--pipeline"));
            }
            if cli.follow_redirects {
                return Err(ConfigError::OpenModelWith("--follow-redirects"));
            }
        }
        let (workload, classes, script_classes, target_label, shape) = match script {
            Some(source) => {
                let raw_flags = raw_flags_given(cli);
                if !raw_flags.is_empty() {
                    return Err(ConfigError::RawFlagsWithScript(raw_flags.join(", ")));
                }
                script_workload(cli, source)?
            }
            None => {
                let targets = raw_targets(cli)?;
                let options = raw_options(cli)?;
                let label = targets
                    .first()
                    .map_or_else(|| "the master's host".to_string(), |t| t.origin.clone());
                (
                    Workload::Raw { targets, options },
                    Workload::raw_classes(),
                    Vec::new(),
                    label,
                    None,
                )
            }
        };
        Ok(RunConfig {
            users: cli.users,
            spawn_rate: cli.spawn_rate,
            run_time: cli.run_time,
            csv_prefix: cli.csv_prefix.clone(),
            csv_full_history: cli.csv_full_history,
            only_summary: cli.only_summary,
            exit_code_on_error: cli.exit_code_on_error,
            reports: ReportOptions {
                html: cli.html.clone(),
                json_stdout: cli.json,
                json_file: cli.json_file.clone(),
                thresholds: cli.thresholds.clone(),
                threshold_abort: cli.threshold_abort,
                hdr_log: cli.hdr_log.clone(),
            },
            stop_timeout: cli.stop_timeout,
            shards: cli
                .shards
                .map(|s| s as usize)
                .unwrap_or_else(crate::engine::allowed_cpu_count),
            io: cli.io,
            client: ClientConfig {
                connect_timeout: cli.connect_timeout,
                request_timeout: cli.timeout,
                dns_ttl: cli.dns_ttl,
                source_ips: source_ips(&cli.source_ip)?,
                tls: tls_config(cli)?,
            },
            workload,
            classes,
            script_classes,
            target_label,
            role: if cli.master {
                Role::Master {
                    bind_host: cli.master_bind_host.clone(),
                    bind_port: cli.master_bind_port,
                    expect_workers: cli.expect_workers,
                    expect_workers_max_wait: cli.expect_workers_max_wait,
                }
            } else if cli.worker {
                Role::Worker {
                    master_host: cli.master_host.clone(),
                    master_port: cli.master_port,
                }
            } else {
                Role::Standalone
            },
            headless: cli.headless,
            autostart: cli.autostart,
            step: cli.step,
            max_users: cli.max_users,
            open_model: cli.arrival_rate.map(|rate| OpenModel {
                rate,
                max_users: cli.max_users.unwrap_or(cli.users),
            }),
            reset_stats: cli.reset_stats,
            print_stats: !cli.only_summary && (cli.print_stats || !cli.worker),
            shape,
            web: crate::web::WebConfig::from_cli(cli, false)?,
        })
    }

    /// Keep per-second histograms for "current" percentiles: the full
    /// history CSV, and the web API's `current_response_time_percentiles`.
    pub fn keep_window(&self) -> bool {
        self.csv_full_history || self.web.is_some()
    }

    /// The engine this run needs; `delta_tap` for a cluster worker.
    pub fn engine_config(
        &self,
        delta_tap: Option<crossbeam_channel::Sender<StatsDelta>>,
    ) -> EngineConfig {
        EngineConfig {
            shards: self.shards,
            io: self.io,
            client: self.client.clone(),
            workload: self.workload.clone(),
            classes: self.classes.clone(),
            stop_timeout: self.stop_timeout,
            keep_window: self.keep_window(),
            // A worker writes no reports: its master keeps the log.
            intervals: self.reports.hdr_log.is_some() && delta_tap.is_none(),
            delta_tap,
            open_tap: None,
        }
    }
}

fn is_demo(c: &ClassInfo) -> bool {
    c.host.as_deref() == Some(crate::script::DEMO_HOST)
}

type WorkloadParts = (
    Workload,
    Vec<ClassSpec>,
    Vec<ClassInfo>,
    String,
    Option<ShapeDecl>,
);

/// `-f script.lua [Class ...]`: load and check the script now, so a broken
/// script stops the run before anything starts.
fn script_workload(cli: &Cli, mut source: ScriptSource) -> Result<WorkloadParts, ConfigError> {
    let path = source.path.display().to_string();
    source.limits = std::sync::Arc::new(crate::script::ScriptLimits {
        max_blocking: cli.max_blocking_time,
        max_body: cli.max_body_size,
        lua_memory: Some(cli.lua_memory_limit.unwrap_or_else(|| {
            crate::script::limits::default_lua_memory(
                cli.shards
                    .map(|s| s as usize)
                    .unwrap_or_else(crate::engine::allowed_cpu_count),
            )
        })),
    });
    if let Some(url) = cli.urls.iter().find(|u| cli::is_url(u)) {
        return Err(ConfigError::UrlWithScript(url.clone()));
    }
    let tags = TagFilter {
        include: cli.tags.clone(),
        exclude: cli.exclude_tags.clone().unwrap_or_default(),
    };
    let (declared, shape) = inspect_with_shape(&source, &tags)?;
    let selected: Vec<ClassInfo> = if cli.urls.is_empty() {
        declared.clone()
    } else {
        let mut picked = Vec::new();
        for name in &cli.urls {
            let class = declared.iter().find(|c| &c.name == name).ok_or_else(|| {
                ConfigError::UnknownClass {
                    name: name.clone(),
                    script: path.clone(),
                    available: declared
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })?;
            picked.push(class.clone());
        }
        picked
    };
    // As Locust, tags filter only the classes that run; a selected class
    // left without tasks is dropped with Locust's warning, and only a run
    // with no class left is refused.
    let (selected, empty): (Vec<ClassInfo>, Vec<ClassInfo>) =
        selected.into_iter().partition(|c| !c.tasks.is_empty());
    for c in &empty {
        log::warn!(
            "{} had no tasks left after filtering: it will not run",
            c.name
        );
    }
    if selected.is_empty() && !cli.list {
        // --show-task-ratio has nothing to show either: refused too.
        let names: Vec<&str> = empty.iter().map(|c| c.name.as_str()).collect();
        return Err(ConfigError::NoTasksLeft(names.join(", ")));
    }
    if let Some(shape) = &shape {
        let run: Vec<&str> = selected.iter().map(|c| c.name.as_str()).collect();
        shape
            .check_classes(&run)
            .map_err(|message| ScriptError::Load { message })?;
    }
    let default_host = cli.host.as_deref().map(Target::parse).transpose()?;
    // A master runs no users; a worker may get the host from its master.
    let describe_only = cli.list || cli.show_task_ratio || cli.show_task_ratio_json;
    if !describe_only && !cli.master && !cli.worker && default_host.is_none() {
        if let Some(c) = selected.iter().find(|c| c.host.is_none()) {
            return Err(ConfigError::NoHost(c.name.clone()));
        }
        if let Some(c) = selected.iter().find(|c| is_demo(c)) {
            return Err(ConfigError::DemoHost(c.name.clone()));
        }
    }
    // From here on a demo class is a class without a host: -H serves it.
    let selected: Vec<ClassInfo> = selected
        .into_iter()
        .map(|mut c| {
            if is_demo(&c) {
                c.host = None;
            }
            c
        })
        .collect();
    let label = match &default_host {
        Some(t) => t.origin.clone(),
        None => selected
            .iter()
            .filter_map(|c| c.host.clone())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let classes = selected
        .iter()
        .map(|c| ClassSpec {
            name: c.name.clone(),
            weight: c.weight,
            fixed_count: c.fixed_count,
        })
        .collect();
    let workload = Workload::Script {
        source,
        tags,
        default_host,
    };
    Ok((
        workload,
        classes,
        declared,
        format!("{label} with {path}"),
        shape,
    ))
}

/// Locust's `-t` formats: `45` (seconds), `30s`, `5m`, `1h30m`, `1h30m20s`.
pub fn parse_run_time(s: &str) -> Result<Duration, String> {
    let bad = || format!("'{s}' is not a run time (examples: 45, 30s, 5m, 1h30m)");
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut num = String::new();
    let mut last_unit = 0u8; // units must come in h, m, s order
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        // Lower case only, as Locust's parse_timespan: `2S` is refused.
        let (rank, mult) = match c {
            'h' => (1, 3600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => return Err(bad()),
        };
        if num.is_empty() || rank <= last_unit {
            return Err(bad());
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        num.clear();
        last_unit = rank;
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Timeouts: plain seconds (`5`, `0.5`) or with a unit (`500ms`, `5s`, `1m`).
pub fn parse_duration_secs(s: &str) -> Result<Duration, String> {
    let bad = || format!("'{s}' is not a duration (examples: 5, 0.5, 500ms, 5s, 1m)");
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() && v * mult < 1e9 => {
            Ok(Duration::from_secs_f64(v * mult))
        }
        _ => Err(bad()),
    }
}

/// The TLS flags' shared config; `None` when no flag was given (https then
/// uses the system roots, built on first use).
fn tls_config(cli: &Cli) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, ConfigError> {
    let opts = crate::http::TlsOptions {
        insecure: cli.insecure,
        ca_cert: cli.ca_cert.clone(),
        client_cert: cli.client_cert.clone(),
        client_key: cli.client_key.clone(),
    };
    if opts.is_default() {
        return Ok(None);
    }
    Ok(Some(opts.build()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_time_formats() {
        assert_eq!(parse_run_time("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_run_time("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_run_time("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_run_time("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_run_time("1h30m20s"), Ok(Duration::from_secs(5420)));
        for bad in [
            "", "abc", "5x", "m", "30s5m", "1h1h", "5m3", "2S", "1H", "5M",
        ] {
            assert!(parse_run_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeout_formats() {
        assert_eq!(parse_duration_secs("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration_secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration_secs("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration_secs("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration_secs("-1").is_err());
        assert!(parse_duration_secs("soon").is_err());
    }
}
