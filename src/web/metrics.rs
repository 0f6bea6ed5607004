//! `GET /metrics`: the run in Prometheus' text exposition format.
//!
//! Placeholder: helper METRICS fills it in.

use super::{WebContext, WebRequest, WebResponse};

pub fn handle(req: &WebRequest, ctx: &WebContext) -> WebResponse {
    let _ = (req, ctx);
    WebResponse::text(200, "")
}
