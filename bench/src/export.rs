//! Scenario `export`: a ledger of 1,000,000 rows (5,000 instances x
//! 200 databases, x `TIDEMARK_BENCH_SCALE`) exported as CSV to the embedded S3 endpoint
//! through the local stack, against `psql -c "COPY (same rows) TO STDOUT WITH CSV"`.
//!
//! Peak memory is the exporting process's own: each export runs in a fresh child process (this
//! binary again, told so by `TIDEMARK_BENCH_EXPORT_CHILD`) holding the whole local stack — API,
//! queue, worker and the S3 endpoint receiving the parts — which reports its VmHWM.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use tidemark::web::Query;
use tidemark_tests::TestDb;

use crate::measure::{percentile, scale, Measure};

const CHILD_ENV: &str = "TIDEMARK_BENCH_EXPORT_CHILD";
const RUNS: usize = 3;
const VIEWER: &str = "bench-viewer-token-0123456789";

pub async fn run() -> anyhow::Result<Vec<Measure>> {
    match std::env::var(CHILD_ENV) {
        Ok(spec) => child(&spec).await,
        Err(_) => parent().await,
    }
}

async fn parent() -> anyhow::Result<Vec<Measure>> {
    let instances = ((5_000.0 * scale()).round() as i64).max(10);
    let databases = 200i64;
    let db = TestDb::create().await;
    let pool = tidemark::db::pool(&db.url, 2)?;
    tidemark::db::migrate(&pool).await?;
    let client = db.connect().await;
    let generated = Instant::now();
    client
        .batch_execute(&format!(
            "INSERT INTO instances (name, db_type, host, port) \
               SELECT 'bench-inst-' || lpad(g::text, 5, '0'), CASE WHEN g % 2 = 0 THEN 'mysql' ELSE 'postgresql' END, \
                      '10.' || (g / 256) || '.' || (g % 256) || '.7', 3306 FROM generate_series(1, {instances}) g; \
             INSERT INTO tags (name, display_name, category) VALUES ('fleet', 'Fleet', 'bench'), ('tenth', 'Tenth', 'bench'); \
             INSERT INTO instance_tags (instance_id, tag_id) \
               SELECT i.id, t.id FROM instances i JOIN tags t ON t.name = 'fleet' OR i.id % 10 = 0; \
             INSERT INTO instance_databases (instance_id, database_name, latest_size_bytes, latest_collected_at, \
                 latest_collected_date, growth_bytes_per_day) \
               SELECT i.id, 'app_db_' || lpad(n::text, 3, '0'), (n * 7919 + i.id * 104729)::bigint * 1024, \
                      now() - make_interval(hours => n % 72), current_date - (n % 3), (n % 5 - 2) * 65536 \
               FROM instances i, generate_series(1, {databases}) n; \
             ANALYZE instances; ANALYZE instance_databases; ANALYZE instance_tags; ANALYZE tags;"
        ))
        .await
        .context("generating the ledger")?;
    let total_rows = instances * databases;
    eprintln!(
        "export: generated {total_rows} ledger rows in {:.1} s",
        generated.elapsed().as_secs_f64()
    );

    let small = export_in_children(&db.url, json!({"tag": "tenth"})).await?;
    let large = export_in_children(&db.url, json!({})).await?;

    // The same rows straight out of PostgreSQL: the ceiling for pulling them out.
    let sql = tidemark::exports::Kind::DatabaseLedger.select(&Query::default())?;
    anyhow::ensure!(
        sql.params().is_empty(),
        "the unfiltered ledger query takes no parameters"
    );
    let copy = format!("COPY ({}) TO STDOUT WITH CSV", sql.text);
    let mut baseline = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let status = tokio::process::Command::new("psql")
            .args([
                db.url.as_str(),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &copy,
            ])
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .context("running psql")?;
        anyhow::ensure!(status.success(), "psql COPY failed");
        baseline.push(started.elapsed());
    }
    drop(pool);

    let part_mib = std::env::var("TIDEMARK_EXPORT_PART_MIB")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(8.0);
    let mut out = Vec::new();
    for (name, run) in [("small", &small), ("large", &large)] {
        let p50_s = percentile(&run.samples, 0.5) / 1000.0;
        let mut extra = json!({
            "rows": run.rows,
            "rows_per_s": (run.rows as f64 / p50_s).round(),
            "peak_rss_mib": round2(run.peak_kib as f64 / 1024.0),
            "parts": run.parts,
            "mib_written": round2(run.bytes as f64 / 1_048_576.0),
            "part_mib": part_mib,
        });
        let mut m = Measure::new(
            "export",
            format!("{name}: {} rows to S3 (job over HTTP)", run.rows),
            run.samples.clone(),
        );
        if name == "large" {
            extra["rss_vs_small"] = json!(round2(large.peak_kib as f64 / small.peak_kib as f64));
            extra["rss_limit_mib"] = json!(64.0 + 2.0 * part_mib);
            extra["copy_ratio"] = json!(round2(
                percentile(&run.samples, 0.5) / percentile(&baseline, 0.5)
            ));
            m = m.baseline(baseline.clone());
        }
        out.push(m.extra(extra));
    }
    Ok(out)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

struct Runs {
    samples: Vec<Duration>,
    rows: i64,
    bytes: i64,
    parts: i64,
    peak_kib: i64,
}

/// One fresh child process per export; the peak is the highest VmHWM among them.
async fn export_in_children(database_url: &str, filters: Value) -> anyhow::Result<Runs> {
    let exe = std::env::current_exe()?;
    let spec = json!({"database_url": database_url, "filters": filters}).to_string();
    let mut runs = Runs {
        samples: Vec::new(),
        rows: 0,
        bytes: 0,
        parts: 0,
        peak_kib: 0,
    };
    for _ in 0..RUNS {
        let output = tokio::process::Command::new(&exe)
            .args(["export", "--json"])
            .env(CHILD_ENV, &spec)
            .stderr(std::process::Stdio::inherit())
            .output()
            .await
            .context("running the export child")?;
        anyhow::ensure!(output.status.success(), "export child failed");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with('{'))
            .context("export child printed no result")?;
        let v: Value = serde_json::from_str(line)?;
        let ms = v["p50_ms"].as_f64().unwrap_or(0.0);
        runs.samples.push(Duration::from_secs_f64(ms / 1000.0));
        runs.rows = v["rows"].as_i64().unwrap_or(0);
        runs.bytes = v["bytes"].as_i64().unwrap_or(0);
        runs.parts = v["parts"].as_i64().unwrap_or(0);
        runs.peak_kib = runs.peak_kib.max(v["vm_hwm_kib"].as_i64().unwrap_or(0));
    }
    Ok(runs)
}

/// In the child: the local stack in this process, one export job over HTTP, then VmHWM.
async fn child(spec: &str) -> anyhow::Result<Vec<Measure>> {
    let spec: Value = serde_json::from_str(spec)?;
    let data_dir =
        std::env::temp_dir().join(format!("tidemark-bench-export-{}", std::process::id()));
    let stack = tidemark_local::start(tidemark_local::Options {
        listen: "127.0.0.1:0".parse()?,
        s3_listen: "127.0.0.1:0".parse()?,
        data_dir: data_dir.clone(),
        scheduler: false,
        database_url: spec["database_url"].as_str().map(str::to_string),
        api_tokens: Some(format!("viewer:{VIEWER}")),
        settings: vec![(
            "TIDEMARK_CREDENTIAL_KEY".into(),
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into(),
        )],
    })
    .await?;
    let base = format!("http://{}/api/v1", stack.api_addr);
    let http = reqwest::Client::new();

    let started = Instant::now();
    let created: Value = http
        .post(format!("{base}/exports"))
        .bearer_auth(VIEWER)
        .json(&json!({"kind": "database_ledger", "filters": spec["filters"], "format": "csv"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["data"]["id"]
        .as_str()
        .context("no export id")?
        .to_string();
    let job = loop {
        let job: Value = http
            .get(format!("{base}/exports/{id}"))
            .bearer_auth(VIEWER)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        match job["data"]["status"].as_str() {
            Some("completed") => break job["data"].clone(),
            Some("failed") => anyhow::bail!("export failed: {}", job["data"]["error"]),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    let elapsed = started.elapsed();
    let vm_hwm_kib = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .context("no VmHWM in /proc/self/status")?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(vec![Measure::new("export", "child", vec![elapsed]).extra(
        json!({
            "rows": job["rows_written"],
            "bytes": job["bytes_written"],
            "parts": job["parts_uploaded"],
            "vm_hwm_kib": vm_hwm_kib,
        }),
    )])
}
