//! Raw mode's part of a run's configuration (no script): the URLs, which
//! must share one origin, and the request the flags describe (method,
//! headers, body, pipelining, redirects). It does not own the flags
//! (`cli`) nor the request loop (`engine::raw`).

use super::ConfigError;
use crate::cli::{self, Cli};
use crate::engine::RawOptions;
use crate::http::Target;

/// The raw-mode request flags set on this command line (with -f they are
/// refused rather than silently ignored).
pub(super) fn raw_flags_given(cli: &Cli) -> Vec<&'static str> {
    let given = [
        ("--method", cli.method.is_some()),
        ("-d/--data", cli.data.is_some()),
        ("--data-file", cli.data_file.is_some()),
        ("--header", !cli.headers.is_empty()),
        ("--pipeline", cli.pipeline.is_some()),
        ("--follow-redirects", cli.follow_redirects),
    ];
    given.iter().filter(|g| g.1).map(|g| g.0).collect()
}

/// Raw mode's request: `--method` (default GET, or POST when there is a
/// body, as curl does), `--header`s, and the body of `-d` or `--data-file`.
pub(super) fn raw_options(cli: &Cli) -> Result<RawOptions, ConfigError> {
    let body: Vec<u8> = match (&cli.data, &cli.data_file) {
        (Some(d), _) => d.clone().into_bytes(),
        (None, Some(path)) => read_body(path)?,
        (None, None) => Vec::new(),
    };
    let pipeline = cli.pipeline.unwrap_or(1);
    if pipeline > 1 && cli.follow_redirects {
        return Err(ConfigError::PipelineWithRedirects(pipeline));
    }
    // Each shard holds one batch per URL: keep it a sane size.
    if body.len().saturating_mul(pipeline as usize) > MAX_RAW_BODY {
        return Err(ConfigError::BatchTooLarge {
            body: body.len(),
            depth: pipeline,
        });
    }
    let has_body = cli.data.is_some() || cli.data_file.is_some();
    let default_method = if has_body {
        crate::http::Method::Post
    } else {
        crate::http::Method::Get
    };
    Ok(RawOptions {
        method: cli.method.unwrap_or(default_method),
        headers: cli.headers.clone(),
        body: body.into(),
        pipeline,
        follow_redirects: cli.follow_redirects,
    })
}

/// The largest raw-mode body, and batch of pipelined bodies: every shard
/// keeps a serialized copy.
pub(super) const MAX_RAW_BODY: usize = 64 << 20;

/// `--data-file`, read once, at most [`MAX_RAW_BODY`] (so `/dev/zero` or a
/// huge file is refused rather than read until memory runs out).
fn read_body(path: &str) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    let err = |reason: String| ConfigError::DataFile {
        path: path.to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut body = Vec::new();
    file.take(MAX_RAW_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| err(e.to_string()))?;
    if body.len() > MAX_RAW_BODY {
        return Err(err(format!("larger than {} MiB", MAX_RAW_BODY >> 20)));
    }
    Ok(body)
}

/// Raw mode: the positional URLs (or paths on --host), one origin.
pub(super) fn raw_targets(cli: &Cli) -> Result<Vec<Target>, ConfigError> {
    let mut targets = Vec::new();
    for u in &cli.urls {
        let full = if cli::is_url(u) {
            u.clone()
        } else {
            let host = cli
                .host
                .as_deref()
                .ok_or_else(|| ConfigError::PathWithoutHost(u.clone()))?;
            format!(
                "{}/{}",
                host.trim_end_matches('/'),
                u.trim_start_matches('/')
            )
        };
        targets.push(Target::parse(&full)?);
    }
    if targets.is_empty() {
        match &cli.host {
            Some(h) => targets.push(Target::parse(h)?),
            // A worker may get its host from the master, and a master
            // that names none leaves it to its workers.
            None if cli.master || cli.worker => return Ok(targets),
            None => return Err(ConfigError::NoTarget),
        }
    }
    if let Some(other) = targets.iter().find(|t| t.origin != targets[0].origin) {
        return Err(ConfigError::MixedOrigins {
            first: targets[0].origin.clone(),
            other: other.origin.clone(),
        });
    }
    Ok(targets)
}
