//! Running one async client test on both monoio drivers, io_uring as the
//! engine's shards build it and legacy (epoll), for the HTTP client tests.
//! Included with `#[macro_use] #[path = "common/drivers.rs"] mod drivers;`.

#![allow(dead_code)]

use std::future::Future;
use std::sync::{RwLock, RwLockReadGuard};

/// Tests run in parallel threads; a test that counts the process's fds
/// needs it to itself, so it takes this lock exclusively and the others
/// share it.
pub static FD_LOCK: RwLock<()> = RwLock::new(());

pub fn shared_lock() -> RwLockReadGuard<'static, ()> {
    FD_LOCK.read().unwrap_or_else(|e| e.into_inner())
}

/// The io_uring runtime exactly as the engine's shards build it.
pub fn run_io_uring<F: Future>(fut: F) -> F::Output {
    locusta::engine::build_uring_runtime()
        .expect("io_uring runtime")
        .block_on(fut)
}

pub fn run_legacy<F: Future>(fut: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("legacy runtime")
        .block_on(fut)
}

/// `on_both_drivers!(name, …)`: for each `async fn name()`, a module `name`
/// with tests `name::io_uring` and `name::legacy`.
macro_rules! on_both_drivers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn io_uring() {
                let _shared = super::drivers::shared_lock();
                super::drivers::run_io_uring(super::$name());
            }
            #[test]
            fn legacy() {
                let _shared = super::drivers::shared_lock();
                super::drivers::run_legacy(super::$name());
            }
        }
    )*};
}
