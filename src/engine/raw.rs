//! Raw mode's request options (wrk's `-s`-free flags: method, headers,
//! body, pipelining, redirects) and how a shard turns them into its plan:
//! the request bytes serialized once per shard and shared by its users.
//! The loops that send them are in `user` (one request at a time) and
//! `pipelined` (N at once).

use std::rc::Rc;
use std::sync::Arc;

use super::user::{RawPlan, RawRequest};
use crate::http::redirect::target_url;
use crate::http::{write_request, ClientConfig, Method, Target};
use crate::stats::ShardStats;

/// What each raw-mode request looks like, from the raw-mode flags.
#[derive(Clone, Debug)]
pub struct RawOptions {
    pub method: Method,
    /// `--header`, in order, already checked (token names, no CR/LF/NUL).
    pub headers: Vec<(String, String)>,
    /// `-d/--data` or `--data-file`; shared, never copied per shard.
    pub body: Arc<[u8]>,
    /// Requests in flight per connection (1: one at a time).
    pub pipeline: u32,
    /// Follow 3xx responses (up to `redirect::MAX_REDIRECTS` hops).
    pub follow_redirects: bool,
}

impl Default for RawOptions {
    /// wrk's request: GET, no extra header, no body, one at a time.
    fn default() -> Self {
        RawOptions {
            method: Method::Get,
            headers: Vec::new(),
            body: Arc::from(&[][..]),
            pipeline: 1,
            follow_redirects: false,
        }
    }
}

impl RawOptions {
    /// The request for `path` on `host_header`, serialized.
    pub fn serialize(&self, buf: &mut Vec<u8>, path: &str, host_header: &str) {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        write_request(buf, self.method, path, host_header, &headers, &self.body);
    }
}

/// A shard's raw plan: one serialized request per URL, and with
/// `--pipeline N` one batch of N requests per starting URL (so a user
/// writes a batch with a single write, wherever in the URL cycle it is).
pub(super) fn build_plan(
    targets: &[Target],
    options: &RawOptions,
    client: ClientConfig,
    stats: &mut ShardStats,
) -> RawPlan {
    let requests: Vec<RawRequest> = targets
        .iter()
        .map(|t| {
            let mut bytes = Vec::with_capacity(256 + options.body.len());
            options.serialize(&mut bytes, &t.path, &t.host_header);
            RawRequest {
                bytes: Rc::new(bytes),
                entry: stats.entry(options.method, &t.path),
                url: target_url(t).into(),
            }
        })
        .collect();
    let depth = options.pipeline.max(1) as usize;
    let batches = if depth > 1 {
        (0..requests.len())
            .map(|start| {
                let mut bytes = Vec::new();
                for k in 0..depth {
                    let r = &requests[(start + k) % requests.len()];
                    bytes.extend_from_slice(&r.bytes);
                }
                Rc::new(bytes)
            })
            .collect()
    } else {
        Vec::new()
    };
    RawPlan {
        endpoint: targets[0].endpoint(),
        client,
        requests,
        options: options.clone(),
        batches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cycle_over_the_urls() {
        let targets = [
            Target::parse("http://127.0.0.1:1/a").unwrap(),
            Target::parse("http://127.0.0.1:1/b").unwrap(),
        ];
        let options = RawOptions {
            pipeline: 3,
            ..RawOptions::default()
        };
        let mut stats = ShardStats::new();
        let plan = build_plan(&targets, &options, ClientConfig::default(), &mut stats);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let lines = |b: &[u8]| -> Vec<String> {
            text(b)
                .split("\r\n")
                .filter(|l| l.starts_with("GET "))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(plan.batches.len(), 2);
        assert_eq!(
            lines(&plan.batches[1]),
            ["GET /b HTTP/1.1", "GET /a HTTP/1.1", "GET /b HTTP/1.1"]
        );
    }
}
