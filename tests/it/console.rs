//! The console on the local stack (static files, history fallback, the API's 404 kept) and
//! the two routes it needs: `GET /me` and `GET /fleet/summary`.

use serde_json::{json, Value};
use tidemark_tests::Role;
use tidemark_tests::TestStack;

/// A fleet whose figures are known: 3 instances (one deleted, one inactive, one never
/// collected), 3 databases with 31 days of history, one collection run.
async fn seed(t: &TestStack) {
    let c = t.db.connect().await;
    c.batch_execute(
        "INSERT INTO instances (id, name, db_type, host, port, is_active, deleted_at, last_collected_at) OVERRIDING SYSTEM VALUE VALUES
           (1, 'pg-a', 'postgresql', 'h1', 5432, true, NULL, now()),
           (2, 'my-b', 'mysql', 'h2', 3306, true, NULL, NULL),
           (3, 'my-c', 'mysql', 'h3', 3306, false, NULL, now()),
           (4, 'pg-gone', 'postgresql', 'h4', 5432, false, now(), now());
         SELECT setval(pg_get_serial_sequence('instances', 'id'), 4);
         INSERT INTO instance_databases (instance_id, database_name, latest_size_bytes, latest_collected_at, latest_collected_date, growth_bytes_per_day) VALUES
           (1, 'orders', 1000000, now(), current_date, 10000),
           (1, 'users', 500000, now(), current_date, 100000),
           (2, 'idle', 2000, now(), current_date, 0),
           (3, 'hidden', 9999999, now(), current_date, 5);
         -- orders grew 1000 a day for 30 days, users 100000 only over the last 5 days.
         INSERT INTO database_size_stats (instance_id, database_name, collected_date, size_bytes)
           SELECT 1, 'orders', current_date - d, 1000000 - d * 1000 FROM generate_series(0, 30) d;
         INSERT INTO database_size_stats (instance_id, database_name, collected_date, size_bytes)
           SELECT 1, 'users', current_date - d, 500000 - LEAST(d, 5) * 100000 FROM generate_series(0, 30) d;
         INSERT INTO task_runs (task_key, trigger, status, started_at, items_total, items_succeeded, items_failed)
           VALUES ('collect_databases', 'manual', 'completed', now() - interval '2 days', 2, 2, 0),
                  ('collect_databases', 'scheduled', 'completed_with_errors', now() - interval '1 hour', 2, 1, 1);",
    )
    .await
    .expect("seed");
}

#[tokio::test]
async fn me_names_the_role_and_the_business_time_zone() {
    let t = TestStack::start_with(vec![("TIDEMARK_TIMEZONE", "Europe/Paris")]).await;
    for role in [Role::Viewer, Role::Operator, Role::Admin] {
        let r = t.get("/me", role).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.data()["role"], role.as_str());
        assert_eq!(r.data()["timezone"], "Europe/Paris");
        assert!(r.data()["subject"].as_str().unwrap().starts_with("token:"));
    }
    let anon = t.call(reqwest::Method::GET, "/me", None, None).await;
    assert_eq!(anon.status, 401);
}

#[tokio::test]
async fn fleet_summary_reports_each_figure() {
    let t = TestStack::start().await;
    seed(&t).await;
    let r = t
        .get("/fleet/summary?threshold_bytes=1500000", Role::Viewer)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let d = r.data();
    assert_eq!(d["threshold_bytes"], 1_500_000);
    // Deleted instances are counted apart and left out of the total.
    assert_eq!(d["instances"]["total"], 3);
    assert_eq!(d["instances"]["by_engine"]["mysql"]["active"], 1);
    assert_eq!(d["instances"]["by_engine"]["mysql"]["inactive"], 1);
    assert_eq!(d["instances"]["by_engine"]["postgresql"]["deleted"], 1);
    assert_eq!(d["instances"]["by_status"]["active"], 2);
    // By version and last check, the instances not deleted (none checked yet).
    assert_eq!(d["instances"]["by_last_check"], json!({"never": 3}));
    let versions = d["instances"]["by_version"].as_object().unwrap();
    assert_eq!(versions.values().filter_map(Value::as_i64).sum::<i64>(), 3);
    // Only databases of active instances: orders, users, idle.
    assert_eq!(d["databases"]["count"], 3);
    assert_eq!(d["databases"]["total_bytes"], 1_502_000);
    assert_eq!(d["databases"]["growth_bytes_per_day"], 110_000);
    assert_eq!(d["last_collection"]["status"], "completed_with_errors");
    assert_eq!(d["last_collection"]["items_failed"], 1);
    // users: 1,000,000 to go at 100,000/day = 10 days; orders: 500,000 at 10,000/day = 50.
    let fills = d["fills_first"].as_array().unwrap();
    assert_eq!(fills.len(), 2, "{fills:?}");
    assert_eq!(fills[0]["database_name"], "users");
    assert_eq!(fills[0]["days_until"], 10);
    assert_eq!(fills[1]["database_name"], "orders");
    assert_eq!(fills[1]["days_until"], 50);
    // Over 7 days users grew 500,000 and orders 7,000; over 30 days orders grew 30,000.
    let g7 = d["top_growers"]["days_7"].as_array().unwrap();
    assert_eq!(g7[0]["database_name"], "users");
    assert_eq!(g7[0]["change_bytes"], 500_000);
    assert_eq!(g7[1]["change_bytes"], 7_000);
    let g30 = d["top_growers"]["days_30"].as_array().unwrap();
    assert_eq!(g30[1]["database_name"], "orders");
    assert_eq!(g30[1]["change_bytes"], 30_000);
    // my-b was never collected; my-c is inactive and pg-gone deleted: not stale.
    assert_eq!(d["stale_instances"]["total"], 1);
    assert_eq!(d["stale_instances"]["items"][0]["name"], "my-b");

    let bad = t
        .get("/fleet/summary?threshold_bytes=0", Role::Viewer)
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["field"], "threshold_bytes");
    let empty = TestStack::start().await;
    let e = empty.get("/fleet/summary", Role::Viewer).await;
    assert_eq!(e.status, 200, "{e:?}");
    assert_eq!(e.data()["last_collection"], json!(null));
    assert_eq!(e.data()["threshold_bytes"], 53_687_091_200i64);
}

#[tokio::test]
async fn console_files_history_fallback_and_api_404() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("assets")).unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><div id=app></div>",
    )
    .unwrap();
    std::fs::write(dir.path().join("assets/app-1.js"), "console.log(1)").unwrap();
    let t =
        TestStack::start_with(vec![("TIDEMARK_CONSOLE_DIR", dir.path().to_str().unwrap())]).await;
    let root = format!("http://{}", t.stack.api_addr);
    let get = |p: &str| t.http.get(format!("{root}{p}")).send();

    for path in ["/", "/ledger?sort=size", "/databases/12", "/instances"] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "text/html; charset=utf-8",
            "{path}"
        );
        assert!(r.text().await.unwrap().contains("id=app"), "{path}");
    }
    let js = get("/assets/app-1.js").await.unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(js.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    // A missing file is a 404, not the app; a path out of the folder never reads it.
    assert_eq!(get("/assets/missing.js").await.unwrap().status(), 404);
    let out = get("/../Cargo.toml").await.unwrap();
    assert!(!out.text().await.unwrap().contains("[package]"));

    let cfg = get("/config.json").await.unwrap();
    assert_eq!(cfg.headers()["content-type"], "application/json");
    assert_eq!(
        cfg.json::<serde_json::Value>().await.unwrap(),
        json!({"auth": "token"})
    );

    // The API keeps its envelope, 404 included.
    let r = get("/api/v1/no-such-route").await.unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    assert!(body["error"]["request_id"].is_string());
    let health = get("/api/v1/health").await.unwrap();
    assert_eq!(health.status(), 200);
    // Other methods on console paths reach the API router (and its envelope).
    let post = t.http.post(format!("{root}/ledger")).send().await.unwrap();
    assert_eq!(post.status(), 404);
}
