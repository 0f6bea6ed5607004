//! The page (`/`): one self-contained HTML document with its CSS, its JS
//! and the vendored uPlot inlined, all compiled into the binary (no CDN,
//! no external fonts, no second request: nothing to resolve against a base
//! path or a proxy's prefix).
//!
//! It owns the assets under `web/assets/` and the start form's defaults
//! (users, spawn rate, host, run time from the command line). It does not
//! own the data: the page polls Locust's JSON API (`api`) from the browser
//! and posts to its endpoints; uPlot is the HTML report's copy
//! (`report/assets/`), included, not duplicated.

use serde_json::json;

use super::{WebContext, WebRequest, WebResponse};

const TEMPLATE: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const UPLOT_JS: &str = include_str!("../report/assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../report/assets/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("../report/assets/uPlot.LICENSE");

/// `Some` for the page's own path (`/`, GET or HEAD), else `None`.
pub fn handle(req: &WebRequest, ctx: &WebContext) -> Option<WebResponse> {
    let read = req.method == hyper::Method::GET || req.method == hyper::Method::HEAD;
    (req.path == "/" && read).then(|| {
        let mut resp = WebResponse::new(200, "text/html; charset=utf-8", render(ctx));
        // The defaults in the form follow the process, not a cached copy.
        resp.headers.push(("Cache-Control", "no-store".to_string()));
        resp
    })
}

/// The page with the start form's defaults and every asset filled in.
fn render(ctx: &WebContext) -> String {
    let cfg = &ctx.cfg;
    let defaults = json!({
        "user_count": cfg.users,
        "spawn_rate": cfg.spawn_rate,
        "host": crate::headless::target_host(cfg),
        "run_time": cfg.run_time.map_or(String::new(), |t| format!("{}s", t.as_secs())),
    });
    // The config sits in a <script> element: a `</` inside a string (a host
    // like `http://x/</script>`) must not end it; `<\/` is the same JSON.
    let defaults = defaults.to_string().replace("</", "<\\/");
    // Fill the small slots first, so text inside a large asset can never
    // be taken for a slot.
    TEMPLATE
        .replace("{{CONFIG}}", &defaults)
        .replace("{{UPLOT_LICENSE}}", &UPLOT_LICENSE.replace("--", "- -"))
        .replace("{{APP_CSS}}", APP_CSS)
        .replace("{{UPLOT_CSS}}", UPLOT_CSS)
        .replace("{{APP_JS}}", APP_JS)
        .replace("{{UPLOT_JS}}", UPLOT_JS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_is_filled_and_nothing_is_fetched_from_elsewhere() {
        for (slot, asset) in [
            ("{{APP_CSS}}", APP_CSS),
            ("{{UPLOT_CSS}}", UPLOT_CSS),
            ("{{APP_JS}}", APP_JS),
            ("{{UPLOT_JS}}", UPLOT_JS),
        ] {
            assert!(TEMPLATE.contains(slot), "{slot} missing from the template");
            assert!(!asset.contains("</script"), "{slot} would end its element");
            assert!(!asset.contains("</style"), "{slot} would end its element");
        }
        for asset in [TEMPLATE, APP_JS, APP_CSS] {
            assert!(!asset.contains("http://") && !asset.contains("https://"));
            assert!(!asset.contains("src=\"/") && !asset.contains("href=\"/"));
        }
    }
}
