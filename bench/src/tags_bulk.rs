//! Scenario `tags-bulk`: 10,000 instances x 10 tags (instances
//! scaled by `TIDEMARK_BENCH_SCALE`), over HTTP against the local stack: assign (100,000
//! links), re-assign, instance-tags, remove, remove-all. Side by side in the same run:
//! - the naive shape (per instance: read its tags, then insert each missing
//!   pair, one statement each), through one client in one transaction;
//! - the floor: one `INSERT ... SELECT FROM unnest ... ON CONFLICT DO NOTHING` of the same
//!   pairs sent straight through the `psql` binary into an empty `instance_tags`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tidemark::web::Role;
use tidemark_tests::TestStack;
use tokio::io::AsyncWriteExt;

use crate::measure::{scale, time_n, Measure};

const SCENARIO: &str = "tags-bulk";
const TAGS: i64 = 10;
const RUNS: usize = 3;

pub async fn run() -> anyhow::Result<Vec<Measure>> {
    let instances = ((10_000.0 * scale()).round() as i64).max(10);
    let t = TestStack::start().await;
    let db = t.db.connect().await;
    let instance_ids: Vec<i64> = db
        .query(
            "INSERT INTO instances (name, db_type, host, port) \
             SELECT 'bench-' || g, 'postgresql', '10.1.' || (g / 250) || '.' || (g % 250), 5432 \
             FROM generate_series(1, $1::bigint) g RETURNING id",
            &[&instances],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let tag_ids: Vec<i64> = db
        .query(
            "INSERT INTO tags (name, display_name, category) \
             SELECT 'tag-' || g, 'Tag ' || g, 'bench' FROM generate_series(1, $1::bigint) g RETURNING id",
            &[&TAGS],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let links = instance_ids.len() * tag_ids.len();
    let pairs = json!({"instance_ids": instance_ids, "tag_ids": tag_ids});
    let only_instances = json!({"instance_ids": instance_ids});
    let empty_links = || async {
        db.batch_execute("TRUNCATE instance_tags")
            .await
            .context("emptying instance_tags")
    };
    let post = |action: &'static str, body: &Value, role: Role| {
        let body = body.clone();
        let t = &t;
        async move {
            let r = t.post(&format!("/tags/bulk/{action}"), role, body).await;
            if r.status != 200 {
                bail!("{action}: {r:?}");
            }
            Ok(r)
        }
    };

    // The floor: psql, one INSERT ... unnest of the same pairs, into an empty table.
    let floor_sql = format!(
        "INSERT INTO instance_tags (instance_id, tag_id) \
         SELECT i, t FROM unnest('{{{}}}'::bigint[]) AS i CROSS JOIN unnest('{{{}}}'::bigint[]) AS t \
         ON CONFLICT DO NOTHING;\n",
        join(&instance_ids),
        join(&tag_ids)
    );
    let mut floor = Vec::new();
    for _ in 0..RUNS {
        empty_links().await?;
        let started = Instant::now();
        psql(&t.db.url, &floor_sql).await?;
        floor.push(started.elapsed());
    }

    // The naive shape, once (it is the slow one).
    empty_links().await?;
    let (naive_time, naive_statements) = naive_assign(&t, &instance_ids, &tag_ids).await?;

    // Ours, over HTTP.
    let mut assign = Vec::new();
    for _ in 0..RUNS {
        empty_links().await?;
        let started = Instant::now();
        let r = post("assign", &pairs, Role::Operator).await?;
        assign.push(started.elapsed());
        if r.data()["assigned_count"].as_u64() != Some(links as u64) {
            bail!("assign did not link every pair: {r:?}");
        }
    }
    let assign_statements = statements("assign")?;
    let reassign = time_n(RUNS, || post("assign", &pairs, Role::Operator)).await;
    let list = time_n(RUNS, || {
        post("instance-tags", &only_instances, Role::Viewer)
    })
    .await;
    let list_statements = statements("instance-tags")?;
    let mut remove = Vec::new();
    let mut remove_all = Vec::new();
    for _ in 0..RUNS {
        post("assign", &pairs, Role::Operator).await?;
        let started = Instant::now();
        post("remove", &pairs, Role::Operator).await?;
        remove.push(started.elapsed());
        post("assign", &pairs, Role::Operator).await?;
        let started = Instant::now();
        post("remove-all", &only_instances, Role::Operator).await?;
        remove_all.push(started.elapsed());
    }
    let remove_statements = statements("remove")?;
    let remove_all_statements = statements("remove-all")?;

    let size = json!({"instances": instance_ids.len(), "tags": tag_ids.len(), "links": links});
    let with = |extra: Value| {
        let mut v = size.clone();
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        v
    };
    Ok(vec![
        Measure::new(
            SCENARIO,
            "floor: psql INSERT ... unnest (same pairs)",
            floor.clone(),
        )
        .extra(with(json!({"statements": 1}))),
        Measure::new(
            SCENARIO,
            "naive: per instance read + insert each pair",
            vec![naive_time],
        )
        .extra(with(json!({"statements": naive_statements}))),
        Measure::new(
            SCENARIO,
            "assign over HTTP (baseline: naive)",
            assign.clone(),
        )
        .baseline(vec![naive_time])
        .extra(with(
            json!({"statements": assign_statements, "target_ratio": ">= 10"}),
        )),
        Measure::new(SCENARIO, "assign over HTTP (baseline: psql floor)", assign)
            .baseline(floor)
            .extra(with(
                json!({"statements": assign_statements, "target_ratio": ">= 0.67 (within 1.5x)"}),
            )),
        Measure::new(SCENARIO, "re-assign (all linked already)", reassign).extra(with(
            json!({"statements": assign_statements, "target_p50_ms": "< 500"}),
        )),
        Measure::new(SCENARIO, "instance-tags", list)
            .extra(with(json!({"statements": list_statements}))),
        Measure::new(SCENARIO, "remove (every pair)", remove)
            .extra(with(json!({"statements": remove_statements}))),
        Measure::new(SCENARIO, "remove-all", remove_all).extra(with(
            json!({"statements": remove_all_statements, "target_p50_ms": "< 500"}),
        )),
    ])
}

fn join(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// Sends `sql` through the psql binary (stdin), failing on any SQL error.
pub(crate) async fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let mut child = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning psql (is the PostgreSQL client installed?)")?;
    let mut stdin = child.stdin.take().context("psql stdin")?;
    stdin.write_all(sql.as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The naive shape: per instance, read its tags, then insert each missing pair, one
/// statement each (prepared once, one transaction: the most favourable form of it).
async fn naive_assign(
    t: &TestStack,
    instance_ids: &[i64],
    tag_ids: &[i64],
) -> anyhow::Result<(Duration, usize)> {
    let mut client = t.db.connect().await;
    let started = Instant::now();
    let tx = client.transaction().await?;
    let read = tx
        .prepare("SELECT tag_id FROM instance_tags WHERE instance_id = $1")
        .await?;
    let insert = tx
        .prepare("INSERT INTO instance_tags (instance_id, tag_id) VALUES ($1, $2)")
        .await?;
    let mut statements = 0;
    for instance in instance_ids {
        let have: Vec<i64> = tx
            .query(&read, &[instance])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        statements += 1;
        for tag in tag_ids.iter().filter(|t| !have.contains(t)) {
            tx.execute(&insert, &[instance, tag]).await?;
            statements += 1;
        }
    }
    tx.commit().await?;
    Ok((started.elapsed(), statements))
}

/// The statements the last `action` call sent, as counted by the handler (its log line).
fn statements(action: &str) -> anyhow::Result<u64> {
    let logs = tidemark_tests::captured_logs();
    let needle = format!("action=\"{action}\"");
    logs.lines()
        .rev()
        .filter(|l| l.contains("tags bulk action") && l.contains(&needle))
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("statements="))
                .and_then(|n| n.parse().ok())
        })
        .with_context(|| format!("no statement count logged for {action}"))
}
