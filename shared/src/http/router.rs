//! One route table for every function. Each domain module contributes `routes()`; a Lambda
//! function serves the routes of its own group, the local server serves them all.

use std::sync::OnceLock;
use std::time::Instant;

use futures::future::BoxFuture;
use http::{header, HeaderValue, Method, StatusCode};
use sha2::{Digest, Sha256};

use super::{
    ApiError, ApiResponse, ApiResult, Principal, Query, RawRequest, Req, Role, API_PREFIX,
    MAX_BODY_BYTES,
};
use crate::App;

pub type Handler = for<'a> fn(&'a App, Req) -> BoxFuture<'a, ApiResult>;

pub struct Route {
    pub method: Method,
    /// Under `/api/v1`, with `{name}` parameters.
    pub path: &'static str,
    /// `None`: no authentication (health).
    pub role: Option<Role>,
    /// The Lambda function that serves it (template.yaml wires the same).
    pub function: &'static str,
    pub handler: Handler,
}

/// `route!(GET "/instances", Viewer, "api-instances", instances::list)`
#[macro_export]
macro_rules! route {
    ($method:ident $path:literal, public, $function:literal, $handler:path) => {
        $crate::route!(@ $method $path, None, $function, $handler)
    };
    ($method:ident $path:literal, $role:ident, $function:literal, $handler:path) => {
        $crate::route!(@ $method $path, Some($crate::http::Role::$role), $function, $handler)
    };
    (@ $method:ident $path:literal, $role:expr, $function:literal, $handler:path) => {
        $crate::http::router::Route {
            method: ::http::Method::$method,
            path: $path,
            role: $role,
            function: $function,
            handler: {
                fn handler<'a>(
                    app: &'a $crate::App,
                    req: $crate::http::Req,
                ) -> ::futures::future::BoxFuture<'a, $crate::http::ApiResult> {
                    Box::pin($handler(app, req))
                }
                handler
            },
        }
    };
}

pub fn routes() -> &'static [Route] {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let mut all = Vec::new();
        all.extend(crate::instances::routes());
        all.extend(crate::credentials::routes());
        all.extend(crate::tags::routes());
        all.extend(crate::tags::bulk::routes());
        all.extend(crate::ledger::routes());
        all.extend(crate::capacity::routes());
        all.extend(crate::collect::routes());
        all.extend(crate::tasks::routes());
        all.extend(crate::exports::routes());
        all.extend(crate::system::routes());
        all.extend(crate::fleet::routes());
        all
    })
}

/// Path parameters by name, e.g. `[("id", "3")]`.
type Params = Vec<(&'static str, String)>;

/// Matches a route pattern; the score is the number of literal segments (most specific wins).
fn match_route(pattern: &'static str, segments: &[&str]) -> Option<(usize, Params)> {
    let pat: Vec<&'static str> = pattern.trim_matches('/').split('/').collect();
    if pat.len() != segments.len() {
        return None;
    }
    let mut literals = 0;
    let mut params = Vec::new();
    for (p, s) in pat.iter().zip(segments) {
        if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if s.is_empty() {
                return None;
            }
            params.push((name, (*s).to_string()));
        } else if p == s {
            literals += 1;
        } else {
            return None;
        }
    }
    Some((literals, params))
}

/// Serves one request: route, authenticate, run the handler, envelope errors, request id,
/// ETag/304 on GET. `function`: only that function's routes (Lambda); `None`: all (local).
pub async fn dispatch(app: &App, raw: RawRequest, function: Option<&str>) -> ApiResponse {
    let started = Instant::now();
    let request_id = raw
        .request_id
        .clone()
        .or_else(|| {
            raw.headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .filter(|v| {
                    !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic())
                })
                .map(str::to_string)
        })
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = raw.method.clone();
    let path = raw.path.clone();
    let if_none_match = raw
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    let result = route_and_run(app, raw, function, &request_id).await;
    let mut response = match result {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(request_id = %request_id, code = e.code, detail = e.internal.as_deref().unwrap_or(""), "request failed");
            }
            let body = serde_json::to_vec(&e.body(&request_id)).unwrap_or_default();
            let mut r = ApiResponse {
                status: e.status,
                headers: Default::default(),
                body: body.into(),
            };
            r.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
    };

    if method == Method::GET && response.status == StatusCode::OK {
        let digest = Sha256::digest(&response.body);
        let etag: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        let etag = format!("\"{etag}\"");
        if let Some(inm) = if_none_match {
            if inm.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t == etag || t.strip_prefix("W/") == Some(etag.as_str())
            }) {
                response.status = StatusCode::NOT_MODIFIED;
                response.body = Default::default();
                response.headers.remove(header::CONTENT_TYPE);
            }
        }
        if let Ok(v) = HeaderValue::from_str(&etag) {
            response.headers.insert(header::ETAG, v);
        }
        response.headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers.insert("x-request-id", v);
    }
    tracing::info!(
        request_id = %request_id,
        method = %method,
        path = %path,
        status = response.status.as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

async fn route_and_run(
    app: &App,
    raw: RawRequest,
    function: Option<&str>,
    request_id: &str,
) -> ApiResult {
    let rest = raw
        .path
        .strip_prefix(API_PREFIX)
        .filter(|r| r.is_empty() || r.starts_with('/'))
        .ok_or_else(|| ApiError::not_found("route"))?;
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let candidates: Vec<(&Route, usize, Params)> = routes()
        .iter()
        .filter(|r| function.is_none_or(|f| r.function == f))
        .filter_map(|r| match_route(r.path, &segments).map(|(score, params)| (r, score, params)))
        .collect();
    if candidates.is_empty() {
        return Err(ApiError::not_found("route"));
    }
    let best = candidates.iter().map(|c| c.1).max().unwrap_or(0);
    let (route, _, params) = candidates
        .into_iter()
        .filter(|c| c.1 == best && c.0.method == raw.method)
        .max_by_key(|c| c.1)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "method not allowed on this route",
            )
        })?;

    let principal = match route.role {
        None => Principal::anonymous(),
        Some(role) => {
            let authorization = raw
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let p = app.auth.authenticate(authorization, raw.jwt.as_ref())?;
            p.require(role)?;
            p
        }
    };
    if raw.body.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large("request body over 1 MiB"));
    }
    let req = Req {
        method: raw.method,
        path: raw.path,
        params,
        query: Query::parse(&raw.query),
        headers: raw.headers,
        body: raw.body,
        principal,
        request_id: request_id.to_string(),
    };
    (route.handler)(app, req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_over_parameters() {
        let segs = ["tags", "categories"];
        let (lit, params) = match_route("/tags/{id}", &segs).unwrap();
        assert_eq!((lit, params.len()), (1, 1));
        let (lit, _) = match_route("/tags/categories", &segs).unwrap();
        assert_eq!(lit, 2);
        assert!(match_route("/tags", &segs).is_none());
    }

    #[test]
    fn every_route_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in routes() {
            assert!(
                seen.insert((r.method.clone(), r.path)),
                "duplicate route {} {}",
                r.method,
                r.path
            );
        }
    }
}
