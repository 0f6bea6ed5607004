//! locusta: Locust's way of working (users as code, weighted tasks, live
//! stats, Locust-format reports) on a thread-per-core io_uring engine.
//!
//! The binary (`src/main.rs`) is a thin edge over these modules:
//! `cli`/`config` turn flags into a [`config::RunConfig`], `engine` runs
//! shards of users and exposes the [`engine::Controller`], `http` is the
//! hand-rolled HTTP/1.1 client, `stats` holds HDR histograms and counters,
//! `report` renders console tables and CSV, `demo` is the built-in target.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod engine;
pub mod headless;
pub mod http;
pub mod limits;
pub mod report;
pub mod script;
pub mod shape;
pub mod stats;
pub mod task_ratio;
pub mod web;
