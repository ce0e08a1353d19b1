//! `/alert-rules` (viewers read, admins write): a scope, one condition with its parameters,
//! a severity and the channels its firings go to. A PATCH is merged into the stored rule and
//! the whole is validated again; parameters the condition does not use are cleared.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Condition, Period, Scope, Severity};
use crate::values::{self, TextEnum};
use crate::web::list::{SortSpec, Source};
use crate::web::sql::{self, insert_named};
use crate::web::{ApiError, ApiResponse, ApiResult, ListParams, Req};
use crate::App;

pub const MAX_CHANNELS: usize = 20;

const COLUMNS: &str = "r.id, r.name, r.is_active, r.severity, r.scope, r.tag_id, r.instance_id, \
    r.database_name, r.condition, r.threshold_bytes, r.max_days, r.period, r.min_percent, \
    r.min_bytes, r.mad_k, r.failing_days, r.created_at, r.updated_at, \
    ARRAY(SELECT rc.channel_id FROM alert_rule_channels rc WHERE rc.rule_id = r.id \
      ORDER BY rc.channel_id) AS channel_ids";
const TABLE: (&str, &str, &str) = (COLUMNS, "alert_rules r", "r.id");

crate::row_struct! {
    #[derive(Debug, Serialize)]
    struct Rule {
        id: i64,
        name: String,
        is_active: bool,
        severity: Severity,
        scope: Scope,
        tag_id: Option<i64>,
        instance_id: Option<i64>,
        database_name: Option<String>,
        condition: Condition,
        threshold_bytes: Option<i64>,
        max_days: Option<i32>,
        period: Option<Period>,
        min_percent: Option<f64>,
        min_bytes: Option<i64>,
        mad_k: Option<f64>,
        failing_days: Option<i32>,
        channel_ids: Vec<i64>,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    }
}

static SORTS: SortSpec = crate::sorts! {
    "r.id";
    id desc "r.id" bigint, name asc "r.name" text
};

pub async fn list(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let condition = q.pick::<Condition>("condition")?.map(Condition::as_str);
    let severity = q.pick::<Severity>("severity")?.map(Severity::as_str);
    let scope = q.pick::<Scope>("scope")?.map(Scope::as_str);
    ListParams::filtered::<Rule>(app, q, &SORTS, Source::new(COLUMNS, TABLE.1), |sql| {
        sql.eq("r.condition", condition)
            .eq("r.severity", severity)
            .eq("r.scope", scope);
    })
    .await
}

pub async fn get(app: &App, req: Req) -> ApiResult {
    let client = app.db.get().await?;
    let rule: Rule = sql::by_id(&client, TABLE, req.id("id")?, "alert rule").await?;
    Ok(ApiResponse::ok(rule))
}

/// A rule's writable fields, as a body gives them (every one optional for a PATCH).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    name: Option<String>,
    is_active: Option<bool>,
    severity: Option<String>,
    scope: Option<String>,
    tag_id: Option<i64>,
    instance_id: Option<i64>,
    database_name: Option<String>,
    condition: Option<String>,
    threshold_bytes: Option<i64>,
    max_days: Option<i32>,
    period: Option<String>,
    min_percent: Option<f64>,
    min_bytes: Option<i64>,
    mad_k: Option<f64>,
    failing_days: Option<i32>,
    channel_ids: Option<Vec<i64>>,
}

/// A whole, valid rule ready to be written.
struct Valid {
    name: String,
    is_active: bool,
    severity: Severity,
    scope: Scope,
    tag_id: Option<i64>,
    instance_id: Option<i64>,
    database_name: Option<String>,
    condition: Condition,
    threshold_bytes: Option<i64>,
    max_days: Option<i32>,
    period: Option<Period>,
    min_percent: Option<f64>,
    min_bytes: Option<i64>,
    mad_k: Option<f64>,
    failing_days: Option<i32>,
    channel_ids: Vec<i64>,
}

fn required<T>(field: &str, v: Option<T>) -> Result<T, ApiError> {
    v.ok_or_else(|| ApiError::validation(field, format!("{field} is required")))
}

fn pick<T: TextEnum>(field: &str, v: Option<&str>) -> Result<T, ApiError> {
    required(field, v).and_then(|s| {
        T::from_text(s).ok_or_else(|| {
            ApiError::validation(
                field,
                format!("{field} must be one of: {}", T::ALL.join(", ")),
            )
        })
    })
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    v: Option<T>,
    lo: T,
    hi: T,
) -> Result<T, ApiError> {
    let v = required(field, v)?;
    if !(lo..=hi).contains(&v) {
        return Err(ApiError::validation(
            field,
            format!("{field} must be between {lo} and {hi}"),
        ));
    }
    Ok(v)
}

/// Largest byte amount a rule takes (1 PiB x 1,000): far beyond any database, within bigint.
const MAX_BYTES: i64 = 1 << 60;

/// A field given is checked whatever the scope and condition (so the contract's ranges hold
/// for every body); the ones the rule does not use are then dropped.
fn given<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    v: Option<T>,
    lo: T,
    hi: T,
) -> Result<Option<T>, ApiError> {
    v.map(|v| in_range(field, Some(v), lo, hi)).transpose()
}

/// A positive fraction up to `max` (`min_percent`, `mad_k`).
fn positive(field: &str, v: Option<f64>, max: f64) -> Result<Option<f64>, ApiError> {
    match v {
        Some(x) if !(x > 0.0 && x <= max) => Err(ApiError::validation(
            field,
            format!("{field} must be > 0 and at most {max}"),
        )),
        v => Ok(v),
    }
}

impl Body {
    /// Validates the body as a whole rule (a PATCH: merged into the stored one first).
    fn validate(self) -> Result<Valid, ApiError> {
        let name = values::text("name", &required("name", self.name)?, 100)?;
        let scope: Scope = pick("scope", self.scope.as_deref())?;
        let condition: Condition = pick("condition", self.condition.as_deref())?;
        let severity: Severity = pick("severity", self.severity.as_deref())?;
        let tag_id = given("tag_id", self.tag_id, 1, i64::MAX)?;
        let instance_id = given("instance_id", self.instance_id, 1, i64::MAX)?;
        let database_name = self
            .database_name
            .map(|d| values::text("database_name", &d, 128))
            .transpose()?;
        let threshold_bytes = given("threshold_bytes", self.threshold_bytes, 1, MAX_BYTES)?;
        let max_days = given("max_days", self.max_days, 0, 3650)?;
        let period = match self.period.as_deref() {
            Some(p) => Some(pick::<Period>("period", Some(p))?),
            None => None,
        };
        let min_percent = positive("min_percent", self.min_percent, 1_000_000.0)?;
        let min_bytes = given("min_bytes", self.min_bytes, 1, MAX_BYTES)?;
        let mad_k = positive("mad_k", self.mad_k, 1000.0)?;
        let failing_days = given("failing_days", self.failing_days, 1, 30)?;
        let channel_ids = values::ids(
            "channel_ids",
            &self.channel_ids.unwrap_or_default(),
            MAX_CHANNELS,
        )?;
        let (tag_id, instance_id, database_name) = match scope {
            Scope::All => (None, None, None),
            Scope::Tag => (Some(required("tag_id", tag_id)?), None, None),
            Scope::Instance => (None, Some(required("instance_id", instance_id)?), None),
            Scope::Database => (
                None,
                Some(required("instance_id", instance_id)?),
                Some(required("database_name", database_name)?),
            ),
        };
        let mut v = Valid {
            name,
            is_active: self.is_active.unwrap_or(true),
            severity,
            scope,
            tag_id,
            instance_id,
            database_name,
            condition,
            threshold_bytes: None,
            max_days: None,
            period: None,
            min_percent: None,
            min_bytes: None,
            mad_k: None,
            failing_days: None,
            channel_ids,
        };
        match condition {
            Condition::DaysUntilThreshold => {
                v.threshold_bytes = Some(required("threshold_bytes", threshold_bytes)?);
                v.max_days = Some(required("max_days", max_days)?);
            }
            Condition::Growth => {
                v.period = Some(required("period", period)?);
                if min_percent.is_none() && min_bytes.is_none() {
                    return Err(ApiError::validation(
                        "min_percent",
                        "a growth rule needs min_percent, min_bytes or both",
                    ));
                }
                v.min_percent = min_percent;
                v.min_bytes = min_bytes;
            }
            Condition::AbnormalDay => v.mad_k = Some(required("mad_k", mad_k)?),
            Condition::CollectionFailing => {
                v.failing_days = Some(required("failing_days", failing_days)?);
            }
        }
        Ok(v)
    }

    /// This PATCH's fields over the stored rule.
    fn over(self, r: Rule) -> Body {
        Body {
            name: self.name.or(Some(r.name)),
            is_active: self.is_active.or(Some(r.is_active)),
            severity: self.severity.or(Some(r.severity.to_string())),
            scope: self.scope.or(Some(r.scope.to_string())),
            tag_id: self.tag_id.or(r.tag_id),
            instance_id: self.instance_id.or(r.instance_id),
            database_name: self.database_name.or(r.database_name),
            condition: self.condition.or(Some(r.condition.to_string())),
            threshold_bytes: self.threshold_bytes.or(r.threshold_bytes),
            max_days: self.max_days.or(r.max_days),
            period: self.period.or(r.period.map(|p| p.to_string())),
            min_percent: self.min_percent.or(r.min_percent),
            min_bytes: self.min_bytes.or(r.min_bytes),
            mad_k: self.mad_k.or(r.mad_k),
            failing_days: self.failing_days.or(r.failing_days),
            channel_ids: self.channel_ids.or(Some(r.channel_ids)),
        }
    }
}

/// The tag, instance and channels a rule names exist (else a 404 naming the field).
async fn check_references(
    client: &impl deadpool_postgres::GenericClient,
    v: &Valid,
) -> Result<(), ApiError> {
    let row = client
        .query_one(
            "SELECT ($1::bigint IS NULL OR EXISTS (SELECT 1 FROM tags WHERE id = $1)), \
               ($2::bigint IS NULL OR EXISTS (SELECT 1 FROM instances WHERE id = $2 AND deleted_at IS NULL)), \
               ARRAY(SELECT u FROM unnest($3::bigint[]) u \
                 WHERE NOT EXISTS (SELECT 1 FROM alert_channels c WHERE c.id = u) ORDER BY u)",
            &[&v.tag_id, &v.instance_id, &v.channel_ids],
        )
        .await?;
    if !row.try_get::<_, bool>(0)? {
        return Err(ApiError::not_found("tag").with_field("tag_id"));
    }
    if !row.try_get::<_, bool>(1)? {
        return Err(ApiError::not_found("instance").with_field("instance_id"));
    }
    let missing: Vec<i64> = row.try_get(2)?;
    if !missing.is_empty() {
        return Err(ApiError::not_found("alert channel")
            .with_field("channel_ids")
            .with_details(json!({"missing_ids": missing})));
    }
    Ok(())
}

/// Writes the rule's row (insert when `id` is new) and replaces its channel links.
async fn write(
    tx: &deadpool_postgres::Transaction<'_>,
    id: Option<i64>,
    v: &Valid,
) -> Result<i64, ApiError> {
    check_references(tx, v).await?;
    let statement = match id {
        None => "INSERT INTO alert_rules (name, is_active, severity, scope, tag_id, instance_id, \
                   database_name, condition, threshold_bytes, max_days, period, min_percent, min_bytes, \
                   mad_k, failing_days) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
        Some(_) => "UPDATE alert_rules SET name = $1, is_active = $2, severity = $3, scope = $4, \
                   tag_id = $5, instance_id = $6, database_name = $7, condition = $8, \
                   threshold_bytes = $9, max_days = $10, period = $11, min_percent = $12, \
                   min_bytes = $13, mad_k = $14, failing_days = $15, updated_at = now() \
                 WHERE id = $16 RETURNING id",
    };
    let period = v.period.map(Period::as_str);
    let (severity, scope, condition) =
        (v.severity.as_str(), v.scope.as_str(), v.condition.as_str());
    let id_param = id.unwrap_or(0);
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
        &v.name,
        &v.is_active,
        &severity,
        &scope,
        &v.tag_id,
        &v.instance_id,
        &v.database_name,
        &condition,
        &v.threshold_bytes,
        &v.max_days,
        &period,
        &v.min_percent,
        &v.min_bytes,
        &v.mad_k,
        &v.failing_days,
    ];
    if id.is_some() {
        params.push(&id_param);
    }
    let id = insert_named(tx, statement, &params, "alert rule", &v.name).await?;
    tx.execute(
        "DELETE FROM alert_rule_channels WHERE rule_id = $1 AND channel_id <> ALL($2::bigint[])",
        &[&id, &v.channel_ids],
    )
    .await?;
    tx.execute(
        "INSERT INTO alert_rule_channels (rule_id, channel_id) \
         SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING",
        &[&id, &v.channel_ids],
    )
    .await?;
    Ok(id)
}

pub async fn create(app: &App, req: Req) -> ApiResult {
    let body: Body = req.json()?;
    let v = body.validate()?;
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let id = write(&tx, None, &v).await?;
    let rule: Rule = sql::by_id(&tx, TABLE, id, "alert rule").await?;
    tx.commit().await?;
    Ok(ApiResponse::created_at("/alert-rules", id, rule))
}

pub async fn update(app: &App, req: Req) -> ApiResult {
    let (id, body): (i64, Body) = req.id_and_json()?;
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let locked = format!("SELECT {COLUMNS} FROM alert_rules r WHERE r.id = $1 FOR UPDATE OF r");
    let stored: Rule = sql::one(&tx, &locked, &[&id], "alert rule").await?;
    let v = body.over(stored).validate()?;
    write(&tx, Some(id), &v).await?;
    let rule: Rule = sql::by_id(&tx, TABLE, id, "alert rule").await?;
    tx.commit().await?;
    Ok(ApiResponse::ok(rule))
}

/// Deletes the rule with its firings and links (the deliveries already made stay).
pub async fn delete(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let client = app.db.get().await?;
    let n = client
        .execute("DELETE FROM alert_rules WHERE id = $1", &[&id])
        .await?;
    if n == 0 {
        return Err(ApiError::not_found("alert rule"));
    }
    Ok(ApiResponse::ok(json!({"id": id, "deleted": true})))
}
