//! Instances: the managed database servers (function `api-instances`).

pub mod custody;
pub mod validate;

use deadpool_postgres::GenericClient;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_postgres::Row;

use crate::http::list::{Order, SortField, SortSpec};
use crate::http::request::double_option;
use crate::http::router::Route;
use crate::http::sql::{contains_pattern, Sql};
use crate::http::{ApiError, ApiResponse, ApiResult, ListParams, Query, Req, Role};
use crate::{route, App};

pub fn routes() -> Vec<Route> {
    vec![
        route!(GET "/instances", Viewer, "api-instances", list),
        route!(POST "/instances", Operator, "api-instances", create),
        route!(GET "/instances/{id}", Viewer, "api-instances", get),
        route!(PATCH "/instances/{id}", Operator, "api-instances", update),
        route!(DELETE "/instances/{id}", Operator, "api-instances", delete),
        route!(POST "/instances/{id}/actions/restore", Operator, "api-instances", restore),
        route!(GET "/instances/{id}/databases", Viewer, "api-instances", databases),
    ]
}

/// Columns every instance response carries (alias `i`), with its tags and credential.
const INSTANCE_COLUMNS: &str = "i.id, i.name, i.db_type, i.host, i.port, i.database_name, i.description, \
    i.is_active, i.exclude_databases, i.version, i.last_collected_at, \
    i.tls_mode, i.tls_ca_pem IS NOT NULL AS has_tls_ca, i.last_collection_encrypted, i.created_at, i.updated_at, i.deleted_at, \
    (SELECT json_build_object('id', c.id, 'name', c.name, 'username', c.username) \
       FROM credentials c WHERE c.id = i.credential_id) AS credential, \
    COALESCE((SELECT json_agg(json_build_object('id', t.id, 'name', t.name, 'display_name', t.display_name, \
       'category', t.category) ORDER BY t.name) \
       FROM instance_tags it JOIN tags t ON t.id = it.tag_id WHERE it.instance_id = i.id), '[]'::json) AS tags";

pub fn instance_json(row: &Row) -> Value {
    let deleted_at: Option<chrono::DateTime<chrono::Utc>> = row.get("deleted_at");
    let is_active: bool = row.get("is_active");
    let status = if deleted_at.is_some() {
        "deleted"
    } else if is_active {
        "active"
    } else {
        "inactive"
    };
    json!({
        "id": row.get::<_, i64>("id"),
        "name": row.get::<_, String>("name"),
        "db_type": row.get::<_, String>("db_type"),
        "host": row.get::<_, String>("host"),
        "port": row.get::<_, i32>("port"),
        "database_name": row.get::<_, Option<String>>("database_name"),
        "description": row.get::<_, Option<String>>("description"),
        "is_active": is_active,
        "status": status,
        "exclude_databases": row.get::<_, Vec<String>>("exclude_databases"),
        "version": row.get::<_, Option<String>>("version"),
        "last_collected_at": row.get::<_, Option<chrono::DateTime<chrono::Utc>>>("last_collected_at"),
        "tls_mode": row.get::<_, String>("tls_mode"),
        "has_tls_ca": row.get::<_, bool>("has_tls_ca"),
        "last_collection_encrypted": row.get::<_, Option<bool>>("last_collection_encrypted"),
        "created_at": row.get::<_, chrono::DateTime<chrono::Utc>>("created_at"),
        "updated_at": row.get::<_, chrono::DateTime<chrono::Utc>>("updated_at"),
        "deleted_at": deleted_at,
        "credential": row.get::<_, Option<Value>>("credential"),
        "tags": row.get::<_, Value>("tags"),
    })
}

static SORTS: SortSpec = SortSpec {
    fields: &[
        SortField {
            name: "id",
            expr: "i.id",
            sql_type: "bigint",
            default_order: Order::Desc,
        },
        SortField {
            name: "name",
            expr: "i.name",
            sql_type: "text",
            default_order: Order::Asc,
        },
        SortField {
            name: "db_type",
            expr: "i.db_type",
            sql_type: "text",
            default_order: Order::Asc,
        },
        SortField {
            name: "host",
            expr: "i.host",
            sql_type: "text",
            default_order: Order::Asc,
        },
        SortField {
            name: "created_at",
            expr: "i.created_at",
            sql_type: "timestamptz",
            default_order: Order::Desc,
        },
        SortField {
            name: "last_collected_at",
            expr: "COALESCE(i.last_collected_at, '-infinity'::timestamptz)",
            sql_type: "timestamptz",
            default_order: Order::Desc,
        },
    ],
    id_expr: "i.id",
};

/// `tag` (repeatable names) with `tag_mode` any/all, as semi-joins: an instance appears once
/// whatever number of its tags match. Shared by the instance list and the ledger.
pub fn tag_filter(
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

/// The list filters of `GET /instances` (also used by the `instances` export): `search`,
/// `db_type`, `status`, `include_deleted`, `tag`/`tag_mode`. Alias `i`.
pub fn filter_conditions(q: &Query, sql: &mut Sql) -> Result<Vec<String>, ApiError> {
    let mut conds = Vec::new();
    if let Some(s) = q.text("search") {
        let p = sql.bind(contains_pattern(s));
        conds.push(format!(
            "(i.name ILIKE {p} OR i.host ILIKE {p} OR i.description ILIKE {p})"
        ));
    }
    if let Some(t) = q.text("db_type") {
        let p = sql.bind(validate::db_type(t)?.to_string());
        conds.push(format!("i.db_type = {p}"));
    }
    let status = q.one_of("status", &["active", "inactive", "deleted"])?;
    let include_deleted = q.bool("include_deleted")?;
    match status {
        Some("active") => conds.push("i.is_active AND i.deleted_at IS NULL".into()),
        Some("inactive") => conds.push("NOT i.is_active AND i.deleted_at IS NULL".into()),
        Some(_) => conds.push("i.deleted_at IS NOT NULL".into()),
        None if !include_deleted => conds.push("i.deleted_at IS NULL".into()),
        None => {}
    }
    tag_filter(q, sql, &mut conds, "i.id")?;
    Ok(conds)
}

pub async fn list(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let params = ListParams::parse(q, &SORTS)?;
    let mut sql = Sql::default();
    let conds = filter_conditions(q, &mut sql)?;
    let client = app.db.get().await?;
    let page = params
        .fetch(
            &client,
            sql,
            conds,
            INSTANCE_COLUMNS,
            "instances i",
            instance_json,
        )
        .await?;
    Ok(ApiResponse::ok(page))
}

/// Fetches one instance (with tags and credential); deleted ones only when asked.
pub async fn fetch<C: GenericClient>(
    client: &C,
    id: i64,
    include_deleted: bool,
) -> Result<Row, ApiError> {
    let sql = format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances i WHERE i.id = $1 AND ($2 OR i.deleted_at IS NULL)"
    );
    client
        .query_opt(&sql, &[&id, &include_deleted])
        .await?
        .ok_or_else(|| ApiError::not_found("instance"))
}

pub async fn get(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let include_deleted = req.query.bool("include_deleted")?;
    let client = app.db.get().await?;
    let row = fetch(&client, id, include_deleted).await?;
    let totals = client
        .query_opt(
            "SELECT total_size_bytes, database_count, collected_date, collected_at FROM instance_size_stats \
             WHERE instance_id = $1 ORDER BY collected_date DESC LIMIT 1",
            &[&id],
        )
        .await?
        .map(|t| {
            let bytes: i64 = t.get(0);
            json!({
                "total_size_bytes": bytes,
                "total_size_mb": crate::ledger::size::mb(bytes),
                "database_count": t.get::<_, i32>(1),
                "collected_date": t.get::<_, chrono::NaiveDate>(2),
                "collected_at": t.get::<_, chrono::DateTime<chrono::Utc>>(3),
            })
        });
    let mut body = instance_json(&row);
    body["totals"] = totals.unwrap_or(Value::Null);
    Ok(ApiResponse::ok(body))
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
}

async fn check_credential<C: GenericClient>(client: &C, id: Option<i64>) -> Result<(), ApiError> {
    if let Some(id) = id {
        if client
            .query_opt("SELECT 1 FROM credentials WHERE id = $1", &[&id])
            .await?
            .is_none()
        {
            return Err(ApiError::validation(
                "credential_id",
                format!("credential {id} does not exist"),
            ));
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
    let ids = validate::ids("tag_ids", tag_ids, 100)?;
    let missing: Vec<i64> = client
        .query(
            "SELECT want FROM unnest($1::bigint[]) AS want WHERE NOT EXISTS (SELECT 1 FROM tags t WHERE t.id = want)",
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::validation(
            "tag_ids",
            format!("tags do not exist: {missing:?}"),
        ));
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

pub async fn create(app: &App, req: Req) -> ApiResult {
    let body: CreateBody = req.json()?;
    let name = validate::name(&body.name)?;
    let db_type = validate::db_type(&body.db_type)?;
    let host = validate::host(&body.host)?;
    let port = validate::port(body.port)?;
    let database_name = match &body.database_name {
        Some(d) => validate::database_name(d)?,
        None => None,
    };
    let description = match &body.description {
        Some(d) => validate::description(d)?,
        None => None,
    };
    let exclude =
        validate::exclude_databases(body.exclude_databases.as_deref().unwrap_or_default())?;
    let tls_mode = custody::tls_mode(body.tls_mode.as_deref().unwrap_or("prefer"))?;
    let tls_ca_pem = match &body.tls_ca_pem {
        Some(p) => custody::tls_ca_pem(p)?,
        None => None,
    };
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
    let id: i64 = tx
        .query_one(
            "INSERT INTO instances (name, db_type, host, port, credential_id, database_name, description, is_active, exclude_databases, tls_mode, tls_ca_pem) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            &[&name, &db_type, &host, &port, &body.credential_id, &database_name, &description, &body.is_active.unwrap_or(true), &exclude, &tls_mode.as_str(), &tls_ca_pem],
        )
        .await
        .map_err(|e| ApiError::name_taken(e, "instance", &name))?
        .get(0);
    if let Some(tag_ids) = &body.tag_ids {
        set_tags(&tx, id, tag_ids).await?;
    }
    let row = fetch(&tx, id, false).await?;
    tx.commit().await?;
    Ok(ApiResponse::created(instance_json(&row))
        .with_header(http::header::LOCATION, &format!("/api/v1/instances/{id}")))
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
}

pub async fn update(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let body: PatchBody = req.json()?;
    let mut sql = Sql::default();
    let mut sets: Vec<String> = Vec::new();
    let mut new_name = None;
    if let Some(v) = &body.name {
        let n = validate::name(v)?;
        new_name = Some(n.clone());
        sets.push(format!("name = {}", sql.bind(n)));
    }
    if let Some(v) = &body.db_type {
        sets.push(format!(
            "db_type = {}",
            sql.bind(validate::db_type(v)?.to_string())
        ));
    }
    if let Some(v) = &body.host {
        sets.push(format!("host = {}", sql.bind(validate::host(v)?)));
    }
    if let Some(v) = body.port {
        sets.push(format!("port = {}", sql.bind(validate::port(v)?)));
    }
    if let Some(v) = body.credential_id {
        sets.push(format!("credential_id = {}", sql.bind(v)));
    }
    if let Some(v) = &body.database_name {
        let d = match v {
            Some(d) => validate::database_name(d)?,
            None => None,
        };
        sets.push(format!("database_name = {}", sql.bind(d)));
    }
    if let Some(v) = &body.description {
        let d = match v {
            Some(d) => validate::description(d)?,
            None => None,
        };
        sets.push(format!("description = {}", sql.bind(d)));
    }
    if let Some(v) = body.is_active {
        sets.push(format!("is_active = {}", sql.bind(v)));
    }
    if let Some(v) = &body.exclude_databases {
        sets.push(format!(
            "exclude_databases = {}",
            sql.bind(validate::exclude_databases(v)?)
        ));
    }

    let tls_mode = body
        .tls_mode
        .as_deref()
        .map(custody::tls_mode)
        .transpose()?;
    if let Some(m) = tls_mode {
        sets.push(format!("tls_mode = {}", sql.bind(m.as_str().to_string())));
    }
    let tls_ca_pem = match &body.tls_ca_pem {
        Some(Some(p)) => Some(custody::tls_ca_pem(p)?),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(p) = &tls_ca_pem {
        sets.push(format!("tls_ca_pem = {}", sql.bind(p.clone())));
    }

    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let before = custody::Connection::load_for_update(&tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("instance"))?;
    let after = custody::Connection {
        db_type: match &body.db_type {
            Some(v) => validate::db_type(v)?.to_string(),
            None => before.db_type.clone(),
        },
        host: match &body.host {
            Some(v) => validate::host(v)?,
            None => before.host.clone(),
        },
        port: match body.port {
            Some(v) => validate::port(v)?,
            None => before.port,
        },
        credential_id: body.credential_id.unwrap_or(before.credential_id),
        tls_mode: tls_mode
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|| before.tls_mode.clone()),
        tls_ca_pem: tls_ca_pem
            .clone()
            .unwrap_or_else(|| before.tls_ca_pem.clone()),
    };
    custody::check(&req.principal, Some(&before), &after)?;
    if let Some(Some(cid)) = body.credential_id {
        check_credential(&tx, Some(cid)).await?;
    }
    sets.push("updated_at = now()".into());
    let idp = sql.bind(id);
    sql.text = format!(
        "UPDATE instances SET {} WHERE id = {idp} AND deleted_at IS NULL",
        sets.join(", ")
    );
    let n = tx
        .execute(&sql.text, &sql.params())
        .await
        .map_err(|e| ApiError::name_taken(e, "instance", new_name.as_deref().unwrap_or("")))?;
    if n == 0 {
        return Err(ApiError::not_found("instance"));
    }
    if let Some(tag_ids) = &body.tag_ids {
        set_tags(&tx, id, tag_ids).await?;
    }
    let row = fetch(&tx, id, false).await?;
    tx.commit().await?;
    Ok(ApiResponse::ok(instance_json(&row)))
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
    let deleted_at: chrono::DateTime<chrono::Utc> = row.get(0);
    Ok(ApiResponse::ok(
        json!({"id": id, "deleted_at": deleted_at, "deletion_mode": "soft"}),
    ))
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
    let row = fetch(&client, id, true).await?;
    let mut body = instance_json(&row);
    body["restored"] = json!(n > 0);
    Ok(ApiResponse::ok(body))
}

static DATABASE_SORTS: SortSpec = SortSpec {
    fields: &[
        SortField {
            name: "database_name",
            expr: "d.database_name",
            sql_type: "text",
            default_order: Order::Asc,
        },
        SortField {
            name: "size",
            expr: "COALESCE(d.latest_size_bytes, -1)",
            sql_type: "bigint",
            default_order: Order::Desc,
        },
    ],
    id_expr: "d.id",
};

/// The inventory of one instance with latest sizes.
pub async fn databases(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let params = ListParams::parse(&req.query, &DATABASE_SORTS)?;
    let include_inactive = req.query.bool("include_inactive")?;
    let client = app.db.get().await?;
    fetch(&client, id, false).await?;
    let mut sql = Sql::default();
    let mut conds = vec![format!("d.instance_id = {}", sql.bind(id))];
    if !include_inactive {
        conds.push("d.is_active".into());
    }
    let columns = "d.id, d.database_name, d.is_active, d.first_seen_date, d.last_seen_date, d.deleted_at, \
         d.latest_size_bytes, d.latest_collected_at, d.latest_collected_date, d.growth_bytes_per_day";
    let page = params
        .fetch(&client, sql, conds, columns, "instance_databases d", |r| {
            let bytes: Option<i64> = r.get("latest_size_bytes");
            json!({
                "id": r.get::<_, i64>("id"),
                "database_name": r.get::<_, String>("database_name"),
                "is_active": r.get::<_, bool>("is_active"),
                "first_seen_date": r.get::<_, chrono::NaiveDate>("first_seen_date"),
                "last_seen_date": r.get::<_, chrono::NaiveDate>("last_seen_date"),
                "deleted_at": r.get::<_, Option<chrono::DateTime<chrono::Utc>>>("deleted_at"),
                "size": bytes.map(|b| crate::ledger::size::size_json(
                    b,
                    r.get("latest_collected_at"),
                    r.get("latest_collected_date"),
                )),
                "growth_bytes_per_day": r.get::<_, Option<i64>>("growth_bytes_per_day"),
            })
        })
        .await?;
    Ok(ApiResponse::ok(page))
}
