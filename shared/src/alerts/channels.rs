//! `/alert-channels` (admin): where digests go. A webhook's secret is write-only, like a
//! credential's password: encrypted under the credential key and bound to the channel's row,
//! never in a response, a log line or an export; responses say only `has_secret`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ChannelKind;
use crate::values;
use crate::web::list::{SortSpec, Source};
use crate::web::request::double_option;
use crate::web::sql::{self, insert_named, Update};
use crate::web::{ApiError, ApiResponse, ApiResult, ListParams, Req};
use crate::App;

const COLUMNS: &str =
    "c.id, c.name, c.kind, c.url, c.secret_ciphertext IS NOT NULL AS has_secret, \
    c.is_active, c.created_at, c.updated_at, \
    (SELECT count(*) FROM alert_rule_channels rc WHERE rc.channel_id = c.id) AS rule_count";
const TABLE: (&str, &str, &str) = (COLUMNS, "alert_channels c", "c.id");

pub const MAX_URL: usize = 2048;
pub const MAX_SECRET: usize = 256;

crate::row_struct! {
    #[derive(Debug, Serialize)]
    struct Channel {
        id: i64,
        name: String,
        kind: ChannelKind,
        url: Option<String>,
        has_secret: bool,
        is_active: bool,
        rule_count: i64,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    }
}

static SORTS: SortSpec = crate::sorts! {
    "c.id";
    name asc "c.name" text, id desc "c.id" bigint
};

pub async fn list(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let kind = q.pick::<ChannelKind>("kind")?.map(ChannelKind::as_str);
    ListParams::filtered::<Channel>(app, q, &SORTS, Source::new(COLUMNS, TABLE.1), |sql| {
        sql.eq("c.kind", kind);
    })
    .await
}

pub async fn get(app: &App, req: Req) -> ApiResult {
    let client = app.db.get().await?;
    let c: Channel = sql::by_id(&client, TABLE, req.id("id")?, "alert channel").await?;
    Ok(ApiResponse::ok(c))
}

/// A webhook URL: http or https, with a host, no user name or password (the URL is shown
/// back; a secret belongs in `secret`), at most 2,048 characters.
pub fn valid_url(v: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::validation("url", format!("url {why}"));
    if v.trim() != v {
        return Err(bad("must not start or end with white space"));
    }
    if v.chars().count() > MAX_URL {
        return Err(bad("must be at most 2048 characters"));
    }
    let url = reqwest::Url::parse(v).map_err(|_| bad("must be an absolute http or https URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must use http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("must have a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not hold a user name or password"));
    }
    // Stored as parsed (`http:///x` is `http://x/`): what is shown is what is called. Parsing
    // may lengthen it (a path of `/` added, escapes): the column holds 2,048.
    let url = url.to_string();
    if url.len() > MAX_URL {
        return Err(bad("must be at most 2048 characters once normalised"));
    }
    Ok(url)
}

fn valid_secret(v: &str) -> Result<&str, ApiError> {
    // Characters, as the contract counts them.
    if v.is_empty() || v.chars().count() > MAX_SECRET {
        return Err(ApiError::validation(
            "secret",
            format!("secret must have 1 to {MAX_SECRET} characters"),
        ));
    }
    Ok(v)
}

/// The URL a kind needs: webhooks one, `sns` none (the deployment's topic).
fn url_for(kind: ChannelKind, url: Option<&str>) -> Result<Option<String>, ApiError> {
    match (kind, url) {
        (ChannelKind::Sns, None) => Ok(None),
        (ChannelKind::Sns, Some(_)) => Err(ApiError::validation(
            "url",
            "an sns channel has no url (it publishes to the deployment's topic)",
        )),
        (_, Some(u)) => valid_url(u).map(Some),
        (_, None) => Err(ApiError::validation("url", "url is required for this kind")),
    }
}

fn check_secret_kind(kind: ChannelKind) -> Result<(), ApiError> {
    if matches!(kind, ChannelKind::Sns | ChannelKind::Slack) {
        return Err(ApiError::validation(
            "secret",
            "secret applies to webhook and feishu channels only",
        ));
    }
    Ok(())
}

// No Debug derive on bodies holding a secret: nothing can print it by accident.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    kind: String,
    url: Option<String>,
    secret: Option<String>,
    is_active: Option<bool>,
}

fn parse_kind(v: &str) -> Result<ChannelKind, ApiError> {
    v.parse().map_err(|_| {
        ApiError::validation(
            "kind",
            format!(
                "kind must be one of: {}",
                <ChannelKind as values::TextEnum>::ALL.join(", ")
            ),
        )
    })
}

/// Encrypts channel `id`'s secret under the current key version (in the caller's
/// transaction).
async fn seal(
    app: &App,
    tx: &deadpool_postgres::Transaction<'_>,
    id: i64,
    secret: &str,
) -> Result<(i32, Vec<u8>), ApiError> {
    let (version, fp) = crate::credentials::current_key(app, tx).await?;
    let cipher = app
        .credential_key
        .seal(&fp, ("alert-channel", id), version, secret)?;
    Ok((version, cipher))
}

pub async fn create(app: &App, req: Req) -> ApiResult {
    let body: CreateBody = req.json()?;
    let name = values::text("name", &body.name, 100)?;
    let kind = parse_kind(&body.kind)?;
    let url = url_for(kind, body.url.as_deref())?;
    let secret = body.secret.as_deref().map(valid_secret).transpose()?;
    if secret.is_some() {
        check_secret_kind(kind)?;
    }
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let next_id = "SELECT nextval(pg_get_serial_sequence('alert_channels', 'id'))";
    let id: i64 = sql::scalar(&tx, next_id, &[]).await?;
    let (version, cipher) = match secret {
        Some(s) => {
            let (v, c) = seal(app, &tx, id, s).await?;
            (Some(v), Some(c))
        }
        None => (None, None),
    };
    insert_named(
        &tx,
        "INSERT INTO alert_channels (id, name, kind, url, secret_ciphertext, key_version, is_active) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        &[
            &id,
            &name,
            &kind.as_str(),
            &url,
            &cipher,
            &version,
            &body.is_active.unwrap_or(true),
        ],
        "alert channel",
        &name,
    )
    .await?;
    let channel: Channel = sql::by_id(&tx, TABLE, id, "alert channel").await?;
    tx.commit().await?;
    Ok(ApiResponse::created_at("/alert-channels", id, channel))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    url: Option<String>,
    /// `null` removes the secret.
    #[serde(default, deserialize_with = "double_option")]
    secret: Option<Option<String>>,
    is_active: Option<bool>,
}

pub async fn update(app: &App, req: Req) -> ApiResult {
    let (id, body): (i64, PatchBody) = req.id_and_json()?;
    let name = body
        .name
        .as_deref()
        .map(|n| values::text("name", n, 100))
        .transpose()?;
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let lock = "SELECT kind FROM alert_channels WHERE id = $1 FOR UPDATE";
    let kind: ChannelKind = sql::row(&tx, lock, &[&id], "alert channel")
        .await?
        .try_get(0)?;
    let mut update = Update::default();
    update.set_name(name).set_some("is_active", body.is_active);
    if body.url.is_some() {
        update.set("url", url_for(kind, body.url.as_deref())?);
    }
    match &body.secret {
        None => {}
        Some(None) => {
            update
                .set("secret_ciphertext", None::<Vec<u8>>)
                .set("key_version", None::<i32>);
        }
        Some(Some(s)) => {
            check_secret_kind(kind)?;
            let (version, cipher) = seal(app, &tx, id, valid_secret(s)?).await?;
            update
                .set("secret_ciphertext", cipher)
                .set("key_version", version);
        }
    }
    update
        .run(&tx, "alert_channels", id, "", "alert channel")
        .await?;
    let channel: Channel = sql::by_id(&tx, TABLE, id, "alert channel").await?;
    tx.commit().await?;
    Ok(ApiResponse::ok(channel))
}

/// A channel some rule sends to cannot be deleted (409 naming how many).
pub async fn delete(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let lock = "SELECT 1 FROM alert_channels WHERE id = $1 FOR UPDATE";
    sql::row(&tx, lock, &[&id], "alert channel").await?;
    let count = "SELECT count(*) FROM alert_rule_channels WHERE channel_id = $1";
    let used: i64 = sql::scalar(&tx, count, &[&id]).await?;
    if used > 0 {
        return Err(ApiError::conflict(
            "CONFLICT",
            format!("alert channel is used by {used} rule(s)"),
        )
        .with_details(json!({"rule_count": used})));
    }
    tx.execute("DELETE FROM alert_channels WHERE id = $1", &[&id])
        .await?;
    tx.commit().await?;
    Ok(ApiResponse::ok(json!({"id": id, "deleted": true})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_validated() {
        for ok in [
            "https://hooks.slack.com/services/T/B/x",
            "http://127.0.0.1:8080/hook",
        ] {
            assert!(valid_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://x/y",
            "not a url",
            "https://user:pw@example.com/",
            "file:///etc/passwd",
            "/relative",
        ] {
            assert_eq!(
                valid_url(bad).unwrap_err().field.as_deref(),
                Some("url"),
                "{bad}"
            );
        }
        assert!(valid_url(&format!("https://e.com/{}", "a".repeat(2100))).is_err());
    }
}
