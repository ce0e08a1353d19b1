//! The instance and ledger filters, shared by the lists and the exports that mirror them:
//! `GET /instances` and the `instances` export, `GET /databases/ledger` and the
//! `database_ledger` export. Aliases: `i` instances, `d` instance_databases.

use crate::instances::validate;
use crate::web::sql::Sql;
use crate::web::{ApiError, Query};

/// The tag names of `tag` (repeatable, comma-separated) and whether `tag_mode` is `all`.
fn tag_names(q: &Query) -> Result<(Vec<String>, bool), ApiError> {
    let names: Vec<String> = q
        .all("tag")
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect();
    let mode = q.one_of("tag_mode", &["any", "all"])?.unwrap_or("any");
    Ok((names, mode == "all"))
}

/// `tag` (repeatable names) with `tag_mode` any/all, as semi-joins: an instance appears once
/// whatever number of its tags match.
pub fn tag(q: &Query, sql: &mut Sql, instance_id_expr: &str) -> Result<(), ApiError> {
    let (names, all) = tag_names(q)?;
    if names.is_empty() {
        return Ok(());
    }
    let p = sql.bind(names);
    if all {
        sql.and(format!(
            "NOT EXISTS (SELECT 1 FROM unnest({p}::text[]) AS want(name) WHERE NOT EXISTS (\
               SELECT 1 FROM instance_tags it JOIN tags t ON t.id = it.tag_id \
               WHERE it.instance_id = {instance_id_expr} AND t.name = want.name))"
        ));
    } else {
        sql.and(format!(
            "EXISTS (SELECT 1 FROM instance_tags it JOIN tags t ON t.id = it.tag_id \
             WHERE it.instance_id = {instance_id_expr} AND t.name = ANY({p}::text[]))"
        ));
    }
    Ok(())
}

/// Up to this many tagged instances, the ledger's tag filter is the list of their ids.
pub const SELECTIVE_TAG_INSTANCES: i64 = 1000;

/// The instances the `tag` filter keeps (any or all of the names), when there are at most
/// `SELECTIVE_TAG_INSTANCES`; `None` without a tag filter or when the tags are common. One
/// index lookup on `instance_tags`; given to `ledger`, it lets the planner see how few
/// databases match and start from their instances instead of walking a sort index far.
pub async fn selective_tag_instances(
    q: &Query,
    client: &impl deadpool_postgres::GenericClient,
) -> Result<Option<Vec<i64>>, ApiError> {
    let (names, all) = tag_names(q)?;
    if names.is_empty() {
        return Ok(None);
    }
    let wanted = if all { names.len() as i64 } else { 1 };
    let rows = client
        .query(
            "SELECT it.instance_id FROM instance_tags it JOIN tags t ON t.id = it.tag_id \
             WHERE t.name = ANY($1::text[]) \
             GROUP BY it.instance_id HAVING count(DISTINCT t.id) >= $2 \
             ORDER BY it.instance_id LIMIT $3",
            &[&names, &wanted, &(SELECTIVE_TAG_INSTANCES + 1)],
        )
        .await?;
    if rows.len() as i64 > SELECTIVE_TAG_INSTANCES {
        return Ok(None);
    }
    let ids = rows
        .iter()
        .map(|r| r.try_get::<_, i64>(0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(ids))
}

/// `search` over the given columns and `db_type` (aliases accepted).
fn search_and_type(q: &Query, sql: &mut Sql, columns: &[&str]) -> Result<(), ApiError> {
    sql.search(q.text("search"), columns);
    let db_type = q.value("db_type")?.map(validate::db_type).transpose()?;
    sql.eq("i.db_type", db_type);
    Ok(())
}

/// The filters of `GET /instances`: `search`, `db_type`, `status`, `include_deleted`,
/// `tag`/`tag_mode`, `check_status`.
pub fn instances(q: &Query, sql: &mut Sql) -> Result<(), ApiError> {
    search_and_type(q, sql, &["i.name", "i.host", "i.description"])?;
    let status = q.one_of("status", &["active", "inactive", "deleted"])?;
    let include_deleted = q.bool("include_deleted")?;
    match status {
        Some("active") => sql.and("i.is_active AND i.deleted_at IS NULL"),
        Some("inactive") => sql.and("NOT i.is_active AND i.deleted_at IS NULL"),
        Some(_) => sql.and("i.deleted_at IS NOT NULL"),
        None if !include_deleted => sql.and("i.deleted_at IS NULL"),
        None => sql,
    };
    // The last connection check: `ok`, a failure category, or `never`.
    let mut checks = vec!["never"];
    checks.extend(<crate::checks::Category as crate::values::TextEnum>::ALL);
    if let Some(check) = q.one_of("check_status", &checks)? {
        match check {
            "never" => sql.and("i.last_checked_at IS NULL"),
            c => sql.eq("i.last_check_status", Some(c.to_string())),
        };
    }
    tag(q, sql, "i.id")
}

/// The fleet's tables over `instance_tables t JOIN instances i`: active tables of active,
/// non-deleted instances, narrowed by `db_type`, `instance_id`, `tag`/`tag_mode`,
/// `database_name`, `schema` (`GET /tables/top` and the `database_tables` export).
pub fn tables(q: &Query, sql: &mut Sql) -> Result<(), ApiError> {
    sql.and("t.is_active")
        .and("i.is_active")
        .and("i.deleted_at IS NULL");
    let db_type = q.value("db_type")?.map(validate::db_type).transpose()?;
    sql.eq("i.db_type", db_type);
    let instance_id = q.int("instance_id")?;
    if instance_id.is_some_and(|id| id <= 0) {
        return Err(ApiError::validation(
            "instance_id",
            "instance_id must be a positive integer",
        ));
    }
    sql.eq("t.instance_id", instance_id)
        .eq(
            "t.database_name",
            q.text("database_name").map(str::to_string),
        )
        .eq("t.schema_name", q.text("schema").map(str::to_string));
    tag(q, sql, "i.id")
}

/// The ledger's filters over `instance_databases d JOIN instances i`: every active database
/// of every active, non-deleted instance, narrowed by `search`, `db_type`, `instance_id`,
/// `tag`/`tag_mode`, `min_size_bytes`, `stale`.
pub fn ledger(q: &Query, sql: &mut Sql) -> Result<(), ApiError> {
    ledger_with(q, sql, None)
}

/// `ledger`, with the tag filter given as the instances it keeps when they are few
/// (`selective_tag_instances`): `d.instance_id = ANY(ids)` instead of the semi-join, so a tag
/// carried by one instance in thousands reads that instance's databases and sorts them.
pub fn ledger_with(q: &Query, sql: &mut Sql, tagged: Option<Vec<i64>>) -> Result<(), ApiError> {
    sql.and("d.is_active")
        .and("i.is_active")
        .and("i.deleted_at IS NULL");
    search_and_type(q, sql, &["d.database_name", "i.name", "i.host"])?;
    sql.eq("d.instance_id", q.id("instance_id")?);
    match tagged {
        Some(ids) => {
            let p = sql.bind(ids);
            sql.and(format!("d.instance_id = ANY({p}::bigint[])"));
        }
        None => tag(q, sql, "i.id")?,
    }
    if let Some(min) = q.int("min_size_bytes")? {
        if min < 0 {
            return Err(ApiError::validation(
                "min_size_bytes",
                "min_size_bytes must be >= 0",
            ));
        }
        let p = sql.bind(min);
        sql.and(format!("d.latest_size_bytes >= {p}"));
    }
    if q.has("stale") {
        let stale = "(d.latest_collected_at IS NULL OR d.latest_collected_at < now() - interval '48 hours')";
        if q.bool("stale")? {
            sql.and(stale);
        } else {
            sql.and(format!("NOT {stale}"));
        }
    }
    Ok(())
}
