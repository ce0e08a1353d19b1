//! Writing one instance's collection: history, inventory, latest sizes, the instance total
//! and growth, in the caller's transaction. A constant number of statements whatever the
//! number of databases (arrays through `unnest`), so 200 databases cost what 2 do.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;

use super::adapter::DatabaseSize;

/// What the write changed, for the task-run item's metrics.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Persisted {
    pub database_count: i64,
    pub total_size_bytes: i64,
    /// Inventory: first seen now / seen again / back after being gone / no longer seen.
    pub created: i64,
    pub seen: i64,
    pub reactivated: i64,
    pub deactivated: i64,
    /// False for a late collection of a date older than the instance's newest: its history
    /// row is written, but inventory, latest sizes and growth stay as the newer one left them.
    pub current: bool,
}

/// Persists the sizes of one instance for `collected_date`. Run it inside a transaction
/// (`client.transaction()`); the first statement locks the instance row, so two writers of
/// one instance (the queue and the synchronous action) take turns. Returns `None` when the
/// instance no longer exists.
pub async fn persist<C: GenericClient>(
    client: &C,
    instance_id: i64,
    collected_date: NaiveDate,
    collected_at: DateTime<Utc>,
    version: Option<&str>,
    sizes: &[DatabaseSize],
) -> Result<Option<Persisted>, tokio_postgres::Error> {
    // One entry per name (a repeated name would make the upsert touch a row twice).
    let mut sorted: Vec<&DatabaseSize> = sizes.iter().collect();
    sorted.sort_by(|a, b| a.database_name.cmp(&b.database_name));
    sorted.dedup_by(|a, b| a.database_name == b.database_name);
    let names: Vec<&str> = sorted.iter().map(|d| d.database_name.as_str()).collect();
    let bytes: Vec<i64> = sorted.iter().map(|d| d.size_bytes).collect();
    let data: Vec<Option<i64>> = sorted.iter().map(|d| d.data_size_bytes).collect();
    let log: Vec<Option<i64>> = sorted.iter().map(|d| d.log_size_bytes).collect();

    // Lock the instance, move its collection marks forward, learn whether this collection is
    // the newest one (a late message of an older date is not).
    let stmt = client
        .prepare_cached(
            "UPDATE instances i SET \
                last_collected_at = GREATEST(i.last_collected_at, $3), \
                last_collected_date = GREATEST(i.last_collected_date, $2), \
                version = CASE WHEN prev.last_collected_date IS NULL OR $2 >= prev.last_collected_date \
                               THEN COALESCE($4, i.version) ELSE i.version END \
             FROM (SELECT last_collected_date FROM instances WHERE id = $1 FOR UPDATE) prev \
             WHERE i.id = $1 \
             RETURNING prev.last_collected_date IS NULL OR $2 >= prev.last_collected_date",
        )
        .await?;
    let Some(row) = client
        .query_opt(
            &stmt,
            &[&instance_id, &collected_date, &collected_at, &version],
        )
        .await?
    else {
        return Ok(None);
    };
    let current: bool = row.try_get(0)?;

    // History: one multi-row upsert; the same day collected again overwrites its rows.
    let stmt = client
        .prepare_cached(
            "INSERT INTO database_size_stats \
                (instance_id, database_name, collected_date, size_bytes, data_size_bytes, log_size_bytes, collected_at) \
             SELECT $1, d.name, $2, d.size, d.data, d.log, $3 \
             FROM unnest($4::text[], $5::bigint[], $6::bigint[], $7::bigint[]) AS d(name, size, data, log) \
             ON CONFLICT (instance_id, database_name, collected_date) DO UPDATE SET \
                size_bytes = EXCLUDED.size_bytes, data_size_bytes = EXCLUDED.data_size_bytes, \
                log_size_bytes = EXCLUDED.log_size_bytes, collected_at = EXCLUDED.collected_at",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[
                &instance_id,
                &collected_date,
                &collected_at,
                &names,
                &bytes,
                &data,
                &log,
            ],
        )
        .await?;
    // A day holds one snapshot: databases an earlier collection of that day saw and this one
    // did not are not part of it.
    let stmt = client
        .prepare_cached(
            "DELETE FROM database_size_stats \
             WHERE instance_id = $1 AND collected_date = $2 AND database_name <> ALL($3::text[])",
        )
        .await?;
    client
        .execute(&stmt, &[&instance_id, &collected_date, &names])
        .await?;

    let mut out = Persisted {
        current,
        ..Persisted::default()
    };
    if current {
        // Inventory and latest sizes in one set-based upsert. `prior` is read from the
        // snapshot before the upsert, so it tells new, seen and back apart. The latest
        // columns only ever move forward in (collected_date, collected_at).
        let stmt = client
            .prepare_cached(
                "WITH prior AS ( \
                    SELECT database_name, is_active FROM instance_databases \
                    WHERE instance_id = $1 AND database_name = ANY($4::text[])), \
                 up AS ( \
                    INSERT INTO instance_databases AS d (instance_id, database_name, is_active, first_seen_date, \
                        last_seen_date, deleted_at, latest_size_bytes, latest_collected_at, latest_collected_date) \
                    SELECT $1, s.name, true, $2, $2, NULL, s.size, $3, $2 \
                    FROM unnest($4::text[], $5::bigint[]) AS s(name, size) \
                    ON CONFLICT (instance_id, database_name) DO UPDATE SET \
                        is_active = true, deleted_at = NULL, \
                        last_seen_date = GREATEST(d.last_seen_date, EXCLUDED.last_seen_date), \
                        latest_size_bytes = CASE WHEN d.latest_collected_date IS NULL \
                            OR (EXCLUDED.latest_collected_date, EXCLUDED.latest_collected_at) \
                               >= (d.latest_collected_date, d.latest_collected_at) \
                            THEN EXCLUDED.latest_size_bytes ELSE d.latest_size_bytes END, \
                        latest_collected_at = CASE WHEN d.latest_collected_date IS NULL \
                            OR (EXCLUDED.latest_collected_date, EXCLUDED.latest_collected_at) \
                               >= (d.latest_collected_date, d.latest_collected_at) \
                            THEN EXCLUDED.latest_collected_at ELSE d.latest_collected_at END, \
                        latest_collected_date = GREATEST(d.latest_collected_date, EXCLUDED.latest_collected_date), \
                        updated_at = now() \
                    RETURNING d.database_name) \
                 SELECT count(*) FILTER (WHERE p.database_name IS NULL), \
                        count(*) FILTER (WHERE p.is_active), \
                        count(*) FILTER (WHERE NOT p.is_active) \
                 FROM up LEFT JOIN prior p USING (database_name)",
            )
            .await?;
        let row = client
            .query_one(
                &stmt,
                &[&instance_id, &collected_date, &collected_at, &names, &bytes],
            )
            .await?;
        out.created = row.try_get(0)?;
        out.seen = row.try_get(1)?;
        out.reactivated = row.try_get(2)?;

        // Gone: every active database of the instance this collection did not see.
        let stmt = client
            .prepare_cached(
                "UPDATE instance_databases SET is_active = false, deleted_at = $2, updated_at = now() \
                 WHERE instance_id = $1 AND is_active AND database_name <> ALL($3::text[])",
            )
            .await?;
        out.deactivated = client
            .execute(&stmt, &[&instance_id, &collected_at, &names])
            .await? as i64;

        // Growth: slope of the last 30 days of each database's history (bytes per day),
        // reading only the partitions of those days.
        let stmt = client
            .prepare_cached(
                "UPDATE instance_databases d SET growth_bytes_per_day = g.slope \
                 FROM (SELECT database_name, \
                         round(regr_slope(size_bytes::float8, (collected_date - $2::date)::float8))::bigint AS slope \
                       FROM database_size_stats \
                       WHERE instance_id = $1 AND collected_date > $2::date - 30 AND collected_date <= $2::date \
                       GROUP BY database_name) g \
                 WHERE d.instance_id = $1 AND d.database_name = g.database_name \
                   AND d.growth_bytes_per_day IS DISTINCT FROM g.slope",
            )
            .await?;
        client
            .execute(&stmt, &[&instance_id, &collected_date])
            .await?;
    }

    // The instance total of that day: one aggregate over that day's rows.
    let stmt = client
        .prepare_cached(
            "INSERT INTO instance_size_stats (instance_id, collected_date, total_size_bytes, database_count, collected_at) \
             SELECT $1, $2, COALESCE(sum(size_bytes), 0)::bigint, count(*)::int, $3 \
             FROM database_size_stats WHERE instance_id = $1 AND collected_date = $2 \
             ON CONFLICT (instance_id, collected_date) DO UPDATE SET \
                total_size_bytes = EXCLUDED.total_size_bytes, database_count = EXCLUDED.database_count, \
                collected_at = EXCLUDED.collected_at \
             RETURNING total_size_bytes, database_count",
        )
        .await?;
    let row = client
        .query_one(&stmt, &[&instance_id, &collected_date, &collected_at])
        .await?;
    out.total_size_bytes = row.try_get(0)?;
    out.database_count = i64::from(row.try_get::<_, i32>(1)?);
    Ok(Some(out))
}
