//! The Lua request path against the raw one, per request, on one monoio
//! runtime and one keep-alive connection to an in-process server on
//! 127.0.0.1 (a thread answering each GET with a 200-byte body):
//!
//! - `raw GET`: `Connection::send_since` with prebuilt request bytes, what
//!   raw mode does per request;
//! - `lua client:get`: a Lua loop calling `c:get("/")`, what a scripted
//!   task does (the request parked with its driver, `script::park`, the
//!   response object, recording).
//!
//! The difference is the Lua path's own cost; both include the kernel's
//! loopback TCP and the server thread's turn, so read them side by side,
//! not as absolute costs. `cargo bench --bench script`.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use locusta::http::{ClientConfig, Connection, DiscardBody, Method, Target};
use locusta::script::client::{self, ClientCtx};
use locusta::stats::ShardStats;

/// A keep-alive server answering every request with a 200-byte body.
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let body = [b'x'; 200];
                let mut reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                reply.extend_from_slice(&body);
                let mut buf = vec![0u8; 16 * 1024];
                let mut have = 0;
                loop {
                    match conn.read(&mut buf[have..]) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have += n,
                    }
                    // One reply per complete request head (GETs, no body).
                    while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                        if conn.write_all(&reply).is_err() {
                            return;
                        }
                        buf.copy_within(end + 4..have, 0);
                        have -= end + 4;
                    }
                    if have == buf.len() {
                        return;
                    }
                }
            });
        }
    });
    url
}

fn bench_round_trip(c: &mut Criterion) {
    let url = serve();
    let target = Target::parse(&url).unwrap();
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("request round trip (epoll, in-process server)");
    group.measurement_time(Duration::from_secs(3));

    let mut conn = Connection::to(target.endpoint(), ClientConfig::default());
    let mut request = Vec::new();
    locusta::http::write_request(
        &mut request,
        Method::Get,
        "/",
        &target.host_header,
        &[],
        b"",
    );
    let request = Rc::new(request);
    group.bench_function("raw GET", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    let r = conn
                        .send_since(Instant::now(), &request, Method::Get, &mut DiscardBody)
                        .await;
                    assert_eq!(r.expect("raw GET").status, 200);
                }
                start.elapsed()
            })
        })
    });

    let lua = mlua::Lua::new();
    let module = lua.create_table().unwrap();
    let stats = Rc::new(RefCell::new(ShardStats::new()));
    let ctx = Rc::new(ClientCtx {
        stats: stats.clone(),
        cfg: ClientConfig::default(),
        limits: Default::default(),
        nested: Default::default(),
    });
    client::install(&lua, &module, ctx).unwrap();
    let client = client::new_client(&lua, Some(target.clone())).unwrap();
    let f: mlua::Function = lua
        .load(
            r#"return function(c, n)
                 for _ = 1, n do
                   local r = c:get("/")
                   if r.status ~= 200 then error("status " .. r.status) end
                 end
               end"#,
        )
        .eval()
        .unwrap();
    group.bench_function("lua client:get", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let start = Instant::now();
                locusta::script::park::call::<()>(&lua, &f, (client.clone(), n))
                    .await
                    .expect("lua GETs");
                start.elapsed()
            })
        })
    });
    group.finish();
    // Recorded in the shard's table, as the engine would merge it.
    assert!(stats.borrow().entry_count() > 0);
}

criterion_group!(benches, bench_round_trip);
criterion_main!(benches);
