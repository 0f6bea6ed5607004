//! Where a Lua request's response goes while it arrives: the sink that
//! collects headers and body into reusable buffers (helper of
//! `client_request`), and the body limit (`--max-body-size`): past it the
//! sink stops collecting, frees what it had and wakes the request, which
//! abandons the exchange instead of reading an endless body.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::client_response::push_header;
use crate::http::ResponseSink;

/// Collects the response's headers and body into reusable buffers, and
/// holds the request target while the request is in flight.
#[derive(Default)]
pub(crate) struct Sink {
    pub(super) heads: Vec<u8>,
    pub(super) body: Vec<u8>,
    pub(super) path: String,
    /// The request's bytes between requests: lent to the connection for
    /// the send and taken back after it, so a user in think time holds no
    /// request buffer (its connection's is empty); see `client_build::prepare`.
    pub(super) request: Vec<u8>,
    /// `--max-body-size`, set per request.
    pub(super) limit: usize,
    pub(super) over: Rc<Overflow>,
}

impl ResponseSink for Sink {
    fn header(&mut self, name: &str, value: &[u8]) {
        push_header(&mut self.heads, name, value);
    }
    fn body(&mut self, data: &[u8]) {
        if self.over.hit.get() {
            return;
        }
        if self.body.len().saturating_add(data.len()) > self.limit {
            // Free what was collected now: the exchange is abandoned.
            self.body = Vec::new();
            self.over.trip();
            return;
        }
        self.body.extend_from_slice(data);
    }
}

/// Set by the sink when the body passes the limit; wakes the request so it
/// abandons the exchange instead of reading an endless body.
#[derive(Default)]
pub(crate) struct Overflow {
    pub(super) hit: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Overflow {
    fn trip(&self) {
        self.hit.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

/// Resolves once the sink's body passed the limit.
pub(super) struct OverflowHit<'a>(pub(super) &'a Overflow);

impl Future for OverflowHit<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.hit.get() {
            return Poll::Ready(());
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}
