//! The TLS session store shared by every connection of a run, sized for a
//! load generator: many connections to the same server at once.
//!
//! rustls' own in-memory store keeps at most 8 TLS 1.3 tickets per server,
//! and each ticket is used once (RFC 8446 §C.4: clients should not reuse a
//! ticket). With 64 users reconnecting at once (`Connection: close`, a
//! handshake per request) most found the pool empty and paid a full
//! handshake: measured 73% of connections resumed against nginx, where wrk
//! (OpenSSL, which reuses one session) resumed 99%. Here a server keeps up
//! to [`TICKETS_PER_SERVER`] tickets, newest used first, oldest dropped
//! first; the rest (key exchange hint, one TLS 1.2 session) as rustls does.
//! One `Mutex` over a small map, taken once or twice per handshake, never
//! per request.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;

/// Tickets kept per server: more than the users a shard runs at once
/// against one origin in any test we know, and a bound on memory (a ticket
/// is a few hundred bytes).
pub const TICKETS_PER_SERVER: usize = 4096;

/// Servers remembered; past it one is forgotten (the store only saves
/// handshakes, so forgetting is always safe).
const MAX_SERVERS: usize = 256;

#[derive(Debug, Default)]
pub struct SessionStore {
    servers: Mutex<HashMap<ServerName<'static>, Server>>,
}

#[derive(Debug, Default)]
struct Server {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    tls13: VecDeque<Tls13ClientSessionValue>,
}

impl SessionStore {
    fn lock(&self) -> MutexGuard<'_, HashMap<ServerName<'static>, Server>> {
        // A panic elsewhere while holding it leaves a map that is still
        // consistent (every update is one call): keep using it.
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_server(&self, name: ServerName<'static>, f: impl FnOnce(&mut Server)) {
        let mut servers = self.lock();
        if servers.len() >= MAX_SERVERS && !servers.contains_key(&name) {
            if let Some(victim) = servers.keys().next().cloned() {
                servers.remove(&victim);
            }
        }
        f(servers.entry(name).or_default());
    }

    /// How many TLS 1.3 tickets are kept for `name` (tests).
    pub fn tickets(&self, name: &ServerName<'_>) -> usize {
        self.lock().get(name).map_or(0, |s| s.tls13.len())
    }
}

impl ClientSessionStore for SessionStore {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.with_server(name, |s| s.kx_hint = Some(group));
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.lock().get(name).and_then(|s| s.kx_hint)
    }

    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.with_server(name, |s| s.tls12 = Some(value));
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.lock().get(name).and_then(|s| s.tls12.clone())
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        if let Some(s) = self.lock().get_mut(name) {
            s.tls12 = None;
        }
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.with_server(name, |s| {
            if s.tls13.len() >= TICKETS_PER_SERVER {
                s.tls13.pop_front();
            }
            s.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        // Newest first: the freshest ticket is the least likely to have
        // expired or to have been forgotten by the server.
        self.lock().get_mut(name).and_then(|s| s.tls13.pop_back())
    }
}
