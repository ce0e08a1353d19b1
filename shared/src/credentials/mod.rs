//! Credentials for managed databases (admin only). The password is write-only: encrypted
//! with AES-256-GCM on the way in, never in a response or a log line.

pub mod keys;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio_postgres::Row;

use crate::http::list::{Order, SortField, SortSpec};
use crate::http::router::Route;
use crate::http::sql::{contains_pattern, Sql};
use crate::http::{ApiError, ApiResponse, ApiResult, ListParams, Req};
use crate::{route, App};

pub fn routes() -> Vec<Route> {
    vec![
        route!(GET "/credentials", Admin, "api-instances", list),
        route!(POST "/credentials", Admin, "api-instances", create),
        route!(GET "/credentials/{id}", Admin, "api-instances", get),
        route!(PATCH "/credentials/{id}", Admin, "api-instances", update),
        route!(DELETE "/credentials/{id}", Admin, "api-instances", delete),
    ]
}

const COLUMNS: &str =
    "c.id, c.name, c.username, c.password_ciphertext IS NOT NULL AS has_password, \
    c.created_at, c.updated_at, \
    (SELECT count(*) FROM instances i WHERE i.credential_id = c.id) AS instance_count";

fn credential_json(r: &Row) -> Value {
    json!({
        "id": r.get::<_, i64>("id"),
        "name": r.get::<_, String>("name"),
        "username": r.get::<_, String>("username"),
        "has_password": r.get::<_, bool>("has_password"),
        "instance_count": r.get::<_, i64>("instance_count"),
        "created_at": r.get::<_, chrono::DateTime<chrono::Utc>>("created_at"),
        "updated_at": r.get::<_, chrono::DateTime<chrono::Utc>>("updated_at"),
    })
}

static SORTS: SortSpec = SortSpec {
    fields: &[
        SortField {
            name: "name",
            expr: "c.name",
            sql_type: "text",
            default_order: Order::Asc,
        },
        SortField {
            name: "id",
            expr: "c.id",
            sql_type: "bigint",
            default_order: Order::Desc,
        },
        SortField {
            name: "created_at",
            expr: "c.created_at",
            sql_type: "timestamptz",
            default_order: Order::Desc,
        },
    ],
    id_expr: "c.id",
};

pub async fn list(app: &App, req: Req) -> ApiResult {
    let params = ListParams::parse(&req.query, &SORTS)?;
    let mut sql = Sql::default();
    let mut conds = Vec::new();
    if let Some(s) = req.query.text("search") {
        let p = sql.bind(contains_pattern(s));
        conds.push(format!("(c.name ILIKE {p} OR c.username ILIKE {p})"));
    }
    let client = app.db.get().await?;
    let page = params
        .fetch(
            &client,
            sql,
            conds,
            COLUMNS,
            "credentials c",
            credential_json,
        )
        .await?;
    Ok(ApiResponse::ok(page))
}

async fn fetch(client: &impl deadpool_postgres::GenericClient, id: i64) -> Result<Row, ApiError> {
    client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM credentials c WHERE c.id = $1"),
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("credential"))
}

pub async fn get(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let client = app.db.get().await?;
    Ok(ApiResponse::ok(credential_json(&fetch(&client, id).await?)))
}

fn valid_name(v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > 100 {
        return Err(ApiError::validation(
            "name",
            "name must have 1 to 100 characters",
        ));
    }
    Ok(v.to_string())
}

fn valid_username(v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > 128 {
        return Err(ApiError::validation(
            "username",
            "username must have 1 to 128 characters",
        ));
    }
    Ok(v.to_string())
}

fn valid_password(v: &str) -> Result<&str, ApiError> {
    // Empty is allowed: some servers authenticate the user without one (trust, socket).
    if v.len() > 1024 {
        return Err(ApiError::validation(
            "password",
            "password must be at most 1024 bytes",
        ));
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    username: String,
    password: String,
}

// No Debug derive on bodies holding a password: nothing can print it by accident.

pub async fn create(app: &App, req: Req) -> ApiResult {
    let body: CreateBody = req.json()?;
    let name = valid_name(&body.name)?;
    let username = valid_username(&body.username)?;
    let password = valid_password(&body.password)?;
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    // The id first: the ciphertext is bound to it.
    let id: i64 = tx
        .query_one(
            "SELECT nextval(pg_get_serial_sequence('credentials', 'id'))",
            &[],
        )
        .await?
        .get(0);
    let (version, cipher) = encrypt(app, &tx, id, password).await?;
    tx.execute(
        "INSERT INTO credentials (id, name, username, password_ciphertext, key_version) VALUES ($1, $2, $3, $4, $5)",
        &[&id, &name, &username, &cipher, &version],
    )
    .await
    .map_err(|e| ApiError::name_taken(e, "credential", &name))?;
    let row = fetch(&tx, id).await?;
    tx.commit().await?;
    Ok(ApiResponse::created(credential_json(&row))
        .with_header(http::header::LOCATION, &format!("/api/v1/credentials/{id}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

pub async fn update(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let body: PatchBody = req.json()?;
    let mut sql = Sql::default();
    let mut sets = vec!["updated_at = now()".to_string()];
    let name = body.name.as_deref().map(valid_name).transpose()?;
    if let Some(n) = &name {
        sets.push(format!("name = {}", sql.bind(n.clone())));
    }
    if let Some(u) = &body.username {
        sets.push(format!("username = {}", sql.bind(valid_username(u)?)));
    }
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    if let Some(p) = &body.password {
        let (version, cipher) = encrypt(app, &tx, id, valid_password(p)?).await?;
        sets.push(format!("password_ciphertext = {}", sql.bind(cipher)));
        sets.push(format!("key_version = {}", sql.bind(version)));
    }
    let idp = sql.bind(id);
    sql.text = format!(
        "UPDATE credentials SET {} WHERE id = {idp}",
        sets.join(", ")
    );
    let n = tx
        .execute(&sql.text, &sql.params())
        .await
        .map_err(|e| ApiError::name_taken(e, "credential", name.as_deref().unwrap_or("")))?;
    if n == 0 {
        return Err(ApiError::not_found("credential"));
    }
    let row = fetch(&tx, id).await?;
    tx.commit().await?;
    Ok(ApiResponse::ok(credential_json(&row)))
}

pub async fn delete(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    tx.query_opt("SELECT 1 FROM credentials WHERE id = $1 FOR UPDATE", &[&id])
        .await?
        .ok_or_else(|| ApiError::not_found("credential"))?;
    let used: i64 = tx
        .query_one(
            "SELECT count(*) FROM instances WHERE credential_id = $1",
            &[&id],
        )
        .await?
        .get(0);
    if used > 0 {
        return Err(ApiError::conflict(
            "CONFLICT",
            format!("credential is used by {used} instance(s)"),
        )
        .with_details(json!({"instance_count": used})));
    }
    tx.execute("DELETE FROM credentials WHERE id = $1", &[&id])
        .await?;
    tx.commit().await?;
    Ok(ApiResponse::ok(json!({"id": id, "deleted": true})))
}

/// Encrypts credential `id`'s password under the current key version (in the caller's
/// transaction, which keeps a rotation from slipping in between).
async fn encrypt<C: deadpool_postgres::GenericClient>(
    app: &App,
    client: &C,
    id: i64,
    password: &str,
) -> Result<(i32, Vec<u8>), ApiError> {
    client
        .execute(
            "LOCK TABLE credential_keys IN SHARE ROW EXCLUSIVE MODE",
            &[],
        )
        .await?;
    let (version, fp) = keys::current(client, &app.credential_key)
        .await
        .map_err(|e| match e.downcast::<tokio_postgres::Error>() {
            Ok(db) => ApiError::from(db),
            Err(e) => ApiError::unavailable(e.to_string()),
        })?;
    let cipher = app.credential_key.encrypt_for(&fp, id, version, password)?;
    Ok((version, cipher))
}

/// The decrypted password of an instance's credential, for collection only.
pub async fn secret_for_instance(
    app: &App,
    client: &impl deadpool_postgres::GenericClient,
    credential_id: Option<i64>,
) -> anyhow::Result<Option<(String, String)>> {
    let Some(cid) = credential_id else {
        return Ok(None);
    };
    let row = client
        .query_opt(
            "SELECT username, password_ciphertext, key_version FROM credentials WHERE id = $1",
            &[&cid],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let username: String = row.get(0);
    let cipher: Option<Vec<u8>> = row.get(1);
    let password = match cipher {
        Some(c) => app.credential_key.decrypt_for(cid, row.get(2), &c)?,
        None => String::new(),
    };
    Ok(Some((username, password)))
}
