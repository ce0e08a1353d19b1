//! The instance and ledger filters, shared by the lists and the exports that mirror them:
//! `GET /instances` and the `instances` export, `GET /databases/ledger` and the
//! `database_ledger` export. Aliases: `i` instances, `d` instance_databases.

use crate::instances::validate;
use crate::web::sql::{contains_pattern, Sql};
use crate::web::{ApiError, Query};

/// `tag` (repeatable names) with `tag_mode` any/all, as semi-joins: an instance appears once
/// whatever number of its tags match.
pub fn tag(
    q: &Query,
    sql: &mut Sql,
    conds: &mut Vec<String>,
    instance_id_expr: &str,
) -> Result<(), ApiError> {
    let names: Vec<String> = q
        .all("tag")
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect();
    let mode = q.one_of("tag_mode", &["any", "all"])?.unwrap_or("any");
    if names.is_empty() {
        return Ok(());
    }
    let p = sql.bind(names);
    if mode == "all" {
        conds.push(format!(
            "NOT EXISTS (SELECT 1 FROM unnest({p}::text[]) AS want(name) WHERE NOT EXISTS (\
               SELECT 1 FROM instance_tags it JOIN tags t ON t.id = it.tag_id \
               WHERE it.instance_id = {instance_id_expr} AND t.name = want.name))"
        ));
    } else {
        conds.push(format!(
            "EXISTS (SELECT 1 FROM instance_tags it JOIN tags t ON t.id = it.tag_id \
             WHERE it.instance_id = {instance_id_expr} AND t.name = ANY({p}::text[]))"
        ));
    }
    Ok(())
}

/// `search` over the given columns (ILIKE, escaped) and `db_type` (aliases accepted).
fn search_and_type(
    q: &Query,
    sql: &mut Sql,
    conds: &mut Vec<String>,
    columns: &[&str],
) -> Result<(), ApiError> {
    if let Some(s) = q.text("search") {
        let p = sql.bind(contains_pattern(s));
        let any: Vec<String> = columns.iter().map(|c| format!("{c} ILIKE {p}")).collect();
        conds.push(format!("({})", any.join(" OR ")));
    }
    if let Some(t) = q.text("db_type") {
        let p = sql.bind(validate::db_type(t)?.to_string());
        conds.push(format!("i.db_type = {p}"));
    }
    Ok(())
}

/// The filters of `GET /instances`: `search`, `db_type`, `status`, `include_deleted`,
/// `tag`/`tag_mode`.
pub fn instances(q: &Query, sql: &mut Sql) -> Result<Vec<String>, ApiError> {
    let mut conds = Vec::new();
    search_and_type(q, sql, &mut conds, &["i.name", "i.host", "i.description"])?;
    let status = q.one_of("status", &["active", "inactive", "deleted"])?;
    let include_deleted = q.bool("include_deleted")?;
    match status {
        Some("active") => conds.push("i.is_active AND i.deleted_at IS NULL".into()),
        Some("inactive") => conds.push("NOT i.is_active AND i.deleted_at IS NULL".into()),
        Some(_) => conds.push("i.deleted_at IS NOT NULL".into()),
        None if !include_deleted => conds.push("i.deleted_at IS NULL".into()),
        None => {}
    }
    tag(q, sql, &mut conds, "i.id")?;
    Ok(conds)
}

/// The ledger's filters over `instance_databases d JOIN instances i`: every active database
/// of every active, non-deleted instance, narrowed by `search`, `db_type`, `instance_id`,
/// `tag`/`tag_mode`, `min_size_bytes`, `stale`.
pub fn ledger(q: &Query, sql: &mut Sql) -> Result<Vec<String>, ApiError> {
    let mut conds = vec![
        "d.is_active".to_string(),
        "i.is_active".to_string(),
        "i.deleted_at IS NULL".to_string(),
    ];
    search_and_type(q, sql, &mut conds, &["d.database_name", "i.name", "i.host"])?;
    if let Some(id) = q.int("instance_id")? {
        conds.push(format!("d.instance_id = {}", sql.bind(id)));
    }
    tag(q, sql, &mut conds, "i.id")?;
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
