//! Capacity alerts: rules judged over a seeded history (one database crosses each condition,
//! another does not), one digest per channel and day even when a day is evaluated twice, a
//! webhook receiver that checks the HMAC, a failing receiver retried and recorded, secrets
//! never shown, and a statement count that does not grow with the fleet.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use chrono::NaiveDate;
use serde_json::{json, Value};
use tidemark_tests::{captured_logs, Role, TestStack};

const GIB: i64 = 1 << 30;
const MIB: i64 = 1 << 20;
const SECRET: &str = "hook-secret-never-shown-7f3a";

/// The evaluated business day: ahead of today, so every instance was registered before the
/// history it is judged on.
fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2031, 3, 31).unwrap()
}

/// What the receiver got: (path, headers, body).
type Received = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;

/// A webhook receiver on 127.0.0.1: records every request; `/fail` answers 500.
async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    async fn hook(
        State(got): State<Received>,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let path = uri.path().to_string();
        let failing = path == "/fail";
        got.lock().unwrap().push((path, headers, body));
        if failing {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    }
    let router = axum::Router::new().fallback(hook).with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), got)
}

fn received_on(got: &Received, path: &str) -> Vec<(HeaderMap, Bytes)> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p == path)
        .map(|(_, h, b)| (h.clone(), b.clone()))
        .collect()
}

/// One size a day per database over `day - 31 ..= day`: `size(n)` for day index n (0..=31).
async fn seed_sizes(
    c: &tokio_postgres::Client,
    instance_id: i64,
    database: &str,
    size: impl Fn(i64) -> i64,
) {
    let from = day() - chrono::Days::new(31);
    let dates: Vec<NaiveDate> = (0..=31).map(|n| from + chrono::Days::new(n)).collect();
    let sizes: Vec<i64> = (0..=31).map(size).collect();
    c.execute(
        "INSERT INTO database_size_stats (instance_id, database_name, collected_date, size_bytes) \
         SELECT $1, $2, d, s FROM unnest($3::date[], $4::bigint[]) AS u(d, s)",
        &[&instance_id, &database, &dates, &sizes],
    )
    .await
    .unwrap();
}

/// The instance's collections: one a day from `day - 31` to `day - gap` (gap 0: through the day).
async fn seed_collections(c: &tokio_postgres::Client, instance_id: i64, gap: u64) {
    c.execute(
        "INSERT INTO instance_size_stats (instance_id, collected_date, total_size_bytes, database_count) \
         SELECT $1, d::date, 1, 1 FROM generate_series($2::date - 31, $2::date - $3::int, interval '1 day') d",
        &[&instance_id, &day(), &(gap as i32)],
    )
    .await
    .unwrap();
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// (rule name, instance name, database name) of every alert recorded, sorted.
async fn fired(t: &TestStack) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = t
        .all_by_cursor("/alerts?limit=2")
        .await
        .iter()
        .map(|a| {
            (
                a["rule_name"].as_str().unwrap().to_string(),
                a["instance_name"].as_str().unwrap().to_string(),
                a["database_name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn each_condition_fires_once_a_day_with_one_digest_per_channel() {
    let t = TestStack::start().await;
    let (base, got) = receiver().await;
    let c = t.db.connect().await;
    let hot = t.seed_instance("hot").await;
    let quiet = t.seed_instance("quiet").await;
    let tag = t.tag("watched").await;
    let assigned = t
        .post(
            "/tags/bulk/assign",
            Role::Operator,
            json!({"instance_ids": [hot], "tag_ids": [tag]}),
        )
        .await;
    assert_eq!(assigned.status, 200, "{assigned:?}");
    // filling: +1 GiB a day, 41 GiB on the day: 9 days from 50 GiB, +7 GiB over the week.
    seed_sizes(&c, hot, "filling", |n| 10 * GIB + n * GIB).await;
    // steady: never moves; crosses nothing.
    seed_sizes(&c, hot, "steady", |_| 5 * GIB).await;
    // spiky: +10 or +11 MiB a day, then +2 GiB on the day: far outside its pattern.
    seed_sizes(&c, hot, "spiky", |n| {
        let regular = GIB + n * 10 * MIB + n / 2 * MIB;
        if n == 31 {
            regular + 2 * GIB
        } else {
            regular
        }
    })
    .await;
    seed_sizes(&c, quiet, "app", |_| GIB).await;
    seed_collections(&c, hot, 0).await;
    // quiet: last collected 3 days before, so the 3 days up to the day have nothing.
    seed_collections(&c, quiet, 3).await;

    // Channels: a signed webhook, a Slack-compatible one, and a receiver that always fails.
    let signed = t
        .create(
            "/alert-channels",
            Role::Admin,
            json!({"name": "signed", "kind": "webhook", "url": format!("{base}/hook"), "secret": SECRET}),
        )
        .await;
    let slack = t
        .create(
            "/alert-channels",
            Role::Admin,
            json!({"name": "chat", "kind": "slack", "url": format!("{base}/slack")}),
        )
        .await;
    let failing = t
        .create(
            "/alert-channels",
            Role::Admin,
            json!({"name": "broken", "kind": "webhook", "url": format!("{base}/fail")}),
        )
        .await;
    let both = json!([signed, slack]);
    let rules = [
        json!({"name": "fills-soon", "severity": "critical", "scope": "all",
               "condition": "days_until_threshold", "threshold_bytes": 50 * GIB, "max_days": 10,
               "channel_ids": both}),
        json!({"name": "weekly-growth", "severity": "warning", "scope": "instance", "instance_id": hot,
               "condition": "growth", "period": "week", "min_bytes": 5 * GIB, "channel_ids": both}),
        json!({"name": "odd-day", "severity": "warning", "scope": "tag", "tag_id": tag,
               "condition": "abnormal_day", "mad_k": 5.0, "channel_ids": both}),
        json!({"name": "not-collected", "severity": "info", "scope": "all",
               "condition": "collection_failing", "failing_days": 3,
               "channel_ids": [signed, slack, failing]}),
        // Scoped to steady, which crosses nothing.
        json!({"name": "steady-growth", "severity": "info", "scope": "database", "instance_id": hot,
               "database_name": "steady", "condition": "growth", "period": "day", "min_percent": 1.0,
               "channel_ids": both}),
    ];
    let mut rule_ids = Vec::new();
    for r in rules {
        rule_ids.push(t.create("/alert-rules", Role::Admin, r).await);
    }

    let first = tidemark::alerts::evaluate(&t.stack.app, day())
        .await
        .unwrap();
    assert_eq!(first.new_alerts, 4, "{first:?}");
    assert_eq!((first.digests, first.delivered, first.failed), (3, 2, 1));
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        fired(&t).await,
        vec![
            s("fills-soon", "hot", "filling"),
            s("not-collected", "quiet", ""),
            s("odd-day", "hot", "spiky"),
            s("weekly-growth", "hot", "filling"),
        ]
    );
    let alerts = t
        .get(&format!("/alerts?rule_id={}", rule_ids[0]), Role::Viewer)
        .await
        .items();
    // 9 GiB to go at 1 GiB a day (the regression's float slope may round it up).
    let days = alerts[0]["value"].as_f64().unwrap();
    assert!((9.0..=10.0).contains(&days), "{days}");

    // The signed digest: one request, its HMAC over the exact body, every alert listed once.
    let hooks = received_on(&got, "/hook");
    assert_eq!(hooks.len(), 1);
    let (headers, body) = &hooks[0];
    let signature = headers["x-tidemark-signature"].to_str().unwrap();
    assert_eq!(signature, format!("sha256={}", hmac_hex(SECRET, body)));
    assert_ne!(signature, format!("sha256={}", hmac_hex("other", body)));
    let digest: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(digest["alert_count"], 4);
    assert_eq!(
        digest["counts"],
        json!({"critical": 1, "warning": 2, "info": 1})
    );
    assert_eq!(
        digest["alerts"][0]["severity"], "critical",
        "most severe first"
    );
    let slack_bodies = received_on(&got, "/slack");
    assert_eq!(slack_bodies.len(), 1);
    let text: Value = serde_json::from_slice(&slack_bodies[0].1).unwrap();
    let text = text["text"].as_str().unwrap();
    assert!(
        text.contains("hot/filling") && text.contains("quiet"),
        "{text}"
    );
    assert!(slack_bodies[0].0.get("x-tidemark-signature").is_none());
    // The failing receiver: tried MAX_ATTEMPTS times, recorded as failed with the reason.
    assert_eq!(received_on(&got, "/fail").len(), 3);
    let failed = t
        .get("/alert-deliveries?status=failed", Role::Viewer)
        .await
        .items();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["channel_id"], failing);
    assert_eq!(failed[0]["attempts"], 3);
    assert_eq!(failed[0]["alert_count"], 1);
    assert!(failed[0]["last_error"].as_str().unwrap().contains("500"));

    // The same day again: nothing new, no second digest where one was delivered; the failed
    // one is tried again.
    let second = tidemark::alerts::evaluate(&t.stack.app, day())
        .await
        .unwrap();
    assert_eq!((second.new_alerts, second.digests), (0, 1), "{second:?}");
    assert_eq!(received_on(&got, "/hook").len(), 1);
    assert_eq!(received_on(&got, "/slack").len(), 1);
    assert_eq!(received_on(&got, "/fail").len(), 6);
    let delivered = t
        .get("/alert-deliveries?status=delivered", Role::Viewer)
        .await;
    assert_eq!(delivered.items().len(), 2);

    // Filters and the acknowledgement.
    let crit = t
        .get("/alerts?severity=critical", Role::Viewer)
        .await
        .items();
    assert_eq!(crit.len(), 1);
    let by_instance = t
        .get(&format!("/alerts?instance_id={quiet}"), Role::Viewer)
        .await;
    assert_eq!(by_instance.items().len(), 1);
    let id = crit[0]["id"].as_i64().unwrap();
    let path = format!("/alerts/{id}/actions/acknowledge");
    assert_eq!(t.post(&path, Role::Viewer, json!({})).await.status, 403);
    let acked = t.post(&path, Role::Operator, json!({})).await;
    assert_eq!(acked.status, 200, "{acked:?}");
    assert_eq!(acked.data()["state"], "acknowledged");
    let again = t.post(&path, Role::Admin, json!({})).await;
    assert_eq!(
        again.data()["acknowledged_at"],
        acked.data()["acknowledged_at"]
    );
    assert_eq!(
        t.get("/alerts?state=firing", Role::Viewer)
            .await
            .items()
            .len(),
        3
    );
    assert_eq!(
        t.post(
            "/alerts/999999/actions/acknowledge",
            Role::Operator,
            json!({})
        )
        .await
        .status,
        404
    );

    // The secret is in no answer, log line or event.
    let shown = [
        t.get(&format!("/alert-channels/{signed}"), Role::Admin)
            .await,
        t.get("/alert-channels", Role::Admin).await,
        t.get("/alert-deliveries", Role::Viewer).await,
    ];
    for r in &shown {
        assert!(!r.body.to_string().contains(SECRET), "{r:?}");
    }
    assert_eq!(shown[0].data()["has_secret"], true);
    assert!(!captured_logs().contains(SECRET));
    let stored: Vec<u8> = c
        .query_one(
            "SELECT secret_ciphertext FROM alert_channels WHERE id = $1",
            &[&signed],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!stored.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
}

#[tokio::test]
async fn rules_and_channels_are_validated_and_guarded() {
    let t = TestStack::start().await;
    let bad_urls = [
        "ftp://x/y",
        "https://user:pw@example.com/h",
        "nope",
        "http://",
    ];
    for url in bad_urls {
        let r = t
            .post(
                "/alert-channels",
                Role::Admin,
                json!({"name": "x", "kind": "webhook", "url": url}),
            )
            .await;
        assert_eq!(
            (r.status, r.body["error"]["field"].as_str()),
            (400, Some("url")),
            "{url}: {r:?}"
        );
    }
    let cases = [
        (
            json!({"name": "s", "kind": "sns", "url": "https://e.com/"}),
            "url",
        ),
        (
            json!({"name": "s", "kind": "slack", "url": "https://e.com/", "secret": "x"}),
            "secret",
        ),
        (
            json!({"name": "s", "kind": "pager", "url": "https://e.com/"}),
            "kind",
        ),
        (json!({"name": "s", "kind": "webhook"}), "url"),
    ];
    for (body, field) in cases {
        let r = t.post("/alert-channels", Role::Admin, body.clone()).await;
        assert_eq!(
            (r.status, r.body["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}"
        );
    }
    let ch = json!({"name": "hook", "kind": "webhook", "url": "https://hooks.example.com/a", "secret": SECRET});
    assert_eq!(
        t.post("/alert-channels", Role::Operator, ch.clone())
            .await
            .status,
        403
    );
    let channel = t.create("/alert-channels", Role::Admin, ch.clone()).await;
    assert_eq!(t.post("/alert-channels", Role::Admin, ch).await.status, 409);
    assert_eq!(t.get("/alert-channels", Role::Viewer).await.status, 403);

    let rule = json!({"name": "r", "severity": "warning", "scope": "all", "condition": "growth",
                      "period": "week", "min_percent": 10.0, "channel_ids": [channel]});
    let rule_cases = [
        (
            json!({"condition": "growth", "period": "week"}),
            "min_percent",
        ),
        (
            json!({"condition": "growth", "period": "year", "min_bytes": 1}),
            "period",
        ),
        (json!({"condition": "abnormal_day"}), "mad_k"),
        (
            json!({"condition": "days_until_threshold", "threshold_bytes": 0, "max_days": 3}),
            "threshold_bytes",
        ),
        (
            json!({"condition": "collection_failing", "failing_days": 31}),
            "failing_days",
        ),
        (json!({"scope": "tag"}), "tag_id"),
        // A field the rule does not use is still held to its range.
        (json!({"max_days": 5000}), "max_days"),
        (json!({"severity": "loud"}), "severity"),
    ];
    // A reference to nothing is a 404 naming the field.
    let reference_cases = [
        (json!({"scope": "tag", "tag_id": 424242}), "tag_id"),
        (json!({"channel_ids": [424242]}), "channel_ids"),
    ];
    let cases = rule_cases
        .into_iter()
        .map(|(p, f)| (p, f, 400))
        .chain(reference_cases.into_iter().map(|(p, f)| (p, f, 404)));
    for (patch, field, status) in cases {
        let mut body = rule.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        for k in ["min_percent", "period"] {
            if patch.get("condition").is_some() && patch.get(k).is_none() {
                body.as_object_mut().unwrap().remove(k);
            }
        }
        let r = t.post("/alert-rules", Role::Admin, body.clone()).await;
        assert_eq!(
            (r.status, r.body["error"]["field"].as_str()),
            (status, Some(field)),
            "{body}: {r:?}"
        );
    }
    assert_eq!(
        t.post("/alert-rules", Role::Operator, rule.clone())
            .await
            .status,
        403
    );
    let id = t.create("/alert-rules", Role::Admin, rule).await;
    assert_eq!(
        t.get(&format!("/alert-rules/{id}"), Role::Viewer)
            .await
            .data()["channel_ids"],
        json!([channel])
    );
    // A PATCH that changes the condition clears the old one's parameters.
    let p = t
        .patch(
            &format!("/alert-rules/{id}"),
            Role::Admin,
            json!({"condition": "collection_failing", "failing_days": 2}),
        )
        .await;
    assert_eq!(p.status, 200, "{p:?}");
    assert_eq!(
        (p.data()["failing_days"].clone(), p.data()["period"].clone()),
        (json!(2), Value::Null)
    );
    // A channel in use cannot go; once the rule is gone it can.
    let r = t
        .delete(&format!("/alert-channels/{channel}"), Role::Admin)
        .await;
    assert_eq!((r.status, r.code()), (409, "CONFLICT"));
    assert_eq!(
        t.delete(&format!("/alert-rules/{id}"), Role::Admin)
            .await
            .status,
        200
    );
    assert_eq!(
        t.delete(&format!("/alert-rules/{id}"), Role::Admin)
            .await
            .status,
        404
    );
    assert_eq!(
        t.delete(&format!("/alert-channels/{channel}"), Role::Admin)
            .await
            .status,
        200
    );
    t.expect_invalid_queries(
        "/alerts",
        &[
            ("state=gone", "state"),
            ("rule_id=0", "rule_id"),
            ("day=yesterday", "day"),
            ("limit=0", "limit"),
        ],
    )
    .await;
}

/// Evaluation sends a fixed list of statements: the same for 10 databases as for 1,000.
#[tokio::test]
async fn evaluation_statements_do_not_depend_on_the_fleet() {
    let t = TestStack::start().await;
    let c = t.db.connect().await;
    let ids = t.seed_instances("fleet-", 100).await;
    t.create(
        "/alert-rules",
        Role::Admin,
        json!({"name": "any-growth", "severity": "info", "scope": "all", "condition": "growth",
               "period": "day", "min_bytes": 1}),
    )
    .await;
    let seed = |count: usize| {
        let ids = ids.clone();
        let c = &c;
        async move {
            for (n, id) in ids.iter().enumerate().take(count.div_ceil(10)) {
                for k in 0..10 {
                    seed_sizes(c, *id, &format!("db{k}"), |d| GIB + d * (n as i64 + 1)).await;
                }
            }
        }
    };
    seed(10).await;
    let small = tidemark::alerts::evaluate(&t.stack.app, day())
        .await
        .unwrap();
    assert_eq!(small.new_alerts, 10);
    c.execute("DELETE FROM database_size_stats", &[])
        .await
        .unwrap();
    c.execute("DELETE FROM alerts", &[]).await.unwrap();
    seed(1_000).await;
    let large = tidemark::alerts::evaluate(&t.stack.app, day())
        .await
        .unwrap();
    assert_eq!(large.new_alerts, 1_000);
    assert_eq!(small.statements, large.statements, "10 vs 1,000 databases");
    // Settings, two firings statements, the digest claim, the outcome record.
    assert_eq!(small.statements, 5);
}

/// A key rotation re-encrypts the webhook secrets with the passwords: after it, the new key
/// signs with the same secret, and the old one no longer opens it.
#[tokio::test]
async fn channel_secrets_survive_a_key_rotation() {
    use tidemark::crypto::CredentialKey;
    let t = TestStack::start().await;
    let (base, got) = receiver().await;
    let quiet = t.seed_instance("quiet").await;
    let channel = t
        .create(
            "/alert-channels",
            Role::Admin,
            json!({"name": "signed", "kind": "webhook", "url": format!("{base}/hook"), "secret": SECRET}),
        )
        .await;
    t.create(
        "/alert-rules",
        Role::Admin,
        json!({"name": "silent", "severity": "info", "scope": "instance", "instance_id": quiet,
               "condition": "collection_failing", "failing_days": 1, "channel_ids": [channel]}),
    )
    .await;
    let new = CredentialKey::new(&[9u8; 32]);
    let mut client = t.stack.app.db.get().await.unwrap();
    tidemark::credentials::keys::rotate(&mut client, &t.stack.app.credential_key, &new)
        .await
        .unwrap();
    drop(client);
    // The old key cannot open it any more: the delivery fails and says why, never the secret.
    let old = tidemark::alerts::evaluate(&t.stack.app, day())
        .await
        .unwrap();
    assert_eq!((old.new_alerts, old.failed), (1, 1), "{old:?}");
    let failed = t.get("/alert-deliveries", Role::Viewer).await.items();
    let why = failed[0]["last_error"].as_str().unwrap();
    assert!(
        why.contains("alert-channel") && !why.contains(SECRET),
        "{why}"
    );
    let rotated = tidemark::App {
        credential_key: new,
        ..t.stack.app.clone()
    };
    let again = tidemark::alerts::evaluate(&rotated, day()).await.unwrap();
    assert_eq!(again.delivered, 1, "{again:?}");
    let hooks = received_on(&got, "/hook");
    assert_eq!(hooks.len(), 1);
    let (headers, body) = &hooks[0];
    assert_eq!(
        headers["x-tidemark-signature"].to_str().unwrap(),
        format!("sha256={}", hmac_hex(SECRET, body))
    );
}

/// The contract's number rules at the HTTP edge: a whole float is that integer in a query
/// string as in a body, a fraction is not; a blank body is not an absent one.
#[tokio::test]
async fn integers_may_come_as_whole_floats_and_a_blank_body_is_malformed() {
    let t = TestStack::start().await;
    let r = t.get("/alerts?instance_id=3.0", Role::Viewer).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = t.get("/alerts?instance_id=3.5", Role::Viewer).await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (400, Some("instance_id"))
    );
    let r = t
        .post_raw(
            "/capacity/aggregations",
            Role::Operator,
            "application/json",
            b" ".to_vec(),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "MALFORMED_JSON"), "{r:?}");
    // A webhook secret is counted in characters, as the contract counts them.
    let r = t
        .post(
            "/alert-channels",
            Role::Admin,
            json!({"name": "w", "kind": "webhook", "url": "https://example.com/hook",
                   "secret": "\u{e9}".repeat(256)}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
}
