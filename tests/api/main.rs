//! Integration tests: the real services over gRPC on 127.0.0.1:0, a fresh database per test.
//! The same suite runs on SQLite and, with GOVIT_TEST_POSTGRES_URL set, on PostgreSQL.

mod authorization;
mod bench;
mod boundaries;
mod checkpoints;
mod cli;
mod concurrency;
mod deploy;
mod documents;
mod draws;
mod duplicates;
mod helpers;
mod inspector;
mod integrity;
mod lifecycle;
mod localized;
mod organisations;
mod platform;
mod queries;
mod registry;
mod resources;
mod retries;
mod roster;
mod scheduling;
mod supervision;
mod system;
mod translog;
mod uploads;
mod validation;
mod witness;
