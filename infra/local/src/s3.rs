//! The embedded S3-compatible endpoint: s3s over a folder (s3s-fs), SigV4 checked with
//! static credentials, so presigned links work with curl and tampered ones get 403.

use std::path::{Path, PathBuf};

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;

pub async fn serve(
    listener: TcpListener,
    root: &Path,
    access_key: &str,
    secret_key: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(root)?;
    let fs = s3s_fs::FileSystem::new(root)
        .map_err(|e| anyhow::anyhow!("s3 folder {}: {e:?}", root.display()))?;
    let service = {
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(access_key, secret_key));
        b.build()
    };
    let root = root.to_path_buf();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let (service, root) = (service.clone(), root.clone());
            tokio::spawn(async move {
                let handler = hyper::service::service_fn(move |req| {
                    answer_like_s3(service.clone(), root.clone(), req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), handler)
                    .await;
            });
        }
    });
    Ok(())
}

/// s3s-fs answers an abort of an upload it no longer has (completed or aborted already) with
/// 403 AccessDenied where S3 answers 404 NoSuchUpload; the app counts the latter as aborted.
/// Said as S3 says it, a delete that races the worker's completion behaves here as in AWS.
async fn answer_like_s3(
    service: S3Service,
    root: PathBuf,
    req: Request<Incoming>,
) -> Result<Response<s3s::Body>, s3s::HttpError> {
    let gone = (req.method() == Method::DELETE)
        .then(|| upload_id(req.uri().query().unwrap_or("")))
        .flatten()
        .is_some_and(|id| !root.join(format!(".upload-{id}.json")).exists());
    let resp = service.call(req.map(s3s::Body::from)).await?;
    if gone && resp.status() == StatusCode::FORBIDDEN {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
            <Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>";
        let mut r = Response::new(s3s::Body::from(body.to_string()));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/xml"),
        );
        return Ok(r);
    }
    Ok(resp)
}

/// The `uploadId` of a query string, when it has the shape of one (a UUID).
fn upload_id(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|p| p.strip_prefix("uploadId="))
        .filter(|id| id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
}
