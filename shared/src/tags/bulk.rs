//! Tag bulk actions (function `tags-bulk`).

use crate::http::router::Route;

pub fn routes() -> Vec<Route> {
    vec![]
}
