//! The web console's static files on the API's port: `/api/...` goes to the API, every other
//! GET is a file of the console's build (`console/dist`, or `TIDEMARK_CONSOLE_DIR`), and a path
//! without a file extension that is no file falls back to `index.html` (the console routes with
//! the history API). `/config.json` tells the console to sign in with a token.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{header, HeaderValue, Method, StatusCode};

/// Where the console's build lives; `None` when it was not built.
#[derive(Debug, Clone)]
pub struct Console {
    pub dir: Option<PathBuf>,
}

/// What the local stack answers at `/config.json`: sign-in with an API token.
pub const LOCAL_CONFIG: &str = r#"{"auth":"token"}"#;

const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>Tidemark</title>\
<p>The console is not built. Run <code>scripts/run</code>, or <code>npm ci &amp;&amp; npm run build</code> \
in <code>console/</code>, or set <code>TIDEMARK_CONSOLE_DIR</code>. The API is at <a href=\"/api/v1/health\">/api/v1</a>.</p>";

impl Console {
    /// `TIDEMARK_CONSOLE_DIR` when given, else `console/dist` under the working directory;
    /// kept only when it holds an `index.html`.
    pub fn locate(configured: Option<String>) -> Console {
        let dir = configured
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("console/dist"));
        let dir = dir.join("index.html").is_file().then_some(dir);
        match &dir {
            Some(d) => tracing::info!(dir = %d.display(), "serving the console"),
            None => tracing::warn!(
                "console not built (console/dist/index.html missing); serving the API only"
            ),
        }
        Console { dir }
    }
}

/// True for the API's paths (`/api` and below); they keep the API's envelope, 404 included.
pub fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Content type by file extension (the few a Vite build emits).
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file a request path names under the console's folder, or `None` when the path could
/// leave it (`..`, backslashes, encoded characters) or is the folder itself.
pub fn file_for(dir: &Path, path: &str) -> Option<PathBuf> {
    let rel = path.trim_start_matches('/');
    if rel.is_empty()
        || rel.contains('\\')
        || rel.contains('%')
        || rel
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return None;
    }
    Some(dir.join(rel))
}

/// A path whose last segment has an extension names a file: missing, it is a 404, not the app.
fn names_a_file(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
}

fn respond(status: StatusCode, ctype: &str, cache: &'static str, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(ctype) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Middleware in front of the API: answers the console's GETs, passes everything else on.
pub async fn intercept(State(console): State<Arc<Console>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if is_api(&path) || !(req.method() == Method::GET || req.method() == Method::HEAD) {
        return next.run(req).await;
    }
    serve(&console, &path).await
}

async fn serve(console: &Console, path: &str) -> Response {
    if path == "/config.json" {
        return respond(
            StatusCode::OK,
            "application/json",
            "no-cache",
            LOCAL_CONFIG.into(),
        );
    }
    let Some(dir) = &console.dir else {
        return respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "no-cache",
            NOT_BUILT.into(),
        );
    };
    if let Some(file) = file_for(dir, path) {
        if let Ok(bytes) = tokio::fs::read(&file).await {
            // Vite names built assets by their content hash: they never change.
            let cache = if path.starts_with("/assets/") {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            return respond(StatusCode::OK, content_type(path), cache, bytes);
        }
        if names_a_file(path) {
            return respond(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "no-cache",
                b"not found".to_vec(),
            );
        }
    }
    match tokio::fs::read(dir.join("index.html")).await {
        Ok(bytes) => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "no-cache",
            bytes,
        ),
        Err(e) => {
            tracing::error!(error = %e, "reading the console's index.html");
            respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "no-cache",
                b"console unavailable".to_vec(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_stay_with_the_api() {
        assert!(is_api("/api"));
        assert!(is_api("/api/v1/nope"));
        assert!(!is_api("/apis"));
        assert!(!is_api("/ledger"));
    }

    #[test]
    fn paths_cannot_leave_the_folder() {
        let d = Path::new("/srv/console");
        assert_eq!(
            file_for(d, "/assets/a.js"),
            Some(PathBuf::from("/srv/console/assets/a.js"))
        );
        assert_eq!(file_for(d, "/"), None);
        assert_eq!(file_for(d, "/../etc/passwd"), None);
        assert_eq!(file_for(d, "/assets/%2e%2e/x"), None);
        assert_eq!(file_for(d, "/a//b"), None);
        assert_eq!(file_for(d, "/a\\b"), None);
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type("/assets/x.JS"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("/favicon.svg"), "image/svg+xml");
        assert_eq!(content_type("/blob"), "application/octet-stream");
    }

    #[test]
    fn only_paths_with_an_extension_name_files() {
        assert!(names_a_file("/assets/missing.js"));
        assert!(!names_a_file("/databases/12"));
        assert!(!names_a_file("/ledger"));
    }
}
