//! Scenario `cold-start`: what a Lambda container does once before its first request
//! (configuration, secrets from the environment, pool, SDK clients) and the first database
//! connection, measured in this process (target < 50 ms).

use std::time::{Duration, Instant};

use serde_json::json;
use tidemark_tests::TestDb;

use crate::measure::Measure;

pub async fn run() -> anyhow::Result<Vec<Measure>> {
    let db = TestDb::create().await;
    std::env::set_var("DATABASE_URL", &db.url);
    std::env::set_var(
        "TIDEMARK_CREDENTIAL_KEY",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    );
    std::env::remove_var("TIDEMARK_SECRET_ARN");
    // Region and credentials as a Lambda container has them in its environment.
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
    let mut init: Vec<Duration> = Vec::new();
    let mut first_query: Vec<Duration> = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let app = tidemark_functions::app()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        init.push(started.elapsed());
        let started = Instant::now();
        app.db.get().await?.query_one("SELECT 1", &[]).await?;
        first_query.push(started.elapsed());
    }
    Ok(vec![
        Measure::new("cold-start", "init: config + pool + SDK clients", init)
            .extra(json!({"target_ms": 50})),
        Measure::new(
            "cold-start",
            "first database round trip (connect + SELECT 1)",
            first_query,
        ),
    ])
}
