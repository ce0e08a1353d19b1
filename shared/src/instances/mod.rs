//! Instances: the managed database servers (function `api-instances`). `api` holds the
//! handlers, `validate` the field rules; the list filters are `crate::filters`.

pub mod api;
pub mod validate;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;

use crate::web::ApiError;

/// Columns every instance response carries (alias `i`), with its tags and credential.
pub const COLUMNS: &str = "i.id, i.name, i.db_type, i.host, i.port, i.database_name, i.description, \
    i.is_active, i.exclude_databases, i.version, i.last_collected_at, i.created_at, i.updated_at, i.deleted_at, \
    (SELECT json_build_object('id', c.id, 'name', c.name, 'username', c.username) \
       FROM credentials c WHERE c.id = i.credential_id) AS credential, \
    COALESCE((SELECT json_agg(json_build_object('id', t.id, 'name', t.name, 'display_name', t.display_name, \
       'category', t.category) ORDER BY t.name) \
       FROM instance_tags it JOIN tags t ON t.id = it.tag_id WHERE it.instance_id = i.id), '[]'::json) AS tags";

/// `deleted`, `active` or `inactive`: what the API and the export call an instance's state.
pub fn status(is_active: bool, deleted_at: Option<DateTime<Utc>>) -> &'static str {
    match (deleted_at, is_active) {
        (Some(_), _) => "deleted",
        (None, true) => "active",
        (None, false) => "inactive",
    }
}

#[derive(Debug, Serialize)]
pub struct Instance {
    pub id: i64,
    pub name: String,
    pub db_type: String,
    pub host: String,
    pub port: i32,
    pub database_name: Option<String>,
    pub description: Option<String>,
    pub is_active: bool,
    pub status: &'static str,
    pub exclude_databases: Vec<String>,
    pub version: Option<String>,
    pub last_collected_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub credential: Option<Value>,
    pub tags: Value,
}

impl Instance {
    /// From a row of [`COLUMNS`].
    pub fn from_row(row: &Row) -> Result<Self, ApiError> {
        let is_active = row.try_get("is_active")?;
        let deleted_at = row.try_get("deleted_at")?;
        Ok(Instance {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            db_type: row.try_get("db_type")?,
            host: row.try_get("host")?,
            port: row.try_get("port")?,
            database_name: row.try_get("database_name")?,
            description: row.try_get("description")?,
            is_active,
            status: status(is_active, deleted_at),
            exclude_databases: row.try_get("exclude_databases")?,
            version: row.try_get("version")?,
            last_collected_at: row.try_get("last_collected_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            deleted_at,
            credential: row.try_get("credential")?,
            tags: row.try_get("tags")?,
        })
    }
}

/// Fetches one instance (with tags and credential); deleted ones only when asked.
pub async fn fetch<C: GenericClient>(
    client: &C,
    id: i64,
    include_deleted: bool,
) -> Result<Instance, ApiError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM instances i WHERE i.id = $1 AND ($2 OR i.deleted_at IS NULL)"
    );
    let row = client
        .query_opt(&sql, &[&id, &include_deleted])
        .await?
        .ok_or_else(|| ApiError::not_found("instance"))?;
    Instance::from_row(&row)
}
