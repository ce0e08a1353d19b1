//! Foundation: the HTTP contract over the local stack (instances, credentials, tags, system).

use reqwest::Method;
use serde_json::{json, Value};
use tidemark::http::Role;
use tidemark_tests::{captured_logs, token, TestStack, ADMIN, OPERATOR, VIEWER};

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
async fn instance_lifecycle_over_http() {
    let t = TestStack::start().await;
    let cred = t
        .post(
            "/credentials",
            Role::Admin,
            json!({"name": "ro", "username": "reader", "password": "pw-123456"}),
        )
        .await;
    assert_eq!(cred.status, 201, "{cred:?}");
    let prod = t.tag("prod").await;
    let r = t
        .post(
            "/instances",
            Role::Admin,
            json!({"name": "mysql-prod-1", "db_type": "MariaDB", "host": "10.0.0.7", "port": 3306,
                   "credential_id": cred.data()["id"], "description": "orders", "tag_ids": [prod],
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
    assert_eq!(
        t.delete(&format!("/instances/{id}"), Role::Operator)
            .await
            .status,
        200
    );
    assert_eq!(
        t.get(&format!("/instances/{id}"), Role::Viewer)
            .await
            .status,
        404
    );
    assert_eq!(
        t.get("/instances", Role::Viewer).await.data()["items"],
        json!([])
    );
    let r = t.get("/instances?status=deleted", Role::Viewer).await;
    assert_eq!(r.data()["items"][0]["status"], json!("deleted"));
    assert_eq!(
        t.get("/instances?include_deleted=true", Role::Viewer)
            .await
            .data()["items"]
            .as_array()
            .unwrap()
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
    assert_eq!(
        t.delete(&format!("/instances/{id}?mode=hard"), Role::Operator)
            .await
            .status,
        403
    );
    assert_eq!(
        t.delete(&format!("/instances/{id}?mode=hard"), Role::Admin)
            .await
            .status,
        200
    );
    assert_eq!(
        t.get(
            &format!("/instances/{id}?include_deleted=true"),
            Role::Viewer
        )
        .await
        .status,
        404
    );
    assert_eq!(
        t.delete(&format!("/instances/{id}"), Role::Operator)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn instance_validation_errors() {
    let t = TestStack::start().await;
    let cases = [
        (
            json!({"name": "a", "db_type": "mysql", "host": "h", "port": 0}),
            "port",
        ),
        (
            json!({"name": "a", "db_type": "mysql", "host": "h", "port": 70000}),
            "port",
        ),
        (
            json!({"name": "a", "db_type": "mysql", "host": "300.1.1.1", "port": 1}),
            "host",
        ),
        (
            json!({"name": "a", "db_type": "mysql", "host": "bad host", "port": 1}),
            "host",
        ),
        (
            json!({"name": "a b", "db_type": "mysql", "host": "h", "port": 1}),
            "name",
        ),
        (
            json!({"name": "a", "db_type": "oracle", "host": "h", "port": 1}),
            "db_type",
        ),
        (
            json!({"name": "a", "db_type": "mysql", "host": "h", "port": 1, "colour": "red"}),
            "colour",
        ),
        (
            json!({"name": "a", "db_type": "mysql", "host": "h", "port": "x"}),
            "",
        ),
        (
            json!({"name": "a", "db_type": "mysql", "host": "h", "port": 1, "credential_id": 999}),
            "credential_id",
        ),
        (
            json!({"name": "a", "db_type": "mysql", "host": "h", "port": 1, "tag_ids": [999]}),
            "tag_ids",
        ),
    ];
    for (body, field) in cases {
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
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("page=0", "page"),
        ("sort=password", "sort"),
        ("order=sideways", "order"),
        ("status=gone", "status"),
        ("tag_mode=some", "tag_mode"),
        ("cursor=%%%", "cursor"),
    ] {
        let r = t.get(&format!("/instances?{q}"), Role::Viewer).await;
        assert_eq!((r.status, r.code()), (400, "VALIDATION_ERROR"), "{q}");
        assert_eq!(r.body["error"]["field"], json!(field), "{q}");
    }
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
        let mut by_page = Vec::new();
        for page in 1.. {
            let r = t
                .get(
                    &format!("/instances?sort={sort}&order={order}&limit=50&page={page}"),
                    Role::Viewer,
                )
                .await;
            by_page.extend(
                r.data()["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["id"].as_i64().unwrap()),
            );
            if r.data()["has_next"] == json!(false) {
                break;
            }
        }
        let mut by_cursor = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                None => format!("/instances?sort={sort}&order={order}&limit=50"),
                Some(c) => format!("/instances?sort={sort}&order={order}&limit=50&cursor={c}"),
            };
            let r = t.get(&path, Role::Viewer).await;
            assert_eq!(r.status, 200, "{r:?}");
            by_cursor.extend(
                r.data()["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["id"].as_i64().unwrap()),
            );
            match r.data()["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
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
    let ids = |r: &tidemark_tests::Resp| -> Vec<i64> {
        r.data()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    };
    let r = t
        .get("/instances?tag=a&tag=b&sort=name", Role::Viewer)
        .await;
    assert_eq!(ids(&r), vec![both, only_a]);
    let r = t
        .get(
            "/instances?tag=a&tag=b&tag_mode=all&include_total=true",
            Role::Viewer,
        )
        .await;
    assert_eq!(ids(&r), vec![both]);
    assert_eq!(r.data()["total"], json!(1));
    let r = t.get("/instances?search=ONLY", Role::Viewer).await;
    assert_eq!(ids(&r), vec![only_a]);
    let r = t.get("/instances?db_type=pg", Role::Viewer).await;
    assert_eq!(ids(&r), Vec::<i64>::new());
}

#[tokio::test]
async fn etag_then_304() {
    let t = TestStack::start().await;
    t.instance("x", "mysql", "h", 3306).await;
    let r = t.get("/instances", Role::Viewer).await;
    let etag = r.headers["etag"].to_str().unwrap().to_string();
    let resp = t
        .http
        .get(format!("{}/instances", t.base))
        .bearer_auth(VIEWER)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
    // A change gives a new tag and a full answer.
    t.instance("y", "mysql", "h", 3306).await;
    let resp = t
        .http
        .get(format!("{}/instances", t.base))
        .bearer_auth(VIEWER)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn authentication_and_roles() {
    let t = TestStack::start().await;
    let id = t.instance("x", "mysql", "h", 3306).await;
    let tag = t.tag("t1").await;
    let r = t.call(Method::GET, "/instances", None, None).await;
    assert_eq!((r.status, r.code()), (401, "AUTHENTICATION_REQUIRED"));
    let r = t
        .call(
            Method::GET,
            "/instances",
            Some("not-a-token-at-all-000"),
            None,
        )
        .await;
    assert_eq!(r.status, 401);
    let body = json!({"name": "n1", "db_type": "mysql", "host": "h", "port": 1});
    let forbidden: Vec<(Method, String, &str, Option<Value>)> = vec![
        (
            Method::POST,
            "/instances".into(),
            VIEWER,
            Some(body.clone()),
        ),
        (
            Method::PATCH,
            format!("/instances/{id}"),
            VIEWER,
            Some(json!({"port": 2})),
        ),
        (Method::DELETE, format!("/instances/{id}"), VIEWER, None),
        (
            Method::POST,
            format!("/instances/{id}/actions/restore"),
            VIEWER,
            Some(json!({})),
        ),
        (
            Method::POST,
            "/tags".into(),
            VIEWER,
            Some(json!({"name": "z", "display_name": "z", "category": "c"})),
        ),
        (Method::DELETE, format!("/tags/{tag}"), OPERATOR, None),
        (
            Method::POST,
            "/tags/actions/batch-delete".into(),
            OPERATOR,
            Some(json!({"tag_ids": [tag]})),
        ),
        (Method::GET, "/credentials".into(), OPERATOR, None),
        (
            Method::POST,
            "/credentials".into(),
            OPERATOR,
            Some(json!({"name": "c", "username": "u", "password": "p"})),
        ),
        (
            Method::DELETE,
            format!("/instances/{id}?mode=hard"),
            OPERATOR,
            None,
        ),
        (Method::GET, "/partitions".into(), OPERATOR, None),
        (
            Method::POST,
            "/partitions/actions/ensure".into(),
            OPERATOR,
            Some(json!({})),
        ),
        (Method::GET, "/logs".into(), OPERATOR, None),
    ];
    for (method, path, tok, body) in forbidden {
        let r = t
            .call(method.clone(), &path, Some(tok), body.as_ref())
            .await;
        assert_eq!(
            (r.status, r.code()),
            (403, "PERMISSION_DENIED"),
            "{method} {path}"
        );
    }
    // And each role can do what it should.
    assert_eq!(t.get("/instances", Role::Viewer).await.status, 200);
    assert_eq!(t.get("/schedules", Role::Viewer).await.status, 200);
    assert_eq!(t.get("/credentials", Role::Admin).await.status, 200);
    assert_eq!(t.get("/partitions", Role::Admin).await.status, 200);
    assert_eq!(token(Role::Admin), ADMIN);
}

#[tokio::test]
async fn credential_password_is_write_only_and_never_logged() {
    let t = TestStack::start().await;
    let secret = "Sup3r-S3cret-Passw0rd-do-not-leak";
    let r = t
        .post(
            "/credentials",
            Role::Admin,
            json!({"name": "svc", "username": "svc_user", "password": secret}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.data()["id"].as_i64().unwrap();
    let mut bodies = vec![r.body.to_string()];
    let i = t
        .post(
            "/instances",
            Role::Admin,
            json!({"name": "i1", "db_type": "pg", "host": "h", "port": 5432, "credential_id": id}),
        )
        .await;
    bodies.push(i.body.to_string());
    let iid = i.data()["id"].as_i64().unwrap();
    for path in [
        "/credentials".to_string(),
        format!("/credentials/{id}"),
        format!("/instances/{iid}"),
        "/instances".into(),
    ] {
        bodies.push(t.get(&path, Role::Admin).await.body.to_string());
    }
    let r = t
        .patch(
            &format!("/credentials/{id}"),
            Role::Admin,
            json!({"password": format!("{secret}-2")}),
        )
        .await;
    assert_eq!(r.status, 200);
    bodies.push(r.body.to_string());
    // Unknown field with the password in it is refused without echoing it.
    let r = t
        .post(
            "/credentials",
            Role::Admin,
            json!({"name": "x", "username": "u", "password": secret, "pw": secret}),
        )
        .await;
    assert_eq!(r.status, 400);
    bodies.push(r.body.to_string());
    for b in &bodies {
        assert!(!b.contains(secret), "password leaked in a response: {b}");
        assert!(
            !b.contains("password_ciphertext"),
            "ciphertext field leaked: {b}"
        );
    }
    assert!(bodies[0].contains("\"has_password\":true"));
    // Stored encrypted.
    let pg = t.db.connect().await;
    let row = pg
        .query_one(
            "SELECT password_ciphertext FROM credentials WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let cipher: Vec<u8> = row.get(0);
    assert!(!cipher.windows(secret.len()).any(|w| w == secret.as_bytes()));
    assert!(
        !captured_logs().contains(secret),
        "password leaked into the log"
    );

    // In use: delete refused; unused: deleted.
    let r = t.delete(&format!("/credentials/{id}"), Role::Admin).await;
    assert_eq!((r.status, r.code()), (409, "CONFLICT"));
    t.delete(&format!("/instances/{iid}?mode=hard"), Role::Admin)
        .await;
    assert_eq!(
        t.delete(&format!("/credentials/{id}"), Role::Admin)
            .await
            .status,
        200
    );
    assert_eq!(
        t.get(&format!("/credentials/{id}"), Role::Admin)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn tag_routes() {
    let t = TestStack::start().await;
    let r = t
        .post(
            "/tags",
            Role::Operator,
            json!({"name": "prod", "display_name": "Production", "category": "env"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let prod = r.data()["id"].as_i64().unwrap();
    let r = t
        .post(
            "/tags",
            Role::Operator,
            json!({"name": "prod", "display_name": "P", "category": "env"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "CONFLICT"));
    let r = t
        .post(
            "/tags",
            Role::Operator,
            json!({"name": "bad name!", "display_name": "P", "category": "env"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].clone()),
        (400, json!("name"))
    );
    let r = t
        .post(
            "/tags",
            Role::Operator,
            json!({"name": "x", "display_name": " ", "category": "env"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].clone()),
        (400, json!("display_name"))
    );
    let staging = t.post("/tags", Role::Operator, json!({"name": "staging", "display_name": "Staging", "category": "env", "is_active": false})).await;
    let staging = staging.data()["id"].as_i64().unwrap();
    let dc = t
        .post(
            "/tags",
            Role::Operator,
            json!({"name": "dc1", "display_name": "DC 1", "category": "site"}),
        )
        .await;
    let dc = dc.data()["id"].as_i64().unwrap();
    let i = t.instance("i1", "mysql", "h", 1).await;
    t.patch(
        &format!("/instances/{i}"),
        Role::Operator,
        json!({"tag_ids": [prod]}),
    )
    .await;

    let r = t
        .get("/tags?category=env&status=active", Role::Viewer)
        .await;
    assert_eq!(r.data()["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.data()["items"][0]["instance_count"], json!(1));
    let r = t.get("/tags?search=stag", Role::Viewer).await;
    assert_eq!(r.data()["items"][0]["id"], json!(staging));
    let r = t.get("/tags/categories", Role::Viewer).await;
    assert_eq!(r.data()["categories"], json!(["env", "site"]));
    let r = t
        .patch(
            &format!("/tags/{staging}"),
            Role::Operator,
            json!({"is_active": true, "display_name": "Stage"}),
        )
        .await;
    assert_eq!(
        (
            r.data()["is_active"].clone(),
            r.data()["display_name"].clone()
        ),
        (json!(true), json!("Stage"))
    );
    assert_eq!(
        t.get(&format!("/tags/{prod}"), Role::Viewer).await.data()["name"],
        json!("prod")
    );

    let r = t.delete(&format!("/tags/{prod}"), Role::Admin).await;
    assert_eq!((r.status, r.code()), (409, "TAG_IN_USE"));
    assert_eq!(r.body["error"]["details"]["instance_count"], json!(1));
    let r = t
        .post(
            "/tags/actions/batch-delete",
            Role::Admin,
            json!({"tag_ids": [prod, dc, 999_999]}),
        )
        .await;
    assert_eq!(r.status, 207, "{r:?}");
    let statuses: Vec<(i64, String)> = r.data()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["tag_id"].as_i64().unwrap(),
                x["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(statuses.contains(&(prod, "in_use".into())));
    assert!(statuses.contains(&(dc, "deleted".into())));
    assert!(statuses.contains(&(999_999, "not_found".into())));
    let r = t
        .post(
            "/tags/actions/batch-delete",
            Role::Admin,
            json!({"tag_ids": [staging]}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        t.post(
            "/tags/actions/batch-delete",
            Role::Admin,
            json!({"tag_ids": []})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        t.delete(&format!("/tags/{dc}"), Role::Admin).await.status,
        404
    );
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
    assert_eq!(
        (r.data()["total"].clone(), r.data()["error_count"].clone()),
        (json!(3), json!(1))
    );
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

#[tokio::test]
async fn stale_runs_are_failed_with_their_unfinished_items() {
    let t = TestStack::start().await;
    let pg = t.db.connect().await;
    pg.batch_execute(
        "INSERT INTO task_runs (run_id, task_key, status, started_at) VALUES \
           ('00000000-0000-0000-0000-000000000001', 'collect_databases', 'running', now() - interval '7 hours'), \
           ('00000000-0000-0000-0000-000000000002', 'other', 'running', now()); \
         INSERT INTO task_run_items (run_id, item_key, status) VALUES \
           ('00000000-0000-0000-0000-000000000001', 'a', 'running'), \
           ('00000000-0000-0000-0000-000000000001', 'b', 'completed'), \
           ('00000000-0000-0000-0000-000000000002', 'c', 'running');",
    )
    .await
    .unwrap();
    let client = t.stack.app.db.get().await.unwrap();
    assert_eq!(tidemark::tasks::fail_stale_runs(&client).await.unwrap(), 1);
    let rows = pg
        .query("SELECT r.status, i.item_key, i.status FROM task_run_items i JOIN task_runs r USING (run_id) ORDER BY i.item_key", &[])
        .await
        .unwrap();
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let want = [
        ("failed", "a", "failed"),
        ("failed", "b", "completed"),
        ("running", "c", "running"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn health_is_503_when_postgres_is_down() {
    let Some(pg) = tidemark_tests::private_pg::PrivatePg::start().await else {
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
