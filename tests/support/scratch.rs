//! Databases of a test's own on this machine's shared PostgreSQL and MariaDB servers (the
//! servers collection reads). Other tests make theirs on the same servers at the same time,
//! so names are unique and tests assert only about their own databases.

use mysql_async::prelude::Queryable;

use crate::{cleanup_on_drop, connect, TestStack, ADMIN_URL};

pub const PG_PORT: u16 = 5432;
pub const MY_PORT: u16 = 3306;

/// A superuser client on database `dbname` of the shared PostgreSQL server.
pub async fn pg(dbname: &str) -> tokio_postgres::Client {
    connect(&format!(
        "host=127.0.0.1 port={PG_PORT} user=postgres dbname={dbname}"
    ))
    .await
}

impl TestStack {
    /// An instance of the shared MariaDB server, as root, with a credential of its own.
    pub async fn shared_mariadb(&self) -> i64 {
        let credential = self.credential("root").await;
        self.server_instance("mysql", "127.0.0.1", MY_PORT, Some(credential), &[])
            .await
    }

    /// An instance of the shared PostgreSQL server, as postgres, with a credential of its own.
    pub async fn shared_postgres(&self) -> i64 {
        let credential = self.credential("postgres").await;
        self.server_instance("postgresql", "127.0.0.1", PG_PORT, Some(credential), &[])
            .await
    }
}

fn my_opts() -> mysql_async::OptsBuilder {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(MY_PORT)
        .user(Some("root"))
        .prefer_socket(false)
}

/// A root connection to the shared MariaDB server.
pub async fn my() -> mysql_async::Conn {
    mysql_async::Conn::new(my_opts())
        .await
        .expect("connect mariadb")
}

/// Databases this test made on the shared servers; dropped when the value is, even if the
/// test fails.
#[derive(Default)]
pub struct Scratch {
    pg: Vec<String>,
    my: Vec<String>,
}

impl Scratch {
    /// A PostgreSQL database holding about `mb` MB (0: only the catalog), vacuumed so its
    /// size on disk no longer moves.
    pub async fn pg_db(&mut self, name: &str, mb: usize) {
        pg("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create pg db");
        self.pg.push(name.to_string());
        let c = pg(name).await;
        if mb > 0 {
            // Random text so TOAST compression cannot shrink it.
            c.batch_execute(&format!(
                "CREATE TABLE filler AS SELECT g AS id, \
                 (SELECT string_agg(md5(random()::text || g || s), '') FROM generate_series(1, 30) s) AS pad \
                 FROM generate_series(1, {}) g",
                mb * 1000
            ))
            .await
            .expect("fill pg db");
        }
        c.batch_execute("VACUUM ANALYZE").await.expect("vacuum");
    }

    /// A MariaDB database holding about `mb` MB of InnoDB rows (0: an empty schema).
    pub async fn my_db(&mut self, name: &str, mb: usize) {
        let mut c = my().await;
        c.query_drop(format!("CREATE DATABASE `{name}`"))
            .await
            .expect("create mariadb db");
        self.my.push(name.to_string());
        if mb > 0 {
            c.query_drop(format!(
                "CREATE TABLE `{name}`.filler (id INT PRIMARY KEY, pad VARCHAR(1000)) ENGINE=InnoDB"
            ))
            .await
            .expect("create table");
            c.query_drop("SET SESSION max_recursive_iterations = 1000000")
                .await
                .expect("recursion limit");
            c.query_drop(format!(
                "INSERT INTO `{name}`.filler \
                 WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {}) \
                 SELECT n, REPEAT(MD5(n), 30) FROM s",
                mb * 1000
            ))
            .await
            .expect("fill mariadb db");
        }
        let _ = c.disconnect().await;
    }

    /// Drops a MariaDB database now (it stays on the list: a later `my_db` may remake it).
    pub async fn my_drop(&mut self, name: &str) {
        let mut c = my().await;
        c.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
            .await
            .expect("drop");
        let _ = c.disconnect().await;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (pgs, mys) = (std::mem::take(&mut self.pg), std::mem::take(&mut self.my));
        cleanup_on_drop(async move {
            if let Ok((c, conn)) = tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls).await {
                tokio::spawn(conn);
                for n in &pgs {
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{n}\" WITH (FORCE)"))
                        .await;
                }
            }
            if !mys.is_empty() {
                // Not `my()`: a cleanup must not panic while a failed test unwinds.
                if let Ok(mut c) = mysql_async::Conn::new(my_opts()).await {
                    for n in &mys {
                        let _ = c.query_drop(format!("DROP DATABASE IF EXISTS `{n}`")).await;
                    }
                    let _ = c.disconnect().await;
                }
            }
        });
    }
}
