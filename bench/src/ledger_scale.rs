//! Scenario `ledger --scale N` (N > 1): the same ledger pages over HTTP at 1x (200 instances)
//! and at Nx (200 x N instances), each with 200 databases an instance and 90 days of history
//! (`TIDEMARK_BENCH_LEDGER_DAYS` overrides), in the same run: the first page, the rare-tag page
//! (a tag carried by one instance), engine + minimum size, the page at row 30,000 x N by
//! cursor, and `include_total`. The rare-tag page's previous shape (the tag as a semi-join,
//! which walks the name index) is timed in SQL beside it and both plans are printed.

use std::time::{Duration, Instant};

use serde_json::json;
use tidemark_tests::TestStack;

use crate::ledger::{http_measure, ids, load, page, DATABASES_PER_INSTANCE, RARE_TAG};
use crate::measure::{load_average, percentile, time_n, Measure};

const SCENARIO: &str = "ledger";
const ENGINE_SIZE: &str = "limit=20&db_type=mysql&min_size_bytes=5000000000";

/// The rare-tag page as the ledger ran it before: the tag as a semi-join per row walked.
fn rare_before() -> String {
    format!(
        "SELECT d.id FROM instance_databases d JOIN instances i ON i.id = d.instance_id \
         WHERE d.is_active AND i.is_active AND i.deleted_at IS NULL \
           AND EXISTS (SELECT 1 FROM instance_tags it JOIN tags t ON t.id = it.tag_id \
                       WHERE it.instance_id = i.id AND t.name = ANY(ARRAY['{RARE_TAG}'])) \
         ORDER BY ROW(d.instance_name, d.database_name)::ledger_name_key, d.id LIMIT 21"
    )
}

/// The same page as the ledger runs it now: the tag resolved to its instances first.
fn rare_after(instance_ids: &[i64]) -> String {
    let ids: Vec<String> = instance_ids.iter().map(i64::to_string).collect();
    format!(
        "SELECT d.id FROM instance_databases d JOIN instances i ON i.id = d.instance_id \
         WHERE d.is_active AND i.is_active AND i.deleted_at IS NULL \
           AND d.instance_id = ANY(ARRAY[{}]::bigint[]) \
         ORDER BY ROW(d.instance_name, d.database_name)::ledger_name_key, d.id LIMIT 21",
        ids.join(",")
    )
}

async fn explain(pg: &tokio_postgres::Client, sql: &str) -> anyhow::Result<String> {
    let rows = pg
        .query(&format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"), &[])
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The cursor of the page that starts after `deep` rows, walked 200 at a time.
async fn cursor_after(t: &TestStack, deep: i64) -> anyhow::Result<String> {
    let mut cursor = String::new();
    let mut walked = 0;
    while walked < deep {
        let q = if cursor.is_empty() {
            "limit=200".to_string()
        } else {
            format!("limit=200&cursor={cursor}")
        };
        let p = page(t, &q).await?;
        walked += ids(&p).len() as i64;
        cursor = p["next_cursor"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no cursor after {walked} rows"))?
            .to_string();
    }
    Ok(cursor)
}

/// One fleet's pages: (measure name, samples, baseline).
type Pages = Vec<(String, Vec<Duration>, Option<Vec<Duration>>)>;

async fn fleet(
    instances: i64,
    days: i64,
    label: &str,
) -> anyhow::Result<(Pages, serde_json::Value)> {
    let t = TestStack::start().await;
    let pg = t.db.connect().await;
    let started = Instant::now();
    let rows = load(&pg, instances, days).await?;
    let load_s = started.elapsed().as_secs_f64();
    let size: i64 = pg
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await?
        .get(0);
    eprintln!(
        "ledger {label}: {rows} history rows loaded in {load_s:.0} s, database {} MB; uptime: {}",
        size / 1_048_576,
        load_average()
    );
    let deep = 30_000 * instances / 200;
    let mut out: Pages = Vec::new();
    out.push((
        "first page".into(),
        http_measure(&t, "limit=20").await?,
        None,
    ));

    let rare_q = format!("limit=20&tag={RARE_TAG}");
    let rare_page = page(&t, &rare_q).await?;
    anyhow::ensure!(ids(&rare_page).len() == 20, "the rare-tag page is short");
    let rare = http_measure(&t, &rare_q).await?;
    let tagged: Vec<i64> = pg
        .query(
            "SELECT it.instance_id FROM instance_tags it JOIN tags t ON t.id = it.tag_id WHERE t.name = $1",
            &[&RARE_TAG],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let before_sql = rare_before();
    let before = time_n(5, || pg.query(&before_sql, &[])).await;
    eprintln!(
        "ledger {label}: rare-tag page BEFORE (semi-join):\n{}",
        explain(&pg, &before_sql).await?
    );
    eprintln!(
        "ledger {label}: rare-tag page AFTER (tag resolved to its instances):\n{}",
        explain(&pg, &rare_after(&tagged)).await?
    );
    out.push(("rare-tag page (1 instance)".into(), rare, Some(before)));
    out.push((
        "engine + min size page".into(),
        http_measure(&t, ENGINE_SIZE).await?,
        None,
    ));
    let cursor = cursor_after(&t, deep).await?;
    out.push((
        format!("page at row {deep} by cursor"),
        http_measure(&t, &format!("limit=20&cursor={cursor}")).await?,
        None,
    ));
    out.push((
        "first page with include_total".into(),
        http_measure(&t, "limit=20&include_total=true").await?,
        None,
    ));
    eprintln!(
        "ledger {label}: include_total plan:\n{}",
        explain(
            &pg,
            "SELECT count(*) FROM instance_databases d JOIN instances i ON i.id = d.instance_id \
             WHERE d.is_active AND i.is_active AND i.deleted_at IS NULL"
        )
        .await?
    );
    let info = json!({
        "instances": instances,
        "databases": instances * DATABASES_PER_INSTANCE,
        "history_rows": rows,
        "load_s": load_s.round(),
        "db_mb": size / 1_048_576,
        "loadavg": load_average(),
    });
    drop(pg);
    // The scratch database is dropped with the stack.
    drop(t);
    Ok((out, info))
}

pub async fn run(scale: f64) -> anyhow::Result<Vec<Measure>> {
    let days: i64 = std::env::var("TIDEMARK_BENCH_LEDGER_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(90);
    let big = (200.0 * scale).round() as i64;
    let (small_pages, small_info) = fleet(200, days, "1x").await?;
    let (big_pages, big_info) = fleet(big, days, &format!("{scale}x")).await?;
    let p50 = |s: &[Duration]| percentile(s, 0.5);
    let mut out = Vec::new();
    for (i, ((name, samples, baseline), (_, small, _))) in
        big_pages.into_iter().zip(small_pages).enumerate()
    {
        let vs_1x = if p50(&small) > 0.0 {
            p50(&samples) / p50(&small)
        } else {
            0.0
        };
        let mut extra = json!({
            "p99_ms": (percentile(&samples, 0.99) * 1000.0).round() / 1000.0,
            "p50_1x_ms": (p50(&small) * 1000.0).round() / 1000.0,
            "p99_1x_ms": (percentile(&small, 0.99) * 1000.0).round() / 1000.0,
            "vs_1x": (vs_1x * 100.0).round() / 100.0,
        });
        if i == 0 {
            extra["fleet_1x"] = small_info.clone();
            extra["fleet"] = big_info.clone();
        }
        let mut m = Measure::new(SCENARIO, format!("{scale}x: {name}"), samples).extra(extra);
        if let Some(b) = baseline {
            m = m.baseline(b);
        }
        out.push(m);
    }
    Ok(out)
}
