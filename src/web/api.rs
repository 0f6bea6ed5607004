//! Locust's HTTP API (its `web.py`): the same paths, form fields and JSON
//! keys, so Locust's own clients and exporters work unchanged.
//!
//! Placeholder: helper API fills it in.

use super::{WebContext, WebRequest, WebResponse};

pub fn handle(req: &WebRequest, ctx: &WebContext) -> WebResponse {
    let _ = (req, ctx);
    WebResponse::not_found()
}
