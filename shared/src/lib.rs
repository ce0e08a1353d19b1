//! Tidemark: the inventory and capacity history of a fleet of database servers.
//!
//! Every function (Lambda binary or the local stack) is wiring around this crate. Modules are
//! named after what users talk about; each keeps its SQL next to the code that runs it.

pub mod alerts;
pub mod api;
pub mod app;
pub mod capacity;
pub mod checks;
pub mod collect;
pub mod config;
pub mod credentials;
pub mod crypto;
pub mod db;
pub mod events;
pub mod exports;
pub mod filters;
pub mod fleet;
pub mod instances;
pub mod ledger;
pub mod queue;
pub mod storage;
pub mod system;
pub mod tables;
pub mod tags;
pub mod tasks;
pub mod telemetry;
pub mod tls;
pub mod values;
pub mod web;

pub use app::App;
pub use config::Config;
