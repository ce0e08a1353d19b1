//! Onboarding many instances at once (`POST /instances/batch`, `POST /instances/import`) and
//! deleting or restoring many (`POST /instances/actions/batch-delete`, `.../batch-restore`).
//!
//! Every row is validated before anything is written; the references (credentials and tags
//! by name, names already taken) are read in one statement each, and the writes are one
//! `INSERT` of the instances and one of their tags: a constant number of statements whatever
//! the row count, in one transaction. `?dry_run=true` validates only; by default one invalid
//! row means nothing is written, `?on_error=skip` writes the valid rows.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::json;

use super::import::{self, FieldError, Input};
use super::{custody, validate};
use crate::values::{id_list, missing};
use crate::web::sql::Counted;
use crate::web::{ApiError, ApiResponse, ApiResult, Audit, Principal, Req, Role};
use crate::App;

/// A row that passed every rule, ready for the `INSERT`.
#[derive(Debug, Serialize)]
struct Valid {
    name: String,
    db_type: &'static str,
    host: String,
    port: i32,
    credential_id: Option<i64>,
    database_name: Option<String>,
    description: Option<String>,
    exclude_databases: Vec<String>,
    tls_mode: &'static str,
    #[serde(skip)]
    tag_ids: Vec<i64>,
}

crate::text_enum! {
    /// What happened to one row: `valid` when validated but not written (a dry run, or
    /// another row is invalid); `skipped` when the name exists.
    pub enum RowStatus {
        Created = "created",
        Valid = "valid",
        Skipped = "skipped",
        Invalid = "invalid",
    }
}

/// What happened to one row.
#[derive(Debug, Serialize)]
struct Outcome {
    line: usize,
    name: String,
    status: RowStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

/// Names to ids for one kind of reference, read in one statement.
async fn names<C: GenericClient>(
    db: &Counted<'_, C>,
    sql: &str,
    wanted: Vec<String>,
) -> Result<HashMap<String, i64>, ApiError> {
    let rows = db.counted().query(sql, &[&wanted]).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// The value of a rule that passed, or `None` with the rule's error added to `errors`.
fn keep<T>(errors: &mut Vec<FieldError>, rule: Result<T, ApiError>) -> Option<T> {
    rule.map_err(|e| {
        let name = e.field.clone().unwrap_or_else(|| "row".into());
        errors.push(FieldError::new(&name, e.message));
    })
    .ok()
}

/// Checks one row against the field rules and the references; its errors, all of them.
fn check(
    row: &Input,
    principal: &Principal,
    credentials: &HashMap<String, i64>,
    tags: &HashMap<String, i64>,
) -> Result<Valid, Vec<FieldError>> {
    let mut errors = row.errors.clone();
    let name = keep(&mut errors, validate::name(&row.name));
    let db_type = keep(&mut errors, validate::db_type(&row.db_type));
    let host = keep(&mut errors, validate::host(&row.host));
    let port = match row.port {
        Some(p) => keep(&mut errors, validate::port(p)),
        None if row.errors.iter().any(|e| e.field == "port") => None,
        None => keep::<i32>(
            &mut errors,
            Err(ApiError::validation("port", "port is required")),
        ),
    };
    let tls_mode = keep(
        &mut errors,
        custody::tls_mode(row.tls_mode.as_deref().unwrap_or("prefer")),
    );
    let description = keep(
        &mut errors,
        validate::description(row.description.as_deref().unwrap_or("")),
    );
    let database_name = keep(
        &mut errors,
        validate::database_name(row.database_name.as_deref().unwrap_or("")),
    );
    let exclude = keep(
        &mut errors,
        validate::exclude_databases(&row.exclude_databases),
    );
    let credential_id = match row.credential.as_deref().map(str::trim) {
        None | Some("") => Some(None),
        Some(_) if principal.role < Role::Admin => keep::<Option<i64>>(
            &mut errors,
            Err(ApiError::validation(
                "credential",
                "attaching a credential requires the admin role",
            )),
        ),
        Some(c) => match credentials.get(c) {
            Some(id) => Some(Some(*id)),
            None => keep::<Option<i64>>(
                &mut errors,
                Err(ApiError::validation(
                    "credential",
                    format!("no credential named {c:?}"),
                )),
            ),
        },
    };
    let unknown: Vec<&str> = row
        .tags
        .iter()
        .filter(|t| !tags.contains_key(*t))
        .map(String::as_str)
        .collect();
    if row.tags.len() > 100 {
        errors.push(FieldError::new("tags", "at most 100 tags per instance"));
    } else if !unknown.is_empty() {
        errors.push(FieldError::new(
            "tags",
            format!("no tags named {}", unknown.join(", ")),
        ));
    }
    match (
        name,
        db_type,
        host,
        port,
        tls_mode,
        description,
        database_name,
        exclude,
        credential_id,
    ) {
        (
            Some(name),
            Some(db_type),
            Some(host),
            Some(port),
            Some(tls),
            Some(description),
            Some(database_name),
            Some(exclude),
            Some(credential_id),
        ) if errors.is_empty() => Ok(Valid {
            name,
            db_type,
            host,
            port,
            credential_id,
            database_name,
            description,
            exclude_databases: exclude,
            tls_mode: tls.as_str(),
            tag_ids: row
                .tags
                .iter()
                .filter_map(|t| tags.get(t).copied())
                .collect(),
        }),
        _ => Err(errors),
    }
}

/// Validates and (unless a dry run or an invalid row forbids it) writes the rows.
async fn onboard(app: &App, req: &Req, rows: Vec<Input>) -> ApiResult {
    let dry_run = req.query.bool("dry_run")?;
    let skip_invalid = req.query.one_of("on_error", &["abort", "skip"])? == Some("skip");
    if rows.is_empty() {
        return Err(ApiError::validation("rows", "there are no rows to import"));
    }
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    // BEGIN and COMMIT (or the rollback) count too.
    let db = Counted::new(&tx);
    let wanted =
        |f: fn(&Input) -> Vec<String>| -> Vec<String> { rows.iter().flat_map(f).collect() };
    // References are read under a share lock so they cannot vanish before the commit.
    let credentials = names(
        &db,
        "SELECT name, id FROM credentials WHERE name = ANY($1) FOR KEY SHARE",
        wanted(|r| r.credential.iter().map(|c| c.trim().to_string()).collect()),
    )
    .await?;
    let tags = names(
        &db,
        "SELECT name, id FROM tags WHERE name = ANY($1) FOR KEY SHARE",
        wanted(|r| r.tags.clone()),
    )
    .await?;
    let taken = names(
        &db,
        "SELECT name, id FROM instances WHERE name = ANY($1)",
        wanted(|r| vec![r.name.trim().to_string()]),
    )
    .await?;

    let mut outcomes = Vec::with_capacity(rows.len());
    let mut valid = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for row in &rows {
        let mut outcome = Outcome {
            line: row.line,
            name: row.name.trim().to_string(),
            status: RowStatus::Valid,
            id: None,
            errors: Vec::new(),
        };
        match check(row, &req.principal, &credentials, &tags) {
            Ok(_) if taken.contains_key(&outcome.name) => {
                outcome.status = RowStatus::Skipped;
                outcome.id = taken.get(&outcome.name).copied();
            }
            Ok(_) if seen.contains_key(&outcome.name) => {
                outcome.status = RowStatus::Invalid;
                let first = seen[&outcome.name];
                outcome.errors.push(FieldError::new(
                    "name",
                    format!("the name is also on line {first}"),
                ));
            }
            Ok(v) => {
                seen.insert(v.name.clone(), row.line);
                valid.push((outcomes.len(), v));
            }
            Err(errors) => {
                outcome.status = RowStatus::Invalid;
                outcome.errors = errors;
            }
        }
        outcomes.push(outcome);
    }
    let invalid = outcomes
        .iter()
        .filter(|o| o.status == RowStatus::Invalid)
        .count();
    let write = !dry_run && (invalid == 0 || skip_invalid) && !valid.is_empty();
    let mut created: Vec<i64> = Vec::new();
    let mut statements = db.sent() + 2;
    if write {
        let instances = serde_json::to_value(valid.iter().map(|(_, v)| v).collect::<Vec<_>>())
            .map_err(ApiError::internal)?;
        // A name taken since the read (a concurrent import) is skipped, not an error.
        let inserted = db.counted().query(
            "INSERT INTO instances (name, db_type, host, port, credential_id, database_name, description, exclude_databases, tls_mode) \
             SELECT r.name, r.db_type, r.host, r.port, r.credential_id, r.database_name, r.description, r.exclude_databases, r.tls_mode \
             FROM jsonb_to_recordset($1::jsonb) AS r(name text, db_type text, host text, port int, credential_id bigint, \
                  database_name text, description text, exclude_databases text[], tls_mode text) \
             ON CONFLICT (name) DO NOTHING RETURNING id, name",
            &[&instances],
        ).await?;
        let ids: HashMap<String, i64> = inserted
            .iter()
            .map(|r| Ok((r.try_get(1)?, r.try_get(0)?)))
            .collect::<Result<_, ApiError>>()?;
        let (mut link_names, mut link_tags) = (Vec::new(), Vec::new());
        for (at, v) in &valid {
            let o = &mut outcomes[*at];
            match ids.get(&v.name) {
                Some(id) => {
                    (o.status, o.id) = (RowStatus::Created, Some(*id));
                    created.push(*id);
                    for t in &v.tag_ids {
                        link_names.push(*id);
                        link_tags.push(*t);
                    }
                }
                None => o.status = RowStatus::Skipped,
            }
        }
        db.counted().execute(
            "INSERT INTO instance_tags (instance_id, tag_id) SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING",
            &[&link_names, &link_tags],
        ).await?;
        statements = db.sent() + 2;
        tx.commit().await?;
    }
    let count = |s: RowStatus| outcomes.iter().filter(|o| o.status == s).count();
    let report = json!({
        "dry_run": dry_run,
        "on_error": if skip_invalid { "skip" } else { "abort" },
        "written": write,
        "summary": {"rows": outcomes.len(), "created": created.len(), "valid": count(RowStatus::Valid),
                    "skipped": count(RowStatus::Skipped), "invalid": invalid},
        "statements": statements,
        "created_ids": created,
        "rows": outcomes,
    });
    if invalid > 0 && !skip_invalid && !dry_run {
        return Err(ApiError::invalid(format!(
            "{invalid} of {} rows are invalid; nothing was written (see details.rows, or use on_error=skip)",
            outcomes.len()
        ))
        .with_details(report));
    }
    let audit = Audit::targets(&created)
        .count("rows", outcomes.len())
        .count("created", created.len())
        .count("skipped", count(RowStatus::Skipped))
        .count("invalid", invalid);
    let status = if created.is_empty() {
        http::StatusCode::OK
    } else {
        http::StatusCode::CREATED
    };
    // A dry run changes nothing: no audit entry.
    let audit = if dry_run { Audit::skip() } else { audit };
    Ok(ApiResponse::ok(report).with_status(status).audit(audit))
}

/// `POST /instances/batch`: `{"instances": [...]}`, at most 1,000 rows.
pub async fn batch(app: &App, req: Req) -> ApiResult {
    let rows = import::parse_json(&req)?;
    onboard(app, &req, rows).await
}

/// `POST /instances/import`: a CSV file, at most 1,000 rows.
pub async fn import(app: &App, req: Req) -> ApiResult {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation("body", "the CSV file is empty"));
    }
    let rows = import::parse_csv(&req.body)?;
    onboard(app, &req, rows).await
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IdsBody {
    instance_ids: Vec<i64>,
}

/// The ids of a batch action (1 to 1,000, positive), deduplicated.
fn ids(req: &Req) -> Result<Vec<i64>, ApiError> {
    let body: IdsBody = req.json()?;
    id_list("instance_ids", &body.instance_ids, import::MAX_ROWS)
}

/// `POST /instances/actions/batch-delete`: soft (default) or, for admins, `?mode=hard`.
pub async fn batch_delete(app: &App, req: Req) -> ApiResult {
    let ids = ids(&req)?;
    let mode = req
        .query
        .one_of("mode", &["soft", "hard"])?
        .unwrap_or("soft");
    let client = app.db.get().await?;
    let sql = if mode == "hard" {
        req.principal.require(Role::Admin)?;
        // History goes with them: stats, inventory, aggregations and tag links cascade.
        "DELETE FROM instances WHERE id = ANY($1) RETURNING id"
    } else {
        "UPDATE instances SET deleted_at = COALESCE(deleted_at, now()), is_active = false, updated_at = now() \
         WHERE id = ANY($1) RETURNING id"
    };
    let mut done: Vec<i64> = client
        .query(sql, &[&ids])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    done.sort_unstable();
    let missing = missing(&ids, &done);
    let audit = Audit::targets(&done)
        .count("deleted", done.len())
        .count("missing", missing.len());
    Ok(
        ApiResponse::ok(json!({"deleted": done, "missing": missing, "deletion_mode": mode}))
            .audit(audit),
    )
}

/// `POST /instances/actions/batch-restore`: undeletes soft-deleted instances.
pub async fn batch_restore(app: &App, req: Req) -> ApiResult {
    let ids = ids(&req)?;
    let client = app.db.get().await?;
    let rows = client
        .query(
            "WITH r AS (UPDATE instances SET deleted_at = NULL, is_active = true, updated_at = now() \
                        WHERE id = ANY($1) AND deleted_at IS NOT NULL RETURNING id) \
             SELECT i.id, r.id IS NOT NULL FROM instances i LEFT JOIN r ON r.id = i.id WHERE i.id = ANY($1) ORDER BY i.id",
            &[&ids],
        )
        .await?;
    let (mut restored, mut found) = (Vec::new(), Vec::new());
    for r in &rows {
        let id: i64 = r.try_get(0)?;
        found.push(id);
        if r.try_get::<_, bool>(1)? {
            restored.push(id);
        }
    }
    let not_deleted = missing(&found, &restored);
    let missing = missing(&ids, &found);
    let audit = Audit::targets(&restored)
        .count("restored", restored.len())
        .count("missing", missing.len());
    Ok(ApiResponse::ok(
        json!({"restored": restored, "not_deleted": not_deleted, "missing": missing}),
    )
    .audit(audit))
}
