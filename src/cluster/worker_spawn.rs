//! A worker's `spawn`: what the master asks is checked before anything is
//! started. The users must fit this worker's limits (`--max-users`, and
//! the open-files limit: each user holds a connection), the host must be
//! a URL, and the engine must start; what cannot be honoured is refused
//! with a log line and an `exception` to the master (which shows it in
//! its exceptions table), and the worker keeps its current users and its
//! connection. Every spawn's host applies: when it changes, the engine is
//! rebuilt on the new host and the old one stops in the background, so
//! the worker's loop (heartbeats) never waits for users to stop.
//!
//! It does not own the engine (`engine`) or the worker's loop (`worker`).

use std::time::{Duration, Instant};

use anyhow::Context;

use super::Worker;
use crate::cluster::protocol::WorkerMessage;
use crate::cluster::transport::DealerSocket;
use crate::engine::{Controller, OpenModel, RunControl, RunState, Workload};
use crate::http::Target;
use crate::limits;

impl Worker<'_> {
    /// The most users this worker can honour, and what sets it.
    fn user_limit(&self) -> (u32, String) {
        let mut limit = (u32::MAX, String::new());
        if let Some(nofile) = limits::open_files_limit() {
            let reserved = limits::reserved_files(self.cfg.shards);
            let users = u32::try_from(nofile.saturating_sub(reserved)).unwrap_or(u32::MAX);
            limit = (users, format!("the open-files limit of {nofile}"));
        }
        if let Some(max) = self.cfg.max_users {
            if max <= limit.0 {
                limit = (max, format!("--max-users {max}"));
            }
        }
        limit
    }

    /// Refuse a spawn: a log line (rate-limited: a master may ask again at
    /// every ramp step), an `exception` to the master, and the users we
    /// have confirmed, so the master's count stays true.
    fn refuse(&mut self, socket: &DealerSocket, why: String) {
        let line = format!("Refused a spawn from the master: {why}");
        self.warnings
            .warn("refused spawn", Instant::now(), || line.clone());
        self.send(
            socket,
            WorkerMessage::Exception {
                msg: format!("worker {} {line}", self.node_id),
                traceback: String::new(),
                count: 1,
            },
        );
        self.send(
            socket,
            WorkerMessage::SpawningComplete {
                user_classes_count: self.classes_count.clone(),
                user_count: self.user_count,
            },
        );
    }

    /// Hold exactly the users the master asks for, on the host it names;
    /// refuse what cannot be honoured.
    pub(super) fn spawn(
        &mut self,
        socket: &DealerSocket,
        wanted: Vec<(String, u32)>,
        host: Option<&str>,
    ) {
        // Counts come from the master: add without wrapping, and check
        // before anything is sized by them.
        let asked = wanted.iter().fold(0u32, |sum, w| sum.saturating_add(w.1));
        let (limit, because) = self.user_limit();
        if asked > limit {
            let why = format!("{asked} users, more than {limit} ({because})");
            return self.refuse(socket, why);
        }
        if let Err(e) = self.engine_for(host) {
            return self.refuse(socket, format!("{e:#}"));
        }
        let counts = self.local_counts(&wanted);
        let total = counts.iter().fold(0u32, |sum, n| sum.saturating_add(*n));
        if total != self.user_count {
            let classes: Vec<String> = (self.cfg.classes.iter().zip(&counts))
                .map(|(c, n)| format!("{}: {n}", c.name))
                .collect();
            log::info!("Running {total} users ({})", classes.join(", "));
        }
        if let Some(engine) = &self.engine {
            engine.set_class_counts(counts);
        }
        self.state = "running";
        self.classes_count = wanted;
        self.user_count = total;
        self.send(
            socket,
            WorkerMessage::SpawningComplete {
                user_classes_count: self.classes_count.clone(),
                user_count: total,
            },
        );
    }

    /// An open-model share: the first starts this worker's open model
    /// (its `start_open`), later ones change its rate (a re-split when
    /// workers join or leave, or a new target rate; the pool stays the
    /// first share's). A pool over this worker's limits is refused.
    pub(super) fn spawn_open(
        &mut self,
        socket: &DealerSocket,
        share: OpenModel,
        host: Option<&str>,
    ) {
        let (limit, because) = self.user_limit();
        if share.max_users > limit {
            let why = format!(
                "an open-model pool of {} users, more than {limit} ({because})",
                share.max_users
            );
            return self.refuse(socket, why);
        }
        let new_engine = match self.engine_for(host) {
            Ok(new) => new,
            Err(e) => return self.refuse(socket, format!("{e:#}")),
        };
        let Some(engine) = &self.engine else {
            return self.refuse(socket, "no engine".to_string());
        };
        match self.open_model {
            // A re-split changes the rate; the pool stays what the run
            // started with (the engine grows users lazily within it).
            Some(running) if !new_engine => {
                if running.rate != share.rate {
                    log::info!("Open model: {:.3} iterations/s", share.rate);
                    engine.set_arrival_rate(share.rate);
                }
            }
            _ => {
                log::info!(
                    "Open model: {:.3} iterations/s with a pool of {} users",
                    share.rate,
                    share.max_users
                );
                engine.start_open(share);
            }
        }
        match self.open_model.as_mut() {
            Some(running) if !new_engine => running.rate = share.rate,
            _ => self.open_model = Some(share),
        }
        self.state = "running";
        self.classes_count = super::idle_counts(self.cfg);
        self.user_count = engine.status().users;
        self.send(
            socket,
            WorkerMessage::SpawningComplete {
                user_classes_count: self.classes_count.clone(),
                user_count: self.user_count,
            },
        );
    }

    /// Users per local class for the master's per-class counts. A master
    /// that names classes this script lacks gets its total spread by our
    /// weights, as boomer does (warned once).
    fn local_counts(&mut self, wanted: &[(String, u32)]) -> Vec<u32> {
        let classes = &self.cfg.classes;
        let unknown: Vec<&str> = wanted
            .iter()
            .filter(|(name, n)| *n > 0 && !classes.iter().any(|c| &c.name == name))
            .map(|(name, _)| name.as_str())
            .collect();
        if unknown.is_empty() {
            return classes
                .iter()
                .map(|c| wanted.iter().find(|(n, _)| *n == c.name).map_or(0, |w| w.1))
                .collect();
        }
        // Counts come from the master: add without wrapping.
        let total = wanted.iter().fold(0u32, |sum, w| sum.saturating_add(w.1));
        if !self.warned_classes {
            self.warned_classes = true;
            log::warn!(
                "The master asks for user classes this worker does not have ({}): running its {total} users by this worker's class weights",
                unknown.join(", ")
            );
        }
        self.dispatcher.counts(total)
    }

    /// An engine loading `host` (or the worker's own target): started at
    /// the first spawn, rebuilt when a spawn names another host. Returns
    /// whether a new engine was started.
    fn engine_for(&mut self, host: Option<&str>) -> anyhow::Result<bool> {
        // A spawn without a host keeps the current one, as Locust's worker
        // keeps `environment.host`.
        // The worker's own URLs win over the master's host (which then
        // need not even be a URL).
        let own_urls =
            matches!(&self.cfg.workload, Workload::Raw { targets, .. } if !targets.is_empty());
        let host = if own_urls {
            None
        } else {
            host.or(self.engine_host.as_deref())
        };
        if self.engine.is_some() && host == self.engine_host.as_deref() {
            return Ok(false);
        }
        let workload = workload_with_host(&self.cfg.workload, host)?;
        let mut engine_cfg = self.cfg.engine_config(Some(self.tap_tx.clone()));
        engine_cfg.open_tap = Some(self.open_tap_tx.clone());
        engine_cfg.workload = workload;
        let engine = Controller::launch(engine_cfg).context("cannot start the users' engine")?;
        log::info!(
            "Engine up: {} shard(s) on {}, loading {}",
            engine.shards(),
            engine.io_driver().as_str(),
            host.unwrap_or("the worker's own target")
        );
        if let Some(old) = self.engine.replace(engine) {
            log::info!("The master names a new host: users move to it");
            retire(old, self.cfg.stop_timeout);
        }
        self.engine_host = host.map(str::to_string);
        Ok(true)
    }
}

/// Stop an engine's users and shut it down on a thread of its own: its
/// last requests still reach the report through the shared tap.
fn retire(engine: Controller, stop_timeout: Duration) {
    let spawned = std::thread::Builder::new()
        .name("locusta-retire".into())
        .spawn(move || {
            engine.stop();
            engine.wait_for(RunState::Stopped, stop_timeout + Duration::from_secs(2));
            engine.shutdown();
        });
    if let Err(e) = spawned {
        log::warn!("cannot stop the previous engine in the background: {e}");
    }
}

/// The workload with the master's host, as a Locust worker takes
/// `environment.host` from each spawn. Raw URLs given to the worker stay.
pub(super) fn workload_with_host(
    workload: &Workload,
    host: Option<&str>,
) -> anyhow::Result<Workload> {
    let parsed = host
        .map(Target::parse)
        .transpose()
        .with_context(|| format!("the master's host {host:?} is not a URL"))?;
    Ok(match (workload.clone(), parsed) {
        // The worker's own raw-mode request flags (--method, --header, …)
        // stay: Locust's protocol carries only the host.
        (Workload::Raw { targets, options }, Some(t)) if targets.is_empty() => Workload::Raw {
            targets: vec![t],
            options,
        },
        (Workload::Raw { targets, .. }, _) if targets.is_empty() => {
            anyhow::bail!("no URL to load: give this worker a URL or -H, or give the master -H")
        }
        (
            Workload::Script {
                source,
                tags,
                default_host,
            },
            parsed,
        ) => Workload::Script {
            source,
            tags,
            default_host: parsed.or(default_host),
        },
        (w, _) => w,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RawOptions;
    use crate::http::Method;

    #[test]
    fn the_masters_host_keeps_the_workers_request_flags() {
        let own = Workload::Raw {
            targets: Vec::new(),
            options: RawOptions {
                method: Method::Put,
                headers: vec![("X-A".into(), "1".into())],
                pipeline: 4,
                ..RawOptions::default()
            },
        };
        let Workload::Raw { targets, options } =
            workload_with_host(&own, Some("http://127.0.0.1:8089/x")).unwrap()
        else {
            panic!("not raw");
        };
        assert_eq!(targets[0].origin, "http://127.0.0.1:8089");
        assert_eq!(
            (options.method, options.pipeline, options.headers.len()),
            (Method::Put, 4, 1)
        );
    }
}
