//! Raw mode with `--pipeline N`: each user writes N requests at once on its
//! connection and reads their N responses in order (wrk's pipeline.lua),
//! then the next N. Each request is timed from the batch's send to its own
//! response, and every request written is counted once: a success, or the
//! failure that ended its batch (see `http::pipeline`). Connect backoff and
//! stop signals are `run_raw_user`'s.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use super::user::{record, ConnectBackoff, RawPlan, StopSignal};
use crate::http::{Connection, DiscardBody};
use crate::stats::ShardStats;

/// The pipelined raw loop: batches in turn until asked to stop. `first`
/// spreads users over the URLs as in `run_raw_user`.
pub async fn run_pipelined_user(
    plan: Rc<RawPlan>,
    stats: Rc<RefCell<ShardStats>>,
    stop: Rc<StopSignal>,
    first: usize,
) {
    let mut conn = Connection::to(plan.endpoint.clone(), plan.client.clone());
    let n = plan.requests.len();
    let depth = plan.options.pipeline.max(1) as usize;
    let mut i = first % n;
    let mut started = Instant::now();
    let mut backoff = ConnectBackoff::default();
    while !stop.stopping() {
        let Some(batch) = plan.batches.get(i) else {
            return; // a plan without batches is not a pipelined one
        };
        let connects_before = (conn.is_connected(), conn.connects());
        let mut k = 0usize;
        let mut failed = false;
        let mut ended = started;
        let method = plan.options.method;
        conn.send_pipelined(started, batch, depth, method, &mut DiscardBody, |result| {
            ended = Instant::now();
            let micros = ended.duration_since(started).as_micros() as u64;
            let entry = plan.requests[(i + k) % n].entry;
            k += 1;
            failed |= record(&mut stats.borrow_mut(), entry, micros, result);
        })
        .await;
        // One clock read per response: a batch ends when the next starts.
        started = ended;
        let connect_failed = !connects_before.0 && conn.connects() == connects_before.1;
        if backoff.pace(&stop, connect_failed, failed).await {
            started = Instant::now();
        }
        i = (i + depth) % n;
    }
}
