//! Capacity alerts: rules over the fleet's size history, evaluated once a day after the
//! aggregation in a fixed list of set-based statements, each firing recorded (`/alerts`) and
//! sent as one digest per channel and day (webhooks everywhere, an SNS topic in AWS).

pub mod api;
pub mod channels;
pub mod deliver;
mod evaluate;
pub mod rules;

use std::sync::{Arc, OnceLock};

use chrono::NaiveDate;
use serde::Serialize;

use crate::web::sql::Counted;
use crate::App;

crate::text_enum! {
    pub enum Severity { Info = "info", Warning = "warning", Critical = "critical" }
}

crate::text_enum! {
    /// What a rule watches: every database, those of a tag's instances, of one instance, or
    /// one database.
    pub enum Scope { All = "all", Tag = "tag", Instance = "instance", Database = "database" }
}

crate::text_enum! {
    pub enum Condition {
        DaysUntilThreshold = "days_until_threshold",
        Growth = "growth",
        AbnormalDay = "abnormal_day",
        CollectionFailing = "collection_failing",
    }
}

crate::text_enum! {
    /// The period a growth rule compares over: the size now against 1, 7 or 30 days before.
    pub enum Period { Day = "day", Week = "week", Month = "month" }
}

crate::text_enum! {
    pub enum ChannelKind { Webhook = "webhook", Slack = "slack", Feishu = "feishu", Sns = "sns" }
}

crate::text_enum! {
    pub enum AlertState { Firing = "firing", Acknowledged = "acknowledged" }
}

crate::text_enum! {
    pub enum DeliveryStatus { Sending = "sending", Delivered = "delivered", Failed = "failed" }
}

/// A topic digests are published to (SNS in AWS: its e-mail subscriptions get them).
#[async_trait::async_trait]
pub trait Topic: Send + Sync {
    async fn publish(&self, subject: &str, message: &str) -> anyhow::Result<()>;
}

static TOPIC: OnceLock<Arc<dyn Topic>> = OnceLock::new();

/// Installs the process's topic once, at start (the Lambda binary that evaluates builds its
/// SNS client in `main`). Without one, `sns` channels record a failed delivery saying so.
pub fn install_topic(topic: Arc<dyn Topic>) {
    let _ = TOPIC.set(topic);
}

fn topic() -> Option<&'static Arc<dyn Topic>> {
    TOPIC.get()
}

/// What one evaluation did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct EvaluationSummary {
    pub day: NaiveDate,
    /// Firings recorded by this evaluation (a second run of a day records none).
    pub new_alerts: u64,
    /// Digests this run sent or tried (a day's digest per channel is claimed once).
    pub digests: usize,
    pub delivered: usize,
    pub failed: usize,
    /// SQL statements sent: a fixed number whatever the fleet's size.
    pub statements: usize,
}

/// Evaluates every active rule for business day `day` over the whole fleet, records the
/// firings and delivers the day's digests. Idempotent per day.
pub async fn evaluate(app: &App, day: NaiveDate) -> anyhow::Result<EvaluationSummary> {
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let firing = Counted::new(&tx);
    let new_alerts = evaluate::record_firings(&firing, day).await?;
    let statements = firing.sent();
    tx.commit().await?;
    let db = Counted::new(&client);
    let claimed = deliver::claim_digests(&db, day).await?;
    let outcomes = deliver::send_all(app, &claimed).await;
    deliver::record_outcomes(&db, &outcomes).await?;
    let delivered = outcomes.iter().filter(|o| o.error.is_none()).count();
    let summary = EvaluationSummary {
        day,
        new_alerts,
        digests: outcomes.len(),
        delivered,
        failed: outcomes.len() - delivered,
        statements: statements + db.sent(),
    };
    tracing::info!(summary = ?summary, "alert evaluation finished");
    Ok(summary)
}
