//! The integration tests: one binary (one link, one process sharing the 2 test threads), a
//! module per area. Fixtures shared by the areas are in the support library (`tests/support`):
//! the local stack over a fresh database, the HTTP client, resources made through the API,
//! scratch databases on the shared servers, a private PostgreSQL server.
//!
//! Run one area with a filter, e.g. `cargo test --test it -- ledger::`.

mod aggregation;
mod alerts;
mod audit;
mod auth;
mod aws_emulated;
mod bad_input;
mod capacity;
mod checks;
mod collect;
mod console;
mod contract;
mod credentials;
mod deploy;
mod exports;
mod instances;
mod lambda;
mod ledger;
mod liveness;
mod onboarding;
mod restart;
mod system;
mod tables;
mod tags;
mod tags_bulk;
mod tasks;
mod tls;
