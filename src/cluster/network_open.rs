//! Workers joining (`client_ready`: versions refused, and Python workers
//! refused during an open-model run), and the master's side of the open
//! model (an arrival-rate run): starting
//! one (refused, naming them, while Python workers are connected), giving
//! each locusta worker its share of the rate and pool in `spawn`, changing
//! the rate, and merging the workers' open-model report parts.
//!
//! It does not own the split rule (`master::split_open`) nor the payload
//! (`open_report`).

use std::time::{Instant, SystemTime};

use super::super::master::{lock, Shared};
use super::super::nodes::NodeState;
use super::super::open_report::OpenReport;
use super::super::protocol::{MasterMessage, PeerVersion, LOCUSTA_PROTOCOL, LOCUST_VERSION};
use super::super::report_checks::MAX_RUN_COUNT;
use super::{unix_now, Network};
use crate::engine::{OpenModel, RunState};
use crate::stats::OpenModelStats;

impl Network {
    /// A worker says ready: refused when its version cannot join (or,
    /// during an open-model run, when it is a Python worker), else acked.
    pub(super) fn client_ready(&mut self, from: &str, version: PeerVersion, now: Instant) {
        let refusal = match &version {
            PeerVersion::Locusta { protocol, version, .. } if *protocol != LOCUSTA_PROTOCOL => Some(format!(
                "locusta {version} speaks cluster protocol {protocol}; this master (locusta {}) speaks {LOCUSTA_PROTOCOL}: run the same locusta version on master and workers",
                env!("CARGO_PKG_VERSION")
            )),
            PeerVersion::Locust(v) if !v.starts_with("2.") => Some(format!(
                "Locust {v} is not supported: this master speaks Locust {LOCUST_VERSION}'s protocol (any 2.x worker works)"
            )),
            PeerVersion::Unusable(v) => Some(format!(
                "worker sent no usable version ({v}): pre-2.0 Locust workers are not supported"
            )),
            _ => None,
        };
        if let Some(reason) = refusal {
            log::error!("Refused worker {from}: {reason}");
            self.send(MasterMessage::Refused { reason }, from);
            self.send(MasterMessage::Quit, from);
            return;
        }
        if let PeerVersion::Locust(v) = &version {
            if !v.starts_with(&LOCUST_VERSION[..4]) {
                log::warn!(
                    "Worker {from} runs Locust {v}; this master speaks {LOCUST_VERSION}'s protocol"
                );
            }
        }
        let capacity = match version {
            PeerVersion::Locusta { shards, .. } => Some(shards),
            _ => None,
        };
        if capacity.is_none() && self.open_model.is_some() {
            let reason = "this master runs an open-model run (--arrival-rate), which Locust (Python) workers cannot run: join with a locusta worker".to_string();
            log::error!("Refused worker {from}: {reason}");
            self.send(MasterMessage::Refused { reason }, from);
            self.send(MasterMessage::Quit, from);
            return;
        }
        let index = self.nodes.register(from, capacity, now);
        self.send(
            MasterMessage::Ack {
                index,
                locusta_protocol: Some(LOCUSTA_PROTOCOL),
            },
            from,
        );
        log::info!(
            "Worker {from} (index {index}) reported as ready. {} workers connected.",
            self.nodes.connected()
        );
        self.redistribute();
    }

    /// Start an open-model run: refused (an error naming them, nothing
    /// starts) while Python workers are connected; else fresh stats and
    /// every worker its share.
    pub(super) fn start_open(&mut self, model: OpenModel, state: RunState) {
        let python: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| !n.locusta && n.state != NodeState::Missing)
            .map(|n| n.id.clone())
            .collect();
        if let Some(why) = super::super::master::refusal(&python) {
            log::error!("Refused to start: {why}");
            return;
        }
        self.fresh_stats(
            state,
            Some(OpenModelStats::new(model.rate, model.max_users)),
        );
        if self.nodes.dispatch_order().is_empty() {
            log::warn!("Starting with no worker connected: the rate goes to workers as they join");
        }
        self.open_model = Some(model);
        self.target = model.max_users;
        self.next_ramp = None;
        self.set_state(RunState::Running);
        let order = self.nodes.dispatch_order();
        let shards: u32 = order
            .iter()
            .filter_map(|id| self.nodes.get(id))
            .map(|n| n.capacity)
            .sum();
        log::info!(
            "Open model: {} iterations/s with a pool of {} users, split over {} workers by their shards ({shards} in all)",
            model.rate,
            model.max_users,
            order.len()
        );
        self.dispatch();
    }

    pub(super) fn set_arrival_rate(&mut self, rate: f64) {
        let Some(model) = self.open_model.as_mut() else {
            log::warn!("the arrival rate can only change in an open-model run");
            return;
        };
        if !(rate > 0.0 && rate <= crate::engine::MAX_ARRIVAL_RATE) {
            log::warn!("ignored an arrival rate of {rate}/s");
            return;
        }
        model.rate = rate;
        if let Some(open) = lock(&self.shared).open.as_mut() {
            open.set_rate(rate);
        }
        self.dispatch();
    }

    /// Open model: every worker that takes users its share of the rate
    /// and pool by its capacity (no class counts: the engine's scheduler
    /// picks users).
    pub(super) fn dispatch_open(&mut self, model: OpenModel) {
        let order = self.nodes.dispatch_order();
        let capacities: Vec<u32> = order
            .iter()
            .map(|id| self.nodes.get(id).map_or(1, |n| n.capacity))
            .collect();
        let shares = super::super::master::split_open(model, &capacities);
        let timestamp = unix_now().max(self.last_spawn_timestamp + 1e-6);
        self.last_spawn_timestamp = timestamp;
        for (id, share) in order.iter().zip(shares) {
            let spawn = MasterMessage::Spawn {
                timestamp,
                user_classes_count: self.classes.iter().map(|c| (c.name.clone(), 0)).collect(),
                host: self.host.clone(),
                stop_timeout: Some(self.stop_timeout),
                open_model: Some(share),
            };
            self.send(spawn, id);
        }
    }
}

/// A report's open-model part, merged into the run's open-model stats
/// (the report as a whole already passed its checks); ignored outside an
/// open-model run.
pub(super) fn merge_open(part: &OpenReport, shared: &mut Shared) -> Result<(), String> {
    let Some(open) = shared.open.as_mut() else {
        return Ok(());
    };
    let corrected = open.total_requests();
    if corrected.saturating_add(part.request_count()) > MAX_RUN_COUNT {
        return Err(format!(
            "the run's corrected request count ({corrected}) would pass 2^62"
        ));
    }
    let mut delta = part.to_delta(SystemTime::now());
    open.merge(&mut delta);
    Ok(())
}
