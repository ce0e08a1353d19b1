//! Digests: one per channel and day, claimed through the unique key of `alert_deliveries`
//! (a second evaluation of the day claims nothing, except a digest that failed), sent with a
//! few bounded retries, and the outcome recorded where `GET /alert-deliveries` shows it.

use std::time::Duration;

use chrono::NaiveDate;
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::{json, Value};

use super::{topic, ChannelKind, Condition, Severity};
use crate::values::label;
use crate::web::sql::Counted;
use crate::App;

/// Attempts per digest, and the wait before the second one (doubled each time).
pub const MAX_ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Alerts listed in one digest; the counts always cover all of them.
const DIGEST_ITEMS: i64 = 100;
/// The header holding `sha256=<hex HMAC-SHA256 of the body under the channel's secret>`.
pub const SIGNATURE_HEADER: &str = "x-tidemark-signature";

/// One alert as a digest lists it.
#[derive(Debug, Clone, Serialize)]
pub struct DigestItem {
    pub alert_id: i64,
    pub rule_id: i64,
    pub rule_name: String,
    pub condition: Condition,
    pub severity: Severity,
    pub instance_id: i64,
    pub instance_name: String,
    pub database_name: String,
    pub value: Option<f64>,
    pub details: Value,
}

/// A claimed digest: its channel (with the secret, decrypted only when sent) and alerts.
pub struct Digest {
    pub delivery_id: i64,
    pub day: NaiveDate,
    channel_id: i64,
    channel_name: String,
    kind: ChannelKind,
    url: Option<String>,
    secret: Option<(Vec<u8>, Option<i32>)>,
    total: i64,
    /// Alerts per severity: `{"critical": 2, "warning": 1}`.
    counts: Value,
    items: Vec<DigestItem>,
}

pub struct Outcome {
    pub delivery_id: i64,
    pub attempts: u32,
    pub error: Option<String>,
}

/// Claims the day's digests and reads what they hold, in one statement.
pub(super) async fn claim_digests<C: GenericClient>(
    db: &Counted<'_, C>,
    day: NaiveDate,
) -> Result<Vec<Digest>, tokio_postgres::Error> {
    let sql = format!(
        "WITH claimed AS ( \
           INSERT INTO alert_deliveries (channel_id, day, alert_count) \
           SELECT rc.channel_id, $1::date, count(*) FROM alerts a \
             JOIN alert_rule_channels rc ON rc.rule_id = a.rule_id \
             JOIN alert_channels c ON c.id = rc.channel_id AND c.is_active \
           WHERE a.day = $1::date GROUP BY rc.channel_id \
           ON CONFLICT (channel_id, day) DO UPDATE SET status = 'sending', \
             alert_count = EXCLUDED.alert_count, last_error = NULL, finished_at = NULL \
             WHERE alert_deliveries.status = 'failed' \
           RETURNING id, channel_id), \
         listed AS (SELECT d.id AS delivery_id, a.id AS alert_id, a.rule_id, r.name AS rule_name, \
             r.condition, a.severity, a.instance_id, i.name AS instance_name, a.database_name, \
             a.value, a.details, \
             count(*) OVER (PARTITION BY d.id) AS total, \
             row_number() OVER (PARTITION BY d.id ORDER BY \
               array_position(ARRAY['critical','warning','info'], a.severity), a.id) AS n \
           FROM claimed d JOIN alert_rule_channels rc ON rc.channel_id = d.channel_id \
           JOIN alerts a ON a.rule_id = rc.rule_id AND a.day = $1::date \
           JOIN alert_rules r ON r.id = a.rule_id JOIN instances i ON i.id = a.instance_id), \
         counts AS (SELECT delivery_id, jsonb_object_agg(severity, n) AS counts \
           FROM (SELECT delivery_id, severity, count(*) AS n FROM listed GROUP BY 1, 2) s \
           GROUP BY delivery_id) \
         SELECT l.*, k.counts, c.id AS channel_id, c.name AS channel_name, c.kind, c.url, \
           c.secret_ciphertext, c.key_version \
         FROM listed l JOIN counts k USING (delivery_id) JOIN claimed d ON d.id = l.delivery_id \
         JOIN alert_channels c ON c.id = d.channel_id \
         WHERE l.n <= {DIGEST_ITEMS} ORDER BY l.delivery_id, l.n"
    );
    let rows = db.counted().query(&sql, &[&day]).await?;
    let mut digests: Vec<Digest> = Vec::new();
    for r in rows {
        let delivery_id: i64 = r.try_get("delivery_id")?;
        if digests.last().map(|d| d.delivery_id) != Some(delivery_id) {
            let cipher: Option<Vec<u8>> = r.try_get("secret_ciphertext")?;
            let version: Option<i32> = r.try_get("key_version")?;
            digests.push(Digest {
                delivery_id,
                day,
                channel_id: r.try_get("channel_id")?,
                channel_name: r.try_get("channel_name")?,
                kind: r.try_get("kind")?,
                url: r.try_get("url")?,
                secret: cipher.map(|c| (c, version)),
                total: r.try_get("total")?,
                counts: r.try_get("counts")?,
                items: Vec::new(),
            });
        }
        let Some(d) = digests.last_mut() else {
            continue;
        };
        d.items.push(DigestItem {
            alert_id: r.try_get("alert_id")?,
            rule_id: r.try_get("rule_id")?,
            rule_name: r.try_get("rule_name")?,
            condition: r.try_get("condition")?,
            severity: r.try_get("severity")?,
            instance_id: r.try_get("instance_id")?,
            instance_name: r.try_get("instance_name")?,
            database_name: r.try_get("database_name")?,
            value: r.try_get("value")?,
            details: r.try_get("details")?,
        });
    }
    Ok(digests)
}

/// Records every digest's outcome in one statement (run even when there is none, so the
/// evaluation's statement count is fixed).
pub(super) async fn record_outcomes<C: GenericClient>(
    db: &Counted<'_, C>,
    outcomes: &[Outcome],
) -> Result<(), tokio_postgres::Error> {
    let ids: Vec<i64> = outcomes.iter().map(|o| o.delivery_id).collect();
    let status: Vec<&str> = outcomes
        .iter()
        .map(|o| {
            if o.error.is_none() {
                "delivered"
            } else {
                "failed"
            }
        })
        .collect();
    let attempts: Vec<i32> = outcomes.iter().map(|o| o.attempts as i32).collect();
    let errors: Vec<Option<&str>> = outcomes.iter().map(|o| o.error.as_deref()).collect();
    db.counted()
        .execute(
            "UPDATE alert_deliveries d SET status = u.status, attempts = d.attempts + u.attempts, \
               last_error = u.error, finished_at = now() \
             FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[]) AS u(id, status, attempts, error) \
             WHERE d.id = u.id",
            &[&ids, &status, &attempts, &errors],
        )
        .await?;
    Ok(())
}

/// Sends every claimed digest (concurrently: one per channel).
pub(super) async fn send_all(app: &App, digests: &[Digest]) -> Vec<Outcome> {
    futures::future::join_all(digests.iter().map(|d| send(app, d))).await
}

async fn send(app: &App, digest: &Digest) -> Outcome {
    let mut attempts = 0;
    let mut backoff = FIRST_BACKOFF;
    let error = loop {
        attempts += 1;
        match send_once(app, digest).await {
            Ok(()) => break None,
            Err(e) if attempts >= MAX_ATTEMPTS => break Some(format!("{e:#}")),
            Err(e) => {
                tracing::warn!(channel = digest.channel_id, attempt = attempts, error = %format!("{e:#}"), "alert digest not delivered, retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    };
    if let Some(e) = &error {
        tracing::error!(channel = digest.channel_id, delivery = digest.delivery_id, error = %e, "alert digest failed");
    }
    Outcome {
        delivery_id: digest.delivery_id,
        attempts,
        error,
    }
}

fn http() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    })
}

async fn send_once(app: &App, d: &Digest) -> anyhow::Result<()> {
    let text = digest_text(d);
    let Some(url) = &d.url else {
        let topic = topic().ok_or_else(|| {
            anyhow::anyhow!(
                "no SNS topic is configured in this deployment (TIDEMARK_ALERT_TOPIC_ARN)"
            )
        })?;
        return topic.publish(&subject(d), &text).await;
    };
    let secret = match &d.secret {
        Some((cipher, version)) => Some(app.credential_key.open(
            ("alert-channel", d.channel_id),
            *version,
            cipher,
        )?),
        None => None,
    };
    let body = match d.kind {
        ChannelKind::Slack => json!({"text": text}),
        ChannelKind::Feishu => feishu_body(&text, secret.as_deref()),
        _ => generic_body(d),
    };
    let body = serde_json::to_vec(&body)?;
    let mut req = http()
        .post(url)
        .header("content-type", "application/json")
        .header("x-tidemark-delivery", d.delivery_id.to_string());
    if let (ChannelKind::Webhook, Some(s)) = (d.kind, &secret) {
        req = req.header(SIGNATURE_HEADER, format!("sha256={}", sign(s, &body)));
    }
    let resp = req.body(body).send().await?;
    let status = resp.status();
    if !status.is_success() {
        anyhow::bail!("the receiver answered HTTP {}", status.as_u16());
    }
    Ok(())
}

/// Hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn generic_body(d: &Digest) -> Value {
    json!({
        "day": d.day,
        "channel": d.channel_name,
        "alert_count": d.total,
        "counts": d.counts,
        "truncated": (d.items.len() as i64) < d.total,
        "alerts": d.items,
    })
}

/// Feishu's custom bot: a text message; with a secret, the bot's own signature (HMAC-SHA256
/// keyed by `timestamp\nsecret` over nothing, base64) in the body.
fn feishu_body(text: &str, secret: Option<&str>) -> Value {
    use base64::Engine;
    let mut body = json!({"msg_type": "text", "content": {"text": text}});
    if let Some(s) = secret {
        let ts = chrono::Utc::now().timestamp();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, format!("{ts}\n{s}").as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, b""));
        body["timestamp"] = json!(ts.to_string());
        body["sign"] = json!(sig);
    }
    body
}

fn subject(d: &Digest) -> String {
    format!("Tidemark: {} capacity alert(s) on {}", d.total, d.day)
}

/// The digest for people (Slack, Feishu, e-mail).
fn digest_text(d: &Digest) -> String {
    let counts: Vec<String> = ["critical", "warning", "info"]
        .iter()
        .filter_map(|s| d.counts[*s].as_i64().map(|n| format!("{n} {s}")))
        .collect();
    let mut out = format!("{} ({})\n", subject(d), counts.join(", "));
    for i in &d.items {
        let target = if i.database_name.is_empty() {
            i.instance_name.clone()
        } else {
            format!("{}/{}", i.instance_name, i.database_name)
        };
        out.push_str(&format!(
            "- [{}] {}: {target}: {}\n",
            i.severity,
            i.rule_name,
            describe(i)
        ));
    }
    let more = d.total - d.items.len() as i64;
    if more > 0 {
        out.push_str(&format!(
            "... and {more} more (GET /alerts?day={})\n",
            d.day
        ));
    }
    out
}

fn describe(i: &DigestItem) -> String {
    let bytes = |k: &str| i.details[k].as_f64().map(|v| label(v as i64));
    let or_unknown = |v: Option<String>| v.unwrap_or_else(|| "?".into());
    match i.condition {
        Condition::DaysUntilThreshold => format!(
            "{} reaches {} in {} day(s)",
            or_unknown(bytes("size_bytes")),
            or_unknown(bytes("threshold_bytes")),
            i.value.unwrap_or(0.0)
        ),
        Condition::Growth => format!(
            "grew {} ({}%) to {}",
            or_unknown(bytes("growth_bytes")),
            i.details["growth_percent"],
            or_unknown(bytes("size_bytes"))
        ),
        Condition::AbnormalDay => format!(
            "grew {} in a day (30-day median {}, {:.1} MADs away)",
            or_unknown(bytes("day_growth_bytes")),
            or_unknown(bytes("median_growth_bytes")),
            i.value.unwrap_or(0.0)
        ),
        Condition::CollectionFailing => {
            format!("not collected for {} day(s)", i.value.unwrap_or(0.0))
        }
    }
}
