//! Table-level capacity (issue 15): table sizes read in bulk from the shared PostgreSQL and
//! MariaDB servers and compared with the servers' own functions, inactive and growing tables,
//! set-based persistence at 20 and 20,000 tables, bounded history, and the visit deadline
//! holding against a database that does not answer (`bounds`).

mod bounds;

use mysql_async::prelude::Queryable;
use serde_json::{json, Value};
use tidemark_tests::scratch::{my, pg, Scratch};
use tidemark_tests::{unique, Role, TestStack};

/// The id of `database` in the instance's inventory (after a collection).
async fn database_id(t: &TestStack, instance_id: i64, database: &str) -> i64 {
    let c = t.db.connect().await;
    c.query_one(
        "SELECT id FROM instance_databases WHERE instance_id = $1 AND database_name = $2",
        &[&instance_id, &database],
    )
    .await
    .expect("database in the inventory")
    .get(0)
}

/// Collects the instance's sizes now (so its databases are in the inventory).
async fn collect_sizes(t: &TestStack, instance_id: i64) {
    let r = t
        .post(
            &format!("/instances/{instance_id}/actions/collect"),
            Role::Operator,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// Refreshes one database's tables through the queue and waits for its run; the run.
async fn refresh(t: &TestStack, database_id: i64) -> Value {
    let r = t
        .post(
            &format!("/databases/{database_id}/actions/refresh-tables"),
            Role::Operator,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.data()["database_id"], database_id);
    assert!(
        r.data()["queue_group"].as_str().unwrap().ends_with(":5432")
            || r.data()["queue_group"].as_str().unwrap().ends_with(":3306")
    );
    let run = t.wait_run(r.data()["run_id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "completed", "{run}");
    run
}

/// Every table of the database (active ones, or all), by name.
async fn tables(t: &TestStack, database_id: i64, all: bool) -> Vec<Value> {
    t.get(
        &format!("/databases/{database_id}/tables?limit=200&sort=name&include_inactive={all}"),
        Role::Viewer,
    )
    .await
    .items()
}

fn named<'a>(items: &'a [Value], name: &str) -> &'a Value {
    items
        .iter()
        .find(|i| i["table_name"] == name)
        .unwrap_or_else(|| panic!("table {name} in {items:?}"))
}

/// The server's own figures for one table: total, main fork, indexes, TOAST.
async fn pg_sizes(c: &tokio_postgres::Client, table: &str) -> [i64; 4] {
    let r = c
        .query_one(
            "SELECT pg_total_relation_size($1::text::regclass), pg_relation_size($1::text::regclass), \
             pg_indexes_size($1::text::regclass), \
             COALESCE(pg_total_relation_size(NULLIF((SELECT reltoastrelid FROM pg_class WHERE oid = $1::text::regclass), 0)), 0)",
            &[&table],
        )
        .await
        .expect("sizes");
    [r.get(0), r.get(1), r.get(2), r.get(3)]
}

fn api_sizes(v: &Value) -> [i64; 4] {
    [
        v["total_bytes"].as_i64().unwrap(),
        v["data_bytes"].as_i64().unwrap(),
        v["index_bytes"].as_i64().unwrap(),
        v["toast_bytes"].as_i64().unwrap(),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_tables_match_the_servers_functions_go_inactive_and_grow() {
    let t = TestStack::start().await;
    let mut scratch = Scratch::default();
    let name = unique("tbl_pg");
    scratch.pg_db(&name, 0).await;
    let c = pg(&name).await;
    c.batch_execute(
        "CREATE SCHEMA app; \
         CREATE TABLE app.plain AS SELECT g AS id FROM generate_series(1, 5000) g; \
         CREATE TABLE app.wide (id int, doc text); \
         INSERT INTO app.wide SELECT g, (SELECT string_agg(md5(random()::text || g || s), '') \
             FROM generate_series(1, 200) s) FROM generate_series(1, 300) g; \
         CREATE TABLE app.indexed AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b \
             FROM generate_series(1, 20000) g; \
         CREATE INDEX ON app.indexed (a); CREATE INDEX ON app.indexed (b); CREATE INDEX ON app.indexed (a, b); \
         CREATE TABLE app.events (at date NOT NULL, v text) PARTITION BY RANGE (at); \
         CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01'); \
         CREATE TABLE app.events_2026 PARTITION OF app.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01'); \
         INSERT INTO app.events SELECT DATE '2025-06-01' + (g % 400), md5(g::text) FROM generate_series(1, 10000) g;",
    )
    .await
    .expect("tables");
    c.batch_execute("VACUUM ANALYZE").await.expect("vacuum");
    let instance = t.shared_postgres().await;
    collect_sizes(&t, instance).await;
    let db = database_id(&t, instance, &name).await;
    let run = refresh(&t, db).await;
    let items = t
        .get(
            &format!("/task-runs/{}/items", run["run_id"].as_str().unwrap()),
            Role::Viewer,
        )
        .await
        .items();
    assert_eq!(
        items[0]["metrics"]["tables"]["statements_per_database"], 4,
        "{items:?}"
    );

    let listed = tables(&t, db, false).await;
    for table in ["plain", "wide", "indexed", "events_2025", "events_2026"] {
        let got = named(&listed, table);
        assert_eq!(
            api_sizes(got),
            pg_sizes(&c, &format!("app.{table}")).await,
            "{table}: {got}"
        );
        assert_eq!(got["schema_name"], "app");
    }
    assert!(
        named(&listed, "wide")["toast_bytes"].as_i64().unwrap() > 1_000_000,
        "TOAST read"
    );
    let indexed = named(&listed, "indexed");
    assert!(
        indexed["index_bytes"].as_i64() > indexed["data_bytes"].as_i64(),
        "{indexed}"
    );
    // The partitioned table is its partitions' sum; they stay listed under it.
    let parts: Vec<[i64; 4]> = vec![
        pg_sizes(&c, "app.events_2025").await,
        pg_sizes(&c, "app.events_2026").await,
    ];
    let events = named(&listed, "events");
    assert_eq!(events["kind"], "partitioned");
    assert_eq!(
        events["total_bytes"].as_i64().unwrap(),
        parts[0][0] + parts[1][0]
    );
    assert_eq!(named(&listed, "events_2025")["parent_name"], "app.events");
    assert_eq!(named(&listed, "events_2025")["kind"], "partition");
    // Sorted by total size, largest first; filters by schema and name.
    let by_size = t
        .get(
            &format!("/databases/{db}/tables?limit=2&schema=app"),
            Role::Viewer,
        )
        .await;
    let first = &by_size.items()[0];
    assert!(listed
        .iter()
        .all(|i| i["total_bytes"].as_i64() <= first["total_bytes"].as_i64()));
    assert!(by_size.data()["next_cursor"].is_string());
    let search = t
        .get(
            &format!("/databases/{db}/tables?name=EVENTS_20"),
            Role::Viewer,
        )
        .await
        .items();
    assert_eq!(search.len(), 2);

    // Dropped: inactive, out of the default list, still there when asked.
    c.batch_execute("DROP TABLE app.plain").await.unwrap();
    refresh(&t, db).await;
    assert!(tables(&t, db, false)
        .await
        .iter()
        .all(|i| i["table_name"] != "plain"));
    let all = tables(&t, db, true).await;
    assert_eq!(named(&all, "plain")["is_active"], false);

    // Growth: today's history becomes a week old, the table grows, the next refresh sees it.
    let before = named(&tables(&t, db, false).await, "indexed")["total_bytes"]
        .as_i64()
        .unwrap();
    let app_db = t.db.connect().await;
    app_db
        .execute(
            "UPDATE table_size_stats SET collected_date = collected_date - 7 WHERE instance_id = $1",
            &[&instance],
        )
        .await
        .unwrap();
    c.batch_execute(
        "INSERT INTO app.indexed SELECT g, md5(g::text), md5(g::text) FROM generate_series(20001, 60000) g; \
",
    )
    .await
    .unwrap();
    c.batch_execute("VACUUM ANALYZE app.indexed").await.unwrap();
    refresh(&t, db).await;
    let now = pg_sizes(&c, "app.indexed").await[0];
    let indexed = named(&tables(&t, db, false).await, "indexed").clone();
    assert_eq!(
        indexed["growth_7d_bytes"].as_i64().unwrap(),
        now - before,
        "{indexed}"
    );
    assert_eq!(indexed["growth_30d_bytes"].as_i64().unwrap(), now - before);

    // History of that table, and the fleet's fastest growing.
    let id = indexed["id"].as_i64().unwrap();
    let history = t.get(&format!("/tables/{id}/sizes"), Role::Viewer).await;
    assert_eq!(history.status, 200, "{history:?}");
    let days: Vec<i64> = history.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["total_bytes"].as_i64().unwrap())
        .collect();
    assert_eq!(days, vec![before, now]);
    let top = t
        .get(
            &format!("/tables/top?by=growth_7d&instance_id={instance}&limit=1"),
            Role::Viewer,
        )
        .await;
    assert_eq!(top.items()[0]["id"], id, "{top:?}");
    assert_eq!(top.items()[0]["database_id"], db);
    let top = t
        .get(
            &format!("/tables/top?instance_id={instance}&db_type=postgresql"),
            Role::Viewer,
        )
        .await
        .items();
    assert!(
        top.iter().all(|i| i["kind"] != "partition"),
        "partitions count in their parent"
    );
    let export = t
        .post(
            "/exports",
            Role::Viewer,
            json!({"kind": "database_tables", "filters": {"instance_id": instance, "database_name": name}}),
        )
        .await;
    assert_eq!(export.status, 202, "{export:?}");

    // Bad input is a 4xx in the envelope.
    for (path, status) in [
        ("/tables/top?by=rows".to_string(), 400),
        ("/tables/top?limit=0".to_string(), 400),
        (format!("/databases/{db}/tables?sort=rows"), 400),
        (
            format!("/tables/{id}/sizes?start_date=2020-01-01&end_date=2026-01-01"),
            400,
        ),
        ("/tables/999999999/sizes".to_string(), 404),
        ("/databases/999999999/tables".to_string(), 404),
    ] {
        assert_eq!(t.get(&path, Role::Viewer).await.status, status, "{path}");
    }
    let r = t
        .post(
            "/databases/999999999/actions/refresh-tables",
            Role::Operator,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = t
        .post(
            &format!("/databases/{db}/actions/refresh-tables"),
            Role::Viewer,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_tables_match_information_schema_in_the_daily_run() {
    let t = TestStack::start().await;
    let mut scratch = Scratch::default();
    let name = unique("tbl_my");
    scratch.my_db(&name, 2).await;
    let mut m = my().await;
    m.query_drop(format!(
        "CREATE TABLE `{name}`.keyed (id INT PRIMARY KEY, a CHAR(32), b CHAR(32), KEY (a), KEY (b)) ENGINE=InnoDB"
    ))
    .await
    .unwrap();
    m.query_drop(format!(
        "INSERT INTO `{name}`.keyed SELECT id, MD5(id), MD5(id + 1) FROM `{name}`.filler"
    ))
    .await
    .unwrap();
    // Read apart from InnoDB's statistics: another engine, and a name InnoDB spells
    // differently in its file names (`odd@002dname`).
    m.query_drop(format!(
        "CREATE TABLE `{name}`.plain_myisam (id INT PRIMARY KEY, a CHAR(32)) ENGINE=MyISAM; \
         INSERT INTO `{name}`.plain_myisam SELECT id, MD5(id) FROM `{name}`.filler; \
         CREATE TABLE `{name}`.`odd-name` (id INT PRIMARY KEY) ENGINE=InnoDB; \
         INSERT INTO `{name}`.`odd-name` SELECT id FROM `{name}`.filler"
    ))
    .await
    .unwrap();
    m.query_drop(format!(
        "ANALYZE TABLE `{name}`.filler, `{name}`.keyed, `{name}`.plain_myisam, `{name}`.`odd-name`"
    ))
    .await
    .unwrap();
    let instance = t.shared_mariadb().await;
    // Off by default; on in bulk for a tag.
    let got = t.get(&format!("/instances/{instance}"), Role::Viewer).await;
    assert_eq!(got.data()["collect_tables"], false);
    let tag = t.tag(&unique("tables")).await;
    let r = t
        .post(
            "/tags/bulk/assign",
            Role::Operator,
            json!({"instance_ids": [instance], "tag_ids": [tag]}),
        )
        .await;
    assert!(r.status < 300, "{r:?}");
    let r = t
        .post(
            "/instances/actions/set-collect-tables",
            Role::Operator,
            json!({"tag_id": tag, "enabled": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (r.data()["matched"].as_i64(), r.data()["updated"].as_i64()),
        (Some(1), Some(1))
    );
    for bad in [
        json!({"enabled": true}),
        json!({"instance_ids": [], "enabled": true}),
        json!({"instance_ids": [1], "tag_id": 1, "enabled": true}),
        json!({"tag_id": 1}),
    ] {
        let r = t
            .post(
                "/instances/actions/set-collect-tables",
                Role::Operator,
                bad.clone(),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}: {r:?}");
    }

    let run = t.start_run(&[instance]).await;
    let run = t.wait_run(&run).await;
    assert_eq!(run["status"], "completed", "{run}");
    let items = t.run_items(run["run_id"].as_str().unwrap()).await;
    let metrics = &items[0]["metrics"]["tables"];
    assert!(metrics["databases"].as_i64().unwrap() >= 1, "{metrics}");
    assert_eq!(metrics["failed"], json!([]), "{metrics}");

    let db = database_id(&t, instance, &name).await;
    let listed = tables(&t, db, false).await;
    assert_eq!(listed.len(), 4, "{listed:?}");
    // Data and index are information_schema's (for InnoDB it reads the same persistent
    // statistics, current after ANALYZE). Free space differs by source: information_schema
    // counts only wholly free 1 MiB extents and needs every table opened, so for InnoDB
    // tables with plain names the collector reports the tablespace file's bytes not reserved
    // by an index (FILE_SIZE - data - index), what OPTIMIZE TABLE could give back; the
    // tables it reads from information_schema (other engines, `odd-name`) keep DATA_FREE.
    let rows: Vec<(String, String, u64, u64, u64, Option<u64>)> = m
        .query(format!(
            "SELECT t.TABLE_NAME, t.ENGINE, t.DATA_LENGTH, t.INDEX_LENGTH, t.DATA_FREE, f.FILE_SIZE \
             FROM information_schema.TABLES t \
             LEFT JOIN information_schema.INNODB_SYS_TABLESPACES f \
               ON f.NAME = CONCAT(t.TABLE_SCHEMA, '/', t.TABLE_NAME) \
             WHERE t.TABLE_SCHEMA = '{name}'"
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
    for (table, engine, data, index, free, file) in rows {
        let got = named(&listed, &table);
        assert_eq!(got["engine"], engine);
        assert_eq!(got["data_bytes"].as_u64(), Some(data), "{table}");
        assert_eq!(got["index_bytes"].as_u64(), Some(index), "{table}");
        let free = match file {
            Some(file) if engine == "InnoDB" => file - data - index,
            _ => free,
        };
        assert_eq!(got["free_bytes"].as_u64(), Some(free), "{table}");
        assert_eq!(got["total_bytes"].as_u64(), Some(data + index), "{table}");
    }
    assert_eq!(named(&listed, "plain_myisam")["engine"], "MyISAM");
    assert!(
        named(&listed, "plain_myisam")["data_bytes"]
            .as_i64()
            .unwrap()
            > 0
    );
    assert!(named(&listed, "odd-name")["data_bytes"].as_i64().unwrap() > 0);
    assert!(named(&listed, "keyed")["index_bytes"].as_i64().unwrap() > 0);
    let _ = m.disconnect().await;

    let r = t
        .post(
            "/instances/actions/set-collect-tables",
            Role::Operator,
            json!({"instance_ids": [instance], "enabled": false}),
        )
        .await;
    assert_eq!(r.data()["updated"], 1, "{r:?}");
    let r = t
        .patch(
            &format!("/instances/{instance}"),
            Role::Admin,
            json!({"collect_tables": true}),
        )
        .await;
    assert_eq!(r.data()["collect_tables"], true, "{r:?}");
}
