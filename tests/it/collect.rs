//! Collection against this machine's real PostgreSQL and MariaDB: instances and credentials
//! made through the API, databases of our own on both servers (unique names, dropped at the
//! end; other tests create theirs on the same servers, so we assert only about ours).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use mysql_async::prelude::Queryable;
use serde_json::json;
use tidemark::queue::CollectMessage;
use tidemark_tests::scratch::{my, pg, Scratch, MY_PORT, PG_PORT};
use tidemark_tests::{closed_port, silent_server, unique, Role, TestStack};
use uuid::Uuid;

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

    let pg_cred = t.credential("postgres").await;
    let my_cred = t.credential("root").await;
    let pg_id = t
        .server_instance(
            "postgresql",
            "127.0.0.1",
            PG_PORT,
            Some(pg_cred),
            &["tmc\\_skip\\_%"],
        )
        .await;
    let my_id = t
        .server_instance(
            "mysql",
            "127.0.0.1",
            MY_PORT,
            Some(my_cred),
            &[&pg_skip.replace("pg", "x"), &my_skip],
        )
        .await;

    let run_id = t.start_run(&[pg_id, my_id]).await;
    let run = t.wait_run(&run_id).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_instance_fails_fast_and_the_others_succeed() {
    let t = TestStack::start().await;
    let pg_id = t.shared_postgres().await;
    let my_id = t.shared_mariadb().await;
    let port = closed_port().await;
    let dead_id = t
        .server_instance("postgresql", "127.0.0.1", port, None, &[])
        .await;

    let run_id = t.start_run(&[pg_id, my_id, dead_id]).await;
    let run = t.wait_run(&run_id).await;
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
    let ok = t.run_items(&run_id).await;
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

/// A 1 MiB MariaDB database that a completed run collected once.
struct Collected {
    t: TestStack,
    /// Held so the database is dropped when the test ends.
    _scratch: Scratch,
    name: String,
    my_id: i64,
    run_id: String,
    c: tokio_postgres::Client,
    /// Its inventory row after that run.
    before: Latest,
}

async fn collected_once(prefix: &str) -> Collected {
    let t = TestStack::start().await;
    let mut s = Scratch::default();
    let name = unique(prefix);
    s.my_db(&name, 1).await;
    let my_id = t.shared_mariadb().await;
    let run_id = t.start_run(&[my_id]).await;
    assert_eq!(t.wait_run(&run_id).await["status"], "completed");
    let c = t.db.connect().await;
    let before = latest(&c, my_id, &name).await;
    Collected {
        t,
        _scratch: s,
        name,
        my_id,
        run_id,
        c,
        before,
    }
}

/// A running run of its own (`task_key`) with one pending item for the instance, as a
/// collection start writes it; its id.
async fn run_of_one(c: &tokio_postgres::Client, task_key: &str, instance_id: i64) -> Uuid {
    let run: Uuid = c
        .query_one(
            "INSERT INTO task_runs (task_key, status, items_total) VALUES ($1, 'running', 1) RETURNING run_id",
            &[&task_key],
        )
        .await
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO task_run_items (run_id, item_key, instance_id) VALUES ($1, $2, $3)",
        &[&run, &instance_id.to_string(), &instance_id],
    )
    .await
    .unwrap();
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_delivered_twice_writes_once() {
    let once = collected_once("tmc_twice").await;
    let (t, c) = (&once.t, &once.c);
    let (name, my_id, before) = (once.name.clone(), once.my_id, once.before);
    let date = before.2.unwrap();
    let message = CollectMessage {
        run_id: once.run_id.parse().unwrap(),
        instance_id: my_id,
        host: "127.0.0.1".into(),
        port: MY_PORT.into(),
        collected_date: date,
        tables_of: None,
    };
    // Redelivery of a finished item.
    tidemark::collect::process(&t.stack.app, &message, Duration::from_secs(90))
        .await
        .unwrap();
    assert_eq!(latest(c, my_id, &name).await, before);

    // Two deliveries of one message at the same moment, on a run of its own: one write,
    // one item completion, the run closed exactly once.
    let run2 = run_of_one(c, "collect_twice_test", my_id).await;
    let twice = CollectMessage {
        run_id: run2,
        ..message.clone()
    };
    let (a, b) = tokio::join!(
        tidemark::collect::process(&t.stack.app, &twice, Duration::from_secs(90)),
        tidemark::collect::process(&t.stack.app, &twice, Duration::from_secs(90))
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
    assert_eq!(latest(c, my_id, &name).await.0, before.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collections_are_serial_per_host_and_bounded_in_total() {
    let t = TestStack::start_with(vec![
        ("TIDEMARK_COLLECT_CONCURRENCY", "5"),
        ("TIDEMARK_CONNECT_TIMEOUT_SECS", "1"),
    ])
    .await;
    let pg_cred = t.credential("postgres").await;
    let my_cred = t.credential("root").await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(
            t.server_instance("postgresql", "127.0.0.1", PG_PORT, Some(pg_cred), &[])
                .await,
        );
        ids.push(
            t.server_instance("mysql", "127.0.0.1", MY_PORT, Some(my_cred), &[])
                .await,
        );
    }
    // Eight more servers that hold each collection for the whole connect timeout, so the
    // total bound is what limits them.
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(
            t.server_instance("mysql", "127.0.0.1", silent_server().await, None, &[])
                .await,
        );
    }
    ids.extend(&silent);
    let run_id = t.start_run(&ids).await;
    let run = t.wait_run(&run_id).await;
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
    let my_id = t.shared_mariadb().await;
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
    let once = collected_once("tmc_late").await;
    let (t, c) = (&once.t, &once.c);
    let (name, my_id, before) = (once.name.clone(), once.my_id, once.before);
    let today = before.2.unwrap();
    // The database grows; then yesterday's message arrives late.
    let mut m = my().await;
    m.query_drop(format!(
        "CREATE TABLE `{name}`.more (id INT PRIMARY KEY, pad TEXT)"
    ))
    .await
    .unwrap();
    let _ = m.disconnect().await;
    let late_run = run_of_one(c, "collect_late_test", my_id).await;
    let yesterday = today.pred_opt().unwrap();
    tidemark::collect::process(
        &t.stack.app,
        &CollectMessage {
            run_id: late_run,
            instance_id: my_id,
            host: "127.0.0.1".into(),
            port: MY_PORT.into(),
            collected_date: yesterday,
            tables_of: None,
        },
        Duration::from_secs(90),
    )
    .await
    .unwrap();
    assert_eq!(latest(c, my_id, &name).await, before);
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
