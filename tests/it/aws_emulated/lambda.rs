//! Lambda as the real function binaries meet it: one process per function (a warm container,
//! one invocation at a time) fed through the Runtime API served here
//! (`/2018-06-01/runtime/invocation/next`, `/response`, `/error`, `/init/error`), and what
//! AWS does around the functions: API Gateway HTTP API events with JWT claims routed as
//! template.yaml wires them, schedule events, and an SQS event source mapping with partial
//! batch responses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, oneshot};

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";
/// Longest an invocation may take here (the template's longest timeout is far above what
/// this test's work needs).
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

/// What an invocation ended with: the function's response, or the error it posted.
pub type Outcome = Result<Value, Value>;

struct Invocation {
    request_id: String,
    payload: Vec<u8>,
    deadline_ms: u128,
    reply: oneshot::Sender<Outcome>,
}

/// The Runtime API of one function.
struct RuntimeApi {
    arn: String,
    next: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<String>>,
}

fn text_or_json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> Response {
    // Long poll, as Lambda does: the runtime waits here until there is an event.
    let Some(inv) = api.next.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    if let Ok(mut m) = api.in_flight.lock() {
        m.insert(inv.request_id.clone(), inv.reply);
    }
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put("lambda-runtime-aws-request-id", inv.request_id);
    put("lambda-runtime-deadline-ms", inv.deadline_ms.to_string());
    put("lambda-runtime-invoked-function-arn", api.arn.clone());
    put(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
    );
    put("content-type", "application/json".into());
    (StatusCode::OK, headers, inv.payload).into_response()
}

fn complete(api: &RuntimeApi, request_id: &str, outcome: Outcome) -> StatusCode {
    let reply = api
        .in_flight
        .lock()
        .ok()
        .and_then(|mut m| m.remove(request_id));
    match reply {
        Some(tx) => {
            let _ = tx.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(
    State(api): State<Arc<RuntimeApi>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    complete(&api, &id, Ok(text_or_json(&body)))
}

async fn error(
    State(api): State<Arc<RuntimeApi>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    complete(&api, &id, Err(text_or_json(&body)))
}

async fn init_error(State(api): State<Arc<RuntimeApi>>, body: Bytes) -> StatusCode {
    if let Ok(mut e) = api.init_error.lock() {
        *e = Some(String::from_utf8_lossy(&body).into_owned());
    }
    StatusCode::ACCEPTED
}

/// One function's container: its process (killed on drop) and its Runtime API.
pub struct Function {
    pub name: String,
    invocations: mpsc::Sender<Invocation>,
    api: Arc<RuntimeApi>,
    process: tokio::sync::Mutex<tokio::process::Child>,
    logs: Arc<Mutex<String>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Function {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn collect_lines<R: AsyncRead + Unpin + Send + 'static>(from: R, into: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(from).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut l) = into.lock() {
                l.push_str(&line);
                l.push('\n');
            }
        }
    });
}

impl Function {
    /// Starts the binary `name` from `bin_dir` with only `env` (plus what Lambda sets).
    pub async fn start(bin_dir: &Path, name: &str, env: &[(String, String)]) -> Function {
        let arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:tidemark-{name}");
        let (tx, rx) = mpsc::channel(1);
        let api = Arc::new(RuntimeApi {
            arn,
            next: tokio::sync::Mutex::new(rx),
            in_flight: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
        });
        let router = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the runtime API");
        let addr = listener.local_addr().expect("runtime API address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let binary = bin_dir.join(name);
        assert_fresh(&binary);
        let mut child = tokio::process::Command::new(&binary)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", format!("tidemark-{name}"))
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/tidemark")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("{name}/[$LATEST]0"))
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let logs = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            collect_lines(out, logs.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect_lines(err, logs.clone());
        }
        Function {
            name: name.to_string(),
            invocations: tx,
            api,
            process: tokio::sync::Mutex::new(child),
            logs,
            server,
        }
    }

    /// Everything the function wrote (JSON log lines), for failure messages and checks.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// One invocation, as Lambda runs it: the outcome the function posted. Panics (with the
    /// function's logs) when the process dies or the invocation times out.
    pub async fn invoke(&self, payload: &Value) -> Outcome {
        match self.try_invoke(payload).await {
            Ok(outcome) => outcome,
            Err(why) => panic!(
                "{}: {why}; init error: {:?}\n{}",
                self.name,
                self.api.init_error.lock().ok().and_then(|e| e.clone()),
                self.logs()
            ),
        }
    }

    /// One invocation; `Err` when the process died or did not answer in time.
    pub async fn try_invoke(&self, payload: &Value) -> Result<Outcome, String> {
        // One invocation at a time per container, as Lambda does.
        let mut process = self.process.lock().await;
        let (reply, outcome) = oneshot::channel();
        let deadline = SystemTime::now() + INVOKE_TIMEOUT;
        let inv = Invocation {
            request_id: uuid::Uuid::new_v4().to_string(),
            payload: serde_json::to_vec(payload).expect("event JSON"),
            deadline_ms: deadline
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default(),
            reply,
        };
        self.invocations
            .send(inv)
            .await
            .expect("the runtime API is running");
        let result = tokio::time::timeout(INVOKE_TIMEOUT, async {
            tokio::select! {
                outcome = outcome => outcome.map_err(|_| "the invocation was dropped".to_string()),
                status = process.wait() => Err(format!("the process exited ({status:?})")),
            }
        })
        .await;
        result.unwrap_or_else(|_| Err(format!("no answer within {INVOKE_TIMEOUT:?}")))
    }

    /// An invocation that must succeed: its response.
    pub async fn invoke_ok(&self, payload: &Value) -> Value {
        match self.invoke(payload).await {
            Ok(v) => v,
            Err(e) => panic!("{} failed: {e}\n{}", self.name, self.logs()),
        }
    }
}

/// The functions of the stack, each started on first use (its cold start) with one
/// environment, as template.yaml's Globals give every function the same variables.
pub struct Lambda {
    bin_dir: PathBuf,
    env: Vec<(String, String)>,
    functions: tokio::sync::Mutex<HashMap<String, Arc<Function>>>,
}

impl Lambda {
    pub fn new(bin_dir: PathBuf, env: Vec<(String, String)>) -> Lambda {
        Lambda {
            bin_dir,
            env,
            functions: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub async fn function(&self, name: &str) -> Arc<Function> {
        let mut functions = self.functions.lock().await;
        if let Some(f) = functions.get(name) {
            return f.clone();
        }
        let f = Arc::new(Function::start(&self.bin_dir, name, &self.env).await);
        functions.insert(name.to_string(), f.clone());
        f
    }

    /// A container of its own with some variables changed (not kept for later calls).
    pub async fn start_with(&self, name: &str, changes: &[(&str, &str)]) -> Function {
        let mut env = self.env.clone();
        for (k, v) in changes {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
        Function::start(&self.bin_dir, name, &env).await
    }

    /// Every function's logs, for "never in a log line" checks.
    pub async fn all_logs(&self) -> String {
        self.functions
            .lock()
            .await
            .values()
            .map(|f| f.logs())
            .collect()
    }
}

/// The directory of the debug function binaries: the target dir of this test binary
/// (`<target>/debug/deps/<test>` -> `<target>/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("target directory")
}

/// The binary exists and is newer than every source it is built from, so the test never
/// runs yesterday's functions.
fn assert_fresh(binary: &Path) {
    let built = std::fs::metadata(binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: build the functions first (scripts/test does)",
                binary.display()
            )
        });
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs: Vec<PathBuf> = ["shared/src", "functions/src", "migrations"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(changed) = entry.metadata().and_then(|m| m.modified()) {
                assert!(
                    changed <= built,
                    "{} is older than {}: rebuild the functions (scripts/test does)",
                    binary.display(),
                    path.display()
                );
            }
        }
    }
}

/// What template.yaml says about the functions: the HttpApi routes of each binary and the
/// batch size of its SQS event source.
pub struct Template {
    /// (binary, method, path template as API Gateway matches it)
    pub routes: Vec<(String, String, String)>,
    /// Every function binary the template names, with or without routes.
    pub binaries: Vec<String>,
    batch_sizes: HashMap<String, usize>,
}

impl Template {
    pub fn load() -> Template {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let text = std::fs::read_to_string(&path).expect("template.yaml");
        let mut routes = Vec::new();
        let mut binaries = Vec::new();
        let mut batch_sizes = HashMap::new();
        let (mut binary, mut method) = (None::<String>, None::<String>);
        for line in text.lines() {
            let trimmed = line.trim();
            // A resource starts at two spaces of indentation.
            if line.starts_with("  ") && !line.starts_with("   ") && trimmed.ends_with(':') {
                binary = None;
            }
            if let Some(b) = trimmed.strip_prefix("Binary: ") {
                binary = Some(b.to_string());
                binaries.push(b.to_string());
            } else if let Some(m) = trimmed.strip_prefix("Method: ") {
                method = Some(m.to_string());
            } else if let Some(p) = trimmed.strip_prefix("Path: ") {
                if let (Some(b), Some(m)) = (&binary, method.take()) {
                    routes.push((b.clone(), m, p.to_string()));
                }
            } else if let Some(n) = trimmed.strip_prefix("BatchSize: ") {
                if let (Some(b), Ok(n)) = (&binary, n.parse()) {
                    batch_sizes.insert(b.clone(), n);
                }
            }
        }
        Template {
            routes,
            binaries,
            batch_sizes,
        }
    }

    /// API Gateway's route match: the function, the route's path template and its path
    /// parameters.
    pub fn route(&self, method: &str, path: &str) -> (String, String, Value) {
        let segments: Vec<&str> = path.split('/').collect();
        for (binary, m, template) in &self.routes {
            if !m.eq_ignore_ascii_case(method) {
                continue;
            }
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                continue;
            }
            let mut params = serde_json::Map::new();
            let matched = parts.iter().zip(&segments).all(|(p, s)| {
                match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(name) => {
                        params.insert(name.to_string(), json!(s));
                        !s.is_empty()
                    }
                    None => p == s,
                }
            });
            if matched {
                return (binary.clone(), template.clone(), Value::Object(params));
            }
        }
        panic!("template.yaml has no route for {method} {path}");
    }

    /// `BatchSize` of the function's SQS event source (10, SQS's default, when unset).
    pub fn batch_size(&self, binary: &str) -> usize {
        self.batch_sizes.get(binary).copied().unwrap_or(10)
    }
}

/// The caller as the JWT authorizer hands it on: subject and scopes; no subject for a route
/// without the authorizer (no claims reach the function).
pub struct Caller<'a> {
    pub sub: &'a str,
    pub scope: &'a str,
}

pub const ANONYMOUS: Caller = Caller { sub: "", scope: "" };

/// An HTTP response as API Gateway would return it from the function's answer.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Value,
}

impl HttpResponse {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
}

/// API Gateway HTTP API (payload 2.0) in front of the functions, routed by template.yaml.
pub struct HttpApi<'a> {
    pub lambda: &'a Lambda,
    pub template: &'a Template,
}

impl HttpApi<'_> {
    pub async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&Value>,
        caller: &Caller<'_>,
    ) -> HttpResponse {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let (binary, route, params) = self.template.route(method, path);
        let route_key = format!("{method} {route}");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let event = json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": path,
            "rawQueryString": query,
            "headers": {
                "content-type": "application/json",
                "host": "api.execute-api.us-east-1.amazonaws.com",
                "authorization": "Bearer <checked by the JWT authorizer>"
            },
            "pathParameters": if params.as_object().is_some_and(|p| !p.is_empty()) { params } else { Value::Null },
            "requestContext": {
                "accountId": ACCOUNT, "apiId": "api", "domainName": "api.execute-api.us-east-1.amazonaws.com",
                "domainPrefix": "api", "requestId": format!("apigw-{}", uuid::Uuid::new_v4().simple()),
                "routeKey": route_key, "stage": "$default",
                "time": "30/Nov/2026:02:00:00 +0000", "timeEpoch": now,
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "10.0.0.1", "userAgent": "aws-emulated-test"},
                "authorizer": {"jwt": {
                    "claims": {"sub": caller.sub, "scope": caller.scope, "iss": "https://issuer.example", "token_use": "access"},
                    "scopes": null
                }}
            },
            "body": body.map(Value::to_string),
            "isBase64Encoded": false
        });
        let mut event = event;
        if caller.sub.is_empty() {
            event["requestContext"]["authorizer"] = Value::Null;
        }
        let function = self.lambda.function(&binary).await;
        let out = function.invoke_ok(&event).await;
        let raw = out["body"].as_str().unwrap_or("");
        let bytes = if out["isBase64Encoded"].as_bool().unwrap_or(false) {
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .expect("base64 body")
        } else {
            raw.as_bytes().to_vec()
        };
        HttpResponse {
            status: out["statusCode"].as_u64().unwrap_or(0) as u16,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }
}

/// The event EventBridge Scheduler sends to a function target.
pub fn schedule_event(schedule: &str) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": ACCOUNT,
        "time": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": REGION,
        "resources": [format!("arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{schedule}")],
        "detail": {}
    })
}

/// A message as the event source mapping received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub attributes: HashMap<String, String>,
}

impl Received {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    fn record(&self, queue_arn: &str) -> Value {
        json!({
            "messageId": self.message_id,
            "receiptHandle": self.receipt_handle,
            "body": self.body,
            "attributes": self.attributes,
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": REGION
        })
    }
}

/// What one drain of a queue did.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Every batch handed to the function, in order.
    pub batches: Vec<Vec<Received>>,
    /// Messages the function reported failed (left on the queue).
    pub failed: Vec<Received>,
    /// Messages deleted after their batch.
    pub deleted: Vec<Received>,
}

/// The SQS event source mapping of one function (`ReportBatchItemFailures`).
pub struct EventSource<'a> {
    pub sqs: &'a aws_sdk_sqs::Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub function: Arc<Function>,
    pub batch_size: usize,
}

impl EventSource<'_> {
    /// Makes the visibility timeout of a received message pass now (instead of waiting for
    /// it): the message is visible again, as SQS makes it after the timeout.
    pub async fn time_out(&self, message: &Received) {
        self.sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(&message.receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .expect("ChangeMessageVisibility: the message is still on the queue");
    }

    /// Receives until the queue has nothing visible and hands what it receives to the
    /// function: batches of at most `batch_size`, one message group's messages per batch in
    /// order; after a failure in a group the rest of that group is not processed (it comes
    /// back with the failed message). Records the function lists as failed stay on the queue
    /// (visible again after the visibility timeout); the others are deleted.
    pub async fn drain(&self) -> Delivery {
        let mut delivery = Delivery::default();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await
                .expect("ReceiveMessage");
            let messages: Vec<Received> = out
                .messages()
                .iter()
                .map(|m| Received {
                    message_id: m.message_id().unwrap_or_default().to_string(),
                    receipt_handle: m.receipt_handle().unwrap_or_default().to_string(),
                    body: m.body().unwrap_or_default().to_string(),
                    attributes: m
                        .attributes()
                        .map(|a| {
                            a.iter()
                                .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect();
            if messages.is_empty() {
                return delivery;
            }
            // Groups in the order their first message came; each group's messages in order.
            let mut groups: Vec<(String, Vec<Received>)> = Vec::new();
            for m in messages {
                let group = m
                    .attribute("MessageGroupId")
                    .map(str::to_string)
                    .unwrap_or_else(|| m.message_id.clone());
                match groups.iter_mut().find(|(g, _)| *g == group) {
                    Some((_, ms)) => ms.push(m),
                    None => groups.push((group, vec![m])),
                }
            }
            for (_, messages) in groups {
                for batch in messages.chunks(self.batch_size.max(1)) {
                    let event = json!({"Records": batch.iter().map(|m| m.record(&self.queue_arn)).collect::<Vec<_>>()});
                    let failed_ids: Vec<String> = match self.function.invoke(&event).await {
                        Ok(resp) => resp["batchItemFailures"]
                            .as_array()
                            .map(|f| {
                                f.iter()
                                    .filter_map(|i| {
                                        i["itemIdentifier"].as_str().map(str::to_string)
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        // A failed invocation fails the whole batch.
                        Err(_) => batch.iter().map(|m| m.message_id.clone()).collect(),
                    };
                    delivery.batches.push(batch.to_vec());
                    for m in batch {
                        if failed_ids.contains(&m.message_id) {
                            delivery.failed.push(m.clone());
                        } else {
                            self.sqs
                                .delete_message()
                                .queue_url(&self.queue_url)
                                .receipt_handle(&m.receipt_handle)
                                .send()
                                .await
                                .expect("DeleteMessage");
                            delivery.deleted.push(m.clone());
                        }
                    }
                    if !failed_ids.is_empty() {
                        break;
                    }
                }
            }
        }
    }
}
