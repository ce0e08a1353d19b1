//! Connection checks against this machine's PostgreSQL and MariaDB: ok with the version, and
//! each failure in its category (auth, refused, timeout within the connect timeout, dns),
//! the password in no answer and no log line; a saved instance keeps its last check.

use serde_json::{json, Value};
use tidemark_tests::scratch::{MY_PORT, PG_PORT};
use tidemark_tests::{captured_logs, closed_port, silent_server, Role, TestStack};

const SECRET: &str = "Chk-S3cret-Pw-never-shown-4711";

async fn stack() -> TestStack {
    TestStack::start_with(vec![("TIDEMARK_CONNECT_TIMEOUT_SECS", "2")]).await
}

fn params(db_type: &str, host: &str, port: u16, user: &str, password: Option<&str>) -> Value {
    json!({"db_type": db_type, "host": host, "port": port, "username": user, "password": password,
           "tls_mode": "disable"})
}

#[tokio::test]
async fn unsaved_checks_classify_each_failure_and_never_show_the_password() {
    let t = stack().await;
    let refused = closed_port().await;
    let silent = silent_server().await;
    let cases = [
        (
            params("postgresql", "127.0.0.1", PG_PORT, "postgres", None),
            "ok",
        ),
        (params("mysql", "127.0.0.1", MY_PORT, "root", None), "ok"),
        // Trust authentication accepts any password: an unknown role is refused instead.
        (
            params(
                "postgresql",
                "127.0.0.1",
                PG_PORT,
                "no_such_role_chk",
                Some(SECRET),
            ),
            "auth",
        ),
        (
            params("mysql", "127.0.0.1", MY_PORT, "root", Some(SECRET)),
            "auth",
        ),
        (
            params("postgresql", "127.0.0.1", refused, "postgres", Some(SECRET)),
            "refused",
        ),
        (
            params("mysql", "127.0.0.1", refused, "root", Some(SECRET)),
            "refused",
        ),
        (
            params("postgresql", "127.0.0.1", silent, "postgres", Some(SECRET)),
            "timeout",
        ),
        (
            params("mysql", "127.0.0.1", silent, "root", Some(SECRET)),
            "timeout",
        ),
        (
            params(
                "postgresql",
                "nonexistent.invalid",
                PG_PORT,
                "postgres",
                Some(SECRET),
            ),
            "dns",
        ),
        (
            params(
                "mysql",
                "nonexistent.invalid",
                MY_PORT,
                "root",
                Some(SECRET),
            ),
            "dns",
        ),
    ];
    let mut bodies = Vec::new();
    for (body, status) in cases {
        let r = t
            .post("/connection-checks", Role::Operator, body.clone())
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let d = r.data();
        assert_eq!(d["status"], status, "{body}: {d}");
        assert_eq!(d["ok"], status == "ok");
        if status == "ok" {
            assert!(d["version"].as_str().is_some_and(|v| !v.is_empty()), "{d}");
        } else {
            assert!(d["message"].as_str().is_some_and(|m| !m.is_empty()), "{d}");
        }
        if status == "timeout" {
            // The connect timeout (2 s) bounds it, not the statement timeout.
            assert!(d["duration_ms"].as_i64().unwrap() < 4_000, "{d}");
        }
        bodies.push(r.body.to_string());
    }
    for b in &bodies {
        assert!(!b.contains(SECRET), "password in an answer: {b}");
    }
    assert!(!captured_logs().contains(SECRET), "password in a log line");

    // Who may check: operators and up; a stored credential only for admins.
    let r = t
        .post(
            "/connection-checks",
            Role::Viewer,
            params("mysql", "h", 1, "u", None),
        )
        .await;
    assert_eq!(r.status, 403);
    let cred = t.credential("postgres").await;
    let stored =
        json!({"db_type": "pg", "host": "127.0.0.1", "port": PG_PORT, "credential_id": cred});
    assert_eq!(
        t.post("/connection-checks", Role::Operator, stored.clone())
            .await
            .status,
        403
    );
    let r = t.post("/connection-checks", Role::Admin, stored).await;
    assert_eq!(r.data()["status"], "ok", "{r:?}");
    // A credential that does not exist is a 404 naming it, not a 400.
    let r = t
        .post(
            "/connection-checks",
            Role::Admin,
            json!({"db_type": "pg", "host": "127.0.0.1", "port": PG_PORT, "credential_id": 424242}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (404, Some("credential_id"))
    );
    let r = t
        .post(
            "/connection-checks",
            Role::Operator,
            json!({"db_type": "pg", "host": "bad host", "port": 1}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (400, Some("host"))
    );
}

#[tokio::test]
async fn saved_instances_keep_their_last_check_and_are_filtered_by_it() {
    let t = stack().await;
    let pg = t.shared_postgres().await;
    let my = t.shared_mariadb().await;
    let down = t
        .instance("chk-down", "pg", "127.0.0.1", closed_port().await)
        .await;

    let r = t
        .post(
            &format!("/instances/{pg}/actions/check"),
            Role::Operator,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (
            r.data()["instance_id"].as_i64(),
            r.data()["status"].as_str()
        ),
        (Some(pg), Some("ok"))
    );
    let shown = t.get(&format!("/instances/{pg}"), Role::Viewer).await;
    assert_eq!(shown.data()["last_check"]["status"], "ok");
    assert!(shown.data()["version"].as_str().is_some());
    assert_eq!(
        t.post("/instances/999999/actions/check", Role::Operator, json!({}))
            .await
            .status,
        404
    );

    let r = t
        .post(
            "/instances/actions/check",
            Role::Operator,
            json!({"instance_ids": [pg, my, down, 999_999]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let statuses: Vec<(i64, &str)> = r.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["instance_id"].as_i64().unwrap(),
                i["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses, vec![(pg, "ok"), (my, "ok"), (down, "refused")]);
    assert_eq!(r.data()["missing"], json!([999_999]));
    assert_eq!(
        r.data()["summary"],
        json!({"checked": 3, "ok": 2, "failed": 1})
    );

    assert_eq!(
        t.get("/instances?check_status=refused", Role::Viewer)
            .await
            .ids(),
        vec![down]
    );
    assert_eq!(
        t.get("/instances?check_status=ok", Role::Viewer)
            .await
            .ids()
            .len(),
        2
    );
    t.expect_invalid_queries("/instances", &[("check_status=maybe", "check_status")])
        .await;
    let many: Vec<i64> = (1..=201).collect();
    let r = t
        .post(
            "/instances/actions/check",
            Role::Operator,
            json!({"instance_ids": many}),
        )
        .await;
    assert_eq!(r.status, 413);
}
