//! The daily aggregation job (function `aggregate`): computed in SQL, one
//! `INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE` per table for every period at
//! once, so the job is idempotent and its cost is that of reading the stats partitions of the
//! periods it covers.

use chrono::NaiveDate;
use serde_json::{json, Value};

use super::periods::{periods_for, Period};
use crate::App;

/// Change of the average against the previous period beyond which a trend is not stable.
const TREND_PERCENT: f64 = 5.0;

/// The periods as parallel arrays ($1..$5) and the date range they need ($6, $7), so every
/// statement reads only the stats partitions of those dates.
struct PeriodParams {
    kinds: Vec<&'static str>,
    starts: Vec<NaiveDate>,
    ends: Vec<NaiveDate>,
    prev_starts: Vec<NaiveDate>,
    prev_ends: Vec<NaiveDate>,
    from: NaiveDate,
    to: NaiveDate,
}

impl PeriodParams {
    fn new(periods: &[Period]) -> Self {
        let prev: Vec<Period> = periods.iter().map(Period::previous).collect();
        PeriodParams {
            kinds: periods.iter().map(|p| p.kind.as_str()).collect(),
            starts: periods.iter().map(|p| p.start).collect(),
            ends: periods.iter().map(|p| p.end).collect(),
            prev_starts: prev.iter().map(|p| p.start).collect(),
            prev_ends: prev.iter().map(|p| p.end).collect(),
            from: prev.iter().map(|p| p.start).min().unwrap_or(NaiveDate::MIN),
            to: periods
                .iter()
                .map(|p| p.end)
                .max()
                .unwrap_or(NaiveDate::MIN),
        }
    }
    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 7] {
        [
            &self.kinds,
            &self.starts,
            &self.ends,
            &self.prev_starts,
            &self.prev_ends,
            &self.from,
            &self.to,
        ]
    }
}

/// Shared head of both aggregation statements: the periods, and `change`/`trend` SQL from
/// the current (`c`) and previous (`p`) averages.
const PERIODS_CTE: &str = "periods AS (SELECT * FROM unnest($1::text[], $2::date[], $3::date[], \
    $4::date[], $5::date[]) AS p(period_type, period_start, period_end, prev_start, prev_end))";

fn change_columns() -> String {
    format!(
        "COALESCE(round(c.avg_bytes - p.avg_bytes), 0)::bigint, \
         CASE WHEN p.avg_bytes > 0 THEN (c.avg_bytes - p.avg_bytes) / p.avg_bytes * 100 ELSE 0 END::float8, \
         CASE WHEN p.avg_bytes > 0 AND (c.avg_bytes - p.avg_bytes) / p.avg_bytes * 100 > {TREND_PERCENT} THEN 'growing' \
              WHEN p.avg_bytes > 0 AND (c.avg_bytes - p.avg_bytes) / p.avg_bytes * 100 < -{TREND_PERCENT} THEN 'shrinking' \
              ELSE 'stable' END"
    )
}

/// What one aggregation statement reads and writes: a database's or an instance's sizes.
struct Level {
    /// The key columns besides the period (in the stats and the aggregation tables).
    keys: &'static [&'static str],
    stats: &'static str,
    bytes: &'static str,
    table: &'static str,
    /// An instance's aggregate also keeps its latest database count.
    database_count: bool,
}

const DATABASES: Level = Level {
    keys: &["instance_id", "database_name"],
    stats: "database_size_stats",
    bytes: "size_bytes",
    table: "database_size_aggregations",
    database_count: false,
};

const INSTANCES: Level = Level {
    keys: &["instance_id"],
    stats: "instance_size_stats",
    bytes: "total_size_bytes",
    table: "instance_size_aggregations",
    database_count: true,
};

/// One `INSERT ... SELECT ... ON CONFLICT DO UPDATE` writing every period of `level` at once.
fn aggregation_sql(level: &Level) -> String {
    let Level {
        stats,
        bytes,
        table,
        ..
    } = level;
    let aliased = |alias: &str| {
        let keys: Vec<String> = level.keys.iter().map(|k| format!("{alias}.{k}")).collect();
        keys.join(", ")
    };
    let (s_keys, c_keys) = (aliased("s"), aliased("c"));
    let keys = level.keys.join(", ");
    // An instance's latest database count: (stats, cur, insert, select, update) fragments.
    let count: [&str; 5] = if level.database_count {
        [
            ", s.database_count",
            ", (array_agg(s.database_count ORDER BY s.collected_date DESC))[1] AS database_count",
            "database_count, ",
            "c.database_count, ",
            "database_count = EXCLUDED.database_count, ",
        ]
    } else {
        [""; 5]
    };
    let [stats_count, cur_count, insert_count, select_count, update_count] = count;
    format!(
        "WITH {PERIODS_CTE}, \
         stats AS (SELECT {s_keys}, s.collected_date, s.{bytes}{stats_count} \
           FROM {stats} s JOIN instances i ON i.id = s.instance_id \
           WHERE s.collected_date BETWEEN $6 AND $7 AND i.is_active AND i.deleted_at IS NULL), \
         cur AS (SELECT {s_keys}, ps.period_type, ps.period_start, ps.period_end, \
             avg(s.{bytes}) AS avg_bytes, max(s.{bytes}) AS max_bytes, min(s.{bytes}) AS min_bytes, \
             count(*) AS sample_count{cur_count} \
           FROM periods ps JOIN stats s ON s.collected_date BETWEEN ps.period_start AND ps.period_end \
           GROUP BY {s_keys}, ps.period_type, ps.period_start, ps.period_end), \
         prev AS (SELECT {s_keys}, ps.period_type, ps.period_start, avg(s.{bytes}) AS avg_bytes \
           FROM periods ps JOIN stats s ON s.collected_date BETWEEN ps.prev_start AND ps.prev_end \
           GROUP BY {s_keys}, ps.period_type, ps.period_start) \
         INSERT INTO {table} ({keys}, period_type, period_start, period_end, avg_bytes, max_bytes, \
             min_bytes, sample_count, change_bytes, change_percent, trend, {insert_count}calculated_at) \
         SELECT {c_keys}, c.period_type, c.period_start, c.period_end, \
             round(c.avg_bytes)::bigint, c.max_bytes, c.min_bytes, c.sample_count::int, {}, \
             {select_count}now() \
         FROM cur c LEFT JOIN prev p USING ({keys}, period_type, period_start) \
         ON CONFLICT ({keys}, period_type, period_start) DO UPDATE SET \
             period_end = EXCLUDED.period_end, avg_bytes = EXCLUDED.avg_bytes, max_bytes = EXCLUDED.max_bytes, \
             min_bytes = EXCLUDED.min_bytes, sample_count = EXCLUDED.sample_count, \
             change_bytes = EXCLUDED.change_bytes, change_percent = EXCLUDED.change_percent, \
             trend = EXCLUDED.trend, {update_count}calculated_at = EXCLUDED.calculated_at",
        change_columns()
    )
}

/// The daily aggregation job, for today's business date.
pub async fn aggregate(app: &App) -> anyhow::Result<Value> {
    aggregate_on(app, app.config.business_date(chrono::Utc::now())).await
}

/// The aggregation as it runs on business date `today` (idempotent: rerunning rewrites the
/// same rows).
pub async fn aggregate_on(app: &App, today: NaiveDate) -> anyhow::Result<Value> {
    let periods = periods_for(today);
    let params = PeriodParams::new(&periods);
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let databases = tx
        .execute(&aggregation_sql(&DATABASES), &params.params())
        .await?;
    let instances = tx
        .execute(&aggregation_sql(&INSTANCES), &params.params())
        .await?;
    let summary = json!({
        "business_date": today,
        "periods": periods.iter().map(|p| json!({"period_type": p.kind.as_str(), "period_start": p.start, "period_end": p.end})).collect::<Vec<_>>(),
        "database_rows": databases,
        "instance_rows": instances,
    });
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
    // Alert rules judge the day once its aggregates are in (idempotent per day).
    crate::alerts::evaluate(app, today).await?;
    Ok(summary)
}
