//! Instances: the managed database servers (function `api-instances`). `api` holds the
//! handlers, `validate` the field rules; `import` and `batch` onboard many at once; the list
//! filters are `crate::filters`.

pub mod api;
pub mod batch;
pub mod custody;
pub mod import;
pub mod validate;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::Value;

use crate::web::ApiError;

/// An instance's state as the API and the exports name it: `deleted`, `active` or
/// `inactive` (alias `i`).
macro_rules! status_sql {
    () => {
        "CASE WHEN i.deleted_at IS NOT NULL THEN 'deleted' \
         WHEN i.is_active THEN 'active' ELSE 'inactive' END"
    };
}
pub const STATUS: &str = status_sql!();

/// Columns every instance response carries (alias `i`), with its tags and credential.
pub const COLUMNS: &str = concat!("i.id, i.name, i.db_type, i.host, i.port, i.database_name, i.description, \
    i.is_active, i.collect_tables, ", status_sql!(), " AS status, i.exclude_databases, i.version, i.last_collected_at, \
    i.tls_mode, i.tls_ca_pem IS NOT NULL AS has_tls_ca, i.last_collection_encrypted, \
    CASE WHEN i.last_checked_at IS NOT NULL THEN json_build_object('status', i.last_check_status, \
       'message', i.last_check_message, 'checked_at', i.last_checked_at, 'duration_ms', i.last_check_ms) END AS last_check, \
    i.created_at, i.updated_at, i.deleted_at, \
    (SELECT json_build_object('id', c.id, 'name', c.name, 'username', c.username) \
       FROM credentials c WHERE c.id = i.credential_id) AS credential, \
    COALESCE((SELECT json_agg(json_build_object('id', t.id, 'name', t.name, 'display_name', t.display_name, \
       'category', t.category) ORDER BY t.name) \
       FROM instance_tags it JOIN tags t ON t.id = it.tag_id WHERE it.instance_id = i.id), '[]'::json) AS tags");

crate::row_struct! {
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
        /// Tables are read in the daily run after the sizes.
        pub collect_tables: bool,
        pub status: String,
        pub exclude_databases: Vec<String>,
        pub version: Option<String>,
        pub last_collected_at: Option<DateTime<Utc>>,
        /// How the collector connects (libpq's sslmode names).
        pub tls_mode: String,
        /// A CA bundle is set (the PEM itself is not returned).
        pub has_tls_ca: bool,
        /// Whether the last collection travelled over TLS; null before the first one.
        pub last_collection_encrypted: Option<bool>,
        /// The last connection check: `{status, message, checked_at, duration_ms}` (the
        /// server version it read is `version`); null before the first one.
        pub last_check: Option<Value>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
        pub deleted_at: Option<DateTime<Utc>>,
        pub credential: Option<Value>,
        pub tags: Value,
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
    crate::web::sql::one(client, &sql, &[&id, &include_deleted], "instance").await
}
