//! Safe connections: TLS to the app database and to managed servers (real PostgreSQL and
//! MariaDB that accept only TLS, with certificates the test makes), no password before a
//! TLS handshake, credential custody by role, and credentials bound to their row and key.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tidemark::crypto::CredentialKey;
use tidemark::tls::{client_config, CaBundle, PgTls};
use tidemark::web::Role;
use tidemark_tests::tls_servers::{
    fake_cleartext_pg, fake_no_tls_mysql, tls_postgres, PrivateMariaDb, TestCa,
};
use tidemark_tests::{Resp, TestStack};

/// The key every test stack starts with (tests/support).
const STACK_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// An admin's instance of `db_type` at the fake server on `port`, with `cred`, in `tls_mode`.
async fn fake_instance(t: &TestStack, db_type: &str, port: u16, cred: i64, tls_mode: &str) -> i64 {
    let body = json!({"name": format!("fake-{db_type}"), "db_type": db_type, "host": "127.0.0.1",
                      "port": port, "credential_id": cred, "tls_mode": tls_mode});
    t.create("/instances", Role::Admin, body).await
}

/// An operator's PostgreSQL instance at `host:port`, verify-full against `ca_pem`.
async fn verified_pg(t: &TestStack, name: &str, host: &str, port: u16, ca_pem: String) -> i64 {
    let body = json!({"name": name, "db_type": "postgresql", "host": host, "port": port,
                      "tls_mode": "verify-full", "tls_ca_pem": ca_pem});
    t.create("/instances", Role::Operator, body).await
}

async fn credential(t: &TestStack, name: &str, username: &str, password: &str) -> i64 {
    t.create(
        "/credentials",
        Role::Admin,
        json!({"name": name, "username": username, "password": password}),
    )
    .await
}

/// `POST /instances/{id}/actions/collect` as an operator.
async fn collect(t: &TestStack, id: i64) -> Resp {
    t.post(
        &format!("/instances/{id}/actions/collect"),
        Role::Operator,
        json!({}),
    )
    .await
}

/// Changes instance `id` as `role`; the change must be accepted.
async fn set(t: &TestStack, id: i64, role: Role, body: Value) {
    let r = t.patch(&format!("/instances/{id}"), role, body).await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// The first column of every row `sql` returns.
async fn first_column<T>(db: &tokio_postgres::Client, sql: &str) -> Vec<T>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    let rows = db.query(sql, &[]).await.expect("query");
    rows.iter().map(|r| r.get(0)).collect()
}

/// The error message of a failed request.
fn message(r: &Resp) -> &str {
    r.body["error"]["message"].as_str().expect("message")
}

/// A collection of `id` that fails (502) with a message containing `needle`; the message.
async fn collect_fails(t: &TestStack, id: i64, needle: &str) -> String {
    let r = collect(t, id).await;
    assert_eq!(r.status, 502, "{r:?}");
    let msg = message(&r).to_string();
    assert!(msg.contains(needle), "{msg}");
    msg
}

/// A connection straight to the private server, for setting it up and for measuring.
async fn connect(url: &str, tls: Option<&CaBundle>) -> tokio_postgres::Client {
    let (url, mode) = tidemark::tls::split_sslmode(url).expect("sslmode");
    let mut cfg: tokio_postgres::Config = url.parse().expect("url");
    cfg.ssl_mode(mode.pg_ssl_mode());
    let connector = PgTls::new(client_config(mode, tls.map(CaBundle::certs)).expect("tls config"));
    let (client, conn) = cfg.connect(connector).await.expect("connect");
    tokio::spawn(conn);
    client
}

#[tokio::test]
async fn app_database_over_verified_tls_and_clear_failures_at_start() {
    let ca = TestCa::new("tidemark app CA");
    let other = TestCa::new("someone else's CA");
    let port = tidemark_tests::closed_port().await;
    let Some(pg) = tls_postgres(&ca.server_cert(&["localhost"]), port).await else {
        eprintln!("PostgreSQL server binaries not installed; skipped");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let other_file = other.write(dir.path(), "other.pem");
    let url = format!("postgres://postgres@localhost:{port}/postgres?sslmode=verify-full");

    let t = TestStack::start_on_with(
        &url,
        vec![("TIDEMARK_DB_CA_FILE", ca_file.to_str().unwrap())],
    )
    .await
    .expect("the stack connects with verify-full");
    let r = t.get("/instances", Role::Viewer).await;
    assert_eq!(r.status, 200, "{r:?}");
    let client = t.stack.app.db.get().await.expect("pooled connection");
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(ssl, "the pool's connections are TLS");
    drop(client);

    // A CA that did not sign the server's certificate: the start stops, saying why.
    let e = TestStack::start_on_with(
        &url,
        vec![("TIDEMARK_DB_CA_FILE", other_file.to_str().unwrap())],
    )
    .await
    .err()
    .expect("wrong CA refused");
    let msg = format!("{e:#}");
    assert!(
        msg.contains("unknown CA") && msg.contains("DATABASE_URL"),
        "{msg}"
    );

    // Plaintext: the server has only hostssl lines and says so.
    let plain = format!("postgres://postgres@localhost:{port}/postgres?sslmode=disable");
    let e = TestStack::start_on_with(&plain, vec![])
        .await
        .err()
        .expect("plaintext refused");
    let msg = format!("{e:#}");
    assert!(msg.contains("no encryption"), "{msg}");

    // A CA file that is not one, and an sslmode libpq does not know: named at start.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let e = TestStack::start_on_with(&url, vec![("TIDEMARK_DB_CA_FILE", junk.to_str().unwrap())])
        .await
        .err()
        .expect("junk CA refused");
    assert!(format!("{e:#}").contains("TIDEMARK_DB_CA_FILE"), "{e:#}");
    let e = TestStack::start_on_with(
        &format!("postgres://postgres@localhost:{port}/postgres?sslmode=verify"),
        vec![],
    )
    .await
    .err()
    .expect("unknown sslmode refused");
    assert!(format!("{e:#}").contains("sslmode"), "{e:#}");

    // The price of TLS per new connection (the pool pays it once per connection): allow
    // plaintext too for the measurement.
    let admin = t.stack.app.db.get().await.expect("conn");
    let hba = pg.data_dir().join("pg_hba.conf");
    let mut lines = std::fs::read_to_string(&hba).unwrap();
    lines.push_str("host all all 127.0.0.1/32 trust\n");
    std::fs::write(&hba, lines).unwrap();
    admin.execute("SELECT pg_reload_conf()", &[]).await.unwrap();
    drop(admin);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bundle = CaBundle::new(tidemark::tls::parse_pem_bundle(ca.pem().as_bytes()).unwrap());
    let plain_url = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
    let rounds = 20;
    let mut timings = Vec::new();
    for (label, u, ca) in [
        ("plain", plain_url.as_str(), None),
        ("tls verify-full", url.as_str(), Some(&bundle)),
    ] {
        let started = Instant::now();
        for _ in 0..rounds {
            let c = connect(u, ca).await;
            c.simple_query("SELECT 1").await.unwrap();
        }
        timings.push((label, started.elapsed() / rounds));
    }
    eprintln!("connection to the app database, mean of {rounds}: {timings:?}");
}

#[tokio::test]
async fn collection_over_verified_tls_agrees_and_a_wrong_name_fails_its_item() {
    let ca = TestCa::new("tidemark managed CA");
    let port = tidemark_tests::closed_port().await;
    let Some(_pg) = tls_postgres(&ca.server_cert(&["localhost"]), port).await else {
        eprintln!("PostgreSQL server binaries not installed; skipped");
        return;
    };
    let bundle = CaBundle::new(tidemark::tls::parse_pem_bundle(ca.pem().as_bytes()).unwrap());
    let url = format!("postgres://postgres@localhost:{port}/postgres?sslmode=verify-full");
    let admin = connect(&url, Some(&bundle)).await;
    admin
        .batch_execute("CREATE DATABASE tls_orders")
        .await
        .unwrap();
    let orders = connect(
        &format!("postgres://postgres@localhost:{port}/tls_orders?sslmode=verify-full"),
        Some(&bundle),
    )
    .await;
    orders
        .batch_execute(
            "CREATE TABLE o (id int, note text); INSERT INTO o SELECT g, repeat('x', 200) FROM generate_series(1, 5000) g",
        )
        .await
        .unwrap();
    drop(orders);

    let t = TestStack::start().await;
    let good = verified_pg(&t, "tls-good", "localhost", port, ca.pem()).await;
    let r = collect(&t, good).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.data()["encrypted"], json!(true));
    let collected = r.data()["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["database_name"] == "tls_orders")
        .expect("tls_orders collected")["size_bytes"]
        .as_i64()
        .unwrap();
    let actual: i64 = tidemark_tests::scalar(&admin, "SELECT pg_database_size('tls_orders')").await;
    assert_eq!(collected, actual, "agrees with pg_database_size");
    let r = t.get(&format!("/instances/{good}"), Role::Viewer).await;
    assert_eq!(r.data()["last_collection_encrypted"], json!(true), "{r:?}");
    assert_eq!(r.data()["tls_mode"], json!("verify-full"));
    assert_eq!(r.data()["has_tls_ca"], json!(true));

    // The certificate names localhost, not 127.0.0.1: that one item fails, saying why.
    let wrong_name = verified_pg(&t, "tls-wrong-name", "127.0.0.1", port, ca.pem()).await;
    let r = t
        .post(
            "/collections",
            Role::Operator,
            json!({"instance_ids": [good, wrong_name]}),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let run_id = r.data()["run_id"].as_str().unwrap().to_string();
    let run = t.wait_run(&run_id).await;
    assert_eq!(run["items_succeeded"], json!(1), "{run}");
    assert_eq!(run["items_failed"], json!(1), "{run}");
    let items = t
        .get(
            &format!("/task-runs/{run_id}/items?status=failed"),
            Role::Viewer,
        )
        .await;
    let failed = &items.data()["items"][0];
    assert_eq!(failed["instance_id"], json!(wrong_name), "{items:?}");
    let error = failed["error"].as_str().unwrap_or("");
    assert!(error.contains("name mismatch"), "{error}");

    // verify-ca checks the chain only: the same host then passes.
    let w = wrong_name;
    set(&t, w, Role::Operator, json!({"tls_mode": "verify-ca"})).await;
    let r = collect(&t, w).await;
    assert_eq!(r.status, 200, "{r:?}");

    // Another CA: unknown CA. No TLS at all: the server's refusal.
    let other = TestCa::new("not the server's CA");
    set(&t, w, Role::Operator, json!({"tls_ca_pem": other.pem()})).await;
    collect_fails(&t, w, "unknown CA").await;
    set(&t, w, Role::Operator, json!({"tls_mode": "disable"})).await;
    collect_fails(&t, w, "no encryption").await;

    // Bad input is a 400 naming the field.
    for (body, field) in [
        (json!({"tls_mode": "verify"}), "tls_mode"),
        (json!({"tls_ca_pem": "hello"}), "tls_ca_pem"),
    ] {
        let r = t
            .patch(&format!("/instances/{good}"), Role::Operator, body)
            .await;
        assert_eq!(
            (r.status, r.body["error"]["field"].clone()),
            (400, json!(field)),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn mariadb_requiring_tls_is_collected_with_verify_full() {
    let ca = TestCa::new("tidemark maria CA");
    let port = tidemark_tests::closed_port().await;
    let Some(maria) = PrivateMariaDb::start(
        &ca.server_cert(&["127.0.0.1", "localhost"]),
        &ca.pem(),
        port,
    )
    .await
    else {
        eprintln!("MariaDB server binaries not installed; skipped");
        return;
    };
    assert_eq!(maria.sql("SELECT @@require_secure_transport"), "1");
    maria.sql(
        "CREATE USER 'collector'@'%' IDENTIFIED BY 'maria-pass-0123456789'; \
         GRANT SELECT, PROCESS ON *.* TO 'collector'@'%'; \
         CREATE DATABASE tls_shop; CREATE TABLE tls_shop.items (id int primary key, v text) ENGINE=InnoDB; \
         INSERT INTO tls_shop.items VALUES (1, 'a'), (2, 'b');",
    );
    let t = TestStack::start().await;
    let cred = credential(&t, "maria", "collector", "maria-pass-0123456789").await;
    let id = t
        .create(
            "/instances",
            Role::Admin,
            json!({"name": "maria-tls", "db_type": "mariadb", "host": "127.0.0.1", "port": port,
               "credential_id": cred, "tls_mode": "verify-full", "tls_ca_pem": ca.pem()}),
        )
        .await;
    let r = collect(&t, id).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.data()["encrypted"], json!(true));
    assert!(
        r.data()["databases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["database_name"] == "tls_shop" && d["size_bytes"].as_i64().unwrap() > 0),
        "{r:?}"
    );
    // Without TLS the server refuses (require_secure_transport; MariaDB answers "Access
    // denied"), and the item carries its answer, never the password.
    set(&t, id, Role::Admin, json!({"tls_mode": "disable"})).await;
    let msg = collect_fails(&t, id, "").await;
    assert!(
        msg.contains("Access denied") || msg.to_lowercase().contains("secure transport"),
        "{msg}"
    );
    assert!(!msg.contains("maria-pass"), "{msg}");
    // A CA that did not sign it: unknown CA.
    set(
        &t,
        id,
        Role::Admin,
        json!({"tls_mode": "verify-full", "tls_ca_pem": TestCa::new("other").pem()}),
    )
    .await;
    collect_fails(&t, id, "unknown CA").await;
}

#[tokio::test]
async fn require_sends_no_password_to_a_server_that_declines_tls() {
    let fake = fake_cleartext_pg(tidemark_tests::closed_port().await).await;
    let t = TestStack::start().await;
    let password = "pw-never-in-clear-0123456789";
    let cred = credential(&t, "stolen", "victim-user", password).await;
    let id = fake_instance(&t, "postgresql", fake.port, cred, "require").await;
    collect_fails(&t, id, "does not offer").await;
    let got = fake.received();
    assert!(!got.is_empty(), "the client reached the fake server");
    let has = |needle: &str| got.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!has(password), "no password byte before TLS");
    assert!(!has("victim-user"), "not even the user name");
    assert_eq!(got.len(), 8, "only the SSLRequest was sent: {got:?}");

    // The fake is a real thief: under prefer (plaintext allowed) it does get the password.
    fake.clear();
    set(&t, id, Role::Admin, json!({"tls_mode": "prefer"})).await;
    let r = collect(&t, id).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert!(!r.body.to_string().contains(password));
    let got = fake.received();
    assert!(got
        .windows(password.len())
        .any(|w| w == password.as_bytes()));
}

#[tokio::test]
async fn require_sends_nothing_to_a_mysql_server_without_tls() {
    let fake = fake_no_tls_mysql(tidemark_tests::closed_port().await).await;
    let t = TestStack::start().await;
    let cred = credential(&t, "my-stolen", "victim-mysql-user", "pw-mysql-0123456789").await;
    let id = fake_instance(&t, "mysql", fake.port, cred, "verify-full").await;
    collect_fails(&t, id, "does not offer").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        fake.received().is_empty(),
        "not a byte: {:?}",
        fake.received()
    );
    // Under prefer the driver goes on in plaintext: the fake then learns the user name.
    set(&t, id, Role::Admin, json!({"tls_mode": "prefer"})).await;
    let r = collect(&t, id).await;
    assert_eq!(r.status, 502, "{r:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = fake.received();
    assert!(
        got.windows(17).any(|w| w == b"victim-mysql-user"),
        "{got:?}"
    );
}

#[tokio::test]
async fn only_admins_decide_where_a_password_goes() {
    let t = TestStack::start().await;
    let c1 = credential(&t, "c1", "postgres", "").await;
    let c2 = credential(&t, "c2", "postgres", "").await;
    let base = json!({"db_type": "postgresql", "host": "127.0.0.1", "port": 5432});
    let with = |name: &str, extra: Value| {
        let mut b = base.clone();
        b["name"] = json!(name);
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    // Create with a credential: admin only.
    let r = t
        .post(
            "/instances",
            Role::Operator,
            with("op-cred", json!({"credential_id": c1})),
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(message(&r).contains("admin"), "{r:?}");
    let cred_inst = t
        .create(
            "/instances",
            Role::Admin,
            with("credentialed", json!({"credential_id": c1})),
        )
        .await;
    let plain_inst = t
        .create("/instances", Role::Operator, with("plain", json!({})))
        .await;

    let path = format!("/instances/{cred_inst}");
    for change in [
        json!({"host": "attacker.example"}),
        json!({"port": 5433}),
        json!({"db_type": "mysql"}),
        json!({"credential_id": c2}),
        json!({"tls_mode": "disable"}),
        json!({"tls_ca_pem": TestCa::new("attacker").pem()}),
    ] {
        let r = t.patch(&path, Role::Operator, change.clone()).await;
        assert_eq!(r.status, 403, "operator {change}: {r:?}");
        assert_eq!(r.code(), "PERMISSION_DENIED");
        assert!(message(&r).contains("admin role"), "{r:?}");
    }
    let r = t.get(&path, Role::Viewer).await;
    assert_eq!(r.data()["host"], json!("127.0.0.1"), "nothing changed");
    assert_eq!(r.data()["credential"]["id"], json!(c1));
    // Every other edit stays the operator's, as does a no-op repeat of the current values.
    let r = t
        .patch(
            &path,
            Role::Operator,
            json!({"description": "ops edit", "host": "127.0.0.1", "credential_id": c1, "exclude_databases": ["scratch_%"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    for change in [
        json!({"host": "localhost"}),
        json!({"port": 5432}),
        json!({"credential_id": c2}),
        json!({"tls_mode": "require"}),
    ] {
        let r = t.patch(&path, Role::Admin, change.clone()).await;
        assert_eq!(r.status, 200, "admin {change}: {r:?}");
    }
    // No credential, nothing to steal: operators move it; attaching one is the admin's.
    let plain = format!("/instances/{plain_inst}");
    let r = t
        .patch(
            &plain,
            Role::Operator,
            json!({"host": "localhost", "port": 5433}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = t
        .patch(&plain, Role::Operator, json!({"credential_id": c1}))
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = t
        .patch(&plain, Role::Admin, json!({"credential_id": c1}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // Collections stay the operator's.
    let r = collect(&t, cred_inst).await;
    assert_ne!(r.status, 403, "{r:?}");
}

#[tokio::test]
async fn ciphertexts_are_bound_to_their_row_and_rotation_re_encrypts_all() {
    let t = TestStack::start().await;
    let a = credential(&t, "a", "postgres", "pw-a-0123").await;
    let b = credential(&t, "b", "postgres", "pw-b-0123").await;
    let ia = t.create("/instances", Role::Admin,
        json!({"name": "ia", "db_type": "postgresql", "host": "127.0.0.1", "port": 5432, "credential_id": a}),
    )
    .await;
    let ib = t.create("/instances", Role::Admin,
        json!({"name": "ib", "db_type": "postgresql", "host": "127.0.0.1", "port": 5432, "credential_id": b}),
    )
    .await;
    let db = t.db.connect().await;
    let versions: Vec<Option<i32>> =
        first_column(&db, "SELECT key_version FROM credentials ORDER BY id").await;
    assert_eq!(versions, vec![Some(1), Some(1)]);

    // A's ciphertext copied onto B's row does not decrypt there, and the failure says so.
    db.execute(
        "UPDATE credentials SET password_ciphertext = (SELECT password_ciphertext FROM credentials WHERE id = $1) WHERE id = $2",
        &[&a, &b],
    )
    .await
    .unwrap();
    let msg = collect_fails(&t, ib, "").await;
    assert!(
        msg.contains(&format!("credential {b}")) && msg.contains("cannot be decrypted"),
        "{msg}"
    );
    assert!(!msg.contains("pw-a"), "{msg}");
    let r = collect(&t, ia).await;
    assert_eq!(r.status, 200, "A itself still decrypts: {r:?}");

    // Rotation stops on the row it cannot decrypt and changes nothing.
    let new_key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let opts = |t: &TestStack| tidemark_local::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        s3_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: t.data_dir.path().to_path_buf(),
        scheduler: false,
        database_url: Some(t.db.url.clone()),
        api_tokens: None,
        settings: vec![
            ("TIDEMARK_CREDENTIAL_KEY".into(), STACK_KEY.into()),
            ("TIDEMARK_NEW_CREDENTIAL_KEY".into(), new_key.clone()),
        ],
    };
    let e = tidemark_local::rotate::rotate_credential_key(&opts(&t))
        .await
        .expect_err("rotation refused");
    assert!(
        format!("{e:#}").contains(&format!("credential {b}")),
        "{e:#}"
    );
    let kept: i64 = tidemark_tests::scalar(&db, "SELECT count(*) FROM credential_keys").await;
    assert_eq!(kept, 1, "nothing recorded");

    // B's password set again by an admin: now every row rotates, in one go.
    let r = t
        .patch(
            &format!("/credentials/{b}"),
            Role::Admin,
            json!({"password": "pw-b-0123"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let before: Vec<Vec<u8>> = first_column(
        &db,
        "SELECT password_ciphertext FROM credentials ORDER BY id",
    )
    .await;
    let done = tidemark_local::rotate::rotate_credential_key(&opts(&t))
        .await
        .expect("rotation");
    assert_eq!((done.version, done.re_encrypted), (2, 2));
    let rows = db
        .query(
            "SELECT password_ciphertext, key_version FROM credentials ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    for (row, old) in rows.iter().zip(&before) {
        assert_ne!(&row.get::<_, Vec<u8>>(0), old, "re-encrypted");
        assert_eq!(row.get::<_, Option<i32>>(1), Some(2));
    }

    // The old key no longer reads them, and says what to do; the new one collects.
    collect_fails(&t, ia, "key version 2").await;
    let r = t
        .post(
            "/credentials",
            Role::Admin,
            json!({"name": "c", "username": "u", "password": "p"}),
        )
        .await;
    assert_eq!(
        r.status, 503,
        "old key may not write under version 2: {r:?}"
    );
    let new_bytes: [u8; 32] = [9u8; 32];
    let rotated = tidemark::App {
        credential_key: CredentialKey::new(&new_bytes),
        ..t.stack.app.clone()
    };
    for id in [ia, ib] {
        match tidemark::collect::fanout::visit(&rotated, id, false)
            .await
            .unwrap()
        {
            tidemark::collect::fanout::Visit::Collected { collected, .. } => {
                assert!(!collected.databases.is_empty() || collected.version.len() > 1)
            }
            tidemark::collect::fanout::Visit::Failed(why) => panic!("{why}"),
            tidemark::collect::fanout::Visit::Gone(why) => panic!("{why}"),
        }
    }
    // A process holding both keys (mid-rotation) reads the rotated rows too.
    let both = tidemark::App {
        credential_key: CredentialKey::new(&[7u8; 32]).with_next(&new_bytes),
        ..t.stack.app.clone()
    };
    assert!(matches!(
        tidemark::collect::fanout::visit(&both, ia, false)
            .await
            .unwrap(),
        tidemark::collect::fanout::Visit::Collected { .. }
    ));
}

#[tokio::test]
async fn local_private_cluster_needs_its_generated_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = tidemark_tests::closed_port().await;
    let url = match tidemark_local::postgres::start_private(dir.path(), port).await {
        Ok(url) => url,
        Err(e) if format!("{e}").contains("no PostgreSQL found") => {
            eprintln!("PostgreSQL server binaries not installed; skipped");
            return;
        }
        Err(e) => panic!("{e:#}"),
    };
    struct Stop<'a>(&'a std::path::Path);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            tidemark_local::postgres::stop_private(self.0);
        }
    }
    let _stop = Stop(dir.path());
    let password = std::fs::read_to_string(dir.path().join("pg.password")).unwrap();
    assert!(password.trim().len() >= 20);
    assert!(
        url.contains(password.trim()),
        "the URL carries the password"
    );
    // SCRAM, not trust: without the password the server says no.
    let no_password = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    let e = tokio_postgres::connect(&no_password, tokio_postgres::NoTls)
        .await
        .err()
        .expect("refused without a password");
    let e = anyhow::Error::new(e);
    assert!(format!("{e:#}").contains("password"), "{e:#}");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("the generated password works");
    tokio::spawn(conn);
    let method: String = tidemark_tests::scalar(&client, "SHOW password_encryption").await;
    assert_eq!(method, "scram-sha-256");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("pg.password")), 0o600);
        assert_eq!(mode(&dir.path().join("pg")), 0o700);
        assert!(
            !dir.path().join("pg-init").exists(),
            "the initdb password file is gone"
        );
    }
}
