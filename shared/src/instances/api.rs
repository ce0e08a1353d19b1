//! The instance handlers: list, create, get, update, delete (soft or hard), restore, and
//! the inventory of one instance.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{custody, fetch, validate, Instance, COLUMNS};
use crate::values::{self, Size};
use crate::web::list::{SortSpec, Source};
use crate::web::request::double_option;
use crate::web::sql::{insert_named, Update};
use crate::web::{ApiError, ApiResponse, ApiResult, Audit, ListParams, Req, Role};
use crate::App;

static SORTS: SortSpec = crate::sorts! {
    "i.id";
    id desc "i.id" bigint, name asc "i.name" text, db_type asc "i.db_type" text,
    host asc "i.host" text, created_at desc "i.created_at" timestamptz,
    last_collected_at desc "COALESCE(i.last_collected_at, '-infinity'::timestamptz)" timestamptz
};

pub async fn list(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let mut params = ListParams::parse(q, &SORTS)?;
    let sql = &mut params.sql;
    crate::filters::instances(q, sql)?;
    params
        .respond::<Instance>(app, Source::new(COLUMNS, "instances i"))
        .await
}

/// The latest day's total of an instance.
#[derive(Debug, Serialize)]
struct Totals {
    total_size_bytes: i64,
    total_size_mb: f64,
    database_count: i32,
    collected_date: NaiveDate,
    collected_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct WithTotals {
    #[serde(flatten)]
    instance: Instance,
    totals: Option<Totals>,
}

pub async fn get(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let include_deleted = req.query.bool("include_deleted")?;
    let client = app.db.get().await?;
    let instance = fetch(&client, id, include_deleted).await?;
    let totals = match client
        .query_opt(
            "SELECT total_size_bytes, database_count, collected_date, collected_at FROM instance_size_stats \
             WHERE instance_id = $1 ORDER BY collected_date DESC LIMIT 1",
            &[&id],
        )
        .await?
    {
        None => None,
        Some(t) => {
            let bytes: i64 = t.try_get(0)?;
            Some(Totals {
                total_size_bytes: bytes,
                total_size_mb: values::mb(bytes),
                database_count: t.try_get(1)?,
                collected_date: t.try_get(2)?,
                collected_at: t.try_get(3)?,
            })
        }
    };
    Ok(ApiResponse::ok(WithTotals { instance, totals }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    db_type: String,
    host: String,
    port: i64,
    credential_id: Option<i64>,
    database_name: Option<String>,
    description: Option<String>,
    is_active: Option<bool>,
    tag_ids: Option<Vec<i64>>,
    exclude_databases: Option<Vec<String>>,
    tls_mode: Option<String>,
    tls_ca_pem: Option<String>,
    collect_tables: Option<bool>,
}

async fn check_credential<C: GenericClient>(client: &C, id: Option<i64>) -> Result<(), ApiError> {
    if let Some(id) = id {
        if client
            .query_opt("SELECT 1 FROM credentials WHERE id = $1", &[&id])
            .await?
            .is_none()
        {
            return Err(
                ApiError::not_found(&format!("credential {id}")).with_field("credential_id")
            );
        }
    }
    Ok(())
}

/// Replaces the instance's tags with exactly `tag_ids` (two statements, any number of tags).
async fn set_tags<C: GenericClient>(
    client: &C,
    instance_id: i64,
    tag_ids: &[i64],
) -> Result<(), ApiError> {
    let ids = values::ids("tag_ids", tag_ids, 100)?;
    let missing = client
        .query(
            "SELECT want FROM unnest($1::bigint[]) AS want WHERE NOT EXISTS (SELECT 1 FROM tags t WHERE t.id = want)",
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<i64>, _>>()?;
    if !missing.is_empty() {
        return Err(ApiError::new(
            http::StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("tags do not exist: {missing:?}"),
        )
        .with_field("tag_ids"));
    }
    client
        .execute(
            "WITH gone AS (DELETE FROM instance_tags WHERE instance_id = $1 AND tag_id <> ALL($2::bigint[])) \
             INSERT INTO instance_tags (instance_id, tag_id) SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING",
            &[&instance_id, &ids],
        )
        .await?;
    Ok(())
}

/// An optional text field that may also be cleared.
fn optional(
    v: Option<&str>,
    rule: fn(&str) -> Result<Option<String>, ApiError>,
) -> Result<Option<String>, ApiError> {
    v.map(rule).transpose().map(Option::flatten)
}

pub async fn create(app: &App, req: Req) -> ApiResult {
    let body: CreateBody = req.json()?;
    let name = validate::name(&body.name)?;
    let db_type = validate::db_type(&body.db_type)?;
    let host = validate::host(&body.host)?;
    let port = validate::port(body.port)?;
    let database_name = optional(body.database_name.as_deref(), validate::database_name)?;
    let description = optional(body.description.as_deref(), validate::description)?;
    let exclude =
        validate::exclude_databases(body.exclude_databases.as_deref().unwrap_or_default())?;
    let tls_mode = custody::tls_mode(body.tls_mode.as_deref().unwrap_or("prefer"))?;
    let tls_ca_pem = optional(body.tls_ca_pem.as_deref(), custody::tls_ca_pem)?;
    custody::check(
        &req.principal,
        None,
        &custody::Connection {
            db_type: db_type.to_string(),
            host: host.clone(),
            port,
            credential_id: body.credential_id,
            tls_mode: tls_mode.as_str().to_string(),
            tls_ca_pem: tls_ca_pem.clone(),
        },
    )?;

    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    check_credential(&tx, body.credential_id).await?;
    let id = insert_named(
        &tx,
        "INSERT INTO instances (name, db_type, host, port, credential_id, database_name, description, is_active, exclude_databases, tls_mode, tls_ca_pem, collect_tables) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        &[&name, &db_type, &host, &port, &body.credential_id, &database_name, &description, &body.is_active.unwrap_or(true), &exclude, &tls_mode.as_str(), &tls_ca_pem, &body.collect_tables.unwrap_or(false)],
        "instance",
        &name,
    )
    .await?;
    if let Some(tag_ids) = &body.tag_ids {
        set_tags(&tx, id, tag_ids).await?;
    }
    let instance = fetch(&tx, id, false).await?;
    tx.commit().await?;
    Ok(ApiResponse::created_at("/instances", id, instance))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    db_type: Option<String>,
    host: Option<String>,
    port: Option<i64>,
    #[serde(default, deserialize_with = "double_option")]
    credential_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    database_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    description: Option<Option<String>>,
    is_active: Option<bool>,
    tag_ids: Option<Vec<i64>>,
    exclude_databases: Option<Vec<String>>,
    tls_mode: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    tls_ca_pem: Option<Option<String>>,
    collect_tables: Option<bool>,
}

pub async fn update(app: &App, req: Req) -> ApiResult {
    let (id, body): (i64, PatchBody) = req.id_and_json()?;
    // `Some(None)` clears a nullable field; `None` leaves it.
    let clearable = |v: &Option<Option<String>>, rule| {
        v.as_ref().map(|v| optional(v.as_deref(), rule)).transpose()
    };
    let db_type = body.db_type.as_deref().map(validate::db_type).transpose()?;
    let host = body.host.as_deref().map(validate::host).transpose()?;
    let port = body.port.map(validate::port).transpose()?;
    let tls_mode = body
        .tls_mode
        .as_deref()
        .map(custody::tls_mode)
        .transpose()?;
    let tls_ca_pem = clearable(&body.tls_ca_pem, custody::tls_ca_pem)?;
    let mut update = Update::default();
    update
        .set_name(body.name.as_deref().map(validate::name).transpose()?)
        .set_some("db_type", db_type)
        .set_some("host", host.clone())
        .set_some("port", port)
        .set_some("credential_id", body.credential_id)
        .set_some("tls_mode", tls_mode.map(|m| m.as_str()))
        .set_some("tls_ca_pem", tls_ca_pem.clone())
        .set_some(
            "database_name",
            clearable(&body.database_name, validate::database_name)?,
        )
        .set_some(
            "description",
            clearable(&body.description, validate::description)?,
        )
        .set_some("is_active", body.is_active)
        .set_some("collect_tables", body.collect_tables)
        .set_some(
            "exclude_databases",
            body.exclude_databases
                .as_deref()
                .map(validate::exclude_databases)
                .transpose()?,
        );

    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let before = custody::Connection::load_for_update(&tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("instance"))?;
    let after = custody::Connection {
        db_type: db_type.map_or_else(|| before.db_type.clone(), str::to_string),
        host: host.unwrap_or_else(|| before.host.clone()),
        port: port.unwrap_or(before.port),
        credential_id: body.credential_id.unwrap_or(before.credential_id),
        tls_mode: tls_mode.map_or_else(|| before.tls_mode.clone(), |m| m.as_str().to_string()),
        tls_ca_pem: tls_ca_pem.unwrap_or_else(|| before.tls_ca_pem.clone()),
    };
    custody::check(&req.principal, Some(&before), &after)?;
    let old = fetch(&tx, id, false).await?;
    if let Some(Some(cid)) = body.credential_id {
        check_credential(&tx, Some(cid)).await?;
    }
    update
        .run(&tx, "instances", id, " AND deleted_at IS NULL", "instance")
        .await?;
    if let Some(tag_ids) = &body.tag_ids {
        set_tags(&tx, id, tag_ids).await?;
    }
    let instance = fetch(&tx, id, false).await?;
    tx.commit().await?;
    let audit = Audit::diff(&old, &instance);
    Ok(ApiResponse::ok(instance).audit(audit))
}

pub async fn delete(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let mode = req
        .query
        .one_of("mode", &["soft", "hard"])?
        .unwrap_or("soft");
    let client = app.db.get().await?;
    if mode == "hard" {
        req.principal.require(Role::Admin)?;
        // History goes with it: stats, inventory, aggregations and tag links cascade.
        let n = client
            .execute("DELETE FROM instances WHERE id = $1", &[&id])
            .await?;
        if n == 0 {
            return Err(ApiError::not_found("instance"));
        }
        return Ok(ApiResponse::ok(json!({"id": id, "deletion_mode": "hard"})));
    }
    let row = client
        .query_opt(
            "UPDATE instances SET deleted_at = COALESCE(deleted_at, now()), is_active = false, updated_at = now() \
             WHERE id = $1 RETURNING deleted_at",
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("instance"))?;
    let deleted_at: DateTime<Utc> = row.try_get(0)?;
    Ok(ApiResponse::ok(
        json!({"id": id, "deleted_at": deleted_at, "deletion_mode": "soft"}),
    ))
}

#[derive(Debug, Serialize)]
struct Restored {
    #[serde(flatten)]
    instance: Instance,
    restored: bool,
}

pub async fn restore(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let client = app.db.get().await?;
    let n = client
        .execute(
            "UPDATE instances SET deleted_at = NULL, is_active = true, updated_at = now() \
             WHERE id = $1 AND deleted_at IS NOT NULL",
            &[&id],
        )
        .await?;
    let instance = fetch(&client, id, true).await?;
    Ok(ApiResponse::ok(Restored {
        instance,
        restored: n > 0,
    }))
}

static DATABASE_SORTS: SortSpec = crate::sorts! {
    "d.id";
    database_name asc "d.database_name" text,
    size desc "COALESCE(d.latest_size_bytes, -1)" bigint
};

/// One database of an instance's inventory.
#[derive(Debug, Serialize)]
struct Database {
    id: i64,
    database_name: String,
    is_active: bool,
    first_seen_date: NaiveDate,
    last_seen_date: NaiveDate,
    deleted_at: Option<DateTime<Utc>>,
    size: Option<Size>,
    growth_bytes_per_day: Option<i64>,
}

/// The inventory of one instance with latest sizes.
pub async fn databases(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let mut params = ListParams::parse(&req.query, &DATABASE_SORTS)?;
    let include_inactive = req.query.bool("include_inactive")?;
    let client = app.db.get().await?;
    fetch(&client, id, false).await?;
    let sql = &mut params.sql;
    sql.eq("d.instance_id", Some(id));
    if !include_inactive {
        sql.and("d.is_active");
    }
    let source = Source::new(
        "d.id, d.database_name, d.is_active, d.first_seen_date, d.last_seen_date, d.deleted_at, \
         d.latest_size_bytes, d.latest_collected_at, d.latest_collected_date, d.growth_bytes_per_day",
        "instance_databases d",
    );
    let page = params
        .fetch(&client, source, |r| {
            Ok(Database {
                id: r.try_get("id")?,
                database_name: r.try_get("database_name")?,
                is_active: r.try_get("is_active")?,
                first_seen_date: r.try_get("first_seen_date")?,
                last_seen_date: r.try_get("last_seen_date")?,
                deleted_at: r.try_get("deleted_at")?,
                size: Size::latest(r)?,
                growth_bytes_per_day: r.try_get("growth_bytes_per_day")?,
            })
        })
        .await?;
    Ok(ApiResponse::ok(page))
}
