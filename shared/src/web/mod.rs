//! The HTTP contract, independent of the transport and of any domain: routes, auth, the
//! envelope, errors, ETags, lists and pagination. API Gateway events and the local server
//! both turn their request into [`RawRequest`] and hand it to the route table (`api.rs`).

pub mod audit;
pub mod auth;
pub mod error;
pub mod list;
pub mod request;
pub mod response;
pub mod router;
pub mod sql;

pub use audit::Audit;
pub use auth::{Principal, Role};
pub use error::{ApiError, ApiResult};
pub use list::{ListParams, Page};
pub use request::{Query, RawRequest, Req};
pub use response::ApiResponse;

/// Largest accepted request body (413 above).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Every route lives under this prefix.
pub const API_PREFIX: &str = "/api/v1";
