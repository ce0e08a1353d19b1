//! Routing and the request pipeline: match a route, authenticate, run the handler, envelope
//! errors, add the request id and the ETag. The route table itself is `api.rs`; a Lambda
//! function serves the routes of its own group, the local server serves them all.

use std::time::Instant;

use futures::future::BoxFuture;
use http::{header, HeaderValue, Method, StatusCode};
use sha2::{Digest, Sha256};

use super::audit::Entry;
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

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.method, self.path, self.function)
    }
}

/// `route!(GET "/instances", Viewer, "api-instances", instances::list)`
#[macro_export]
macro_rules! route {
    ($method:ident $path:literal, public, $function:literal, $handler:path) => {
        $crate::route!(@ $method $path, None, $function, $handler)
    };
    ($method:ident $path:literal, $role:ident, $function:literal, $handler:path) => {
        $crate::route!(@ $method $path, Some($crate::web::Role::$role), $function, $handler)
    };
    (@ $method:ident $path:literal, $role:expr, $function:literal, $handler:path) => {
        $crate::web::router::Route {
            method: ::http::Method::$method,
            path: $path,
            role: $role,
            function: $function,
            handler: {
                fn handler<'a>(
                    app: &'a $crate::App,
                    req: $crate::web::Req,
                ) -> ::futures::future::BoxFuture<'a, $crate::web::ApiResult> {
                    Box::pin($handler(app, req))
                }
                handler
            },
        }
    };
}

/// Path parameters by name, e.g. `[("id", "3")]`.
pub type Params = Vec<(&'static str, String)>;

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

/// Why no route answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss {
    NotFound,
    /// The path exists with other methods (for the `Allow` header).
    MethodNotAllowed(Vec<Method>),
}

/// Finds the route for `method` and `path` among `routes` (only `function`'s when given).
/// `HEAD` is answered by the `GET` route of the path.
pub fn find<'r>(
    routes: &'r [Route],
    method: &Method,
    path: &str,
    function: Option<&str>,
) -> Result<(&'r Route, Params), Miss> {
    let rest = path
        .strip_prefix(API_PREFIX)
        .filter(|r| r.is_empty() || r.starts_with('/'))
        .ok_or(Miss::NotFound)?;
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let candidates: Vec<(&Route, usize, Params)> = routes
        .iter()
        .filter(|r| function.is_none_or(|f| r.function == f))
        .filter_map(|r| match_route(r.path, &segments).map(|(score, params)| (r, score, params)))
        .collect();
    let best = candidates.iter().map(|c| c.1).max().ok_or(Miss::NotFound)?;
    let wanted = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    let mut allowed = Vec::new();
    for (route, score, params) in candidates {
        if score != best {
            continue;
        }
        if route.method == *wanted {
            return Ok((route, params));
        }
        allowed.push(route.method.clone());
    }
    if allowed.contains(&Method::GET) {
        allowed.push(Method::HEAD);
    }
    allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Err(Miss::MethodNotAllowed(allowed))
}

/// Serves one request: route, authenticate, run the handler, envelope errors, request id,
/// ETag/304 on GET and HEAD (a HEAD answer is the GET answer without its body).
/// `function`: only that function's routes (Lambda); `None`: all (local).
pub async fn dispatch(
    app: &App,
    routes: &[Route],
    raw: RawRequest,
    function: Option<&str>,
) -> ApiResponse {
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

    let mut allow = None;
    let result = match find(routes, &raw.method, &raw.path, function) {
        Ok((route, params)) => run(app, route, params, raw, &request_id).await,
        Err(Miss::NotFound) => Err(ApiError::not_found("route")),
        Err(Miss::MethodNotAllowed(methods)) => {
            let names: Vec<&str> = methods.iter().map(Method::as_str).collect();
            allow = Some(names.join(", "));
            Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "method not allowed on this route",
            ))
        }
    };
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
                audit: None,
            };
            r.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Some(secs) = e.retry_after {
                r.headers
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            r
        }
    };
    if let Some(v) = allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
        response.headers.insert(header::ALLOW, v);
    }

    let is_head = method == Method::HEAD;
    if (method == Method::GET || is_head) && response.status == StatusCode::OK {
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
    if is_head {
        // The length the GET answer would have; the body itself is dropped.
        response.headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(response.body.len()),
        );
        response.body = Default::default();
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

/// Authenticates the caller for `route` and runs its handler.
async fn run(
    app: &App,
    route: &Route,
    params: Params,
    raw: RawRequest,
    request_id: &str,
) -> ApiResult {
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
    let query = Query::parse_checked(&raw.query)?;
    let method = raw.method.clone();
    let req = Req {
        method: raw.method,
        path: raw.path,
        params: params.clone(),
        query,
        headers: raw.headers,
        body: raw.body,
        principal: principal.clone(),
        request_id: request_id.to_string(),
    };
    let mut response = (route.handler)(app, req).await?;
    let mutating = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if mutating && route.role.is_some() && response.status.is_success() {
        let audit = response.audit.take().map(|a| *a).unwrap_or_default();
        if !audit.skip {
            let location = response
                .headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok());
            let path_id = params
                .iter()
                .find(|(k, _)| *k == "id" || k.ends_with("_id"))
                .map(|(_, v)| v.as_str());
            let entry = Entry::build(
                audit,
                (&method, route.path),
                &principal,
                path_id,
                location,
                request_id,
            );
            // The change is committed: a failed entry is an error line, not a failed request.
            if let Err(e) = crate::events::audit(app, &entry).await {
                tracing::error!(request_id = %request_id, action = %entry.action, error = %e, "audit entry not recorded");
            }
        }
    }
    Ok(response)
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

    async fn hello(_app: &App, _req: Req) -> ApiResult {
        Ok(ApiResponse::ok(serde_json::json!({"hello": "world"})))
    }

    fn table() -> Vec<Route> {
        vec![
            crate::route!(GET "/things", public, "api-things", hello),
            crate::route!(POST "/things", Operator, "api-things", hello),
            crate::route!(DELETE "/things/{id}", Admin, "api-things", hello),
        ]
    }

    #[test]
    fn wrong_method_lists_the_allowed_ones() {
        let routes = table();
        let miss = find(&routes, &Method::PUT, "/api/v1/things", None).unwrap_err();
        assert_eq!(
            miss,
            Miss::MethodNotAllowed(vec![Method::GET, Method::HEAD, Method::POST])
        );
        let miss = find(&routes, &Method::GET, "/api/v1/things/3", None).unwrap_err();
        assert_eq!(miss, Miss::MethodNotAllowed(vec![Method::DELETE]));
        let miss = find(&routes, &Method::GET, "/api/v1/nothing", None).unwrap_err();
        assert_eq!(miss, Miss::NotFound);
        let (route, _) = find(&routes, &Method::HEAD, "/api/v1/things", None).unwrap();
        assert_eq!(route.method, Method::GET);
    }

    /// An app whose clients are built but never used (the test routes touch nothing).
    async fn offline_app() -> App {
        let config = crate::Config::from_lookup(|k| {
            (k == "DATABASE_URL").then(|| "postgres://nobody@127.0.0.1:1/none".to_string())
        })
        .unwrap();
        struct NoQueue;
        #[async_trait::async_trait]
        impl crate::queue::Queue for NoQueue {
            async fn send_collect(
                &self,
                _: Vec<crate::queue::CollectMessage>,
            ) -> anyhow::Result<()> {
                anyhow::bail!("no queue")
            }
            async fn send_export(&self, _: crate::queue::ExportMessage) -> anyhow::Result<()> {
                anyhow::bail!("no queue")
            }
        }
        App {
            db: crate::db::pool(&config.database_url, 1).unwrap(),
            storage: crate::storage::Storage {
                client: crate::storage::s3_client("http://127.0.0.1:1", "k".into(), "s".into())
                    .await,
                bucket: "none".into(),
            },
            config: std::sync::Arc::new(config),
            auth: super::super::auth::Authenticator::jwt(super::super::auth::DEFAULT_SCOPE_PREFIX),
            credential_key: crate::crypto::CredentialKey::new(&[0; 32]),
            queue: std::sync::Arc::new(NoQueue),
        }
    }

    async fn call(method: Method) -> ApiResponse {
        let app = offline_app().await;
        let request = RawRequest::new(method, "/api/v1/things");
        dispatch(&app, &table(), request, None).await
    }

    #[tokio::test]
    async fn method_not_allowed_carries_allow() {
        let resp = call(Method::PATCH).await;
        assert_eq!(resp.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers[header::ALLOW], "GET, HEAD, POST");
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
    }

    #[tokio::test]
    async fn head_answers_like_get_without_a_body() {
        let (get, head) = (call(Method::GET).await, call(Method::HEAD).await);
        assert_eq!((get.status, head.status), (StatusCode::OK, StatusCode::OK));
        assert!(!get.body.is_empty());
        assert!(head.body.is_empty());
        for name in [header::CONTENT_TYPE, header::ETAG, header::CACHE_CONTROL] {
            assert_eq!(get.headers.get(&name), head.headers.get(&name), "{name}");
        }
        assert_eq!(
            head.headers[header::CONTENT_LENGTH],
            get.body.len().to_string().as_str()
        );
        // A HEAD with the GET's ETag is a 304 like the GET would be.
        let mut again = RawRequest::new(Method::HEAD, "/api/v1/things");
        again
            .headers
            .insert(header::IF_NONE_MATCH, get.headers[header::ETAG].clone());
        let resp = dispatch(&offline_app().await, &table(), again, None).await;
        assert_eq!(resp.status, StatusCode::NOT_MODIFIED);
    }
}
