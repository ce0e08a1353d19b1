//! `GET /alerts` (the firings, filterable, keyset pages), `POST /alerts/{id}/actions/acknowledge`
//! and `GET /alert-deliveries` (each digest's outcome, failures with their last error).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{AlertState, Condition, DeliveryStatus, Severity};
use crate::web::list::{SortSpec, Source};
use crate::web::sql;
use crate::web::{ApiError, ApiResponse, ApiResult, ListParams, Req};
use crate::App;

const COLUMNS: &str = "a.id, a.rule_id, r.name AS rule_name, r.condition, a.severity, a.state, \
    a.instance_id, i.name AS instance_name, a.database_name, a.day, a.value, a.details, \
    a.acknowledged_by, a.acknowledged_at, a.created_at";
const FROM: &str = "alerts a JOIN alert_rules r ON r.id = a.rule_id \
    JOIN instances i ON i.id = a.instance_id";

crate::row_struct! {
    #[derive(Debug, Serialize)]
    struct Alert {
        id: i64,
        rule_id: i64,
        rule_name: String,
        condition: Condition,
        severity: Severity,
        state: AlertState,
        instance_id: i64,
        instance_name: String,
        /// Empty for an instance-level firing (collection failing).
        database_name: String,
        day: NaiveDate,
        value: Option<f64>,
        details: Value,
        acknowledged_by: Option<String>,
        acknowledged_at: Option<DateTime<Utc>>,
        created_at: DateTime<Utc>,
    }
}

static SORTS: SortSpec = crate::sorts! {
    "a.id";
    id desc "a.id" bigint, day desc "a.day" date
};

/// Positive id filter, else a 400 naming it.
fn id_filter(req: &Req, name: &str) -> Result<Option<i64>, ApiError> {
    match req.query.int(name)? {
        Some(v) if v < 1 => Err(ApiError::validation(name, format!("{name} must be >= 1"))),
        v => Ok(v),
    }
}

pub async fn list(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let rule = id_filter(&req, "rule_id")?;
    let instance = id_filter(&req, "instance_id")?;
    let state = q.pick::<AlertState>("state")?.map(AlertState::as_str);
    let severity = q.pick::<Severity>("severity")?.map(Severity::as_str);
    let day = q.date("day")?;
    ListParams::filtered::<Alert>(app, q, &SORTS, Source::new(COLUMNS, FROM), |sql| {
        sql.eq("a.rule_id", rule)
            .eq("a.instance_id", instance)
            .eq("a.state", state)
            .eq("a.severity", severity)
            .eq("a.day", day);
    })
    .await
}

pub async fn get(app: &App, req: Req) -> ApiResult {
    let client = app.db.get().await?;
    let alert: Alert = sql::by_id(&client, (COLUMNS, FROM, "a.id"), req.id("id")?, "alert").await?;
    Ok(ApiResponse::ok(alert))
}

/// Acknowledges a firing; repeating it keeps the first acknowledgement (idempotent).
pub async fn acknowledge(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let client = app.db.get().await?;
    client
        .execute(
            "UPDATE alerts SET state = 'acknowledged', acknowledged_by = $2, acknowledged_at = now() \
             WHERE id = $1 AND state = 'firing'",
            &[&id, &req.principal.subject],
        )
        .await?;
    let alert: Alert = sql::by_id(&client, (COLUMNS, FROM, "a.id"), id, "alert").await?;
    Ok(ApiResponse::ok(alert))
}

const DELIVERY_COLUMNS: &str = "d.id, d.channel_id, c.name AS channel_name, c.kind, d.day, \
    d.status, d.alert_count, d.attempts, d.last_error, d.created_at, d.finished_at";

crate::row_struct! {
    #[derive(Debug, Serialize)]
    struct Delivery {
        id: i64,
        channel_id: i64,
        channel_name: String,
        kind: super::ChannelKind,
        day: NaiveDate,
        status: DeliveryStatus,
        alert_count: i32,
        attempts: i32,
        last_error: Option<String>,
        created_at: DateTime<Utc>,
        finished_at: Option<DateTime<Utc>>,
    }
}

static DELIVERY_SORTS: SortSpec = crate::sorts! {
    "d.id";
    id desc "d.id" bigint, day desc "d.day" date
};

pub async fn deliveries(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let channel = id_filter(&req, "channel_id")?;
    let status = q
        .pick::<DeliveryStatus>("status")?
        .map(DeliveryStatus::as_str);
    let day = q.date("day")?;
    let source = Source::new(
        DELIVERY_COLUMNS,
        "alert_deliveries d JOIN alert_channels c ON c.id = d.channel_id",
    );
    ListParams::filtered::<Delivery>(app, q, &DELIVERY_SORTS, source, |sql| {
        sql.eq("d.channel_id", channel)
            .eq("d.status", status)
            .eq("d.day", day);
    })
    .await
}
