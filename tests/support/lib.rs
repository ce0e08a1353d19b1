//! Test support: a fresh PostgreSQL database per stack, the local stack on ephemeral ports,
//! a small HTTP client that speaks the contract's envelope, and the fixtures the integration
//! tests (`tests/it`), the Lambda adapter tests and the benchmarks share.

mod fixtures;
pub mod private_pg;
pub mod scratch;
pub mod tls_servers;

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use tidemark_local::{Options, Stack};

pub use fixtures::{closed_port, silent_server, unique};
// The library's auth names, imported here once for every test module.
pub use reqwest::Method;
pub use tidemark::web::auth::token_subject;
pub use tidemark::web::Role;

pub const VIEWER: &str = "viewer-token-0123456789";
pub const OPERATOR: &str = "operator-token-0123456789";
pub const ADMIN: &str = "admin-token-0123456789";

pub const ADMIN_URL: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

pub fn token(role: Role) -> &'static str {
    match role {
        Role::Viewer => VIEWER,
        Role::Operator => OPERATOR,
        Role::Admin => ADMIN,
    }
}

/// A database of its own, dropped when the value is.
pub struct TestDb {
    pub name: String,
    pub url: String,
    /// Dropped with the value (false for a database the test does not own).
    owned: bool,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let name = format!("tidemark_t_{}", uuid::Uuid::new_v4().simple());
        tidemark_local::postgres::ensure_database(ADMIN_URL, &name)
            .await
            .expect("create test database");
        TestDb {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
            owned: true,
        }
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

/// A client on `url` (a key-value string or a URL), its connection driven in the background.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// Runs `cleanup` to completion from a `Drop`: on a thread and runtime of its own, since the
/// test's runtime may be shutting down (or be the current-thread one, which cannot block).
pub fn cleanup_on_drop<F: Future<Output = ()> + Send + 'static>(cleanup: F) {
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(cleanup);
        }
    })
    .join();
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let name = self.name.clone();
        cleanup_on_drop(async move {
            if let Ok((client, conn)) =
                tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls).await
            {
                tokio::spawn(conn);
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            }
        });
    }
}

/// The local stack on ephemeral ports over a fresh database.
pub struct TestStack {
    pub stack: Stack,
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub data_dir: tempfile::TempDir,
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    /// The `items` of a list answer (which must be a 200).
    pub fn items(&self) -> Vec<Value> {
        assert_eq!(self.status, 200, "{self:?}");
        self.data()["items"].as_array().expect("items").clone()
    }
    /// The `id` of each item of a list answer, in order.
    pub fn ids(&self) -> Vec<i64> {
        item_ids(&self.items())
    }
}

/// The `id` of each item, in order.
pub fn item_ids(items: &[Value]) -> Vec<i64> {
    items
        .iter()
        .map(|i| i["id"].as_i64().expect("id"))
        .collect()
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

impl TestStack {
    pub async fn start() -> TestStack {
        Self::start_with(Vec::new()).await
    }

    /// With settings (e.g. `TIDEMARK_COLLECT_CONCURRENCY`) given as the environment would.
    pub async fn start_with(settings: Vec<(&str, &str)>) -> TestStack {
        let db = TestDb::create().await;
        Self::start_in(db, settings).await
    }

    /// Over a database the caller owns (e.g. a private server it will stop).
    pub async fn start_on(url: &str) -> TestStack {
        Self::start_on_with(url, Vec::new())
            .await
            .expect("start local stack")
    }

    /// Over a database the caller owns, with settings; the start's error when it fails.
    pub async fn start_on_with(
        url: &str,
        settings: Vec<(&str, &str)>,
    ) -> anyhow::Result<TestStack> {
        let db = TestDb {
            name: String::new(),
            url: url.to_string(),
            owned: false,
        };
        Self::try_start_in(db, settings).await
    }

    async fn start_in(db: TestDb, settings: Vec<(&str, &str)>) -> TestStack {
        Self::try_start_in(db, settings)
            .await
            .expect("start local stack")
    }

    async fn try_start_in(db: TestDb, settings: Vec<(&str, &str)>) -> anyhow::Result<TestStack> {
        init_logs();
        let data_dir = tempfile::tempdir().expect("tempdir");
        let mut settings: Vec<(String, String)> = settings
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        settings.push((
            "TIDEMARK_CREDENTIAL_KEY".into(),
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into(),
        ));
        settings.push(("TIDEMARK_DB_POOL_SIZE".into(), "8".into()));
        // Collect-now answers with the visit, however loaded the shared servers are (a
        // test's own setting comes first and wins); the 202 path is tested with 1 s.
        settings.push(("TIDEMARK_COLLECT_NOW_WAIT_SECS".into(), "120".into()));
        let stack = tidemark_local::start(Options {
            listen: "127.0.0.1:0".parse().expect("addr"),
            s3_listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: data_dir.path().to_path_buf(),
            scheduler: false,
            database_url: Some(db.url.clone()),
            api_tokens: Some(format!("viewer:{VIEWER},operator:{OPERATOR},admin:{ADMIN}")),
            settings,
        })
        .await?;
        let base = format!("http://{}/api/v1", stack.api_addr);
        Ok(TestStack {
            stack,
            base,
            http: reqwest::Client::new(),
            db,
            data_dir,
        })
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(serde_json::to_vec(b).expect("json"));
        }
        let resp = rb.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    /// POSTs a raw body (a CSV file) with its content type.
    pub async fn post_raw(
        &self,
        path: &str,
        role: Role,
        content_type: &str,
        body: Vec<u8>,
    ) -> Resp {
        let resp = self
            .http
            .post(format!("{}{}", self.base, path))
            .bearer_auth(token(role))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, role: Role) -> Resp {
        self.call(Method::GET, path, Some(token(role)), None).await
    }
    pub async fn post(&self, path: &str, role: Role, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token(role)), Some(&body))
            .await
    }
    pub async fn patch(&self, path: &str, role: Role, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token(role)), Some(&body))
            .await
    }
    pub async fn delete(&self, path: &str, role: Role) -> Resp {
        self.call(Method::DELETE, path, Some(token(role)), None)
            .await
    }

    /// GETs `path?query` as the viewer for each `(query, field)` and checks the answer is a
    /// 400 `VALIDATION_ERROR` naming `field`.
    pub async fn expect_invalid_queries(&self, path: &str, cases: &[(&str, &str)]) {
        for (query, field) in cases {
            let r = self.get(&format!("{path}?{query}"), Role::Viewer).await;
            assert_eq!((r.status, r.code()), (400, "VALIDATION_ERROR"), "{query}");
            assert_eq!(r.body["error"]["field"], *field, "{query}");
        }
    }

    /// Sends each request (no body) in order and checks its status, naming the request that
    /// answered otherwise.
    pub async fn expect_statuses(&self, cases: &[(Method, &str, Role, u16)]) {
        for (method, path, role, status) in cases {
            let r = self
                .call(method.clone(), path, Some(token(*role)), None)
                .await;
            assert_eq!(r.status, *status, "{method} {path} as {role:?}: {r:?}");
        }
    }
}

/// Everything the test binary's tracing writes, for "never in a log line" checks.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().map(|b| b.clone()).unwrap_or_default())
        .into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

struct BufWriter;

impl std::io::Write for BufWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = log_buffer().lock() {
            b.extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                "debug,tokio_postgres=info,hyper=info,aws=info,s3s=info,h2=info,rustls=info",
            )
            .with_writer(|| BufWriter)
            .with_ansi(false)
            .try_init();
    });
}

/// The first column of the one row `sql` returns (counts, sums, single values).
pub async fn scalar<T>(db: &tokio_postgres::Client, sql: &str) -> T
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    db.query_one(sql, &[]).await.expect("query").get(0)
}
