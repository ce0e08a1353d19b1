//! The table handlers (function `api-databases`): one database's tables, one table's
//! history, the fleet's top tables, and the two actions (collect tables for instances in bulk,
//! refresh one database's tables now).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::queue::CollectMessage;
use crate::values::{self, FromRow};
use crate::web::list::{parse_limit, SortSpec, Source};
use crate::web::sql::Sql;
use crate::web::{ApiError, ApiResponse, ApiResult, ListParams, Req};
use crate::App;

/// Each sort within one database; total and name walk the V10 indexes.
static SORTS: SortSpec = crate::sorts! {
    "t.id";
    total desc "t.total_bytes" bigint,
    data desc "t.data_bytes" bigint,
    index desc "t.index_bytes" bigint,
    growth_7d desc "COALESCE(t.growth_7d_bytes, '-9223372036854775808'::bigint)" bigint,
    growth_30d desc "COALESCE(t.growth_30d_bytes, '-9223372036854775808'::bigint)" bigint,
    name asc "t.table_name" text
};

const COLUMNS: &str =
    "t.id, t.schema_name, t.table_name, t.kind, t.parent_name, t.engine, t.is_active, \
    t.total_bytes, t.data_bytes, t.index_bytes, t.toast_bytes, t.free_bytes, t.row_estimate, \
    t.growth_7d_bytes, t.growth_30d_bytes, t.has_history, t.first_seen_date, t.last_seen_date, \
    t.deleted_at, t.collected_at, t.collected_date";

crate::row_struct! {
    /// One table's latest size.
    #[derive(Debug, Serialize)]
    struct Table {
        id: i64,
        schema_name: String,
        table_name: String,
        kind: String,
        parent_name: Option<String>,
        engine: Option<String>,
        is_active: bool,
        total_bytes: i64,
        data_bytes: i64,
        index_bytes: i64,
        toast_bytes: Option<i64>,
        free_bytes: Option<i64>,
        row_estimate: Option<i64>,
        growth_7d_bytes: Option<i64>,
        growth_30d_bytes: Option<i64>,
        has_history: bool,
        first_seen_date: NaiveDate,
        last_seen_date: NaiveDate,
        deleted_at: Option<DateTime<Utc>>,
        collected_at: DateTime<Utc>,
        collected_date: NaiveDate,
    }
}

/// The database a route names: its instance and name (404 when it or its instance is gone).
async fn database(
    client: &impl deadpool_postgres::GenericClient,
    id: i64,
) -> Result<tokio_postgres::Row, ApiError> {
    crate::web::sql::row(
        client,
        "SELECT d.instance_id, d.database_name, i.host, i.port FROM instance_databases d \
         JOIN instances i ON i.id = d.instance_id WHERE d.id = $1 AND i.deleted_at IS NULL",
        &[&id],
        "database",
    )
    .await
}

/// `GET /databases/{id}/tables`: keyset pages; `schema`, `name` (contains), `include_inactive`.
pub async fn list(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let q = &req.query;
    let mut params = ListParams::parse(q, &SORTS)?;
    let include_inactive = q.bool("include_inactive")?;
    let client = app.db.get().await?;
    let db = database(&client, id).await?;
    let sql = &mut params.sql;
    sql.eq("t.instance_id", Some(db.try_get::<_, i64>("instance_id")?))
        .eq(
            "t.database_name",
            Some(db.try_get::<_, String>("database_name")?),
        )
        .eq("t.schema_name", q.text("schema").map(str::to_string))
        .search(q.text("name"), &["t.table_name"]);
    if !include_inactive {
        sql.and("t.is_active");
    }
    let page = params
        .fetch(
            &client,
            Source::new(COLUMNS, "instance_tables t"),
            Table::from_row,
        )
        .await?;
    Ok(ApiResponse::ok(page))
}

crate::row_struct! {
    #[derive(Debug, Serialize)]
    struct DaySize {
        collected_date: NaiveDate,
        total_bytes: i64,
        data_bytes: i64,
        index_bytes: i64,
        toast_bytes: Option<i64>,
        row_estimate: Option<i64>,
        collected_at: DateTime<Utc>,
    }
}

crate::row_struct! {
    #[derive(Debug, Serialize)]
    struct TableRef {
        id: i64,
        instance_id: i64,
        instance_name: String,
        db_type: String,
        database_id: Option<i64>,
        database_name: String,
        schema_name: String,
        table_name: String,
        kind: String,
        is_active: bool,
    }
}

/// The table with where it lives (alias `t`, instance `i`, database `d`).
const REF_COLUMNS: &str =
    "t.id, t.instance_id, i.name AS instance_name, i.db_type, d.id AS database_id, \
    t.database_name, t.schema_name, t.table_name, t.kind, t.is_active";
const REF_FROM: &str = "instance_tables t JOIN instances i ON i.id = t.instance_id \
    LEFT JOIN instance_databases d ON d.instance_id = t.instance_id AND d.database_name = t.database_name";

#[derive(Debug, Serialize)]
struct History {
    #[serde(flatten)]
    table: TableRef,
    start_date: NaiveDate,
    end_date: NaiveDate,
    items: Vec<DaySize>,
}

/// `GET /tables/{id}/sizes?start_date=&end_date=`: at most 400 days (default the last 30).
pub async fn sizes(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let range = crate::ledger::sizes_range(&req.query, app.config.business_date(Utc::now()))?;
    let client = app.db.get().await?;
    let table: TableRef = crate::web::sql::one(
        &client,
        &format!("SELECT {REF_COLUMNS} FROM {REF_FROM} WHERE t.id = $1 AND i.deleted_at IS NULL"),
        &[&id],
        "table",
    )
    .await?;
    // Literal dates (parsed, never request text) let the planner prune months at plan time.
    let history = format!(
        "SELECT collected_date, total_bytes, data_bytes, index_bytes, toast_bytes, row_estimate, collected_at \
         FROM table_size_stats WHERE table_id = $1 \
           AND collected_date >= DATE '{}' AND collected_date <= DATE '{}' ORDER BY collected_date",
        range.start.format("%Y-%m-%d"),
        range.end.format("%Y-%m-%d"),
    );
    let items = client
        .query(&history, &[&id])
        .await?
        .iter()
        .map(DaySize::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ApiResponse::ok(History {
        table,
        start_date: range.start,
        end_date: range.end,
        items,
    }))
}

crate::text_enum! {
    /// What `GET /tables/top` ranks by.
    pub enum TopBy { Size = "size", Growth7d = "growth_7d", Growth30d = "growth_30d" }
}

impl TopBy {
    /// The ranking expression: exactly the V10 partial index's, so the top is an index walk.
    fn order(self) -> (&'static str, &'static str) {
        match self {
            TopBy::Size => ("t.total_bytes", ""),
            TopBy::Growth7d => ("t.growth_7d_bytes", "t.growth_7d_bytes IS NOT NULL"),
            TopBy::Growth30d => ("t.growth_30d_bytes", "t.growth_30d_bytes IS NOT NULL"),
        }
    }
}

crate::row_struct! {
    #[derive(Debug, Serialize)]
    struct TopTable {
        id: i64,
        instance_id: i64,
        instance_name: String,
        db_type: String,
        database_id: Option<i64>,
        database_name: String,
        schema_name: String,
        table_name: String,
        kind: String,
        engine: Option<String>,
        total_bytes: i64,
        data_bytes: i64,
        index_bytes: i64,
        growth_7d_bytes: Option<i64>,
        growth_30d_bytes: Option<i64>,
        collected_at: DateTime<Utc>,
    }
}

/// `GET /tables/top?by=size|growth_7d|growth_30d&limit=`: the fleet's largest or
/// fastest-growing tables (partitions count in their parent), filtered by `db_type`,
/// `tag`/`tag_mode`, `instance_id`.
pub async fn top(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let by = q.pick::<TopBy>("by")?.unwrap_or(TopBy::Size);
    let limit = parse_limit(q)?;
    let mut sql = Sql::default();
    crate::filters::tables(q, &mut sql)?;
    let (expr, cond) = by.order();
    if !cond.is_empty() {
        sql.and(cond);
    }
    sql.and("t.kind <> 'partition'");
    sql.text = format!(
        "SELECT t.id, t.instance_id, i.name AS instance_name, i.db_type, d.id AS database_id, \
         t.database_name, t.schema_name, t.table_name, t.kind, t.engine, t.total_bytes, t.data_bytes, \
         t.index_bytes, t.growth_7d_bytes, t.growth_30d_bytes, t.collected_at FROM {REF_FROM}"
    );
    sql.push_where();
    sql.push(&format!(" ORDER BY {expr} DESC, t.id DESC LIMIT {limit}"));
    let client = app.db.get().await?;
    let items = client
        .query(&sql.text, &sql.params())
        .await?
        .iter()
        .map(TopTable::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ApiResponse::ok(
        json!({"by": by, "limit": limit, "items": items}),
    ))
}

/// The most instance ids one bulk change may name.
const MAX_INSTANCE_IDS: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectTablesBody {
    instance_ids: Option<Vec<i64>>,
    tag_id: Option<i64>,
    enabled: bool,
}

/// `POST /instances/actions/set-collect-tables` `{instance_ids | tag_id, enabled}`: one
/// statement whatever the number of instances.
pub async fn set_collect_tables(app: &App, req: Req) -> ApiResult {
    let body: CollectTablesBody = req.json()?;
    let ids = match (&body.instance_ids, body.tag_id) {
        (Some(ids), None) if !ids.is_empty() => {
            Some(values::ids("instance_ids", ids, MAX_INSTANCE_IDS)?)
        }
        (None, Some(tag)) if tag > 0 => None,
        (None, Some(_)) => {
            return Err(ApiError::validation(
                "tag_id",
                "tag_id must be a positive integer",
            ))
        }
        _ => {
            return Err(ApiError::validation(
                "instance_ids",
                "give exactly one of instance_ids (not empty) or tag_id",
            ))
        }
    };
    let client = app.db.get().await?;
    if let Some(tag) = body.tag_id {
        crate::web::sql::row(&client, "SELECT 1 FROM tags WHERE id = $1", &[&tag], "tag")
            .await
            .map_err(|e| e.with_field("tag_id"))?;
    }
    let updated = client
        .query(
            "UPDATE instances SET collect_tables = $1, updated_at = now() \
             WHERE deleted_at IS NULL AND collect_tables IS DISTINCT FROM $1 \
               AND (id = ANY($2::bigint[]) \
                    OR id IN (SELECT instance_id FROM instance_tags WHERE tag_id = $3)) \
             RETURNING id",
            &[&body.enabled, &ids, &body.tag_id],
        )
        .await?
        .len();
    let matched: i64 = crate::web::sql::scalar(
        &client,
        "SELECT count(*) FROM instances WHERE deleted_at IS NULL \
           AND (id = ANY($1::bigint[]) OR id IN (SELECT instance_id FROM instance_tags WHERE tag_id = $2))",
        &[&ids, &body.tag_id],
    )
    .await?;
    Ok(ApiResponse::ok(json!({
        "enabled": body.enabled,
        "matched": matched,
        "updated": updated,
    })))
}

/// `POST /databases/{id}/actions/refresh-tables`: a one-item run whose message goes on the
/// instance's FIFO group; 202 with the run and what was queued. One unfinished refresh per
/// database (409 while one is).
pub async fn refresh(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let mut client = app.db.get().await?;
    let db = database(&client, id).await?;
    let instance_id: i64 = db.try_get("instance_id")?;
    let database_name: String = db.try_get("database_name")?;
    let collected_date = app.config.business_date(Utc::now());
    let tx = client.transaction().await?;
    let Some(run) = tx
        .query_opt(
            "INSERT INTO task_runs (task_key, trigger, status, summary, items_total) \
             VALUES ($1, 'manual', 'running', $2, 1) ON CONFLICT DO NOTHING RETURNING run_id",
            &[
                &format!("{}:{id}", super::REFRESH_TASK_KEY),
                &json!({"database_id": id, "instance_id": instance_id,
                        "database_name": database_name, "collected_date": collected_date}),
            ],
        )
        .await?
    else {
        return Err(ApiError::conflict(
            "CONFLICT",
            "a table refresh of this database is already queued or running",
        ));
    };
    let run_id: uuid::Uuid = run.try_get(0)?;
    tx.execute(
        "INSERT INTO task_run_items (run_id, item_key, instance_id) VALUES ($1, $2, $3)",
        &[&run_id, &instance_id.to_string(), &instance_id],
    )
    .await?;
    tx.commit().await?;
    drop(client);
    let message = CollectMessage {
        run_id,
        instance_id,
        host: db.try_get("host")?,
        port: db.try_get("port")?,
        collected_date,
        tables_of: Some(database_name.clone()),
    };
    let group = message.group();
    if let Err(e) = app.queue.send_collect(vec![message]).await {
        let client = app.db.get().await?;
        client
            .execute(
                "UPDATE task_runs SET status = 'failed', completed_at = now(), error = $2 WHERE run_id = $1",
                &[&run_id, &format!("queueing failed: {e:#}")],
            )
            .await?;
        return Err(ApiError::unavailable(
            "the queue did not take the refresh; try again",
        ));
    }
    Ok(ApiResponse::accepted(json!({
        "run_id": run_id,
        "database_id": id,
        "instance_id": instance_id,
        "database_name": database_name,
        "collected_date": collected_date,
        "queue_group": group,
    }))
    .with_location("/task-runs", run_id))
}
