//! The `govit` command: runs the services (all in one process with `up`, or one with `serve`),
//! applies migrations and mints development tokens. The services themselves live in their
//! crates; this crate only wires configuration to them.

#![forbid(unsafe_code)]

pub mod admin;
pub mod backup;
pub mod bench;
pub mod calendar;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod inspect;
mod inspect_checkpoint;
pub mod progress;
pub mod report;
pub mod run;
pub mod witness;
