//! System routes: health (with the database up and down), request ids, partitions and their
//! maintenance, schedules and the event log.

use reqwest::Method;
use serde_json::json;
use tidemark_tests::private_pg::PrivatePg;
use tidemark_tests::{Role, TestStack};

#[tokio::test]
async fn health_needs_no_token_and_every_response_has_a_request_id() {
    let t = TestStack::start().await;
    let r = t.call(Method::GET, "/health", None, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.data()["status"], json!("ok"));
    assert_eq!(r.data()["database"], json!("ok"));
    assert!(r.headers.contains_key("x-request-id"));
    let r = t.call(Method::GET, "/nope", None, None).await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"));
    assert!(r.headers.contains_key("x-request-id"));
    assert_eq!(
        r.body["error"]["request_id"].as_str(),
        r.headers["x-request-id"].to_str().ok()
    );
}

#[tokio::test]
async fn health_is_503_when_postgres_is_down() {
    let Some(pg) = PrivatePg::start().await else {
        eprintln!("skipping: no PostgreSQL server binaries");
        return;
    };
    let t = TestStack::start_on(&pg.url).await;
    let r = t.call(Method::GET, "/health", None, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    pg.stop();
    let r = t.call(Method::GET, "/health", None, None).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.data()["status"], json!("degraded"));
    assert_eq!(r.data()["database"], json!("error"));
    let r = t.get("/instances", Role::Viewer).await;
    assert_eq!((r.status, r.code()), (503, "UNAVAILABLE"));
}

#[tokio::test]
async fn system_routes() {
    let t = TestStack::start().await;
    let r = t.get("/partitions", Role::Admin).await;
    assert_eq!(r.status, 200);
    for table in r.data()["tables"].as_array().unwrap() {
        assert_eq!(table["missing_future_months"], json!([]), "{table}");
        assert!(
            table["partitions"].as_array().unwrap().len() >= 5,
            "{table}"
        );
    }
    let r = t
        .post("/partitions/actions/ensure", Role::Admin, json!({}))
        .await;
    assert_eq!((r.status, r.data()["created"].clone()), (200, json!([])));
    let r = t.get("/schedules", Role::Viewer).await;
    let keys: Vec<&str> = r.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        vec!["collect_databases", "aggregate_capacity", "maintenance"]
    );
    let pg = t.db.connect().await;
    pg.batch_execute(
        "INSERT INTO event_logs (level, module, message) VALUES ('ERROR', 'collect', 'boom'), ('INFO', 'bulk', 'ok'), ('INFO', 'bulk', 'ok2')",
    )
    .await
    .unwrap();
    let r = t.get("/logs?level=error", Role::Admin).await;
    assert_eq!(r.data()["items"].as_array().unwrap().len(), 1);
    let r = t.get("/logs?module=bul&search=ok2", Role::Admin).await;
    assert_eq!(r.data()["items"][0]["message"], json!("ok2"));
    let r = t.get("/logs/statistics", Role::Admin).await;
    // The three lines, and the audit entry of the partitions POST above.
    assert_eq!(
        (r.data()["total"].clone(), r.data()["error_count"].clone()),
        (json!(4), json!(1))
    );
    assert_eq!(r.data()["level_distribution"]["INFO"], json!(3));
    assert_eq!(
        t.get("/logs?start_time=yesterday", Role::Admin)
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn maintenance_moves_default_rows_into_new_partitions() {
    let t = TestStack::start().await;
    let id = t.instance("m", "mysql", "h", 1).await;
    let pg = t.db.connect().await;
    // A month far ahead has no partition: the row lands in DEFAULT and is reported there.
    pg.execute(
        "INSERT INTO database_size_stats (instance_id, database_name, collected_date, size_bytes) VALUES ($1, 'd', '2031-06-02', 1)",
        &[&id],
    )
    .await
    .unwrap();
    let r = t.get("/partitions", Role::Admin).await;
    let stats = r.data()["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == json!("database_size_stats"))
        .unwrap()
        .clone();
    assert_eq!(stats["default_rows"], json!(1));
    pg.execute(
        "SELECT tidemark_ensure_month_partition('database_size_stats', '2031-06-01')",
        &[],
    )
    .await
    .unwrap();
    let where_: String = pg
        .query_one(
            "SELECT tableoid::regclass::text FROM database_size_stats WHERE instance_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(where_, "database_size_stats_2031_06");
    // Retention drops whole months.
    let client = t.stack.app.db.get().await.unwrap();
    let dropped = tidemark::system::partitions::drop_before(
        &client,
        "database_size_stats",
        "2031-07-01".parse().unwrap(),
    )
    .await
    .unwrap();
    assert!(dropped.contains(&"database_size_stats_2031_06".to_string()));
}

/// What openapi.yaml says about methods: a known path with another method is 405 with
/// `Allow` (before authentication); HEAD answers like GET without a body.
#[tokio::test]
async fn other_methods_are_405_with_allow_and_head_answers_like_get() {
    let t = TestStack::start().await;
    let id = t.instance("m", "mysql", "h", 3306).await;
    for (method, path, allow) in [
        (
            Method::PUT,
            format!("/instances/{id}"),
            "DELETE, GET, HEAD, PATCH",
        ),
        (Method::DELETE, "/instances".to_string(), "GET, HEAD, POST"),
        (Method::GET, "/tags/bulk/assign".to_string(), "POST"),
    ] {
        let r = t.call(method.clone(), &path, None, None).await;
        assert_eq!(
            (r.status, r.code()),
            (405, "METHOD_NOT_ALLOWED"),
            "{method} {path}"
        );
        assert_eq!(r.headers["allow"], allow, "{method} {path}");
    }
    let r = t.call(Method::PUT, "/no-such-route", None, None).await;
    assert_eq!(r.status, 404);

    let get = t.get("/instances", Role::Viewer).await;
    let head = t
        .call(
            Method::HEAD,
            "/instances",
            Some(tidemark_tests::VIEWER),
            None,
        )
        .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_null(), "{head:?}");
    assert_eq!(head.headers["etag"], get.headers["etag"]);
    assert!(head.headers.contains_key("x-request-id"));
}

/// The app database is protected from one process: every pooled connection carries the
/// statement timeout (a runaway statement is cancelled, not left running), and a connection
/// idle longer than the idle limit is closed instead of reused.
#[tokio::test]
async fn the_pool_bounds_statements_and_idle_connections() {
    use std::time::Duration;
    let db = tidemark_tests::TestDb::create().await;
    let limits = tidemark::db::Limits {
        statement_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(3),
    };
    let pool = tidemark::db::pool_with(&db.url, 1, None, limits).unwrap();
    async fn pid(c: &tokio_postgres::Client) -> i32 {
        tidemark_tests::scalar(c, "SELECT pg_backend_pid()").await
    }
    let c = pool.get().await.unwrap();
    let shown: Vec<String> = c
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get::<_, String>(0)
        .split(',')
        .map(str::to_string)
        .collect();
    assert_eq!(shown, vec!["1s"]);
    let e = c.query("SELECT pg_sleep(5)", &[]).await.unwrap_err();
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
    );
    let first = pid(&c).await;
    drop(c);
    // Used just now: reused.
    let c = pool.get().await.unwrap();
    assert_eq!(pid(&c).await, first);
    drop(c);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let c = pool.get().await.unwrap();
    assert_ne!(pid(&c).await, first, "an idle connection was reused");
}
