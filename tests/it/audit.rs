//! The audit trail: every mutating request leaves one entry with who, what, when, the
//! request id and the changed fields; a password change says only that it changed; a bulk
//! action is one entry with its counts; reads and dry runs leave none.

use serde_json::{json, Value};
use tidemark_tests::{token, token_subject, Role, TestStack};

/// The audit entries about `target` (newest first).
async fn entries(t: &TestStack, target: i64) -> Vec<Value> {
    t.get(
        &format!("/logs?module=audit&target_id={target}"),
        Role::Admin,
    )
    .await
    .items()
}

#[tokio::test]
async fn patch_records_old_and_new_values_with_who_and_the_request_id() {
    let t = TestStack::start().await;
    let id = t.instance("aud-1", "pg", "10.0.0.5", 5432).await;
    let r = t
        .patch(
            &format!("/instances/{id}"),
            Role::Operator,
            json!({"description": "orders", "port": 6432}),
        )
        .await;
    assert_eq!(r.status, 200);
    let request_id = r.headers["x-request-id"].to_str().unwrap().to_string();

    let found = entries(&t, id).await;
    assert_eq!(found.len(), 2, "create and patch: {found:?}");
    let e = &found[0];
    assert_eq!(e["actor"], token_subject(token(Role::Operator)));
    assert_eq!(e["actor_role"], "operator");
    assert_eq!(e["action"], "PATCH /instances/{id}");
    assert_eq!(e["target_type"], "instances");
    assert_eq!(e["target_ids"], json!([id.to_string()]));
    assert_eq!(e["request_id"], request_id);
    assert_eq!(
        e["changes"]["description"],
        json!({"old": null, "new": "orders"})
    );
    assert_eq!(e["changes"]["port"], json!({"old": 5432, "new": 6432}));
    assert!(e["changes"].get("name").is_none() && e["changes"].get("updated_at").is_none());
    assert_eq!(found[1]["action"], "POST /instances");

    let one = t.get(&format!("/logs/{}", e["id"]), Role::Admin).await;
    assert_eq!(one.data()["changes"], e["changes"]);
    assert_eq!(t.get("/logs/999999999", Role::Admin).await.status, 404);
    assert_eq!(
        t.get(&format!("/logs/{}", e["id"]), Role::Operator)
            .await
            .status,
        403
    );
    // Filters: by actor.
    let admin = token_subject(token(Role::Admin));
    let by_admin = t
        .get(&format!("/logs?actor={admin}"), Role::Admin)
        .await
        .items();
    assert!(by_admin.is_empty(), "{by_admin:?}");
    // Reads leave nothing.
    t.get(&format!("/instances/{id}"), Role::Viewer).await;
    assert_eq!(entries(&t, id).await.len(), 2);
}

#[tokio::test]
async fn a_password_change_is_recorded_as_changed_never_its_value() {
    let t = TestStack::start().await;
    let secret = "Audit-S3cret-Value-never-logged";
    let id = t.credential("svc").await;
    let r = t
        .patch(
            &format!("/credentials/{id}"),
            Role::Admin,
            json!({"password": secret, "username": "svc2"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let found = entries(&t, id).await;
    let e = &found[0];
    assert_eq!(e["target_type"], "credentials");
    assert_eq!(e["changes"]["password"], "changed");
    assert_eq!(
        e["changes"]["username"],
        json!({"old": "svc", "new": "svc2"})
    );
    let all = t.get("/logs?limit=200", Role::Admin).await;
    assert!(!all.body.to_string().contains(secret));
    assert!(t
        .get(&format!("/logs?search={secret}"), Role::Admin)
        .await
        .items()
        .is_empty());
}

#[tokio::test]
async fn bulk_actions_are_one_entry_with_counts() {
    let t = TestStack::start().await;
    let ids = t.seed_instances("aud-bulk", 3).await;
    let r = t
        .post(
            "/instances/actions/batch-delete",
            Role::Operator,
            json!({"instance_ids": [ids[0], ids[1], ids[2], 999_999]}),
        )
        .await;
    assert_eq!(r.status, 200);
    let found = t
        .get("/logs?module=audit&action=batch-delete", Role::Admin)
        .await
        .items();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0]["context"]["counts"],
        json!({"deleted": 3, "missing": 1})
    );
    assert_eq!(found[0]["target_ids"].as_array().unwrap().len(), 3);

    // A tag bulk action: one entry with its counts.
    let tag = t.tag("aud-bulk-tag").await;
    let tagged = t.seed_instances("aud-tagged", 2).await;
    let r = t
        .post(
            "/tags/bulk/assign",
            Role::Operator,
            json!({"instance_ids": tagged, "tag_ids": [tag]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let found = t
        .get("/logs?module=audit&action=/tags/bulk/assign", Role::Admin)
        .await
        .items();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["context"]["counts"]["assigned_count"], 2);

    // A dry run changes nothing and leaves nothing.
    let body = json!({"instances": [{"name": "aud-dry", "db_type": "pg", "host": "h", "port": 1}]});
    t.post(
        "/instances/batch?dry_run=true",
        Role::Operator,
        body.clone(),
    )
    .await;
    assert!(t
        .get("/logs?module=audit&action=instances/batch", Role::Admin)
        .await
        .items()
        .is_empty());
    let r = t.post("/instances/batch", Role::Operator, body).await;
    assert_eq!(r.status, 201);
    let found = t
        .get("/logs?module=audit&action=instances/batch", Role::Admin)
        .await
        .items();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["context"]["counts"]["created"], 1);
}
