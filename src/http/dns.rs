//! Host names → IP addresses, at connect time, without blocking a shard.
//!
//! Owns the per-shard cache, the process's resolver threads and the test
//! hooks that stand in for the system resolver. It does not own sockets
//! (`dial`) nor IP literals (they never get here: `url` parses them).
//!
//! - **Where lookups run.** `getaddrinfo` blocks, so it runs on a few
//!   resolver threads per process ([`RESOLVER_THREADS`], started on the first
//!   lookup: runs aimed at IP literals start none), fed by a bounded queue
//!   ([`MAX_QUEUED`]). A name already being looked up is not queued again:
//!   every shard that needs it shares the one lookup in flight.
//! - **How a shard waits.** monoio is built without its `sync` feature, so a
//!   resolver thread cannot wake a shard's task. A waiting connect polls the
//!   lookup's result with short timer sleeps (1 ms doubling to 20 ms); lookups
//!   are rare (one per name per TTL per process), so this costs nothing on the
//!   request path, and the shard's loop keeps running other users meanwhile.
//!   The wait is bounded by the connect timeout (`dns: <name>: no answer
//!   within 5s`).
//! - **The cache.** One per shard (a shard is one thread: a `thread_local`),
//!   keyed by the lowercased name, entries live `--dns-ttl` (default 30 s).
//!   When an entry expires the old addresses keep being served while one
//!   refresh runs (no connect waits on a refresh); a refresh that fails
//!   keeps the old addresses. A name with no good addresses fails as
//!   `dns: <name>: <reason>`, remembered for min(TTL, 1 s) so users backing
//!   off do not queue a lookup each. `--dns-ttl 0` caches nothing: every
//!   connect waits for its own fresh answer (still deduplicated in flight).
//! - **Several addresses.** Each new connection on a shard takes the name's
//!   next address in turn (round robin), so a load box aimed at a
//!   DNS-balanced service spreads its connections. An address a connect
//!   failed on sits out for a second ([`SIT_OUT`]): the shard's new
//!   connections take the name's other addresses meanwhile (all of them
//!   failing: plain turns), so no user keeps retrying a dead address.
//!   When a name has IPv4 addresses only those are used (servers commonly
//!   listen on 0.0.0.0 only, and `localhost` often has both families);
//!   otherwise its IPv6 addresses.
//! - **Test hooks** (hidden, for the tests only): `LOCUSTA_TEST_HOSTS=FILE`,
//!   a hosts-format file consulted before the system resolver (lines `IP
//!   name...`; a name on several lines has several addresses, which
//!   /etc/hosts cannot give without editing it), and
//!   `LOCUSTA_TEST_DNS_DELAY_MS=N`, a pause before every lookup (a hanging
//!   resolver). [`override_host`], [`set_lookup_delay`] and [`lookups_of`]
//!   do the same in-process.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::error::DnsFailure;
use super::{HttpError, Millis};

/// Lookups running at once per process.
pub const RESOLVER_THREADS: usize = 4;
/// Distinct names waiting for a resolver thread; past it a lookup fails at
/// once (`resolver busy`) rather than queueing without bound.
pub const MAX_QUEUED: usize = 1024;
/// Names cached per shard (a script inventing names cannot grow it).
const MAX_ENTRIES: usize = 4096;
/// How long a failed lookup is remembered, at most.
const NEGATIVE_TTL: Duration = Duration::from_secs(1);
/// How long an address a connect just failed on is skipped by the shard's
/// other new connections (while the name has other addresses).
pub const SIT_OUT: Duration = Duration::from_secs(1);
const POLL_FIRST: Duration = Duration::from_millis(1);
const POLL_MAX: Duration = Duration::from_millis(20);

/// A lookup's answer: addresses in the order to use them, or why none.
type Answer = Result<Arc<[IpAddr]>, Arc<str>>;

/// One lookup in flight, shared by every shard waiting for the name.
#[derive(Default)]
struct Lookup {
    answer: OnceLock<Answer>,
}

struct Resolver {
    queue: crossbeam_channel::Sender<(Arc<str>, Arc<Lookup>)>,
    in_flight: Mutex<HashMap<Arc<str>, Arc<Lookup>>>,
}

fn resolver() -> &'static Resolver {
    static RESOLVER: OnceLock<Resolver> = OnceLock::new();
    RESOLVER.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::bounded::<(Arc<str>, Arc<Lookup>)>(MAX_QUEUED);
        for i in 0..RESOLVER_THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("locusta-dns-{i}"))
                .spawn(move || {
                    // Ends never: the sender lives in a static.
                    while let Ok((name, lookup)) = rx.recv() {
                        let _ = lookup.answer.set(lookup_blocking(&name));
                        let mut in_flight = lock(&resolver().in_flight);
                        if in_flight
                            .get(&name)
                            .is_some_and(|l| Arc::ptr_eq(l, &lookup))
                        {
                            in_flight.remove(&name);
                        }
                    }
                });
            if let Err(e) = spawned {
                // Fewer threads only means fewer lookups at once; with none,
                // lookups end in the connect timeout, named.
                log::warn!("cannot start DNS resolver thread {i}: {e}");
            }
        }
        Resolver {
            queue: tx,
            in_flight: Mutex::new(HashMap::new()),
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The lookup for `name`: the one in flight, or a new one queued.
fn start_lookup(name: &str) -> Arc<Lookup> {
    let r = resolver();
    let mut in_flight = lock(&r.in_flight);
    if let Some(l) = in_flight.get(name) {
        return l.clone();
    }
    let lookup = Arc::new(Lookup::default());
    let name: Arc<str> = name.into();
    match r.queue.try_send((name.clone(), lookup.clone())) {
        Ok(()) => {
            in_flight.insert(name, lookup.clone());
        }
        Err(_) => {
            let busy = format!("resolver busy ({MAX_QUEUED} lookups queued)");
            let _ = lookup.answer.set(Err(busy.into()));
        }
    }
    lookup
}

/// What a shard knows about one name.
struct Entry {
    /// The last good answer.
    addrs: Option<Rc<[IpAddr]>>,
    /// Set when the last answer was a failure and there are no addresses.
    failure: Option<DnsFailure>,
    /// Until when the entry answers without a new lookup.
    expires: Instant,
    pending: Option<Arc<Lookup>>,
    /// Round-robin position over `addrs`.
    next: usize,
    /// Addresses a connect failed on, skipped until then.
    failing: Vec<(IpAddr, Instant)>,
}

thread_local! {
    static CACHE: RefCell<HashMap<Box<str>, Entry>> = RefCell::new(HashMap::new());
}

enum Step {
    Ready(IpAddr),
    Failed(DnsFailure),
    Wait,
}

/// The address for a new connection to `host`: cached, or looked up on a
/// resolver thread while this task sleeps (bounded by `timeout`).
pub async fn resolve(host: &str, ttl: Duration, timeout: Duration) -> Result<IpAddr, HttpError> {
    let key = host.to_ascii_lowercase();
    let started = Instant::now();
    let mut pause = POLL_FIRST;
    loop {
        match step(&key, ttl) {
            Step::Ready(ip) => return Ok(ip),
            Step::Failed(f) => return Err(HttpError::Dns(f)),
            Step::Wait => {}
        }
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            let reason = format!("no answer within {}", Millis::from_duration(timeout));
            return Err(HttpError::Dns(DnsFailure::new(&key, &reason)));
        }
        monoio::time::sleep(pause.min(left)).await;
        pause = pause.saturating_mul(2).min(POLL_MAX);
    }
}

/// One look at the shard's cache: take in a finished lookup, start one if
/// the entry is stale, and answer if we can.
fn step(key: &str, ttl: Duration) -> Step {
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        let now = Instant::now();
        if !cache.contains_key(key) && cache.len() >= MAX_ENTRIES {
            cache.retain(|_, e| e.pending.is_some() || now < e.expires);
            if cache.len() >= MAX_ENTRIES {
                cache.retain(|_, e| e.pending.is_some());
            }
        }
        let e = cache.entry(key.into()).or_insert_with(|| Entry {
            addrs: None,
            failure: None,
            expires: now,
            pending: None,
            next: 0,
            failing: Vec::new(),
        });
        let mut fresh = now < e.expires;
        if let Some(answer) = e.pending.as_ref().and_then(|p| p.answer.get()) {
            match answer {
                Ok(addrs) => {
                    e.addrs = Some(addrs.iter().copied().collect());
                    e.failure = None;
                    e.expires = now + ttl;
                }
                Err(reason) if e.addrs.is_some() => {
                    log::debug!("dns: {key}: refresh failed ({reason}); keeping the old addresses");
                    e.expires = now + ttl.min(NEGATIVE_TTL);
                }
                Err(reason) => {
                    e.failure = Some(DnsFailure::new(key, reason));
                    e.expires = now + ttl.min(NEGATIVE_TTL);
                }
            }
            e.pending = None;
            // Even with a TTL of 0 an answer serves the connects that waited.
            fresh = true;
        }
        if !fresh && e.pending.is_none() {
            e.pending = Some(start_lookup(key));
        }
        // Stale addresses serve while the refresh runs, unless the TTL is 0
        // (then every connect waits for its own answer).
        let usable = fresh || !ttl.is_zero();
        match (&e.addrs, e.failure) {
            (_, Some(f)) if fresh => Step::Failed(f),
            (Some(addrs), None) if usable && !addrs.is_empty() => {
                // The next address in turn that is not sitting out (or
                // the next one, when every address is failing).
                e.failing.retain(|(_, until)| now < *until);
                let n = addrs.len();
                let at = (0..n)
                    .map(|i| e.next.wrapping_add(i) % n)
                    .find(|&at| {
                        addrs
                            .get(at)
                            .is_some_and(|ip| !e.failing.iter().any(|(f, _)| f == ip))
                    })
                    .unwrap_or(e.next % n);
                e.next = at.wrapping_add(1);
                match addrs.get(at) {
                    Some(ip) => Step::Ready(*ip),
                    None => Step::Wait,
                }
            }
            _ => Step::Wait,
        }
    })
}

/// A connect to `ip`, an address of `host`, failed: this shard's other new
/// connections skip it for [`SIT_OUT`], so no user keeps retrying a dead
/// address of a name that has live ones.
pub fn connect_failed(host: &str, ip: IpAddr) {
    let key = host.to_ascii_lowercase();
    CACHE.with(|cache| {
        if let Some(e) = cache.borrow_mut().get_mut(key.as_str()) {
            let until = Instant::now() + SIT_OUT;
            match e.failing.iter_mut().find(|(f, _)| *f == ip) {
                Some(slot) => slot.1 = until,
                None => e.failing.push((ip, until)),
            }
        }
    });
}

/// A startup check, off any shard: why `host` does not resolve now, or
/// `None` when it does or has no answer within `wait` (the lookup then
/// goes on in the background; the run does not wait for it).
pub fn check_at_start(host: &str, wait: Duration) -> Option<String> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let name = host.to_ascii_lowercase();
    std::thread::Builder::new()
        .name("locusta-dns-check".into())
        .spawn(move || {
            let _ = tx.send(lookup_blocking(&name));
        })
        .ok()?;
    match rx.recv_timeout(wait) {
        Ok(Err(reason)) => Some(reason.to_string()),
        _ => None,
    }
}

/// `getaddrinfo` (or the test hosts), on a resolver thread.
fn lookup_blocking(name: &str) -> Answer {
    let delay = *lock(&hooks().delay);
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    {
        let mut counts = lock(&hooks().lookups);
        if counts.len() < MAX_ENTRIES || counts.contains_key(name) {
            let n = counts.entry(name.to_string()).or_insert(0);
            *n = n.saturating_add(1);
        }
    }
    let listed = lock(&hooks().hosts).get(name).cloned();
    let found: Vec<IpAddr> = match listed {
        Some(addrs) => addrs,
        None => match (name, 0u16).to_socket_addrs() {
            Ok(it) => it.map(|a| a.ip()).collect(),
            Err(e) => return Err(reason(&e).into()),
        },
    };
    let mut addrs: Vec<IpAddr> = Vec::with_capacity(found.len());
    let v4 = found.iter().any(IpAddr::is_ipv4);
    for ip in found {
        if ip.is_ipv4() == v4 && !addrs.contains(&ip) {
            addrs.push(ip);
        }
    }
    if addrs.is_empty() {
        return Err("no addresses".into());
    }
    Ok(addrs.into())
}

/// The resolver's own words, without std's generic prefix.
fn reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.strip_prefix("failed to lookup address information: ") {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

struct Hooks {
    hosts: Mutex<HashMap<String, Vec<IpAddr>>>,
    delay: Mutex<Duration>,
    lookups: Mutex<HashMap<String, u64>>,
}

fn hooks() -> &'static Hooks {
    static HOOKS: OnceLock<Hooks> = OnceLock::new();
    HOOKS.get_or_init(|| {
        let hosts = std::env::var("LOCUSTA_TEST_HOSTS")
            .ok()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .map(|text| parse_hosts(&text))
            .unwrap_or_default();
        let delay = std::env::var("LOCUSTA_TEST_DNS_DELAY_MS")
            .ok()
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .map_or(Duration::ZERO, Duration::from_millis);
        Hooks {
            hosts: Mutex::new(hosts),
            delay: Mutex::new(delay),
            lookups: Mutex::new(HashMap::new()),
        }
    })
}

/// Hosts-file lines `IP name [name...]`, `#` comments; a name on several
/// lines gets every address, in file order.
fn parse_hosts(text: &str) -> HashMap<String, Vec<IpAddr>> {
    let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        for name in words {
            map.entry(name.to_ascii_lowercase()).or_default().push(ip);
        }
    }
    map
}

/// Test hook: `name` resolves to `addrs` in this process (replacing the
/// system's answer; empty = "no addresses").
#[doc(hidden)]
pub fn override_host(name: &str, addrs: &[IpAddr]) {
    lock(&hooks().hosts).insert(name.to_ascii_lowercase(), addrs.to_vec());
}

/// Test hook: pause every lookup in this process this long first.
#[doc(hidden)]
pub fn set_lookup_delay(delay: Duration) {
    *lock(&hooks().delay) = delay;
}

/// Test hook: how many lookups of `name` (lowercased) this process made.
#[doc(hidden)]
pub fn lookups_of(name: &str) -> u64 {
    lock(&hooks().lookups)
        .get(&name.to_ascii_lowercase())
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lines_accumulate_addresses() {
        let map =
            parse_hosts("# c\n127.0.0.2 Multi.test a\n127.0.0.3 multi.test\nbad x\n\n::1 v6\n");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(map["multi.test"], vec![ip("127.0.0.2"), ip("127.0.0.3")]);
        assert_eq!(map["a"], vec![ip("127.0.0.2")]);
        assert_eq!(map["v6"], vec![ip("::1")]);
        assert!(!map.contains_key("x"));
    }

    #[test]
    fn ipv4_preferred_and_duplicates_dropped() {
        override_host(
            "unit-mixed.test",
            &[
                "::1".parse().unwrap(),
                "127.0.0.9".parse().unwrap(),
                "127.0.0.9".parse().unwrap(),
            ],
        );
        let addrs = lookup_blocking("unit-mixed.test").unwrap();
        assert_eq!(&*addrs, &["127.0.0.9".parse::<IpAddr>().unwrap()]);
        override_host("unit-empty.test", &[]);
        assert_eq!(
            &*lookup_blocking("unit-empty.test").unwrap_err(),
            "no addresses"
        );
    }
}
