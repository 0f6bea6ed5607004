//! Decoding large messages off the master's network thread. A report of
//! a thousand names is megabytes of msgpack and decoding one costs up to
//! a second (a hostile one of nils, far more): meanwhile heartbeats would
//! go unanswered and workers would be declared missing. Messages above
//! [`DECODE_ASIDE`] go to one decoding thread through a short queue; the
//! network thread picks the results up on its next turn. A peer with a
//! message in the queue has its later ones queued too, so its messages are
//! still handled in the order it sent them.
//!
//! It does not own what messages mean (`network`) or their format
//! (`protocol`).

use std::collections::HashMap;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TrySendError};

use super::report_decode::{decode_from_worker, FromWorker};

/// Messages bigger than this are decoded aside (small ones take
/// microseconds inline).
pub const DECODE_ASIDE: usize = 256 << 10;

/// Messages waiting to be decoded; past this the next is refused, so a
/// flood of big messages holds a bounded amount of memory.
const QUEUE: usize = 8;

type Decoded = (String, FromWorker);

pub struct Decoder {
    to_thread: Sender<(String, Vec<u8>)>,
    from_thread: Receiver<Decoded>,
    /// Messages in the queue or being decoded, per peer.
    pending: HashMap<String, usize>,
}

impl Decoder {
    pub fn start() -> std::io::Result<Decoder> {
        let (to_thread, input) = bounded::<(String, Vec<u8>)>(QUEUE);
        let (output, from_thread) = unbounded();
        std::thread::Builder::new()
            .name("locusta-decode".into())
            .spawn(move || {
                // Ends when the network thread drops its sender.
                for (from, bytes) in input {
                    let decoded = decode_from_worker(&bytes);
                    drop(bytes);
                    if output.send((from, decoded)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Decoder {
            to_thread,
            from_thread,
            pending: HashMap::new(),
        })
    }

    /// Whether `from`'s next message must go through the queue (it is big,
    /// or an earlier one of the same peer is still there).
    pub fn must_queue(&self, from: &str, len: usize) -> bool {
        len > DECODE_ASIDE || self.pending.contains_key(from)
    }

    /// Queue a message; `false` (the message is dropped) when the queue is
    /// full.
    pub fn submit(&mut self, from: &str, payload: Vec<u8>) -> bool {
        match self.to_thread.try_send((from.to_string(), payload)) {
            Ok(()) => {
                *self.pending.entry(from.to_string()).or_default() += 1;
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// A decoded message, if one is ready.
    pub fn try_recv(&mut self) -> Option<Decoded> {
        let (from, decoded) = self.from_thread.try_recv().ok()?;
        if let Some(n) = self.pending.get_mut(&from) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(&from);
            }
        }
        Some((from, decoded))
    }

    /// Messages still being decoded.
    pub fn busy(&self) -> bool {
        !self.pending.is_empty()
    }
}
