//! Tidemark on one machine: the HTTP API, an embedded S3 endpoint, the in-process queue and
//! scheduler, over PostgreSQL. The same handlers as the Lambda functions.

pub mod api;
pub mod console;
pub mod demo;
pub mod postgres;
pub mod queue;
pub mod rotate;
pub mod s3;
pub mod scheduler;
pub mod secret_files;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use tidemark::crypto::CredentialKey;
use tidemark::storage::Storage;
use tidemark::web::auth::Authenticator;
use tidemark::web::Role;
use tidemark::{App, Config};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub s3_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub scheduler: bool,
    /// `DATABASE_URL`; `None`: the default port or a private cluster.
    pub database_url: Option<String>,
    /// `TIDEMARK_API_TOKENS`; `None`: the environment, else generated into the data folder.
    pub api_tokens: Option<String>,
    /// Overrides for the environment's settings (tests use this instead of `std::env`).
    pub settings: Vec<(String, String)>,
}

pub struct Stack {
    pub app: App,
    pub api_addr: SocketAddr,
    pub s3_addr: SocketAddr,
    /// (role, token) in use, for the start banner and tests.
    pub tokens: Vec<(Role, String)>,
    pub database_url: String,
}

impl Stack {
    /// The same app authenticating as in AWS (JWT authorizer claims), for adapter tests.
    pub fn app_with_jwt(&self) -> App {
        App {
            auth: Authenticator::jwt(&self.app.config.scope_prefix),
            ..self.app.clone()
        }
    }
}

/// A secret kept in the data folder so restarts keep it: from the environment when set,
/// else read or generated once.
fn persistent_secret(
    opts: &Options,
    file: &str,
    env: &str,
    make: impl Fn() -> String,
) -> anyhow::Result<String> {
    if let Some(v) = setting(opts, env) {
        return Ok(v);
    }
    let path = opts.data_dir.join(file);
    if let Ok(v) = std::fs::read_to_string(&path) {
        return Ok(v.trim().to_string());
    }
    let v = make();
    secret_files::write(&path, &v)?;
    Ok(v)
}

/// A setting: the options' override, else the environment.
pub(crate) fn setting(opts: &Options, key: &str) -> Option<String> {
    if key == "TIDEMARK_API_TOKENS" {
        if let Some(t) = &opts.api_tokens {
            return Some(t.clone());
        }
    }
    opts.settings
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var(key).ok())
        .filter(|v| !v.trim().is_empty())
}

pub(crate) fn random_token() -> String {
    use rand::Rng;
    let mut b = [0u8; 18];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub async fn start(opts: Options) -> anyhow::Result<Stack> {
    secret_files::private_dir(&opts.data_dir)?;
    let database_url = postgres::resolve(opts.database_url.clone(), &opts.data_dir).await?;

    let api_listener = TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding {}", opts.listen))?;
    let s3_listener = TcpListener::bind(opts.s3_listen)
        .await
        .with_context(|| format!("binding {}", opts.s3_listen))?;
    let api_addr = api_listener.local_addr()?;
    let s3_addr = s3_listener.local_addr()?;

    let s3_secret =
        persistent_secret(&opts, "s3.secret", "TIDEMARK_LOCAL_S3_SECRET", random_token)?;
    let s3_access = "tidemark-local".to_string();
    let s3_root = opts.data_dir.join("s3");
    s3::serve(s3_listener, &s3_root, &s3_access, &s3_secret).await?;

    let tokens_spec = persistent_secret(&opts, "api-tokens", "TIDEMARK_API_TOKENS", || {
        format!(
            "viewer:{},operator:{},admin:{}",
            random_token(),
            random_token(),
            random_token()
        )
    })?;
    let auth = Authenticator::parse_tokens(&tokens_spec)
        .map_err(|e| anyhow::anyhow!("TIDEMARK_API_TOKENS: {e}"))?;
    let key_b64 = persistent_secret(&opts, "credential.key", "TIDEMARK_CREDENTIAL_KEY", || {
        use rand::Rng;
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        base64::engine::general_purpose::STANDARD.encode(k)
    })?;
    let key = tidemark::config::parse_credential_key(&key_b64).map_err(anyhow::Error::msg)?;

    let s3_endpoint = format!("http://{s3_addr}");
    let mut config = Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(database_url.clone()),
        "TIDEMARK_S3_ENDPOINT" => Some(s3_endpoint.clone()),
        _ => setting(&opts, k),
    })
    .map_err(anyhow::Error::msg)?;
    config.s3_endpoint = Some(s3_endpoint.clone());

    let db = tidemark::db::pool_for(&config)?;
    let applied = tidemark::db::migrate(&db).await?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "migrations applied");
    }
    let client = tidemark::storage::s3_client(&s3_endpoint, s3_access, s3_secret).await;
    // s3s-fs keeps a bucket as a folder.
    std::fs::create_dir_all(s3_root.join(&config.export_bucket))?;

    let (local_queue, receiver) = queue::channel();
    let concurrency = config.collect_concurrency;
    let app = App {
        storage: Storage {
            client,
            bucket: config.export_bucket.clone(),
        },
        config: Arc::new(config),
        db,
        auth,
        credential_key: CredentialKey::new(&key),
        queue: Arc::new(local_queue),
    };
    queue::spawn_workers(queue::Handlers::app(app.clone()), receiver, concurrency);
    let (items, exports) = queue::requeue(&app).await?;
    if items + exports > 0 {
        tracing::info!(
            items,
            exports,
            "re-queued the unfinished work of a previous process"
        );
    }
    if opts.scheduler {
        scheduler::spawn(app.clone());
    }
    let console = console::Console::locate(setting(&opts, "TIDEMARK_CONSOLE_DIR"));
    api::serve(api_listener, app.clone(), console).await?;

    let tokens = tokens_spec
        .split(',')
        .filter_map(|e| e.split_once(':'))
        .filter_map(|(r, t)| Role::parse(r.trim()).map(|r| (r, t.trim().to_string())))
        .collect();
    Ok(Stack {
        app,
        api_addr,
        s3_addr,
        tokens,
        database_url,
    })
}
