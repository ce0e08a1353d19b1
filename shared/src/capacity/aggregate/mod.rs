//! The daily aggregation (function `aggregate`), incremental: a period is computed from raw
//! history once, the first time a run needs it; afterwards each run folds in only the
//! (instance, day) pairs of history it does not hold yet (`sql::fold`), so a night's cost is
//! that of one day of history whatever the length of the periods or of the history. A day
//! collected late is a new pair like any other; an (instance, day) collected again after it
//! was folded has that instance's periods around it rebuilt from its own history. Daily
//! periods, one day each, are always computed from raw history.
//!
//! `run` holds the task-run side: which business dates a run covers (the schedule backfills
//! the days it missed), its items, and `POST /capacity/aggregations`.

pub mod run;
pub mod sql;

use chrono::NaiveDate;
use deadpool_postgres::Transaction;
use serde_json::{json, Value};
use tokio_postgres::types::ToSql;

use super::periods::{periods_for, Period, PeriodKind};
use crate::App;
use sql::{Fold, Level, DATABASES, INSTANCES};

pub use run::{aggregate, start};

/// Periods as the parallel arrays the statements take.
struct Arrays {
    kinds: Vec<&'static str>,
    starts: Vec<NaiveDate>,
    ends: Vec<NaiveDate>,
    prev_starts: Vec<NaiveDate>,
    prev_ends: Vec<NaiveDate>,
}

impl Arrays {
    fn new<'a>(periods: impl IntoIterator<Item = &'a Period>) -> Self {
        let mut a = Arrays {
            kinds: vec![],
            starts: vec![],
            ends: vec![],
            prev_starts: vec![],
            prev_ends: vec![],
        };
        for p in periods {
            let prev = p.previous();
            a.kinds.push(p.kind.as_str());
            a.starts.push(p.start);
            a.ends.push(p.end);
            a.prev_starts.push(prev.start);
            a.prev_ends.push(prev.end);
        }
        a
    }
}

/// Rows written by one level's statements.
async fn execute(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> anyhow::Result<u64> {
    Ok(tx.execute(sql, params).await?)
}

/// Periods from raw history: `cold` (with whether each one's previous period is held).
async fn compute(
    tx: &Transaction<'_>,
    level: &Level,
    cold: &[Period],
    prev_held: &[bool],
    today: NaiveDate,
) -> anyhow::Result<u64> {
    if cold.is_empty() {
        return Ok(0);
    }
    let a = Arrays::new(cold);
    // History read: the periods, and the previous ones whose averages are not held.
    let from = cold
        .iter()
        .zip(prev_held)
        .map(|(p, held)| if *held { p.start } else { p.previous().start })
        .min()
        .unwrap_or(today);
    let held = prev_held.to_vec();
    execute(
        tx,
        &sql::compute(level),
        &[
            &a.kinds,
            &a.starts,
            &a.ends,
            &a.prev_starts,
            &a.prev_ends,
            &held,
            &from,
            &today,
        ],
    )
    .await
}

/// Held periods advanced by `agg_work` (new pairs on `days`, and rebuilt (instance, period)s).
async fn fold(
    tx: &Transaction<'_>,
    level: &Level,
    warm: &[Period],
    prev_held: &[bool],
    days: &[NaiveDate],
    rebuild: bool,
    today: NaiveDate,
) -> anyhow::Result<u64> {
    if warm.is_empty() || days.is_empty() {
        return Ok(0);
    }
    let prev_held = prev_held.to_vec();
    let a = Arrays::new(warm);
    // Previous periods never computed: their averages from history, over their dates only.
    let raw: Vec<Period> = warm
        .iter()
        .zip(&prev_held)
        .filter(|(_, held)| !**held)
        .map(|(p, _)| p.previous())
        .collect();
    let raw_from = raw.iter().map(|p| p.start).min().unwrap_or(today);
    let raw_to = raw.iter().map(|p| p.end).max().unwrap_or(today);
    let mut merge: Vec<&(dyn ToSql + Sync)> = vec![
        &a.kinds,
        &a.starts,
        &a.ends,
        &a.prev_starts,
        &a.prev_ends,
        &prev_held,
    ];
    if !raw.is_empty() {
        merge.extend([&raw_from as &(dyn ToSql + Sync), &raw_to]);
    }
    let mut rows = 0;
    let mut modes = vec![(Fold::Add, &days as &(dyn ToSql + Sync))];
    if rebuild {
        modes.push((Fold::Rebuild, &today));
    }
    for (mode, fifth) in modes {
        // A few instances' history through the primary key: nested loops are right there.
        if mode == Fold::Rebuild {
            tx.batch_execute("SET LOCAL enable_nestloop = on").await?;
        }
        let [collect, merge_sql] = sql::fold(level, mode, !raw.is_empty());
        tx.batch_execute(&sql::new_table(level)).await?;
        let collected = tx
            .execute(
                &collect,
                &[&a.kinds, &a.starts, &a.ends, &a.prev_starts, fifth],
            )
            .await;
        tx.batch_execute("SET LOCAL enable_nestloop = off; ANALYZE agg_new")
            .await?;
        collected?;
        rows += execute(tx, &merge_sql, &merge).await?;
    }
    Ok(rows)
}

/// The aggregation as it runs on business date `today` (yesterday's daily period; the last
/// complete and the current week, month and quarter), in one transaction. Idempotent: a
/// rerun finds nothing new to fold and rewrites the daily period with the same values.
pub async fn aggregate_on(app: &App, today: NaiveDate) -> anyhow::Result<Value> {
    aggregate_day(app, today, None).await
}

/// [`aggregate_on`], recording the run the day belongs to.
pub async fn aggregate_day(
    app: &App,
    today: NaiveDate,
    run_id: Option<uuid::Uuid>,
) -> anyhow::Result<Value> {
    let started = std::time::Instant::now();
    let periods = periods_for(today);
    let mut client = app.db.get().await?;
    // One snapshot for every statement: the pairs marked are exactly the pairs read.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await?;
    // Two runs at once would fold the same pairs twice.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('tidemark_aggregation'))",
        &[],
    )
    .await?;
    let all = Arrays::new(&periods);
    let mut held_set = std::collections::HashSet::new();
    for row in tx.query(sql::HELD, &[&all.kinds, &all.prev_starts]).await? {
        let kind: &str = row.try_get(0)?;
        let start: NaiveDate = row.try_get(1)?;
        held_set.insert((kind.to_string(), start));
    }
    let is_held =
        |kind: PeriodKind, start: NaiveDate| held_set.contains(&(kind.as_str().to_string(), start));
    let mut target_held = std::collections::HashSet::new();
    for row in tx.query(sql::HELD, &[&all.kinds, &all.starts]).await? {
        let kind: &str = row.try_get(0)?;
        let start: NaiveDate = row.try_get(1)?;
        target_held.insert((kind.to_string(), start));
    }
    // Daily periods are one day: always from history. Others once, then folded.
    let (warm, cold): (Vec<Period>, Vec<Period>) = periods.iter().partition(|p| {
        p.kind != PeriodKind::Daily && target_held.contains(&(p.kind.as_str().to_string(), p.start))
    });
    // Whether a period's previous one is held: a previous period computed in this same
    // statement is not held yet; one computed before it (warm after cold) is.
    let held_before = |p: &Period| {
        let prev = p.previous();
        is_held(p.kind, prev.start) && !cold.contains(&prev)
    };
    let prev_held: Vec<bool> = cold.iter().map(held_before).collect();
    let from = periods.iter().map(|p| p.start).min().unwrap_or(today);

    // Whole periods and days of the fleet against whole periods: hash joins. The aggregation
    // tables' statistics lag behind a night's writes, and a nested loop chosen on them
    // rescans a period per row. Without JIT: compiling these statements costs more (up to
    // seconds under the disabled nested loops' costs) than it saves.
    // A period computed from history for the first time (after a deploy, on a large fleet)
    // takes longer than the API's statement timeout; the job is bounded by its function's.
    tx.batch_execute(
        "SET LOCAL enable_nestloop = off; SET LOCAL jit = off; SET LOCAL statement_timeout = '14min'",
    )
    .await?;
    // Where the time goes, statement by statement (in the summary).
    let mut timings = serde_json::Map::new();
    let mut lap_at = std::time::Instant::now();
    let mut lap = |name: &str| {
        let ms = lap_at.elapsed().as_millis() as u64;
        timings.insert(name.to_string(), json!(ms));
        lap_at = std::time::Instant::now();
    };
    tx.execute(sql::WORK_TABLE, &[]).await?;
    tx.execute(sql::WORK, &[&from, &today]).await?;
    tx.execute("ANALYZE agg_work", &[]).await?;
    let work = tx
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE changed), \
             COALESCE(array_agg(DISTINCT collected_date), '{}') FROM agg_work",
            &[],
        )
        .await?;
    let (pairs, changed, days): (i64, i64, Vec<NaiveDate>) =
        (work.try_get(0)?, work.try_get(1)?, work.try_get(2)?);

    // Only the held periods that a pair falls in have anything to fold.
    let warm: Vec<Period> = warm
        .into_iter()
        .filter(|p| days.iter().any(|d| p.start <= *d && *d <= p.end))
        .collect();
    let warm_prev_held: Vec<bool> = warm
        .iter()
        .map(|p| {
            let prev = p.previous();
            is_held(p.kind, prev.start) || cold.contains(&prev)
        })
        .collect();
    // Periods written now: a target after them needs its change and trend again.
    let touched = |p: &Period| cold.contains(p) || warm.contains(p);
    let successors: Vec<Period> = periods
        .iter()
        .filter(|p| touched(&p.previous()))
        .copied()
        .collect();
    let mut rows = [0u64; 2];
    lap("work_ms");
    for (i, level) in [&DATABASES, &INSTANCES].into_iter().enumerate() {
        rows[i] += compute(&tx, level, &cold, &prev_held, today).await?;
        lap(&format!("{}_compute_ms", level.table));
        rows[i] += fold(
            &tx,
            level,
            &warm,
            &warm_prev_held,
            &days,
            changed > 0,
            today,
        )
        .await?;
        lap(&format!("{}_fold_ms", level.table));
        if !successors.is_empty() {
            let a = Arrays::new(&successors);
            tx.execute(
                &sql::refresh_changes(level),
                &[&a.kinds, &a.starts, &a.prev_starts],
            )
            .await?;
            lap(&format!("{}_refresh_ms", level.table));
        }
    }
    tx.execute(sql::MARK, &[&from, &today]).await?;
    lap("mark_ms");
    let a = Arrays::new(&periods);
    tx.execute(sql::REGISTER, &[&a.kinds, &a.starts, &a.ends])
        .await?;

    let summary = json!({
        "business_date": today,
        "periods": periods.iter().map(|p| json!({
            "period_type": p.kind.as_str(), "period_start": p.start, "period_end": p.end,
            "computed": if cold.contains(p) { "from_history" } else { "folded" },
        })).collect::<Vec<_>>(),
        "pairs_folded": pairs,
        "pairs_recollected": changed,
        "days_folded": days.len(),
        "database_rows": rows[0],
        "instance_rows": rows[1],
        "duration_ms": started.elapsed().as_millis() as u64,
        "timings": timings,
    });
    tx.execute(
        "INSERT INTO aggregation_days (business_date, run_id, summary) VALUES ($1, $2, $3) \
         ON CONFLICT (business_date) DO UPDATE SET run_id = EXCLUDED.run_id, \
           summary = EXCLUDED.summary, aggregated_at = now()",
        &[&today, &run_id, &summary],
    )
    .await?;
    crate::events::record(
        &tx,
        "INFO",
        "capacity",
        "aggregation finished",
        summary.clone(),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(summary = %summary, "aggregation finished");
    Ok(summary)
}
