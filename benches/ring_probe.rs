//! The io_uring kernel-interface probe (issue 15): what registered files,
//! linked send→recv, skipped send completions, multishot receive with a
//! provided-buffer ring and larger completion batches would save per
//! request, measured on the `io-uring` crate directly, with no runtime.
//!
//! N keep-alive connections each send the same GET and read the whole
//! response (locusta's own `ResponseParser`, so parsing costs what it costs
//! in locusta) in a loop, all on one ring, one thread. Variants, each adding
//! to the previous one:
//! - `plain`: a `Send` SQE, its CQE, a `Recv` SQE, its CQE: the ops monoio
//!   issues for locusta's raw loop, without monoio;
//! - `fixed`: + registered files (`types::Fixed`);
//! - `linked`: + the send linked to the recv (`IO_LINK`), both queued at once;
//! - `skip`: + no CQE for a successful send (`SKIP_SUCCESS`): one CQE per
//!   request;
//! - `multishot`: + one `RecvMulti` per connection over a provided-buffer
//!   ring instead of a `Recv` per request.
//!
//! The ring is set up as locusta's shards set up theirs (SINGLE_ISSUER,
//! DEFER_TASKRUN). `--wait N` waits for N completions per `io_uring_enter` (monoio waits for
//! 1). Prints µs of this process's CPU (user + sys, `getrusage`) per request
//! over the measured window. It owns no part of locusta; it only informs the
//! decision recorded in benches/README.md.
//!
//! `cargo bench --bench ring_probe -- --target 127.0.0.1:PORT [--conns 64]
//! [--secs 5] [--variants plain,fixed,linked,skip,multishot] [--wait 1]`
//! (e.g. against benches/nginx.conf; pin with `taskset -c 1`). Without
//! `--target` under `cargo bench` it says so and exits; under
//! `cargo test --all-targets` (no `--bench`) it runs every variant as a short
//! smoke against a tiny HTTP server of its own on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use locusta::http::{DiscardBody, ResponseParser};

const VARIANTS: [&str; 5] = ["plain", "fixed", "linked", "skip", "multishot"];
/// Per connection read buffer (plain recv) and provided buffer size.
const BUF: usize = 4096;
const SEND: u64 = 1;
const RECV: u64 = 2;
/// Provided-buffer group id.
const BGID: u16 = 7;

#[derive(Clone, Copy)]
struct Variant {
    fixed: bool,
    linked: bool,
    skip: bool,
    multishot: bool,
}

impl Variant {
    fn named(name: &str) -> Option<Variant> {
        let rank = VARIANTS.iter().position(|v| *v == name)?;
        Some(Variant {
            fixed: rank >= 1,
            linked: rank >= 2,
            skip: rank >= 3,
            multishot: rank >= 4,
        })
    }
}

struct Conn {
    stream: TcpStream,
    parser: ResponseParser,
    buf: Vec<u8>,
    /// An incomplete response head, kept until more bytes come.
    carry: Vec<u8>,
}

/// The provided-buffer ring: `entries` descriptors (page aligned, the
/// kernel reads them) and the buffers they point at.
struct BufRing {
    ring: *mut types::BufRingEntry,
    layout: std::alloc::Layout,
    entries: u16,
    tail: u16,
    bufs: Vec<u8>,
}

impl BufRing {
    fn new(entries: u16) -> BufRing {
        let layout = std::alloc::Layout::from_size_align(
            entries as usize * std::mem::size_of::<types::BufRingEntry>(),
            4096,
        )
        .expect("layout");
        // SAFETY: a non-zero size; zeroed memory is a valid empty ring.
        let ring = unsafe { std::alloc::alloc_zeroed(layout) } as *mut types::BufRingEntry;
        assert!(!ring.is_null(), "out of memory");
        let mut br = BufRing {
            ring,
            layout,
            entries,
            tail: 0,
            bufs: vec![0u8; entries as usize * BUF],
        };
        for bid in 0..entries {
            br.push(bid);
        }
        br.publish();
        br
    }

    /// Hand buffer `bid` back to the kernel (visible after `publish`).
    fn push(&mut self, bid: u16) {
        let slot = (self.tail & (self.entries - 1)) as usize;
        // SAFETY: slot < entries; the kernel reads only entries before the
        // published tail, and this one is past it.
        let entry = unsafe { &mut *self.ring.add(slot) };
        entry.set_addr(self.bufs[bid as usize * BUF..].as_ptr() as u64);
        entry.set_len(BUF as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field of the ring's first entry, written with
        // release ordering as liburing does.
        unsafe {
            let tail = types::BufRingEntry::tail(self.ring) as *const std::sync::atomic::AtomicU16;
            (*tail).store(self.tail, std::sync::atomic::Ordering::Release);
        }
    }

    fn buf(&self, bid: u16, len: usize) -> &[u8] {
        &self.bufs[bid as usize * BUF..][..len]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring that used it
        // is dropped first (see `run`).
        unsafe { std::alloc::dealloc(self.ring.cast(), self.layout) }
    }
}

struct Outcome {
    requests: u64,
    cpu: Duration,
    wall: Duration,
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn fd_of(conns: &[Conn], v: Variant, i: usize) -> (Option<types::Fixed>, types::Fd) {
    let fd: RawFd = conns[i].stream.as_raw_fd();
    (v.fixed.then_some(types::Fixed(i as u32)), types::Fd(fd))
}

fn push(ring: &mut IoUring, sqe: squeue::Entry) {
    // SAFETY: every buffer an SQE points at (the request, a connection's
    // read buffer, the provided buffers) outlives the ring.
    while unsafe { ring.submission().push(&sqe) }.is_err() {
        ring.submit().expect("submit");
    }
}

/// Queue connection `i`'s request (and with `linked`, its recv after it).
fn queue_request(ring: &mut IoUring, conns: &mut [Conn], v: Variant, i: usize, req: &[u8]) {
    conns[i].parser.start(false);
    let (fixed, fd) = fd_of(conns, v, i);
    let send = match fixed {
        Some(f) => opcode::Send::new(f, req.as_ptr(), req.len() as u32).build(),
        None => opcode::Send::new(fd, req.as_ptr(), req.len() as u32).build(),
    };
    let mut flags = squeue::Flags::empty();
    if v.linked && !v.multishot {
        flags |= squeue::Flags::IO_LINK;
    }
    if v.skip {
        flags |= squeue::Flags::SKIP_SUCCESS;
    }
    push(ring, send.flags(flags).user_data((i as u64) << 8 | SEND));
    if v.linked && !v.multishot {
        queue_recv(ring, conns, v, i);
    }
}

fn queue_recv(ring: &mut IoUring, conns: &mut [Conn], v: Variant, i: usize) {
    let (fixed, fd) = fd_of(conns, v, i);
    let sqe = if v.multishot {
        let f = fixed.expect("multishot runs on fixed files");
        opcode::RecvMulti::new(f, BGID).build()
    } else {
        let buf = conns[i].buf.as_mut_ptr();
        match fixed {
            Some(f) => opcode::Recv::new(f, buf, BUF as u32).build(),
            None => opcode::Recv::new(fd, buf, BUF as u32).build(),
        }
    };
    push(ring, sqe.user_data((i as u64) << 8 | RECV));
}

/// Feed received bytes to a connection's parser; true when the response is
/// complete. `carry` keeps an incomplete head (rare: a head split by TCP).
fn feed(parser: &mut ResponseParser, carry: &mut Vec<u8>, bytes: &[u8]) -> bool {
    let (used, done) = if carry.is_empty() {
        let (used, done) = parser
            .feed(bytes, &mut DiscardBody)
            .unwrap_or_else(|e| panic!("bad response: {e}"));
        carry.extend_from_slice(&bytes[used..]);
        (0, done)
    } else {
        carry.extend_from_slice(bytes);
        parser
            .feed(carry, &mut DiscardBody)
            .unwrap_or_else(|e| panic!("bad response: {e}"))
    };
    carry.drain(..used);
    assert!(!done || carry.is_empty(), "bytes after a response");
    assert!(
        !done || parser.status() == 200,
        "status {}",
        parser.status()
    );
    done
}

/// Run one variant: `conns` connections to `target` until `limit` requests
/// or `secs` have passed.
fn run(
    target: SocketAddr,
    v: Variant,
    n: usize,
    wait: usize,
    secs: Duration,
    limit: u64,
) -> Outcome {
    let req = format!("GET / HTTP/1.1\r\nHost: {target}\r\n\r\n").into_bytes();
    let mut conns: Vec<Conn> = (0..n)
        .map(|_| {
            let stream = TcpStream::connect(target).expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            Conn {
                stream,
                parser: ResponseParser::new(),
                buf: vec![0u8; BUF],
                carry: Vec::new(),
            }
        })
        .collect();
    let bufs = v
        .multishot
        .then(|| BufRing::new((2 * n).next_power_of_two().max(64) as u16));
    // As locusta's shards build theirs (engine::shard::build_uring_runtime).
    let mut ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build((4 * n).next_power_of_two().max(64) as u32)
        .expect("io_uring with DEFER_TASKRUN (kernel 6.1+)");
    if v.fixed {
        let fds: Vec<RawFd> = conns.iter().map(|c| c.stream.as_raw_fd()).collect();
        ring.submitter()
            .register_files(&fds)
            .expect("register_files");
    }
    if let Some(b) = &bufs {
        // SAFETY: the ring memory outlives `ring` (dropped first below).
        unsafe {
            ring.submitter()
                .register_buf_ring(b.ring as u64, b.entries, BGID)
        }
        .expect("register_buf_ring (kernel 5.19+)");
    }
    let mut bufs = bufs;
    for i in 0..n {
        if v.multishot {
            queue_recv(&mut ring, &mut conns, v, i);
        }
        queue_request(&mut ring, &mut conns, v, i, &req);
    }
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let mut requests = 0u64;
    while requests < limit && t0.elapsed() < secs {
        ring.submit_and_wait(wait.min(n)).expect("io_uring_enter");
        let mut returned = false;
        loop {
            let Some(cqe) = ring.completion().next() else {
                break;
            };
            let i = (cqe.user_data() >> 8) as usize;
            let res = cqe.result();
            match cqe.user_data() & 0xff {
                SEND => {
                    assert!(res as usize == req.len(), "send: {res}");
                    if !v.linked && !v.multishot {
                        queue_recv(&mut ring, &mut conns, v, i);
                    }
                }
                _ if v.multishot => {
                    if res == -libc::ENOBUFS {
                        queue_recv(&mut ring, &mut conns, v, i);
                        continue;
                    }
                    assert!(res > 0, "recv: {res}");
                    let b = bufs.as_mut().expect("buffer ring");
                    let bid = cqueue::buffer_select(cqe.flags()).expect("a provided buffer");
                    let c = &mut conns[i];
                    let done = feed(&mut c.parser, &mut c.carry, b.buf(bid, res as usize));
                    b.push(bid);
                    returned = true;
                    if !cqueue::more(cqe.flags()) {
                        queue_recv(&mut ring, &mut conns, v, i);
                    }
                    if done {
                        requests += 1;
                        queue_request(&mut ring, &mut conns, v, i, &req);
                    }
                }
                _ => {
                    assert!(res > 0, "recv: {res}");
                    let c = &mut conns[i];
                    if feed(&mut c.parser, &mut c.carry, &c.buf[..res as usize]) {
                        requests += 1;
                        queue_request(&mut ring, &mut conns, v, i, &req);
                    } else {
                        queue_recv(&mut ring, &mut conns, v, i);
                    }
                }
            }
        }
        if returned {
            bufs.as_ref().expect("buffer ring").publish();
        }
    }
    let out = Outcome {
        requests,
        cpu: cpu_time() - cpu0,
        wall: t0.elapsed(),
    };
    drop(ring);
    drop(bufs);
    out
}

/// A tiny keep-alive HTTP server for the smoke run: one thread per
/// connection, one fixed response per request head it reads.
fn smoke_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            std::thread::spawn(move || {
                let body = "ok\n";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        if s.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        let target = smoke_server();
        for name in VARIANTS {
            let v = Variant::named(name).expect("a variant");
            let out = run(target, v, 4, 2, Duration::from_secs(10), 400);
            assert!(
                out.requests >= 400,
                "{name}: only {} requests",
                out.requests
            );
        }
        println!("ring_probe: smoke run, every variant answered (cargo bench --bench ring_probe -- --target HOST:PORT measures)");
        return;
    }
    let Some(target) = flag(&args, "--target") else {
        println!(
            "ring_probe: skipped, no --target 127.0.0.1:PORT given (see benches/ring_probe.rs)"
        );
        return;
    };
    let target: SocketAddr = target.parse().expect("--target 127.0.0.1:PORT");
    assert!(target.ip().is_loopback(), "the probe only loads 127.0.0.1");
    let n: usize = flag(&args, "--conns").map_or(64, |s| s.parse().expect("--conns N"));
    let secs: f64 = flag(&args, "--secs").map_or(5.0, |s| s.parse().expect("--secs S"));
    let wait: usize = flag(&args, "--wait").map_or(1, |s| s.parse().expect("--wait N"));
    let names = flag(&args, "--variants").unwrap_or_else(|| VARIANTS.join(","));
    for name in names.split(',') {
        let v =
            Variant::named(name).unwrap_or_else(|| panic!("variant {name}: one of {VARIANTS:?}"));
        let out = run(target, v, n, wait, Duration::from_secs_f64(secs), u64::MAX);
        println!(
            "{name:<10} wait {wait:<3} {n} conns: {:>8} requests, {:>7.0} req/s, {:.3} us CPU/request",
            out.requests,
            out.requests as f64 / out.wall.as_secs_f64(),
            out.cpu.as_secs_f64() * 1e6 / out.requests.max(1) as f64
        );
    }
}
