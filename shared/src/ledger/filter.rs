//! The ledger's filters, shared by `GET /databases/ledger` and the `database_ledger` export.

use crate::web::sql::{contains_pattern, Sql};
use crate::web::{ApiError, Query};

/// Conditions over `instance_databases d JOIN instances i`: every active database of every
/// active, non-deleted instance, narrowed by `search`, `db_type`, `instance_id`,
/// `tag`/`tag_mode`, `min_size_bytes`, `stale`.
pub fn conditions(q: &Query, sql: &mut Sql) -> Result<Vec<String>, ApiError> {
    let mut conds = vec![
        "d.is_active".to_string(),
        "i.is_active".to_string(),
        "i.deleted_at IS NULL".to_string(),
    ];
    if let Some(s) = q.text("search") {
        let p = sql.bind(contains_pattern(s));
        conds.push(format!(
            "(d.database_name ILIKE {p} OR i.name ILIKE {p} OR i.host ILIKE {p})"
        ));
    }
    if let Some(t) = q.text("db_type") {
        let p = sql.bind(crate::instances::validate::db_type(t)?.to_string());
        conds.push(format!("i.db_type = {p}"));
    }
    if let Some(id) = q.int("instance_id")? {
        conds.push(format!("d.instance_id = {}", sql.bind(id)));
    }
    crate::instances::tag_filter(q, sql, &mut conds, "i.id")?;
    if let Some(min) = q.int("min_size_bytes")? {
        if min < 0 {
            return Err(ApiError::validation(
                "min_size_bytes",
                "min_size_bytes must be >= 0",
            ));
        }
        conds.push(format!("d.latest_size_bytes >= {}", sql.bind(min)));
    }
    if q.has("stale") {
        let stale = "(d.latest_collected_at IS NULL OR d.latest_collected_at < now() - interval '48 hours')";
        if q.bool("stale")? {
            conds.push(stale.to_string());
        } else {
            conds.push(format!("NOT {stale}"));
        }
    }
    Ok(conds)
}

/// `never`, `fresh` (<= 6 h), `due` (<= 48 h) or `stale`, from the latest collection time.
pub fn sync_status(
    latest: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> &'static str {
    match latest {
        None => "never",
        Some(t) if now - t <= chrono::Duration::hours(6) => "fresh",
        Some(t) if now - t <= chrono::Duration::hours(48) => "due",
        Some(_) => "stale",
    }
}
