//! Authentication and roles: no token or an unknown one is 401; each write needs its role.

use reqwest::Method;
use serde_json::{json, Value};
use tidemark_tests::{token, Role, TestStack, ADMIN, OPERATOR, VIEWER};

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
