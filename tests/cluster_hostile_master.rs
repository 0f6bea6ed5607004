//! A real `locusta --worker` process against a master written in the
//! test: a ROUTER in this process that speaks the protocol by hand and
//! asks for what no honest master would (billions of users, a host that
//! is not a URL), or changes the host between spawns. The worker must
//! refuse what it cannot honour, keep heart-beating, follow every host,
//! and end on SIGTERM. Every wait is bounded.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;

use std::time::{Duration, Instant};

use cluster_common::*;
use common::*;
use locusta::cluster::protocol::{unix_secs_f64, MasterMessage, WorkerMessage};
use locusta::cluster::transport::RouterSocket;

const LIMIT: Duration = Duration::from_secs(40);

/// The test's master: one worker, messages kept in order as they came.
struct HostileMaster {
    router: RouterSocket,
    _ctx: zmq::Context,
    worker: String,
    seen: Vec<WorkerMessage>,
}

impl HostileMaster {
    /// Bind, wait for a worker's `client_ready`, ack it.
    fn accept(port: u16) -> HostileMaster {
        let ctx = zmq::Context::new();
        let router = RouterSocket::bind(&ctx, "127.0.0.1", port).unwrap();
        let mut m = HostileMaster {
            router,
            _ctx: ctx,
            worker: String::new(),
            seen: Vec::new(),
        };
        let deadline = Instant::now() + LIMIT;
        while m.worker.is_empty() && Instant::now() < deadline {
            m.router.poll(Duration::from_millis(100));
            while let Some((from, Ok(msg))) = m.router.try_recv() {
                if let Ok(WorkerMessage::ClientReady(_)) = WorkerMessage::parse(&msg) {
                    m.worker = from;
                }
            }
        }
        assert!(!m.worker.is_empty(), "no worker joined");
        m.send(MasterMessage::Ack {
            index: 0,
            locusta_protocol: Some(1),
        });
        m
    }

    fn send(&self, msg: MasterMessage) {
        self.router.send(&msg.to_message(&self.worker));
    }

    /// Send a spawn; returns where its answers start in `seen`.
    fn spawn(&self, counts: &[(&str, u32)], host: &str) -> usize {
        self.send(MasterMessage::Spawn {
            // Strictly rising, as the worker wants.
            timestamp: unix_secs_f64(std::time::SystemTime::now()),
            user_classes_count: counts.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
            host: Some(host.to_string()),
            stop_timeout: Some(1.0),
            open_model: None,
        });
        std::thread::sleep(Duration::from_millis(20));
        self.seen.len()
    }

    /// Serve (answer heartbeats) for `d`, keeping what arrives.
    fn serve(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            self.router.poll(Duration::from_millis(50));
            while let Some((_, Ok(msg))) = self.router.try_recv() {
                let Ok(parsed) = WorkerMessage::parse(&msg) else {
                    continue;
                };
                if matches!(parsed, WorkerMessage::Heartbeat { .. }) {
                    self.send(MasterMessage::Heartbeat);
                }
                self.seen.push(parsed);
            }
        }
    }

    /// Serve until `pred` holds for a message seen from index `from` on.
    fn serve_until(
        &mut self,
        from: usize,
        what: &str,
        pred: impl Fn(&WorkerMessage) -> bool,
    ) -> WorkerMessage {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            self.serve(Duration::from_millis(100));
            if let Some(m) = self.seen[from..].iter().find(|m| pred(m)) {
                return m.clone();
            }
        }
        panic!("no {what} from the worker; saw {:?}", &self.seen[from..]);
    }

    fn heartbeats_since(&self, from: usize) -> usize {
        self.seen[from..]
            .iter()
            .filter(|m| matches!(m, WorkerMessage::Heartbeat { .. }))
            .count()
    }

    fn spawned(&mut self, from: usize) -> u32 {
        match self.serve_until(from, "spawning_complete", |m| {
            matches!(m, WorkerMessage::SpawningComplete { .. })
        }) {
            WorkerMessage::SpawningComplete { user_count, .. } => user_count,
            _ => unreachable!(),
        }
    }

    fn refusal(&mut self, from: usize) -> String {
        match self.serve_until(from, "exception", |m| {
            matches!(m, WorkerMessage::Exception { .. })
        }) {
            WorkerMessage::Exception { msg, .. } => msg,
            _ => unreachable!(),
        }
    }
}

fn raw_worker(dir: &std::path::Path, port: u16, args: &[&str], nofile: Option<u64>) -> Proc {
    let mut cmd = worker_cmd(port);
    cmd.args(args);
    if let Some(n) = nofile {
        with_nofile(&mut cmd, n);
    }
    Proc::spawn(dir, "worker", &mut cmd)
}

#[test]
fn a_worker_refuses_what_it_cannot_honour_and_keeps_heartbeating() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("hostile-master-limits");
    let port = free_port();
    let mut w = raw_worker(&dir, port, &["--max-users", "50"], None);
    let mut m = HostileMaster::accept(port);

    // A host that is not a URL, in the very first spawn.
    let at = m.spawn(&[("raw", 2)], "not a url");
    assert!(m.refusal(at).contains("not a URL"), "{}", w.logs());
    assert_eq!(m.spawned(at), 0);

    // Four billion users each of classes this worker lacks.
    let at = m.spawn(&[("Nope", u32::MAX), ("Nada", u32::MAX)], &server.url("/"));
    let msg = m.refusal(at);
    assert!(msg.contains("--max-users 50"), "{msg}");
    assert_eq!(m.spawned(at), 0);
    let from = m.seen.len();
    m.serve(Duration::from_secs(3));
    assert!(m.heartbeats_since(from) >= 2, "{}", w.logs());

    // What fits runs, and a later step past the cap keeps it.
    let at = m.spawn(&[("raw", 3)], &server.url("/"));
    assert_eq!(m.spawned(at), 3);
    let at = m.spawn(&[("raw", 51)], &server.url("/"));
    m.refusal(at);
    assert_eq!(m.spawned(at), 3);
    m.serve(Duration::from_millis(500));
    assert!(!server.requests().is_empty(), "{}", w.logs());

    w.signal(libc::SIGTERM);
    m.serve(Duration::from_secs(1));
    assert!(w.wait(LIMIT).success(), "{}", w.logs());
    let log = w.stderr();
    assert!(log.contains("Refused a spawn"), "{log}");
    assert!(log.contains("Running 3 users"), "{log}");
}

#[test]
fn a_worker_refuses_more_users_than_its_open_files_allow() {
    let server = TestServer::start(|_| ok("hi"));
    let dir = temp_dir("hostile-master-nofile");
    let port = free_port();
    let mut w = raw_worker(&dir, port, &[], Some(300));
    let mut m = HostileMaster::accept(port);
    let at = m.spawn(&[("raw", 1_000)], &server.url("/"));
    let msg = m.refusal(at);
    assert!(msg.contains("open-files limit of 300"), "{msg}");
    let at = m.spawn(&[("raw", 2)], &server.url("/"));
    assert_eq!(m.spawned(at), 2);
    w.signal(libc::SIGTERM);
    m.serve(Duration::from_secs(1));
    assert!(w.wait(LIMIT).success(), "{}", w.logs());
}

#[test]
fn every_spawns_host_applies_mid_run_and_after_a_stop() {
    let a = TestServer::start(|_| ok("a"));
    let b = TestServer::start(|_| ok("b"));
    let dir = temp_dir("hostile-master-host");
    let port = free_port();
    let mut w = raw_worker(&dir, port, &[], None);
    let mut m = HostileMaster::accept(port);
    let wait_for = |m: &mut HostileMaster, server: &TestServer, what: &str| {
        let before = server.requests().len();
        let deadline = Instant::now() + Duration::from_secs(15);
        while server.requests().len() < before + 5 {
            assert!(
                Instant::now() < deadline,
                "{what}: no requests\n{}",
                w.logs()
            );
            m.serve(Duration::from_millis(100));
        }
    };

    let at = m.spawn(&[("raw", 2)], &a.url("/"));
    assert_eq!(m.spawned(at), 2);
    wait_for(&mut m, &a, "first host");
    let at = m.spawn(&[("raw", 2)], &b.url("/"));
    assert_eq!(m.spawned(at), 2);
    wait_for(&mut m, &b, "host changed mid-run");
    // The old users are gone from A (allow what was in flight).
    m.serve(Duration::from_millis(500));
    let a_after = a.requests().len();
    m.serve(Duration::from_secs(1));
    assert!(a.requests().len() <= a_after + 2, "A still loaded");

    m.send(MasterMessage::Stop);
    let from = m.seen.len();
    m.serve_until(from, "client_stopped", |m| {
        matches!(m, WorkerMessage::ClientStopped)
    });
    let at = m.spawn(&[("raw", 1)], &a.url("/"));
    assert_eq!(m.spawned(at), 1);
    wait_for(&mut m, &a, "new run on the first host");

    w.signal(libc::SIGTERM);
    m.serve(Duration::from_secs(1));
    assert!(w.wait(LIMIT).success(), "{}", w.logs());
}
