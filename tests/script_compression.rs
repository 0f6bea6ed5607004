//! Compressed responses in the Lua client, against the in-process server
//! of `common/script_client_server.rs`: the default `Accept-Encoding` on
//! the wire and how a script changes or removes it, gzip and deflate
//! (zlib and raw) and brotli bodies decoded for `r.body` / `r.text` /
//! `r:json()`, unknown encodings handed raw, a corrupt body as a Lua error,
//! gzip and brotli decompression bombs bounded by `--max-body-size`, the stats' bytes being
//! the bytes on the wire, and a body the script never reads never decoded.

use std::io::Write;

use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use flate2::Compression;
use locusta::http::Method;
use locusta::script::client_decode::decodes_on_this_thread;

#[path = "common/script_client_server.rs"]
mod server;

use server::{env, rows, Reply, Server};

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zlib(b: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(b: &[u8]) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn encoded(encoding: &str, body: &[u8]) -> Reply {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    Reply::Bytes(r)
}

/// `TEXT`, brotli-compressed by Python's brotli (no encoder in the
/// dependencies): `brotli.compress(TEXT).hex()`.
const BROTLI_TEXT: &str =
    "1b3a00001c09364ed437269ed5185a82b0b5354b19db9b1ca4176eb2cac6b6e65f0a7c3445";
/// 200 MiB of zeros, brotli-compressed (317 bytes):
/// `brotli.compress(b"\0" * (200 << 20), quality=5).hex()`.
const BROTLI_BOMB: &str =
    "cbffff3f002400e2b14072effff8ffff078004401c1680eefd1fffffff00900088c302d0bdffe3ff\
ff1f001200715800baf77ffcffff034002200e0b40f7fe8fffff7f004800c46101e8defff1ffff0f\
000980382c00ddfb3ffeffff012001108705a07bffc7ffff3f002400e2b00074effff8ffff078004\
401c1680eefd1fffffff00900088c302d0bdffe3ffff1f001200715800baf77ffcffff034002200e\
0b40f7fe8fffff7f004800c46101e8defff1ffff0f000980382c00ddfb3ffeffff012001108705a0\
7bffc7ffff3f002400e2b00074effff8ffff078004401c1680eefd1fffffff00900088c302d0bdff\
e3ffff1f001200715800baf77ffcffff034002200e0b40f7fe8fffff7f004800c46101e8defff1ff\
ff0f000980382c00ddfb3ffeffff012001108705a07bffc7ffff3f002400e2b00074efff06";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

const TEXT: &str = "hello compressed world, hello compressed world, hello again";
const JSON: &str = r#"{"items":[1,2,3],"name":"gz"}"#;

fn bodies_server() -> Server {
    Server::start(|req| match req.path() {
        "/gzip" => encoded("gzip", &gzip(TEXT.as_bytes())),
        "/xgzip" => encoded("x-gzip", &gzip(TEXT.as_bytes())),
        "/zlib" => encoded("deflate", &zlib(TEXT.as_bytes())),
        "/raw-deflate" => encoded("deflate", &raw_deflate(TEXT.as_bytes())),
        "/json" => encoded("gzip", &gzip(JSON.as_bytes())),
        "/br" => encoded("br", &unhex(BROTLI_TEXT)),
        "/zstd" => encoded("zstd", b"\x28\xb5\x2f\xfdzstd-ish"),
        "/corrupt" => encoded("gzip", b"\x1f\x8b\x08\x00garbage that is not deflate"),
        _ => encoded("identity", TEXT.as_bytes()),
    })
}

#[test]
fn accept_encoding_by_default_changeable_and_removable() {
    let srv = bodies_server();
    let env = env();
    let c = env.client(Some(&srv.url("")));
    let d = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c, d = ...
        c:get("/1")
        c:get("/2", { headers = { ["accept-encoding"] = "identity" } })
        assert(c.headers["Accept-Encoding"] == "gzip, deflate", tostring(c.headers["Accept-Encoding"]))
        c.headers["Accept-Encoding"] = "deflate"
        c:get("/3")
        c.headers["Accept-Encoding"] = nil
        c:get("/4")
        d.headers = { ["X-Only"] = "1" }
        d:get("/5")
        "#,
        (c, d),
    );
    let got: Vec<(String, Vec<String>)> = srv
        .requests()
        .iter()
        .map(|r| (r.path().to_string(), r.headers("accept-encoding")))
        .collect();
    let want = |p: &str, v: &[&str]| (p.to_string(), v.iter().map(|s| s.to_string()).collect());
    assert_eq!(
        got,
        vec![
            want("/1", &["gzip, deflate"]),
            want("/2", &["identity"]),
            want("/3", &["deflate"]),
            want("/4", &[]),
            want("/5", &[]),
        ]
    );
}

#[test]
fn gzip_and_deflate_bodies_are_decoded_and_bytes_stay_on_the_wire() {
    let srv = bodies_server();
    let env = env();
    let c = env.client(Some(&srv.url("")));
    let wire = gzip(TEXT.as_bytes()).len();
    env.ok(
        r#"
        local c, text, wire = ...
        for _, p in ipairs({ "/gzip", "/xgzip", "/zlib", "/raw-deflate", "/plain" }) do
          local r = c:get(p)
          assert(r.status == 200 and r.ok, p)
          assert(r.body == text, p .. ": " .. r.body)
          assert(r.text == text, p)
        end
        local r = c:get("/gzip", { name = "sized" })
        assert(r.content_length == wire, r.content_length)
        assert(r.headers["content-encoding"] == "gzip")
        local j = c:get("/json"):json()
        assert(j.name == "gz" and #j.items == 3 and j.items[3] == 3)
        assert(c:get("/br").body == text)
        -- Unknown encodings: the bytes as they came.
        assert(c:get("/zstd").body == "\x28\xb5\x2f\xfdzstd-ish")
        "#,
        (c, TEXT, wire),
    );
    let d = env.delta();
    let sized = d.entries.iter().find(|e| &*e.name == "sized").unwrap();
    assert_eq!(sized.counts.bytes, wire as u64, "stats count wire bytes");
    assert!(wire != TEXT.len());
}

#[test]
fn a_corrupt_body_is_a_lua_error_not_a_failed_request() {
    let srv = bodies_server();
    let env = env();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        local r = c:get("/corrupt")
        assert(r.status == 200 and r.ok)
        local ok, e = pcall(function() return r.body end)
        assert(not ok and tostring(e):find("cannot decode gzip body: ", 1, true), tostring(e))
        ok, e = pcall(r.json, r)
        assert(not ok and tostring(e):find("cannot decode gzip body: ", 1, true), tostring(e))
        assert(c:get("/gzip").ok, "the connection is still usable")
        "#,
        c,
    );
    assert_eq!(
        rows(&env.delta()),
        vec![
            (Method::Get, "/corrupt".into(), 1, 0),
            (Method::Get, "/gzip".into(), 1, 0)
        ]
    );
}

#[test]
fn a_decompression_bomb_is_bounded_by_the_body_limit() {
    // 200 gzip members of 1 MiB of zeros each: ~200 MiB decoded from
    // ~200 KB on the wire (one member, repeated, is cheap to make).
    let member = gzip(&vec![0u8; 1 << 20]);
    let bomb: Vec<u8> = member.repeat(200);
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let wire = bomb.len();
    let srv = Server::start(move |_| encoded("gzip", &bomb));
    let env = env();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c, wire = ...
        local r = c:get("/bomb")
        assert(r.ok and r.content_length == wire)
        local ok, e = pcall(function() return r.body end)
        assert(not ok, "decoded a bomb")
        assert(tostring(e):find("cannot decode gzip body: the decoded body is larger than 64 MiB (--max-body-size)", 1, true), tostring(e))
        "#,
        (c, wire),
    );
}

#[test]
fn a_brotli_bomb_is_bounded_too() {
    let bomb = unhex(BROTLI_BOMB);
    assert_eq!(bomb.len(), 317);
    let srv = Server::start(move |_| encoded("br", &bomb));
    let env = env();
    let c = env.client(Some(&srv.url("")));
    env.ok(
        r#"
        local c = ...
        local r = c:get("/bomb")
        assert(r.ok and r.content_length == 317)
        local ok, e = pcall(function() return r.text end)
        assert(not ok and tostring(e):find("cannot decode br body: the decoded body is larger than 64 MiB", 1, true), tostring(e))
        "#,
        c,
    );
}

#[test]
fn a_body_never_read_is_never_decoded_and_decoded_once() {
    let srv = bodies_server();
    let env = env();
    let c = env.client(Some(&srv.url("")));
    let before = decodes_on_this_thread();
    env.ok(
        r#"
        local c = ...
        for i = 1, 20 do assert(c:get("/gzip").status == 200) end
        assert(c:get("/corrupt").ok)
        "#,
        c.clone(),
    );
    assert_eq!(
        decodes_on_this_thread(),
        before,
        "nothing read, nothing decoded"
    );
    env.ok(
        r#"
        local c = ...
        local r = c:get("/json")
        local a, b = r.body, r.text
        assert(r:json().name == "gz" and a == b)
        "#,
        c,
    );
    assert_eq!(decodes_on_this_thread(), before + 1, "decoded once, cached");
}
