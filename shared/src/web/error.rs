use http::StatusCode;
use serde_json::{json, Value};

/// An error in the contract's envelope. The message is for the caller; internal detail goes
/// to the log with the request id and never into the body.
/// Kept small (boxed rarely-set fields): it is the error type of every handler.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub details: Option<Box<Value>>,
    /// Logged (never returned) for 5xx errors.
    pub internal: Option<Box<str>>,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u32>,
}

pub type ApiResult = Result<super::ApiResponse, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            details: None,
            internal: None,
            retry_after: None,
        }
    }
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message);
        e.field = Some(field.to_string());
        e
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MALFORMED_JSON", message)
    }
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION_REQUIRED",
            "a valid bearer token is required",
        )
    }
    pub fn forbidden(needed: super::Role) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!("this action needs the {} role", needed.as_str()),
        )
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} not found"),
        )
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", message)
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "UNPROCESSABLE", message)
    }
    /// `429` with `Retry-After`: the caller has as much in flight as it may.
    pub fn too_many(message: impl Into<String>, retry_after_secs: u32) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS", message);
        e.retry_after = Some(retry_after_secs);
        e
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
    }
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error; see the log for this request id",
        );
        e.internal = Some(detail.to_string().into());
        e
    }
    /// A unique-name violation as `409 CONFLICT` on `name`, naming the resource; any other
    /// database error as usual.
    pub fn name_taken(e: tokio_postgres::Error, what: &str, name: &str) -> Self {
        let err = ApiError::from(e);
        if err.code == "CONFLICT" {
            ApiError::conflict(
                "CONFLICT",
                format!("a {what} named {name:?} already exists"),
            )
            .with_field("name")
        } else {
            err
        }
    }
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    pub fn body(&self, request_id: &str) -> Value {
        let mut error =
            json!({"code": self.code, "message": self.message, "request_id": request_id});
        if let Some(f) = &self.field {
            error["field"] = json!(f);
        }
        if let Some(d) = &self.details {
            error["details"] = (**d).clone();
        }
        json!({"success": false, "error": error})
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        match e.code() {
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
                ApiError::conflict("CONFLICT", "a resource with this name already exists")
            }
            Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => {
                ApiError::unprocessable("a referenced resource does not exist or is still in use")
            }
            Some(c) if *c == SqlState::QUERY_CANCELED => {
                let mut err = ApiError::unavailable("the database took too long to answer");
                err.internal = Some(e.to_string().into());
                err
            }
            // Class 22 (data exception: a value out of range, text PostgreSQL cannot hold, a
            // bad cast) comes from what the caller sent, not from a bug in the statement.
            Some(c) if c.code().starts_with("22") => {
                let mut err =
                    ApiError::invalid("a value in the request is out of range or not valid");
                err.internal = Some(e.to_string().into());
                err
            }
            None if e.is_closed() || is_io(&e) => {
                let mut err = ApiError::unavailable("the database is unavailable");
                err.internal = Some(e.to_string().into());
                err
            }
            _ => ApiError::internal(e),
        }
    }
}

/// A connection-level failure (server down, network), as opposed to a bug in a statement.
fn is_io(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        let mut err = ApiError::unavailable("the database is unavailable");
        err.internal = Some(e.to_string().into());
        err
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<ApiError>() {
            Ok(api) => api,
            Err(e) => match e.downcast::<tokio_postgres::Error>() {
                Ok(pg) => pg.into(),
                Err(e) => ApiError::internal(format!("{e:#}")),
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}
