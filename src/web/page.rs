//! The page (`/`) and its embedded assets: HTML, JS, CSS and the vendored
//! uPlot, all compiled into the binary (no CDN).
//!
//! Placeholder: helper PAGE fills it in.

use super::{WebContext, WebRequest, WebResponse};

/// `Some` for the page's own paths (`/`, `/assets/...`), else `None`.
pub fn handle(req: &WebRequest, ctx: &WebContext) -> Option<WebResponse> {
    let _ = ctx;
    (req.path == "/").then(|| {
        WebResponse::new(
            200,
            "text/html; charset=utf-8",
            "<!doctype html><title>locusta</title>",
        )
    })
}
