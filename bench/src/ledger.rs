//! Scenario `ledger`: 200 instances x 200 databases x 365 days of
//! history (14.6 M `database_size_stats` rows at scale 1), generated in SQL. Over HTTP against
//! the local stack: the first page, a filtered page, the page at row 30,000 by offset and by
//! cursor, and `include_total`. Side by side, timed in SQL: the naive 'before' shape (latest
//! size by `max(collected_at)` over all history, joined back, plus its count). Then the first
//! page again over a fresh database holding only 30 days: history must not change it.
//! With `--scale N` (N > 1) the scenario is `ledger_scale`: 1x and Nx pages in one run.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tidemark::web::Role;
use tidemark_tests::TestStack;

use crate::measure::{percentile, scale, time_n, Measure};

const SCENARIO: &str = "ledger";
pub(crate) const DATABASES_PER_INSTANCE: i64 = 200;
const DEEP_ROW: i64 = 30_000;
const SAMPLES: usize = 200;
/// The tag of one instance in the fleet (`load`).
pub(crate) const RARE_TAG: &str = "rare";

/// Instances, tags, inventory, `days` of history ending today and the latest columns, as
/// collection leaves them. Returns the number of history rows.
pub(crate) async fn load(
    pg: &tokio_postgres::Client,
    instances: i64,
    days: i64,
) -> anyhow::Result<i64> {
    let started = Instant::now();
    pg.batch_execute("SET synchronous_commit = off").await?;
    pg.execute(
        "INSERT INTO instances (name, db_type, host, port)
         SELECT 'inst-' || lpad(n::text, 4, '0'), CASE WHEN n % 2 = 0 THEN 'mysql' ELSE 'postgresql' END,
                '10.' || (n / 250) || '.' || (n % 250) || '.1', CASE WHEN n % 2 = 0 THEN 3306 ELSE 5432 END
         FROM generate_series(1, $1::bigint) n",
        &[&instances],
    )
    .await?;
    pg.batch_execute(
        "INSERT INTO tags (name, display_name, category)
           SELECT 'team-' || k, 'Team ' || k, 'team' FROM generate_series(0, 6) k;
         INSERT INTO instance_tags (instance_id, tag_id)
           SELECT i.id, t.id FROM instances i JOIN tags t ON t.name = 'team-' || (i.id % 7);",
    )
    .await?;
    // The rare tag: one instance, in the middle of the name order.
    pg.execute(
        "WITH t AS (INSERT INTO tags (name, display_name, category) VALUES ($1, 'Rare', 'team') RETURNING id)
         INSERT INTO instance_tags (instance_id, tag_id)
         SELECT i.id, t.id FROM instances i, t WHERE i.name = 'inst-' || lpad(($2::bigint / 2 + 1)::text, 4, '0')",
        &[&RARE_TAG, &instances],
    )
    .await?;
    pg.execute(
        "INSERT INTO instance_databases (instance_id, database_name, first_seen_date)
         SELECT i.id, 'db_' || lpad(k::text, 4, '0'), current_date - ($2::int - 1)
         FROM instances i, generate_series(1, $1::bigint) k ORDER BY i.id, k",
        &[&DATABASES_PER_INSTANCE, &(days as i32)],
    )
    .await?;
    // Every month of the range gets its partition first, so no row lands in DEFAULT.
    pg.execute(
        "SELECT tidemark_ensure_month_partition('database_size_stats', m::date)
         FROM generate_series(date_trunc('month', current_date - ($1::int - 1)), current_date, interval '1 month') m",
        &[&(days as i32)],
    )
    .await?;
    // Ten instances per statement, rows in primary-key order so every partition's index is
    // appended to rather than split at random.
    let mut rows = 0u64;
    let mut first = 1i64;
    while first <= instances {
        let last = (first + 9).min(instances);
        rows += pg
            .execute(
                "INSERT INTO database_size_stats (instance_id, database_name, collected_date, size_bytes,
                                                  data_size_bytes, log_size_bytes, collected_at)
                 SELECT d.instance_id, d.database_name, g.day::date,
                        d.base + d.growth * (g.day::date - (current_date - ($3::int - 1))),
                        (d.base + d.growth * (g.day::date - (current_date - ($3::int - 1)))) / 10 * 9,
                        (d.base + d.growth * (g.day::date - (current_date - ($3::int - 1)))) / 10,
                        g.day + interval '3 hours'
                 FROM (SELECT d.instance_id, d.database_name, (d.id % 997 + 1) * 10485760 AS base,
                              (d.id % 13) * 65536 AS growth
                       FROM instance_databases d JOIN instances i ON i.id = d.instance_id
                       WHERE i.id BETWEEN $1 AND $2 ORDER BY d.instance_id, d.database_name) d
                 CROSS JOIN LATERAL generate_series(current_date - ($3::int - 1), current_date, interval '1 day') g(day)",
                &[&first, &last, &(days as i32)],
            )
            .await?;
        eprintln!(
            "ledger: loaded instances {first}..{last} ({rows} rows, {:.1} s)",
            started.elapsed().as_secs_f64()
        );
        first = last + 1;
    }
    pg.execute(
        "UPDATE instance_databases SET
             latest_size_bytes = (id % 997 + 1) * 10485760 + (id % 13) * 65536 * ($1::int - 1),
             latest_collected_at = current_date + interval '3 hours',
             latest_collected_date = current_date,
             growth_bytes_per_day = (id % 13) * 65536",
        &[&(days as i32)],
    )
    .await?;
    // One statement each: VACUUM cannot run in the implicit transaction of a batch.
    pg.batch_execute("VACUUM ANALYZE instances, tags, instance_tags, instance_databases")
        .await?;
    pg.batch_execute("ANALYZE database_size_stats").await?;
    let default_rows: i64 = pg
        .query_one("SELECT count(*) FROM database_size_stats_default", &[])
        .await?
        .get(0);
    anyhow::ensure!(default_rows == 0, "{default_rows} rows landed in DEFAULT");
    eprintln!(
        "ledger: {instances} instances x {DATABASES_PER_INSTANCE} databases x {days} days = {rows} rows loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(rows as i64)
}

pub(crate) async fn page(t: &TestStack, query: &str) -> anyhow::Result<Value> {
    let r = t
        .get(&format!("/databases/ledger?{query}"), Role::Viewer)
        .await;
    anyhow::ensure!(r.status == 200, "ledger {query}: {r:?}");
    Ok(r.data().clone())
}

/// Warms the path, then times `SAMPLES` requests of it.
pub(crate) async fn http_measure(t: &TestStack, query: &str) -> anyhow::Result<Vec<Duration>> {
    for _ in 0..10 {
        page(t, query).await?;
    }
    Ok(time_n(SAMPLES, || page(t, query)).await)
}

pub(crate) fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["id"].as_i64()).collect())
        .unwrap_or_default()
}

/// The naive 'before' shape: the latest row per database found by grouping all history,
/// joined back to history, then the page; plus its count.
macro_rules! before_from {
    () => {
        "FROM instance_databases d JOIN instances i ON i.id = d.instance_id
    LEFT JOIN (SELECT instance_id, database_name, max(collected_at) AS latest_at
               FROM database_size_stats GROUP BY instance_id, database_name) latest
      ON latest.instance_id = d.instance_id AND latest.database_name = d.database_name
    LEFT JOIN database_size_stats s
      ON s.instance_id = latest.instance_id AND s.database_name = latest.database_name
     AND s.collected_at = latest.latest_at
    WHERE d.is_active AND i.is_active AND i.deleted_at IS NULL"
    };
}
const BEFORE_PAGE: &str = concat!(
    "SELECT d.id, d.database_name, i.db_type, i.id, i.name, i.host, s.size_bytes, s.collected_at ",
    before_from!(),
    " ORDER BY i.name, d.database_name LIMIT 20 OFFSET 0"
);
const BEFORE_COUNT: &str = concat!("SELECT count(*) ", before_from!());

pub async fn run() -> anyhow::Result<Vec<Measure>> {
    let scale = scale();
    if scale > 1.0 {
        return crate::ledger_scale::run(scale).await;
    }
    // At least two: the filtered page needs a MySQL instance tagged team-2 (instance 2).
    let instances = ((200.0 * scale).round() as i64).max(2);
    let total_rows = instances * DATABASES_PER_INSTANCE;
    // The deep page sits at row 30,000, or three quarters in when the fleet is smaller.
    let deep = DEEP_ROW.min(total_rows * 3 / 4 / 200 * 200).max(200);
    let mut out = Vec::new();

    let t = TestStack::start().await;
    let pg = t.db.connect().await;
    let load_started = Instant::now();
    let history_rows = load(&pg, instances, 365).await?;
    let load_s = load_started.elapsed().as_secs_f64();

    let first = http_measure(&t, "limit=20").await?;
    let filtered = http_measure(&t, "limit=20&db_type=mysql&tag=team-2").await?;
    anyhow::ensure!(
        !ids(&page(&t, "limit=20&db_type=mysql&tag=team-2").await?).is_empty(),
        "the filtered page is empty"
    );
    let by_offset = http_measure(&t, &format!("limit=20&page={}", deep / 20 + 1)).await?;
    // The cursor after `deep` rows, walked 200 at a time.
    let mut cursor = String::new();
    let mut walked = 0;
    while walked < deep {
        let q = if cursor.is_empty() {
            "limit=200".to_string()
        } else {
            format!("limit=200&cursor={cursor}")
        };
        let p = page(&t, &q).await?;
        walked += ids(&p).len() as i64;
        cursor = p["next_cursor"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no cursor after {walked} rows"))?
            .to_string();
    }
    let cursor_query = format!("limit=20&cursor={cursor}");
    anyhow::ensure!(
        ids(&page(&t, &cursor_query).await?)
            == ids(&page(&t, &format!("limit=20&page={}", deep / 20 + 1)).await?),
        "the cursor page and the offset page at row {deep} differ"
    );
    let by_cursor = http_measure(&t, &cursor_query).await?;
    let with_total = http_measure(&t, "limit=20&include_total=true").await?;

    // The baseline is slow at full scale: a few runs say enough.
    let baseline_runs = if scale >= 0.5 { 3 } else { 10 };
    let mut before = Vec::new();
    for _ in 0..baseline_runs {
        let started = Instant::now();
        pg.query(BEFORE_PAGE, &[]).await?;
        pg.query_one(BEFORE_COUNT, &[]).await?;
        before.push(started.elapsed());
    }
    drop(pg);
    drop(t);

    // The same first page over a fresh database with 30 days of history.
    let t30 = TestStack::start().await;
    let pg30 = t30.db.connect().await;
    let rows_30 = load(&pg30, instances, 30).await?;
    let first_30 = http_measure(&t30, "limit=20").await?;
    drop(pg30);
    drop(t30);

    let p50 = |s: &[Duration]| percentile(s, 0.5);
    let history_factor = if p50(&first_30) > 0.0 {
        p50(&first) / p50(&first_30)
    } else {
        0.0
    };
    let base =
        json!({"instances": instances, "databases": total_rows, "history_rows": history_rows});
    out.push(
        Measure::new(SCENARIO, "first page (limit 20), 365 days", first)
            .baseline(before)
            .extra(json!({
                "history_rows": history_rows,
                "load_s": (load_s * 10.0).round() / 10.0,
                "vs_30_days": (history_factor * 100.0).round() / 100.0,
                "baseline": "before shape: max(collected_at) over all history + count, SQL",
            })),
    );
    out.push(
        Measure::new(SCENARIO, "first page (limit 20), 30 days", first_30)
            .extra(json!({"history_rows": rows_30})),
    );
    out.push(Measure::new(SCENARIO, "filtered page (db_type + tag)", filtered).extra(base.clone()));
    out.push(
        Measure::new(SCENARIO, format!("page at row {deep} by offset"), by_offset)
            .extra(base.clone()),
    );
    out.push(
        Measure::new(SCENARIO, format!("page at row {deep} by cursor"), by_cursor)
            .extra(base.clone()),
    );
    out.push(Measure::new(SCENARIO, "first page with include_total", with_total).extra(base));
    Ok(out)
}
