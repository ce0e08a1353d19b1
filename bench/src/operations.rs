//! Scenario `operations`: running a real fleet.
//! - Import 10,000 instances from CSV over HTTP (ten files of 1,000 rows, the most one
//!   request takes; scaled by `TIDEMARK_BENCH_SCALE`), with the statements it sent, beside
//!   the floor: a psql `COPY` of the same rows into `instances`. Target: within 2x.
//! - Check 200 saved instances in one request (per-host serialisation, bounded concurrency)
//!   beside the naive shape: one request per instance, one after the other.
//! - Evaluate every alert rule over the `ledger` scenario's history (`alerts.rs`): 40,000
//!   databases, 14.6 M rows, against the per-database loop. Target: under 2 s.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tidemark::web::Role;
use tidemark_tests::scratch::{MY_PORT, PG_PORT};
use tidemark_tests::TestStack;

use crate::measure::{scale, Measure};
use crate::tags_bulk::psql;

const SCENARIO: &str = "operations";
const RUNS: usize = 3;
const FILE_ROWS: usize = 1000;
const CHECKS: usize = 200;

/// Row `i` of the fleet, as CSV (the import's columns, in the `COPY`'s order).
fn row(i: usize) -> String {
    format!(
        "ops-{i},postgresql,10.{}.{}.{},5432,prefer,Imported {i}\n",
        i / 62_500,
        i / 250 % 250,
        i % 250 + 1
    )
}

pub async fn run() -> anyhow::Result<Vec<Measure>> {
    let n = ((10_000.0 * scale()).round() as usize).max(10);
    let t = TestStack::start().await;
    let db = t.db.connect().await;
    let rows: Vec<String> = (0..n).map(row).collect();
    let header = "name,db_type,host,port,tls_mode,description\n";
    let files: Vec<Vec<u8>> = rows
        .chunks(FILE_ROWS)
        .map(|c| format!("{header}{}", c.concat()).into_bytes())
        .collect();
    let empty = || async {
        db.batch_execute("TRUNCATE instances CASCADE")
            .await
            .context("emptying instances")
    };

    // The floor: psql COPY of the same rows.
    let copy = format!(
        "COPY instances (name, db_type, host, port, tls_mode, description) FROM STDIN WITH (FORMAT csv);\n{}\\.\n",
        rows.concat()
    );
    let mut floor = Vec::new();
    for _ in 0..RUNS {
        empty().await?;
        let started = Instant::now();
        psql(&t.db.url, &copy).await?;
        floor.push(started.elapsed());
    }

    // Ours: the CSV files over HTTP.
    let mut import = Vec::new();
    let mut statements = 0;
    let mut per_file = Vec::new();
    for _ in 0..RUNS {
        empty().await?;
        statements = 0;
        per_file.clear();
        let started = Instant::now();
        for file in &files {
            let r = t
                .post_raw(
                    "/instances/import",
                    Role::Operator,
                    "text/csv",
                    file.clone(),
                )
                .await;
            if r.status != 201 {
                bail!("import: {} {}", r.status, r.body["error"]);
            }
            let s = r.data()["statements"].as_u64().unwrap_or(0);
            statements += s;
            per_file.push(s);
        }
        import.push(started.elapsed());
    }
    let created: i64 = db
        .query_one("SELECT count(*) FROM instances", &[])
        .await?
        .get(0);
    if created != n as i64 {
        bail!("import created {created} of {n}");
    }
    let size = json!({"instances": n, "files": files.len(), "statements": statements,
                      "statements_per_file": per_file});

    let (checks, naive_checks, check_extra) = checks(&t).await?;

    let mut measures = vec![
        Measure::new(SCENARIO, "floor: psql COPY into instances", floor.clone())
            .extra(json!({"instances": n, "statements": 1})),
        Measure::new(
            SCENARIO,
            "CSV import over HTTP (baseline: psql COPY)",
            import,
        )
        .baseline(floor)
        .extra(merge(&size, json!({"target_ratio": ">= 0.5 (within 2x)"}))),
        Measure::new(
            SCENARIO,
            "naive: check one instance per request",
            vec![naive_checks],
        )
        .extra(check_extra.clone()),
        Measure::new(
            SCENARIO,
            "check 200 instances in one request (baseline: naive)",
            checks,
        )
        .baseline(vec![naive_checks])
        .extra(check_extra),
    ];
    // Its own stack and database: the ledger scenario's history, loaded once.
    measures.extend(crate::alerts::run().await?);
    Ok(measures)
}

fn merge(a: &Value, b: Value) -> Value {
    let mut v = a.clone();
    if let (Some(o), Some(e)) = (v.as_object_mut(), b.as_object()) {
        o.extend(e.clone());
    }
    v
}

/// 200 saved instances of this machine's PostgreSQL and MariaDB (two host:port pairs, so
/// the per-host rule serialises each half), checked in one request and one by one.
async fn checks(t: &TestStack) -> anyhow::Result<(Vec<Duration>, Duration, Value)> {
    let pg = t.credential("postgres").await;
    let my = t.credential("root").await;
    let name = |id: i64| async move {
        let r = t.get(&format!("/credentials/{id}"), Role::Admin).await;
        r.data()["name"].as_str().unwrap_or_default().to_string()
    };
    let (pg, my) = (name(pg).await, name(my).await);
    let rows: Vec<Value> = (0..CHECKS)
        .map(|i| {
            let (db_type, port, credential) = if i % 2 == 0 {
                ("postgresql", PG_PORT, &pg)
            } else {
                ("mysql", MY_PORT, &my)
            };
            json!({"name": format!("chk-{i}"), "db_type": db_type, "host": "127.0.0.1",
                   "port": port, "credential": credential, "tls_mode": "disable"})
        })
        .collect();
    let r = t
        .post("/instances/batch", Role::Admin, json!({"instances": rows}))
        .await;
    if r.status != 201 {
        bail!("creating the checked instances: {r:?}");
    }
    let ids: Vec<i64> = r.data()["rows"]
        .as_array()
        .context("rows")?
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    let mut batch = Vec::new();
    let mut ok = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        let r = t
            .post(
                "/instances/actions/check",
                Role::Operator,
                json!({"instance_ids": ids}),
            )
            .await;
        batch.push(started.elapsed());
        ok = r.data()["summary"]["ok"].as_u64().unwrap_or(0);
    }
    if ok != CHECKS as u64 {
        bail!("only {ok} of {CHECKS} checks succeeded");
    }
    let started = Instant::now();
    for id in &ids {
        t.post(
            &format!("/instances/{id}/actions/check"),
            Role::Operator,
            json!({}),
        )
        .await;
    }
    let naive = started.elapsed();
    Ok((
        batch,
        naive,
        json!({"instances": CHECKS, "host_ports": 2, "ok": ok}),
    ))
}
