//! Aggregation as task runs: one item per business date, in date order. The schedule runs
//! today and backfills every date since the last one aggregated (at most
//! [`DateRange::MAX_DAYS`]); `POST /capacity/aggregations` runs a date or a range now.

use chrono::{Days, NaiveDate};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::tasks::{jobs, RunKind, Trigger};
use crate::values::DateRange;
use crate::web::{ApiError, ApiResponse, ApiResult, Req};
use crate::App;

/// The business dates the scheduled run covers on `today`: every date after the last one
/// aggregated up to today (the days a schedule missed), or today alone.
pub async fn dates_due(app: &App, today: NaiveDate) -> anyhow::Result<Vec<NaiveDate>> {
    let client = app.db.get().await?;
    let last: Option<NaiveDate> = client
        .query_one("SELECT max(business_date) FROM aggregation_days", &[])
        .await?
        .try_get(0)?;
    let oldest = today - Days::new(DateRange::MAX_DAYS as u64 - 1);
    let first = match last {
        Some(last) if last < today => (last + Days::new(1)).max(oldest),
        _ => today,
    };
    Ok(first.iter_days().take_while(|d| *d <= today).collect())
}

/// Where a day's aggregation is finished: what else runs once per aggregated business date
/// goes here. Alert rules judge the current business date only (idempotent per day); a
/// backfilled past day would otherwise send a digest for every missed day.
async fn day_finished(app: &App, day: NaiveDate) -> anyhow::Result<()> {
    if day == app.config.business_date(chrono::Utc::now()) {
        crate::alerts::evaluate(app, day).await?;
    }
    Ok(())
}

/// Opens a run over `dates`; `None` when an aggregation run is live.
async fn open(app: &App, trigger: Trigger, dates: &[NaiveDate]) -> anyhow::Result<Option<Uuid>> {
    let items: Vec<String> = dates.iter().map(NaiveDate::to_string).collect();
    let summary = json!({
        "start_date": dates.first(),
        "end_date": dates.last(),
        "days": dates.len(),
    });
    jobs::open(app, RunKind::Aggregate, trigger, summary, &items).await
}

/// Aggregates the run's dates in order (each one its own transaction and item).
async fn drive(app: &App, run_id: Uuid, dates: &[NaiveDate]) -> anyhow::Result<Value> {
    let items: Vec<String> = dates.iter().map(NaiveDate::to_string).collect();
    let closed = jobs::drive(app, run_id, &items, |key| async move {
        let day: NaiveDate = key.parse()?;
        let summary = super::aggregate_day(app, day, Some(run_id)).await?;
        day_finished(app, day).await?;
        Ok(summary)
    })
    .await?;
    Ok(
        json!({"run_id": run_id, "status": closed.status, "days": dates.len(), "summary": closed.summary}),
    )
}

/// The daily aggregation job (function `aggregate`): today and any date missed since the
/// last one aggregated, as one run.
pub async fn aggregate(app: &App) -> anyhow::Result<Value> {
    let today = app.config.business_date(chrono::Utc::now());
    let dates = dates_due(app, today).await?;
    match open(app, Trigger::Scheduled, &dates).await? {
        Some(run_id) => drive(app, run_id, &dates).await,
        None => {
            tracing::warn!("an aggregation run is still live; the schedule skips this one");
            Ok(json!({"skipped": "an aggregation run is live"}))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    date: Option<NaiveDate>,
    start_date: Option<NaiveDate>,
    end_date: Option<NaiveDate>,
}

impl StartBody {
    /// `{}` is today; `{date}` one date; `{start_date, end_date}` a range of at most 400 days.
    fn dates(&self, today: NaiveDate) -> Result<Vec<NaiveDate>, ApiError> {
        let range = match (self.date, self.start_date, self.end_date) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(ApiError::validation(
                    "date",
                    "give either date or start_date and end_date, not both",
                ))
            }
            (Some(d), None, None) => DateRange::new(d, d)?,
            (None, Some(s), Some(e)) => DateRange::new(s, e)?,
            (None, Some(_), None) => {
                return Err(ApiError::validation(
                    "end_date",
                    "end_date is required with start_date",
                ))
            }
            (None, None, Some(_)) => {
                return Err(ApiError::validation(
                    "start_date",
                    "start_date is required with end_date",
                ))
            }
            (None, None, None) => DateRange::new(today, today)?,
        };
        if range.end > today {
            let field = if self.date.is_some() {
                "date"
            } else {
                "end_date"
            };
            return Err(ApiError::validation(
                field,
                format!("aggregation runs for business dates up to today ({today})"),
            ));
        }
        Ok(range
            .start
            .iter_days()
            .take(range.days() as usize)
            .collect())
    }
}

/// `POST /capacity/aggregations`: aggregate a date or a range now (backfilling); 202 with the
/// run, 409 while another aggregation run is live.
pub async fn start(app: &App, req: Req) -> ApiResult {
    let body: StartBody = if req.body.is_empty() {
        StartBody::default()
    } else {
        req.json()?
    };
    let today = app.config.business_date(chrono::Utc::now());
    let dates = body.dates(today)?;
    let Some(run_id) = open(app, Trigger::Api, &dates).await? else {
        return Err(ApiError::conflict(
            "CONFLICT",
            "an aggregation run is already live",
        ));
    };
    // The run goes on after the answer; its progress is the task run's.
    let (app2, run_dates) = (app.clone(), dates.clone());
    tokio::spawn(async move {
        if let Err(e) = drive(&app2, run_id, &run_dates).await {
            tracing::error!(run_id = %run_id, error = %format!("{e:#}"), "aggregation run failed");
        }
    });
    let data = json!({
        "run_id": run_id,
        "start_date": dates.first(),
        "end_date": dates.last(),
        "days": dates.len(),
    });
    Ok(ApiResponse::accepted(data).with_location("/task-runs", run_id))
}
