//! Exports: jobs over HTTP, CSV streamed into the embedded S3 endpoint in multipart parts,
//! presigned links fetched with plain reqwest, and the faults a worker meets (S3 failing
//! mid-upload, PostgreSQL dropping the stream, a crashed run redelivered).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tidemark::exports::Kind;
use tidemark::queue::ExportMessage;
use tidemark::App;
use tidemark_tests::{token_subject, Role, TestStack, VIEWER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MIB: usize = 1024 * 1024;

/// `instances` x `databases` ledger rows with long names (about `name_len` + 200 bytes of
/// CSV a row), sizes in every state (never collected, fresh, due, stale), some tags.
async fn seed_ledger(db: &tokio_postgres::Client, instances: i32, databases: i32, name_len: i32) {
    db.execute(
        "INSERT INTO instances (name, db_type, host, port) \
         SELECT 'inst-' || lpad(g::text, 4, '0') || '-' || repeat('i', 40), \
                CASE WHEN g % 2 = 0 THEN 'mysql' ELSE 'postgresql' END, \
                'host-' || g || '.' || repeat('h', 30) || '.example', 3306 + g \
         FROM generate_series(1, $1) g",
        &[&instances],
    )
    .await
    .unwrap();
    db.batch_execute(
        "INSERT INTO tags (name, display_name, category) VALUES ('alpha', 'Alpha', 't'), ('beta', 'Beta', 't'); \
         INSERT INTO instance_tags (instance_id, tag_id) \
         SELECT i.id, t.id FROM instances i, tags t WHERE i.id % 2 = 0 OR t.name = 'beta'",
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO instance_databases (instance_id, database_name, latest_size_bytes, \
            latest_collected_at, latest_collected_date, growth_bytes_per_day) \
         SELECT i.id, 'db_' || lpad(n::text, 5, '0') || '_' || repeat('d', $2), sz, at, \
                (at AT TIME ZONE 'UTC')::date, CASE WHEN at IS NULL THEN NULL ELSE (n % 3 - 1) * 4096 END \
         FROM instances i, generate_series(1, $1) n, \
         LATERAL (SELECT CASE WHEN n % 7 = 0 THEN NULL ELSE n::bigint * 1048577 * i.id END AS sz, \
                         CASE WHEN n % 7 = 0 THEN NULL \
                              ELSE date_trunc('second', now()) - make_interval(hours => (n % 4) * 30) END AS at) v",
        &[&databases, &name_len],
    )
    .await
    .unwrap();
}

/// The ledger (every active database of every active instance) as the export's CSV cells
/// should read, computed independently in SQL, in the ledger's default order.
async fn expected_ledger(db: &tokio_postgres::Client) -> Vec<Vec<String>> {
    db.query(
        "SELECT d.id::text, i.id::text, i.name, i.host, i.port::text, i.db_type, d.database_name, \
           COALESCE(d.latest_size_bytes::text, ''), \
           COALESCE(to_char(round(d.latest_size_bytes / 1048576.0, 2), 'FM999999999999990.00'), ''), \
           COALESCE(to_char(d.latest_collected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), \
           COALESCE(d.latest_collected_date::text, ''), COALESCE(d.growth_bytes_per_day::text, ''), \
           CASE WHEN d.latest_collected_at IS NULL THEN 'never' \
                WHEN now() - d.latest_collected_at <= interval '6 hours' THEN 'fresh' \
                WHEN now() - d.latest_collected_at <= interval '48 hours' THEN 'due' ELSE 'stale' END, \
           COALESCE((SELECT string_agg(t.name, ';' ORDER BY t.name) FROM instance_tags it \
                     JOIN tags t ON t.id = it.tag_id WHERE it.instance_id = i.id), '') \
         FROM instance_databases d JOIN instances i ON i.id = d.instance_id \
         WHERE d.is_active AND i.is_active AND i.deleted_at IS NULL \
         ORDER BY i.name, d.database_name, d.id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (0..r.len()).map(|c| r.get::<_, String>(c)).collect())
    .collect()
}

/// The columns the ledger export declares; the rows below are checked against an independent
/// query, so a column out of place fails there.
const LEDGER_HEADER: &[&str] = Kind::DatabaseLedger.header();

/// A stack that uploads exports in 5 MiB parts, over a ledger seeded by [`seed_ledger`].
async fn five_mib_parts(
    instances: i32,
    databases: i32,
    name_len: i32,
) -> (TestStack, tokio_postgres::Client) {
    let t = TestStack::start_with(vec![("TIDEMARK_EXPORT_PART_MIB", "5")]).await;
    let db = t.db.connect().await;
    seed_ledger(&db, instances, databases, name_len).await;
    (t, db)
}

/// Requests an export as the viewer and polls the job until it is completed or failed.
async fn export(t: &TestStack, body: Value) -> Value {
    let r = t.post("/exports", Role::Viewer, body).await;
    assert_eq!(r.status, 202, "{r:?}");
    let id = r.data()["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.headers["location"].to_str().unwrap(),
        format!("/api/v1/exports/{id}")
    );
    assert_eq!(r.data()["status"], "queued");
    t.poll(&format!("/exports/{id}"), &["queued", "running"])
        .await
}

async fn download(url: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 200, "presigned download");
    let headers = resp.headers().clone();
    (headers, resp.bytes().await.unwrap().to_vec())
}

fn parse_csv(body: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(body);
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Export objects in the bucket folder.
fn objects(t: &TestStack) -> Vec<PathBuf> {
    files_under(
        &t.data_dir
            .path()
            .join("s3")
            .join(&t.stack.app.storage.bucket),
    )
}

/// What s3s-fs keeps for multipart uploads in progress: `.upload-<id>.json` and
/// `.upload_id-<id>.part-<n>` files in its root (it has no ListMultipartUploads).
fn open_uploads(t: &TestStack) -> Vec<String> {
    std::fs::read_dir(t.data_dir.path().join("s3"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".upload"))
        .collect()
}

/// A job row as POST would write it, without queueing it (the test runs the worker).
async fn job_row(db: &tokio_postgres::Client, filters: Value) -> uuid::Uuid {
    db.query_one(
        "INSERT INTO export_jobs (kind, filters, requested_by) VALUES ('database_ledger', $1, $2) RETURNING id",
        &[&filters, &token_subject(VIEWER)],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_ledger_export_streams_in_parts_and_matches_the_ledger() {
    // ~30,000 rows of ~450 bytes: ~13 MiB, so three parts of 5 MiB.
    let (t, db) = five_mib_parts(60, 500, 250).await;

    let job = export(
        &t,
        json!({"kind": "database_ledger", "filters": {}, "format": "csv"}),
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert!(job["error"].is_null());
    assert!(job["parts_uploaded"].as_i64().unwrap() >= 3, "{job}");
    assert_eq!(job["rows_written"], 30_000);
    assert!(job["started_at"].is_string() && job["completed_at"].is_string());
    assert!(job["download_expires_at"].is_string());
    let (headers, body) = download(job["download_url"].as_str().unwrap()).await;
    assert_eq!(job["bytes_written"].as_u64().unwrap(), body.len() as u64);
    assert!(body.len() > 10 * MIB);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let disposition = headers["content-disposition"].to_str().unwrap().to_string();
    let file_name = job["file_name"].as_str().unwrap();
    assert_eq!(disposition, format!("attachment; filename=\"{file_name}\""));
    assert!(file_name.starts_with("database_ledger_") && file_name.ends_with("Z.csv"));
    assert_eq!(
        file_name.len(),
        "database_ledger_20260101T000000Z.csv".len()
    );

    let (header, rows) = parse_csv(&body);
    assert_eq!(header, LEDGER_HEADER);
    let expected = expected_ledger(&db).await;
    assert_eq!(rows.len(), expected.len());
    for (i, (got, want)) in rows.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "row {i}");
    }
    // Every state of the size columns is covered.
    for status in ["never", "fresh", "due", "stale"] {
        assert!(rows.iter().any(|r| r[12] == status), "{status}");
    }
    assert!(body.windows(2).filter(|w| w == b"\r\n").count() >= rows.len());

    // A filtered export carries only the matching rows; the list shows both, newest first.
    let instance_id = expected[0][1].clone();
    let job2 = export(
        &t,
        json!({"kind": "database_ledger", "filters": {"instance_id": instance_id.parse::<i64>().unwrap(), "tag": ["beta"]}}),
    )
    .await;
    let (_, body2) = download(job2["download_url"].as_str().unwrap()).await;
    let (_, rows2) = parse_csv(&body2);
    assert_eq!(rows2.len(), 500);
    assert!(rows2.iter().all(|r| r[1] == instance_id));
    assert_eq!(job2["parts_uploaded"], 1);
    let list = t.get("/exports?limit=1", Role::Viewer).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.data()["items"][0]["id"], job2["id"]);
    assert!(list.data()["items"][0]["download_url"].is_null());
    let next = list.data()["next_cursor"].as_str().unwrap();
    let list2 = t
        .get(&format!("/exports?limit=1&cursor={next}"), Role::Viewer)
        .await;
    assert_eq!(list2.data()["items"][0]["id"], job["id"]);
    assert_eq!(list2.data()["has_next"], false);
    assert!(open_uploads(&t).is_empty());
    assert_eq!(objects(&t).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_cells_are_neutralised_and_quoting_round_trips() {
    let t = TestStack::start().await;
    let db = t.db.connect().await;
    db.batch_execute(
        "INSERT INTO instances (id, name, db_type, host, port) VALUES (1, '-inst-danger', 'mysql', '@host', 3306); \
         INSERT INTO tags (name, display_name, category) VALUES ('=evil', 'Evil', 't'); \
         INSERT INTO instance_tags (instance_id, tag_id) SELECT 1, id FROM tags; \
         INSERT INTO instance_databases (instance_id, database_name, latest_size_bytes, latest_collected_at, latest_collected_date) VALUES \
           (1, '=HYPERLINK(\"http://evil\")', 10, now(), current_date), \
           (1, E'a,b \"c\"\\nd', 20, now(), current_date), \
           (1, '+plus', NULL, NULL, NULL), \
           (1, E'\\ttab', NULL, NULL, NULL), \
           (1, 'plain', NULL, NULL, NULL)",
    )
    .await
    .unwrap();
    let job = export(&t, json!({"kind": "database_ledger"})).await;
    assert_eq!(job["status"], "completed", "{job}");
    let (_, body) = download(job["download_url"].as_str().unwrap()).await;
    let (_, rows) = parse_csv(&body);
    let names: Vec<&str> = rows.iter().map(|r| r[6].as_str()).collect();
    for want in [
        "'=HYPERLINK(\"http://evil\")",
        "a,b \"c\"\nd",
        "'+plus",
        "'\ttab",
        "plain",
    ] {
        assert!(names.contains(&want), "{want:?} not in {names:?}");
    }
    for r in &rows {
        assert_eq!(r[2], "'-inst-danger");
        assert_eq!(r[3], "'@host");
        assert_eq!(r[13], "'=evil");
    }
    // Numbers are not text: a negative growth stays a number.
    db.execute(
        "UPDATE instance_databases SET growth_bytes_per_day = -5",
        &[],
    )
    .await
    .unwrap();
    let job = export(&t, json!({"kind": "database_ledger"})).await;
    let (_, body) = download(job["download_url"].as_str().unwrap()).await;
    assert!(parse_csv(&body).1.iter().all(|r| r[11] == "-5"));

    // The instances kind neutralises too, and an empty result is a file with the header only.
    let job = export(
        &t,
        json!({"kind": "instances", "filters": {"include_deleted": true}}),
    )
    .await;
    let (_, body) = download(job["download_url"].as_str().unwrap()).await;
    let (header, rows) = parse_csv(&body);
    assert_eq!(header[1], "name");
    assert_eq!(rows[0][1], "'-inst-danger");
    assert_eq!(rows[0][9], "'=evil");
    let job = export(
        &t,
        json!({"kind": "database_ledger", "filters": {"search": "nothing matches this"}}),
    )
    .await;
    assert_eq!(job["rows_written"], 0);
    let (_, body) = download(job["download_url"].as_str().unwrap()).await;
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!("{}\r\n", LEDGER_HEADER.join(","))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_validated_owned_and_links_are_signed() {
    let t = TestStack::start().await;
    let db = t.db.connect().await;
    seed_ledger(&db, 2, 3, 5).await;
    db.execute(
        "INSERT INTO database_size_stats (instance_id, database_name, collected_date, size_bytes) \
         SELECT 1, 'db_a', d::date, 1000 FROM generate_series(date '2026-01-01', date '2026-01-10', interval '1 day') d",
        &[],
    )
    .await
    .unwrap();

    for (body, field) in [
        (json!({"kind": "everything"}), "kind"),
        (
            json!({"kind": "database_ledger", "format": "xlsx"}),
            "format",
        ),
        (
            json!({"kind": "database_ledger", "filters": {"min_size_bytes": -1}}),
            "filters.min_size_bytes",
        ),
        (
            json!({"kind": "database_ledger", "filters": {"stale": "maybe"}}),
            "filters.stale",
        ),
        // A filter of another JSON type is not read as its text.
        (
            json!({"kind": "database_ledger", "filters": {"search": 5}}),
            "filters.search",
        ),
        (
            json!({"kind": "instances", "filters": {"tag": [null]}}),
            "filters.tag",
        ),
        (
            json!({"kind": "database_ledger", "filters": {"limit": 5}}),
            "filters.limit",
        ),
        (
            json!({"kind": "instances", "filters": {"tag_mode": "some"}}),
            "filters.tag_mode",
        ),
        (
            json!({"kind": "database_sizes", "filters": {"start_date": "2025-01-01", "end_date": "2026-02-05"}}),
            "filters.end_date",
        ),
        (json!({"kind": "database_ledger", "extra": 1}), "extra"),
    ] {
        let r = t.post("/exports", Role::Viewer, body.clone()).await;
        assert_eq!(r.status, 400, "{body} -> {r:?}");
        assert_eq!(r.body["error"]["field"], field, "{body} -> {r:?}");
    }
    // An instance that does not exist: 404 naming the filter.
    let body = json!({"kind": "database_sizes", "filters": {"instance_id": 999, "start_date": "2026-01-01", "end_date": "2026-01-31"}});
    let r = t.post("/exports", Role::Viewer, body.clone()).await;
    assert_eq!(r.status, 404, "{body} -> {r:?}");
    assert_eq!(
        r.body["error"]["field"], "filters.instance_id",
        "{body} -> {r:?}"
    );
    let count: i64 = tidemark_tests::scalar(&db, "SELECT count(*) FROM export_jobs").await;
    assert_eq!(count, 0, "rejected requests leave no job");

    // database_sizes: one instance's history in a range.
    let sizes = export(
        &t,
        json!({"kind": "database_sizes", "filters": {"instance_id": 1, "start_date": "2026-01-03", "end_date": "2026-01-05"}}),
    )
    .await;
    let (_, body) = download(sizes["download_url"].as_str().unwrap()).await;
    let (header, rows) = parse_csv(&body);
    assert_eq!(header[5], "collected_date");
    let dates: Vec<&str> = rows.iter().map(|r| r[5].as_str()).collect();
    assert_eq!(dates, ["2026-01-03", "2026-01-04", "2026-01-05"]);
    assert_eq!(rows[0][6], "1000");

    // Ownership: another user's export is 404, to read and to delete; admins see all.
    let job = export(&t, json!({"kind": "database_ledger"})).await;
    let id = job["id"].as_str().unwrap();
    let path = format!("/exports/{id}");
    assert_eq!(t.get(&path, Role::Operator).await.status, 404);
    assert_eq!(t.delete(&path, Role::Operator).await.status, 404);
    assert_eq!(t.get(&path, Role::Admin).await.status, 200);
    assert_eq!(
        t.get("/exports", Role::Operator).await.data()["items"],
        json!([])
    );
    assert_eq!(t.get("/exports/not-a-uuid", Role::Viewer).await.status, 404);
    assert_eq!(
        t.get("/exports?status=done", Role::Viewer).await.status,
        400
    );

    // A tampered link is refused by S3.
    let url = job["download_url"].as_str().unwrap();
    let (_, body) = download(url).await;
    assert!(!body.is_empty());
    let sig_at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut tampered = url.to_string();
    let flipped = if &url[sig_at..sig_at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    tampered.replace_range(sig_at..sig_at + 1, flipped);
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 403);
    let other_key = url.replace("/exports/", "/exports-other/");
    assert_eq!(reqwest::get(&other_key).await.unwrap().status(), 403);

    // Delete: the object goes, then the job.
    let before = objects(&t).len();
    let r = t.delete(&path, Role::Viewer).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(objects(&t).len(), before - 1);
    assert_eq!(t.get(&path, Role::Viewer).await.status, 404);
    assert_eq!(reqwest::get(url).await.unwrap().status(), 404);

    // Maintenance removes exports past retention (object and job).
    db.execute(
        "UPDATE export_jobs SET created_at = now() - interval '8 days' WHERE id = $1::text::uuid",
        &[&sizes["id"].as_str().unwrap()],
    )
    .await
    .unwrap();
    assert_eq!(tidemark::exports::expire(&t.stack.app).await.unwrap(), 1);
    assert_eq!(objects(&t).len(), before - 2);
    let sizes_path = format!("/exports/{}", sizes["id"].as_str().unwrap());
    assert_eq!(t.get(&sizes_path, Role::Viewer).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_is_refused() {
    let t = TestStack::start_with(vec![("TIDEMARK_PRESIGN_EXPIRY_SECS", "1")]).await;
    let job = export(&t, json!({"kind": "instances"})).await;
    assert_eq!(job["status"], "completed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resp = reqwest::get(job["download_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // A fresh GET presigns a fresh link (never stored).
    let again = t
        .get(
            &format!("/exports/{}", job["id"].as_str().unwrap()),
            Role::Viewer,
        )
        .await;
    assert_ne!(again.data()["download_url"], job["download_url"]);
}

/// What the proxy in front of S3 does to multipart part uploads.
#[derive(Clone, Copy)]
enum Fault {
    /// Answer 500 to every UploadPart from this part number on.
    FailPartsFrom(u32),
    /// Hold every UploadPart this long before passing it on.
    DelayParts(Duration),
}

/// A tiny HTTP proxy in front of the embedded S3 endpoint: it sees each request head (every
/// request gets `Connection: close`, so each arrives on a new connection) and applies `fault`.
async fn s3_proxy(upstream: SocketAddr, fault: Fault) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(proxy_one(client, upstream, fault));
        }
    });
    addr
}

async fn proxy_one(mut client: TcpStream, upstream: SocketAddr, fault: Fault) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        let Ok(n) = client.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let request_line = head.lines().next().unwrap_or("");
    let part_number = request_line
        .starts_with("PUT ")
        .then(|| {
            request_line
                .split(['?', '&', ' '])
                .find_map(|p| p.strip_prefix("partNumber="))
                .and_then(|n| n.parse::<u32>().ok())
        })
        .flatten();
    if let Some(n) = part_number {
        match fault {
            Fault::FailPartsFrom(from) if n >= from => {
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())
                            .flatten()
                    })
                    .unwrap_or(0);
                let mut remaining = length.saturating_sub(buf.len() - head_end);
                while remaining > 0 {
                    match client.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => remaining = remaining.saturating_sub(n),
                    }
                }
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code><Message>injected</Message></Error>";
                let resp = format!(
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = client.write_all(resp.as_bytes()).await;
                let _ = client.shutdown().await;
                return;
            }
            Fault::DelayParts(d) => tokio::time::sleep(d).await,
            Fault::FailPartsFrom(_) => {}
        }
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let mut forwarded: String = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| {
            !l.split_once(':')
                .is_some_and(|(k, _)| k.eq_ignore_ascii_case("connection"))
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    forwarded.push_str("connection: close\r\n\r\n");
    if server.write_all(forwarded.as_bytes()).await.is_err()
        || server.write_all(&buf[head_end..]).await.is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// The stack's App with its S3 client sent through `proxy` (same credentials and bucket).
fn app_via(t: &TestStack, proxy: SocketAddr) -> App {
    let mut app = t.stack.app.clone();
    let conf = app
        .storage
        .client
        .config()
        .to_builder()
        .endpoint_url(format!("http://{proxy}"))
        .build();
    app.storage.client = aws_sdk_s3::Client::from_conf(conf);
    app
}

async fn job_state(
    db: &tokio_postgres::Client,
    id: uuid::Uuid,
) -> (String, Option<String>, i32, Option<String>) {
    let r = db
        .query_one(
            "SELECT status, error, attempt, upload_id FROM export_jobs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_failing_mid_export_fails_the_job_and_leaves_nothing() {
    let (t, db) = five_mib_parts(60, 500, 250).await;
    let proxy = s3_proxy(t.stack.s3_addr, Fault::FailPartsFrom(3)).await;
    let app = app_via(&t, proxy);
    let id = job_row(&db, json!({})).await;

    tidemark::exports::process(&app, &ExportMessage { export_id: id })
        .await
        .unwrap();
    let (status, error, _, upload_id) = job_state(&db, id).await;
    assert_eq!(status, "failed");
    let error = error.unwrap();
    assert!(error.contains("uploading part 3"), "{error}");
    assert!(error.contains("request the export again"), "{error}");
    assert!(upload_id.is_none(), "the upload was aborted");
    assert!(open_uploads(&t).is_empty(), "{:?}", open_uploads(&t));
    assert!(objects(&t).is_empty(), "{:?}", objects(&t));
    let r = t.get(&format!("/exports/{id}"), Role::Viewer).await;
    assert_eq!(r.data()["status"], "failed");
    assert!(r.data()["download_url"].is_null());

    // A redelivered message for a failed job does nothing.
    tidemark::exports::process(&app, &ExportMessage { export_id: id })
        .await
        .unwrap();
    assert_eq!(job_state(&db, id).await.2, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_dropping_the_stream_fails_the_job_and_leaves_nothing() {
    // ~28 MiB: the server is still sending rows when the first part is recorded.
    let (t, db) = five_mib_parts(60, 700, 400).await;
    let proxy = s3_proxy(
        t.stack.s3_addr,
        Fault::DelayParts(Duration::from_millis(1500)),
    )
    .await;
    let app = app_via(&t, proxy);
    let id = job_row(&db, json!({})).await;

    let worker = tokio::spawn(async move {
        tidemark::exports::process(&app, &ExportMessage { export_id: id }).await
    });
    let mut terminated = false;
    for _ in 0..600 {
        let parts: i32 = db
            .query_one(
                "SELECT parts_uploaded FROM export_jobs WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        if parts >= 1 {
            let n = db
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid() \
                       AND state = 'active' AND query LIKE '%JOIN instance_databases d ON d.instance_id = i.id%'",
                    &[],
                )
                .await
                .unwrap()
                .len();
            assert_eq!(n, 1, "the export's query is still streaming");
            terminated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(terminated);
    worker.await.unwrap().unwrap();
    let (status, error, _, upload_id) = job_state(&db, id).await;
    assert_eq!(status, "failed");
    let error = error.unwrap();
    assert!(error.starts_with("reading the rows"), "{error}");
    assert!(error.contains("request the export again"), "{error}");
    assert!(upload_id.is_none());
    assert!(open_uploads(&t).is_empty(), "{:?}", open_uploads(&t));
    assert!(objects(&t).is_empty(), "{:?}", objects(&t));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_run_is_redone_once() {
    let t = TestStack::start().await;
    let db = t.db.connect().await;
    seed_ledger(&db, 3, 5, 5).await;
    let app = t.stack.app.clone();
    let id = job_row(&db, json!({})).await;

    // What a worker that died mid-export leaves: the job running on an old lease, with an
    // open multipart upload holding one part.
    let stale_key = format!("exports/{id}/1/stale.csv");
    let s3 = &app.storage.client;
    let upload_id = s3
        .create_multipart_upload()
        .bucket(&app.storage.bucket)
        .key(&stale_key)
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    s3.upload_part()
        .bucket(&app.storage.bucket)
        .key(&stale_key)
        .upload_id(&upload_id)
        .part_number(1)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"id,partial\r\n",
        ))
        .send()
        .await
        .unwrap();
    assert!(!open_uploads(&t).is_empty());
    db.execute(
        "UPDATE export_jobs SET status = 'running', attempt = 1, started_at = now() - interval '1 hour', \
         heartbeat_at = now() - interval '1 hour', rows_written = 7, parts_uploaded = 1, \
         upload_id = $2, object_key = $3 WHERE id = $1",
        &[&id, &upload_id, &stale_key],
    )
    .await
    .unwrap();

    // Redelivered twice at once: one run claims it, the other finds it running.
    let message = ExportMessage { export_id: id };
    let (a, b) = tokio::join!(
        tidemark::exports::process(&app, &message),
        tidemark::exports::process(&app, &message)
    );
    a.unwrap();
    b.unwrap();
    let (status, error, attempt, left) = job_state(&db, id).await;
    assert_eq!(
        (status.as_str(), error, attempt, left),
        ("completed", None, 2, None)
    );
    assert!(open_uploads(&t).is_empty(), "{:?}", open_uploads(&t));
    let objects_now = objects(&t);
    assert_eq!(objects_now.len(), 1, "{objects_now:?}");
    let r = t.get(&format!("/exports/{id}"), Role::Viewer).await;
    assert_eq!(r.data()["rows_written"], 15);
    assert_eq!(r.data()["parts_uploaded"], 1);
    let (_, body) = download(r.data()["download_url"].as_str().unwrap()).await;
    assert_eq!(parse_csv(&body).1, expected_ledger(&db).await);

    // Once more, after completion: nothing happens.
    let completed_at: chrono::DateTime<chrono::Utc> = db
        .query_one("SELECT completed_at FROM export_jobs WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    tidemark::exports::process(&app, &message).await.unwrap();
    let again: chrono::DateTime<chrono::Utc> = db
        .query_one("SELECT completed_at FROM export_jobs WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(again, completed_at);
    assert_eq!(job_state(&db, id).await.2, 2);
    assert_eq!(objects(&t).len(), 1);

    // A job running on a live lease belongs to its run: a redelivery leaves it alone.
    let live = job_row(&db, json!({})).await;
    db.execute(
        "UPDATE export_jobs SET status = 'running', attempt = 1, heartbeat_at = now() WHERE id = $1",
        &[&live],
    )
    .await
    .unwrap();
    tidemark::exports::process(&app, &ExportMessage { export_id: live })
        .await
        .unwrap();
    assert_eq!(job_state(&db, live).await.0, "running");
    assert_eq!(job_state(&db, live).await.2, 1);
}

/// At most N exports per owner are queued or running (here 2): the next is a 429 with
/// `Retry-After`, nothing is recorded, another owner is not affected, and a place frees up
/// when a job ends.
#[tokio::test]
async fn exports_in_flight_are_capped_per_owner() {
    let t = TestStack::start_with(vec![("TIDEMARK_MAX_EXPORTS_PER_OWNER", "2")]).await;
    let db = t.db.connect().await;
    let first = job_row(&db, json!({})).await;
    job_row(&db, json!({})).await;
    let body = json!({"kind": "instances"});
    let r = t.post("/exports", Role::Viewer, body.clone()).await;
    assert_eq!((r.status, r.code()), (429, "TOO_MANY_REQUESTS"), "{r:?}");
    assert_eq!(r.headers["retry-after"], "30");
    let n: i64 = tidemark_tests::scalar(&db, "SELECT count(*) FROM export_jobs").await;
    assert_eq!(n, 2, "the refused request recorded nothing");
    // Another owner has places of its own.
    let r = t.post("/exports", Role::Admin, body.clone()).await;
    assert_eq!(r.status, 202, "{r:?}");
    db.execute(
        "UPDATE export_jobs SET status = 'failed' WHERE id = $1",
        &[&first],
    )
    .await
    .unwrap();
    let r = t.post("/exports", Role::Viewer, body).await;
    assert_eq!(r.status, 202, "{r:?}");
}

/// The embedded S3 answers the abort of an upload it no longer has (here: completed) with
/// S3's NoSuchUpload, which the app counts as aborted; s3s-fs alone says AccessDenied, which
/// made a DELETE racing the worker's completion a 503.
#[tokio::test]
async fn aborting_a_finished_upload_counts_as_aborted() {
    let t = TestStack::start().await;
    let storage = &t.stack.app.storage;
    let (s3, bucket, key) = (&storage.client, &storage.bucket, "exports/race/done.csv");
    let upload = s3.create_multipart_upload().bucket(bucket).key(key);
    let upload_id = upload.send().await.unwrap().upload_id.unwrap();
    let body = aws_sdk_s3::primitives::ByteStream::from_static(b"id\r\n");
    let part = s3
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .part_number(1);
    let etag = part.body(body).send().await.unwrap().e_tag;
    let done = aws_sdk_s3::types::CompletedPart::builder().part_number(1);
    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(done.set_e_tag(etag).build())
        .build();
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(parts)
        .send()
        .await
        .unwrap();
    let err = s3
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id);
    let err = err.send().await.unwrap_err();
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&err),
        Some("NoSuchUpload")
    );
    tidemark::exports::upload::abort(storage, key, &upload_id)
        .await
        .expect("a finished upload counts as aborted");
}
