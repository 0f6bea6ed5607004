//! Command-line flags with Locust's names and meanings, plus `locusta.conf`
//! and `LOCUSTA_*` environment variables.
//!
//! Precedence is file < env < flags. clap already gives env < flags; the
//! config file is folded in *below* the environment by exporting each of its
//! keys as `LOCUSTA_<KEY>` only when that variable is not set already. This
//! module only parses; turning flags into a validated run lives in `config`.

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::config::{parse_duration_secs, parse_run_time};

/// The I/O driver each shard's runtime uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IoMode {
    /// io_uring when the kernel allows it, else epoll.
    Auto,
    /// io_uring only; refuse to start without it.
    Uring,
    /// The epoll ("legacy") driver.
    Epoll,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "locusta",
    version,
    about = "Load generator: Locust's way of working on a thread-per-core io_uring engine",
    after_help = "Scripted users: -f script.lua (Locust's user model in Lua). Raw mode (no script): give \
one or more http:// or https:// URLs of one origin; each user loops over them with no think time, like wrk (GET unless --method; see --header, -d, --pipeline, --follow-redirects).\n\n\
Examples:\n  locusta --demo\n  locusta -f lua/examples/shop.lua -H http://127.0.0.1:8080 --headless -u 100 -r 10 -t 5m\n  \
locusta --headless -u 64 -r 64 -t 30s --csv out http://127.0.0.1:8080/\n\n\
Every option can also be set in ./locusta.conf (or --config FILE) as `key = value`, or as \
LOCUSTA_<OPTION> in the environment; precedence is file < environment < flags."
)]
pub struct Cli {
    /// Host to load test, e.g. http://127.0.0.1:8080 (raw-mode URLs may be paths on it)
    #[arg(short = 'H', long, env = "LOCUSTA_HOST")]
    pub host: Option<String>,

    /// Peak number of concurrent users
    #[arg(short, long, env = "LOCUSTA_USERS", default_value_t = 1)]
    pub users: u32,

    /// Users started (or stopped) per second
    #[arg(short = 'r', long, env = "LOCUSTA_SPAWN_RATE", default_value_t = 1.0, value_parser = parse_rate)]
    pub spawn_rate: f64,

    /// Stop after this long: 45 (seconds), 30s, 5m, 1h30m
    #[arg(short = 't', long, env = "LOCUSTA_RUN_TIME", value_parser = parse_run_time)]
    pub run_time: Option<std::time::Duration>,

    /// Run without the dashboard, print stats to the console
    #[arg(long, env = "LOCUSTA_HEADLESS")]
    pub headless: bool,

    /// Write Locust-format CSV files PREFIX_stats.csv, _stats_history.csv, _failures.csv, _exceptions.csv
    #[arg(long = "csv", value_name = "PREFIX", env = "LOCUSTA_CSV")]
    pub csv_prefix: Option<String>,

    /// Write every entry (not only Aggregated) to the stats history CSV
    #[arg(long, env = "LOCUSTA_CSV_FULL_HISTORY")]
    pub csv_full_history: bool,

    /// Print only the final summary, not the periodic stats
    #[arg(long, env = "LOCUSTA_ONLY_SUMMARY")]
    pub only_summary: bool,

    /// Exit code when any request failed
    #[arg(long, env = "LOCUSTA_EXIT_CODE_ON_ERROR", default_value_t = 1, value_parser = clap::value_parser!(i32).range(0..=255))]
    pub exit_code_on_error: i32,

    /// Write a self-contained HTML report (tables and charts) to FILE at the end of the run
    #[arg(long, value_name = "FILE", env = "LOCUSTA_HTML")]
    pub html: Option<String>,

    /// Print the final stats as JSON (Locust's shape) on stdout
    #[arg(long, env = "LOCUSTA_JSON")]
    pub json: bool,

    /// Write the final stats as JSON (Locust's shape) to FILE
    #[arg(long, value_name = "FILE", env = "LOCUSTA_JSON_FILE")]
    pub json_file: Option<String>,

    /// Pass/fail rule on the final stats, e.g. 'p95<300ms', 'fail_ratio<1%', '/api/cart: p99<1s' (repeatable; any failure exits 3)
    #[arg(long = "threshold", value_name = "EXPR", value_parser = crate::report::threshold::parse)]
    pub thresholds: Vec<crate::report::threshold::Threshold>,

    /// Stop the run early once a threshold can no longer pass
    #[arg(long, env = "LOCUSTA_THRESHOLD_ABORT")]
    pub threshold_abort: bool,

    /// Write one HDR interval histogram per second per request name to FILE (HdrHistogram's interval log)
    #[arg(long, value_name = "FILE", env = "LOCUSTA_HDR_LOG")]
    pub hdr_log: Option<String>,

    /// Seconds users get to finish their current task when stopping, then they are cancelled
    #[arg(short = 's', long, env = "LOCUSTA_STOP_TIMEOUT", default_value = "0", value_parser = parse_duration_secs)]
    pub stop_timeout: std::time::Duration,

    /// Log level: DEBUG, INFO, WARNING, ERROR, CRITICAL
    #[arg(short = 'L', long, env = "LOCUSTA_LOGLEVEL", default_value = "INFO", value_parser = parse_level)]
    pub loglevel: log::LevelFilter,

    /// Engine shards, one pinned thread each (default: CPUs this process may run on)
    #[arg(long, env = "LOCUSTA_SHARDS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub shards: Option<u32>,

    /// I/O driver
    #[arg(long, env = "LOCUSTA_IO", value_enum, default_value_t = IoMode::Auto)]
    pub io: IoMode,

    /// Connect timeout (seconds, or 500ms / 5s)
    #[arg(long, env = "LOCUSTA_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_timeout)]
    pub connect_timeout: std::time::Duration,

    /// Whole-request timeout: connect, send and the complete response (seconds, or 500ms / 30s)
    #[arg(long, env = "LOCUSTA_TIMEOUT", default_value = "30s", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,

    /// Start a built-in target on 127.0.0.1 and run a short headless demo against it
    #[arg(long)]
    pub demo: bool,

    /// Config file (default: ./locusta.conf when present)
    #[arg(long, value_name = "FILE")]
    pub config: Option<String>,

    /// Lua user script (e.g. lua/examples/shop.lua)
    #[arg(
        short = 'f',
        long = "locustfile",
        value_name = "SCRIPT",
        env = "LOCUSTA_LOCUSTFILE"
    )]
    pub locustfile: Option<String>,

    /// Only run tasks with one of these tags (comma or space separated)
    #[arg(short = 'T', long, env = "LOCUSTA_TAGS", num_args = 1.., value_delimiter = ',')]
    pub tags: Option<Vec<String>>,

    /// Never run tasks with any of these tags
    #[arg(short = 'E', long, env = "LOCUSTA_EXCLUDE_TAGS", num_args = 1.., value_delimiter = ',')]
    pub exclude_tags: Option<Vec<String>>,

    /// List the script's user classes and their tasks, then exit
    #[arg(short = 'l', long)]
    pub list: bool,

    /// Start the swarm at once with -u/-r (dashboard; headless always does)
    #[arg(long, env = "LOCUSTA_AUTOSTART")]
    pub autostart: bool,

    /// Serve the web UI, Locust's HTTP API and Prometheus /metrics (on by
    /// default when not headless and stdout is not a terminal)
    #[arg(long, env = "LOCUSTA_WEB")]
    pub web: bool,

    /// Address the web server listens on. Loopback by default (Locust's is
    /// every address): the API starts and stops load, so opening it to the
    /// network is a choice, and it then needs --web-auth
    #[arg(long, env = "LOCUSTA_WEB_HOST", default_value = "127.0.0.1")]
    pub web_host: String,

    /// Port the web server listens on
    #[arg(short = 'P', long, env = "LOCUSTA_WEB_PORT", default_value_t = 8089)]
    pub web_port: u16,

    /// HTTP basic auth for the web server, user:password
    #[arg(long, env = "LOCUSTA_WEB_AUTH", value_name = "USER:PASSWORD")]
    pub web_auth: Option<String>,

    /// Serve the web UI under this path (behind a reverse proxy), e.g. /locusta
    #[arg(long, env = "LOCUSTA_WEB_BASE_PATH", value_name = "PATH")]
    pub web_base_path: Option<String>,

    /// Users added or removed by the dashboard's + and - keys
    #[arg(long, env = "LOCUSTA_STEP", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub step: u32,

    /// Run as a cluster master: workers connect to it and run the users
    #[arg(long, env = "LOCUSTA_MASTER", conflicts_with = "worker")]
    pub master: bool,

    /// Address the master listens on. The default accepts workers on this
    /// machine only; use 0.0.0.0 (or the rack-facing address) to let workers
    /// on other hosts join
    #[arg(long, env = "LOCUSTA_MASTER_BIND_HOST", default_value = "127.0.0.1")]
    pub master_bind_host: String,

    /// Port the master listens on
    #[arg(long, env = "LOCUSTA_MASTER_BIND_PORT", default_value_t = 5557)]
    pub master_bind_port: u16,

    /// Workers the master waits for before a headless run starts
    #[arg(long, env = "LOCUSTA_EXPECT_WORKERS", default_value_t = 1)]
    pub expect_workers: u32,

    /// Give up waiting for --expect-workers after this long (seconds, or 30s / 2m; default: wait forever)
    #[arg(long, env = "LOCUSTA_EXPECT_WORKERS_MAX_WAIT", value_parser = parse_duration_secs)]
    pub expect_workers_max_wait: Option<std::time::Duration>,

    /// Run as a cluster worker: take users from the master at --master-host
    #[arg(long, env = "LOCUSTA_WORKER")]
    pub worker: bool,

    /// Host of the master to join
    #[arg(long, env = "LOCUSTA_MASTER_HOST", default_value = "127.0.0.1")]
    pub master_host: String,

    /// Port of the master to join
    #[arg(long, env = "LOCUSTA_MASTER_PORT", default_value_t = 5557)]
    pub master_port: u16,

    /// Open model: the pool of users iterations are run by (created as
    /// needed, default -u). Worker: most users a master may ask this worker
    /// to run (a spawn over it, or over what the open-files limit allows, is
    /// refused)
    #[arg(long, env = "LOCUSTA_MAX_USERS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_users: Option<u32>,

    /// Open model: start this many iterations (tasks; requests in raw mode)
    /// per second on a fixed schedule, however slow the server gets, with
    /// latency also measured from each one's intended start. `--rate` is
    /// the same flag (wrk2's -R)
    #[arg(long, alias = "rate", value_name = "PER_SECOND", env = "LOCUSTA_ARRIVAL_RATE", value_parser = parse_arrival_rate)]
    pub arrival_rate: Option<f64>,

    /// Raw mode: http:// or https:// URLs (or paths on --host) each user requests in turn.
    /// With -f: the names of the user classes to run (default: all)
    #[arg(value_name = "URL|CLASS")]
    pub urls: Vec<String>,

    /// Lua code running this long without yielding gets an error (recorded as an exception; the user goes on)
    #[arg(long, env = "LOCUSTA_MAX_BLOCKING_TIME", default_value = "5s", value_parser = parse_positive_duration)]
    pub max_blocking_time: std::time::Duration,

    /// Lua mode: a response body larger than this fails the request (`body larger than 64 MiB`)
    #[arg(long, env = "LOCUSTA_MAX_BODY_SIZE", default_value = "64MiB", value_parser = crate::script::limits::parse_size)]
    pub max_body_size: usize,

    /// Lua heap limit per shard; past it scripts get Lua's `not enough memory` error (default: half the RAM shared by the shards, at least 256 MiB)
    #[arg(long, env = "LOCUSTA_LUA_MEMORY_LIMIT", value_parser = crate::script::limits::parse_size)]
    pub lua_memory_limit: Option<usize>,

    /// Reset the statistics once spawning completes (as Locust's --reset-stats)
    #[arg(long, env = "LOCUSTA_RESET_STATS")]
    pub reset_stats: bool,

    /// Write log lines to FILE (appended; parent directories created) instead of stderr
    #[arg(long, value_name = "FILE", env = "LOCUSTA_LOGFILE")]
    pub logfile: Option<String>,

    /// Print the user classes' and tasks' execution ratios (use -u for fixed_count classes), then exit
    #[arg(long)]
    pub show_task_ratio: bool,

    /// As --show-task-ratio, as Locust's JSON
    #[arg(long)]
    pub show_task_ratio_json: bool,

    /// Accepted for Locust compatibility: shards already use every CPU (see --shards)
    #[arg(
        long,
        value_name = "N",
        env = "LOCUSTA_PROCESSES",
        allow_negative_numbers = true
    )]
    pub processes: Option<i32>,

    /// Print the periodic stats table (headless runs do by default; --only-summary wins)
    #[arg(long, env = "LOCUSTA_PRINT_STATS")]
    pub print_stats: bool,

    /// How long each shard reuses a host name's addresses (e.g. 30s; 0: look up on every new connection)
    #[arg(long, env = "LOCUSTA_DNS_TTL", default_value = "30s", value_parser = crate::config::parse_duration_secs)]
    pub dns_ttl: std::time::Duration,

    /// Bind new connections to these local addresses in turn (comma separated), for more than ~28k connections per target address
    #[arg(
        long,
        value_name = "IP[,IP...]",
        env = "LOCUSTA_SOURCE_IP",
        value_delimiter = ','
    )]
    pub source_ip: Vec<std::net::IpAddr>,

    /// https: accept any server certificate (name, issuer, dates unchecked; handshake signatures still are)
    #[arg(long, env = "LOCUSTA_INSECURE")]
    pub insecure: bool,

    /// https: trust the CA certificates in this PEM file instead of the system's
    #[arg(long, value_name = "FILE", env = "LOCUSTA_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,

    /// https: client certificate chain (PEM) for mTLS; needs --client-key
    #[arg(long, value_name = "FILE", env = "LOCUSTA_CLIENT_CERT")]
    pub client_cert: Option<std::path::PathBuf>,

    /// https: the client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long, value_name = "FILE", env = "LOCUSTA_CLIENT_KEY")]
    pub client_key: Option<std::path::PathBuf>,

    /// Raw mode: the request method (default GET, or POST with a body, as curl)
    #[arg(long, env = "LOCUSTA_METHOD", value_parser = parse_method)]
    pub method: Option<crate::http::Method>,

    /// Raw mode: the request body (Content-Length is set from it)
    #[arg(
        short = 'd',
        long,
        value_name = "STRING",
        env = "LOCUSTA_DATA",
        conflicts_with = "data_file"
    )]
    pub data: Option<String>,

    /// Raw mode: the request body, read from FILE once at start
    #[arg(long, value_name = "FILE", env = "LOCUSTA_DATA_FILE")]
    pub data_file: Option<String>,

    /// Raw mode: a request header 'Name: value' (repeatable; a given Host replaces the default)
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,

    /// Raw mode: requests written at once per connection before their responses are read (wrk's pipeline.lua)
    #[arg(long, value_name = "N", env = "LOCUSTA_PIPELINE", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pipeline: Option<u32>,

    /// Raw mode: follow redirects (up to 10 hops; default: a 3xx is recorded as it is, like wrk)
    #[arg(long, env = "LOCUSTA_FOLLOW_REDIRECTS")]
    pub follow_redirects: bool,
}

fn parse_method(s: &str) -> Result<crate::http::Method, String> {
    crate::http::Method::parse(s).ok_or_else(|| {
        let all: Vec<&str> = crate::http::Method::ALL
            .iter()
            .map(|m| m.as_str())
            .collect();
        format!("'{s}' is not a method ({})", all.join(", "))
    })
}

/// `Name: value` as curl's -H. The name must be an RFC 9110 token and the
/// value free of CR, LF and NUL: a header must not be able to end the head
/// or add a line. Content-Length and Transfer-Encoding are refused: the
/// body's framing is ours (pipelined responses depend on it).
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once(':').ok_or_else(|| {
        format!(
            "header '{}' has no ':' (give 'Name: value')",
            s.escape_debug()
        )
    })?;
    let name = name.trim();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!(
            "header name '{}' is not a valid token",
            name.escape_debug()
        ));
    }
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(format!("header '{name}' has CR, LF or NUL in its value"));
    }
    if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
    {
        return Err(format!(
            "header '{name}' is set from the body (-d/--data-file); do not give it"
        ));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// A duration above zero (a zero bound would interrupt everything).
fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match parse_duration_secs(s)? {
        d if d.is_zero() => Err(format!("'{s}' must be above zero")),
        d => Ok(d),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
        _ => Err(format!(
            "'{s}' is not a positive number of users per second"
        )),
    }
}

fn parse_arrival_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r <= crate::engine::MAX_ARRIVAL_RATE => Ok(r),
        _ => Err(format!(
            "'{s}' is not an arrival rate: give iterations per second, above 0 and at most {}",
            crate::engine::MAX_ARRIVAL_RATE
        )),
    }
}

/// A timeout of zero would fail every request before it is sent: at least 1 ms.
fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration_secs(s)?;
    if d < std::time::Duration::from_millis(1) {
        return Err(format!(
            "'{s}' is too short: a timeout must be at least 1ms"
        ));
    }
    Ok(d)
}

fn parse_level(s: &str) -> Result<log::LevelFilter, String> {
    match s.to_ascii_uppercase().as_str() {
        "DEBUG" => Ok(log::LevelFilter::Debug),
        "INFO" => Ok(log::LevelFilter::Info),
        "WARNING" | "WARN" => Ok(log::LevelFilter::Warn),
        "ERROR" | "CRITICAL" => Ok(log::LevelFilter::Error),
        _ => Err(format!(
            "'{s}' is not a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)"
        )),
    }
}

/// A problem in the config file, reported before anything starts.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct ConfigFileError {
    pub path: String,
    pub line: usize,
    pub message: String,
}

/// Parsed flags, and which of them the user actually set (anywhere).
pub struct Parsed {
    pub cli: Cli,
    matches: ArgMatches,
}

impl Parsed {
    /// True when `id` (a field name, e.g. "users") came from a flag, the
    /// environment or the config file rather than its default.
    pub fn is_set(&self, id: &str) -> bool {
        matches!(
            self.matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    }
}

/// Parse the command line, folding in the config file below env and flags.
/// Usage errors print clap's message and exit with status 2.
pub fn parse_from<I, T>(args: I) -> Result<Parsed, ConfigFileError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let explicit = config_flag(&args);
    let path = explicit
        .clone()
        .unwrap_or_else(|| "locusta.conf".to_string());
    match std::fs::read_to_string(&path) {
        Ok(text) => apply_config_file(&path, &text)?,
        Err(e) if explicit.is_none() && e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ConfigFileError {
                path,
                line: 0,
                message: format!("cannot read config file: {e}"),
            })
        }
    }
    let matches = Cli::command().get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok(Parsed { cli, matches })
}

/// `--config FILE` / `--config=FILE`, found before clap runs so the file can
/// feed clap's environment defaults.
fn config_flag(args: &[OsString]) -> Option<String> {
    let mut it = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().map(|s| s.into_owned());
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(v.to_string());
        }
    }
    None
}

/// Locust's config format: `key = value` lines, `#` comments, `[section]`
/// headers ignored; keys are long option names with `-` or `_`.
fn apply_config_file(path: &str, text: &str) -> Result<(), ConfigFileError> {
    let cmd = Cli::command();
    for (i, raw) in text.lines().enumerate() {
        let err = |message: String| ConfigFileError {
            path: path.to_string(),
            line: i + 1,
            message,
        };
        let line = raw.trim();
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with(';')
            || line.starts_with('[')
        {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| err(format!("expected `key = value`, found `{line}`")))?;
        let key = key.trim().replace('_', "-");
        let value = value.trim().trim_matches('"');
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()))
            .ok_or_else(|| err(format!("unknown option `{key}`")))?;
        let Some(env_name) = arg.get_env() else {
            return Err(err(format!("`{key}` cannot be set in a config file")));
        };
        if std::env::var_os(env_name).is_none() {
            // Single-threaded here (before any engine thread starts), so
            // mutating the environment is sound.
            std::env::set_var(env_name, value);
        }
    }
    Ok(())
}

/// True when `path` looks like a URL rather than a path on `--host`.
pub fn is_url(s: &str) -> bool {
    s.contains("://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_flag_forms() {
        let a: Vec<OsString> = ["locusta", "--config", "x.conf"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(config_flag(&a).as_deref(), Some("x.conf"));
        let b: Vec<OsString> = ["locusta", "--config=y.conf"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(config_flag(&b).as_deref(), Some("y.conf"));
    }

    #[test]
    fn headers_are_tokens_without_line_breaks() {
        assert_eq!(
            parse_header("X-A:  b c "),
            Ok(("X-A".to_string(), "b c".to_string()))
        );
        assert_eq!(parse_header("Host:"), Ok(("Host".into(), String::new())));
        // NUL cannot come through argv, but can through the environment.
        for bad in [
            "X-A: b\0",
            "X-A: b\r\nEvil: 1",
            "NoColon",
            "Bad Name: x",
            ": x",
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_config_key_names_line() {
        let e = apply_config_file("f.conf", "# c\n\nuserz = 3\n").unwrap_err();
        assert_eq!(e.to_string(), "f.conf:3: unknown option `userz`");
    }
}
