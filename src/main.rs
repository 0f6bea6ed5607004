//! The `locusta` binary: parse flags, build the run, hand it to a front end.
//! Everything below the edge lives in the library; errors here are `anyhow`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use locusta::cli::{self, Parsed};
use locusta::cluster::master::MasterController;
use locusta::config::{Role, RunConfig};
use locusta::demo::DemoTarget;
use locusta::engine::{Controller, RunControl, Workload};
use locusta::script::ScriptSource;
use locusta::{dashboard, headless, limits, report, task_ratio, web};

/// Exit status for usage errors, as clap and Locust use.
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let parsed = match cli::parse_from(std::env::args_os()) {
        Ok(p) => p,
        Err(e) => {
            report::eprint_line(&format!("error: {e}"));
            return ExitCode::from(USAGE);
        }
    };
    if let Err(e) = init_logging(parsed.cli.loglevel, parsed.cli.logfile.as_deref()) {
        report::eprint_line(&format!("error: {e:#}"));
        return ExitCode::FAILURE;
    }
    if let Some(n) = parsed.cli.processes {
        log::warn!(
            "--processes {n} is ignored: locusta runs one shard per CPU in a single process \
             already (set their number with --shards)"
        );
    }
    let mut demo = if parsed.cli.demo {
        match DemoTarget::start() {
            Ok(t) => Some(t),
            Err(e) => {
                report::eprint_line(&format!("error: cannot start the demo target: {e}"));
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let built = demo.as_ref().map_or_else(
        || RunConfig::from_cli(&parsed.cli),
        |d| demo_config(&parsed, d),
    );
    let built = match built {
        Err(locusta::config::ConfigError::DemoHost(class)) => no_host_fallback(&parsed, &mut demo)
            .unwrap_or(Err(locusta::config::ConfigError::DemoHost(class))),
        other => other,
    };
    let mut cfg = match built {
        Ok(c) => c,
        Err(e) => {
            report::eprint_line(&format!("error: {e}"));
            return ExitCode::from(USAGE);
        }
    };
    let describe_only =
        parsed.cli.list || parsed.cli.show_task_ratio || parsed.cli.show_task_ratio_json;
    if !describe_only {
        shape_wins(&parsed, &mut cfg);
    }
    // -l and --show-task-ratio run nothing: no resource check for them.
    let fits = if describe_only {
        Ok(())
    } else {
        fit_to_machine(&cfg)
    };
    if let Err(e) = fits {
        report::eprint_line(&format!("error: {e}"));
        return ExitCode::from(USAGE);
    }
    // The web front end turns the server on without --web.
    if !describe_only && cfg.web.is_none() && web_front_end(&parsed, &cfg) {
        match web::WebConfig::from_cli(&parsed.cli, true) {
            Ok(w) => cfg.web = w,
            Err(e) => {
                report::eprint_line(&format!("error: {e}"));
                return ExitCode::from(USAGE);
            }
        }
    }
    if !describe_only && !matches!(cfg.role, Role::Master { .. }) {
        warn_unresolvable(&cfg);
    }
    let code = match run(&parsed, &cfg) {
        Ok(code) => code,
        Err(e) => {
            report::eprint_line(&format!("error: {e:#}"));
            1
        }
    };
    if let Some(d) = demo {
        d.stop();
    }
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// With a load shape, -u/-r/-t (and --arrival-rate) do not apply: warn when
/// given (as Locust does) and drop them. A worker only follows its master.
fn shape_wins(parsed: &Parsed, cfg: &mut RunConfig) {
    let Some(shape) = &cfg.shape else {
        return;
    };
    if matches!(cfg.role, Role::Worker { .. }) {
        return;
    }
    // Rate stages take their pool from -u when they set no max_users.
    let pool_from_users = shape.is_open_model();
    let given: Vec<&str> = [
        ("users", "-u/--users"),
        ("spawn_rate", "-r/--spawn-rate"),
        ("run_time", "-t/--run-time"),
        ("arrival_rate", "--arrival-rate"),
    ]
    .into_iter()
    .filter(|(id, _)| parsed.is_set(id) && !(pool_from_users && *id == "users"))
    .map(|(_, flag)| flag)
    .collect();
    if !given.is_empty() {
        log::warn!(
            "The load shape at {} sets users, rates and the run's end: {} ignored",
            shape.at(),
            given.join(", ")
        );
    }
    cfg.run_time = None;
    cfg.open_model = None;
}

/// `-f script` whose classes ask for the demo target (`host =
/// locusta.DEMO_HOST`) and no `-H`, in a standalone run that is not just
/// listing: start the built-in demo target and run against it, and say so
/// (a log line naming it, and the reports' Host row). `None` when that
/// does not apply (a master or worker, or the demo cannot start): the
/// caller reports the missing host. A class without any host still needs
/// -H: a forgotten -H must not quietly load the wrong server.
fn no_host_fallback(
    parsed: &Parsed,
    demo: &mut Option<DemoTarget>,
) -> Option<Result<RunConfig, locusta::config::ConfigError>> {
    let cli = &parsed.cli;
    let listing = cli.list || cli.show_task_ratio || cli.show_task_ratio_json;
    if demo.is_some() || cli.master || cli.worker || listing || cli.locustfile.is_none() {
        return None;
    }
    let target = DemoTarget::start().ok()?;
    log::info!(
        "No -H/--host and a user class with host = locusta.DEMO_HOST: running against the \
         built-in demo target on {} (give -H URL to load a real server)",
        target.base_url()
    );
    let mut cli = cli.clone();
    cli.host = Some(target.base_url());
    *demo = Some(target);
    Some(RunConfig::from_cli(&cli))
}

/// A target host name that does not resolve now is only a warning (as
/// Locust, nothing is checked): its requests fail as `dns: ...`.
fn warn_unresolvable(cfg: &RunConfig) {
    let target = match &cfg.workload {
        Workload::Raw { targets, .. } => targets.first(),
        Workload::Script { default_host, .. } => default_host.as_ref(),
    };
    let Some(t) = target.filter(|t| t.addr.is_none()) else {
        return;
    };
    if let Some(why) = locusta::http::dns::check_at_start(&t.host, Duration::from_secs(1)) {
        log::warn!(
            "host {} does not resolve now ({why}): its requests will fail as `dns: {}: ...`",
            t.host,
            t.host.to_ascii_lowercase()
        );
    }
}

fn run(parsed: &Parsed, cfg: &RunConfig) -> anyhow::Result<i32> {
    if parsed.cli.list {
        report::print(&list_classes(cfg));
        return Ok(0);
    }
    if parsed.cli.show_task_ratio || parsed.cli.show_task_ratio_json {
        // Locust's -u only when given: without it, one user per weight.
        let users = parsed.is_set("users").then_some(cfg.users);
        let (classes, infos) = (&cfg.classes, &cfg.script_classes);
        report::print(&if parsed.cli.show_task_ratio {
            task_ratio::text(classes, infos, users)
        } else {
            task_ratio::json(classes, infos, users)
        });
        return Ok(0);
    }
    match &cfg.role {
        Role::Worker { .. } => {
            let r = &cfg.reports;
            let ignored: Vec<&str> = [
                (r.html.is_some(), "--html"),
                (r.json_stdout, "--json"),
                (r.json_file.is_some(), "--json-file"),
                (!r.thresholds.is_empty(), "--threshold"),
                (r.hdr_log.is_some(), "--hdr-log"),
            ]
            .into_iter()
            .filter_map(|(given, flag)| given.then_some(flag))
            .collect();
            if !ignored.is_empty() {
                log::warn!(
                    "{} ignored on a worker: the master writes the reports and judges the run",
                    ignored.join(", ")
                );
            }
            let code = locusta::cluster::worker::run(cfg)?;
            log::info!("Shutting down (exit code {code})");
            Ok(code)
        }
        Role::Master { .. } => {
            let master = MasterController::launch(cfg)?;
            if let Role::Master {
                expect_workers,
                expect_workers_max_wait,
                ..
            } = &cfg.role
            {
                // As Locust: a headless or autostarted master waits for its
                // workers; the dashboard shows them arriving instead.
                // The web front end shows them arriving too.
                if cfg.headless || cfg.autostart {
                    if let Err(e) =
                        master.wait_for_workers(*expect_workers, *expect_workers_max_wait)
                    {
                        master.shutdown();
                        return Err(e);
                    }
                }
            }
            // Python workers cannot run an arrival rate: say which, start nothing.
            if cfg.open_model.is_some() {
                if let Some(why) = master.open_model_refusal() {
                    master.shutdown();
                    anyhow::bail!("{why}");
                }
            }
            let master = Arc::new(master);
            let web = start_web(cfg, master.clone())?;
            let code = front_end(parsed, cfg, &*master);
            drop(web);
            match Arc::try_unwrap(master) {
                Ok(m) => m.shutdown(),
                Err(_) => log::error!("the master is still shared at exit: not shut down"),
            }
            code
        }
        Role::Standalone => {
            let controller = Controller::launch(cfg.engine_config(None))?;
            let load = match &cfg.shape {
                Some(_) => "users from the load shape".to_string(),
                None => format!("{} user(s) at {}/s", cfg.users, cfg.spawn_rate),
            };
            log::info!(
                "Starting locusta {}: {} shard(s) on {}, {load} against {}",
                env!("CARGO_PKG_VERSION"),
                controller.shards(),
                controller.io_driver().as_str(),
                cfg.target_label
            );
            let controller = Arc::new(controller);
            let web = start_web(cfg, controller.clone())?;
            let code = front_end(parsed, cfg, &*controller);
            drop(web);
            match Arc::try_unwrap(controller) {
                Ok(c) => c.shutdown(),
                Err(_) => log::error!("the engine is still shared at exit: not shut down"),
            }
            code
        }
    }
}

/// Raise the open-files limit for every role; for users run here, refuse
/// a run that cannot fit in memory or in the machine's file table, and warn
/// when the open-files limit cannot hold every user's connection.
fn fit_to_machine(cfg: &RunConfig) -> Result<(), limits::TooLarge> {
    let files = match limits::raise_open_files() {
        Ok(f) => {
            if f.soft > f.was {
                log::debug!("open-files limit raised from {} to {}", f.was, f.soft);
            }
            Some(f.soft)
        }
        Err(e) => {
            log::warn!("cannot read or raise the open-files limit: {e}");
            None
        }
    };
    // A master's users live on its workers; a worker checks what it is sent.
    if cfg.role != Role::Standalone {
        return Ok(());
    }
    let per_user = match cfg.workload {
        Workload::Raw { .. } => limits::RAW_USER_BYTES,
        Workload::Script { .. } => limits::LUA_USER_BYTES,
    };
    let users = u64::from(cfg.users);
    limits::check_fits(users, per_user, cfg.shards, &limits::Machine::read(files))?;
    if let Some(w) = files.and_then(|f| limits::open_files_warning(users, cfg.shards, f)) {
        log::warn!("{w}");
    }
    Ok(())
}

/// The web server when configured, serving beside the front end until the
/// returned handle drops.
fn start_web(
    cfg: &RunConfig,
    control: Arc<dyn RunControl>,
) -> anyhow::Result<Option<web::WebServer>> {
    let Some(web_cfg) = &cfg.web else {
        return Ok(None);
    };
    let ctx = web::WebContext {
        control,
        cfg: Arc::new(cfg.clone()),
    };
    let server = web::WebServer::start(web_cfg, ctx)?;
    log::info!("Web UI and API on {}", server.url());
    Ok(Some(server))
}

/// Headless with `--headless` or the demo; else the dashboard on a
/// terminal, or the web front end without one (a container, a service).
fn front_end(parsed: &Parsed, cfg: &RunConfig, control: &dyn RunControl) -> anyhow::Result<i32> {
    if cfg.headless || parsed.cli.demo {
        return headless::run(cfg, control);
    }
    if web_front_end(parsed, cfg) {
        return web::front::run(cfg, control);
    }
    dashboard::run(cfg, control)
}

/// Not headless, not the demo, not a worker, and no terminal on stdout:
/// the web UI is the front end (Locust's default), its server on.
fn web_front_end(parsed: &Parsed, cfg: &RunConfig) -> bool {
    !cfg.headless
        && !parsed.cli.demo
        && !matches!(cfg.role, Role::Worker { .. })
        && !std::io::stdout().is_terminal()
}

/// `--demo`: the built-in target's URLs, and a short, lively run unless the
/// user set the numbers. Its failures are the target's designed error rate,
/// so they do not fail the demo unless `--exit-code-on-error` is given.
fn demo_config(
    parsed: &Parsed,
    target: &DemoTarget,
) -> Result<RunConfig, locusta::config::ConfigError> {
    let mut cli = parsed.cli.clone();
    cli.urls.clear();
    cli.host = Some(target.base_url());
    if !parsed.is_set("users") {
        cli.users = 200;
    }
    if !parsed.is_set("spawn_rate") {
        cli.spawn_rate = 50.0;
    }
    if !parsed.is_set("run_time") {
        cli.run_time = Some(Duration::from_secs(15));
    }
    if !parsed.is_set("exit_code_on_error") {
        cli.exit_code_on_error = 0;
    }
    // `--demo -f FILE`: FILE against the demo target; else the shop.
    let cfg = match &cli.locustfile {
        Some(_) => RunConfig::from_cli(&cli)?,
        None => {
            let shop = ScriptSource {
                path: "lua/examples/shop.lua".into(),
                text: include_str!("../lua/examples/shop.lua").to_string(),
                limits: Default::default(),
            };
            RunConfig::from_cli_with_script(&cli, Some(shop))?
        }
    };
    let what = match (&cfg.shape, &cfg.workload) {
        (Some(shape), _) => format!("the load shape at {}", shape.at()),
        (None, Workload::Script { source, .. }) => format!(
            "{}, {} users for {}s",
            source.path.display(),
            cfg.users,
            cfg.run_time.map_or(0, |t| t.as_secs())
        ),
        (None, Workload::Raw { .. }) => String::new(),
    };
    report::eprint_line(&format!(
        "Demo: the shop target on {}, {what}",
        target.base_url()
    ));
    Ok(cfg)
}

/// `-l/--list`: the script's classes with weights and tasks.
fn list_classes(cfg: &RunConfig) -> String {
    let mut out = String::from("Available user classes:\n");
    for c in &cfg.script_classes {
        let count = match c.fixed_count {
            Some(n) => format!("fixed_count {n}"),
            None => format!("weight {}", c.weight),
        };
        out += &format!("    {} ({count})\n", c.name);
        for t in &c.tasks {
            let tags = if t.tags.is_empty() {
                String::new()
            } else {
                format!(" [tags: {}]", t.tags.join(", "))
            };
            out += &format!("        {} (weight {}){tags}\n", t.name, t.weight);
        }
    }
    out
}

/// Locust-like log lines: `[HH:MM:SS.mmm] LEVEL/locusta: message`, on
/// stderr or, with `--logfile`, appended to that file instead.
struct Logger {
    file: Option<std::sync::Mutex<std::fs::File>>,
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level() && m.target().starts_with("locusta")
    }
    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs() % 86_400;
        let level = match r.level() {
            log::Level::Warn => "WARNING",
            l => l.as_str(),
        };
        let line = format!(
            "[{:02}:{:02}:{:02}.{:03}] {level}/locusta: {}\n",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            now.subsec_millis(),
            r.args()
        );
        // One write per line, so lines from threads never interleave.
        let _ = match &self.file {
            Some(f) => match f.lock() {
                Ok(mut f) => f.write_all(line.as_bytes()),
                Err(_) => Ok(()),
            },
            // Erasing a progress line being shown first.
            None => report::progress::write_stderr(line.as_bytes()),
        };
    }
    fn flush(&self) {}
}

/// Install the logger; `logfile`: Locust's `--logfile`, parent directories
/// created as Locust does.
fn init_logging(level: log::LevelFilter, logfile: Option<&str>) -> anyhow::Result<()> {
    use anyhow::Context;
    let file = match logfile {
        Some(path) => {
            headless::create_parent_dir(path)
                .with_context(|| format!("cannot create the directory for --logfile {path}"))?;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open --logfile {path}"))?;
            Some(std::sync::Mutex::new(f))
        }
        None => None,
    };
    // Leaked once: the logger lives as long as the process.
    let logger: &'static Logger = Box::leak(Box::new(Logger { file }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
    Ok(())
}
