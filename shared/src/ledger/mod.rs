//! (ledger: see its issue.)

pub mod filter;
pub mod size;

use crate::http::router::Route;

pub fn routes() -> Vec<Route> {
    vec![]
}
