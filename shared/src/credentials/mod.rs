//! Credentials for managed databases (admin only). The password is write-only: encrypted
//! with AES-256-GCM on the way in, never in a response or a log line.

pub mod keys;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::values;
use crate::web::list::{SortSpec, Source};
use crate::web::sql::{self, insert_named, Update};
use crate::web::{ApiError, ApiResponse, ApiResult, Audit, ListParams, Req};
use crate::App;

const COLUMNS: &str =
    "c.id, c.name, c.username, c.password_ciphertext IS NOT NULL AS has_password, \
    c.created_at, c.updated_at, \
    (SELECT count(*) FROM instances i WHERE i.credential_id = c.id) AS instance_count";

crate::row_struct! {
    /// A credential as the API shows it: never the password, only whether it has one.
    #[derive(Debug, Serialize)]
    struct Credential {
        id: i64,
        name: String,
        username: String,
        has_password: bool,
        instance_count: i64,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    }
}

static SORTS: SortSpec = crate::sorts! {
    "c.id";
    name asc "c.name" text, id desc "c.id" bigint, created_at desc "c.created_at" timestamptz
};

pub async fn list(app: &App, req: Req) -> ApiResult {
    let mut params = ListParams::parse(&req.query, &SORTS)?;
    let sql = &mut params.sql;
    sql.search(req.query.text("search"), &["c.name", "c.username"]);
    params
        .respond::<Credential>(app, Source::new(COLUMNS, "credentials c"))
        .await
}

const TABLE: (&str, &str, &str) = (COLUMNS, "credentials c", "c.id");

async fn fetch(
    client: &impl deadpool_postgres::GenericClient,
    id: i64,
) -> Result<Credential, ApiError> {
    sql::by_id(client, TABLE, id, "credential").await
}

pub async fn get(app: &App, req: Req) -> ApiResult {
    let client = app.db.get().await?;
    Ok(ApiResponse::ok(fetch(&client, req.id("id")?).await?))
}

fn valid_name(v: &str) -> Result<String, ApiError> {
    values::text("name", v, 100)
}

fn valid_username(v: &str) -> Result<String, ApiError> {
    values::text("username", v, 128)
}

fn valid_password(v: &str) -> Result<&str, ApiError> {
    // Empty is allowed: some servers authenticate the user without one (trust, socket).
    if v.chars().count() > 1024 {
        return Err(ApiError::validation(
            "password",
            "password must be at most 1024 characters",
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
    let next_id = "SELECT nextval(pg_get_serial_sequence('credentials', 'id'))";
    let id: i64 = sql::scalar(&tx, next_id, &[]).await?;
    let (version, cipher) = encrypt(app, &tx, id, password).await?;
    insert_named(
        &tx,
        "INSERT INTO credentials (id, name, username, password_ciphertext, key_version) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        &[&id, &name, &username, &cipher, &version],
        "credential",
        &name,
    )
    .await?;
    let credential = fetch(&tx, id).await?;
    tx.commit().await?;
    Ok(ApiResponse::created_at("/credentials", id, credential))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

pub async fn update(app: &App, req: Req) -> ApiResult {
    let (id, body): (i64, PatchBody) = req.id_and_json()?;
    let name = body.name.as_deref().map(valid_name).transpose()?;
    let username = body.username.as_deref().map(valid_username).transpose()?;
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let old = fetch(&tx, id).await?;
    let mut update = Update::default();
    update.set_name(name).set_some("username", username);
    if let Some(p) = &body.password {
        let (version, cipher) = encrypt(app, &tx, id, valid_password(p)?).await?;
        update
            .set("password_ciphertext", cipher)
            .set("key_version", version);
    }
    update.run(&tx, "credentials", id, "", "credential").await?;
    let credential = fetch(&tx, id).await?;
    tx.commit().await?;
    // The password is write-only: the trail says it changed, never what it is.
    let mut audit = Audit::diff(&old, &credential);
    if body.password.is_some() {
        audit = audit.changed("password");
    }
    Ok(ApiResponse::ok(credential).audit(audit))
}

pub async fn delete(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let lock = "SELECT 1 FROM credentials WHERE id = $1 FOR UPDATE";
    sql::row(&tx, lock, &[&id], "credential").await?;
    let count = "SELECT count(*) FROM instances WHERE credential_id = $1";
    let used: i64 = sql::scalar(&tx, count, &[&id]).await?;
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
    let (version, fp) = current_key(app, client).await?;
    let cipher = app.credential_key.encrypt_for(&fp, id, version, password)?;
    Ok((version, cipher))
}

/// The current key version and its fingerprint, locking out a rotation until the caller's
/// transaction ends (every secret at rest is encrypted under it).
pub async fn current_key<C: deadpool_postgres::GenericClient>(
    app: &App,
    client: &C,
) -> Result<(i32, String), ApiError> {
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
    Ok((version, fp))
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
    let username: String = row.try_get(0)?;
    let cipher: Option<Vec<u8>> = row.try_get(1)?;
    let password = match cipher {
        Some(c) => app.credential_key.decrypt_for(cid, row.try_get(2)?, &c)?,
        None => String::new(),
    };
    Ok(Some((username, password)))
}
