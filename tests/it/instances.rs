//! Instances over HTTP: lifecycle (create, patch, soft delete, restore, hard delete),
//! validation, list parameters, keyset pages, tag filters and ETags.

use serde_json::{json, Value};
use tidemark_tests::{item_ids, Method, Role, TestStack, OPERATOR, VIEWER};

#[tokio::test]
async fn instance_lifecycle_over_http() {
    let t = TestStack::start().await;
    let cred = json!({"name": "ro", "username": "reader", "password": "pw-123456"});
    let cred = t.create("/credentials", Role::Admin, cred).await;
    let prod = t.tag("prod").await;
    let r = t
        .post(
            "/instances",
            Role::Admin,
            json!({"name": "mysql-prod-1", "db_type": "MariaDB", "host": "10.0.0.7", "port": 3306,
                   "credential_id": cred, "description": "orders", "tag_ids": [prod],
                   "exclude_databases": ["tmp_%"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.data()["id"].as_i64().unwrap();
    assert_eq!(r.data()["db_type"], json!("mysql"));
    assert_eq!(
        r.headers["location"],
        format!("/api/v1/instances/{id}").as_str()
    );
    assert_eq!(r.data()["tags"][0]["name"], json!("prod"));
    assert_eq!(r.data()["credential"]["username"], json!("reader"));

    let r = t.get(&format!("/instances/{id}"), Role::Viewer).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["exclude_databases"], json!(["tmp_%"]));
    assert_eq!(r.data()["totals"], Value::Null);

    // PATCH: absent fields (tags too) stay as they are; null clears a nullable field.
    let r = t
        .patch(
            &format!("/instances/{id}"),
            Role::Admin,
            json!({"port": 3307, "description": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.data()["port"], json!(3307));
    assert_eq!(r.data()["description"], Value::Null);
    assert_eq!(r.data()["tags"].as_array().unwrap().len(), 1);
    assert_eq!(r.data()["host"], json!("10.0.0.7"));
    let r = t
        .patch(
            &format!("/instances/{id}"),
            Role::Operator,
            json!({"tag_ids": []}),
        )
        .await;
    assert_eq!(r.data()["tags"], json!([]));

    let r = t
        .get(&format!("/instances/{id}/databases"), Role::Viewer)
        .await;
    assert_eq!((r.status, r.data()["items"].clone()), (200, json!([])));

    // Soft delete: gone from lists and GET, idempotent; restore brings it back.
    let r = t.delete(&format!("/instances/{id}"), Role::Operator).await;
    assert_eq!(
        (r.status, r.data()["deletion_mode"].clone()),
        (200, json!("soft"))
    );
    let one = format!("/instances/{id}");
    t.expect_statuses(&[
        (Method::DELETE, &one, Role::Operator, 200),
        (Method::GET, &one, Role::Viewer, 404),
    ])
    .await;
    assert_eq!(
        t.get("/instances", Role::Viewer).await.data()["items"],
        json!([])
    );
    let r = t.get("/instances?status=deleted", Role::Viewer).await;
    assert_eq!(r.data()["items"][0]["status"], json!("deleted"));
    assert_eq!(
        t.get("/instances?include_deleted=true", Role::Viewer)
            .await
            .items()
            .len(),
        1
    );
    let r = t
        .post(
            &format!("/instances/{id}/actions/restore"),
            Role::Operator,
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.data()["status"].clone()),
        (200, json!("active"))
    );
    assert_eq!(
        t.get("/instances", Role::Viewer).await.data()["items"][0]["id"],
        json!(id)
    );

    // Hard delete is admin only.
    let hard = format!("/instances/{id}?mode=hard");
    t.expect_statuses(&[
        (Method::DELETE, &hard, Role::Operator, 403),
        (Method::DELETE, &hard, Role::Admin, 200),
        (
            Method::GET,
            &format!("{one}?include_deleted=true"),
            Role::Viewer,
            404,
        ),
        (Method::DELETE, &one, Role::Operator, 404),
    ])
    .await;
}

#[tokio::test]
async fn instance_validation_errors() {
    let t = TestStack::start().await;
    // Each case sets one key of a valid body; the error names `field` ("": none).
    let cases = [
        ("port", json!(0), "port"),
        ("port", json!(70000), "port"),
        ("host", json!("300.1.1.1"), "host"),
        ("host", json!("bad host"), "host"),
        ("name", json!("a b"), "name"),
        ("db_type", json!("oracle"), "db_type"),
        ("colour", json!("red"), "colour"),
        ("port", json!("x"), ""),
    ];
    for (key, value, field) in cases {
        let mut body = json!({"name": "a", "db_type": "mysql", "host": "h", "port": 1});
        body[key] = value;
        // Admin: a credential_id is theirs to give (an operator gets 403 first).
        let r = t.post("/instances", Role::Admin, body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "VALIDATION_ERROR"),
            "{body}: {r:?}"
        );
        if !field.is_empty() {
            assert_eq!(r.body["error"]["field"], json!(field), "{body}: {r:?}");
        }
    }
    // A reference to nothing is a 404 naming the field (as in the bulk tag operations).
    for (key, value) in [("credential_id", json!(999)), ("tag_ids", json!([999]))] {
        let mut body = json!({"name": "a", "db_type": "mysql", "host": "h", "port": 1});
        body[key] = value;
        let r = t.post("/instances", Role::Admin, body.clone()).await;
        assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "{body}: {r:?}");
        assert_eq!(r.body["error"]["field"], json!(key), "{body}: {r:?}");
    }
    // Malformed JSON.
    let resp = t
        .http
        .post(format!("{}/instances", t.base))
        .bearer_auth(OPERATOR)
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!("MALFORMED_JSON"));
    assert_eq!(body["success"], json!(false));
    // Over 1 MiB.
    let big = json!({"name": "a", "db_type": "mysql", "host": "h", "port": 1, "description": "x".repeat(1_100_000)});
    let r = t.post("/instances", Role::Operator, big).await;
    assert_eq!((r.status, r.code()), (413, "PAYLOAD_TOO_LARGE"));
    // Duplicate name.
    t.instance("dup", "postgresql", "db.example.com", 5432)
        .await;
    let r = t
        .post(
            "/instances",
            Role::Operator,
            json!({"name": "dup", "db_type": "pg", "host": "h", "port": 1}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "CONFLICT"));
    // Nothing half-written: the failed creates left exactly one instance.
    let r = t.get("/instances?include_total=true", Role::Viewer).await;
    assert_eq!(r.data()["total"], json!(1));
}

#[tokio::test]
async fn list_parameters_are_validated() {
    let t = TestStack::start().await;
    t.expect_invalid_queries(
        "/instances",
        &[
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("page=0", "page"),
            ("sort=password", "sort"),
            ("order=sideways", "order"),
            ("status=gone", "status"),
            ("tag_mode=some", "tag_mode"),
            ("cursor=%%%", "cursor"),
        ],
    )
    .await;
    let r = t.get("/instances?limit=200", Role::Viewer).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["limit"], json!(200));
    assert!(r.data().get("total").is_none(), "total only on request");
}

#[tokio::test]
async fn cursor_pages_equal_offset_pages_over_250_instances() {
    let t = TestStack::start().await;
    let pg = t.db.connect().await;
    // Names with ties on host, to exercise the id tie-break.
    pg.batch_execute(
        "INSERT INTO instances (name, db_type, host, port) \
         SELECT 'inst-' || lpad(g::text, 4, '0'), CASE WHEN g % 2 = 0 THEN 'mysql' ELSE 'postgresql' END, \
                'host-' || (g % 7), 3306 FROM generate_series(1, 260) g",
    )
    .await
    .unwrap();
    for (sort, order) in [
        ("id", "desc"),
        ("name", "asc"),
        ("host", "asc"),
        ("host", "desc"),
        ("last_collected_at", "desc"),
    ] {
        let list = format!("/instances?sort={sort}&order={order}&limit=50");
        let by_page = item_ids(&t.all_by_page(&list).await);
        let by_cursor = item_ids(&t.all_by_cursor(&list).await);
        assert_eq!(by_page.len(), 260, "{sort} {order}");
        assert_eq!(by_page, by_cursor, "{sort} {order}");
    }
    // A cursor made for one sort is refused for another; page with cursor is refused.
    let r = t.get("/instances?sort=name&limit=5", Role::Viewer).await;
    let c = r.data()["next_cursor"].as_str().unwrap().to_string();
    assert_eq!(
        t.get(&format!("/instances?sort=host&cursor={c}"), Role::Viewer)
            .await
            .status,
        400
    );
    assert_eq!(
        t.get(
            &format!("/instances?sort=name&page=2&cursor={c}"),
            Role::Viewer
        )
        .await
        .status,
        400
    );
    let r = t
        .get("/instances?include_total=true&limit=1", Role::Viewer)
        .await;
    assert_eq!(r.data()["total"], json!(260));
}

#[tokio::test]
async fn tag_filter_lists_each_instance_once() {
    let t = TestStack::start().await;
    let a = t.tag("a").await;
    let b = t.tag("b").await;
    let both = t.instance("both", "mysql", "h1", 3306).await;
    let only_a = t.instance("only-a", "mysql", "h2", 3306).await;
    t.instance("none", "mysql", "h3", 3306).await;
    t.patch(
        &format!("/instances/{both}"),
        Role::Operator,
        json!({"tag_ids": [a, b]}),
    )
    .await;
    t.patch(
        &format!("/instances/{only_a}"),
        Role::Operator,
        json!({"tag_ids": [a]}),
    )
    .await;
    let r = t
        .get("/instances?tag=a&tag=b&sort=name", Role::Viewer)
        .await;
    assert_eq!(r.ids(), vec![both, only_a]);
    let r = t
        .get(
            "/instances?tag=a&tag=b&tag_mode=all&include_total=true",
            Role::Viewer,
        )
        .await;
    assert_eq!(r.ids(), vec![both]);
    assert_eq!(r.data()["total"], json!(1));
    let r = t.get("/instances?search=ONLY", Role::Viewer).await;
    assert_eq!(r.ids(), vec![only_a]);
    let r = t.get("/instances?db_type=pg", Role::Viewer).await;
    assert_eq!(r.ids(), Vec::<i64>::new());
}

/// `GET /instances` as the viewer with `If-None-Match: etag`.
async fn list_if_none_match(t: &TestStack, etag: &str) -> reqwest::Response {
    t.http
        .get(format!("{}/instances", t.base))
        .bearer_auth(VIEWER)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn etag_then_304() {
    let t = TestStack::start().await;
    t.instance("x", "mysql", "h", 3306).await;
    let r = t.get("/instances", Role::Viewer).await;
    let etag = r.headers["etag"].to_str().unwrap().to_string();
    let resp = list_if_none_match(&t, &etag).await;
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
    // A change gives a new tag and a full answer.
    t.instance("y", "mysql", "h", 3306).await;
    let resp = list_if_none_match(&t, &etag).await;
    assert_eq!(resp.status(), 200);
}
