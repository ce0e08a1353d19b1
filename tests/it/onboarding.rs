//! Onboarding in bulk: CSV import and JSON batch validate every row before writing, name the
//! bad lines and fields, write nothing by default when one row is invalid, write the valid
//! ones with `on_error=skip`, in a constant number of statements; batch delete and restore.

use serde_json::{json, Value};
use tidemark_tests::{scalar, token, Role, TestStack};

const CSV: &str = "text/csv";

/// A file of `n` rows named `prefix-<i>`; the rows at `bad` (0-based) are broken, each in
/// one field (port, db_type, host in turn).
fn csv_file(prefix: &str, n: usize, bad: &[usize]) -> String {
    let mut out = String::from("name,db_type,host,port,tags\n");
    for i in 0..n {
        let row = match bad.iter().position(|b| *b == i) {
            Some(0) => format!("{prefix}-{i},postgresql,10.1.0.1,not-a-port,\n"),
            Some(1) => format!("{prefix}-{i},oracle,10.1.0.1,1521,\n"),
            Some(_) => format!("{prefix}-{i},mysql,bad host,3306,\n"),
            None => format!(
                "{prefix}-{i},postgresql,10.1.{}.{},5432,onb\n",
                i / 250,
                i % 250 + 1
            ),
        };
        out.push_str(&row);
    }
    out
}

async fn count(t: &TestStack, prefix: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM instances WHERE name LIKE '{prefix}-%'");
    scalar(&t.db.connect().await, &sql).await
}

fn invalid_rows(report: &Value) -> Vec<(u64, Vec<String>)> {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["status"] == "invalid")
        .map(|r| {
            let fields = r["errors"].as_array().expect("errors").iter();
            let fields = fields.map(|e| e["field"].as_str().unwrap().to_string());
            (r["line"].as_u64().unwrap(), fields.collect())
        })
        .collect()
}

#[tokio::test]
async fn import_names_bad_lines_writes_nothing_by_default_and_skips_on_request() {
    let t = TestStack::start().await;
    t.tag("onb").await;
    let file = csv_file("imp", 1000, &[99, 500, 901]).into_bytes();
    let expected = vec![
        (101, vec!["port".to_string()]),
        (502, vec!["db_type".to_string()]),
        (903, vec!["host".to_string()]),
    ];

    let r = t
        .post_raw("/instances/import", Role::Operator, CSV, file.clone())
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "VALIDATION_ERROR"),
        "{:?}",
        r.body["error"]["message"]
    );
    let report = &r.body["error"]["details"];
    assert_eq!(invalid_rows(report), expected);
    assert_eq!(report["written"], false);
    assert_eq!(count(&t, "imp").await, 0, "nothing written by default");

    let dry = t
        .post_raw(
            "/instances/import?dry_run=true&on_error=skip",
            Role::Operator,
            CSV,
            file.clone(),
        )
        .await;
    assert_eq!(dry.status, 200, "{dry:?}");
    assert_eq!(dry.data()["summary"]["valid"], 997);
    assert_eq!(count(&t, "imp").await, 0, "a dry run writes nothing");

    let r = t
        .post_raw(
            "/instances/import?on_error=skip",
            Role::Operator,
            CSV,
            file.clone(),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.data()["summary"]);
    assert_eq!(invalid_rows(r.data()), expected);
    assert_eq!(r.data()["summary"]["created"], 997);
    assert_eq!(count(&t, "imp").await, 997);
    // created_ids: what the 201's links follow, one per created row.
    assert_eq!(r.data()["created_ids"].as_array().map(Vec::len), Some(997));
    let tagged = "SELECT count(*) FROM instance_tags it JOIN tags t ON t.id = it.tag_id WHERE t.name = 'onb'";
    assert_eq!(scalar::<i64>(&t.db.connect().await, tagged).await, 997);
    let big = r.data()["statements"].as_u64().unwrap();

    // Again: every valid name now exists and is skipped, nothing else changes.
    let again = t
        .post_raw("/instances/import?on_error=skip", Role::Operator, CSV, file)
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.data()["summary"]["skipped"], 997);

    // The same number of statements for 10 rows as for 1,000.
    let small = csv_file("few", 10, &[3]).into_bytes();
    let r = t
        .post_raw(
            "/instances/import?on_error=skip",
            Role::Operator,
            CSV,
            small,
        )
        .await;
    assert_eq!(r.data()["summary"]["created"], 9);
    assert_eq!(r.data()["statements"].as_u64().unwrap(), big);
    println!("import statements: {big} for 1,000 rows and for 10");
}

#[tokio::test]
async fn batch_resolves_names_and_reports_each_row() {
    let t = TestStack::start().await;
    let cred = t.credential("postgres").await;
    let cred_name = t
        .get(&format!("/credentials/{cred}"), Role::Admin)
        .await
        .data()["name"]
        .clone();
    t.tag("prod").await;
    t.instance("taken", "pg", "10.0.0.1", 5432).await;
    let row =
        |name: &str| json!({"name": name, "db_type": "pg", "host": "db.example.com", "port": 5432});
    let mut with_cred = row("b-cred");
    with_cred["credential"] = cred_name;
    with_cred["tags"] = json!(["prod"]);
    with_cred["exclude_databases"] = json!(["tmp_%"]);
    let mut unknown = row("b-unknown");
    unknown["tags"] = json!(["nope"]);
    unknown["credential"] = json!("no-such-credential");
    let body = json!({"instances": [row("b-1"), with_cred, row("taken"), row("b-1"), unknown]});

    // An operator may not attach a credential: that row is refused, by field.
    let r = t
        .post(
            "/instances/batch?dry_run=true",
            Role::Operator,
            body.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let statuses: Vec<&str> = r.data()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["valid", "invalid", "skipped", "invalid", "invalid"]
    );
    assert_eq!(r.data()["rows"][1]["errors"][0]["field"], "credential");
    assert_eq!(r.data()["rows"][3]["errors"][0]["field"], "name");
    let fields: Vec<&Value> = r.data()["rows"][4]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["field"])
        .collect();
    assert_eq!(fields, [&json!("credential"), &json!("tags")]);

    let r = t
        .post("/instances/batch?on_error=skip", Role::Admin, body)
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.data()["summary"]["created"], 2);
    let id = r.data()["rows"][1]["id"].as_i64().unwrap();
    let made = t.get(&format!("/instances/{id}"), Role::Viewer).await;
    assert_eq!(made.data()["credential"]["id"], cred);
    assert_eq!(made.data()["tags"][0]["name"], "prod");
    assert_eq!(made.data()["exclude_databases"], json!(["tmp_%"]));
    assert_eq!(r.data()["rows"][2]["status"], "skipped");
}

#[tokio::test]
async fn bad_files_are_refused_whole() {
    let t = TestStack::start().await;
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"name,db_type,host\nx,pg,h\n".to_vec(), 400, "header"),
        (
            b"name,db_type,host,port,colour\nx,pg,h,1,red\n".to_vec(),
            400,
            "header",
        ),
        (csv_file("many", 1001, &[]).into_bytes(), 400, "rows"),
        (b"\xff\xfe not utf-8".to_vec(), 400, "body"),
        (b"".to_vec(), 400, "body"),
    ];
    for (file, status, field) in cases {
        let r = t
            .post_raw("/instances/import", Role::Operator, CSV, file)
            .await;
        assert_eq!(r.status, status, "{r:?}");
        assert_eq!(r.body["error"]["field"], field, "{r:?}");
    }
    let huge = format!(
        "name,db_type,host,port,description\n{}",
        format!("a,pg,h,1,{}\n", "d".repeat(400)).repeat(3000)
    );
    let r = t
        .post_raw("/instances/import", Role::Operator, CSV, huge.into_bytes())
        .await;
    assert_eq!(r.status, 413);
    let rows: Vec<Value> = (0..1001)
        .map(|i| json!({"name": format!("j{i}"), "db_type": "pg", "host": "h", "port": 1}))
        .collect();
    let r = t
        .post(
            "/instances/batch",
            Role::Operator,
            json!({"instances": rows}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (400, Some("instances"))
    );
    assert_eq!(
        count(&t, "many").await
            + scalar::<i64>(&t.db.connect().await, "SELECT count(*) FROM instances").await,
        0
    );
    t.expect_statuses(&[(
        tidemark_tests::Method::POST,
        "/instances/import",
        Role::Viewer,
        403,
    )])
    .await;

    // The template is a file the import reads (its example references aside).
    let tpl = t
        .http
        .get(format!("{}/instances/import/template", t.base))
        .bearer_auth(token(Role::Viewer))
        .send()
        .await
        .unwrap();
    assert_eq!(tpl.headers()["content-type"], "text/csv; charset=utf-8");
    let text = tpl.text().await.unwrap();
    assert!(text.starts_with("name,db_type,host,port,"));
    let r = t
        .post_raw(
            "/instances/import?dry_run=true",
            Role::Admin,
            CSV,
            text.into_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    for row in r.data()["rows"].as_array().unwrap() {
        for e in row["errors"].as_array().into_iter().flatten() {
            assert!(
                ["credential", "tags"].contains(&e["field"].as_str().unwrap()),
                "{e}"
            );
        }
    }
}

#[tokio::test]
async fn batch_delete_and_restore_report_missing_ids() {
    let t = TestStack::start().await;
    let ids = t.seed_instances("bd", 3).await;
    let body = json!({"instance_ids": [ids[0], ids[1], 999_999]});
    let r = t
        .post(
            "/instances/actions/batch-delete",
            Role::Operator,
            body.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.data()["deleted"], json!([ids[0], ids[1]]));
    assert_eq!(r.data()["missing"], json!([999_999]));
    let listed = t.get("/instances?search=bd", Role::Viewer).await.ids();
    assert_eq!(listed, vec![ids[2]]);

    let r = t
        .post(
            "/instances/actions/batch-restore",
            Role::Operator,
            json!({"instance_ids": [ids[0], ids[2], 999_999]}),
        )
        .await;
    assert_eq!(r.data()["restored"], json!([ids[0]]));
    assert_eq!(r.data()["not_deleted"], json!([ids[2]]));
    assert_eq!(r.data()["missing"], json!([999_999]));

    let r = t
        .post(
            "/instances/actions/batch-delete?mode=hard",
            Role::Operator,
            body.clone(),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = t
        .post(
            "/instances/actions/batch-delete?mode=hard",
            Role::Admin,
            body,
        )
        .await;
    assert_eq!(r.data()["deleted"], json!([ids[0], ids[1]]));
    let left = "SELECT count(*) FROM instances";
    assert_eq!(scalar::<i64>(&t.db.connect().await, left).await, 1);
    let r = t
        .post(
            "/instances/actions/batch-delete",
            Role::Operator,
            json!({"instance_ids": []}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (400, Some("instance_ids"))
    );
    let many: Vec<i64> = (1..=1001).collect();
    let r = t
        .post(
            "/instances/actions/batch-delete",
            Role::Operator,
            json!({"instance_ids": many}),
        )
        .await;
    assert_eq!(r.status, 413);
}
