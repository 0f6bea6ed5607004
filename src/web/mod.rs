//! The web front end's server: Locust's HTTP API, the page and Prometheus
//! metrics, served beside (or instead of) the dashboard or a headless run.
//!
//! It owns the listening socket, one thread running hyper on a
//! current-thread tokio runtime, and what every request passes through
//! first: the base path (`--web-base-path`), HTTP basic auth
//! (`--web-auth`), a body size limit and connection limits. hyper because
//! a slow or idle client then costs a task, not a thread (a thousand idle
//! connections are a few MB), and its header-read timeout drops slowloris
//! clients; tiny_http would hold a thread per connection.
//!
//! It does not own what the endpoints say: `api` (Locust's JSON and CSV
//! endpoints, swarm/stop/reset), `metrics` (Prometheus text) and `page`
//! (the embedded HTML/JS/CSS). Those read the run only through
//! [`RunControl`] snapshots, as the dashboard does, and never touch a shard.

mod config;
mod server;

pub mod api;
pub mod front;
pub mod metrics;
pub mod page;

use std::sync::Arc;

use crate::config::RunConfig;
use crate::engine::RunControl;

pub use config::{WebAuth, WebConfig, WebConfigError};
pub use server::WebServer;

/// What every endpoint may read: the run (only through [`RunControl`]) and
/// the configuration it was started with.
pub struct WebContext {
    pub control: Arc<dyn RunControl>,
    pub cfg: Arc<RunConfig>,
}

/// A request as the endpoints see it: the path below the base path, the
/// raw query string, and the body (at most [`MAX_BODY`] bytes).
#[derive(Debug)]
pub struct WebRequest {
    pub method: hyper::Method,
    /// Always starts with `/`; the base path already removed.
    pub path: String,
    /// Without the `?`; empty when there is none.
    pub query: String,
    pub body: Vec<u8>,
}

/// An endpoint's answer.
#[derive(Debug)]
pub struct WebResponse {
    pub status: u16,
    pub content_type: &'static str,
    /// Extra headers (e.g. `Content-Disposition` for CSV downloads).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Request bodies (forms) larger than this get a 413.
pub const MAX_BODY: usize = 64 * 1024;

impl WebResponse {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        WebResponse {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn json(value: &serde_json::Value) -> Self {
        Self::new(200, "application/json", value.to_string())
    }

    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body.into())
    }

    pub fn not_found() -> Self {
        Self::text(404, "not found")
    }

    /// A bad form value or request: a 400 naming what was wrong.
    pub fn bad_request(why: impl Into<String>) -> Self {
        Self::text(400, why)
    }
}

/// Route one request (base path and auth already checked).
pub fn route(req: &WebRequest, ctx: &WebContext) -> WebResponse {
    if req.path == "/metrics" {
        return metrics::handle(req, ctx);
    }
    if let Some(resp) = page::handle(req, ctx) {
        return resp;
    }
    api::handle(req, ctx)
}
