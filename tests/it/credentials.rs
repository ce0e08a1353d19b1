//! Credentials: the password is write-only, encrypted at rest and never in a response or a log
//! line; a credential in use cannot be deleted.

use serde_json::json;
use tidemark_tests::{captured_logs, Role, TestStack};

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
