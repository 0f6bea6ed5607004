//! The master's list of workers and how users are spread over them.
//!
//! Owns each worker's state as the master knows it (Locust's `WorkerNode`:
//! ready, spawning, running, stopped, missing), liveness, and the order in
//! which workers take users: interleaved by host (the part of the node id
//! before `_`), so a class's users spread over machines before they double
//! up on one, as Locust's dispatcher does. It does not own sockets or what
//! the master does when a worker changes state (`master`).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::engine::WorkerInfo;

/// A worker silent this long is missing and loses its users.
pub const MISSING_AFTER: Duration = Duration::from_secs(3);
/// A missing worker this long is forgotten (Locust: about 60 s).
pub const FORGET_AFTER: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Ready,
    Spawning,
    Running,
    Stopped,
    Missing,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Ready => "ready",
            NodeState::Spawning => "spawning",
            NodeState::Running => "running",
            NodeState::Stopped => "stopped",
            NodeState::Missing => "missing",
        }
    }

    /// A heartbeat's `state`; Locust's "init" and unknown words are ready.
    pub fn from_heartbeat(s: &str) -> NodeState {
        match s {
            "spawning" => NodeState::Spawning,
            "running" => NodeState::Running,
            "stopped" | "stopping" | "cleanup" => NodeState::Stopped,
            _ => NodeState::Ready,
        }
    }
}

/// What the master still waits for from a worker it told to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopWait {
    Nothing,
    /// `client_stopped` (a locusta worker sends its last stats before it).
    ClientStopped,
    /// A Python worker sends no stats on stop: its next periodic report
    /// carries the last requests.
    StatsAfterStop,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub id: String,
    pub index: u32,
    pub state: NodeState,
    pub last_seen: Instant,
    /// A locusta worker (sends HDR buckets and final stats before
    /// `client_stopped`), not a Python one.
    pub locusta: bool,
    /// The shards a locusta worker announced (1 for a Python worker): its
    /// share of an open-model run's rate and pool.
    pub capacity: u32,
    pub users: u32,
    pub cpu_percent: f64,
    /// The high-CPU warning was logged (once per worker, as Locust).
    pub cpu_warned: bool,
    pub memory_bytes: u64,
    pub stop_wait: StopWait,
}

impl Node {
    fn host(&self) -> &str {
        self.id.split('_').next().unwrap_or("")
    }

    /// Takes users when a swarm is dispatched.
    pub fn takes_users(&self) -> bool {
        matches!(
            self.state,
            NodeState::Ready | NodeState::Spawning | NodeState::Running
        )
    }
}

#[derive(Default)]
pub struct Nodes {
    nodes: Vec<Node>,
    /// A node id keeps its index when it leaves and comes back.
    indexes: HashMap<String, u32>,
}

impl Nodes {
    /// Register (or re-register) a worker as ready; returns its index.
    /// A worker that said `client_ready`; `capacity`: `Some(shards)` for a
    /// locusta worker, `None` for a Python one.
    pub fn register(&mut self, id: &str, capacity: Option<u32>, now: Instant) -> u32 {
        let next = self.indexes.len() as u32;
        let index = *self.indexes.entry(id.to_string()).or_insert(next);
        let node = Node {
            id: id.to_string(),
            index,
            state: NodeState::Ready,
            last_seen: now,
            locusta: capacity.is_some(),
            capacity: capacity.unwrap_or(1).max(1),
            users: 0,
            cpu_percent: 0.0,
            cpu_warned: false,
            memory_bytes: 0,
            stop_wait: StopWait::Nothing,
        };
        match self.nodes.iter_mut().find(|n| n.id == id) {
            // A Python worker says ready again at once after a stop; its
            // last report is still to come.
            Some(n) => {
                let stop_wait = n.stop_wait;
                *n = node;
                n.stop_wait = stop_wait;
            }
            None => self.nodes.push(node),
        }
        index
    }

    pub fn get(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.id == id)
    }

    pub fn remove(&mut self, id: &str) -> Option<Node> {
        let i = self.nodes.iter().position(|n| n.id == id)?;
        Some(self.nodes.remove(i))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Node> {
        self.nodes.iter_mut()
    }

    /// Workers that take users, in dispatch order: the first worker of
    /// each host (hosts by name), then the second of each, and so on.
    pub fn dispatch_order(&self) -> Vec<String> {
        let mut by_host: BTreeMap<&str, Vec<&Node>> = BTreeMap::new();
        for n in self.nodes.iter().filter(|n| n.takes_users()) {
            by_host.entry(n.host()).or_default().push(n);
        }
        for list in by_host.values_mut() {
            list.sort_by_key(|n| n.index);
        }
        let mut order = Vec::new();
        for round in 0.. {
            let before = order.len();
            for list in by_host.values() {
                if let Some(n) = list.get(round) {
                    order.push(n.id.clone());
                }
            }
            if order.len() == before {
                break;
            }
        }
        order
    }

    /// Mark workers silent for [`MISSING_AFTER`] as missing (returns their
    /// ids) and forget those missing for [`FORGET_AFTER`].
    pub fn check_liveness(&mut self, now: Instant) -> Vec<String> {
        let mut missing = Vec::new();
        for n in &mut self.nodes {
            let silent = now.saturating_duration_since(n.last_seen);
            if n.state != NodeState::Missing && silent > MISSING_AFTER {
                n.state = NodeState::Missing;
                n.users = 0;
                n.stop_wait = StopWait::Nothing;
                missing.push(n.id.clone());
            }
        }
        self.nodes.retain(|n| {
            n.state != NodeState::Missing
                || now.saturating_duration_since(n.last_seen) < FORGET_AFTER
        });
        missing
    }

    /// Users the workers say they run.
    pub fn user_count(&self) -> u32 {
        self.nodes
            .iter()
            .fold(0u32, |sum, n| sum.saturating_add(n.users))
    }

    /// Workers that are connected (not missing).
    pub fn connected(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.state != NodeState::Missing)
            .count()
    }

    pub fn waiting_for_stop(&self) -> bool {
        self.nodes.iter().any(|n| n.stop_wait != StopWait::Nothing)
    }

    pub fn infos(&self) -> Vec<WorkerInfo> {
        self.nodes
            .iter()
            .map(|n| WorkerInfo {
                id: n.id.clone(),
                state: n.state.as_str().to_string(),
                users: n.users,
                cpu_percent: n.cpu_percent,
                memory_bytes: n.memory_bytes,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_interleaves_hosts() {
        let now = Instant::now();
        let mut nodes = Nodes::default();
        for id in ["b_1", "b_2", "a_1", "a_2", "c_1"] {
            nodes.register(id, Some(1), now);
        }
        assert_eq!(nodes.dispatch_order(), ["a_1", "b_1", "c_1", "a_2", "b_2"]);
        nodes.get_mut("b_1").unwrap().state = NodeState::Missing;
        assert_eq!(nodes.dispatch_order(), ["a_1", "b_2", "c_1", "a_2"]);
    }

    #[test]
    fn silent_workers_go_missing_then_are_forgotten() {
        let start = Instant::now();
        let mut nodes = Nodes::default();
        nodes.register("h_1", Some(1), start);
        nodes.register("h_2", Some(1), start);
        nodes.get_mut("h_1").unwrap().users = 5;
        nodes.get_mut("h_2").unwrap().last_seen = start + Duration::from_secs(3);
        let missing = nodes.check_liveness(start + Duration::from_millis(3500));
        assert_eq!(missing, ["h_1"]);
        assert_eq!(nodes.user_count(), 0);
        assert_eq!(nodes.connected(), 1);
        assert!(nodes
            .check_liveness(start + Duration::from_secs(4))
            .is_empty());
        nodes.check_liveness(start + Duration::from_secs(61));
        assert!(nodes.iter().all(|n| n.id != "h_1"));
    }

    #[test]
    fn claimed_user_counts_add_without_wrapping() {
        let now = Instant::now();
        let mut nodes = Nodes::default();
        nodes.register("h_1", Some(1), now);
        nodes.register("h_2", None, now);
        nodes.get_mut("h_1").unwrap().users = u32::MAX;
        nodes.get_mut("h_2").unwrap().users = 7;
        assert_eq!(nodes.user_count(), u32::MAX);
    }

    #[test]
    fn a_returning_worker_keeps_its_index() {
        let now = Instant::now();
        let mut nodes = Nodes::default();
        assert_eq!(nodes.register("h_1", Some(1), now), 0);
        assert_eq!(nodes.register("h_2", Some(1), now), 1);
        nodes.remove("h_1");
        assert_eq!(nodes.register("h_1", Some(1), now), 0);
        assert_eq!(nodes.register("h_3", Some(1), now), 2);
    }
}
