//! The database ledger and the size history of one database, over HTTP against the local
//! stack. Collection is not needed: the latest columns and the history are written with SQL,
//! as collection would write them.

use std::time::Duration;

use serde_json::{json, Value};
use tidemark_tests::{item_ids, Role, TestStack};

/// `instance/database` of each item, in order.
async fn names(t: &TestStack, query: &str) -> Vec<String> {
    let r = t
        .get(
            &format!("/databases/ledger?limit=200&{query}"),
            Role::Viewer,
        )
        .await;
    r.items()
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["instance"]["name"].as_str().unwrap(),
                i["database_name"].as_str().unwrap()
            )
        })
        .collect()
}

/// A small fleet with every state the ledger distinguishes. Returns the id of alpha.
async fn small_fleet(t: &TestStack) -> i64 {
    let pg = t.db.connect().await;
    pg.batch_execute(
        "INSERT INTO instances (name, db_type, host, port, is_active, deleted_at) VALUES
           ('alpha', 'mysql', '10.0.0.1', 3306, true, NULL),
           ('beta', 'postgresql', 'db.example.net', 5432, true, NULL),
           ('gamma', 'mysql', '10.0.0.3', 3307, true, NULL),
           ('delta', 'mysql', '10.0.0.4', 3306, false, now()),
           ('epsilon', 'postgresql', '10.0.0.5', 5432, false, NULL);
         INSERT INTO tags (name, display_name, category) VALUES
           ('prod', 'Production', 'env'), ('team-a', 'Team A', 'team');
         INSERT INTO instance_tags (instance_id, tag_id)
           SELECT i.id, t.id FROM instances i JOIN tags t
             ON (i.name = 'alpha') OR (i.name = 'beta' AND t.name = 'team-a');
         -- Only the identifying columns: the instance name is filled in by the trigger.
         INSERT INTO instance_databases (instance_id, database_name)
           SELECT i.id, db FROM instances i, LATERAL (VALUES
             ('alpha', 'orders'), ('alpha', 'users'), ('alpha', 'legacy'),
             ('beta', 'analytics'), ('beta', 'newdb'), ('gamma', 'shop'),
             ('delta', 'gone'), ('epsilon', 'off')) v(inst, db)
           WHERE i.name = v.inst;
         UPDATE instance_databases SET is_active = false, deleted_at = now() WHERE database_name = 'legacy';
         UPDATE instance_databases d SET latest_size_bytes = v.bytes,
             latest_collected_at = now() - v.age, latest_collected_date = (now() - v.age)::date,
             growth_bytes_per_day = v.growth
           FROM (VALUES ('orders', 1000::bigint, interval '1 hour', 100::bigint),
                        ('users', 5000, interval '10 hours', 0),
                        ('analytics', 1073741824, interval '3 days', NULL),
                        ('shop', 2000, interval '2 hours', -50),
                        ('gone', 10, interval '1 hour', 1),
                        ('off', 10, interval '1 hour', 1),
                        ('legacy', 10, interval '1 hour', 1)) v(db, bytes, age, growth)
           WHERE d.database_name = v.db;",
    )
    .await
    .unwrap();
    tidemark_tests::scalar(&pg, "SELECT id FROM instances WHERE name = 'alpha'").await
}

#[tokio::test]
async fn ledger_items_states_and_filters() {
    let t = TestStack::start().await;
    let alpha = small_fleet(&t).await;

    // Default: active databases of active, non-deleted instances by (instance, database).
    let all = vec![
        "alpha/orders",
        "alpha/users",
        "beta/analytics",
        "beta/newdb",
        "gamma/shop",
    ];
    assert_eq!(names(&t, "").await, all);

    let r = t
        .get("/databases/ledger?include_total=true&limit=2", Role::Viewer)
        .await;
    assert_eq!(r.data()["total"], json!(5));
    assert_eq!(r.data()["has_next"], json!(true));
    let r = t.get("/databases/ledger", Role::Viewer).await;
    assert!(r.data().get("total").is_none());
    assert_eq!(r.data()["has_next"], json!(false));

    // The item, exactly.
    let list = r.items();
    let orders = &list[0];
    let mut keys: Vec<&String> = orders.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "database_name",
            "db_type",
            "growth",
            "id",
            "instance",
            "size",
            "sync_status",
            "tags"
        ]
    );
    assert_eq!(orders["database_name"], json!("orders"));
    assert_eq!(orders["db_type"], json!("mysql"));
    assert_eq!(
        orders["instance"],
        json!({"id": alpha, "name": "alpha", "host": "10.0.0.1", "port": 3306})
    );
    assert_eq!(orders["size"]["bytes"], json!(1000));
    assert_eq!(orders["size"]["mb"], json!(0.0));
    assert_eq!(orders["size"]["label"], json!("1000 B"));
    assert!(orders["size"]["collected_at"].is_string());
    assert!(orders["size"]["collected_date"].is_string());
    assert_eq!(
        orders["growth"],
        json!({"bytes_per_day": 100, "days_until": null})
    );
    assert_eq!(orders["sync_status"], json!("fresh"));
    assert_eq!(
        orders["tags"],
        json!([{"name": "prod", "display_name": "Production"}, {"name": "team-a", "display_name": "Team A"}])
    );
    let status: Vec<&str> = list
        .iter()
        .map(|i| i["sync_status"].as_str().unwrap())
        .collect();
    assert_eq!(status, vec!["fresh", "due", "stale", "never", "fresh"]);
    // Never collected: no size, no growth, status never; no tags is an empty list.
    let newdb = &list[3];
    assert_eq!(newdb["size"], Value::Null);
    assert_eq!(
        newdb["growth"],
        json!({"bytes_per_day": null, "days_until": null})
    );
    assert_eq!(list[4]["tags"], json!([]));
    assert_eq!(list[2]["size"]["label"], json!("1.0 GB"));

    // Filters.
    let by_instance = format!("instance_id={alpha}");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("search=ORD", vec!["alpha/orders"]),
        ("search=example", vec!["beta/analytics", "beta/newdb"]),
        ("search=gam", vec!["gamma/shop"]),
        ("search=%25", vec![]),
        ("db_type=postgresql", vec!["beta/analytics", "beta/newdb"]),
        ("db_type=pg", vec!["beta/analytics", "beta/newdb"]),
        (
            "db_type=mysql",
            vec!["alpha/orders", "alpha/users", "gamma/shop"],
        ),
        (&by_instance, vec!["alpha/orders", "alpha/users"]),
        ("tag=prod", vec!["alpha/orders", "alpha/users"]),
        (
            "tag=team-a",
            vec![
                "alpha/orders",
                "alpha/users",
                "beta/analytics",
                "beta/newdb",
            ],
        ),
        (
            "tag=prod&tag=team-a",
            vec![
                "alpha/orders",
                "alpha/users",
                "beta/analytics",
                "beta/newdb",
            ],
        ),
        (
            "tag=prod,team-a&tag_mode=all",
            vec!["alpha/orders", "alpha/users"],
        ),
        ("tag=team-a&tag=nope&tag_mode=all", vec![]),
        (
            "tag=team-a&db_type=postgresql",
            vec!["beta/analytics", "beta/newdb"],
        ),
        (
            "min_size_bytes=2000",
            vec!["alpha/users", "beta/analytics", "gamma/shop"],
        ),
        (
            "min_size_bytes=0",
            vec![
                "alpha/orders",
                "alpha/users",
                "beta/analytics",
                "gamma/shop",
            ],
        ),
        ("stale=true", vec!["beta/analytics", "beta/newdb"]),
        (
            "stale=false",
            vec!["alpha/orders", "alpha/users", "gamma/shop"],
        ),
    ];
    for (query, want) in cases {
        assert_eq!(names(&t, query).await, want, "{query}");
    }

    // Sorts (ties none here; the tie-break is covered by the cursor test).
    let sorts: Vec<(&str, Vec<&str>)> = vec![
        (
            "sort=instance_name&order=desc",
            vec![
                "gamma/shop",
                "beta/newdb",
                "beta/analytics",
                "alpha/users",
                "alpha/orders",
            ],
        ),
        (
            "sort=database_name",
            vec![
                "beta/analytics",
                "beta/newdb",
                "alpha/orders",
                "gamma/shop",
                "alpha/users",
            ],
        ),
        (
            "sort=size",
            vec![
                "beta/analytics",
                "alpha/users",
                "gamma/shop",
                "alpha/orders",
                "beta/newdb",
            ],
        ),
        (
            "sort=size&order=asc",
            vec![
                "beta/newdb",
                "alpha/orders",
                "gamma/shop",
                "alpha/users",
                "beta/analytics",
            ],
        ),
        (
            "sort=collected_at",
            vec![
                "alpha/orders",
                "gamma/shop",
                "alpha/users",
                "beta/analytics",
                "beta/newdb",
            ],
        ),
        (
            "sort=growth&stale=false",
            vec!["alpha/orders", "alpha/users", "gamma/shop"],
        ),
        (
            "sort=growth&order=asc&stale=false",
            vec!["gamma/shop", "alpha/users", "alpha/orders"],
        ),
    ];
    for (query, want) in sorts {
        assert_eq!(names(&t, query).await, want, "{query}");
    }

    // days_until: ceil((1250 - 1000) / 100) = 3; already over = 0; not growing = null.
    let thresholds = [
        (
            1250,
            vec![json!(3), json!(0), json!(0), json!(null), json!(0)],
        ),
        (
            100_000,
            vec![json!(990), json!(null), json!(0), json!(null), json!(null)],
        ),
    ];
    for (threshold, want) in thresholds {
        let r = t
            .get(
                &format!("/databases/ledger?threshold_bytes={threshold}"),
                Role::Viewer,
            )
            .await;
        let days: Vec<Value> = r
            .items()
            .iter()
            .map(|i| i["growth"]["days_until"].clone())
            .collect();
        assert_eq!(days, want, "threshold {threshold}");
    }

    // Bad input is a 400 naming the parameter.
    t.expect_invalid_queries(
        "/databases/ledger",
        &[
            ("threshold_bytes=0", "threshold_bytes"),
            ("threshold_bytes=-5", "threshold_bytes"),
            ("threshold_bytes=lots", "threshold_bytes"),
            ("min_size_bytes=-1", "min_size_bytes"),
            ("db_type=oracle", "db_type"),
            ("stale=maybe", "stale"),
            ("tag_mode=some&tag=prod", "tag_mode"),
            ("instance_id=x", "instance_id"),
            ("sort=id", "sort"),
            ("order=sideways", "order"),
            ("limit=201", "limit"),
            ("cursor=bogus", "cursor"),
        ],
    )
    .await;
    let r = t
        .call(reqwest::Method::GET, "/databases/ledger", None, None)
        .await;
    assert_eq!(r.status, 401);

    // A rename follows onto the ledger order (the denormalised name is kept in step).
    let r = t
        .patch(
            &format!("/instances/{alpha}"),
            Role::Operator,
            json!({"name": "zeta"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        names(&t, "").await,
        vec![
            "beta/analytics",
            "beta/newdb",
            "gamma/shop",
            "zeta/orders",
            "zeta/users"
        ]
    );

    // A deleted instance's databases are gone; a deactivated database is gone.
    let beta: i64 = t
        .get("/databases/ledger?search=beta", Role::Viewer)
        .await
        .items()[0]["instance"]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        t.delete(&format!("/instances/{beta}"), Role::Operator)
            .await
            .status,
        200
    );
    let pg = t.db.connect().await;
    pg.execute(
        "UPDATE instance_databases SET is_active = false WHERE database_name = 'users'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(names(&t, "").await, vec!["gamma/shop", "zeta/orders"]);
    let r = t
        .get("/databases/ledger?include_total=true", Role::Viewer)
        .await;
    assert_eq!(r.data()["total"], json!(2));
}

/// The value an item is ordered by, as a comparable key, for each sort.
fn sort_key(sort: &str, i: &Value) -> (String, i64) {
    let int = |v: &Value| v.as_i64().unwrap_or(i64::MIN);
    match sort {
        "instance_name" => (
            format!(
                "{}\u{0}{}",
                i["instance"]["name"].as_str().unwrap(),
                i["database_name"].as_str().unwrap()
            ),
            0,
        ),
        "database_name" => (i["database_name"].as_str().unwrap().to_string(), 0),
        "size" => (String::new(), i["size"]["bytes"].as_i64().unwrap_or(-1)),
        "collected_at" => (
            i["size"]["collected_at"].as_str().unwrap_or("").to_string(),
            0,
        ),
        "growth" => (String::new(), int(&i["growth"]["bytes_per_day"])),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn cursor_pages_equal_offset_pages_for_every_sort() {
    let t = TestStack::start().await;
    let pg = t.db.connect().await;
    // 12 instances x 25 databases with many ties: database names repeat across instances,
    // sizes, collection times and growth take few values (some never collected), and the
    // instance names run against their ids.
    pg.batch_execute(
        "INSERT INTO instances (name, db_type, host, port)
           SELECT 'inst-' || lpad((13 - g)::text, 2, '0'), CASE WHEN g % 2 = 0 THEN 'mysql' ELSE 'postgresql' END,
                  'host-' || g, 3306 FROM generate_series(1, 12) g;
         INSERT INTO instance_databases (instance_id, database_name)
           SELECT i.id, 'db_' || k FROM instances i, generate_series(1, 25) k;
         UPDATE instance_databases SET
             latest_size_bytes = (id % 5) * 1000,
             latest_collected_at = timestamptz '2026-01-01 03:00:00+00' + (id % 4) * interval '1 day',
             latest_collected_date = date '2026-01-01' + (id % 4)::int,
             growth_bytes_per_day = NULLIF(id % 3, 2) * 10
           WHERE id % 7 <> 0;",
    )
    .await
    .unwrap();
    for sort in [
        "instance_name",
        "database_name",
        "size",
        "collected_at",
        "growth",
    ] {
        for order in ["asc", "desc"] {
            let list = format!("/databases/ledger?sort={sort}&order={order}&limit=37");
            let by_page = t.all_by_page(&list).await;
            let by_cursor = t.all_by_cursor(&list).await;
            assert_eq!(by_page.len(), 300, "{sort} {order}");
            assert_eq!(item_ids(&by_page), item_ids(&by_cursor), "{sort} {order}");
            let mut unique = item_ids(&by_page);
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), 300, "{sort} {order}");
            // The order is the sort's, ties broken by id in the same direction.
            let keys: Vec<((String, i64), i64)> = by_page
                .iter()
                .map(|i| (sort_key(sort, i), i["id"].as_i64().unwrap()))
                .collect();
            let mut want = keys.clone();
            want.sort();
            if order == "desc" {
                want.reverse();
            }
            assert_eq!(keys, want, "{sort} {order}");
        }
    }
}

/// Creates a partition per month of 2024-01..2024-03 and the history of two databases.
async fn history(t: &TestStack) -> (i64, tokio_postgres::Client) {
    let pg = t.db.connect().await;
    pg.batch_execute(
        "SELECT tidemark_ensure_month_partition('database_size_stats', m::date)
           FROM generate_series(date '2024-01-01', date '2024-03-01', interval '1 month') m;
         INSERT INTO instances (name, db_type, host, port) VALUES ('hist', 'mysql', 'h', 3306);
         INSERT INTO instance_databases (instance_id, database_name)
           SELECT id, db FROM instances, unnest(ARRAY['sales', 'other']) db;
         INSERT INTO database_size_stats (instance_id, database_name, collected_date, size_bytes,
                                          data_size_bytes, log_size_bytes, collected_at)
           SELECT i.id, db, d, size, size - 1024, 1024, d + time '03:00'
           FROM instances i, (VALUES
             ('sales', date '2024-01-10', 1048576::bigint),
             ('sales', date '2024-02-10', 2097152),
             ('sales', date '2024-02-20', 3145728),
             ('sales', date '2024-03-10', 4194304),
             ('other', date '2024-02-15', 999)) v(db, d, size);
         INSERT INTO database_size_stats (instance_id, database_name, collected_date, size_bytes)
           SELECT id, 'sales', current_date, 5242880 FROM instances;",
    )
    .await
    .unwrap();
    let id = pg
        .query_one(
            "SELECT id FROM instance_databases WHERE database_name = 'sales'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    (id, pg)
}

#[tokio::test]
async fn sizes_history_of_one_database() {
    let t = TestStack::start().await;
    let (id, _pg) = history(&t).await;
    let between = |from: &str, to: &str| {
        let path = format!("/databases/{id}/sizes?start_date={from}&end_date={to}");
        let t = &t;
        async move { t.get(&path, Role::Viewer).await }
    };

    let r = between("2024-02-01", "2024-02-29").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.data()["database_name"], json!("sales"));
    assert_eq!(r.data()["instance"]["name"], json!("hist"));
    assert_eq!(r.data()["start_date"], json!("2024-02-01"));
    assert_eq!(r.data()["end_date"], json!("2024-02-29"));
    let list = r.items();
    let dates: Vec<&str> = list
        .iter()
        .map(|i| i["collected_date"].as_str().unwrap())
        .collect();
    assert_eq!(dates, vec!["2024-02-10", "2024-02-20"]);
    assert_eq!(list[0]["size_bytes"], json!(2097152));
    assert_eq!(list[0]["mb"], json!(2.0));
    assert_eq!(list[0]["data_size_bytes"], json!(2097152 - 1024));
    assert_eq!(list[0]["log_size_bytes"], json!(1024));
    assert!(list[0]["collected_at"].is_string());

    // Both ends included; the default is the last 30 days (today's row only here).
    let r = between("2024-01-10", "2024-03-10").await;
    assert_eq!(r.items().len(), 4);
    let r = t.get(&format!("/databases/{id}/sizes"), Role::Viewer).await;
    let list = r.items();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["size_bytes"], json!(5242880));
    assert_eq!(list[0]["data_size_bytes"], Value::Null);

    // 400 days is the most one call may ask for, end before start is refused.
    let r = between("2023-02-05", "2024-03-10").await;
    assert_eq!(r.status, 200, "{r:?}");
    t.expect_invalid_queries(
        &format!("/databases/{id}/sizes"),
        &[
            ("start_date=2023-02-04&end_date=2024-03-10", "end_date"),
            ("start_date=2024-03-10&end_date=2024-03-09", "end_date"),
            ("start_date=2024-02-30", "start_date"),
            ("end_date=soon", "end_date"),
        ],
    )
    .await;
    for path in ["/databases/999999/sizes", "/databases/abc/sizes"] {
        let r = t.get(path, Role::Viewer).await;
        assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "{path}");
    }
}

#[tokio::test]
async fn sizes_read_only_the_partitions_of_the_range() {
    let t = TestStack::start().await;
    let (id, mut pg) = history(&t).await;
    // Hold January exclusively: a read that so much as opened January would wait for it.
    let tx = pg.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE database_size_stats_2024_01 IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let february = format!("/databases/{id}/sizes?start_date=2024-02-01&end_date=2024-03-31");
    let r = tokio::time::timeout(Duration::from_secs(30), t.get(&february, Role::Viewer))
        .await
        .expect("a February-March read must not touch January");
    assert_eq!(r.items().len(), 3);

    // The control: a read of January does wait for the lock, and answers once it is gone.
    let january = format!("/databases/{id}/sizes?start_date=2024-01-01&end_date=2024-01-31");
    let blocked = t.get(&january, Role::Viewer);
    tokio::pin!(blocked);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut blocked)
            .await
            .is_err(),
        "a January read cannot finish while January is locked"
    );
    tx.rollback().await.unwrap();
    let r = blocked.await;
    assert_eq!(r.items().len(), 1);
}

#[tokio::test]
async fn ledger_threshold_near_i64_max_answers() {
    let t = TestStack::start().await;
    small_fleet(&t).await;
    let r = t
        .get(
            &format!(
                "/databases/ledger?limit=200&threshold_bytes={}&sort=growth",
                i64::MAX
            ),
            Role::Viewer,
        )
        .await;
    let items = r.items();
    let orders = items
        .iter()
        .find(|i| i["database_name"] == json!("orders"))
        .expect("orders");
    // (i64::MAX - 1000) / 100 bytes a day, rounded up.
    assert_eq!(
        orders["growth"]["days_until"],
        json!((i64::MAX - 1000) / 100 + 1),
        "{orders}"
    );
    t.expect_invalid_queries(
        "/databases/ledger",
        &[("threshold_bytes=9223372036854775808", "threshold_bytes")],
    )
    .await;
}

/// A fleet of `instances` named `r-001`.. with `per_instance` active databases `db_01`.. each
/// (plus an inactive `db_00`), and the tags `rare` (r-017, r-042) and `rare-b` (r-042).
async fn tagged_fleet(t: &TestStack, instances: i64, per_instance: i64) {
    let pg = t.db.connect().await;
    pg.execute(
        "INSERT INTO instances (name, db_type, host, port)
         SELECT 'r-' || lpad(n::text, 3, '0'), 'postgresql', '10.1.' || n || '.1', 5432
         FROM generate_series(1, $1::bigint) n",
        &[&instances],
    )
    .await
    .unwrap();
    pg.execute(
        "INSERT INTO instance_databases (instance_id, database_name, is_active)
         SELECT i.id, 'db_' || lpad(k::text, 2, '0'), k > 0
         FROM instances i, generate_series(0, $1::bigint) k",
        &[&per_instance],
    )
    .await
    .unwrap();
    pg.batch_execute(
        "INSERT INTO tags (name, display_name, category) VALUES
           ('rare', 'Rare', 'team'), ('rare-b', 'Rare B', 'team');
         INSERT INTO instance_tags (instance_id, tag_id)
           SELECT i.id, t.id FROM instances i, tags t
           WHERE (t.name = 'rare' AND i.name IN ('r-017', 'r-042'))
              OR (t.name = 'rare-b' AND i.name = 'r-042');
         ANALYZE instances, instance_databases, instance_tags;",
    )
    .await
    .unwrap();
}

/// A tag carried by a few instances among many is resolved to those instances before the
/// page is read: its pages by cursor are every database of those instances, in name order,
/// each once; `tag_mode=all` keeps only the instance carrying both tags.
#[tokio::test]
async fn rare_tag_pages_in_name_order_by_cursor() {
    let t = TestStack::start().await;
    tagged_fleet(&t, 60, 25).await;
    let expect = |instances: &[&str]| -> Vec<String> {
        instances
            .iter()
            .flat_map(|i| (1..=25).map(move |k| format!("{i}/db_{k:02}")))
            .collect()
    };
    let by_cursor = |query: &'static str| {
        let t = &t;
        async move {
            t.all_by_cursor(&format!("/databases/ledger?limit=7&{query}"))
                .await
                .iter()
                .map(|i| {
                    format!(
                        "{}/{}",
                        i["instance"]["name"].as_str().unwrap(),
                        i["database_name"].as_str().unwrap()
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(by_cursor("tag=rare").await, expect(&["r-017", "r-042"]));
    assert_eq!(
        by_cursor("tag=rare&tag=rare-b&tag_mode=all").await,
        expect(&["r-042"])
    );
    assert_eq!(by_cursor("tag=rare-b").await, expect(&["r-042"]));
    // Descending by name, the same rows reversed.
    let mut reversed = expect(&["r-017", "r-042"]);
    reversed.reverse();
    assert_eq!(by_cursor("tag=rare&order=desc").await, reversed);
    assert_eq!(names(&t, "tag=nobody").await, Vec::<String>::new());
    // A small answer is counted, not estimated.
    let r = t
        .get(
            "/databases/ledger?tag=rare&include_total=true",
            Role::Viewer,
        )
        .await;
    assert_eq!(r.data()["total"], json!(50));
    assert_eq!(r.data()["total_is_estimate"], json!(false));
}

/// Above `EXACT_TOTAL_MAX` matching databases `include_total` is the planner's estimate and
/// says so; a filter that keeps few is counted exactly.
#[tokio::test]
async fn ledger_total_is_estimated_above_the_exact_maximum() {
    let t = TestStack::start().await;
    tagged_fleet(&t, 520, 99).await;
    let r = t
        .get("/databases/ledger?include_total=true", Role::Viewer)
        .await;
    assert_eq!(r.data()["total_is_estimate"], json!(true), "{r:?}");
    let total = r.data()["total"].as_i64().unwrap();
    assert!(
        (45_000..=58_000).contains(&total),
        "estimate {total} of 51,480"
    );
    let r = t
        .get(
            "/databases/ledger?include_total=true&tag=rare",
            Role::Viewer,
        )
        .await;
    assert_eq!(r.data()["total"], json!(198));
    assert_eq!(r.data()["total_is_estimate"], json!(false));
}
