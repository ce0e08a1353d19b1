//! Capacity: the aggregation job (daily/weekly/monthly/quarterly, in SQL), the aggregation
//! lists and the forecast.

use chrono::{Days, NaiveDate};
use serde_json::{json, Value};
use tidemark_tests::{Role, TestStack};
use tokio_postgres::types::ToSql;

pub(crate) fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// Whose sizes a row holds: one database's, or the instance's (with its database count).
enum Of<'a> {
    Db(&'a str),
    Instance(i32),
}

/// One row per day `from..=to`: `start + per_day * (day - from)` bytes.
async fn insert_sizes(
    c: &tokio_postgres::Client,
    instance_id: i64,
    of: Of<'_>,
    from: NaiveDate,
    to: NaiveDate,
    start: i64,
    per_day: i64,
) {
    let (table, size, column, value): (&str, &str, &str, &(dyn ToSql + Sync)) = match &of {
        Of::Db(name) => ("database_size_stats", "size_bytes", "database_name", name),
        Of::Instance(count) => (
            "instance_size_stats",
            "total_size_bytes",
            "database_count",
            count,
        ),
    };
    let cast = match of {
        Of::Db(_) => "text",
        Of::Instance(_) => "int",
    };
    c.execute(
        &format!(
            "INSERT INTO {table} (instance_id, collected_date, {size}, {column}) \
             SELECT $1, d::date, $4::bigint + $5::bigint * (d::date - $2::date), $6::{cast} \
             FROM generate_series($2::date, $3::date, interval '1 day') d"
        ),
        &[&instance_id, &from, &to, &start, &per_day, value],
    )
    .await
    .unwrap();
}

pub(crate) async fn database_sizes(
    c: &tokio_postgres::Client,
    instance_id: i64,
    database: &str,
    from: NaiveDate,
    to: NaiveDate,
    start: i64,
    per_day: i64,
) {
    insert_sizes(c, instance_id, Of::Db(database), from, to, start, per_day).await
}

pub(crate) async fn instance_sizes(
    c: &tokio_postgres::Client,
    instance_id: i64,
    from: NaiveDate,
    to: NaiveDate,
    start: i64,
    per_day: i64,
    database_count: i32,
) {
    let of = Of::Instance(database_count);
    insert_sizes(c, instance_id, of, from, to, start, per_day).await
}

/// `UPDATE instances SET {set}` for instance `id`.
async fn update_instance(c: &tokio_postgres::Client, id: i64, set: &str) {
    let sql = format!("UPDATE instances SET {set} WHERE id = $1");
    c.execute(&sql, &[&id]).await.unwrap();
}

/// (name at `pointer`, days_until) of each forecast item, in order.
fn ranking<'a>(items: &'a [Value], pointer: &str) -> Vec<(&'a str, Value)> {
    let name = |i: &'a Value| i.pointer(pointer).and_then(Value::as_str).unwrap();
    items
        .iter()
        .map(|i| (name(i), i["days_until"].clone()))
        .collect()
}

/// `GET path` as a viewer, which must answer 200.
async fn viewed(t: &TestStack, path: &str) -> tidemark_tests::Resp {
    let r = t.get(path, Role::Viewer).await;
    assert_eq!(r.status, 200, "{r:?}");
    r
}

/// Every database aggregation but its `calculated_at`, in a stable order.
async fn aggregation_rows(c: &tokio_postgres::Client) -> Vec<Value> {
    c
        .query(
            "SELECT to_jsonb(a) - 'calculated_at' FROM database_size_aggregations a ORDER BY (to_jsonb(a) - 'calculated_at')::text",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// (avg, max, min, samples, change_bytes, change_percent, trend) of one database aggregate.
async fn database_aggregate(
    c: &tokio_postgres::Client,
    instance_id: i64,
    database: &str,
    period_type: &str,
    start: NaiveDate,
) -> (i64, i64, i64, i32, i64, f64, String, NaiveDate) {
    let r = c
        .query_one(
            "SELECT avg_bytes, max_bytes, min_bytes, sample_count, change_bytes, change_percent, trend, period_end \
             FROM database_size_aggregations \
             WHERE instance_id = $1 AND database_name = $2 AND period_type = $3 AND period_start = $4",
            &[&instance_id, &database, &period_type, &start],
        )
        .await
        .unwrap_or_else(|e| panic!("{database} {period_type} {start}: {e}"));
    (
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
        r.get(7),
    )
}

/// The known history of the aggregation test, with today = Wednesday 2026-11-25:
/// `orders`: 1000 bytes from September to November 15, 2000 from November 16 to 23, then
/// 2100 (yesterday) and 2200 (today). `logs`: 1000 in the week of November 9, 500 the week
/// after. Instance totals: ten times `orders`.
pub(crate) async fn seed_history(t: &TestStack) -> (i64, i64, i64) {
    let c = t.db.connect().await;
    let a = t.seed_instance("pg-active").await;
    let paused = t.seed_instance("pg-paused").await;
    let gone = t.seed_instance("pg-gone").await;
    update_instance(&c, paused, "is_active = false").await;
    update_instance(&c, gone, "deleted_at = now()").await;
    database_sizes(&c, a, "orders", d(2026, 9, 1), d(2026, 11, 15), 1000, 0).await;
    database_sizes(&c, a, "orders", d(2026, 11, 16), d(2026, 11, 23), 2000, 0).await;
    database_sizes(&c, a, "orders", d(2026, 11, 24), d(2026, 11, 25), 2100, 100).await;
    database_sizes(&c, a, "logs", d(2026, 11, 9), d(2026, 11, 15), 1000, 0).await;
    database_sizes(&c, a, "logs", d(2026, 11, 16), d(2026, 11, 22), 500, 0).await;
    instance_sizes(&c, a, d(2026, 9, 1), d(2026, 11, 15), 10_000, 0, 2).await;
    instance_sizes(&c, a, d(2026, 11, 16), d(2026, 11, 23), 20_000, 0, 2).await;
    instance_sizes(&c, a, d(2026, 11, 24), d(2026, 11, 25), 21_000, 1000, 2).await;
    c.execute(
        "UPDATE instance_size_stats SET database_count = 3 WHERE instance_id = $1 AND collected_date = '2026-11-25'",
        &[&a],
    )
    .await
    .unwrap();
    for other in [paused, gone] {
        database_sizes(
            &c,
            other,
            "orders",
            d(2026, 11, 1),
            d(2026, 11, 25),
            5000,
            10,
        )
        .await;
        instance_sizes(&c, other, d(2026, 11, 1), d(2026, 11, 25), 5000, 10, 1).await;
    }
    (a, paused, gone)
}

#[tokio::test]
async fn aggregates_every_period_type_with_change_and_trend() {
    let t = TestStack::start().await;
    let (a, paused, gone) = seed_history(&t).await;
    let today = d(2026, 11, 25);
    let summary = tidemark::capacity::aggregate_on(&t.stack.app, today)
        .await
        .unwrap();
    let c = t.db.connect().await;

    // (database, period type, period start) and the row it must have: avg, max, min,
    // samples, change, change %, trend, period end.
    #[rustfmt::skip]
    let exact = [
        // Daily: yesterday; +100 over 2000 is exactly 5 %, which is still stable.
        ("orders", "daily", d(2026, 11, 24), (2100, 2100, 2100, 1, 100, 5.0, "stable", d(2026, 11, 24))),
        // Weekly: last complete week (doubled) and the current one (Monday to today).
        ("orders", "weekly", d(2026, 11, 16), (2000, 2000, 2000, 7, 1000, 100.0, "growing", d(2026, 11, 22))),
        ("orders", "weekly", d(2026, 11, 23), (2100, 2200, 2000, 3, 100, 5.0, "stable", d(2026, 11, 29))),
        ("logs", "weekly", d(2026, 11, 16), (500, 500, 500, 7, -500, -50.0, "shrinking", d(2026, 11, 22))),
        // Monthly: October (flat against September).
        ("orders", "monthly", d(2026, 10, 1), (1000, 1000, 1000, 31, 0, 0.0, "stable", d(2026, 10, 31))),
        // Quarterly: Q3 has only September (no Q2 to compare: stable).
        ("orders", "quarterly", d(2026, 7, 1), (1000, 1000, 1000, 30, 0, 0.0, "stable", d(2026, 9, 30))),
    ];
    for (database, period, start, (avg, max, min, n, change, pct, trend, end)) in exact {
        assert_eq!(
            database_aggregate(&c, a, database, period, start).await,
            (avg, max, min, n, change, pct, trend.to_string(), end),
            "{database} {period} {start}"
        );
    }
    // November: (15*1000 + 8*2000 + 2100 + 2200) / 25.
    let nov = database_aggregate(&c, a, "orders", "monthly", d(2026, 11, 1)).await;
    assert_eq!(
        (nov.0, nov.1, nov.2, nov.3, nov.4, nov.6.as_str(), nov.7),
        (1412, 2200, 1000, 25, 412, "growing", d(2026, 11, 30))
    );
    assert!((nov.5 - 41.2).abs() < 1e-9, "{}", nov.5);
    // Q4 = (31*1000 + 35300) / 56.
    let q4 = database_aggregate(&c, a, "orders", "quarterly", d(2026, 10, 1)).await;
    assert_eq!(
        (q4.0, q4.1, q4.2, q4.3, q4.4, q4.6.as_str(), q4.7),
        (1184, 2200, 1000, 56, 184, "growing", d(2026, 12, 31))
    );
    assert!(
        (q4.5 - (66_300.0 / 56.0 - 1000.0) / 10.0).abs() < 1e-9,
        "{}",
        q4.5
    );

    // Instances: the same shape from instance_size_stats, with the latest database count.
    let r = c
        .query_one(
            "SELECT avg_bytes, max_bytes, min_bytes, sample_count, change_bytes, trend, database_count \
             FROM instance_size_aggregations WHERE instance_id = $1 AND period_type = 'weekly' \
             AND period_start = '2026-11-23'",
            &[&a],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            r.get::<_, i64>(0),
            r.get::<_, i64>(1),
            r.get::<_, i64>(2),
            r.get::<_, i32>(3),
            r.get::<_, i64>(4),
            r.get::<_, String>(5),
            r.get::<_, i32>(6)
        ),
        (21_000, 22_000, 20_000, 3, 1000, "stable".to_string(), 3)
    );

    // Only active, non-deleted instances; nothing outside the job's periods.
    let counts = c
        .query_one(
            "SELECT (SELECT count(*) FROM database_size_aggregations WHERE instance_id = ANY($1)), \
                    (SELECT count(*) FROM instance_size_aggregations WHERE instance_id = ANY($1)), \
                    (SELECT count(*) FROM database_size_aggregations), \
                    (SELECT count(*) FROM instance_size_aggregations)",
            &[&vec![paused, gone]],
        )
        .await
        .unwrap();
    assert_eq!((counts.get::<_, i64>(0), counts.get::<_, i64>(1)), (0, 0));
    // orders: 7 periods; logs: last week, current month and quarter (no data yesterday,
    // this week, in October or Q3).
    assert_eq!(counts.get::<_, i64>(2), 7 + 3);
    assert_eq!(counts.get::<_, i64>(3), 7);
    assert_eq!(summary["database_rows"], json!(10));
    assert_eq!(summary["instance_rows"], json!(7));

    // Idempotent: a rerun rewrites the same rows with the same values.
    let before: Vec<Value> = aggregation_rows(&c).await;
    tidemark::capacity::aggregate_on(&t.stack.app, today)
        .await
        .unwrap();
    let after: Vec<Value> = aggregation_rows(&c).await;
    assert_eq!(before, after);
    let lines: i64 = c
        .query_one(
            "SELECT count(*) FROM event_logs WHERE module = 'capacity' AND message = 'aggregation finished'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(lines, 2);

    // The lists over HTTP.
    let r = t
        .get(
            &format!("/capacity/databases?period_type=weekly&instance_id={a}&database_name=orders"),
            Role::Viewer,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let items = r.data()["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["period_start"], json!("2026-11-23"));
    assert_eq!(
        items[1],
        json!({"instance": {"id": a, "name": "pg-active"}, "database_name": "orders",
               "period_type": "weekly", "period_start": "2026-11-16", "period_end": "2026-11-22",
               "avg_bytes": 2000, "max_bytes": 2000, "min_bytes": 2000, "sample_count": 7,
               "change_bytes": 1000, "change_percent": 100.0, "trend": "growing",
               "calculated_at": items[1]["calculated_at"]})
    );
    // Default period_type is daily; the dates select overlapping periods.
    let r = viewed(
        &t,
        "/capacity/databases?start_date=2026-11-24&end_date=2026-11-24",
    )
    .await;
    assert_eq!(r.data()["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.data()["items"][0]["database_name"], json!("orders"));
    let r = t
        .get(
            "/capacity/databases?period_type=monthly&start_date=2026-11-10&include_total=true",
            Role::Viewer,
        )
        .await;
    assert_eq!(r.data()["total"], json!(2), "{r:?}");
    // Keyset pages: every row once.
    let seen: Vec<(Value, Value)> = t
        .all_by_cursor("/capacity/databases?period_type=quarterly&limit=1&sort=avg_bytes")
        .await
        .iter()
        .map(|i| (i["database_name"].clone(), i["period_start"].clone()))
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0], (json!("orders"), json!("2026-10-01")));

    let r = t
        .get("/capacity/instances?period_type=monthly", Role::Viewer)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let items = r.data()["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["period_start"], json!("2026-11-01"));
    assert_eq!(items[0]["avg_bytes"], json!(14_120));
    assert_eq!(items[0]["database_count"], json!(3));
    assert_eq!(items[0]["trend"], json!("growing"));
    assert!(items[0].get("database_name").is_none());
}

#[tokio::test]
async fn the_job_aggregates_yesterday_of_the_business_date() {
    let t = TestStack::start().await;
    let app = &t.stack.app;
    let today = app.config.business_date(chrono::Utc::now());
    let yesterday = today - Days::new(1);
    let c = t.db.connect().await;
    let a = t.seed_instance("pg-daily").await;
    database_sizes(&c, a, "app", yesterday - Days::new(1), yesterday, 1000, 200).await;
    tidemark::capacity::aggregate(app).await.unwrap();
    let agg = database_aggregate(&c, a, "app", "daily", yesterday).await;
    assert_eq!(
        agg,
        (1200, 1200, 1200, 1, 200, 20.0, "growing".into(), yesterday)
    );
}

/// Last `days` days up to today: `latest - per_day * (days_ago)` bytes.
async fn recent_instance_sizes(
    c: &tokio_postgres::Client,
    id: i64,
    today: NaiveDate,
    days: u64,
    latest: i64,
    per_day: i64,
) {
    let from = today - Days::new(days - 1);
    instance_sizes(
        c,
        id,
        from,
        today,
        latest - per_day * (days as i64 - 1),
        per_day,
        1,
    )
    .await;
}

#[tokio::test]
async fn forecast_ranks_by_days_until_the_threshold() {
    let t = TestStack::start().await;
    let today = t.stack.app.config.business_date(chrono::Utc::now());
    let c = t.db.connect().await;
    let fast = t.seed_instance("fast").await;
    let slow = t.seed_instance("slow").await;
    let flat = t.seed_instance("flat").await;
    let shrinking = t.seed_instance("shrinking").await;
    let over = t.seed_instance("over").await;
    let old = t.seed_instance("old").await;
    let gone = t.seed_instance("gone").await;
    update_instance(&c, gone, "deleted_at = now()").await;
    // threshold 10,050: fast needs 50.5 days, slow 104.5, over is past it already.
    recent_instance_sizes(&c, fast, today, 10, 5000, 100).await;
    recent_instance_sizes(&c, slow, today, 10, 9005, 10).await;
    recent_instance_sizes(&c, flat, today, 10, 3000, 0).await;
    recent_instance_sizes(&c, shrinking, today, 10, 8000, -50).await;
    recent_instance_sizes(&c, over, today, 10, 12_000, 10).await;
    recent_instance_sizes(&c, gone, today, 10, 9000, 100).await;
    // Growing fast, but only before the 30-day window: not part of the forecast.
    let long_ago = today - Days::new(40);
    instance_sizes(&c, old, long_ago - Days::new(5), long_ago, 1000, 1000, 1).await;

    let r = t
        .get("/capacity/forecast?threshold_bytes=10050", Role::Viewer)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let items = r.data()["items"].as_array().unwrap();
    let ranked = ranking(items, "/instance/name");
    assert_eq!(
        ranked,
        vec![
            ("over", json!(0)),
            ("fast", json!(51)),
            ("slow", json!(105)),
            ("flat", Value::Null),
            ("shrinking", Value::Null),
        ]
    );
    assert_eq!(items[1]["growth_bytes_per_day"], json!(100));
    assert_eq!(items[1]["latest_bytes"], json!(5000));
    assert_eq!(items[1]["samples"], json!(10));
    assert_eq!(
        items[1]["projected_date"],
        json!((today + Days::new(51)).to_string())
    );
    assert_eq!(r.data()["scope"], json!("instances"));
    let r = t
        .get(
            "/capacity/forecast?threshold_bytes=10050&limit=2",
            Role::Viewer,
        )
        .await;
    assert_eq!(r.data()["items"].as_array().unwrap().len(), 2);

    // Databases: from database_size_stats, each database ranked on its own.
    database_sizes(&c, flat, "big", today - Days::new(9), today, 900, 100).await;
    database_sizes(&c, flat, "small", today - Days::new(9), today, 100, 10).await;
    database_sizes(&c, flat, "static", today - Days::new(9), today, 100, 0).await;
    let r = viewed(
        &t,
        "/capacity/forecast?threshold_bytes=5005&scope=databases",
    )
    .await;
    let ranked = ranking(r.data()["items"].as_array().unwrap(), "/database_name");
    // big: (5005 - 1800) / 100 = 32.05 -> 33; small: (5005 - 190) / 10 = 481.5 -> 482.
    assert_eq!(
        ranked,
        vec![
            ("big", json!(33)),
            ("small", json!(482)),
            ("static", Value::Null)
        ]
    );
}

#[tokio::test]
async fn capacity_validation_errors() {
    let t = TestStack::start().await;
    for path in [
        "/capacity/forecast",
        "/capacity/forecast?threshold_bytes=0",
        "/capacity/forecast?threshold_bytes=-5",
        "/capacity/forecast?threshold_bytes=abc",
        "/capacity/forecast?threshold_bytes=10&scope=tables",
        "/capacity/forecast?threshold_bytes=10&limit=0",
        "/capacity/forecast?threshold_bytes=10&limit=201",
        "/capacity/databases?period_type=yearly",
        "/capacity/databases?start_date=2026-13-01",
        "/capacity/databases?start_date=2026-11-02&end_date=2026-11-01",
        "/capacity/databases?instance_id=abc",
        "/capacity/databases?sort=size",
        "/capacity/databases?limit=0",
        "/capacity/instances?period_type=hourly",
        "/capacity/instances?sort=database_name",
        "/capacity/instances?instance_id=0",
    ] {
        let r = t.get(path, Role::Viewer).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "VALIDATION_ERROR"),
            "{path}: {r:?}"
        );
    }
    let r = t
        .get("/capacity/forecast?threshold_bytes=abc", Role::Viewer)
        .await;
    assert_eq!(r.body["error"]["field"], json!("threshold_bytes"));
    // Empty results are fine; a token is needed.
    let r = t
        .get("/capacity/forecast?threshold_bytes=1", Role::Viewer)
        .await;
    assert_eq!((r.status, r.data()["items"].clone()), (200, json!([])));
    let r = t.get("/capacity/instances", Role::Viewer).await;
    assert_eq!((r.status, r.data()["items"].clone()), (200, json!([])));
    let r = t
        .call(reqwest::Method::GET, "/capacity/databases", None, None)
        .await;
    assert_eq!(r.status, 401);
}

/// A threshold at the top of i64 over a slope below one byte a day is more days than a
/// bigint holds: the answer saturates (as the ledger's does) instead of failing.
#[tokio::test]
async fn forecast_threshold_near_i64_max_answers() {
    let t = TestStack::start().await;
    let today = t.stack.app.config.business_date(chrono::Utc::now());
    let c = t.db.connect().await;
    let slow = t.seed_instance("slow").await;
    // One byte over nine days: a slope of 1/9 byte a day.
    c.execute(
        "INSERT INTO instance_size_stats (instance_id, collected_date, total_size_bytes, database_count) \
         VALUES ($1, $2::date - 9, 1000, 1), ($1, $2::date, 1001, 1)",
        &[&slow, &today],
    )
    .await
    .unwrap();
    for scope in ["instances", "databases"] {
        let r = t
            .get(
                &format!(
                    "/capacity/forecast?threshold_bytes={}&scope={scope}",
                    i64::MAX
                ),
                Role::Viewer,
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.data()["threshold_bytes"], json!(i64::MAX));
    }
    let r = t
        .get(
            &format!("/capacity/forecast?threshold_bytes={}", i64::MAX),
            Role::Viewer,
        )
        .await;
    let item = &r.data()["items"][0];
    assert_eq!(item["days_until"], json!(i64::MAX), "{r:?}");
    assert_eq!(item["projected_date"], Value::Null);
    // One past the top of i64 is not an integer the server takes.
    t.expect_invalid_queries(
        "/capacity/forecast",
        &[("threshold_bytes=9223372036854775808", "threshold_bytes")],
    )
    .await;
}
