//! Scenario `aggregate`: the nightly capacity aggregation (daily, weekly, monthly, quarterly
//! aggregates of every database and instance) at 1x (200 instances x 200 databases) with 30
//! and 365 days of history, and at `--scale N` with 30 days. Per fleet: the first run, which
//! computes every period from history (the shape of the job before it was incremental), then
//! three nights that each add one collected day and fold it in. Baseline in the same run: the
//! previous job's statements run once per instance (the per-instance loop of the system we
//! replace), timed on a sample of instances inside a rolled-back transaction and multiplied
//! out to the fleet.

use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use serde_json::json;
use tidemark::capacity::aggregate::sql::{self, DATABASES, INSTANCES};
use tidemark::capacity::periods_for;
use tidemark_tests::TestStack;

use crate::measure::{load_average, percentile, scale, Measure};

const SCENARIO: &str = "aggregate";
const DATABASES_PER_INSTANCE: i64 = 200;
/// Nights measured per fleet (`TIDEMARK_BENCH_AGG_NIGHTS`, default 3).
fn night_count() -> u64 {
    env_list("TIDEMARK_BENCH_AGG_NIGHTS", &[3])[0].max(1)
}

/// A comma-separated list of numbers from the environment, or `default`.
fn env_list(name: &str, default: &[u64]) -> Vec<u64> {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect::<Vec<u64>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}
/// Instances the per-instance loop is timed on.
const LOOP_SAMPLE: i64 = 20;

/// `days` of history ending `last` for `instances` x 200 databases, and the instance totals.
async fn load(
    pg: &tokio_postgres::Client,
    instances: i64,
    first: NaiveDate,
    last: NaiveDate,
) -> anyhow::Result<i64> {
    pg.batch_execute("SET synchronous_commit = off").await?;
    if instances > 0 {
        pg.execute(
            "INSERT INTO instances (name, db_type, host, port)
             SELECT 'inst-' || lpad(n::text, 5, '0'), 'postgresql', '10.' || (n / 250) || '.' || (n % 250) || '.1', 5432
             FROM generate_series(1, $1::bigint) n ON CONFLICT DO NOTHING",
            &[&instances],
        )
        .await?;
    }
    pg.execute(
        "SELECT tidemark_ensure_month_partition(t, m::date)
         FROM generate_series(date_trunc('month', $1::date), $2::date, interval '1 month') m,
              unnest(ARRAY['database_size_stats', 'instance_size_stats']) t",
        &[&first, &last],
    )
    .await?;
    let mut rows = 0u64;
    let mut from = 1i64;
    let n: i64 = pg
        .query_one("SELECT count(*) FROM instances", &[])
        .await?
        .get(0);
    while from <= n {
        let to = (from + 49).min(n);
        rows += pg
            .execute(
                "INSERT INTO database_size_stats (instance_id, database_name, collected_date, size_bytes, collected_at)
                 SELECT i.id, 'db_' || lpad(k::text, 4, '0'), g.day::date,
                        (i.id * 200 + k) % 997 * 10485760 + ((i.id + k) % 13) * 65536 * (g.day::date - '2020-01-01'::date),
                        g.day + interval '3 hours'
                 FROM generate_series($3::date, $4::date, interval '1 day') g(day),
                      instances i, generate_series(1, $5::bigint) k
                 WHERE i.id BETWEEN $1 AND $2",
                &[&from, &to, &first, &last, &DATABASES_PER_INSTANCE],
            )
            .await?;
        from = to + 1;
    }
    pg.execute(
        "INSERT INTO instance_size_stats (instance_id, collected_date, total_size_bytes, database_count, collected_at)
         SELECT instance_id, collected_date, sum(size_bytes), count(*), max(collected_at)
         FROM database_size_stats WHERE collected_date BETWEEN $1 AND $2
         GROUP BY instance_id, collected_date",
        &[&first, &last],
    )
    .await?;
    pg.batch_execute("ANALYZE instances, database_size_stats, instance_size_stats")
        .await?;
    Ok(rows as i64)
}

/// The previous job's statements for one instance (every period from history), in a
/// transaction rolled back; the mean time per instance over the sample.
async fn loop_per_instance(
    pg: &mut tokio_postgres::Client,
    today: NaiveDate,
    instances: i64,
) -> anyhow::Result<Duration> {
    let periods = periods_for(today);
    let kinds: Vec<&str> = periods.iter().map(|p| p.kind.as_str()).collect();
    let starts: Vec<NaiveDate> = periods.iter().map(|p| p.start).collect();
    let ends: Vec<NaiveDate> = periods.iter().map(|p| p.end).collect();
    let prev_starts: Vec<NaiveDate> = periods.iter().map(|p| p.previous().start).collect();
    let prev_ends: Vec<NaiveDate> = periods.iter().map(|p| p.previous().end).collect();
    let held = vec![false; periods.len()];
    let from = prev_starts.iter().min().copied().unwrap_or(today);
    let one = |level| {
        sql::compute(level).replace(
            "WHERE s.collected_date BETWEEN $7 AND $8",
            "WHERE s.instance_id = $9 AND s.collected_date BETWEEN $7 AND $8",
        )
    };
    let statements = [one(&DATABASES), one(&INSTANCES)];
    let tx = pg.transaction().await?;
    let sample = LOOP_SAMPLE.min(instances);
    let step = (instances / sample).max(1);
    let started = Instant::now();
    for k in 0..sample {
        let id = 1 + k * step;
        for s in &statements {
            tx.execute(
                s.as_str(),
                &[
                    &kinds,
                    &starts,
                    &ends,
                    &prev_starts,
                    &prev_ends,
                    &held,
                    &from,
                    &today,
                    &id,
                ],
            )
            .await?;
        }
    }
    let per = started.elapsed() / sample as u32;
    tx.rollback().await?;
    Ok(per)
}

struct Fleet {
    instances: i64,
    days: u64,
}

/// One fleet: load, first run, three nights, the loop.
async fn fleet(f: &Fleet) -> anyhow::Result<(Measure, f64)> {
    // The first run reads every period from history: longer than the API's statement timeout
    // on a big fleet.
    let t = TestStack::start_with(vec![("TIDEMARK_DB_STATEMENT_TIMEOUT_SECS", "3600")]).await;
    let app = &t.stack.app;
    let mut pg = t.db.connect().await;
    let today = app.config.business_date(chrono::Utc::now());
    let (first, last) = (today - Days::new(f.days), today - Days::new(1));
    let started = Instant::now();
    let rows = load(&pg, f.instances, first, last).await?;
    let load_s = started.elapsed().as_secs_f64();
    let size: String = pg
        .query_one(
            "SELECT pg_size_pretty(pg_database_size(current_database()))",
            &[],
        )
        .await?
        .get(0);
    eprintln!(
        "aggregate: {} instances, {} days: {rows} rows in {load_s:.1} s ({size})",
        f.instances, f.days
    );

    // The first run: every period from history (what every night cost before).
    let started = Instant::now();
    let s = tidemark::capacity::aggregate_on(app, last).await?;
    let full = started.elapsed();
    eprintln!("aggregate: first run {:.1} s: {s}", full.as_secs_f64());

    // Nights: the day's collection lands, then the aggregation folds it.
    let mut nights = Vec::new();
    let mut written = 0;
    let nights_n = night_count();
    for k in 0..nights_n {
        let day = today + Days::new(k);
        load(&pg, 0, day, day).await?;
        let started = Instant::now();
        let s = tidemark::capacity::aggregate_on(app, day).await?;
        nights.push(started.elapsed());
        written =
            s["database_rows"].as_u64().unwrap_or(0) + s["instance_rows"].as_u64().unwrap_or(0);
        eprintln!(
            "aggregate: night {day} {:.1} s: {s}",
            nights[k as usize].as_secs_f64()
        );
    }
    let per_instance =
        loop_per_instance(&mut pg, today + Days::new(nights_n - 1), f.instances).await?;
    let loop_total = per_instance * f.instances as u32;
    let night_ms = percentile(&nights, 0.5);
    let m = Measure::new(
        SCENARIO,
        format!("night, {} instances, {} days", f.instances, f.days),
        nights,
    )
    .baseline(vec![loop_total])
    .extra(json!({
        "history_rows": rows,
        "load_s": (load_s * 10.0).round() / 10.0,
        "db_size": size,
        "rows_written_per_night": written,
        "first_run_from_history_s": (full.as_secs_f64() * 10.0).round() / 10.0,
        "loop_ms_per_instance": (per_instance.as_secs_f64() * 10_000.0).round() / 10.0,
        "baseline": format!("previous job's statements per instance, timed on {LOOP_SAMPLE} instances x {}", f.instances),
        "load_average": load_average(),
    }));
    drop(pg);
    drop(t);
    Ok((m, night_ms))
}

pub async fn run() -> anyhow::Result<Vec<Measure>> {
    let scale = scale();
    // Below 1 (a quick check of the scenario) the 1x fleet shrinks too.
    let base = ((200.0 * scale.min(1.0)).round() as i64).max(2);
    // History lengths at 1x (`TIDEMARK_BENCH_AGG_DAYS`, default 30,365) and at the scaled
    // fleet (`TIDEMARK_BENCH_AGG_SCALED_DAYS`, default 30).
    let mut fleets: Vec<Fleet> = env_list("TIDEMARK_BENCH_AGG_DAYS", &[30, 365])
        .into_iter()
        .map(|days| Fleet {
            instances: base,
            days,
        })
        .collect();
    if scale > 1.0 {
        fleets.push(Fleet {
            instances: (200.0 * scale).round() as i64,
            days: env_list("TIDEMARK_BENCH_AGG_SCALED_DAYS", &[30])[0],
        });
    }
    let mut out = Vec::new();
    let mut nights = Vec::new();
    for f in &fleets {
        let (m, night) = fleet(f).await?;
        out.push(m);
        nights.push(night);
    }
    // History length: the second 1x fleet against the first; fleet size: N x against 1x.
    let ones = fleets.iter().filter(|f| f.instances == base).count();
    let mut summary = json!({});
    if ones > 1 {
        summary["history_longer_vs_shorter"] =
            json!((nights[1] / nights[0] * 100.0).round() / 100.0);
    }
    if let Some(big) = nights.get(ones).filter(|_| scale > 1.0) {
        summary["scale_vs_1x"] = json!((big / nights[0] * 100.0).round() / 100.0);
        summary["scale"] = json!(scale);
    }
    eprintln!("aggregate: {summary}");
    if let Some(m) = out.first_mut() {
        if let Some(o) = m.extra.as_object_mut() {
            o.insert("summary".into(), summary);
        }
    }
    Ok(out)
}
