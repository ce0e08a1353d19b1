//! Bad input never reaches a 500: control characters in query parameters and JSON bodies,
//! PostgreSQL data exceptions, tampered cursors. Each answer is a 400 in the envelope naming
//! the field, and nothing is written.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use tidemark_tests::{Resp, Role, TestStack};

fn refused(r: &Resp, field: &str) {
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.code(), "VALIDATION_ERROR", "{r:?}");
    assert_eq!(r.body["error"]["field"], json!(field), "{r:?}");
}

#[tokio::test]
async fn control_characters_in_filters_and_search_are_400() {
    let t = TestStack::start().await;
    t.seed_instances("box", 2).await;
    for (path, field) in [
        ("/instances?search=%00", "search"),
        ("/instances?search=a%00b&limit=5", "search"),
        ("/databases/ledger?search=%00", "search"),
        ("/tags?search=%00", "search"),
        ("/instances?tag=%1B%5B31m", "tag"),
        ("/databases/ledger?instance_name=x%7F", "instance_name"),
        ("/logs?search=%0D%0Afake", "search"),
    ] {
        let r = t.get(path, Role::Admin).await;
        refused(&r, field);
    }
    // Text outside ASCII is not a control character.
    let r = t.get("/instances?search=caf%C3%A9", Role::Viewer).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn control_characters_in_a_body_are_400_and_write_nothing() {
    let t = TestStack::start().await;
    let instance = json!({"name": "a\u{0}b", "db_type": "mysql", "host": "10.0.0.1", "port": 3306});
    refused(
        &t.post("/instances", Role::Operator, instance).await,
        "name",
    );
    let tag = json!({"name": "prod", "display_name": "Prod\u{0}", "category": "env"});
    refused(&t.post("/tags", Role::Operator, tag).await, "display_name");
    let export = json!({"kind": "instances", "filters": {"search": "\u{0}"}});
    refused(
        &t.post("/exports", Role::Viewer, export).await,
        "filters.search",
    );
    let export = json!({"kind": "instances", "filters": {"tag": ["ok", "\u{1b}"]}});
    refused(
        &t.post("/exports", Role::Viewer, export).await,
        "filters.tag[1]",
    );
    let secret = json!({"name": "c1", "username": "u", "password": "p\u{0}w"});
    let r = t.post("/credentials", Role::Admin, secret).await;
    refused(&r, "password");
    assert!(!r.body.to_string().contains("p\\u0000w"), "{r:?}");

    let c = t.db.connect().await;
    for table in ["instances", "tags", "export_jobs", "credentials"] {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table}");
    }
    // A description may span lines.
    let described = json!({"name": "ok", "db_type": "mysql", "host": "10.0.0.1", "port": 3306,
                           "description": "line one\nline two\ttabbed"});
    let r = t.post("/instances", Role::Operator, described).await;
    assert_eq!(r.status, 201, "{r:?}");
}

/// `cursor` with its JSON `v` replaced.
fn tampered(cursor: &str, v: Value) -> String {
    let mut c: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(cursor).unwrap()).unwrap();
    c["v"] = v;
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap())
}

#[tokio::test]
async fn a_cursor_that_decodes_but_carries_a_wrong_value_is_400() {
    let t = TestStack::start().await;
    t.seed_instances("box", 3).await;
    for (sort, wrong) in [
        ("id", json!("x")),
        ("id", json!("99999999999999999999")),
        ("name", json!("a\u{0}")),
        ("created_at", json!("not a time")),
        ("created_at", json!("10000000-01-01")),
        ("last_collected_at", json!("")),
    ] {
        let first = t
            .get(&format!("/instances?limit=1&sort={sort}"), Role::Viewer)
            .await;
        let cursor = first.data()["next_cursor"].as_str().expect("a next page");
        let r = t
            .get(
                &format!(
                    "/instances?limit=1&sort={sort}&cursor={}",
                    tampered(cursor, wrong.clone())
                ),
                Role::Viewer,
            )
            .await;
        refused(&r, "cursor");
        // The untouched cursor still works.
        let r = t
            .get(
                &format!("/instances?limit=1&sort={sort}&cursor={cursor}"),
                Role::Viewer,
            )
            .await;
        assert_eq!(r.items().len(), 1, "{sort}");
    }
    // The ledger sorts by a composite key: a value that is not one is refused the same way.
    let c = t.db.connect().await;
    c.batch_execute(
        "INSERT INTO instance_databases (instance_id, database_name) \
         SELECT id, 'db' || g FROM instances, generate_series(1, 2) g",
    )
    .await
    .unwrap();
    let first = t.get("/databases/ledger?limit=1", Role::Viewer).await;
    let cursor = first.data()["next_cursor"].as_str().expect("a next page");
    let r = t
        .get(
            &format!(
                "/databases/ledger?limit=1&cursor={}",
                tampered(cursor, json!("(unclosed"))
            ),
            Role::Viewer,
        )
        .await;
    refused(&r, "cursor");
}

/// Every data exception (SQLSTATE class 22) is the caller's value, not a server fault.
#[tokio::test]
async fn data_exceptions_map_to_400() {
    let t = TestStack::start().await;
    let c = t.db.connect().await;
    for statement in [
        "SELECT 'x'::int",
        "SELECT 9223372036854775807::bigint + 1",
        "SELECT 1 / 0",
        "SELECT '2026-13-01'::date",
        "SELECT convert_from('\\x00'::bytea, 'UTF8')",
    ] {
        let e = c.query(statement, &[]).await.unwrap_err();
        assert!(
            e.code().unwrap().code().starts_with("22"),
            "{statement}: {e}"
        );
        let api = tidemark::web::ApiError::from(e);
        assert_eq!(api.status.as_u16(), 400, "{statement}");
        assert_eq!(api.code, "VALIDATION_ERROR");
        assert!(api.internal.is_some(), "the detail goes to the log only");
    }
    let e = c
        .query("SELECT * FROM no_such_table", &[])
        .await
        .unwrap_err();
    assert_eq!(tidemark::web::ApiError::from(e).status.as_u16(), 500);
}
