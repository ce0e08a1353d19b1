//! Scenario `tables`: one PostgreSQL database and one MariaDB schema of 20,000 tables each on
//! this machine's servers. Timed: the adapter's bulk read (one catalogue statement) and the
//! set-based persistence of what it read; side by side, the naive read (list the tables,
//! then one `pg_total_relation_size` round trip per table). Then `GET /tables/top` over HTTP
//! with 10 million table-history rows (and a million tables) loaded by `generate_series`.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use serde_json::json;
use tidemark::collect::adapter::{adapter_for, TableSize, Target};
use tidemark::tables::{persist, HistoryRule};
use tidemark::web::Role;
use tidemark_tests::scratch::{my, pg, Scratch, MY_PORT, PG_PORT};
use tidemark_tests::{unique, TestStack};

use crate::measure::{scale, time_n, Measure};

const SCENARIO: &str = "tables";
const SAMPLES: usize = 5;
const HTTP_SAMPLES: usize = 200;
/// Connections creating tables at once (DDL commits are fsync-bound; group commit helps).
const CREATORS: usize = 16;

fn target(port: u16, user: &str) -> Target {
    Target {
        host: "127.0.0.1".into(),
        port,
        username: Some(user.into()),
        password: None,
        database_name: None,
        connect_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(120),
        tls_mode: tidemark::tls::TlsMode::Disable,
        tls_ca_pem: None,
    }
}

/// `n` tables in PostgreSQL database `db`, every tenth with a primary key and a few rows.
async fn pg_tables(db: &str, n: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..CREATORS {
        let db = db.to_string();
        tasks.push(tokio::spawn(async move {
            let c = pg(&db).await;
            let mine: Vec<usize> = (0..n).filter(|i| i % CREATORS == k).collect();
            for chunk in mine.chunks(200) {
                let sql: String = chunk
                    .iter()
                    .map(|i| {
                        if i % 10 == 0 {
                            format!("CREATE TABLE t{i:05} (id int PRIMARY KEY, v text); \
                                     INSERT INTO t{i:05} SELECT g, md5(g::text) FROM generate_series(1, 50) g;")
                        } else {
                            format!("CREATE TABLE t{i:05} (id int, v text);")
                        }
                    })
                    .collect();
                c.batch_execute(&sql).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    eprintln!(
        "tables: {n} PostgreSQL tables made in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `n` InnoDB tables in MariaDB schema `db`.
async fn my_tables(db: &str, n: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..CREATORS {
        let db = db.to_string();
        tasks.push(tokio::spawn(async move {
            let mut c = my().await;
            for i in (0..n).filter(|i| i % CREATORS == k) {
                c.query_drop(format!(
                    "CREATE TABLE `{db}`.t{i:05} (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=InnoDB"
                ))
                .await?;
            }
            let _ = c.disconnect().await;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    eprintln!(
        "tables: {n} MariaDB tables made in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The adapter's data + index over MariaDB schema `db`, read once more.
async fn my_sum_bytes(db: &str) -> anyhow::Result<u64> {
    let adapter = adapter_for("mysql").ok_or_else(|| anyhow::anyhow!("no adapter"))?;
    let mut read = adapter
        .tables(
            &target(MY_PORT, "root"),
            &[db.to_string()],
            tokio::time::Instant::now() + Duration::from_secs(300),
        )
        .await?;
    let tables = read
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no result"))?
        .tables
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(tables.iter().map(|t| t.total_bytes as u64).sum())
}

/// The naive read: the table list, then one size round trip per table.
async fn naive(db: &str) -> anyhow::Result<usize> {
    let c = pg(db).await;
    let oids: Vec<u32> = c
        .query(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_toast%'",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let each = c
        .prepare(
            "SELECT pg_total_relation_size($1::oid), pg_relation_size($1::oid), pg_indexes_size($1::oid)",
        )
        .await?;
    for oid in &oids {
        c.query_one(&each, &[oid]).await?;
    }
    Ok(oids.len())
}

/// Reads `db`'s tables through the adapter (timed) and persists them (timed).
async fn read_and_persist(
    t: &TestStack,
    engine: &str,
    target: &Target,
    db: &str,
    instance: i64,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>, usize, i64)> {
    let adapter = adapter_for(engine).ok_or_else(|| anyhow::anyhow!("no adapter"))?;
    let dbs = [db.to_string()];
    let mut tables: Vec<TableSize> = Vec::new();
    let mut reads = Vec::new();
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let mut read = adapter
            .tables(
                target,
                &dbs,
                tokio::time::Instant::now() + Duration::from_secs(300),
            )
            .await?;
        reads.push(started.elapsed());
        tables = read
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no result"))?
            .tables
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    let rule = HistoryRule {
        min_bytes: 64 << 20,
        top: 50,
    };
    let mut writes = Vec::new();
    let mut statements = 0;
    for _ in 0..SAMPLES {
        let mut client = t.stack.app.db.get().await?;
        let started = Instant::now();
        let tx = client.transaction().await?;
        let today = chrono::Utc::now().date_naive();
        let saved = persist(&tx, instance, db, today, chrono::Utc::now(), &tables, rule).await?;
        tx.commit().await?;
        writes.push(started.elapsed());
        statements = saved.statements;
    }
    Ok((reads, writes, tables.len(), statements))
}

/// A million tables on 200 instances, 10 million history rows (the 50,000 largest, 200 days).
async fn load_history(c: &tokio_postgres::Client, rows: i64) -> anyhow::Result<()> {
    let started = Instant::now();
    let tables_with_history: i64 = 50_000.min(rows / 200).max(1);
    let days = rows / tables_with_history;
    let all_tables = tables_with_history * 20;
    c.batch_execute(
        "SET synchronous_commit = off;
         INSERT INTO instances (name, db_type, host, port)
           SELECT 'bt-' || n, CASE WHEN n % 2 = 0 THEN 'mysql' ELSE 'postgresql' END, '10.9.' || n || '.1', 5432
           FROM generate_series(1, 200) n;
         INSERT INTO tags (name, display_name, category) VALUES ('bench-top', 'bench-top', 'bench');
         INSERT INTO instance_tags (instance_id, tag_id)
           SELECT i.id, t.id FROM instances i, tags t WHERE t.name = 'bench-top' AND i.name LIKE 'bt-%' AND i.id % 3 = 0;",
    )
    .await?;
    c.execute(
        "INSERT INTO instance_tables (instance_id, database_name, schema_name, table_name, first_seen_date, \
             last_seen_date, total_bytes, data_bytes, index_bytes, collected_at, collected_date, \
             growth_7d_bytes, growth_30d_bytes, has_history) \
         SELECT i.id, 'db' || (g % 10), 'public', 't' || g, current_date - 200, current_date, \
                (g * 7919) % 100000000000, (g * 7919) % 50000000000, (g * 7919) % 20000000000, now(), current_date, \
                CASE WHEN g <= $2 THEN (g * 31) % 1000000000 END, CASE WHEN g <= $2 THEN (g * 37) % 3000000000 END, g <= $2 \
         FROM generate_series(1, $1::bigint) g JOIN instances i ON i.name = 'bt-' || (g % 200 + 1)",
        &[&all_tables, &tables_with_history],
    )
    .await?;
    c.execute(
        "SELECT tidemark_ensure_month_partition('table_size_stats', m::date) \
         FROM generate_series(date_trunc('month', current_date - $1::int), current_date, interval '1 month') m",
        &[&(days as i32)],
    )
    .await?;
    // Row by row the foreign key would be checked 10 million times: the loader skips it.
    c.batch_execute("SET session_replication_role = replica")
        .await?;
    let ids: Vec<i64> = c
        .query(
            "SELECT t.id FROM instance_tables t JOIN instances i ON i.id = t.instance_id \
             WHERE t.has_history AND i.name LIKE 'bt-%' ORDER BY t.id",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for chunk in ids.chunks(5_000) {
        c.execute(
            "INSERT INTO table_size_stats (table_id, collected_date, instance_id, total_bytes, data_bytes, \
                 index_bytes, collected_at) \
             SELECT t.id, d::date, t.instance_id, t.total_bytes - (current_date - d::date) * 1000, \
                    t.data_bytes, t.index_bytes, d + interval '3 hours' \
             FROM instance_tables t \
             CROSS JOIN generate_series(current_date - ($2::int - 1), current_date, interval '1 day') d \
             WHERE t.id = ANY($1::bigint[])",
            &[&chunk.to_vec(), &(days as i32)],
        )
        .await?;
    }
    // As autovacuum would have by then: every table the top reads has statistics.
    c.batch_execute(
        "SET session_replication_role = origin; ANALYZE instances; ANALYZE tags; ANALYZE instance_tags; \
         ANALYZE instance_databases; ANALYZE instance_tables; ANALYZE table_size_stats",
    )
    .await?;
    let loaded: i64 = c
        .query_one("SELECT count(*) FROM table_size_stats", &[])
        .await?
        .get(0);
    eprintln!(
        "tables: {all_tables} tables, {loaded} history rows loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub async fn run() -> anyhow::Result<Vec<Measure>> {
    let n = ((20_000.0 * scale()).round() as usize).max(20);
    let history_rows = ((10_000_000.0 * scale()).round() as i64).max(1_000);
    let t = TestStack::start().await;
    let app_db = t.db.connect().await;
    let mut scratch = Scratch::default();
    let mut out = Vec::new();

    // `TIDEMARK_BENCH_TABLES=mariadb` times only the MariaDB read (its tables take longest).
    let only_mariadb = std::env::var("TIDEMARK_BENCH_TABLES").is_ok_and(|v| v == "mariadb");
    if !only_mariadb {
        pg_part(&t, &app_db, &mut scratch, n, &mut out).await?;
    }
    my_part(&t, &app_db, &mut scratch, n, &mut out).await?;
    if only_mariadb {
        return Ok(out);
    }

    // GET /tables/top over HTTP with the history loaded.
    load_history(&app_db, history_rows).await?;
    for query in [
        "limit=20",
        "by=growth_7d&limit=20",
        "tag=bench-top&db_type=postgresql&limit=20",
    ] {
        let path = format!("/tables/top?{query}");
        for _ in 0..10 {
            let r = t.get(&path, Role::Viewer).await;
            anyhow::ensure!(r.status == 200, "{path}: {r:?}");
        }
        let samples = time_n(HTTP_SAMPLES, || t.get(&path, Role::Viewer)).await;
        out.push(
            Measure::new(SCENARIO, format!("GET /tables/top?{query}"), samples)
                .extra(json!({"history_rows": history_rows})),
        );
    }
    Ok(out)
}

/// PostgreSQL: one database of n tables, bulk read beside the per-table loop.
async fn pg_part(
    t: &TestStack,
    app_db: &tokio_postgres::Client,
    scratch: &mut Scratch,
    n: usize,
    out: &mut Vec<Measure>,
) -> anyhow::Result<()> {
    let pg_db = unique("bench_tables");
    scratch.pg_db(&pg_db, 0).await;
    pg_tables(&pg_db, n).await?;
    pg(&pg_db).await.batch_execute("ANALYZE").await?;
    let instance: i64 = app_db
        .query_one(
            "INSERT INTO instances (name, db_type, host, port) VALUES ($1, 'postgresql', '127.0.0.1', $2) RETURNING id",
            &[&unique("bench-pg"), &i32::from(PG_PORT)],
        )
        .await?
        .get(0);
    let (reads, writes, count, statements) = read_and_persist(
        t,
        "postgresql",
        &target(PG_PORT, "postgres"),
        &pg_db,
        instance,
    )
    .await?;
    let naive_samples = time_n(1, || naive(&pg_db)).await;
    out.push(
        Measure::new(
            SCENARIO,
            format!("postgresql read {count} tables (bulk)"),
            reads,
        )
        .baseline(naive_samples)
        .extra(json!({"baseline": "one pg_total_relation_size round trip per table"})),
    );
    out.push(
        Measure::new(
            SCENARIO,
            format!("postgresql persist {count} tables"),
            writes,
        )
        .extra(json!({"statements": statements})),
    );

    Ok(())
}

/// MariaDB: one schema of n tables, read beside the previous information_schema query.
async fn my_part(
    t: &TestStack,
    app_db: &tokio_postgres::Client,
    scratch: &mut Scratch,
    n: usize,
    out: &mut Vec<Measure>,
) -> anyhow::Result<()> {
    let my_db = unique("bench_tables");
    scratch.my_db(&my_db, 0).await;
    my_tables(&my_db, n).await?;
    let instance: i64 = app_db
        .query_one(
            "INSERT INTO instances (name, db_type, host, port) VALUES ($1, 'mysql', '127.0.0.1', $2) RETURNING id",
            &[&unique("bench-my"), &i32::from(MY_PORT)],
        )
        .await?
        .get(0);
    let (reads, writes, count, statements) =
        read_and_persist(t, "mysql", &target(MY_PORT, "root"), &my_db, instance).await?;
    let sum_bytes: u64 = my_sum_bytes(&my_db).await?;
    // Baseline: the previous shape, one server-wide information_schema.TABLES query (MariaDB
    // parses every table's .frm for it); its sums cross-check the adapter's figures.
    let old_sql = format!(
        "SELECT CAST(COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS UNSIGNED), COUNT(*), \
                CAST(COALESCE(SUM(TABLE_SCHEMA = '{my_db}'), 0) AS UNSIGNED), \
                CAST(COALESCE(SUM(IF(TABLE_SCHEMA = '{my_db}', DATA_LENGTH + INDEX_LENGTH, 0)), 0) AS UNSIGNED) \
         FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE'"
    );
    let mut c = my().await;
    let mut old_samples = Vec::new();
    let mut old_sums = (0u64, 0u64, 0u64, 0u64);
    for _ in 0..3 {
        let started = Instant::now();
        old_sums = c
            .query_first(old_sql.as_str())
            .await?
            .ok_or_else(|| anyhow::anyhow!("no information_schema row"))?;
        old_samples.push(started.elapsed());
    }
    let _ = c.disconnect().await;
    let (ours_tables, ours_bytes) = (count as u64, sum_bytes);
    out.push(
        Measure::new(
            SCENARIO,
            format!("mariadb read {count} tables (server)"),
            reads,
        )
        .baseline(old_samples)
        .extra(json!({
            "baseline": "one server-wide information_schema.TABLES query (the previous shape)",
            "schema_tables": {"ours": ours_tables, "information_schema": old_sums.2},
            "schema_bytes": {"ours": ours_bytes, "information_schema": old_sums.3},
        })),
    );
    out.push(
        Measure::new(SCENARIO, format!("mariadb persist {count} tables"), writes)
            .extra(json!({"statements": statements})),
    );

    Ok(())
}
