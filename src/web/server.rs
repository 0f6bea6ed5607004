//! The listening socket and the one thread that serves it: hyper's HTTP/1
//! on a current-thread tokio runtime, each connection a local task.
//!
//! Every request passes the gate here before any endpoint sees it: the
//! base path, basic auth, and a body of at most [`MAX_BODY`] bytes read
//! within [`BODY_TIMEOUT`]. Connections past [`MAX_CONNECTIONS`] are closed
//! at once, and a client that sends no complete header within
//! [`HEADER_TIMEOUT`] is dropped, so slow or idle clients cost a task each
//! and a bounded number of them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Notify, Semaphore};

use super::{route, WebConfig, WebContext, WebRequest, WebResponse, MAX_BODY};

/// Open connections served at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 4096;
/// A request's headers must arrive within this (slowloris).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's body must arrive within this.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The running server; dropping it (or [`WebServer::stop`]) stops it.
pub struct WebServer {
    addr: SocketAddr,
    base_path: String,
    shutdown: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
}

/// What the gate checks, fixed when the server starts.
struct Gate {
    base_path: String,
    /// `user:password` as a basic-auth header would carry it.
    credentials: Option<String>,
}

impl WebServer {
    /// Bind now (so a taken port is an error before the run starts) and
    /// serve on a thread of its own.
    pub fn start(cfg: &WebConfig, ctx: WebContext) -> anyhow::Result<WebServer> {
        let listener = std::net::TcpListener::bind(cfg.addr)
            .with_context(|| format!("cannot serve the web UI on {}", cfg.addr))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let gate = Gate {
            base_path: cfg.base_path.clone(),
            credentials: cfg
                .auth
                .as_ref()
                .map(|a| format!("{}:{}", a.user, a.password)),
        };
        let shutdown = Arc::new(Notify::new());
        let stop = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("locusta-web".into())
            .spawn(move || serve(listener, ctx, gate, stop))
            .context("cannot start the web server's thread")?;
        Ok(WebServer {
            addr,
            base_path: cfg.base_path.clone(),
            shutdown,
            thread: Some(thread),
        })
    }

    /// Where it listens (the port is real even when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL, for the start-up line.
    pub fn url(&self) -> String {
        format!("http://{}{}/", self.addr, self.base_path)
    }

    /// Stop accepting, drop every connection, and wait for the thread.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        // notify_one keeps the wake-up if the loop is not waiting yet.
        self.shutdown.notify_one();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("the web server's thread panicked");
            }
        }
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn serve(listener: std::net::TcpListener, ctx: WebContext, gate: Gate, shutdown: Arc<Notify>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("the web server cannot start its runtime: {e}");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                log::error!("the web server cannot listen: {e}");
                return;
            }
        };
        let served = Rc::new((ctx, gate));
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let stream = tokio::select! {
                _ = shutdown.notified() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and friends: back off rather than spin.
                        log::warn!("web server: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue; // dropped: closed at once
            };
            let served = served.clone();
            tokio::task::spawn_local(async move {
                let service = service_fn(move |req| {
                    let served = served.clone();
                    async move { Ok::<_, Infallible>(respond(req, &served.0, &served.1).await) }
                });
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                drop(slot);
            });
        }
    });
}

async fn respond(req: Request<Incoming>, ctx: &WebContext, gate: &Gate) -> Response<Full<Bytes>> {
    let Some(path) = below_base(req.uri().path(), &gate.base_path) else {
        return into_hyper(WebResponse::not_found());
    };
    if let Some(expected) = &gate.credentials {
        if !authorized(&req, expected) {
            let mut resp = WebResponse::text(401, "authentication required (--web-auth)");
            resp.headers
                .push(("WWW-Authenticate", "Basic realm=\"locusta\"".into()));
            return into_hyper(resp);
        }
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let (parts, body) = req.into_parts();
    let body =
        match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
            Ok(Ok(collected)) => collected.to_bytes().to_vec(),
            Ok(Err(_)) => {
                return into_hyper(WebResponse::text(
                    413,
                    format!("request body over {MAX_BODY} bytes, or cut short"),
                ))
            }
            Err(_) => return into_hyper(WebResponse::text(408, "request body too slow")),
        };
    let request = WebRequest {
        method: parts.method,
        path,
        query,
        body,
    };
    into_hyper(route(&request, ctx))
}

/// The path below the base path (`/` for the base itself), or `None` when
/// it is not under it.
fn below_base(path: &str, base: &str) -> Option<String> {
    let rest = path.strip_prefix(base)?;
    if rest.is_empty() {
        return Some("/".into());
    }
    rest.starts_with('/').then(|| rest.to_string())
}

fn authorized(req: &Request<Incoming>, expected: &str) -> bool {
    let Some(value) = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .is_ok_and(|given| given == expected.as_bytes())
}

fn into_hyper(resp: WebResponse) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(resp.status)
        .header(hyper::header::CONTENT_TYPE, resp.content_type)
        .header(hyper::header::CACHE_CONTROL, "no-store");
    for (name, value) in &resp.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(resp.body)))
        .unwrap_or_else(|e| {
            // Only a header value an endpoint built badly gets here.
            log::error!("web server: bad response: {e}");
            let mut r = Response::new(Full::new(Bytes::from_static(b"internal error")));
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
}

#[cfg(test)]
mod tests {
    use super::below_base;

    #[test]
    fn paths_below_the_base() {
        assert_eq!(
            below_base("/stats/requests", "").as_deref(),
            Some("/stats/requests")
        );
        assert_eq!(below_base("/lo", "/lo").as_deref(), Some("/"));
        assert_eq!(below_base("/lo/", "/lo").as_deref(), Some("/"));
        assert_eq!(below_base("/lo/stop", "/lo").as_deref(), Some("/stop"));
        assert_eq!(below_base("/lox/stop", "/lo"), None);
        assert_eq!(below_base("/stop", "/lo"), None);
    }
}
