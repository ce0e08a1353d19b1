//! Scenario `collect`: 200 instances on this machine's PostgreSQL
//! and MariaDB, one collection run through the local queue, against the sequential shape
//! (the same instances collected one after another) in the same run; and the persistence
//! step alone for an instance with 200 databases.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tidemark::collect::DatabaseSize;
use tidemark::web::Role;
use tidemark_tests::TestStack;

use crate::measure::{scale, Measure};

const SCENARIO: &str = "collect";

fn ok(r: &tidemark_tests::Resp, status: u16) -> anyhow::Result<Value> {
    anyhow::ensure!(r.status == status, "unexpected answer {r:?}");
    Ok(r.data().clone())
}

pub async fn run() -> anyhow::Result<Vec<Measure>> {
    let instances = ((200.0 * scale()).round() as usize).max(2);
    let t = TestStack::start_with(vec![("TIDEMARK_COLLECT_CONCURRENCY", "5")]).await;
    let suffix = uuid_suffix();
    let mut ids = Vec::with_capacity(instances);
    let mut creds = HashMap::new();
    for (engine, user) in [("postgresql", "postgres"), ("mysql", "root")] {
        let c = ok(
            &t.post(
                "/credentials",
                Role::Admin,
                json!({"name": format!("bench-{engine}-{suffix}"), "username": user, "password": ""}),
            )
            .await,
            201,
        )?;
        creds.insert(engine, c["id"].clone());
    }
    for i in 0..instances {
        let (engine, port) = if i % 2 == 0 {
            ("postgresql", 5432)
        } else {
            ("mysql", 3306)
        };
        let r = ok(
            &t.post(
                "/instances",
                Role::Admin,
                json!({"name": format!("bench-{i}-{suffix}"), "db_type": engine, "host": "127.0.0.1",
                       "port": port, "credential_id": creds[engine]}),
            )
            .await,
            201,
        )?;
        ids.push(r["id"].as_i64().unwrap_or_default());
    }

    // The fan-out: one run through the local queue (per host serial, 5 in total).
    let started = Instant::now();
    let run = ok(
        &t.post("/collections", Role::Operator, json!({})).await,
        202,
    )?;
    let run_id = run["run_id"].as_str().unwrap_or_default().to_string();
    let finished = loop {
        let r = ok(
            &t.get(&format!("/task-runs/{run_id}"), Role::Viewer).await,
            200,
        )?;
        if r["status"] != "pending" && r["status"] != "running" {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let fanout_wall = started.elapsed();
    anyhow::ensure!(
        finished["items_failed"] == 0,
        "collection had failures: {finished}"
    );

    let c = t.db.connect().await;
    let rows = c
        .query(
            "SELECT i.host || ':' || i.port, it.started_at, it.completed_at, it.duration_ms \
             FROM task_run_items it JOIN instances i ON i.id = it.instance_id \
             WHERE it.run_id = $1::text::uuid",
            &[&run_id],
        )
        .await?;
    let per_instance: Vec<Duration> = rows
        .iter()
        .map(|r| Duration::from_millis(r.get::<_, Option<i64>>(3).unwrap_or(0) as u64))
        .collect();
    let spans: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut per_host = serde_json::Map::new();
    let groups: std::collections::BTreeSet<&String> = spans.iter().map(|s| &s.0).collect();
    for g in groups {
        let of_group: Vec<_> = spans.iter().filter(|s| &s.0 == g).cloned().collect();
        per_host.insert(g.clone(), json!(peak(&of_group)));
    }

    // The sequential shape: the same instances, one after another.
    let started = Instant::now();
    for id in &ids {
        ok(
            &t.post(
                &format!("/instances/{id}/actions/collect"),
                Role::Operator,
                json!({}),
            )
            .await,
            200,
        )?;
    }
    let serial_wall = started.elapsed();

    // Persistence alone: 200 synthetic databases of one instance, one transaction each.
    let app = &t.stack.app;
    let sizes: Vec<DatabaseSize> = (0..200)
        .map(|i| DatabaseSize {
            database_name: format!("db_{i:03}"),
            size_bytes: 1_000_000 + i * 4096,
            data_size_bytes: None,
            log_size_bytes: None,
        })
        .collect();
    let target = ids[0];
    let today = app.config.business_date(Utc::now());
    let mut persist_samples = Vec::new();
    for round in 0..30 {
        // Earlier days first (growth reads up to 30 days), then today again and again.
        let date = today - chrono::Days::new(29u64.saturating_sub(round));
        let mut client = app.db.get().await?;
        let t0 = Instant::now();
        let tx = client.transaction().await?;
        tidemark::collect::persist(&tx, target, date, Utc::now(), Some("bench"), &sizes).await?;
        tx.commit().await?;
        persist_samples.push(t0.elapsed());
    }

    Ok(vec![
        Measure::new(
            SCENARIO,
            format!("collection wall, {instances} instances"),
            vec![fanout_wall],
        )
        .baseline(vec![serial_wall])
        .extra(json!({
            "instances": instances,
            "peak_concurrency": peak(&spans),
            "peak_per_host": per_host,
            "configured_concurrency": app.config.collect_concurrency,
        })),
        Measure::new(SCENARIO, "per-instance collection", per_instance),
        Measure::new(SCENARIO, "persist 200 databases (1 tx)", persist_samples)
            .extra(json!({"statements": 7, "upsert_statements": 1})),
    ])
}

/// The most intervals open at one moment (an end meeting a start is not an overlap).
fn peak(spans: &[(String, DateTime<Utc>, DateTime<Utc>)]) -> i32 {
    let mut events: Vec<(DateTime<Utc>, i32)> = spans
        .iter()
        .flat_map(|(_, s, e)| [(*s, 1), (*e, -1)])
        .collect();
    events.sort_by_key(|(at, delta)| (*at, *delta));
    let (mut now, mut top) = (0, 0);
    for (_, d) in events {
        now += d;
        top = top.max(now);
    }
    top
}

fn uuid_suffix() -> String {
    format!("{:x}", Utc::now().timestamp_micros())
}
