//! The day's firings for the whole fleet: two `INSERT ... SELECT` statements, one over the
//! databases' size history, one over the instances' collections, whatever the fleet's size.
//! A firing is unique per rule, target and day, so evaluating a day again records nothing.

use chrono::NaiveDate;
use deadpool_postgres::GenericClient;

use crate::tags::bulk::Counted;

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
/// slope (as `/capacity/forecast`), the size 1, 7 or 30 days before, and the day's growth
/// against the median and median absolute deviation of the 30 days before. Databases
/// without a size on the day are not judged (a collection-failing rule covers them).
fn size_firings_sql() -> String {
    format!(
        "WITH rules AS (SELECT * FROM alert_rules \
             WHERE is_active AND condition <> 'collection_failing'), \
         hist AS (SELECT s.instance_id, s.database_name, s.collected_date AS d, s.size_bytes AS b, \
             s.size_bytes - lag(s.size_bytes) OVER (PARTITION BY s.instance_id, s.database_name \
                 ORDER BY s.collected_date) AS g \
           FROM database_size_stats s JOIN instances i ON i.id = s.instance_id \
           WHERE s.collected_date BETWEEN $1::date - 31 AND $1::date \
             AND i.is_active AND i.deleted_at IS NULL AND EXISTS (SELECT 1 FROM rules)), \
         m AS (SELECT instance_id, database_name, \
             max(b) FILTER (WHERE d = $1::date) AS cur_b, \
             max(g) FILTER (WHERE d = $1::date) AS cur_g, \
             regr_slope(b::float8, (d - $1::date)::float8) FILTER (WHERE d >= $1::date - 30) AS slope, \
             (array_agg(b ORDER BY d DESC) FILTER (WHERE d <= $1::date - 1))[1] AS base_day, \
             (array_agg(b ORDER BY d DESC) FILTER (WHERE d <= $1::date - 7))[1] AS base_week, \
             (array_agg(b ORDER BY d DESC) FILTER (WHERE d <= $1::date - 30))[1] AS base_month, \
             percentile_cont(0.5) WITHIN GROUP (ORDER BY g) \
                 FILTER (WHERE d < $1::date AND d >= $1::date - 30) AS med, \
             count(g) FILTER (WHERE d < $1::date AND d >= $1::date - 30) AS growth_days \
           FROM hist GROUP BY instance_id, database_name HAVING bool_or(d = $1::date)), \
         mad AS (SELECT h.instance_id, h.database_name, \
             percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(h.g - m.med)) AS mad \
           FROM hist h JOIN m USING (instance_id, database_name) \
           WHERE h.d < $1::date AND h.d >= $1::date - 30 AND h.g IS NOT NULL \
             AND EXISTS (SELECT 1 FROM rules WHERE condition = 'abnormal_day') \
           GROUP BY h.instance_id, h.database_name), \
         judged AS (SELECT r.id AS rule_id, r.severity, r.condition, r.max_days, r.min_percent, \
             r.min_bytes, r.mad_k, r.threshold_bytes, t.instance_id, t.database_name, t.cur_b, \
             t.cur_g, t.slope, t.med, t.growth_days, x.mad, \
             CASE r.period WHEN 'day' THEN t.base_day WHEN 'week' THEN t.base_week \
                 WHEN 'month' THEN t.base_month END AS base \
           FROM rules r JOIN m t ON {SCOPE_MATCH} \
           LEFT JOIN mad x ON r.condition = 'abnormal_day' \
             AND x.instance_id = t.instance_id AND x.database_name = t.database_name), \
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
             'mad_bytes', v.mad)) \
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

/// Records the day's firings; returns how many are new.
pub(super) async fn record_firings<C: GenericClient>(
    db: &Counted<'_, C>,
    day: NaiveDate,
) -> Result<u64, tokio_postgres::Error> {
    let sizes = db.counted().execute(&size_firings_sql(), &[&day]).await?;
    let collections = db
        .counted()
        .execute(&collection_firings_sql(), &[&day])
        .await?;
    Ok(sizes + collections)
}
