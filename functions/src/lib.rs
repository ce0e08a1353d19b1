//! Wiring shared by the Lambda binaries: configuration and clients once per container, the
//! API Gateway adapter, the SQS queue and batch handling. No domain logic lives here.

pub mod aws;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::sqs::BatchItemFailure;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use lambda_runtime::LambdaEvent;
use tidemark::crypto::CredentialKey;
use tidemark::queue::{CollectMessage, ExportMessage, Queue};
use tidemark::storage::Storage;
use tidemark::web::auth::{Authenticator, JwtClaims};
use tidemark::web::{ApiResponse, RawRequest};
use tidemark::{App, Config};

pub type Error = lambda_runtime::Error;

fn required(name: &str) -> Result<String, Error> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("{name} is required").into())
}

/// The secrets: from the Secrets Manager secret named by `TIDEMARK_SECRET_ARN` (JSON with
/// `database_url` and `credential_key`), else from `DATABASE_URL` and
/// `TIDEMARK_CREDENTIAL_KEY` (running a binary outside AWS).
#[derive(serde::Deserialize)]
struct Secrets {
    database_url: String,
    credential_key: String,
    /// During a key rotation: the key the passwords are (being) re-encrypted under.
    #[serde(default)]
    next_credential_key: Option<String>,
}

async fn secrets(aws: &aws_config::SdkConfig) -> Result<Secrets, Error> {
    let Ok(arn) = std::env::var("TIDEMARK_SECRET_ARN") else {
        return Ok(Secrets {
            database_url: required("DATABASE_URL")?,
            credential_key: required("TIDEMARK_CREDENTIAL_KEY")?,
            next_credential_key: std::env::var("TIDEMARK_NEXT_CREDENTIAL_KEY")
                .ok()
                .filter(|v| !v.trim().is_empty()),
        });
    };
    let out = aws_sdk_secretsmanager::Client::new(aws)
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .map_err(|e| format!("reading the secret TIDEMARK_SECRET_ARN: {e}"))?;
    let text = out
        .secret_string()
        .ok_or("the secret TIDEMARK_SECRET_ARN has no string value")?;
    serde_json::from_str(text).map_err(|_| {
        "the secret TIDEMARK_SECRET_ARN must be JSON with database_url and credential_key".into()
    })
}

/// Cold start: configuration, secrets, pool and SDK clients, once per container. A missing
/// setting fails here with its name.
pub async fn app() -> Result<App, Error> {
    tidemark::telemetry::init_json();
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(tidemark::storage::https_client())
        .load()
        .await;
    let secrets = secrets(&aws).await?;
    let database_url = secrets.database_url;
    let config = Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(database_url.clone()),
        _ => std::env::var(k).ok(),
    })?;
    let key = tidemark::config::parse_credential_key(&secrets.credential_key)?;
    let mut credential_key = CredentialKey::new(&key);
    if let Some(next) = &secrets.next_credential_key {
        let next = tidemark::config::parse_credential_key(next)
            .map_err(|e| format!("next_credential_key / TIDEMARK_NEXT_CREDENTIAL_KEY: {e}"))?;
        credential_key = credential_key.with_next(&next);
    }
    let db = tidemark::db::pool_for(&config)?;
    tidemark::db::connect_check(&db).await?;
    let s3 = tidemark::storage::s3_client_from(&aws, config.s3_endpoint.as_deref());
    let queue = SqsQueue {
        client: aws_sdk_sqs::Client::new(&aws),
        collect_url: std::env::var("TIDEMARK_COLLECT_QUEUE_URL").unwrap_or_default(),
        export_url: std::env::var("TIDEMARK_EXPORT_QUEUE_URL").unwrap_or_default(),
    };
    let auth = Authenticator::jwt(&config.scope_prefix);
    // Only the function that evaluates alerts (aggregate) is given the topic and its grant.
    if let Ok(arn) = std::env::var("TIDEMARK_ALERT_TOPIC_ARN") {
        if !arn.is_empty() {
            tidemark::alerts::install_topic(Arc::new(SnsTopic {
                client: aws_sdk_sns::Client::new(&aws),
                arn,
            }));
        }
    }
    Ok(App {
        storage: Storage {
            client: s3,
            bucket: config.export_bucket.clone(),
        },
        config: Arc::new(config),
        db,
        auth,
        credential_key,
        queue: Arc::new(queue),
    })
}

/// SQS in AWS: the collection queue is FIFO (group = host:port, dedup = run:instance).
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    collect_url: String,
    export_url: String,
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_collect(&self, messages: Vec<CollectMessage>) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.collect_url.is_empty(),
            "TIDEMARK_COLLECT_QUEUE_URL is required to dispatch collections"
        );
        for chunk in messages.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, m) in chunk.iter().enumerate() {
                entries.push(
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(serde_json::to_string(m)?)
                        .message_group_id(m.group())
                        .message_deduplication_id(m.dedup_id())
                        .build()?,
                );
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.collect_url)
                .set_entries(Some(entries))
                .send()
                .await
                .context("sending collection messages")?;
            anyhow::ensure!(
                out.failed().is_empty(),
                "SQS refused {} collection message(s)",
                out.failed().len()
            );
        }
        Ok(())
    }

    async fn send_export(&self, message: ExportMessage) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.export_url.is_empty(),
            "TIDEMARK_EXPORT_QUEUE_URL is required to queue exports"
        );
        self.client
            .send_message()
            .queue_url(&self.export_url)
            .message_body(serde_json::to_string(&message)?)
            .send()
            .await
            .context("sending the export message")?;
        Ok(())
    }
}

/// API Gateway HTTP API (payload 2.0) -> the shared router, limited to this function's routes.
pub async fn serve_http(function: &'static str) -> Result<(), Error> {
    let app = app().await?;
    let app = &app;
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        let raw = to_raw(req);
        let resp = tidemark::api::dispatch(app, raw, Some(function)).await;
        to_lambda(resp)
    }))
    .await
}

/// The router's answer as API Gateway's: JSON and other text go out as text bodies (API
/// Gateway passes them through unchanged, no base64), anything else as binary.
pub fn to_lambda(resp: ApiResponse) -> Result<Response<Body>, Error> {
    let mut out = Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        out = out.header(k, v);
    }
    let textual = resp
        .headers
        .get(lambda_http::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/"));
    let body = if resp.body.is_empty() {
        Body::Empty
    } else if textual {
        match String::from_utf8(resp.body.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    } else {
        Body::Binary(resp.body.to_vec())
    };
    Ok(out.body(body)?)
}

/// API Gateway's request (payload 2.0) as the router's transport-free request; the JWT
/// authorizer's claims become the caller's subject and scopes.
pub fn to_raw(req: Request) -> RawRequest {
    let (jwt, request_id) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            let jwt = ctx
                .authorizer
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .map(|j| JwtClaims {
                    subject: j.claims.get("sub").cloned().unwrap_or_default(),
                    scopes: j.scopes.clone().unwrap_or_else(|| {
                        j.claims
                            .get("scope")
                            .map(|s| s.split(' ').map(str::to_string).collect())
                            .unwrap_or_default()
                    }),
                });
            (jwt, ctx.request_id.clone())
        }
        _ => (None, None),
    };
    let (parts, body) = req.into_parts();
    RawRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body: body.to_vec().into(),
        jwt,
        request_id,
    }
}

/// An SQS batch: each record handled on its own; failures reported per message
/// (`ReportBatchItemFailures`) so only they are redelivered. The handler is given the
/// invocation's deadline, so it can bound its work below the function's remaining time.
pub async fn serve_sqs<M, F, Fut>(handle: F) -> Result<(), Error>
where
    M: serde::de::DeserializeOwned + Send,
    F: Fn(App, M, Instant) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let app = app().await?;
    let app = &app;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<SqsEvent>| async move {
            let deadline = deadline_instant(event.context.deadline);
            let handle = move |app, m| handle(app, m, deadline);
            Ok::<_, Error>(handle_batch(app, event.payload, handle).await)
        },
    ))
    .await
}

/// The invocation's deadline (milliseconds since the epoch, from the runtime API) as an
/// `Instant` of this process.
pub fn deadline_instant(deadline_ms: u64) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// Handles each record of a batch on its own and lists the ones that failed, so SQS
/// redelivers only those. A body that can never be parsed is logged and dropped (it would
/// otherwise come back until the dead-letter queue).
pub async fn handle_batch<M, F, Fut>(app: &App, event: SqsEvent, handle: F) -> SqsBatchResponse
where
    M: serde::de::DeserializeOwned,
    F: Fn(App, M) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut failures = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let result = match serde_json::from_str::<M>(record.body.as_deref().unwrap_or("")) {
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "unreadable message dropped");
                Ok(())
            }
            Ok(m) => handle(app.clone(), m).await,
        };
        if let Err(e) = result {
            tracing::error!(message_id = %id, error = %format!("{e:#}"), "message failed; SQS will redeliver it");
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            failures.push(f);
        }
    }
    let mut resp = SqsBatchResponse::default();
    resp.batch_item_failures = failures;
    resp
}

/// A direct invocation whose event says what to do (the `migrate` function's actions).
pub async fn serve_action<F, Fut>(action: F) -> Result<(), Error>
where
    F: Fn(App, serde_json::Value) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = anyhow::Result<serde_json::Value>> + Send,
{
    let app = app().await?;
    let app = &app;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            action(app.clone(), event.payload)
                .await
                .map_err(|e| Error::from(format!("{e:#}")))
        },
    ))
    .await
}

/// A scheduled or direct invocation running one job.
pub async fn serve_job<F, Fut>(job: F) -> Result<(), Error>
where
    F: Fn(App) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = anyhow::Result<serde_json::Value>> + Send,
{
    let app = app().await?;
    let app = &app;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |_event: LambdaEvent<serde_json::Value>| async move {
            job(app.clone())
                .await
                .map_err(|e| Error::from(format!("{e:#}")))
        },
    ))
    .await
}

/// The capacity-alert topic: `sns` channels' digests go to its (e-mail) subscriptions.
struct SnsTopic {
    client: aws_sdk_sns::Client,
    arn: String,
}

#[async_trait]
impl tidemark::alerts::Topic for SnsTopic {
    async fn publish(&self, subject: &str, message: &str) -> anyhow::Result<()> {
        // SNS subjects: ASCII, at most 100 characters.
        let subject: String = subject.chars().filter(char::is_ascii).take(100).collect();
        self.client
            .publish()
            .topic_arn(&self.arn)
            .subject(subject)
            .message(message)
            .send()
            .await
            .context("SNS Publish")?;
        Ok(())
    }
}
