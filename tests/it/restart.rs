//! Nothing is lost locally: a `tidemark-local` killed mid-collection and mid-export finishes
//! both when started again (the database is the record, the queue only memory), and a
//! PostgreSQL restart of a few seconds during a run or an export ends with the work done.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tidemark_tests::private_pg::PrivatePg;
use tidemark_tests::{silent_server, unique, TestDb, TestStack, ADMIN};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// The `tidemark-local` binary next to this test binary (`cargo build -p tidemark-local`).
fn local_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("tidemark-local");
    assert!(
        bin.exists(),
        "{} is missing: cargo build -p tidemark-local",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A `tidemark-local` process, killed (SIGKILL) when dropped.
struct Local(Child);

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The stack's ports and folder, so a restart serves the same place.
struct Process {
    api: u16,
    s3: u16,
    data: tempfile::TempDir,
    db_url: String,
    http: reqwest::Client,
}

impl Process {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1", self.api)
    }

    async fn start(&self) -> Local {
        let child = Command::new(local_binary())
            .args(["--listen", &format!("127.0.0.1:{}", self.api)])
            .args(["--s3-listen", &format!("127.0.0.1:{}", self.s3)])
            .arg("--data-dir")
            .arg(self.data.path())
            .arg("--no-scheduler")
            .env("DATABASE_URL", &self.db_url)
            .env("TIDEMARK_API_TOKENS", format!("admin:{ADMIN}"))
            .env("TIDEMARK_CREDENTIAL_KEY", KEY)
            .env("TIDEMARK_DB_POOL_SIZE", "4")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tidemark-local");
        let local = Local(child);
        for _ in 0..300 {
            if let Ok(r) = self
                .http
                .get(format!("{}/health", self.base()))
                .send()
                .await
            {
                if r.status().is_success() {
                    return local;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("tidemark-local did not start");
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base()))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("request");
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body["data"].clone()
    }

    /// Polls `path` until its status is not one of `busy` (2 minutes at most).
    async fn until_done(&self, path: &str, busy: &[&str]) -> Value {
        for _ in 0..1200 {
            let data = self.call(reqwest::Method::GET, path, None).await;
            if !busy.contains(&data["status"].as_str().unwrap_or("")) {
                return data;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} did not finish");
    }
}

/// Polls `sql` (one boolean) on `db` until it is true (30 s at most).
async fn until(db: &tokio_postgres::Client, sql: &str) {
    for _ in 0..300 {
        if db
            .query_one(sql, &[])
            .await
            .expect("poll")
            .get::<_, bool>(0)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never true: {sql}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_tidemark_local_finishes_its_collection_and_export_when_started_again() {
    let db = TestDb::create().await;
    let p = Process {
        api: free_port(),
        s3: free_port(),
        data: tempfile::tempdir().expect("tempdir"),
        db_url: db.url.clone(),
        http: reqwest::Client::new(),
    };
    let first = p.start().await;
    let post = reqwest::Method::POST;
    let cred = p
        .call(
            post.clone(),
            "/credentials",
            Some(json!({"name": unique("cred"), "username": "postgres", "password": ""})),
        )
        .await["id"]
        .clone();
    let instance = p
        .call(
            post.clone(),
            "/instances",
            Some(
                json!({"name": unique("inst"), "db_type": "postgresql", "host": "127.0.0.1",
                        "port": 5432, "credential_id": cred}),
            ),
        )
        .await["id"]
        .clone();

    // Both the collection's write and the export's read wait on this lock: mid-work.
    let lock = db.connect().await;
    lock.batch_execute("BEGIN; LOCK TABLE instance_databases IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let run = p
        .call(
            post.clone(),
            "/collections",
            Some(json!({"instance_ids": [instance]})),
        )
        .await["run_id"]
        .as_str()
        .expect("run_id")
        .to_string();
    let export = p
        .call(post, "/exports", Some(json!({"kind": "database_ledger"})))
        .await["id"]
        .as_str()
        .expect("export id")
        .to_string();
    let watch = db.connect().await;
    until(
        &watch,
        "SELECT (SELECT count(*) FROM task_run_items WHERE status = 'running') = 1 \
           AND (SELECT count(*) FROM export_jobs WHERE status = 'running') = 1",
    )
    .await;
    drop(first); // kill -9
    lock.batch_execute("ROLLBACK").await.expect("unlock");

    let _second = p.start().await;
    let run = p
        .until_done(&format!("/task-runs/{run}"), &["pending", "running"])
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    let export = p
        .until_done(&format!("/exports/{export}"), &["queued", "running"])
        .await;
    assert_eq!(export["status"], "completed", "{export}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_restart_mid_run_ends_with_the_run_finished() {
    let Some(pg) = PrivatePg::start().await else {
        eprintln!("skipped: PostgreSQL server binaries not found");
        return;
    };
    let t = TestStack::start_on_with(&pg.url, vec![("TIDEMARK_CONNECT_TIMEOUT_SECS", "4")])
        .await
        .expect("stack");
    let silent = t
        .server_instance("postgresql", "127.0.0.1", silent_server().await, None, &[])
        .await;
    let pg_id = t.shared_postgres().await;
    let run_id = t.start_run(&[silent, pg_id]).await;
    // The silent server holds its item for the connect timeout: restart meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pg.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.start_again();
    let run = t.wait_run(&run_id).await;
    assert_eq!(run["status"], "completed_with_errors", "{run}");
    let items = t.run_items(&run_id).await;
    let failed: Vec<&Value> = items.iter().filter(|i| i["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{items:?}");
    assert_eq!(failed[0]["instance_id"], silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_restart_mid_export_re_queues_it_and_it_completes() {
    let Some(pg) = PrivatePg::start().await else {
        eprintln!("skipped: PostgreSQL server binaries not found");
        return;
    };
    let t = TestStack::start_on_with(&pg.url, Vec::new())
        .await
        .expect("stack");
    // The export's read waits on this lock when the server goes down.
    let lock = tidemark_tests::connect(&pg.url).await;
    lock.batch_execute("BEGIN; LOCK TABLE instance_databases IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let r = t
        .post(
            "/exports",
            tidemark_tests::Role::Viewer,
            json!({"kind": "database_ledger"}),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let id = r.data()["id"].as_str().expect("id").to_string();
    until(
        &lock,
        "SELECT count(*) = 1 FROM export_jobs WHERE status = 'running'",
    )
    .await;
    pg.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.start_again();
    let job = t
        .poll(&format!("/exports/{id}"), &["queued", "running"])
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    let db = tidemark_tests::connect(&pg.url).await;
    let attempts: i32 = db
        .query_one("SELECT attempt FROM export_jobs", &[])
        .await
        .expect("attempt")
        .get(0);
    assert_eq!(attempts, 2, "interrupted once, redone once");
}
