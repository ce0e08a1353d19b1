//! The HTTP API on one machine: every request goes to the same router the Lambda
//! functions use.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use tidemark::web::{RawRequest, MAX_BODY_BYTES};
use tidemark::App;
use tokio::net::TcpListener;

pub async fn serve(
    listener: TcpListener,
    app: App,
    console: crate::console::Console,
) -> anyhow::Result<()> {
    let router = axum::Router::new().fallback(handle).with_state(app).layer(
        axum::middleware::from_fn_with_state(
            std::sync::Arc::new(console),
            crate::console::intercept,
        ),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "API server stopped");
        }
    });
    Ok(())
}

async fn handle(State(app): State<App>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    // One byte over the limit is enough to answer 413.
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES + 1).await {
        Ok(b) => b,
        Err(_) => bytes::Bytes::from(vec![b' '; MAX_BODY_BYTES + 1]),
    };
    let raw = RawRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body,
        jwt: None,
        request_id: None,
    };
    let resp = tidemark::api::dispatch(&app, raw, None).await;
    let mut out = Response::new(Body::from(resp.body));
    *out.status_mut() = resp.status;
    *out.headers_mut() = resp.headers;
    out
}
