//! Writing one database's tables: latest sizes and inventory, what disappeared, history for
//! the tables that matter, growth. Four statements per database whatever its table count
//! (arrays through `unnest`), so 20,000 tables cost what 20 do; `Saved::statements` counts
//! them so tests can hold that.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;

use crate::collect::adapter::TableSize;

/// Which tables get a history row: those of at least `min_bytes`, and the `top` largest of
/// their database whatever their size.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRule {
    pub min_bytes: i64,
    pub top: i64,
}

impl HistoryRule {
    pub fn of(config: &crate::config::Config) -> Self {
        HistoryRule {
            min_bytes: config.table_history_min_bytes,
            top: config.table_history_top,
        }
    }
}

/// What one database's write changed, for the item's metrics.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Saved {
    pub tables: i64,
    pub created: i64,
    pub deactivated: i64,
    pub history_rows: i64,
    /// Statements sent to the app database (the transaction's own aside).
    pub statements: i64,
}

/// Columns of the snapshot as arrays, one entry per table (a repeated name keeps the first).
struct Arrays<'a> {
    schema: Vec<&'a str>,
    name: Vec<&'a str>,
    kind: Vec<&'static str>,
    parent: Vec<Option<&'a str>>,
    engine: Vec<Option<&'a str>>,
    total: Vec<i64>,
    data: Vec<i64>,
    index: Vec<i64>,
    toast: Vec<Option<i64>>,
    free: Vec<Option<i64>>,
    rows: Vec<Option<i64>>,
}

impl<'a> Arrays<'a> {
    fn new(tables: &'a [TableSize]) -> Self {
        let mut sorted: Vec<&TableSize> = tables.iter().collect();
        sorted
            .sort_by(|a, b| (&a.schema_name, &a.table_name).cmp(&(&b.schema_name, &b.table_name)));
        sorted.dedup_by(|a, b| a.schema_name == b.schema_name && a.table_name == b.table_name);
        Arrays {
            schema: sorted.iter().map(|t| t.schema_name.as_str()).collect(),
            name: sorted.iter().map(|t| t.table_name.as_str()).collect(),
            kind: sorted.iter().map(|t| t.kind.as_str()).collect(),
            parent: sorted.iter().map(|t| t.parent_name.as_deref()).collect(),
            engine: sorted.iter().map(|t| t.engine.as_deref()).collect(),
            total: sorted.iter().map(|t| t.total_bytes).collect(),
            data: sorted.iter().map(|t| t.data_bytes).collect(),
            index: sorted.iter().map(|t| t.index_bytes).collect(),
            toast: sorted.iter().map(|t| t.toast_bytes).collect(),
            free: sorted.iter().map(|t| t.free_bytes).collect(),
            rows: sorted.iter().map(|t| t.row_estimate).collect(),
        }
    }
}

/// Upserts the snapshot; a row only moves forward in (collected_date, collected_at), so a
/// late message never rolls a table back. Returns how many rows were new.
const UPSERT: &str = "\
    WITH up AS ( \
        INSERT INTO instance_tables AS t (instance_id, database_name, schema_name, table_name, kind, \
            parent_name, engine, is_active, first_seen_date, last_seen_date, deleted_at, total_bytes, \
            data_bytes, index_bytes, toast_bytes, free_bytes, row_estimate, collected_at, collected_date) \
        SELECT $1, $2, s.schema_name, s.table_name, s.kind, s.parent_name, s.engine, true, $3, $3, NULL, \
            s.total, s.data, s.idx, s.toast, s.free, s.rows, $4, $3 \
        FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], \
                    $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[]) \
             AS s(schema_name, table_name, kind, parent_name, engine, total, data, idx, toast, free, rows) \
        ON CONFLICT (instance_id, database_name, schema_name, table_name) DO UPDATE SET \
            kind = EXCLUDED.kind, parent_name = EXCLUDED.parent_name, engine = EXCLUDED.engine, \
            is_active = true, deleted_at = NULL, last_seen_date = EXCLUDED.last_seen_date, \
            total_bytes = EXCLUDED.total_bytes, data_bytes = EXCLUDED.data_bytes, \
            index_bytes = EXCLUDED.index_bytes, toast_bytes = EXCLUDED.toast_bytes, \
            free_bytes = EXCLUDED.free_bytes, row_estimate = EXCLUDED.row_estimate, \
            collected_at = EXCLUDED.collected_at, collected_date = EXCLUDED.collected_date, \
            updated_at = now() \
        WHERE (EXCLUDED.collected_date, EXCLUDED.collected_at) >= (t.collected_date, t.collected_at) \
        RETURNING (xmax = 0) AS inserted) \
    SELECT count(*) FILTER (WHERE inserted) FROM up";

/// Every active table this collection did not see is gone (the upsert stamped the seen ones).
const DEACTIVATE: &str = "\
    UPDATE instance_tables SET is_active = false, deleted_at = $4, updated_at = now() \
    WHERE instance_id = $1 AND database_name = $2 AND is_active \
      AND (collected_date, collected_at) < ($3::date, $4::timestamptz)";

/// History rows for the tables at least `$5` bytes or in the top `$6` of this collection.
const HISTORY: &str = "\
    WITH ranked AS ( \
        SELECT id, total_bytes, data_bytes, index_bytes, toast_bytes, row_estimate, \
               row_number() OVER (ORDER BY total_bytes DESC, id) AS rank \
        FROM instance_tables \
        WHERE instance_id = $1 AND database_name = $2 AND is_active AND collected_at = $4), \
    kept AS (SELECT * FROM ranked WHERE total_bytes >= $5 OR rank <= $6), \
    ins AS ( \
        INSERT INTO table_size_stats (table_id, collected_date, instance_id, total_bytes, data_bytes, \
            index_bytes, toast_bytes, row_estimate, collected_at) \
        SELECT id, $3, $1, total_bytes, data_bytes, index_bytes, toast_bytes, row_estimate, $4 FROM kept \
        ON CONFLICT (table_id, collected_date) DO UPDATE SET total_bytes = EXCLUDED.total_bytes, \
            data_bytes = EXCLUDED.data_bytes, index_bytes = EXCLUDED.index_bytes, \
            toast_bytes = EXCLUDED.toast_bytes, row_estimate = EXCLUDED.row_estimate, \
            collected_at = EXCLUDED.collected_at \
        RETURNING 1), \
    flagged AS ( \
        UPDATE instance_tables t SET has_history = true FROM kept \
        WHERE t.id = kept.id AND NOT t.has_history RETURNING 1) \
    SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM flagged)";

/// Growth over 7 and 30 days: this size minus the oldest history row of the window (days
/// before this one), through the history primary key, table by table.
const GROWTH: &str = "\
    UPDATE instance_tables t SET growth_7d_bytes = t.total_bytes - g.b7, \
                                 growth_30d_bytes = t.total_bytes - g.b30 \
    FROM (SELECT s.table_id, \
                 (array_agg(s.total_bytes ORDER BY s.collected_date) \
                    FILTER (WHERE s.collected_date >= $3::date - 7))[1] AS b7, \
                 (array_agg(s.total_bytes ORDER BY s.collected_date))[1] AS b30 \
          FROM table_size_stats s \
          WHERE s.table_id IN (SELECT id FROM instance_tables \
                               WHERE instance_id = $1 AND database_name = $2 AND has_history \
                                 AND collected_at = $4) \
            AND s.collected_date >= $3::date - 30 AND s.collected_date < $3::date \
          GROUP BY s.table_id) g \
    WHERE t.id = g.table_id";

/// Persists one database's tables in the caller's transaction.
pub async fn persist<C: GenericClient>(
    client: &C,
    instance_id: i64,
    database_name: &str,
    collected_date: NaiveDate,
    collected_at: DateTime<Utc>,
    tables: &[TableSize],
    rule: HistoryRule,
) -> Result<Saved, tokio_postgres::Error> {
    let a = Arrays::new(tables);
    let mut saved = Saved {
        tables: a.name.len() as i64,
        ..Saved::default()
    };
    let stmt = client.prepare_cached(UPSERT).await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &instance_id,
                &database_name,
                &collected_date,
                &collected_at,
                &a.schema,
                &a.name,
                &a.kind,
                &a.parent,
                &a.engine,
                &a.total,
                &a.data,
                &a.index,
                &a.toast,
                &a.free,
                &a.rows,
            ],
        )
        .await?;
    saved.statements += 1;
    saved.created = row.try_get(0)?;
    let stmt = client.prepare_cached(DEACTIVATE).await?;
    saved.deactivated = client
        .execute(
            &stmt,
            &[&instance_id, &database_name, &collected_date, &collected_at],
        )
        .await? as i64;
    saved.statements += 1;
    let stmt = client.prepare_cached(HISTORY).await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &instance_id,
                &database_name,
                &collected_date,
                &collected_at,
                &rule.min_bytes,
                &rule.top,
            ],
        )
        .await?;
    saved.statements += 1;
    saved.history_rows = row.try_get(0)?;
    let stmt = client.prepare_cached(GROWTH).await?;
    client
        .execute(
            &stmt,
            &[&instance_id, &database_name, &collected_date, &collected_at],
        )
        .await?;
    saved.statements += 1;
    Ok(saved)
}
