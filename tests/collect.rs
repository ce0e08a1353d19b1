//! Integration tests (collect): the real PostgreSQL and MariaDB of this machine, instances
//! and credentials made through the API, databases of our own on both servers (unique names,
//! dropped at the end; other tests create theirs on the same servers, so we assert only
//! about ours).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use mysql_async::prelude::Queryable;
use serde_json::{json, Value};
use tidemark::http::Role;
use tidemark::queue::CollectMessage;
use tidemark_tests::{TestStack, ADMIN_URL};
use uuid::Uuid;

const PG_PORT: u16 = 5432;
const MY_PORT: u16 = 3306;

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &Uuid::new_v4().simple().to_string()[..12])
}

async fn pg(dbname: &str) -> tokio_postgres::Client {
    let url = format!("host=127.0.0.1 port={PG_PORT} user=postgres dbname={dbname}");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect postgres");
    tokio::spawn(conn);
    client
}

async fn my() -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(MY_PORT)
        .user(Some("root"))
        .prefer_socket(false);
    mysql_async::Conn::new(opts).await.expect("connect mariadb")
}

/// Databases this test made on the shared servers; dropped when the value is, even if the
/// test fails.
#[derive(Default)]
struct Scratch {
    pg: Vec<String>,
    my: Vec<String>,
}

impl Scratch {
    /// A PostgreSQL database holding about `mb` MB (0: only the catalog), vacuumed so its
    /// size on disk no longer moves.
    async fn pg_db(&mut self, name: &str, mb: usize) {
        pg("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create pg db");
        self.pg.push(name.to_string());
        let c = pg(name).await;
        if mb > 0 {
            // Random text so TOAST compression cannot shrink it.
            c.batch_execute(&format!(
                "CREATE TABLE filler AS SELECT g AS id, \
                 (SELECT string_agg(md5(random()::text || g || s), '') FROM generate_series(1, 30) s) AS pad \
                 FROM generate_series(1, {}) g",
                mb * 1000
            ))
            .await
            .expect("fill pg db");
        }
        c.batch_execute("VACUUM ANALYZE").await.expect("vacuum");
    }

    async fn my_db(&mut self, name: &str, mb: usize) {
        let mut c = my().await;
        c.query_drop(format!("CREATE DATABASE `{name}`"))
            .await
            .expect("create mariadb db");
        self.my.push(name.to_string());
        if mb > 0 {
            c.query_drop(format!(
                "CREATE TABLE `{name}`.filler (id INT PRIMARY KEY, pad VARCHAR(1000)) ENGINE=InnoDB"
            ))
            .await
            .expect("create table");
            c.query_drop("SET SESSION max_recursive_iterations = 1000000")
                .await
                .expect("recursion limit");
            c.query_drop(format!(
                "INSERT INTO `{name}`.filler \
                 WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {}) \
                 SELECT n, REPEAT(MD5(n), 30) FROM s",
                mb * 1000
            ))
            .await
            .expect("fill mariadb db");
        }
        let _ = c.disconnect().await;
    }

    async fn my_drop(&mut self, name: &str) {
        let mut c = my().await;
        c.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
            .await
            .expect("drop");
        let _ = c.disconnect().await;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (pgs, mys) = (std::mem::take(&mut self.pg), std::mem::take(&mut self.my));
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok((c, conn)) =
                    tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    for n in &pgs {
                        let _ = c
                            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{n}\" WITH (FORCE)"))
                            .await;
                    }
                }
                if !mys.is_empty() {
                    let mut c = my().await;
                    for n in &mys {
                        let _ = c.query_drop(format!("DROP DATABASE IF EXISTS `{n}`")).await;
                    }
                    let _ = c.disconnect().await;
                }
            });
        })
        .join();
    }
}

/// What PostgreSQL itself reports for a database.
async fn pg_size(name: &str) -> i64 {
    pg("postgres")
        .await
        .query_one("SELECT pg_database_size($1::text)", &[&name])
        .await
        .expect("pg_database_size")
        .get(0)
}

/// What MariaDB itself reports, by the catalog the adapter documents: the InnoDB tablespace
/// files of the schema (our test tables are all InnoDB, and the names need no escaping).
async fn my_size(name: &str) -> i64 {
    let mut c = my().await;
    let v: Option<u64> = c
        .exec_first(
            "SELECT CAST(COALESCE(SUM(FILE_SIZE), 0) AS UNSIGNED) FROM information_schema.INNODB_SYS_TABLESPACES \
             WHERE NAME LIKE CONCAT(?, '/%')",
            (name,),
        )
        .await
        .expect("tablespace sizes");
    let _ = c.disconnect().await;
    v.unwrap_or(0) as i64
}

async fn credential(t: &TestStack, username: &str) -> i64 {
    let r = t
        .post(
            "/credentials",
            Role::Admin,
            json!({"name": unique("cred"), "username": username, "password": ""}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    r.data()["id"].as_i64().unwrap()
}

async fn instance(
    t: &TestStack,
    db_type: &str,
    host: &str,
    port: u16,
    credential_id: Option<i64>,
    exclude: &[&str],
) -> i64 {
    // Admin: attaching a credential is theirs.
    let r = t
        .post(
            "/instances",
            Role::Admin,
            json!({"name": unique("inst"), "db_type": db_type, "host": host, "port": port,
                   "credential_id": credential_id, "exclude_databases": exclude}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    r.data()["id"].as_i64().unwrap()
}

async fn start_run(t: &TestStack, ids: &[i64]) -> String {
    let r = t
        .post(
            "/collections",
            Role::Operator,
            json!({ "instance_ids": ids }),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    r.data()["run_id"].as_str().unwrap().to_string()
}

/// Polls the run until it is finished; returns it.
async fn wait_run(t: &TestStack, run_id: &str) -> Value {
    for _ in 0..1200 {
        let r = t.get(&format!("/task-runs/{run_id}"), Role::Viewer).await;
        assert_eq!(r.status, 200, "{r:?}");
        let status = r.data()["status"].as_str().unwrap_or("").to_string();
        if status != "pending" && status != "running" {
            return r.data().clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {run_id} did not finish");
}

async fn items(t: &TestStack, run_id: &str) -> Vec<Value> {
    let r = t
        .get(
            &format!("/task-runs/{run_id}/items?limit=200"),
            Role::Viewer,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.data()["items"].as_array().unwrap().clone()
}

/// `database_name -> (latest_size_bytes, is_active)` of one instance's inventory.
async fn inventory(t: &TestStack, instance_id: i64) -> HashMap<String, (Option<i64>, bool)> {
    t.db.connect()
        .await
        .query(
            "SELECT database_name, latest_size_bytes, is_active FROM instance_databases WHERE instance_id = $1",
            &[&instance_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sizes_agree_with_each_server_and_system_databases_are_excluded() {
    let t = TestStack::start().await;
    let mut s = Scratch::default();
    let (pg_big, pg_small, pg_skip) = (unique("tmc_big"), unique("tmc_small"), unique("tmc_skip"));
    let (my_big, my_small, my_skip) = (unique("tmc_big"), unique("tmc_small"), unique("tmc_skip"));
    s.pg_db(&pg_big, 20).await;
    s.pg_db(&pg_small, 0).await;
    s.pg_db(&pg_skip, 0).await;
    s.my_db(&my_big, 20).await;
    s.my_db(&my_small, 0).await;
    s.my_db(&my_skip, 0).await;

    let pg_cred = credential(&t, "postgres").await;
    let my_cred = credential(&t, "root").await;
    let pg_id = instance(
        &t,
        "postgresql",
        "127.0.0.1",
        PG_PORT,
        Some(pg_cred),
        &["tmc\\_skip\\_%"],
    )
    .await;
    let my_id = instance(
        &t,
        "mysql",
        "127.0.0.1",
        MY_PORT,
        Some(my_cred),
        &[&pg_skip.replace("pg", "x"), &my_skip],
    )
    .await;

    let run_id = start_run(&t, &[pg_id, my_id]).await;
    let run = wait_run(&t, &run_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["items_succeeded"], 2);

    let pg_inv = inventory(&t, pg_id).await;
    let my_inv = inventory(&t, my_id).await;
    for name in [&pg_big, &pg_small] {
        let (size, active) = pg_inv[name.as_str()];
        assert!(active);
        assert_eq!(size, Some(pg_size(name).await), "{name}");
    }
    for name in [&my_big, &my_small] {
        let (size, active) = my_inv[name.as_str()];
        assert!(active);
        assert_eq!(size, Some(my_size(name).await), "{name}");
    }
    // About 20 MB of rows, and an empty schema has no tablespace at all.
    assert!(pg_inv[pg_big.as_str()].0.unwrap() > 15_000_000);
    assert!(my_inv[my_big.as_str()].0.unwrap() > 15_000_000);
    assert_eq!(my_inv[my_small.as_str()].0, Some(0));
    for system in ["postgres", "template0", "template1", pg_skip.as_str()] {
        assert!(!pg_inv.contains_key(system), "{system} collected");
    }
    for system in [
        "mysql",
        "information_schema",
        "performance_schema",
        "sys",
        my_skip.as_str(),
    ] {
        assert!(!my_inv.contains_key(system), "{system} collected");
    }

    // History, the instance total and the version, written with the inventory.
    let c = t.db.connect().await;
    let row = c
        .query_one(
            "SELECT s.total_size_bytes, s.database_count, \
                    (SELECT sum(size_bytes) FROM database_size_stats d WHERE d.instance_id = $1 AND d.collected_date = s.collected_date)::bigint, \
                    (SELECT count(*) FROM instance_databases WHERE instance_id = $1 AND is_active), i.version, i.last_collected_at IS NOT NULL \
             FROM instance_size_stats s JOIN instances i ON i.id = s.instance_id WHERE s.instance_id = $1",
            &[&my_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), row.get::<_, i64>(2));
    assert_eq!(i64::from(row.get::<_, i32>(1)), row.get::<_, i64>(3));
    assert!(row.get::<_, String>(4).contains("MariaDB"));
    assert!(row.get::<_, bool>(5));

    // The synchronous action answers the same sizes.
    let r = t
        .post(
            &format!("/instances/{pg_id}/actions/collect"),
            Role::Operator,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let got: HashMap<String, i64> = r.data()["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["database_name"].as_str().unwrap().to_string(),
                d["size_bytes"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got.get(&pg_big), Some(&pg_size(&pg_big).await));
    assert!(!got.contains_key("template1"));
    assert_eq!(
        r.data()["database_count"].as_u64().unwrap() as usize,
        got.len()
    );
    for field in ["instance_id", "total_size_bytes", "duration_ms"] {
        assert!(r.data().get(field).is_some(), "{field}");
    }
    assert_eq!(
        t.post(
            "/instances/999999/actions/collect",
            Role::Operator,
            json!({})
        )
        .await
        .status,
        404
    );
    assert_eq!(
        t.post(
            &format!("/instances/{pg_id}/actions/collect"),
            Role::Viewer,
            json!({})
        )
        .await
        .status,
        403
    );
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// A server that accepts connections and never says a word.
async fn silent_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = l.accept().await {
            held.push(sock);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_instance_fails_fast_and_the_others_succeed() {
    let t = TestStack::start().await;
    let pg_id = instance(
        &t,
        "postgresql",
        "127.0.0.1",
        PG_PORT,
        Some(credential(&t, "postgres").await),
        &[],
    )
    .await;
    let my_id = instance(
        &t,
        "mysql",
        "127.0.0.1",
        MY_PORT,
        Some(credential(&t, "root").await),
        &[],
    )
    .await;
    let port = closed_port().await;
    let dead_id = instance(&t, "postgresql", "127.0.0.1", port, None, &[]).await;

    let run_id = start_run(&t, &[pg_id, my_id, dead_id]).await;
    let run = wait_run(&t, &run_id).await;
    assert_eq!(run["status"], "completed_with_errors", "{run}");
    assert_eq!(run["items_total"], 3);
    assert_eq!(run["items_succeeded"], 2);
    assert_eq!(run["items_failed"], 1);
    assert!((run["failure_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 0.001);
    for k in ["p50", "p95", "max"] {
        assert!(run["item_duration_ms"][k].is_i64(), "{run}");
    }
    assert!(run["duration_ms"].is_i64());

    let failed = t
        .get(
            &format!("/task-runs/{run_id}/items?status=failed"),
            Role::Viewer,
        )
        .await;
    let failed = failed.data()["items"].as_array().unwrap().clone();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["instance_id"], dead_id);
    let error = failed[0]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("could not connect to 127.0.0.1:{port}")),
        "{error}"
    );
    // Refused at once, well under the 10 s connect timeout.
    assert!(failed[0]["duration_ms"].as_i64().unwrap() < 10_000);
    let ok = items(&t, &run_id).await;
    assert!(ok
        .iter()
        .filter(|i| i["status"] == "completed")
        .all(|i| i["metrics"]["database_count"].is_i64()));

    // The synchronous action reports the reason with 502.
    let r = t
        .post(
            &format!("/instances/{dead_id}/actions/collect"),
            Role::Operator,
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code()), (502, "COLLECTION_FAILED"), "{r:?}");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("could not connect"));

    // One event line for the finished run, with its metrics.
    let c = t.db.connect().await;
    let events: i64 = c
        .query_one(
            "SELECT count(*) FROM event_logs WHERE context->>'run_id' = $1 AND context->>'status' = 'completed_with_errors' \
             AND (context->>'items_failed')::int = 1",
            &[&run_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(events, 1);
}

type Latest = (Option<i64>, Option<DateTime<Utc>>, Option<NaiveDate>);

/// The latest columns of one database's inventory row.
async fn latest(c: &tokio_postgres::Client, instance_id: i64, name: &str) -> Latest {
    let r = c
        .query_one(
            "SELECT latest_size_bytes, latest_collected_at, latest_collected_date FROM instance_databases \
             WHERE instance_id = $1 AND database_name = $2",
            &[&instance_id, &name],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_delivered_twice_writes_once() {
    let t = TestStack::start().await;
    let mut s = Scratch::default();
    let name = unique("tmc_twice");
    s.my_db(&name, 1).await;
    let my_id = instance(
        &t,
        "mysql",
        "127.0.0.1",
        MY_PORT,
        Some(credential(&t, "root").await),
        &[],
    )
    .await;
    let run_id = start_run(&t, &[my_id]).await;
    assert_eq!(wait_run(&t, &run_id).await["status"], "completed");

    let c = t.db.connect().await;
    let before = latest(&c, my_id, &name).await;
    let date = before.2.unwrap();
    let message = CollectMessage {
        run_id: run_id.parse().unwrap(),
        instance_id: my_id,
        host: "127.0.0.1".into(),
        port: MY_PORT.into(),
        collected_date: date,
    };
    // Redelivery of a finished item.
    tidemark::collect::process(&t.stack.app, &message)
        .await
        .unwrap();
    assert_eq!(latest(&c, my_id, &name).await, before);

    // Two deliveries of one message at the same moment, on a run of its own: one write,
    // one item completion, the run closed exactly once.
    let run2: Uuid = c
        .query_one(
            "INSERT INTO task_runs (task_key, status, items_total) VALUES ('collect_twice_test', 'running', 1) RETURNING run_id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO task_run_items (run_id, item_key, instance_id) VALUES ($1, $2, $3)",
        &[&run2, &my_id.to_string(), &my_id],
    )
    .await
    .unwrap();
    let twice = CollectMessage {
        run_id: run2,
        ..message.clone()
    };
    let (a, b) = tokio::join!(
        tidemark::collect::process(&t.stack.app, &twice),
        tidemark::collect::process(&t.stack.app, &twice)
    );
    a.unwrap();
    b.unwrap();
    let r = c
        .query_one(
            "SELECT r.status, r.items_succeeded, (SELECT count(*) FROM event_logs e WHERE e.context->>'run_id' = r.run_id::text) \
             FROM task_runs r WHERE r.run_id = $1",
            &[&run2],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "completed");
    assert_eq!(r.get::<_, i32>(1), 1);
    assert_eq!(r.get::<_, i64>(2), 1);
    let rows: Vec<(String, i64)> = c
        .query(
            "SELECT database_name, count(*) FROM database_size_stats WHERE instance_id = $1 AND collected_date = $2 GROUP BY 1",
            &[&my_id, &date],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(rows.iter().any(|(n, _)| *n == name));
    assert!(rows.iter().all(|(_, n)| *n == 1), "{rows:?}");
    assert_eq!(latest(&c, my_id, &name).await.0, before.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collections_are_serial_per_host_and_bounded_in_total() {
    let t = TestStack::start_with(vec![
        ("TIDEMARK_COLLECT_CONCURRENCY", "5"),
        ("TIDEMARK_CONNECT_TIMEOUT_SECS", "1"),
    ])
    .await;
    let pg_cred = credential(&t, "postgres").await;
    let my_cred = credential(&t, "root").await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(instance(&t, "postgresql", "127.0.0.1", PG_PORT, Some(pg_cred), &[]).await);
        ids.push(instance(&t, "mysql", "127.0.0.1", MY_PORT, Some(my_cred), &[]).await);
    }
    // Eight more servers that hold each collection for the whole connect timeout, so the
    // total bound is what limits them.
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(instance(&t, "mysql", "127.0.0.1", silent_server().await, None, &[]).await);
    }
    ids.extend(&silent);
    let run_id = start_run(&t, &ids).await;
    let run = wait_run(&t, &run_id).await;
    assert_eq!(run["status"], "completed_with_errors", "{run}");
    assert_eq!(run["items_succeeded"], 12);
    assert_eq!(run["items_failed"], 8);

    let c = t.db.connect().await;
    let rows = c
        .query(
            "SELECT i.host || ':' || i.port, it.started_at, it.completed_at, it.error FROM task_run_items it \
             JOIN instances i ON i.id = it.instance_id WHERE it.run_id = $1::text::uuid ORDER BY it.started_at",
            &[&run_id],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 20);
    let spans: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    for r in &rows {
        if let Some(e) = r.get::<_, Option<String>>(3) {
            assert!(e.contains("no answer within"), "{e}");
        }
    }
    // Per host:port, each collection starts after the previous one finished.
    let mut last_end: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for (group, start, end) in &spans {
        if let Some(prev) = last_end.get(group.as_str()) {
            assert!(start >= prev, "two collections of {group} overlapped");
        }
        last_end.insert(group, *end);
    }
    // At no moment more than 5 running (a start meets the end of another: not overlapping).
    let mut events: Vec<(DateTime<Utc>, i32)> = spans
        .iter()
        .flat_map(|(_, s, e)| [(*s, 1), (*e, -1)])
        .collect();
    events.sort_by_key(|(at, delta)| (*at, *delta));
    let (mut now, mut peak) = (0, 0);
    for (_, delta) in events {
        now += delta;
        peak = peak.max(now);
    }
    assert!(peak <= 5, "{peak} collections at once");
    assert!(peak >= 2, "collections never ran side by side");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_database_goes_inactive_and_comes_back() {
    let t = TestStack::start().await;
    let mut s = Scratch::default();
    let name = unique("tmc_cycle");
    s.my_db(&name, 0).await;
    let my_id = instance(
        &t,
        "mysql",
        "127.0.0.1",
        MY_PORT,
        Some(credential(&t, "root").await),
        &[],
    )
    .await;
    let collect = || async {
        let r = t
            .post(
                &format!("/instances/{my_id}/actions/collect"),
                Role::Operator,
                json!({}),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    };
    let state = |c: tokio_postgres::Client| {
        let name = name.clone();
        async move {
            let r = c
                .query_one(
                    "SELECT is_active, deleted_at IS NOT NULL FROM instance_databases WHERE instance_id = $1 AND database_name = $2",
                    &[&my_id, &name],
                )
                .await
                .unwrap();
            (r.get::<_, bool>(0), r.get::<_, bool>(1))
        }
    };
    collect().await;
    assert_eq!(state(t.db.connect().await).await, (true, false));
    s.my_drop(&name).await;
    collect().await;
    assert_eq!(state(t.db.connect().await).await, (false, true));
    let r = t
        .get(
            &format!("/instances/{my_id}/actions/collect"),
            Role::Operator,
        )
        .await;
    assert_eq!(r.status, 405);
    s.my_db(&name, 0).await;
    collect().await;
    assert_eq!(state(t.db.connect().await).await, (true, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_message_for_an_older_date_never_moves_latest_back() {
    let t = TestStack::start().await;
    let mut s = Scratch::default();
    let name = unique("tmc_late");
    s.my_db(&name, 1).await;
    let my_id = instance(
        &t,
        "mysql",
        "127.0.0.1",
        MY_PORT,
        Some(credential(&t, "root").await),
        &[],
    )
    .await;
    let run_id = start_run(&t, &[my_id]).await;
    assert_eq!(wait_run(&t, &run_id).await["status"], "completed");

    let c = t.db.connect().await;
    let before = latest(&c, my_id, &name).await;
    let today = before.2.unwrap();
    // The database grows; then yesterday's message arrives late.
    let mut m = my().await;
    m.query_drop(format!(
        "CREATE TABLE `{name}`.more (id INT PRIMARY KEY, pad TEXT)"
    ))
    .await
    .unwrap();
    let _ = m.disconnect().await;
    let late_run: Uuid = c
        .query_one(
            "INSERT INTO task_runs (task_key, status, items_total) VALUES ('collect_late_test', 'running', 1) RETURNING run_id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO task_run_items (run_id, item_key, instance_id) VALUES ($1, $2, $3)",
        &[&late_run, &my_id.to_string(), &my_id],
    )
    .await
    .unwrap();
    let yesterday = today.pred_opt().unwrap();
    tidemark::collect::process(
        &t.stack.app,
        &CollectMessage {
            run_id: late_run,
            instance_id: my_id,
            host: "127.0.0.1".into(),
            port: MY_PORT.into(),
            collected_date: yesterday,
        },
    )
    .await
    .unwrap();
    assert_eq!(latest(&c, my_id, &name).await, before);
    let r = c
        .query_one(
            "SELECT (SELECT size_bytes FROM database_size_stats WHERE instance_id = $1 AND database_name = $2 AND collected_date = $3), \
                    (SELECT count(*) FROM instance_size_stats WHERE instance_id = $1 AND collected_date = $3), \
                    (SELECT status FROM task_runs WHERE run_id = $4), \
                    (SELECT last_collected_date FROM instances WHERE id = $1)",
            &[&my_id, &name, &yesterday, &late_run],
        )
        .await
        .unwrap();
    assert!(
        r.get::<_, Option<i64>>(0).unwrap() > before.0.unwrap(),
        "the late row holds what it saw"
    );
    assert_eq!(r.get::<_, i64>(1), 1);
    assert_eq!(r.get::<_, String>(2), "completed");
    assert_eq!(r.get::<_, Option<NaiveDate>>(3), Some(today));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_collection_at_a_time_cancel_and_task_run_lists() {
    let t = TestStack::start_with(vec![("TIDEMARK_CONNECT_TIMEOUT_SECS", "1")]).await;
    // Four instances on one silent server: one at a time, each held for the connect timeout.
    let port = silent_server().await;
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(instance(&t, "postgresql", "127.0.0.1", port, None, &[]).await);
    }
    let run_id = start_run(&t, &slow).await;
    let r = t.post("/collections", Role::Operator, json!({})).await;
    assert_eq!((r.status, r.code()), (409, "CONFLICT"), "{r:?}");
    assert_eq!(
        t.post("/collections", Role::Viewer, json!({})).await.status,
        403
    );
    assert_eq!(
        t.post("/collections", Role::Operator, json!({"instance_ids": []}))
            .await
            .status,
        400
    );
    assert_eq!(
        t.post("/collections", Role::Operator, json!({"bogus": 1}))
            .await
            .status,
        400
    );

    let r = t
        .post(
            &format!("/task-runs/{run_id}/actions/cancel"),
            Role::Operator,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.data()["status"], "cancelled");
    let r = t
        .post(
            &format!("/task-runs/{run_id}/actions/cancel"),
            Role::Operator,
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "RUN_NOT_RUNNING"));

    // The item that was running finishes; the pending ones never start.
    let mut final_items = Vec::new();
    for _ in 0..100 {
        final_items = items(&t, &run_id).await;
        if final_items.iter().all(|i| i["status"] != "running") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let count = |s: &str| final_items.iter().filter(|i| i["status"] == s).count();
    assert!(count("cancelled") >= 2, "{final_items:?}");
    assert_eq!(count("cancelled") + count("failed"), 4);
    assert!(final_items
        .iter()
        .filter(|i| i["status"] == "cancelled")
        .all(|i| i["started_at"].is_null()));

    // The slot is free again.
    let pg_id = instance(
        &t,
        "postgresql",
        "127.0.0.1",
        PG_PORT,
        Some(credential(&t, "postgres").await),
        &[],
    )
    .await;
    let second = start_run(&t, &[pg_id]).await;
    let run = wait_run(&t, &second).await;
    assert_eq!(run["status"], "completed");
    for k in [
        "duration_ms",
        "items_total",
        "items_succeeded",
        "items_failed",
        "failure_rate",
        "item_duration_ms",
        "progress",
    ] {
        assert!(run.get(k).is_some(), "{k} missing: {run}");
    }
    assert_eq!(run["trigger"], "manual");

    // Lists: newest first, filters, validation.
    let r = t
        .get("/task-runs?task_key=collect_databases", Role::Viewer)
        .await;
    let listed: Vec<&str> = r.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![second.as_str(), run_id.as_str()]);
    let r = t
        .get(
            "/task-runs?status=cancelled&include_total=true",
            Role::Viewer,
        )
        .await;
    assert_eq!(r.data()["total"], 1);
    assert_eq!(r.data()["items"][0]["run_id"], run_id.as_str());
    let r = t.get("/task-runs?limit=1", Role::Viewer).await;
    assert_eq!(r.data()["has_next"], true);
    let cursor = r.data()["next_cursor"].as_str().unwrap().to_string();
    let r = t
        .get(&format!("/task-runs?limit=1&cursor={cursor}"), Role::Viewer)
        .await;
    assert_eq!(r.data()["items"][0]["run_id"], run_id.as_str());
    assert_eq!(
        t.get("/task-runs?status=bogus", Role::Viewer).await.status,
        400
    );
    assert_eq!(
        t.get("/task-runs?trigger=manual", Role::Viewer)
            .await
            .data()["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        t.get(&format!("/task-runs/{}", Uuid::new_v4()), Role::Viewer)
            .await
            .status,
        404
    );
    assert_eq!(
        t.get("/task-runs/not-a-uuid/items", Role::Viewer)
            .await
            .status,
        404
    );
    assert_eq!(
        t.get(
            &format!("/task-runs/{run_id}/items?status=nope"),
            Role::Viewer
        )
        .await
        .status,
        400
    );
}
