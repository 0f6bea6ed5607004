//! A scripted worker: a real DEALER that speaks the protocol by hand, for
//! tests (exact percentiles, refusals, malformed input) and the master
//! benchmark (a thousand of them in one process). Not a worker: it runs
//! no users and sends only what its caller tells it to.

use std::time::{Duration, Instant};

use super::protocol::{locusta_client_ready, MasterMessage, PeerVersion, WorkerMessage};
use super::transport::{new_node_id, DealerSocket, TransportError};

pub struct SimWorker {
    pub node_id: String,
    socket: DealerSocket,
}

impl SimWorker {
    /// Connect (libzmq connects in the background; nothing is sent yet).
    pub fn connect(ctx: &zmq::Context, host: &str, port: u16) -> Result<Self, TransportError> {
        let node_id = new_node_id();
        let socket = DealerSocket::connect(ctx, &node_id, host, port)?;
        Ok(SimWorker { node_id, socket })
    }

    pub fn send(&self, msg: WorkerMessage) {
        self.socket.send(&msg.to_message(&self.node_id));
    }

    pub fn send_bytes(&self, payload: &[u8]) {
        self.socket.send_bytes(payload);
    }

    /// The next message from the master within `timeout`; malformed ones
    /// are skipped.
    pub fn recv(&self, timeout: Duration) -> Option<MasterMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(msg) = self.socket.try_recv() {
                if let Ok(m) = msg.and_then(|m| MasterMessage::parse(&m)) {
                    return Some(m);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.socket.poll(left.min(Duration::from_millis(50)));
        }
    }

    /// Say `client_ready` with `version` until the master answers (or
    /// `timeout`); returns the answer (`ack`, or a refusal).
    pub fn join_as(&self, version: PeerVersion, timeout: Duration) -> Option<MasterMessage> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.send(WorkerMessage::ClientReady(version.clone()));
            if let Some(m) = self.recv(Duration::from_millis(500)) {
                return Some(m);
            }
        }
        None
    }

    /// Join many at once: everyone says `client_ready`, then the acks are
    /// collected (joining one by one, the first would go missing while
    /// the last join). Returns how many were acked.
    pub fn join_all(sims: &[SimWorker], timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut acked = vec![false; sims.len()];
        while Instant::now() < deadline && acked.iter().any(|a| !a) {
            for (sim, done) in sims.iter().zip(&acked) {
                if !done {
                    sim.send(WorkerMessage::ClientReady(locusta_client_ready(1)));
                }
            }
            let round = Instant::now() + Duration::from_secs(2);
            while Instant::now() < round && acked.iter().any(|a| !a) {
                for (sim, done) in sims.iter().zip(acked.iter_mut()) {
                    while let Some(m) = sim.recv(Duration::ZERO) {
                        *done |= matches!(m, MasterMessage::Ack { .. });
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        acked.iter().filter(|a| **a).count()
    }

    /// Join as a locusta worker of this version.
    pub fn join(&self, timeout: Duration) -> bool {
        matches!(
            self.join_as(locusta_client_ready(1), timeout),
            Some(MasterMessage::Ack { .. })
        )
    }
}
