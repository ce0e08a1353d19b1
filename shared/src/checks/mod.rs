//! Connection checks (function `api-instances`): can the service reach, authenticate to and
//! read the version of a server? For a saved instance (`POST /instances/{id}/actions/check`),
//! many at once (`POST /instances/actions/check`, the collection's rule: never two on one
//! host:port, at most `TIDEMARK_COLLECT_CONCURRENCY` at a time), or parameters not yet saved
//! (`POST /connection-checks`). A batch answers within 25 s (API Gateway's limit is 30):
//! checks not started by then are listed in `not_checked`. A saved instance keeps its last check (`last_check`,
//! `version`), which the instance list shows and filters (`check_status`).

mod classify;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::collect::adapter::{adapter_for, Adapter, Target};
use crate::instances::{custody, validate};
use crate::web::{ApiError, ApiResponse, ApiResult, Audit, Req, Role};
use crate::App;

pub use classify::{check, classify, Category, Outcome};

/// The most instance ids one batch check may name.
const MAX_IDS: usize = 200;

/// One saved instance ready to be checked, or why it cannot be.
struct Saved {
    id: i64,
    name: String,
    target: Result<(&'static dyn Adapter, Target), String>,
}

/// Loads the instances (not deleted) with their decrypted credentials: one statement.
async fn load(app: &App, ids: &[i64]) -> Result<Vec<Saved>, ApiError> {
    let client = app.db.get().await?;
    let rows = client
        .query(
            "SELECT i.id, i.name, i.db_type, i.host, i.port, i.database_name, i.tls_mode, i.tls_ca_pem, \
                    i.credential_id, c.username, c.password_ciphertext, c.key_version \
             FROM instances i LEFT JOIN credentials c ON c.id = i.credential_id \
             WHERE i.id = ANY($1) AND i.deleted_at IS NULL ORDER BY i.id",
            &[&ids],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let db_type: String = r.try_get("db_type")?;
        let port: i32 = r.try_get("port")?;
        let credential: Option<i64> = r.try_get("credential_id")?;
        let cipher: Option<Vec<u8>> = r.try_get("password_ciphertext")?;
        // Decryption fails only with the wrong key: about this instance, said without the
        // password.
        let password = match (credential, cipher) {
            (Some(cid), Some(c)) => app
                .credential_key
                .decrypt_for(cid, r.try_get("key_version")?, &c)
                .map(Some)
                .map_err(|e| format!("{e:#}")),
            _ => Ok(None),
        };
        let target = match (adapter_for(&db_type), password) {
            (None, _) => Err(format!("no adapter for db_type {db_type}")),
            (_, Err(e)) => Err(e),
            (Some(adapter), Ok(password)) => Ok((
                adapter,
                Target {
                    host: r.try_get("host")?,
                    port: u16::try_from(port).unwrap_or_default(),
                    username: r.try_get("username")?,
                    password,
                    database_name: r.try_get("database_name")?,
                    connect_timeout: app.config.connect_timeout,
                    statement_timeout: app.config.statement_timeout,
                    // The column's CHECK constraint admits only known modes.
                    tls_mode: crate::tls::TlsMode::parse(r.try_get("tls_mode")?)
                        .unwrap_or_default(),
                    tls_ca_pem: r.try_get("tls_ca_pem")?,
                },
            )),
        };
        out.push(Saved {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            target,
        });
    }
    Ok(out)
}

/// One instance's check in an answer.
#[derive(Debug, Serialize)]
struct Checked {
    instance_id: i64,
    name: String,
    #[serde(flatten)]
    outcome: Outcome,
}

/// A request's time for checks: API Gateway stops waiting at 30 s. A check not started by
/// then is reported as not checked rather than lost with the whole answer.
const BUDGET: Duration = Duration::from_secs(25);

/// Checks the instances: one host:port at a time each, at most `collect_concurrency` at once;
/// also the ids not started within [`BUDGET`].
async fn run(app: &App, saved: Vec<Saved>) -> (Vec<Checked>, Vec<i64>) {
    let deadline = Instant::now() + BUDGET;
    let mut by_host: BTreeMap<(String, u16), Vec<Saved>> = BTreeMap::new();
    let mut out = Vec::with_capacity(saved.len());
    for s in saved {
        match &s.target {
            Ok((_, t)) => by_host.entry((t.host.clone(), t.port)).or_default().push(s),
            Err(why) => out.push(Checked {
                instance_id: s.id,
                name: s.name.clone(),
                outcome: Outcome::failed(Category::Other, why.clone(), Default::default()),
            }),
        }
    }
    let checked = futures::stream::iter(by_host.into_values())
        .map(|group| async move {
            let (mut done, mut late) = (Vec::with_capacity(group.len()), Vec::new());
            for s in group {
                if Instant::now() >= deadline {
                    late.push(s.id);
                } else if let Ok((adapter, target)) = &s.target {
                    done.push(Checked {
                        instance_id: s.id,
                        name: s.name.clone(),
                        outcome: check(*adapter, target).await,
                    });
                }
            }
            (done, late)
        })
        .buffer_unordered(app.config.collect_concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut not_checked = Vec::new();
    for (done, late) in checked {
        out.extend(done);
        not_checked.extend(late);
    }
    out.sort_by_key(|c| c.instance_id);
    not_checked.sort_unstable();
    (out, not_checked)
}

/// Records each instance's last check: one statement whatever the number.
async fn save(app: &App, checked: &[Checked]) -> Result<(), ApiError> {
    let ids: Vec<i64> = checked.iter().map(|c| c.instance_id).collect();
    let status: Vec<&str> = checked.iter().map(|c| c.outcome.status.as_str()).collect();
    let message: Vec<Option<&str>> = checked
        .iter()
        .map(|c| c.outcome.message.as_deref())
        .collect();
    let version: Vec<Option<&str>> = checked
        .iter()
        .map(|c| c.outcome.version.as_deref())
        .collect();
    let ms: Vec<i32> = checked
        .iter()
        .map(|c| i32::try_from(c.outcome.duration_ms).unwrap_or(i32::MAX))
        .collect();
    app.db
        .get()
        .await?
        .execute(
            "UPDATE instances i SET last_check_status = c.status, last_check_message = c.message, \
                    last_checked_at = now(), last_check_ms = c.ms, version = COALESCE(c.version, i.version) \
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[]) \
                  AS c(id, status, message, version, ms) \
             WHERE i.id = c.id",
            &[&ids, &status, &message, &version, &ms],
        )
        .await?;
    Ok(())
}

/// `POST /instances/{id}/actions/check`: check a saved instance now.
pub async fn check_saved(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let saved = load(app, &[id]).await?;
    if saved.is_empty() {
        return Err(ApiError::not_found("instance"));
    }
    let (checked, _) = run(app, saved).await;
    save(app, &checked).await?;
    let one = checked
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("instance"))?;
    let audit = Audit::default().action("instances.check");
    let audit = audit.count(one.outcome.status.as_str(), 1);
    Ok(ApiResponse::ok(one).audit(audit))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    instance_ids: Vec<i64>,
}

/// `POST /instances/actions/check`: up to 200 saved instances; missing ids reported.
pub async fn check_many(app: &App, req: Req) -> ApiResult {
    let body: BatchBody = req.json()?;
    let ids = crate::values::id_list("instance_ids", &body.instance_ids, MAX_IDS)?;
    let saved = load(app, &ids).await?;
    let found: Vec<i64> = saved.iter().map(|s| s.id).collect();
    let missing = crate::values::missing(&ids, &found);
    let (checked, not_checked) = run(app, saved).await;
    save(app, &checked).await?;
    let ok = checked.iter().filter(|c| c.outcome.ok).count();
    let checked_ids: Vec<i64> = checked.iter().map(|c| c.instance_id).collect();
    let audit = Audit::targets(&checked_ids)
        .action("instances.check")
        .count("ok", ok)
        .count("failed", checked.len() - ok)
        .count("missing", missing.len());
    Ok(ApiResponse::ok(serde_json::json!({
        "items": checked,
        "missing": missing,
        "not_checked": not_checked,
        "summary": {"checked": checked.len(), "ok": ok, "failed": checked.len() - ok},
    }))
    .audit(audit))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsavedBody {
    db_type: String,
    host: String,
    port: i64,
    database_name: Option<String>,
    tls_mode: Option<String>,
    tls_ca_pem: Option<String>,
    /// A stored credential: admins only (its password would go to this host).
    credential_id: Option<i64>,
    username: Option<String>,
    password: Option<String>,
}

/// `POST /connection-checks`: check parameters before saving them. The password given here
/// is used once and never stored, logged or returned.
pub async fn check_unsaved(app: &App, req: Req) -> ApiResult {
    let body: UnsavedBody = req.json()?;
    let db_type = validate::db_type(&body.db_type)?;
    let host = validate::host(&body.host)?;
    let port = validate::port(body.port)?;
    let database_name = body
        .database_name
        .as_deref()
        .map(validate::database_name)
        .transpose()?
        .flatten();
    let tls_mode = custody::tls_mode(body.tls_mode.as_deref().unwrap_or("prefer"))?;
    let tls_ca_pem = body
        .tls_ca_pem
        .as_deref()
        .map(custody::tls_ca_pem)
        .transpose()?
        .flatten();
    let (username, password) = match (body.credential_id, body.username) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "credential_id",
                "give either credential_id or username/password, not both",
            ))
        }
        (Some(cid), None) => {
            req.principal.require(Role::Admin)?;
            if cid < 1 {
                return Err(ApiError::validation(
                    "credential_id",
                    "credential_id must be a positive integer",
                ));
            }
            let client = app.db.get().await?;
            let secret = crate::credentials::secret_for_instance(app, &client, Some(cid))
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| {
                    ApiError::not_found(&format!("credential {cid}")).with_field("credential_id")
                })?;
            (Some(secret.0), Some(secret.1))
        }
        (None, username) => (
            username
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty()),
            body.password,
        ),
    };
    let adapter = adapter_for(db_type)
        .ok_or_else(|| ApiError::validation("db_type", "no adapter for this db_type"))?;
    let target = Target {
        host,
        port: u16::try_from(port).unwrap_or_default(),
        username,
        password,
        database_name,
        connect_timeout: app.config.connect_timeout,
        statement_timeout: app.config.statement_timeout,
        tls_mode,
        tls_ca_pem,
    };
    // Nothing is saved: no audit entry (and the body holds a password).
    Ok(ApiResponse::ok(check(adapter, &target).await).audit(Audit::skip()))
}
