//! The day's firings for the whole fleet: two `INSERT ... SELECT` statements, one over the
//! databases' size history, one over the instances' collections, whatever the fleet's size.
//! A firing is unique per rule, target and day, so evaluating a day again records nothing.

use chrono::NaiveDate;
use deadpool_postgres::GenericClient;

use crate::web::sql::Counted;

/// How a rule's scope matches a target row `t` (with `instance_id`, and `database_name` for
/// database-level targets; `''` for instance-level ones, which a database scope matches by
/// its instance).
const SCOPE_MATCH: &str = "(r.scope = 'all' \
    OR (r.scope = 'tag' AND EXISTS (SELECT 1 FROM instance_tags it \
        WHERE it.instance_id = t.instance_id AND it.tag_id = r.tag_id)) \
    OR (r.scope = 'instance' AND r.instance_id = t.instance_id) \
    OR (r.scope = 'database' AND r.instance_id = t.instance_id \
        AND (t.database_name = '' OR r.database_name = t.database_name)))";

/// Size conditions, from the 32 days of history ending on the day ($1): the last 31 days'
/// slope (as `/capacity/forecast`), the size 1, 7 or 30 days before (a database without a
/// size that day is not judged on growth), and the day's growth against the median and median absolute deviation of the
/// 30 days before. One pass over the history in key order (the window and the grouping share
/// it, no ordered aggregate but the growths of a database sorted for its median, and only when
/// an abnormal-day rule exists). Databases without a size on the day are not judged (a
/// collection-failing rule covers them).
fn size_firings_sql() -> String {
    format!(
        "WITH rules AS (SELECT * FROM alert_rules \
             WHERE is_active AND condition <> 'collection_failing'), \
         flags AS (SELECT EXISTS (SELECT 1 FROM rules) AS any_rule, \
             EXISTS (SELECT 1 FROM rules WHERE condition = 'abnormal_day') AS abnormal), \
         m AS MATERIALIZED (SELECT instance_id, database_name, \
             max(b) FILTER (WHERE d = $1::date) AS cur_b, \
             max(g) FILTER (WHERE d = $1::date) AS cur_g, \
             regr_slope(b::float8, (d - $1::date)::float8) FILTER (WHERE d >= $1::date - 30) AS slope, \
             max(b) FILTER (WHERE d = $1::date - 1) AS base_day, \
             max(b) FILTER (WHERE d = $1::date - 7) AS base_week, \
             max(b) FILTER (WHERE d = $1::date - 30) AS base_month, \
             array_agg(g ORDER BY g) FILTER (WHERE g IS NOT NULL AND d < $1::date \
                 AND d >= $1::date - 30 AND (SELECT abnormal FROM flags)) AS gs \
           FROM (SELECT s.instance_id, s.database_name, s.collected_date AS d, s.size_bytes AS b, \
                   s.size_bytes - lag(s.size_bytes) OVER (PARTITION BY s.instance_id, s.database_name \
                     ORDER BY s.collected_date) AS g \
                 FROM database_size_stats s JOIN instances i ON i.id = s.instance_id \
                 WHERE s.collected_date BETWEEN $1::date - 31 AND $1::date \
                   AND i.is_active AND i.deleted_at IS NULL AND (SELECT any_rule FROM flags)) h \
           GROUP BY instance_id, database_name HAVING bool_or(d = $1::date)), \
         t AS MATERIALIZED (SELECT m.*, md.med, cardinality(m.gs) AS growth_days, \
             (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(x - md.med)) \
              FROM unnest(m.gs) x) AS mad \
           FROM m CROSS JOIN LATERAL (SELECT (m.gs[(cardinality(m.gs) + 1) / 2] \
               + m.gs[(cardinality(m.gs) + 2) / 2]) / 2.0 AS med) md), \
         judged AS (SELECT r.id AS rule_id, r.severity, r.condition, r.max_days, r.min_percent, \
             r.min_bytes, r.mad_k, r.threshold_bytes, t.instance_id, t.database_name, t.cur_b, \
             t.cur_g, t.slope, t.med, t.growth_days, t.mad, \
             CASE r.period WHEN 'day' THEN t.base_day WHEN 'week' THEN t.base_week \
                 WHEN 'month' THEN t.base_month END AS base \
           FROM rules r JOIN t ON {SCOPE_MATCH}), \
         valued AS (SELECT j.*, CASE j.condition \
             WHEN 'days_until_threshold' THEN CASE WHEN j.cur_b >= j.threshold_bytes THEN 0 \
                 WHEN j.slope > 0 THEN ceil((j.threshold_bytes - j.cur_b) / j.slope) END \
             WHEN 'growth' THEN (j.cur_b - j.base)::float8 \
             WHEN 'abnormal_day' THEN (j.cur_g - j.med) / GREATEST(j.mad, 1) END AS value \
           FROM judged j) \
         INSERT INTO alerts (rule_id, instance_id, database_name, day, severity, value, details) \
         SELECT v.rule_id, v.instance_id, v.database_name, $1::date, v.severity, v.value, \
           jsonb_strip_nulls(jsonb_build_object('size_bytes', v.cur_b, \
             'slope_bytes_per_day', round(v.slope::numeric), 'threshold_bytes', v.threshold_bytes, \
             'base_bytes', v.base, 'growth_bytes', v.cur_b - v.base, \
             'growth_percent', CASE WHEN v.base > 0 THEN round(((v.cur_b - v.base) * 100.0 / v.base)::numeric, 2) END, \
             'day_growth_bytes', CASE WHEN v.condition = 'abnormal_day' THEN v.cur_g END, \
             'median_growth_bytes', CASE WHEN v.condition = 'abnormal_day' THEN v.med END, \
             'mad_bytes', CASE WHEN v.condition = 'abnormal_day' THEN v.mad END)) \
         FROM valued v WHERE CASE v.condition \
             WHEN 'days_until_threshold' THEN v.value <= v.max_days \
             WHEN 'growth' THEN v.base IS NOT NULL AND ( \
                 (v.min_percent IS NOT NULL AND v.base > 0 \
                     AND (v.cur_b - v.base) * 100.0 / v.base >= v.min_percent) \
                 OR (v.min_bytes IS NOT NULL AND v.cur_b - v.base >= v.min_bytes)) \
             WHEN 'abnormal_day' THEN v.growth_days >= 7 AND abs(v.value) > v.mad_k \
             ELSE false END \
         ON CONFLICT (rule_id, instance_id, database_name, day) DO NOTHING"
    )
}

/// Collection failing: an active instance with no size collected on any of the last K days
/// (the day included), registered before them.
fn collection_firings_sql() -> String {
    format!(
        "INSERT INTO alerts (rule_id, instance_id, database_name, day, severity, value, details) \
         SELECT r.id, t.instance_id, '', $1::date, r.severity, r.failing_days, \
           jsonb_strip_nulls(jsonb_build_object('failing_days', r.failing_days, \
             'last_collected_date', t.last_collected_date)) \
         FROM alert_rules r \
         JOIN (SELECT i.id AS instance_id, '' AS database_name, i.created_at, i.last_collected_date \
               FROM instances i WHERE i.is_active AND i.deleted_at IS NULL) t ON {SCOPE_MATCH} \
         WHERE r.is_active AND r.condition = 'collection_failing' \
           AND t.created_at::date <= $1::date - r.failing_days \
           AND NOT EXISTS (SELECT 1 FROM instance_size_stats s WHERE s.instance_id = t.instance_id \
             AND s.collected_date BETWEEN $1::date - r.failing_days + 1 AND $1::date) \
         ON CONFLICT (rule_id, instance_id, database_name, day) DO NOTHING"
    )
}

/// Records the day's firings (in the caller's transaction); returns how many are new.
pub(super) async fn record_firings<C: GenericClient>(
    db: &Counted<'_, C>,
    day: NaiveDate,
) -> Result<u64, tokio_postgres::Error> {
    // The whole fleet's 32 days in memory, and no JIT compile (longer than the run). The
    // history is read in primary-key order from the partitions' keys (a merge of index scans)
    // rather than scanned and sorted for the window: the planner prices the 1.3 M-row sort
    // below the index scans, yet it is a third of the statement's time (EXPLAIN ANALYZE,
    // 40,000 databases). The collection statement after it sorts nothing either way.
    db.counted()
        .execute(
            "SELECT set_config('work_mem', '256MB', true), set_config('jit', 'off', true), \
                    set_config('enable_sort', 'off', true)",
            &[],
        )
        .await?;
    let sizes = db.counted().execute(&size_firings_sql(), &[&day]).await?;
    let collections = db
        .counted()
        .execute(&collection_firings_sql(), &[&day])
        .await?;
    Ok(sizes + collections)
}
