//! Tags over HTTP: create, conflicts, validation, filters, categories, patch, delete of a tag in
//! use, batch delete (207 with a status per tag).

use serde_json::json;
use tidemark_tests::{Role, TestStack};

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
