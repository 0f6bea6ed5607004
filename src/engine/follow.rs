//! Raw mode with `--follow-redirects`: the raw loop, except that a 301,
//! 302, 303, 307 or 308 with a `Location` is followed (the rules are
//! `http::redirect`'s) up to [`MAX_REDIRECTS`] hops. The chain is one
//! request under the first URL's entry: its time is the whole chain's, its
//! status the last response's. A hop to another origin uses a connection
//! the user keeps for that origin (a few at most), as a browser would.
//!
//! Kept apart from `user::run_raw_user` so the default loop (wrk's: a 3xx
//! is a success, recorded as it is) pays nothing for it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use super::user::{record_outcome, ConnectBackoff, RawPlan, StopSignal};
use crate::http::redirect::{next_hop, origin_of, Hop, RedirectError, MAX_REDIRECTS};
use crate::http::{ClientConfig, Connection, Method, ResponseInfo, ResponseSink, Target};
use crate::stats::{Failure, ShardStats};

/// Connections to other origins a user keeps; past it the oldest goes (a
/// server redirecting to ever new ports must not pile up sockets).
const MAX_OTHER_ORIGINS: usize = 4;

/// Keeps the `Location` header of the response (only redirects carry one,
/// so nothing is allocated for the others).
#[derive(Default)]
struct LocationSink {
    location: Option<String>,
}

impl ResponseSink for LocationSink {
    fn header(&mut self, name: &str, value: &[u8]) {
        if name.eq_ignore_ascii_case("location") {
            self.location = Some(String::from_utf8_lossy(value).into_owned());
        }
    }
}

/// How a chain ended.
type Outcome = Result<ResponseInfo, Failure>;

/// The user's connections: the run's origin, and a few others.
struct Connections {
    home: Connection,
    home_origin: Option<String>,
    others: Vec<(String, Connection)>,
    client: ClientConfig,
}

impl Connections {
    /// The connection for `origin` (made, lazily connected, if new).
    fn for_origin(&mut self, origin: &str, target: &Target) -> &mut Connection {
        if self.home_origin.as_deref() == Some(origin) {
            return &mut self.home;
        }
        let i = match self.others.iter().position(|(o, _)| o == origin) {
            Some(i) => i,
            None => {
                if self.others.len() >= MAX_OTHER_ORIGINS {
                    self.others.remove(0);
                }
                let conn = Connection::to(target.endpoint(), self.client.clone());
                self.others.push((origin.to_string(), conn));
                self.others.len() - 1
            }
        };
        &mut self.others[i].1
    }
}

/// `run_raw_user` with redirects followed.
pub async fn run_following_user(
    plan: Rc<RawPlan>,
    stats: Rc<RefCell<ShardStats>>,
    stop: Rc<StopSignal>,
    first: usize,
) {
    let n = plan.requests.len();
    let mut conns = Connections {
        home: Connection::to(plan.endpoint.clone(), plan.client.clone()),
        home_origin: plan.requests.first().and_then(|r| origin_of(&r.url)),
        others: Vec::new(),
        client: plan.client.clone(),
    };
    let mut i = first % n;
    let mut started = Instant::now();
    let mut backoff = ConnectBackoff::default();
    while !stop.stopping() {
        let req = &plan.requests[i];
        let home = &conns.home;
        let connects_before = (home.is_connected(), home.connects());
        let mut sink = LocationSink::default();
        let first_hop = conns
            .home
            .send_since(started, &req.bytes, plan.options.method, &mut sink)
            .await;
        let connect_failed =
            !connects_before.0 && conns.home.connects() == connects_before.1 && first_hop.is_err();
        let outcome = match first_hop {
            Ok(info) => follow(&plan, &mut conns, started, &req.url, info, sink).await,
            Err(e) => Err(Failure::Http(e)),
        };
        let ended = Instant::now();
        let micros = ended.duration_since(started).as_micros() as u64;
        started = ended;
        let failed = record_outcome(&mut stats.borrow_mut(), req.entry, micros, outcome);
        if backoff.pace(&stop, connect_failed, failed).await {
            started = Instant::now();
        }
        i += 1;
        if i == n {
            i = 0;
        }
    }
}

/// Follow the chain from the first response (`info`, its headers in
/// `sink`) to its end. Every hop is bounded by the request timeout counted
/// from `started`: the chain is one request.
async fn follow(
    plan: &RawPlan,
    conns: &mut Connections,
    started: Instant,
    first_url: &str,
    mut info: ResponseInfo,
    mut sink: LocationSink,
) -> Outcome {
    let options = &plan.options;
    let mut url = first_url.to_string();
    let mut method = options.method;
    let mut keep_body = true;
    let mut hops = 0u32;
    loop {
        let hop = match next_hop(info.status, method, sink.location.as_deref(), &url) {
            Ok(Some(hop)) => hop,
            Ok(None) => return Ok(info),
            Err(e) => return Err(Failure::Message(e.to_string().into())),
        };
        if hops >= MAX_REDIRECTS {
            let e = RedirectError::TooMany(MAX_REDIRECTS);
            return Err(Failure::Message(e.to_string().into()));
        }
        hops += 1;
        let Hop {
            method: next_method,
            url: next_url,
            keep_body: keeps,
        } = hop;
        // `next_hop` only hands out absolute http(s) URLs; a host that does
        // not resolve is still an error here, named with its Location.
        let target = match Target::parse(&next_url) {
            Ok(t) => t,
            Err(_) => {
                let e = RedirectError::InvalidLocation(next_url);
                return Err(Failure::Message(e.to_string().into()));
            }
        };
        let Some(origin) = origin_of(&next_url) else {
            let e = RedirectError::InvalidLocation(next_url);
            return Err(Failure::Message(e.to_string().into()));
        };
        let same_origin = conns.home_origin.as_deref() == Some(origin.as_str());
        keep_body &= keeps;
        method = next_method;
        let conn = conns.for_origin(&origin, &target);
        write_hop(
            conn.request_buf(),
            options,
            method,
            &target,
            keep_body,
            same_origin,
        );
        sink = LocationSink::default();
        let timeout = plan.client.request_timeout;
        match conn
            .send_buffered_at(started, timeout, method, &mut sink)
            .await
        {
            Ok(next) => info = next,
            Err(e) => return Err(Failure::Http(e)),
        }
        url = next_url;
    }
}

/// A hop's request: the run's headers, except a given `Host` (the hop's
/// own is sent), `Authorization` on another origin (as requests drops it),
/// and the body with its `Content-Type` when the redirect drops the body.
fn write_hop(
    buf: &mut Vec<u8>,
    options: &super::RawOptions,
    method: Method,
    target: &Target,
    keep_body: bool,
    same_origin: bool,
) {
    let headers: Vec<(&str, &str)> = options
        .headers
        .iter()
        .filter(|(name, _)| {
            !(name.eq_ignore_ascii_case("host")
                || (!same_origin && name.eq_ignore_ascii_case("authorization"))
                || (!keep_body && name.eq_ignore_ascii_case("content-type")))
        })
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let body: &[u8] = if keep_body { &options.body } else { &[] };
    crate::http::write_request(
        buf,
        method,
        &target.path,
        &target.host_header,
        &headers,
        body,
    );
}
