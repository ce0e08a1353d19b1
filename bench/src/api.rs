//! Scenario `api`: instance list, tag list, ledger first page and the console's fleet summary
//! over HTTP with 4 concurrent clients (absolute figures; target p50 < 2 ms, p99 < 10 ms on
//! loopback for the lists; the summary runs 7 statements, two over 7 and 30 days of history).

use std::time::{Duration, Instant};

use serde_json::json;
use tidemark_tests::{TestStack, VIEWER};

use crate::measure::{percentile, scale, Measure};

pub async fn run() -> anyhow::Result<Vec<Measure>> {
    let t = TestStack::start().await;
    let pg = t.db.connect().await;
    let instances = ((1000.0 * scale()) as i64).max(10);
    pg.batch_execute(&format!(
        "INSERT INTO tags (name, display_name, category) SELECT 'tag-' || g, 'Tag ' || g, 'c' || (g % 5) FROM generate_series(1, 50) g;
         INSERT INTO instances (name, db_type, host, port) SELECT 'inst-' || g, 'mysql', 'host-' || g, 3306 FROM generate_series(1, {instances}) g;
         INSERT INTO instance_tags (instance_id, tag_id) SELECT i.id, t.id FROM instances i JOIN tags t ON t.id <= 3;
         INSERT INTO instance_databases (instance_id, database_name, latest_size_bytes, latest_collected_at, latest_collected_date)
           SELECT i.id, 'db_' || g, g * 1048576, now(), current_date FROM instances i, generate_series(1, 20) g;
         UPDATE instance_databases SET growth_bytes_per_day = (id % 13) * 65536;
         INSERT INTO database_size_stats (instance_id, database_name, collected_date, size_bytes)
           SELECT d.instance_id, d.database_name, current_date - k, GREATEST(0, d.latest_size_bytes - d.growth_bytes_per_day * k)
           FROM instance_databases d, generate_series(0, 29) k;"
    ))
    .await?;
    // A settled system: autovacuum has set the visibility map by the time users list things.
    pg.batch_execute("VACUUM ANALYZE").await?;
    let mut out = Vec::new();
    for (name, path) in [
        ("instance list", "/instances"),
        ("tag list", "/tags"),
        ("ledger first page", "/databases/ledger"),
        ("fleet summary", "/fleet/summary"),
    ] {
        let url = format!("{}{path}", t.base);
        // Warm-up: connections, statement caches.
        for _ in 0..20 {
            t.http
                .get(&url)
                .bearer_auth(VIEWER)
                .send()
                .await?
                .error_for_status()?;
        }
        let per_client = 250;
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let http = t.http.clone();
                let url = url.clone();
                tokio::spawn(async move {
                    let mut samples = Vec::with_capacity(per_client);
                    for _ in 0..per_client {
                        let started = Instant::now();
                        let ok = http
                            .get(&url)
                            .bearer_auth(VIEWER)
                            .send()
                            .await
                            .map(|r| r.status().is_success());
                        samples.push((started.elapsed(), ok.unwrap_or(false)));
                    }
                    samples
                })
            })
            .collect();
        let mut samples: Vec<Duration> = Vec::new();
        let mut failures = 0;
        for c in clients {
            for (d, ok) in c.await? {
                samples.push(d);
                failures += usize::from(!ok);
            }
        }
        let p99 = percentile(&samples, 0.99);
        out.push(
            Measure::new("api", format!("{name} (4 clients)"), samples).extra(json!({
                "p99_ms": (p99 * 1000.0).round() / 1000.0,
                "failures": failures,
                "instances": instances,
            })),
        );
    }
    Ok(out)
}
