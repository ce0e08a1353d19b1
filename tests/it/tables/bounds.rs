//! What stays bounded whatever the size of a database: the statements (and history rows) of
//! one database's write, and the time a visit spends on a database that does not answer.

use std::time::{Duration, Instant};

use tidemark::collect::adapter::{adapter_for, TableKind, TableSize, Target};
use tidemark::tables::{persist, HistoryRule};
use tidemark_tests::scratch::{pg, Scratch, PG_PORT};
use tidemark_tests::{scalar, unique, TestStack};

fn table(i: usize, total: i64) -> TableSize {
    TableSize {
        schema_name: "public".into(),
        table_name: format!("t{i:05}"),
        kind: TableKind::Table,
        parent_name: None,
        engine: None,
        total_bytes: total,
        data_bytes: total / 2,
        index_bytes: total / 4,
        toast_bytes: Some(0),
        free_bytes: None,
        row_estimate: Some(total / 100),
    }
}

/// One database's tables persisted today, in a transaction of its own.
async fn save(
    t: &TestStack,
    instance: i64,
    db: &str,
    tables: &[TableSize],
    rule: HistoryRule,
) -> tidemark::tables::Saved {
    let mut client = t.stack.app.db.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let today = chrono::Utc::now().date_naive();
    let saved = persist(&tx, instance, db, today, chrono::Utc::now(), tables, rule)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    saved
}

#[tokio::test(flavor = "multi_thread")]
async fn persistence_is_constant_in_statements_and_history_is_bounded() {
    let t = TestStack::start().await;
    let instance = t
        .instance(&unique("p"), "postgresql", "127.0.0.1", 5432)
        .await;
    let rule = HistoryRule {
        min_bytes: 64 << 20,
        top: 50,
    };
    // 20,000 tables, ten of them above the floor.
    let many: Vec<TableSize> = (0..20_000)
        .map(|i| {
            table(
                i,
                if i < 10 {
                    (100 << 20) + i as i64
                } else {
                    8192 + i as i64
                },
            )
        })
        .collect();
    let few: Vec<TableSize> = many[..20].to_vec();
    let small = save(&t, instance, "few", &few, rule).await;
    let started = Instant::now();
    let large = save(&t, instance, "many", &many, rule).await;
    eprintln!("20,000 tables persisted in {:?}", started.elapsed());
    assert_eq!(small.statements, large.statements);
    assert_eq!(large.statements, 4);
    assert_eq!((small.tables, large.tables), (20, 20_000));
    assert_eq!(large.created, 20_000);
    // Top 50 (the ten large ones among them): 50 rows, not 20,000.
    assert_eq!(small.history_rows, 20);
    assert_eq!(large.history_rows, 50);
    // A smaller top: every table above the floor still gets its row.
    let again = save(&t, instance, "many", &many, HistoryRule { top: 3, ..rule }).await;
    assert_eq!(again.history_rows, 10);
    assert_eq!(again.created, 0);
    let c = t.db.connect().await;
    let rows: i64 = scalar(
        &c,
        &format!(
            "SELECT count(*) FROM table_size_stats s JOIN instance_tables t ON t.id = s.table_id \
             WHERE t.instance_id = {instance} AND t.database_name = 'many'"
        ),
    )
    .await;
    assert_eq!(rows, 50, "the earlier top-50 rows of the day stay");
}

/// A PostgreSQL target on the shared server as `postgres`.
fn shared_pg() -> Target {
    Target {
        host: "127.0.0.1".into(),
        port: PG_PORT,
        username: Some("postgres".into()),
        password: None,
        database_name: None,
        connect_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(60),
        tls_mode: tidemark::tls::TlsMode::Disable,
        tls_ca_pem: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_visit_deadline_holds_when_one_database_does_not_answer() {
    let mut scratch = Scratch::default();
    let (fast, slow) = (unique("tbl_fast"), unique("tbl_slow"));
    scratch.pg_db(&fast, 0).await;
    scratch.pg_db(&slow, 0).await;
    pg(&fast)
        .await
        .batch_execute("CREATE TABLE a (id int)")
        .await
        .unwrap();
    // An open transaction holding ACCESS EXCLUSIVE on a table: reading its size waits.
    let (locker, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={PG_PORT} user=postgres dbname={slow}"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    locker
        .batch_execute("CREATE TABLE locked (id int)")
        .await
        .unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let pg_adapter = adapter_for("postgresql").unwrap();
    let target = shared_pg();
    let budget = Duration::from_secs(3);

    let started = Instant::now();
    let read = pg_adapter
        .tables(
            &target,
            &[fast.clone(), slow.clone()],
            tokio::time::Instant::now() + budget,
        )
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took >= budget - Duration::from_millis(200), "{took:?}");
    assert!(
        took < budget + Duration::from_millis(1500),
        "the deadline held: {took:?}"
    );
    let tables = read[0].tables.as_ref().expect("the fast database is read");
    assert_eq!(
        tables
            .iter()
            .map(|t| t.table_name.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );
    let why = read[1].tables.as_ref().unwrap_err();
    assert!(why.contains("no answer"), "{why}");

    // The slow one first: it takes the whole budget, the other is not started past it.
    let started = Instant::now();
    let read = pg_adapter
        .tables(
            &target,
            &[slow.clone(), fast.clone()],
            tokio::time::Instant::now() + budget,
        )
        .await
        .unwrap();
    assert!(started.elapsed() < budget + Duration::from_millis(1500));
    assert!(read[1].tables.as_ref().unwrap_err().contains("deadline"));
    locker.batch_execute("ROLLBACK").await.unwrap();
}
