//! Runs never wedge: a lost worker's run is failed and replaced by the next dispatch, a
//! visit past its bound is a failed item, a redelivery closes a run exactly once, collect-now
//! answers within API Gateway's limit, and the FIFO groups fit SQS.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tidemark::queue::{CollectMessage, ExportMessage, Queue, MAX_GROUP_ID_LEN};
use tidemark::tasks::Trigger;
use tidemark::App;
use tidemark_tests::{scalar, silent_server, Role, TestStack};
use uuid::Uuid;

/// A queue that keeps what is sent (nothing is delivered): the test plays the worker.
#[derive(Default)]
struct Capture(Mutex<Vec<CollectMessage>>);

#[async_trait::async_trait]
impl Queue for Capture {
    async fn send_collect(&self, messages: Vec<CollectMessage>) -> anyhow::Result<()> {
        self.0.lock().expect("lock").extend(messages);
        Ok(())
    }
    async fn send_export(&self, _: ExportMessage) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The stack's app sending into a `Capture`.
fn capturing(t: &TestStack) -> (App, Arc<Capture>) {
    let capture = Arc::new(Capture::default());
    let app = App {
        queue: capture.clone(),
        ..t.stack.app.clone()
    };
    (app, capture)
}

/// The item's status, polled every 50 ms (10 s at most) until it is `want`.
async fn wait_item(db: &tokio_postgres::Client, run_id: Uuid, want: &str) {
    for _ in 0..200 {
        let row = db
            .query_one(
                "SELECT status FROM task_run_items WHERE run_id = $1",
                &[&run_id],
            )
            .await
            .expect("item");
        if row.get::<_, String>(0) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the item of {run_id} never became {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_worker_leaves_a_run_the_next_dispatch_fails_and_replaces() {
    let t = TestStack::start_with(vec![
        ("TIDEMARK_CONNECT_TIMEOUT_SECS", "600"),
        ("TIDEMARK_VISIT_TIMEOUT_SECS", "600"),
    ])
    .await;
    let silent = t
        .server_instance("postgresql", "127.0.0.1", silent_server().await, None, &[])
        .await;
    let pg_id = t.shared_postgres().await;
    let (app, capture) = capturing(&t);
    let lost = tidemark::collect::dispatch(&app, Trigger::Manual, Some(vec![silent]))
        .await
        .expect("dispatch")
        .expect("a run");
    let message = capture.0.lock().expect("lock").pop().expect("a message");
    // The worker claims the item, waits on the silent server, and is killed.
    let worker = tokio::spawn(async move {
        tidemark::collect::process(&app, &message, Duration::from_secs(600)).await
    });
    let db = t.db.connect().await;
    wait_item(&db, lost, "running").await;
    worker.abort();

    // Still within the visit bound: the run is live.
    let r = t
        .post(
            "/collections",
            Role::Operator,
            json!({"instance_ids": [pg_id]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "CONFLICT"), "{r:?}");
    let e = tidemark::collect::dispatch_scheduled(&t.stack.app)
        .await
        .expect_err("a scheduled dispatch finding a live run is an error");
    assert!(e.to_string().contains(&lost.to_string()), "{e}");

    // Hours later (past the bound plus the margin), the next dispatch fails and replaces it.
    db.execute(
        "UPDATE task_run_items SET started_at = now() - interval '3 hours' WHERE run_id = $1",
        &[&lost],
    )
    .await
    .expect("age the item");
    db.execute(
        "UPDATE task_runs SET started_at = now() - interval '3 hours' WHERE run_id = $1",
        &[&lost],
    )
    .await
    .expect("age the run");
    let next = t.start_run(&[pg_id]).await;
    let old = t.get(&format!("/task-runs/{lost}"), Role::Viewer).await;
    assert_eq!(old.data()["status"], "failed", "{old:?}");
    let items = t.run_items(&lost.to_string()).await;
    assert_eq!(items[0]["status"], "failed");
    assert!(
        items[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("worker lost"),
        "{items:?}"
    );
    let run = t.wait_run(&next).await;
    assert_eq!(run["status"], "completed", "{run}");
    let events: i64 = db
        .query_one(
            "SELECT count(*) FROM event_logs WHERE context->>'run_id' = $1",
            &[&lost.to_string()],
        )
        .await
        .expect("events")
        .get(0);
    assert_eq!(events, 1, "the failed run is closed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_visit_past_its_bound_is_a_failed_item() {
    let t = TestStack::start_with(vec![
        ("TIDEMARK_CONNECT_TIMEOUT_SECS", "120"),
        ("TIDEMARK_VISIT_TIMEOUT_SECS", "2"),
    ])
    .await;
    let silent = t
        .server_instance("postgresql", "127.0.0.1", silent_server().await, None, &[])
        .await;
    let run_id = t.start_run(&[silent]).await;
    let run = t.wait_run(&run_id).await;
    assert_eq!(run["status"], "failed", "{run}");
    let items = t.run_items(&run_id).await;
    let error = items[0]["error"].as_str().unwrap_or("");
    assert!(error.contains("visit exceeded 2 s"), "{error}");
    assert!(items[0]["duration_ms"].as_i64().unwrap_or(i64::MAX) < 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redelivery_closes_the_run_exactly_once_after_its_closing_step_failed() {
    let t = TestStack::start().await;
    let pg_id = t.shared_postgres().await;
    let db = t.db.connect().await;
    // The first attempt to finish a run fails (a sequence is not rolled back with it).
    db.batch_execute(
        "CREATE SEQUENCE close_attempts; \
         CREATE FUNCTION fail_first_close() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           IF OLD.status = 'running' AND NEW.status <> 'running' AND nextval('close_attempts') = 1 THEN \
             RAISE EXCEPTION 'injected: the closing step fails once'; \
           END IF; \
           RETURN NEW; \
         END $$; \
         CREATE TRIGGER fail_first_close BEFORE UPDATE ON task_runs \
           FOR EACH ROW EXECUTE FUNCTION fail_first_close();",
    )
    .await
    .expect("inject");
    let run_id = t.start_run(&[pg_id]).await;
    let run = t.wait_run(&run_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    let attempts: i64 = scalar(&db, "SELECT last_value FROM close_attempts").await;
    assert_eq!(
        attempts, 2,
        "one failed closing step, one redelivery that closed"
    );
    let events: i64 = db
        .query_one(
            "SELECT count(*) FROM event_logs WHERE context->>'run_id' = $1",
            &[&run_id],
        )
        .await
        .expect("events")
        .get(0);
    assert_eq!(events, 1, "closed exactly once");
}

#[tokio::test]
async fn a_long_host_fits_a_fifo_group_and_spellings_of_one_server_share_one() {
    let t = TestStack::start().await;
    let long_host = format!("{}.example", vec!["a".repeat(60); 3].join("."));
    assert!(long_host.len() >= 190);
    let db = t.db.connect().await;
    let ids: Vec<i64> = db
        .query(
            "INSERT INTO instances (name, db_type, host, port) VALUES \
               ('long', 'postgresql', $1, 5432), ('one', 'postgresql', 'db1.example', 5432), \
               ('two', 'postgresql', 'DB1.Example.', 5432) RETURNING id",
            &[&long_host],
        )
        .await
        .expect("instances")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (app, capture) = capturing(&t);
    tidemark::collect::dispatch(&app, Trigger::Manual, Some(ids.clone()))
        .await
        .expect("dispatch");
    let sent = capture.0.lock().expect("lock").clone();
    let group = |id: i64| {
        sent.iter()
            .find(|m| m.instance_id == id)
            .expect("message")
            .group()
    };
    assert!(group(ids[0]).len() <= MAX_GROUP_ID_LEN, "{}", group(ids[0]));
    assert_eq!(group(ids[1]), group(ids[2]));
    assert_eq!(group(ids[1]), "db1.example:5432");
    // What SQS would accept, the in-process queue accepts.
    let (queue, _receiver) = tidemark_local::queue::channel();
    queue.send_batch(sent).expect("a batch SQS takes");
}

fn message(instance_id: i64, host: &str) -> CollectMessage {
    CollectMessage {
        run_id: Uuid::nil(),
        instance_id,
        host: host.into(),
        port: 5432,
        collected_date: chrono::NaiveDate::MIN,
        tables_of: None,
    }
}

#[tokio::test]
async fn the_local_queue_refuses_what_sqs_would() {
    let (queue, _receiver) = tidemark_local::queue::channel();
    let eleven: Vec<_> = (1..=11).map(|i| message(i, "h")).collect();
    let e = queue.send_batch(eleven.clone()).expect_err("11 entries");
    assert!(
        e.to_string().contains("TooManyEntriesInBatchRequest"),
        "{e}"
    );
    // The queue's own sends go in batches of 10.
    queue.send_collect(eleven).await.expect("chunked");
    let huge = message(1, &"h".repeat(300 * 1024));
    let e = queue.send_batch(vec![huge]).expect_err("over 256 KiB");
    assert!(e.to_string().contains("262144"), "{e}");
    let e = tidemark::queue::check_message(Some(&"g".repeat(129)), "{}").expect_err("129");
    assert!(e.to_string().contains("MessageGroupId"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_its_message_and_the_workers_keep_running() {
    let attempts = Arc::new(Mutex::new(Vec::<i64>::new()));
    let seen = attempts.clone();
    let handlers = tidemark_local::queue::Handlers {
        collect: Arc::new(move |m: CollectMessage| {
            let seen = seen.clone();
            Box::pin(async move {
                seen.lock().expect("lock").push(m.instance_id);
                if m.instance_id == 1 {
                    panic!("handler bug");
                }
                Ok(())
            })
        }),
        export: Arc::new(|_| Box::pin(async { Ok(()) })),
        backoff: vec![Duration::from_millis(10); 2],
    };
    let (queue, receiver) = tidemark_local::queue::channel();
    tidemark_local::queue::spawn_workers(handlers, receiver, 2);
    // 1 and 2 share a group: 2 runs only if the panic released it.
    queue
        .send_collect(vec![message(1, "a"), message(2, "a"), message(3, "b")])
        .await
        .expect("send");
    for _ in 0..200 {
        let got = attempts.lock().expect("lock").clone();
        if got.contains(&2) && got.iter().filter(|i| **i == 1).count() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = attempts.lock().expect("lock").clone();
    assert_eq!(got.iter().filter(|i| **i == 1).count(), 3, "{got:?}");
    assert!(got.contains(&2) && got.contains(&3), "{got:?}");
    // And the workers still take new work.
    queue
        .send_collect(vec![message(4, "a")])
        .await
        .expect("send");
    for _ in 0..200 {
        if attempts.lock().expect("lock").contains(&4) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the workers stopped after a panic");
}

#[test]
fn redelivery_backs_off_at_least_30_s() {
    let total: Duration = tidemark_local::queue::BACKOFF.iter().sum();
    assert!(total >= Duration::from_secs(30), "{total:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collect_now_queues_on_the_servers_group_and_answers_in_time() {
    let t = TestStack::start_with(vec![
        ("TIDEMARK_CONNECT_TIMEOUT_SECS", "3"),
        ("TIDEMARK_COLLECT_NOW_WAIT_SECS", "1"),
    ])
    .await;
    let silent = t
        .server_instance("postgresql", "127.0.0.1", silent_server().await, None, &[])
        .await;
    let path = format!("/instances/{silent}/actions/collect");
    let started = std::time::Instant::now();
    let first = t.post(&path, Role::Operator, json!({})).await;
    assert_eq!(first.status, 202, "{first:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let run_id = first.data()["run_id"].as_str().expect("run_id").to_string();
    // Asked again while it waits on the server: the same run, not a second visit.
    let again = t.post(&path, Role::Operator, json!({})).await;
    assert_eq!(again.status, 202, "{again:?}");
    assert_eq!(again.data()["run_id"], run_id.as_str());
    let run = t.wait_run(&run_id).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["task_key"], "collect_instance");
    // A fleet collection is not blocked by single-instance runs.
    let pg_id = t.shared_postgres().await;
    let fleet = t.start_run(&[pg_id]).await;
    assert_eq!(t.wait_run(&fleet).await["status"], "completed");
}
