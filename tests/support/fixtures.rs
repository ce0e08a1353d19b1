//! Fixtures: resources made through the API (or, where the create path is not under test,
//! straight in SQL), collection runs followed to their end, and servers that misbehave.

use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::{Role, TestStack};

/// `prefix_` and 12 random hex digits: a name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &Uuid::new_v4().simple().to_string()[..12])
}

impl TestStack {
    /// POSTs `body` to `path` as `role`, asserts 201 and returns the new `id`.
    pub async fn create(&self, path: &str, role: Role, body: Value) -> i64 {
        let r = self.post(path, role, body).await;
        assert_eq!(r.status, 201, "POST {path}: {r:?}");
        r.data()["id"].as_i64().expect("id")
    }

    /// Creates an instance and returns its id.
    pub async fn instance(&self, name: &str, db_type: &str, host: &str, port: u16) -> i64 {
        self.create(
            "/instances",
            Role::Operator,
            json!({"name": name, "db_type": db_type, "host": host, "port": port}),
        )
        .await
    }

    /// Creates an instance of a real server (a unique name, a credential, names to skip).
    pub async fn server_instance(
        &self,
        db_type: &str,
        host: &str,
        port: u16,
        credential_id: Option<i64>,
        exclude: &[&str],
    ) -> i64 {
        // Admin: attaching a credential is theirs.
        self.create(
            "/instances",
            Role::Admin,
            json!({"name": unique("inst"), "db_type": db_type, "host": host, "port": port,
                   "credential_id": credential_id, "exclude_databases": exclude}),
        )
        .await
    }

    /// Creates a tag (category `test`, display name = name) and returns its id.
    pub async fn tag(&self, name: &str) -> i64 {
        self.create(
            "/tags",
            Role::Operator,
            json!({"name": name, "display_name": name, "category": "test"}),
        )
        .await
    }

    /// Creates a credential with an empty password (trust authentication) and returns its id.
    pub async fn credential(&self, username: &str) -> i64 {
        self.create(
            "/credentials",
            Role::Admin,
            json!({"name": unique("cred"), "username": username, "password": ""}),
        )
        .await
    }

    /// `n` instances `prefix1..=prefixN` inserted in SQL, for tests of something else than
    /// the create path; their ids in order.
    pub async fn seed_instances(&self, prefix: &str, n: i64) -> Vec<i64> {
        self.db
            .connect()
            .await
            .query(
                "INSERT INTO instances (name, db_type, host, port) \
                 SELECT $1 || g, 'mysql', '10.0.0.1', 3306 FROM generate_series(1, $2::bigint) g \
                 RETURNING id",
                &[&prefix, &n],
            )
            .await
            .expect("seed instances")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// One PostgreSQL instance named `name` inserted in SQL; its id.
    pub async fn seed_instance(&self, name: &str) -> i64 {
        self.db
            .connect()
            .await
            .query_one(
                "INSERT INTO instances (name, db_type, host, port) \
                 VALUES ($1, 'postgresql', '10.0.0.9', 5432) RETURNING id",
                &[&name],
            )
            .await
            .expect("seed instance")
            .get(0)
    }

    /// Starts a collection of `ids`; its run id.
    pub async fn start_run(&self, ids: &[i64]) -> String {
        let r = self
            .post(
                "/collections",
                Role::Operator,
                json!({ "instance_ids": ids }),
            )
            .await;
        assert_eq!(r.status, 202, "{r:?}");
        r.data()["run_id"].as_str().expect("run_id").to_string()
    }

    /// Polls the run until it is finished; returns it.
    pub async fn wait_run(&self, run_id: &str) -> Value {
        self.poll(&format!("/task-runs/{run_id}"), &["pending", "running"])
            .await
    }

    /// The items of a run (up to 200).
    pub async fn run_items(&self, run_id: &str) -> Vec<Value> {
        self.get(
            &format!("/task-runs/{run_id}/items?limit=200"),
            Role::Viewer,
        )
        .await
        .items()
    }

    /// Every item of the list at `path` (with its query string), page after page by `page=`
    /// until `has_next` is false.
    pub async fn all_by_page(&self, path: &str) -> Vec<Value> {
        let mut all = Vec::new();
        for page in 1.. {
            let r = self.get(&format!("{path}&page={page}"), Role::Viewer).await;
            all.extend(r.items());
            if r.data()["has_next"] == json!(false) {
                break;
            }
        }
        all
    }

    /// Every item of the list at `path` (with its query string), following `next_cursor`
    /// until there is none.
    pub async fn all_by_cursor(&self, path: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut r = self.get(path, Role::Viewer).await;
        loop {
            all.extend(r.items());
            match r.data()["next_cursor"].as_str() {
                Some(c) => r = self.get(&format!("{path}&cursor={c}"), Role::Viewer).await,
                None => return all,
            }
        }
    }

    /// GETs `path` every 100 ms (2 minutes at most) while its `status` is one of `busy`;
    /// returns the resource once it is not.
    pub async fn poll(&self, path: &str, busy: &[&str]) -> Value {
        for _ in 0..1200 {
            let r = self.get(path, Role::Viewer).await;
            assert_eq!(r.status, 200, "{r:?}");
            let status = r.data()["status"].as_str().unwrap_or("");
            if !busy.contains(&status) {
                return r.data().clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} did not finish");
    }
}

/// A port nothing listens on.
pub async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr").port()
}

/// A server that accepts connections and never says a word.
pub async fn silent_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = l.accept().await {
            held.push(sock);
        }
    });
    port
}
