//! Tags (function `api-tags`); the bulk actions live in `bulk` (function `tags-bulk`).

pub mod bulk;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::values;
use crate::web::list::{SortSpec, Source};
use crate::web::sql::{self, insert_named, Update};
use crate::web::{ApiError, ApiResponse, ApiResult, ListParams, Req};
use crate::App;

/// `instance_count` counts links to non-deleted instances.
const COLUMNS: &str =
    "t.id, t.name, t.display_name, t.category, t.is_active, t.created_at, t.updated_at, \
    (SELECT count(*) FROM instance_tags it WHERE it.tag_id = t.id AND NOT EXISTS \
      (SELECT 1 FROM instances i WHERE i.id = it.instance_id AND i.deleted_at IS NOT NULL)) AS instance_count";

crate::row_struct! {
    #[derive(Debug, Serialize)]
    struct Tag {
        id: i64,
        name: String,
        display_name: String,
        category: String,
        is_active: bool,
        instance_count: i64,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    }
}

static SORTS: SortSpec = crate::sorts! {
    "t.id";
    name asc "t.name" text, id desc "t.id" bigint, display_name asc "t.display_name" text,
    category asc "t.category" text, created_at desc "t.created_at" timestamptz
};

pub async fn list(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let mut params = ListParams::parse(q, &SORTS)?;
    let sql = &mut params.sql;
    sql.search(
        q.text("search"),
        &["t.name", "t.display_name", "t.category"],
    )
    .eq("t.category", q.text("category").map(str::to_string));
    match q.one_of("status", &["active", "inactive", "all"])? {
        Some("active") => sql.and("t.is_active"),
        Some("inactive") => sql.and("NOT t.is_active"),
        _ => sql,
    };
    params
        .respond::<Tag>(app, Source::new(COLUMNS, "tags t"))
        .await
}

async fn fetch(client: &impl deadpool_postgres::GenericClient, id: i64) -> Result<Tag, ApiError> {
    let statement = format!("SELECT {COLUMNS} FROM tags t WHERE t.id = $1");
    sql::one(client, &statement, &[&id], "tag").await
}

pub async fn get(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let client = app.db.get().await?;
    Ok(ApiResponse::ok(fetch(&client, id).await?))
}

fn valid_name(v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() || v.len() > 50 || !values::is_identifier(v) {
        return Err(ApiError::validation(
            "name",
            "name must match ^[A-Za-z0-9_-]{1,50}$",
        ));
    }
    Ok(v.to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    display_name: String,
    category: String,
    is_active: Option<bool>,
}

pub async fn create(app: &App, req: Req) -> ApiResult {
    let body: CreateBody = req.json()?;
    let name = valid_name(&body.name)?;
    let display_name = values::text("display_name", &body.display_name, 100)?;
    let category = values::text("category", &body.category, 50)?;
    let client = app.db.get().await?;
    let id = insert_named(
        &client,
        "INSERT INTO tags (name, display_name, category, is_active) VALUES ($1, $2, $3, $4) RETURNING id",
        &[&name, &display_name, &category, &body.is_active.unwrap_or(true)],
        "tag",
        &name,
    )
    .await?;
    let tag = fetch(&client, id).await?;
    Ok(ApiResponse::created_at("/tags", id, tag))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    display_name: Option<String>,
    category: Option<String>,
    is_active: Option<bool>,
}

pub async fn update(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let body: PatchBody = req.json()?;
    let text = |field: &str, v: &Option<String>, max| {
        v.as_deref()
            .map(|v| values::text(field, v, max))
            .transpose()
    };
    let mut update = Update::default();
    update
        .set_name(body.name.as_deref().map(valid_name).transpose()?)
        .set_some(
            "display_name",
            text("display_name", &body.display_name, 100)?,
        )
        .set_some("category", text("category", &body.category, 50)?)
        .set_some("is_active", body.is_active);
    let client = app.db.get().await?;
    update.run(&client, "tags", id, "", "tag").await?;
    Ok(ApiResponse::ok(fetch(&client, id).await?))
}

/// Deletes the given tags that have no links, in one transaction; the rows are locked first
/// so a concurrent assign cannot slip a link in between the check and the delete.
/// Returns `(id, status, instance_count)` per requested id.
async fn delete_unlinked(
    app: &App,
    ids: &[i64],
) -> Result<Vec<(i64, &'static str, i64)>, ApiError> {
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "WITH locked AS (SELECT id FROM tags WHERE id = ANY($1::bigint[]) FOR UPDATE) \
             SELECT l.id, (SELECT count(*) FROM instance_tags it WHERE it.tag_id = l.id) FROM locked l",
            &[&ids],
        )
        .await?;
    let found = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<std::collections::HashMap<i64, i64>, ApiError>>()?;
    let deletable: Vec<i64> = found
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();
    if !deletable.is_empty() {
        tx.execute(
            "DELETE FROM tags WHERE id = ANY($1::bigint[])",
            &[&deletable],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ids
        .iter()
        .map(|id| match found.get(id) {
            None => (*id, "not_found", 0),
            Some(0) => (*id, "deleted", 0),
            Some(n) => (*id, "in_use", *n),
        })
        .collect())
}

pub async fn delete(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let (_, status, count) = delete_unlinked(app, &[id]).await?[0];
    match status {
        "deleted" => Ok(ApiResponse::ok(json!({"id": id, "deleted": true}))),
        "in_use" => Err(ApiError::conflict(
            "TAG_IN_USE",
            format!("tag is linked to {count} instance(s)"),
        )
        .with_details(json!({"instance_count": count}))),
        _ => Err(ApiError::not_found("tag")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchDeleteBody {
    tag_ids: Vec<i64>,
}

pub async fn batch_delete(app: &App, req: Req) -> ApiResult {
    let body: BatchDeleteBody = req.json()?;
    if body.tag_ids.is_empty() {
        return Err(ApiError::validation("tag_ids", "tag_ids must not be empty"));
    }
    let ids = crate::values::ids("tag_ids", &body.tag_ids, 1000)?;
    let results = delete_unlinked(app, &ids).await?;
    let all_deleted = results.iter().all(|r| r.1 == "deleted");
    let items: Vec<Value> = results
        .iter()
        .map(|(id, status, n)| {
            if *status == "in_use" {
                json!({"tag_id": id, "status": status, "instance_count": n})
            } else {
                json!({"tag_id": id, "status": status})
            }
        })
        .collect();
    let deleted = results.iter().filter(|r| r.1 == "deleted").count();
    let data = json!({"results": items, "deleted_count": deleted});
    Ok(if all_deleted {
        ApiResponse::ok(data)
    } else {
        ApiResponse::multi_status(data)
    })
}

pub async fn categories(app: &App, _req: Req) -> ApiResult {
    let client = app.db.get().await?;
    let rows = client
        .query(
            "SELECT DISTINCT category FROM tags WHERE category <> '' ORDER BY category",
            &[],
        )
        .await?;
    let cats = rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<String>, _>>()?;
    Ok(ApiResponse::ok(json!({"categories": cats})))
}
