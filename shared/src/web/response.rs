use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::json;

/// A response before the router adds request id and ETag.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// What the handler adds to the audit entry of a mutating request (`web::audit`).
    pub audit: Option<Box<super::audit::Audit>>,
}

impl ApiResponse {
    fn envelope(status: StatusCode, data: impl Serialize) -> Self {
        let body = serde_json::to_vec(&json!({"success": true, "data": data}))
            .unwrap_or_else(|_| br#"{"success":false}"#.to_vec());
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        ApiResponse {
            status,
            headers,
            body: Bytes::from(body),
            audit: None,
        }
    }
    pub fn ok(data: impl Serialize) -> Self {
        Self::envelope(StatusCode::OK, data)
    }
    pub fn created(data: impl Serialize) -> Self {
        Self::envelope(StatusCode::CREATED, data)
    }
    /// `201 Created` with `Location: /api/v1{collection}/{id}`.
    pub fn created_at(collection: &str, id: impl std::fmt::Display, data: impl Serialize) -> Self {
        Self::created(data).with_location(collection, id)
    }
    /// `Location: /api/v1{collection}/{id}`.
    pub fn with_location(self, collection: &str, id: impl std::fmt::Display) -> Self {
        self.with_header(
            http::header::LOCATION,
            &format!("{}{collection}/{id}", super::API_PREFIX),
        )
    }
    pub fn accepted(data: impl Serialize) -> Self {
        Self::envelope(StatusCode::ACCEPTED, data)
    }
    pub fn multi_status(data: impl Serialize) -> Self {
        Self::envelope(StatusCode::MULTI_STATUS, data)
    }
    /// Attaches the handler's part of the audit entry (changes, targets, counts).
    pub fn audit(mut self, audit: super::audit::Audit) -> Self {
        self.audit = Some(Box::new(audit));
        self
    }
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
    pub fn with_header(mut self, name: http::header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }
}
