//! Task runs: one collection at a time, cancel, the run and item lists, and runs left behind
//! by a crashed process failed with their unfinished items.

use std::time::Duration;

use serde_json::json;
use tidemark_tests::{silent_server, Role, TestStack};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_collection_at_a_time_cancel_and_task_run_lists() {
    let t = TestStack::start_with(vec![("TIDEMARK_CONNECT_TIMEOUT_SECS", "1")]).await;
    // Four instances on one silent server: one at a time, each held for the connect timeout.
    let port = silent_server().await;
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(
            t.server_instance("postgresql", "127.0.0.1", port, None, &[])
                .await,
        );
    }
    let run_id = t.start_run(&slow).await;
    let r = t.post("/collections", Role::Operator, json!({})).await;
    assert_eq!((r.status, r.code()), (409, "CONFLICT"), "{r:?}");
    assert_eq!(
        t.post("/collections", Role::Viewer, json!({})).await.status,
        403
    );
    assert_eq!(
        t.post("/collections", Role::Operator, json!({"instance_ids": []}))
            .await
            .status,
        400
    );
    assert_eq!(
        t.post("/collections", Role::Operator, json!({"bogus": 1}))
            .await
            .status,
        400
    );

    let cancel = format!("/task-runs/{run_id}/actions/cancel");
    let r = t.post(&cancel, Role::Operator, json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.data()["status"], "cancelled");
    let r = t.post(&cancel, Role::Operator, json!({})).await;
    assert_eq!((r.status, r.code()), (409, "RUN_NOT_RUNNING"));

    // The item that was running finishes; the pending ones never start.
    let mut final_items = Vec::new();
    for _ in 0..100 {
        final_items = t.run_items(&run_id).await;
        if final_items.iter().all(|i| i["status"] != "running") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let count = |s: &str| final_items.iter().filter(|i| i["status"] == s).count();
    assert!(count("cancelled") >= 2, "{final_items:?}");
    assert_eq!(count("cancelled") + count("failed"), 4);
    assert!(final_items
        .iter()
        .filter(|i| i["status"] == "cancelled")
        .all(|i| i["started_at"].is_null()));

    // The slot is free again.
    let pg_id = t.shared_postgres().await;
    let second = t.start_run(&[pg_id]).await;
    let run = t.wait_run(&second).await;
    assert_eq!(run["status"], "completed");
    for k in [
        "duration_ms",
        "items_total",
        "items_succeeded",
        "items_failed",
        "failure_rate",
        "item_duration_ms",
        "progress",
    ] {
        assert!(run.get(k).is_some(), "{k} missing: {run}");
    }
    assert_eq!(run["trigger"], "manual");

    // Lists: newest first, filters, validation.
    let r = t
        .get("/task-runs?task_key=collect_databases", Role::Viewer)
        .await;
    let listed: Vec<&str> = r.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![second.as_str(), run_id.as_str()]);
    let r = t
        .get(
            "/task-runs?status=cancelled&include_total=true",
            Role::Viewer,
        )
        .await;
    assert_eq!(r.data()["total"], 1);
    assert_eq!(r.data()["items"][0]["run_id"], run_id.as_str());
    let r = t.get("/task-runs?limit=1", Role::Viewer).await;
    assert_eq!(r.data()["has_next"], true);
    let cursor = r.data()["next_cursor"].as_str().unwrap().to_string();
    let r = t
        .get(&format!("/task-runs?limit=1&cursor={cursor}"), Role::Viewer)
        .await;
    assert_eq!(r.data()["items"][0]["run_id"], run_id.as_str());
    assert_eq!(
        t.get("/task-runs?status=bogus", Role::Viewer).await.status,
        400
    );
    assert_eq!(
        t.get("/task-runs?trigger=manual", Role::Viewer)
            .await
            .items()
            .len(),
        2
    );
    assert_eq!(
        t.get(&format!("/task-runs/{}", Uuid::new_v4()), Role::Viewer)
            .await
            .status,
        404
    );
    assert_eq!(
        t.get("/task-runs/not-a-uuid/items", Role::Viewer)
            .await
            .status,
        404
    );
    assert_eq!(
        t.get(
            &format!("/task-runs/{run_id}/items?status=nope"),
            Role::Viewer
        )
        .await
        .status,
        400
    );
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
