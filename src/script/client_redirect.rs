//! Following redirects for a Lua request (helper of `client_request`),
//! with the pure rules of [`crate::http::redirect`].
//!
//! Owns the chain after the first response: each hop's `Set-Cookie`s go
//! into the jar before the next hop is built (so they apply to it), the
//! intermediate body is read and discarded (the connection stays usable),
//! the next hop goes on the user's connection for its origin (the
//! client's cache of other origins keeps it), the body and `Content-Type`
//! are dropped when the method becomes GET (301/302/303, as requests),
//! `Authorization` is dropped once the chain leaves the first origin (as
//! requests), and the hops are counted: past [`MAX_REDIRECTS`] the chain
//! ends as `too many redirects (10)`, an unusable `Location` as `invalid
//! redirect Location '…'`. The whole chain shares the request's timeout,
//! counted from the first send, and each hop's body the `--max-body-size`
//! limit. It does not own recording (the chain is one request, recorded by
//! `client_request` under the first name), nor building a hop
//! (`client_build`).
//!
//! A request whose first response is not a redirect never enters this
//! module: the check is one status comparison.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::client::{Client, Dest};
use super::client_build::{prepare, HopRules, Opts};
use super::client_request::{exchange, recycle, take_cookies};
use super::client_response::headers;
use super::client_sink::Sink;
use crate::http::redirect::{self, RedirectError, MAX_REDIRECTS};
use crate::http::{HttpError, Method, ResponseInfo};

/// Where a request (or its chain) ended up.
pub(super) struct Done {
    /// The first request's method (the stats entry's).
    pub(super) method: Method,
    /// This hop's method.
    pub(super) hop_method: Method,
    /// `None`: abandoned past the body limit.
    pub(super) result: Option<Result<ResponseInfo, HttpError>>,
    pub(super) dest: Rc<Dest>,
    pub(super) sink: Sink,
    /// The last hop needed a connect and none succeeded.
    pub(super) connect_failed: bool,
    /// The earlier responses: status and URL.
    pub(super) history: Vec<(u16, Box<str>)>,
    /// Why the chain stopped without a final response (a failure).
    pub(super) fault: Option<Box<str>>,
}

impl Done {
    /// Whether the response is a redirect to follow: a redirect status
    /// with a `Location` (one without is the response, as in requests).
    pub(super) fn is_redirect(&self) -> bool {
        // A body past the limit may trip the sink in the same poll that
        // completes the exchange: that is the chain's (failed) end.
        match &self.result {
            Some(Ok(info)) => {
                redirect::is_redirect(info.status)
                    && !self.sink.over.hit.get()
                    && location(&self.sink.heads).is_some()
            }
            _ => false,
        }
    }
}

/// The `Location` header's value.
fn location(heads: &[u8]) -> Option<&[u8]> {
    headers(heads)
        .find(|(n, _)| *n == b"location")
        .map(|(_, v)| v)
}

/// Follow the chain from `done` (a redirect) to its end.
pub(super) async fn follow(
    client: &Client,
    opts: &Opts,
    started: Instant,
    timeout: Duration,
    mut done: Done,
) -> Done {
    let first_origin = redirect::origin_of(&url_of(&done.dest, &done.sink));
    let mut rules = HopRules {
        first: false,
        body: true,
        auth: true,
    };
    loop {
        if !done.is_redirect() {
            return done;
        }
        let status = match &done.result {
            Some(Ok(info)) => info.status,
            _ => return done,
        };
        let url = url_of(&done.dest, &done.sink);
        let loc = location(&done.sink.heads).map(String::from_utf8_lossy);
        let hop = match redirect::next_hop(status, done.hop_method, loc.as_deref(), &url) {
            Ok(Some(hop)) => hop,
            Ok(None) => return done,
            Err(e) => return fail(done, e.to_string()),
        };
        if done.history.len() >= MAX_REDIRECTS as usize {
            return fail(done, RedirectError::TooMany(MAX_REDIRECTS).to_string());
        }
        take_cookies(client, &done.sink.heads);
        rules.body &= hop.keep_body;
        rules.auth &= redirect::origin_of(&hop.url) == first_origin;

        // A hop that cannot be built (a name that does not resolve) ends
        // the chain as a failure, with the last response's URL.
        let (dest, conn, mut sink) = match prepare(client, hop.method, &hop.url, opts, rules) {
            Ok(x) => x,
            Err(mlua::Error::RuntimeError(m)) => return fail(done, m),
            Err(e) => return fail(done, e.to_string()),
        };
        recycle(&client.shared, done.sink);
        done.history.push((status, url.into()));
        let (result, connect_failed) =
            exchange(&dest, conn, &mut sink, hop.method, started, timeout).await;
        done = Done {
            method: done.method,
            hop_method: hop.method,
            result,
            dest,
            sink,
            connect_failed,
            history: done.history,
            fault: None,
        };
    }
}

fn fail(mut done: Done, why: String) -> Done {
    done.fault = Some(why.into());
    done
}

/// The absolute URL a hop was sent to.
fn url_of(dest: &Dest, sink: &Sink) -> String {
    format!("{}{}", dest.url_prefix, sink.path)
}
