//! Incremental aggregation: folding day after day, a late day and a re-collected day each
//! give exactly what a full recompute from history gives; aggregation as task runs
//! (`POST /capacity/aggregations`, the schedule's backfill).

use chrono::{Days, NaiveDate};
use serde_json::{json, Value};
use tidemark_tests::{scalar, Role, TestStack};

use super::capacity::{d, database_sizes, instance_sizes, seed_history};

/// Every aggregate (both levels) of the periods the job covers on `today`, without what
/// differs by when it was written (`calculated_at`, `id`).
async fn rows_of(c: &tokio_postgres::Client, today: NaiveDate) -> Vec<Value> {
    let periods = tidemark::capacity::periods_for(today);
    let kinds: Vec<&str> = periods.iter().map(|p| p.kind.as_str()).collect();
    let starts: Vec<NaiveDate> = periods.iter().map(|p| p.start).collect();
    let mut out = Vec::new();
    for table in ["database_size_aggregations", "instance_size_aggregations"] {
        let sql = format!(
            "SELECT to_jsonb(a) - 'calculated_at' - 'id' FROM {table} a \
             JOIN unnest($1::text[], $2::date[]) p(k, s) ON a.period_type = p.k AND a.period_start = p.s \
             ORDER BY (to_jsonb(a) - 'calculated_at' - 'id')::text"
        );
        let rows = c.query(&sql, &[&kinds, &starts]).await.unwrap();
        out.extend(rows.iter().map(|r| r.get::<_, Value>(0)));
    }
    out
}

/// What the aggregation of `today` gives when computed from history alone.
async fn full_recompute(t: &TestStack, today: NaiveDate) -> Vec<Value> {
    let c = t.db.connect().await;
    c.batch_execute(
        "TRUNCATE database_size_aggregations, instance_size_aggregations, aggregation_periods, aggregation_days; \
         UPDATE instance_size_stats SET aggregated_at = NULL",
    )
    .await
    .unwrap();
    tidemark::capacity::aggregate_on(&t.stack.app, today)
        .await
        .unwrap();
    rows_of(&c, today).await
}

#[tokio::test]
async fn folding_day_after_day_equals_a_full_recompute() {
    let t = TestStack::start().await;
    seed_history(&t).await;
    let today = d(2026, 11, 25);
    // Six nights, the first computing every period from history, the others folding; the
    // weeks of Nov 16 and 23 and November begin or end among them.
    let mut folded = 0;
    for day in d(2026, 11, 20).iter_days().take(6) {
        let s = tidemark::capacity::aggregate_on(&t.stack.app, day)
            .await
            .unwrap();
        folded += s["pairs_folded"].as_i64().unwrap();
    }
    let c = t.db.connect().await;
    let incremental = rows_of(&c, today).await;
    // A night holds one new (instance, day) pair per active instance.
    let last = tidemark::capacity::aggregate_on(&t.stack.app, today)
        .await
        .unwrap();
    assert_eq!(last["pairs_folded"], json!(0), "{last}");
    assert!(folded > 0);
    assert_eq!(incremental.len(), 17, "{incremental:#?}");
    assert_eq!(incremental, full_recompute(&t, today).await);
}

#[tokio::test]
async fn a_late_day_is_folded_into_its_periods() {
    let t = TestStack::start().await;
    let (a, _, _) = seed_history(&t).await;
    let today = d(2026, 11, 25);
    let c = t.db.connect().await;
    // November 18 was not collected when the job ran...
    c.execute(
        "DELETE FROM database_size_stats WHERE instance_id = $1 AND collected_date = '2026-11-18'",
        &[&a],
    )
    .await
    .unwrap();
    c.execute(
        "DELETE FROM instance_size_stats WHERE instance_id = $1 AND collected_date = '2026-11-18'",
        &[&a],
    )
    .await
    .unwrap();
    tidemark::capacity::aggregate_on(&t.stack.app, today)
        .await
        .unwrap();
    // ... and arrives later, larger than anything before (a new max for last week, for
    // November and Q4; the current week's change against last week moves too).
    database_sizes(&c, a, "orders", d(2026, 11, 18), d(2026, 11, 18), 9000, 0).await;
    database_sizes(&c, a, "logs", d(2026, 11, 18), d(2026, 11, 18), 500, 0).await;
    instance_sizes(&c, a, d(2026, 11, 18), d(2026, 11, 18), 90_000, 0, 2).await;
    let s = tidemark::capacity::aggregate_on(&t.stack.app, today)
        .await
        .unwrap();
    assert_eq!(
        (s["pairs_folded"].clone(), s["pairs_recollected"].clone()),
        (json!(1), json!(0))
    );
    let after = rows_of(&c, today).await;
    let week: i64 = scalar(
        &c,
        "SELECT max_bytes FROM database_size_aggregations WHERE database_name = 'orders' \
         AND period_type = 'weekly' AND period_start = '2026-11-16'",
    )
    .await;
    assert_eq!(week, 9000);
    assert_eq!(after, full_recompute(&t, today).await);
}

#[tokio::test]
async fn a_recollected_day_rebuilds_its_periods() {
    let t = TestStack::start().await;
    let (a, _, _) = seed_history(&t).await;
    let today = d(2026, 11, 25);
    let c = t.db.connect().await;
    tidemark::capacity::aggregate_on(&t.stack.app, today)
        .await
        .unwrap();
    // Today collected again: orders' 2200 (this week's, November's and Q4's max) is now 900
    // (a new min), and the instance has one database less.
    c.batch_execute(&format!(
        "UPDATE database_size_stats SET size_bytes = 900, collected_at = now() \
           WHERE instance_id = {a} AND database_name = 'orders' AND collected_date = '2026-11-25'; \
         UPDATE instance_size_stats SET total_size_bytes = 9000, database_count = 1, collected_at = now() \
           WHERE instance_id = {a} AND collected_date = '2026-11-25'"
    ))
    .await
    .unwrap();
    let s = tidemark::capacity::aggregate_on(&t.stack.app, today)
        .await
        .unwrap();
    assert_eq!(s["pairs_recollected"], json!(1), "{s}");
    let after = rows_of(&c, today).await;
    let week: (i64, i64) = {
        let r = c
            .query_one(
                "SELECT max_bytes, min_bytes FROM database_size_aggregations WHERE database_name = 'orders' \
                 AND period_type = 'weekly' AND period_start = '2026-11-23'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(week, (2100, 900));
    assert_eq!(after, full_recompute(&t, today).await);
}

#[tokio::test]
async fn aggregations_run_as_task_runs_and_backfill() {
    let t = TestStack::start().await;
    let app = &t.stack.app;
    let today = app.config.business_date(chrono::Utc::now());
    let c = t.db.connect().await;
    let a = t.seed_instance("pg-agg").await;
    let from = today - Days::new(10);
    database_sizes(&c, a, "app", from, today, 1000, 10).await;
    instance_sizes(&c, a, from, today, 1000, 10, 1).await;

    // A range now: one item per date, in order; each date is recorded.
    let body = json!({"start_date": (today - Days::new(4)).to_string(), "end_date": (today - Days::new(2)).to_string()});
    let r = t.post("/capacity/aggregations", Role::Operator, body).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.data()["days"], json!(3));
    let run_id = r.data()["run_id"].as_str().unwrap().to_string();
    let run = t.wait_run(&run_id).await;
    assert_eq!(run["status"], json!("completed"), "{run}");
    assert_eq!(run["task_key"], json!("aggregate_capacity"));
    assert_eq!(run["trigger"], json!("api"));
    let items = t.run_items(&run_id).await;
    assert_eq!(items.len(), 3);
    assert!(
        items.iter().all(|i| i["status"] == json!("completed")),
        "{items:?}"
    );
    let daily: i64 = scalar(
        &c,
        "SELECT count(*) FROM database_size_aggregations WHERE period_type = 'daily'",
    )
    .await;
    assert_eq!(daily, 3);

    // The schedule backfills every date after the last one aggregated, up to today.
    let s = tidemark::capacity::aggregate(app).await.unwrap();
    assert_eq!(s["days"], json!(2), "{s}");
    let dates: Vec<NaiveDate> = c
        .query("SELECT business_date FROM aggregation_days ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<NaiveDate> = (today - Days::new(4)).iter_days().take(5).collect();
    assert_eq!(dates, expected);
    // Its daily rows are the same as a run of each day alone would give.
    let yesterday: i64 = scalar(
        &c,
        &format!(
            "SELECT avg_bytes FROM database_size_aggregations WHERE period_type = 'daily' AND period_start = '{}'",
            today - Days::new(1)
        ),
    )
    .await;
    assert_eq!(yesterday, 1090);

    // One live aggregation run at a time; bad ranges are 400s; operators and up.
    c.execute(
        "INSERT INTO task_runs (task_key, trigger, status) VALUES ('aggregate_capacity', 'api', 'running')",
        &[],
    )
    .await
    .unwrap();
    let r = t
        .post("/capacity/aggregations", Role::Operator, json!({}))
        .await;
    assert_eq!((r.status, r.code()), (409, "CONFLICT"), "{r:?}");
    for (body, field) in [
        (json!({"date": (today + Days::new(1)).to_string()}), "date"),
        (
            json!({"start_date": "2024-01-01", "end_date": "2025-12-31"}),
            "end_date",
        ),
        (
            json!({"start_date": "2026-01-02", "end_date": "2026-01-01"}),
            "end_date",
        ),
        (json!({"start_date": "2026-01-02"}), "end_date"),
        (
            json!({"date": "2026-01-02", "end_date": "2026-01-03"}),
            "date",
        ),
    ] {
        let r = t
            .post("/capacity/aggregations", Role::Operator, body.clone())
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "VALIDATION_ERROR"),
            "{body}: {r:?}"
        );
        assert_eq!(r.body["error"]["field"], json!(field), "{body}: {r:?}");
    }
    let r = t
        .post("/capacity/aggregations", Role::Operator, json!({"date": 5}))
        .await;
    assert_eq!((r.status, r.code()), (400, "VALIDATION_ERROR"), "{r:?}");
    let r = t
        .post("/capacity/aggregations", Role::Viewer, json!({}))
        .await;
    assert_eq!(r.status, 403, "{r:?}");
}
