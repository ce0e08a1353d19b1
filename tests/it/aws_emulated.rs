//! The deployable path: the real function binaries (the debug builds of `tidemark-functions`)
//! under a Lambda runtime emulator, against moto (Secrets Manager, SQS FIFO, S3) and the real
//! PostgreSQL and MariaDB, with what AWS does between the functions played here: API Gateway
//! events with JWT claims, schedule events, the SQS event source mappings (batch size from
//! template.yaml, partial batch failures) and a plain HTTP download of the presigned link.

pub(crate) mod lambda;
mod moto;

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_sqs::types::QueueAttributeName;
use base64::Engine;
use serde_json::{json, Value};
use tidemark::queue::{CollectMessage, MAX_GROUP_ID_LEN};
use tidemark_tests::TestDb;

use lambda::{schedule_event, Caller, EventSource, HttpApi, Lambda, Received, Template, ANONYMOUS};
use moto::Moto;

/// Longer than any invocation here takes, so nothing comes back while it is being handled;
/// the test makes a timeout pass with `EventSource::time_out` instead of waiting.
const VISIBILITY_SECS: u64 = 60;

const ADMIN: Caller = Caller {
    sub: "admin-1",
    scope: "openid tidemark/admin",
};
const OPERATOR: Caller = Caller {
    sub: "operator-1",
    scope: "openid tidemark/operator",
};
const VIEWER: Caller = Caller {
    sub: "viewer-1",
    scope: "openid tidemark/viewer",
};
const OTHER_VIEWER: Caller = Caller {
    sub: "viewer-2",
    scope: "tidemark/viewer",
};

async fn queue(sqs: &aws_sdk_sqs::Client, name: &str, fifo: bool) -> (String, String) {
    let mut create = sqs.create_queue().queue_name(name).attributes(
        QueueAttributeName::VisibilityTimeout,
        VISIBILITY_SECS.to_string(),
    );
    if fifo {
        // As template.yaml's CollectQueue.
        create = create
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
            .attributes(QueueAttributeName::DeduplicationScope, "messageGroup")
            .attributes(QueueAttributeName::FifoThroughputLimit, "perMessageGroupId");
    }
    let url = create
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("queue url");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue arn");
    (url, arn)
}

/// Messages on the queue, visible or in flight.
async fn messages_left(sqs: &aws_sdk_sqs::Client, url: &str) -> i64 {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .unwrap_or_default();
    attrs.values().map(|v| v.parse::<i64>().unwrap_or(0)).sum()
}

fn collect_message(m: &Received) -> CollectMessage {
    serde_json::from_str(&m.body).expect("a collection message")
}

/// A server that hangs up on every connection, so collecting it fails at once. (Not a port
/// merely released: another test could take it meanwhile.)
async fn refusing_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    port
}

/// Ledger rows of instances that are never collected, enough for an export of several
/// 5 MiB parts (about 450 bytes of CSV a row).
async fn seed_ledger(db: &tokio_postgres::Client, instances: i32, databases: i32) {
    db.batch_execute(&format!(
        "INSERT INTO instances (name, db_type, host, port, is_active) \
         SELECT 'seeded-' || lpad(g::text, 4, '0') || '-' || repeat('i', 60), 'postgresql', \
                'seeded-' || g || '.' || repeat('h', 60) || '.invalid', 5432, true \
         FROM generate_series(1, {instances}) g; \
         INSERT INTO instance_databases (instance_id, database_name, latest_size_bytes, \
            latest_collected_at, latest_collected_date, growth_bytes_per_day) \
         SELECT i.id, 'db_' || lpad(n::text, 5, '0') || '_' || repeat('d', 250), n::bigint * 1048577, \
                date_trunc('second', now()), current_date, n % 3 - 1 \
         FROM instances i, generate_series(1, {databases}) n WHERE i.name LIKE 'seeded-%'"
    ))
    .await
    .expect("seed the ledger");
}

/// The ledger as the export's CSV should read it (all active databases of active
/// instances), computed independently, in the ledger's default order.
async fn expected_ledger(db: &tokio_postgres::Client) -> Vec<Vec<String>> {
    db.query(
        "SELECT d.id::text, i.id::text, i.name, i.host, i.port::text, i.db_type, d.database_name, \
           COALESCE(d.latest_size_bytes::text, ''), \
           COALESCE(to_char(round(d.latest_size_bytes / 1048576.0, 2), 'FM999999999999990.00'), ''), \
           '' AS collected_at, \
           COALESCE(d.latest_collected_date::text, ''), COALESCE(d.growth_bytes_per_day::text, ''), \
           CASE WHEN d.latest_collected_at IS NULL THEN 'never' \
                WHEN now() - d.latest_collected_at <= interval '6 hours' THEN 'fresh' \
                WHEN now() - d.latest_collected_at <= interval '48 hours' THEN 'due' ELSE 'stale' END, \
           COALESCE((SELECT string_agg(t.name, ';' ORDER BY t.name) FROM instance_tags it \
                     JOIN tags t ON t.id = it.tag_id WHERE it.instance_id = i.id), ''), \
           d.latest_collected_at \
         FROM instance_databases d JOIN instances i ON i.id = d.instance_id \
         WHERE d.is_active AND i.is_active AND i.deleted_at IS NULL \
         ORDER BY i.name, d.database_name, d.id",
        &[],
    )
    .await
    .expect("the ledger")
    .iter()
    .map(|r| {
        let mut row: Vec<String> = (0..r.len() - 1).map(|c| r.get::<_, String>(c)).collect();
        // RFC 3339 in UTC with as many fraction digits as needed, as the export writes it.
        row[9] = r
            .get::<_, Option<chrono::DateTime<chrono::Utc>>>(r.len() - 1)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .unwrap_or_default();
        row
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployable_path_runs_against_emulated_aws() {
    let started = Instant::now();
    let moto = Moto::start().await;
    let aws = moto.sdk_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let s3 = aws_sdk_s3::Client::new(&aws);
    let template = Template::load();
    let db = TestDb::create().await;
    let pg = db.connect().await;

    // What the stack's resources would be: the secret, both queues, the bucket.
    let credential_key =
        base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes().repeat(2));
    let secret_arn = secrets
        .create_secret()
        .name("tidemark/app")
        .secret_string(
            json!({"database_url": db.url, "credential_key": credential_key}).to_string(),
        )
        .send()
        .await
        .expect("CreateSecret")
        .arn
        .expect("secret arn");
    let (collect_url, collect_arn) = queue(&sqs, "tidemark-collect.fifo", true).await;
    let (export_url, export_arn) = queue(&sqs, "tidemark-export", false).await;
    let bucket = "tidemark-exports-test";
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("CreateBucket");

    // template.yaml's Globals environment; the AWS SDK reaches moto through AWS_ENDPOINT_URL.
    let mut env = moto.function_env();
    for (k, v) in [
        ("TIDEMARK_SECRET_ARN", secret_arn.as_str()),
        ("TIDEMARK_TIMEZONE", "UTC"),
        ("TIDEMARK_EXPORT_BUCKET", bucket),
        ("TIDEMARK_COLLECT_QUEUE_URL", collect_url.as_str()),
        ("TIDEMARK_EXPORT_QUEUE_URL", export_url.as_str()),
        ("TIDEMARK_COLLECT_CONCURRENCY", "5"),
        ("TIDEMARK_DB_POOL_SIZE", "2"),
        ("TIDEMARK_EXPORT_PART_MIB", "5"),
        ("TIDEMARK_CONNECT_TIMEOUT_SECS", "5"),
        ("RUST_LOG", "info"),
    ] {
        env.push((k.to_string(), v.to_string()));
    }
    let lambda = Lambda::new(lambda::bin_dir(), env);
    let api = HttpApi {
        lambda: &lambda,
        template: &template,
    };

    // 1. migrate: the secret read from Secrets Manager, the migrations applied to the empty
    // database; a second invocation finds nothing to do.
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .expect("migrations")
        .count();
    let migrate = lambda.function("migrate").await;
    let applied = migrate.invoke_ok(&json!({})).await;
    assert_eq!(
        applied["applied"].as_array().map(Vec::len),
        Some(migrations),
        "{applied}"
    );
    let history: i64 = pg
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .expect("migration history")
        .get(0);
    assert_eq!(history as usize, migrations);
    assert_eq!(
        migrate.invoke_ok(&json!({})).await["applied"],
        json!([]),
        "migrate is idempotent"
    );

    // A secret that is not the JSON expected stops a cold start with a message that names
    // the setting and not the content.
    let broken_content = format!("database_url={}", db.url);
    let broken_arn = secrets
        .create_secret()
        .name("tidemark/broken")
        .secret_string(&broken_content)
        .send()
        .await
        .expect("CreateSecret")
        .arn
        .expect("secret arn");
    let broken = lambda
        .start_with("api-system", &[("TIDEMARK_SECRET_ARN", &broken_arn)])
        .await;
    let exited = broken.try_invoke(&json!({})).await;
    assert!(
        exited.as_ref().is_err_and(|e| e.contains("exited")),
        "{exited:?}"
    );
    let wanted = "the secret TIDEMARK_SECRET_ARN must be JSON with database_url and credential_key";
    for _ in 0..50 {
        if broken.logs().contains(wanted) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let logs = broken.logs();
    assert!(logs.contains(wanted), "{logs}");
    assert!(!logs.contains(&broken_content), "{logs}");
    drop(broken);

    // 2. API Gateway events with JWT claims, each to the function template.yaml wires the
    // route to: credentials and instances.
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let r = api
        .call(
            "POST",
            "/api/v1/credentials",
            Some(&json!({"name": "pg-trust", "username": "postgres", "password": password})),
            &ADMIN,
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(!r.body.to_string().contains(&password), "{r:?}");
    let pg_credential = r.data()["id"].as_i64().expect("credential id");
    let r = api
        .call(
            "POST",
            "/api/v1/credentials",
            Some(&json!({"name": "mariadb-root", "username": "root", "password": ""})),
            &ADMIN,
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let my_credential = r.data()["id"].as_i64().expect("credential id");
    let r = api
        .call(
            "POST",
            "/api/v1/instances",
            Some(&json!({"name": "denied", "db_type": "pg", "host": "127.0.0.1", "port": 5432})),
            &VIEWER,
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (403, Some("PERMISSION_DENIED")),
        "a viewer's scopes do not create instances: {r:?}"
    );
    let long_host = format!(
        "{}.{}.{}.invalid",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63)
    );
    let refused = refusing_server().await;
    let mut instances: HashMap<&str, i64> = HashMap::new();
    for (name, db_type, host, port, credential) in [
        ("pg-a", "pg", "127.0.0.1", 5432, Some(pg_credential)),
        ("pg-b", "postgresql", "127.0.0.1", 5432, Some(pg_credential)),
        ("mariadb", "mariadb", "127.0.0.1", 3306, Some(my_credential)),
        ("refused", "pg", "127.0.0.1", refused, Some(pg_credential)),
        ("far", "pg", long_host.as_str(), 5432, None),
    ] {
        let r = api
            .call(
                "POST",
                "/api/v1/instances",
                Some(
                    &json!({"name": name, "db_type": db_type, "host": host, "port": port,
                             "credential_id": credential}),
                ),
                // Attaching a credential is the admin's.
                &ADMIN,
            )
            .await;
        assert_eq!(r.status, 201, "{name}: {r:?}");
        instances.insert(name, r.data()["id"].as_i64().expect("instance id"));
    }
    let id = |name: &str| instances[name];
    // More instances on the refusing server: the fan-out then takes two SendMessageBatch
    // calls (at most 10 entries each) and one group holds many messages.
    let more_refused: Vec<i64> = pg
        .query(
            "INSERT INTO instances (name, db_type, host, port) \
             SELECT 'refused-' || g, 'postgresql', '127.0.0.1', $1 FROM generate_series(2, 9) g \
             RETURNING id",
            &[&i32::from(refused)],
        )
        .await
        .expect("more instances")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let all_instances = instances.len() + more_refused.len();

    // 3. The schedule starts collect-dispatch: one message per instance on the FIFO queue.
    let run = lambda
        .function("collect-dispatch")
        .await
        .invoke_ok(&schedule_event("tidemark-collect"))
        .await;
    let run_id: uuid::Uuid = run["run_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a run id: {run}"));

    // 4. The event source mapping hands the messages to collect-instance. A fault in the app
    // database (a trigger refusing to start MariaDB's item) fails one record: it must come
    // back after its visibility timeout, and only it.
    pg.batch_execute(&format!(
        "CREATE FUNCTION fail_item() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$; \
         CREATE TRIGGER fail_item BEFORE UPDATE ON task_run_items FOR EACH ROW \
           WHEN (NEW.item_key = '{}' AND NEW.status = 'running') EXECUTE FUNCTION fail_item()",
        id("mariadb")
    ))
    .await
    .expect("fault trigger");
    let batch_size = template.batch_size("collect-instance");
    let collect = EventSource {
        sqs: &sqs,
        queue_url: collect_url.clone(),
        queue_arn: collect_arn,
        function: lambda.function("collect-instance").await,
        batch_size,
    };
    let first = collect.drain().await;
    let received: Vec<&Received> = first.batches.iter().flatten().collect();
    let mut by_instance: HashMap<i64, &Received> = HashMap::new();
    for m in &received {
        let message = collect_message(m);
        assert_eq!(message.run_id, run_id);
        assert_eq!(
            m.attribute("MessageGroupId"),
            Some(message.group().as_str()),
            "group = host:port"
        );
        assert!(message.group().len() <= MAX_GROUP_ID_LEN);
        assert_eq!(
            m.attribute("MessageDeduplicationId"),
            Some(format!("{run_id}:{}", message.instance_id).as_str()),
            "deduplication id = run:instance"
        );
        assert!(
            by_instance.insert(message.instance_id, m).is_none(),
            "one message per instance"
        );
    }
    let mut expected_ids: Vec<i64> = instances.values().chain(&more_refused).copied().collect();
    let mut got_ids: Vec<i64> = by_instance.keys().copied().collect();
    expected_ids.sort_unstable();
    got_ids.sort_unstable();
    assert_eq!(got_ids, expected_ids, "one message per active instance");
    assert_eq!(
        by_instance[&id("pg-a")].attribute("MessageGroupId"),
        Some("127.0.0.1:5432")
    );
    let far_group = by_instance[&id("far")]
        .attribute("MessageGroupId")
        .unwrap_or_default();
    assert!(
        far_group.len() <= MAX_GROUP_ID_LEN && far_group.starts_with("aaaa"),
        "a long host's group fits SQS: {far_group}"
    );
    for batch in &first.batches {
        assert!(batch.len() <= batch_size, "batch larger than BatchSize");
        let group = batch[0].attribute("MessageGroupId");
        assert!(batch.iter().all(|m| m.attribute("MessageGroupId") == group));
    }
    // Each server's messages delivered in the order they were sent (by instance id).
    let mut groups: HashMap<&str, Vec<i64>> = HashMap::new();
    for m in &received {
        groups
            .entry(m.attribute("MessageGroupId").unwrap_or_default())
            .or_default()
            .push(collect_message(m).instance_id);
    }
    for (group, ids) in &groups {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{group}: {ids:?}");
    }
    assert_eq!(groups["127.0.0.1:5432"], vec![id("pg-a"), id("pg-b")]);
    assert_eq!(groups[format!("127.0.0.1:{refused}").as_str()].len(), 9);
    let failed: Vec<i64> = first
        .failed
        .iter()
        .map(|m| collect_message(m).instance_id)
        .collect();
    assert_eq!(
        failed,
        vec![id("mariadb")],
        "only the faulted record failed"
    );
    assert_eq!(first.deleted.len(), all_instances - 1);

    pg.batch_execute("DROP TRIGGER fail_item ON task_run_items; DROP FUNCTION fail_item()")
        .await
        .expect("remove the fault");
    assert_eq!(
        collect.drain().await.batches.len(),
        0,
        "invisible until its timeout"
    );
    collect.time_out(&first.failed[0]).await;
    let second = collect.drain().await;
    let again: Vec<&Received> = second.batches.iter().flatten().collect();
    assert_eq!(
        again.len(),
        1,
        "only the failed record comes back: {again:?}"
    );
    assert_eq!(again[0].message_id, first.failed[0].message_id);
    assert_eq!(again[0].attribute("ApproximateReceiveCount"), Some("2"));
    assert!(second.failed.is_empty(), "{:?}", second.failed);
    assert_eq!(messages_left(&sqs, &collect_url).await, 0);

    // The run, through the API: three instances collected; those of the refusing server and
    // the unknown host are recorded item failures (not redelivered).
    let r = api
        .call("GET", &format!("/api/v1/task-runs/{run_id}"), None, &VIEWER)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (
            r.data()["status"].as_str(),
            r.data()["items_succeeded"].as_i64(),
            r.data()["items_failed"].as_i64()
        ),
        (Some("completed_with_errors"), Some(3), Some(10)),
        "{r:?}"
    );
    let items: HashMap<String, String> = pg
        .query(
            "SELECT item_key, status FROM task_run_items WHERE run_id = $1",
            &[&run_id],
        )
        .await
        .expect("items")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (name, status) in [
        ("pg-a", "completed"),
        ("pg-b", "completed"),
        ("mariadb", "completed"),
        ("refused", "failed"),
        ("far", "failed"),
    ] {
        assert_eq!(
            items.get(&id(name).to_string()).map(String::as_str),
            Some(status),
            "{name}: {items:?}"
        );
    }

    // A tag through api-tags, assigned through tags-bulk: the export below carries it.
    let r = api
        .call(
            "POST",
            "/api/v1/tags",
            Some(&json!({"name": "prod", "display_name": "Production", "category": "env"})),
            &OPERATOR,
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let tag = r.data()["id"].as_i64().expect("tag id");
    let r = api
        .call(
            "POST",
            "/api/v1/tags/bulk/assign",
            Some(&json!({"instance_ids": [id("pg-a"), id("mariadb")], "tag_ids": [tag]})),
            &OPERATOR,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    // 5. An export through api-exports lands on the export queue; export-worker streams it to
    // S3 in parts; the presigned link downloads, with plain HTTP, the CSV of the ledger.
    seed_ledger(&pg, 30, 500).await;
    let r = api
        .call(
            "POST",
            "/api/v1/exports",
            Some(&json!({"kind": "database_ledger"})),
            &VIEWER,
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let export_id = r.data()["id"].as_str().expect("export id").to_string();
    let worker = EventSource {
        sqs: &sqs,
        queue_url: export_url.clone(),
        queue_arn: export_arn,
        function: lambda.function("export-worker").await,
        batch_size: template.batch_size("export-worker"),
    };
    let exported = worker.drain().await;
    assert_eq!(exported.batches.len(), 1, "{exported:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&exported.batches[0][0].body).expect("export message"),
        json!({"export_id": export_id})
    );
    assert!(exported.failed.is_empty());
    let r = api
        .call(
            "GET",
            &format!("/api/v1/exports/{export_id}"),
            None,
            &VIEWER,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let job = r.data().clone();
    assert_eq!(
        job["status"],
        "completed",
        "{job}\n{}",
        worker.function.logs()
    );
    assert!(job["parts_uploaded"].as_i64().unwrap_or(0) >= 2, "{job}");
    let url = job["download_url"].as_str().expect("download url");
    assert!(
        url.starts_with(&moto.endpoint) && url.contains("X-Amz-Signature="),
        "presigned against the configured endpoint: {url}"
    );
    let other = api
        .call(
            "GET",
            &format!("/api/v1/exports/{export_id}"),
            None,
            &OTHER_VIEWER,
        )
        .await;
    assert_eq!(other.status, 404, "another viewer's export is not found");
    let download = reqwest::get(url).await.expect("download");
    assert_eq!(download.status(), 200);
    let disposition = download
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        disposition,
        format!(
            "attachment; filename=\"{}\"",
            job["file_name"].as_str().unwrap_or_default()
        )
    );
    let uploads = s3
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("ListMultipartUploads");
    assert!(uploads.uploads().is_empty(), "no upload left open");
    let csv_bytes = download.bytes().await.expect("csv");
    assert_eq!(
        csv_bytes.len() as i64,
        job["bytes_written"].as_i64().unwrap_or(-1)
    );
    let mut reader = csv::Reader::from_reader(&csv_bytes[..]);
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.expect("csv row").iter().map(str::to_string).collect())
        .collect();
    let expected = expected_ledger(&pg).await;
    assert!(expected.len() > 15_000, "{}", expected.len());
    assert_eq!(rows.len(), expected.len());
    if let Some(i) = (0..rows.len()).find(|&i| rows[i] != expected[i]) {
        panic!(
            "the CSV is not the ledger from row {i}: {:?} != {:?}",
            rows[i], expected[i]
        );
    }
    // And the ledger as api-databases serves it agrees for a collected instance.
    let mut from_api: Vec<(String, String)> = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = api
            .call(
                "GET",
                &format!(
                    "/api/v1/databases/ledger?instance_id={}&limit=200{cursor}",
                    id("pg-a")
                ),
                None,
                &VIEWER,
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        from_api.extend(
            r.data()["items"]
                .as_array()
                .expect("ledger items")
                .iter()
                .map(|i| (i["id"].to_string(), i["size"]["bytes"].to_string())),
        );
        match r.data()["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let pg_a = id("pg-a").to_string();
    let mut from_csv: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r[1] == pg_a)
        .map(|r| (r[0].clone(), r[7].clone()))
        .collect();
    assert!(!from_csv.is_empty());
    assert!(rows
        .iter()
        .filter(|r| r[1] == pg_a)
        .all(|r| r[13] == "prod"));
    from_api.sort();
    from_csv.sort();
    assert_eq!(
        from_api, from_csv,
        "the ledger API and the CSV agree on pg-a"
    );

    // 6. aggregate and maintenance from their schedules. Aggregation writes today's periods
    // from the sizes collected above; maintenance deletes an expired export from S3.
    let aggregated = lambda
        .function("aggregate")
        .await
        .invoke_ok(&schedule_event("tidemark-aggregate"))
        .await;
    let aggregates = pg
        .query_one(
            "SELECT count(DISTINCT instance_id), count(*) FROM instance_size_aggregations",
            &[],
        )
        .await
        .expect("aggregations");
    // The job is a task run; its one item (today) records the rows it wrote.
    let written = job_item(&pg, &aggregated).await["instance_rows"]
        .as_i64()
        .unwrap_or(-1);
    assert_eq!(
        (aggregates.get::<_, i64>(0), aggregates.get::<_, i64>(1)),
        (3, written),
        "every collected instance has its periods: {aggregated}"
    );
    let old_key = "exports/expired.csv";
    s3.put_object()
        .bucket(bucket)
        .key(old_key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"old"))
        .send()
        .await
        .expect("PutObject");
    pg.execute(
        "INSERT INTO export_jobs (kind, status, requested_by, object_key, created_at, completed_at) \
         VALUES ('database_ledger', 'completed', 'viewer-1', $1, now() - interval '8 days', now() - interval '8 days')",
        &[&old_key],
    )
    .await
    .expect("an expired export");
    let maintained = lambda
        .function("maintenance")
        .await
        .invoke_ok(&schedule_event("tidemark-maintenance"))
        .await;
    let maintenance = job_item(&pg, &maintained).await;
    assert_eq!(
        maintenance["exports_expired"], 1,
        "{maintained}: {maintenance}"
    );
    let gone = s3.head_object().bucket(bucket).key(old_key).send().await;
    assert!(gone.is_err(), "the expired export's object is deleted");
    let jobs: i64 = pg
        .query_one(
            "SELECT count(*) FROM export_jobs WHERE object_key = $1",
            &[&old_key],
        )
        .await
        .expect("jobs")
        .get(0);
    assert_eq!(jobs, 0);
    let finished: i64 = pg
        .query_one(
            "SELECT count(*) FROM event_logs WHERE module = 'maintenance' AND message = 'maintenance finished'",
            &[],
        )
        .await
        .expect("event logs")
        .get(0);
    assert_eq!(finished, 1);

    // The other API functions on what the jobs left: capacity, the event log, health (a
    // route without the authorizer).
    let r = api
        .call(
            "GET",
            "/api/v1/capacity/instances?period_type=monthly",
            None,
            &VIEWER,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = api
        .call("GET", "/api/v1/logs?module=maintenance", None, &ADMIN)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.data()["items"][0]["message"],
        "maintenance finished",
        "{r:?}"
    );
    let r = api.call("GET", "/api/v1/health", None, &ANONYMOUS).await;
    assert_eq!(r.status, 200, "{r:?}");

    // Secrets never in a log line of any function, the refused server's failure (logged
    // with its target, whose credential has the password) included.
    let logs = lambda.all_logs().await;
    assert!(logs.contains("collection failed"), "{logs}");
    for secret in [&password, &credential_key] {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret in the functions' logs"
        );
    }
    eprintln!("aws_emulated: the six steps took {:?}", started.elapsed());
}

/// The metrics of the one item of a scheduled job's task run (`{"run_id", "status", ...}`, as
/// the aggregate and maintenance functions answer), once the run completed.
async fn job_item(pg: &tokio_postgres::Client, job: &serde_json::Value) -> serde_json::Value {
    assert_eq!(job["status"], "completed", "{job}");
    let run_id: uuid::Uuid = job["run_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("the job's run id");
    pg.query_one(
        "SELECT metrics FROM task_run_items WHERE run_id = $1 ORDER BY seq DESC LIMIT 1",
        &[&run_id],
    )
    .await
    .expect("the run's item")
    .get(0)
}
