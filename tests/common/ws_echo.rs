//! A WebSocket echo server on an ephemeral 127.0.0.1 port (std threads, its
//! own small RFC 6455 server side): it checks the upgrade request, answers
//! 101 (with a cookie), echoes text and binary messages, answers pings and
//! close frames, and counts messages and the request heads it saw. A
//! hostile variant writes given bytes after the handshake.
//! Included with `#[path = "common/line_echo.rs"] mod line_echo;` and
//! `#[path = "common/ws_echo.rs"] mod ws_echo;`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;

use crate::line_echo::ConnServer;

pub struct WsEcho {
    pub server: ConnServer,
    pub messages: Arc<AtomicUsize>,
    pub heads: Arc<Mutex<Vec<String>>>,
}

/// What the server does after a good handshake.
#[derive(Clone)]
pub enum Mode {
    Echo,
    /// Write these bytes, then keep reading until the client goes.
    Raw(Vec<u8>),
    /// Write these bytes, then close the connection.
    RawThenClose(Vec<u8>),
    /// Ping with this payload, then echo.
    PingFirst(Vec<u8>),
}

impl WsEcho {
    pub fn start(mode: Mode) -> WsEcho {
        let messages = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (m, h) = (messages.clone(), heads.clone());
        let server = ConnServer::start(move |s| serve(s, &mode, &m, &h));
        WsEcho {
            server,
            messages,
            heads,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    pub fn messages(&self) -> usize {
        self.messages.load(Ordering::Relaxed)
    }
}

fn accept_key(key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes());
    ctx.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

/// A server frame (unmasked).
pub fn frame(opcode_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![opcode_byte];
    let n = payload.len();
    if n < 126 {
        out.push(n as u8);
    } else if n <= 65535 {
        out.push(126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

fn serve(mut s: TcpStream, mode: &Mode, count: &AtomicUsize, heads: &Mutex<Vec<String>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 65536 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end);
    let key = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    heads.lock().unwrap().push(head);
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Set-Cookie: ws_session=abc123\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(&key)
    );
    if s.write_all(answer.as_bytes()).is_err() {
        return;
    }
    match mode {
        Mode::Raw(bytes) => {
            let _ = s.write_all(bytes);
            while matches!(s.read(&mut chunk), Ok(n) if n > 0) {}
            return;
        }
        Mode::RawThenClose(bytes) => {
            let _ = s.write_all(bytes);
            return;
        }
        Mode::PingFirst(p) => {
            let _ = s.write_all(&frame(0x89, p));
        }
        Mode::Echo => {}
    }
    loop {
        // One whole client frame in `buf`?
        while let Some((fin_op, payload, used)) = client_frame(&buf) {
            buf.drain(..used);
            let reply = match fin_op & 0x0F {
                0x1 | 0x2 => {
                    count.fetch_add(1, Ordering::Relaxed);
                    frame(fin_op, &payload)
                }
                0x8 => {
                    let _ = s.write_all(&frame(0x88, &payload));
                    return;
                }
                0x9 => frame(0x8A, &payload),
                0xA => {
                    // The pong to PingFirst: say so in a text message.
                    frame(0x81, &[b"pong:".as_slice(), &payload].concat())
                }
                _ => return,
            };
            if s.write_all(&reply).is_err() {
                return;
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// (first byte, unmasked payload, bytes used) of a masked client frame.
fn client_frame(b: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (b0, b1) = (*b.first()?, *b.get(1)?);
    assert!(b1 & 0x80 != 0, "client frames must be masked");
    let (len, at) = match b1 & 0x7F {
        126 => (u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize, 4),
        127 => (
            u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let mask = b.get(at..at + 4)?;
    let payload = b.get(at + 4..at + 4 + len)?;
    let p = payload
        .iter()
        .enumerate()
        .map(|(i, x)| x ^ mask[i & 3])
        .collect();
    Some((b0, p, at + 4 + len))
}
