//! Shared by the `script_client*` tests: a small in-process HTTP/1.1
//! server that records request heads and bodies as they arrived and replies
//! through a handler (optionally after a delay), and the harness that drives
//! the Lua client bindings without the script runtime (our own Lua state,
//! `client::install` + `json::install`, clients from `new_client`, Lua code
//! run inside one monoio runtime), plus helpers to read the stats it
//! recorded. It holds no tests and asserts nothing about the client; the
//! generic `tests/common` helpers are separate.
//!
//! Included with `#[path = "common/script_client_server.rs"] mod server;`.

#![allow(dead_code)]

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use locusta::http::{ClientConfig, Method, Target};
use locusta::script::client::{self, ClientCtx};
use locusta::script::json;
use locusta::stats::{Failure, ShardStats, StatsDelta};
use mlua::{AnyUserData, Lua};

// ---------------------------------------------------------------- server

#[derive(Clone, Debug)]
pub struct Req {
    pub head: String,
    pub body: Vec<u8>,
    /// Which accepted connection carried it (0, 1, …).
    #[allow(dead_code)]
    pub conn: usize,
}

impl Req {
    pub fn path(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }

    /// All values of header `name` (case-insensitive), in order.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }
}

pub enum Reply {
    Bytes(Vec<u8>),
    After(Duration, Vec<u8>),
}

pub fn response(status: &str, extra_headers: &[&str], body: &str) -> Reply {
    let mut s = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for h in extra_headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.push_str(body);
    Reply::Bytes(s.into_bytes())
}

pub struct Server {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Req>>>,
    conns: Arc<AtomicUsize>,
}

impl Server {
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let (l, c) = (log.clone(), conns.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let id = c.fetch_add(1, Ordering::SeqCst);
                let (h, l) = (handler.clone(), l.clone());
                thread::spawn(move || serve(stream, id, &*h, &l));
            }
        });
        Server { addr, log, conns }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

fn serve(mut s: TcpStream, id: usize, handler: &dyn Fn(&Req) -> Reply, log: &Mutex<Vec<Req>>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let mut req = Req {
            head,
            body: Vec::new(),
            conn: id,
        };
        let len: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        req.body = buf.drain(..len).collect();
        let mut reply = handler(&req);
        if req.head.starts_with("HEAD ") {
            // No body after a HEAD response's head.
            if let Reply::Bytes(b) = &mut reply {
                if let Some(i) = b.windows(4).position(|w| w == b"\r\n\r\n") {
                    b.truncate(i + 4);
                }
            }
        }
        log.lock().unwrap().push(req);
        let bytes = match reply {
            Reply::Bytes(b) => b,
            Reply::After(d, b) => {
                thread::sleep(d);
                b
            }
        };
        if s.write_all(&bytes).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------- harness

/// One Lua state and one monoio runtime for a whole test: connections a
/// client keeps belong to the runtime that opened them.
pub struct Env {
    pub lua: Lua,
    pub stats: Rc<RefCell<ShardStats>>,
    pub rt: RefCell<monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>>>,
}

pub fn env() -> Env {
    env_with(ClientConfig::default())
}

pub fn env_with(cfg: ClientConfig) -> Env {
    env_limits(cfg, Default::default())
}

pub fn env_limits(cfg: ClientConfig, limits: locusta::script::ScriptLimits) -> Env {
    let lua = Lua::new();
    let module = lua.create_table().unwrap();
    let stats = Rc::new(RefCell::new(ShardStats::new()));
    let ctx = Rc::new(ClientCtx {
        stats: stats.clone(),
        cfg,
        limits,
        nested: Default::default(),
    });
    client::install(&lua, &module, ctx).unwrap();
    json::install(&lua, &module).unwrap();
    lua.globals().set("locusta", module).unwrap();
    let rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    Env {
        lua,
        stats,
        rt: RefCell::new(rt),
    }
}

impl Env {
    pub fn client(&self, host: Option<&str>) -> AnyUserData {
        let target = host.map(|h| Target::parse(h).unwrap());
        client::new_client(&self.lua, target).unwrap()
    }

    /// Run `code` as a chunk receiving `args` as `...`, to completion.
    pub fn run(&self, code: &str, args: impl mlua::IntoLuaMulti) -> mlua::Result<()> {
        let lua = &self.lua;
        self.rt.borrow_mut().block_on(async {
            let f = lua.load(code).set_name("=test").into_function()?;
            locusta::script::park::call::<()>(lua, &f, args).await
        })
    }

    pub fn ok(&self, code: &str, args: impl mlua::IntoLuaMulti) {
        if let Err(e) = self.run(code, args) {
            panic!("Lua failed: {e}");
        }
    }

    pub fn delta(&self) -> StatsDelta {
        self.stats.borrow_mut().take_delta()
    }
}

/// (method, name) → (requests, failures)
pub fn rows(d: &StatsDelta) -> Vec<(Method, String, u64, u64)> {
    let mut v: Vec<_> = d
        .entries
        .iter()
        .map(|e| {
            (
                e.method,
                e.name.to_string(),
                e.counts.requests,
                e.counts.failures,
            )
        })
        .collect();
    v.sort();
    v
}

pub fn failures(d: &StatsDelta) -> Vec<(Method, String, Failure, u64)> {
    let mut v: Vec<_> = d
        .failures
        .iter()
        .map(|f| (f.method, f.name.to_string(), f.failure.clone(), f.count))
        .collect();
    v.sort_by_key(|f| format!("{f:?}"));
    v
}

pub fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
