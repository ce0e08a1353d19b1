//! Part of the `operations` scenario: evaluate all alert rules over the
//! 14.6 M-row history of the `ledger` scenario (200 instances x 200 databases x 365 days at
//! scale 1, the same loader): one rule per condition, scope all, for the fleet's 40,000
//! databases, in the evaluation's fixed list of statements. Baseline in the same run: the
//! naive shape, one query per database (the forecast's regression and the week's growth),
//! timed over a sample and projected to the whole fleet.

use std::time::{Duration, Instant};

use serde_json::json;
use tidemark_tests::TestStack;

use crate::ledger::{load, DATABASES_PER_INSTANCE};
use crate::measure::{scale, Measure};

const SCENARIO: &str = "operations";
const RUNS: usize = 5;
/// Databases the naive baseline is timed on (then projected to the fleet).
const NAIVE_SAMPLE: i64 = 2_000;

const RULES: &str = "INSERT INTO alert_rules (name, severity, scope, condition, threshold_bytes, max_days, \
       period, min_percent, mad_k, failing_days) VALUES \
     ('fills', 'critical', 'all', 'days_until_threshold', 10737418240, 30, NULL, NULL, NULL, NULL), \
     ('grows', 'warning', 'all', 'growth', NULL, NULL, 'week', 1, NULL, NULL), \
     ('odd', 'warning', 'all', 'abnormal_day', NULL, NULL, NULL, NULL, 3, NULL), \
     ('silent', 'info', 'all', 'collection_failing', NULL, NULL, NULL, NULL, NULL, 3)";

/// The naive evaluation of one database: its own regression and week-old size.
const NAIVE_ONE: &str = "SELECT regr_slope(size_bytes::float8, (collected_date - current_date)::float8), \
       (array_agg(size_bytes ORDER BY collected_date DESC))[1], \
       (array_agg(size_bytes ORDER BY collected_date DESC) FILTER (WHERE collected_date <= current_date - 7))[1] \
     FROM database_size_stats WHERE instance_id = $1 AND database_name = $2 \
       AND collected_date BETWEEN current_date - 31 AND current_date";

pub async fn run() -> anyhow::Result<Vec<Measure>> {
    let instances = ((200.0 * scale()).round() as i64).max(1);
    let databases = instances * DATABASES_PER_INSTANCE;
    let t = TestStack::start().await;
    let pg = t.db.connect().await;
    let history_rows = load(&pg, instances, 365).await?;
    pg.batch_execute(RULES).await?;
    let day = t.stack.app.config.business_date(chrono::Utc::now());
    let today: chrono::NaiveDate = pg.query_one("SELECT current_date", &[]).await?.get(0);
    anyhow::ensure!(day == today, "business date {day} vs the loader's {today}");

    let mut samples = Vec::new();
    let mut summary = None;
    for _ in 0..RUNS {
        pg.batch_execute("DELETE FROM alerts").await?;
        let started = Instant::now();
        let s = tidemark::alerts::evaluate(&t.stack.app, day).await?;
        samples.push(started.elapsed());
        eprintln!(
            "alerts: evaluated in {:.3} s: {s:?}",
            started.elapsed().as_secs_f64()
        );
        summary = Some(s);
    }
    let summary = summary.ok_or_else(|| anyhow::anyhow!("no run"))?;

    let sample: Vec<(i64, String)> = pg
        .query(
            "SELECT instance_id, database_name FROM instance_databases ORDER BY id LIMIT $1",
            &[&NAIVE_SAMPLE],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let statement = pg.prepare(NAIVE_ONE).await?;
    let mut naive = Vec::new();
    for _ in 0..2 {
        let started = Instant::now();
        for (instance, database) in &sample {
            pg.query(&statement, &[instance, database]).await?;
        }
        let per_db = started.elapsed().as_secs_f64() / sample.len().max(1) as f64;
        naive.push(Duration::from_secs_f64(per_db * databases as f64));
    }
    Ok(vec![Measure::new(
        SCENARIO,
        format!("evaluate 4 rules over {databases} databases"),
        samples,
    )
    .baseline(naive)
    .extra(json!({
        "databases": databases,
        "history_rows": history_rows,
        "statements": summary.statements,
        "alerts": summary.new_alerts,
        "baseline": format!("one query per database, timed over {} and projected", sample.len()),
        "target_ms": 2000,
    }))])
}
