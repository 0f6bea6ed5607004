//! Helpers shared by the Lua runtime tests (`script_runtime`,
//! `script_tasksets`, `script_errors`): scripts in temp files, tag filters,
//! a monoio runtime with timers, and a loaded shard (`Shard`) whose users
//! can be run and whose Lua globals and exceptions can be read back.
//! Included with `#[path = "common/script.rs"] mod script_common;`.
#![allow(dead_code)]

use std::cell::RefCell;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use locusta::engine::StopSignal;
use locusta::http::ClientConfig;
use locusta::script::runtime::{inspect, ShardContext, ShardScript};
use locusta::script::{ScriptError, ScriptSource, TagFilter};
use locusta::stats::{DeltaException, ShardStats};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A script file under a fresh temp dir, named `name`.
pub fn script(name: &str, text: &str) -> ScriptSource {
    let dir = std::env::temp_dir().join(format!(
        "locusta-rt-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, text).unwrap();
    ScriptSource::read(path.to_str().unwrap()).unwrap()
}

pub fn no_tags() -> TagFilter {
    TagFilter::default()
}

pub fn tags(include: &[&str], exclude: &[&str]) -> TagFilter {
    TagFilter {
        include: if include.is_empty() {
            None
        } else {
            Some(include.iter().map(|s| s.to_string()).collect())
        },
        exclude: exclude.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn block_on<F: Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("monoio runtime")
        .block_on(f)
}

pub struct Shard {
    pub script: Rc<ShardScript>,
    pub stats: Rc<RefCell<ShardStats>>,
}

pub fn load_on(src: &ScriptSource, filter: &TagFilter, classes: &[&str], shard: usize) -> Shard {
    let stats = Rc::new(RefCell::new(ShardStats::new()));
    let classes: Vec<String> = classes.iter().map(|s| s.to_string()).collect();
    let script = ShardScript::load(
        src,
        filter,
        &classes,
        ShardContext {
            shard,
            stats: stats.clone(),
            client: ClientConfig::default(),
            default_host: None,
            run_stop: None,
            run_stats: None,
        },
    )
    .unwrap_or_else(|e| panic!("load failed: {e}"));
    Shard {
        script: Rc::new(script),
        stats,
    }
}

pub fn load(src: &ScriptSource, classes: &[&str]) -> Shard {
    load_on(src, &no_tags(), classes, 0)
}

pub fn load_error(name: &str, text: &str) -> String {
    let src = script(name, text);
    let e = inspect(&src, &no_tags()).expect_err("inspect should fail");
    let ScriptError::Load { message } = e;
    // The per-shard load reports the same.
    let stats = Rc::new(RefCell::new(ShardStats::new()));
    let e2 = ShardScript::load(
        &src,
        &no_tags(),
        &[],
        ShardContext {
            shard: 0,
            stats,
            client: ClientConfig::default(),
            default_host: None,
            run_stop: None,
            run_stats: None,
        },
    )
    .err()
    .expect("load should fail");
    assert_eq!(e2.to_string(), message);
    message
}

impl Shard {
    pub fn eval(&self, code: &str) -> String {
        self.script.eval(code)
    }

    pub fn num(&self, code: &str) -> f64 {
        let s = self.eval(code);
        s.parse()
            .unwrap_or_else(|_| panic!("{code} gave {s:?}, not a number"))
    }

    pub fn exceptions(&self) -> Vec<DeltaException> {
        self.stats.borrow_mut().take_delta().exceptions
    }

    /// Run `n` users of class index `class` for `run`, then stop them
    /// gracefully and wait (bounded) until all have ended.
    pub async fn run_users(&self, class: usize, n: usize, run: Duration) -> Duration {
        let mut stops = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..n {
            let stop = Rc::new(StopSignal::default());
            handles.push(monoio::spawn(self.script.user(class, stop.clone())));
            stops.push(stop);
        }
        monoio::time::sleep(run).await;
        let stopping = Instant::now();
        for s in &stops {
            s.stop_gracefully();
        }
        let all = async {
            for h in handles {
                h.await;
            }
        };
        monoio::select! {
            _ = all => {},
            _ = monoio::time::sleep(Duration::from_secs(10)) => panic!("users did not stop within 10 s"),
        }
        stopping.elapsed()
    }
}
