//! Where the local stack's database lives: `DATABASE_URL`; else the PostgreSQL answering on
//! the default port; else a private cluster started from the PostgreSQL binaries on this
//! machine under `<data-dir>/pg`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

const PRIVATE_PORT: u16 = 54329;

pub async fn resolve(database_url: Option<String>, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(url) = database_url {
        return Ok(url);
    }
    let default = "host=127.0.0.1 port=5432 user=postgres";
    if answers(&format!("{default} dbname=postgres")).await {
        ensure_database(&format!("{default} dbname=postgres"), "tidemark").await?;
        return Ok("postgres://postgres@127.0.0.1:5432/tidemark".into());
    }
    start_private(data_dir, PRIVATE_PORT).await
}

async fn answers(conn: &str) -> bool {
    let Ok(mut cfg) = conn.parse::<tokio_postgres::Config>() else {
        return false;
    };
    cfg.connect_timeout(Duration::from_secs(2));
    cfg.connect(tokio_postgres::NoTls).await.is_ok()
}

pub async fn ensure_database(admin_conn: &str, name: &str) -> anyhow::Result<()> {
    let (client, conn) = tokio_postgres::connect(admin_conn, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        // The name is ours (a constant or a generated test name), never user input.
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
    }
    Ok(())
}

/// `name` from PATH, else from the newest /usr/lib/postgresql/<version>/bin.
pub fn find_bin(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .collect();
        versions.sort();
        dirs.extend(versions.into_iter().rev());
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

/// initdb refuses to run as root: run the cluster as the `postgres` user then.
pub fn as_cluster_user(bin: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// Starts (initialising it the first time) the cluster in `<data_dir>/pg` on `port`; returns
/// its URL, with the generated password.
pub async fn start_private(data_dir: &Path, port: u16) -> anyhow::Result<String> {
    let (Some(initdb), Some(pg_ctl)) = (find_bin("initdb"), find_bin("pg_ctl")) else {
        bail!(
            "no PostgreSQL found: set DATABASE_URL, start PostgreSQL on 127.0.0.1:5432, \
             or install the PostgreSQL server binaries (initdb, pg_ctl) for a private cluster"
        );
    };
    let data_dir = std::fs::canonicalize(data_dir)?;
    let pg_dir = data_dir.join("pg");
    if is_root() {
        // The cluster runs as `postgres`, which must pass through the (root-owned) data
        // folder to its own 0700 directory: traverse only, no listing.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o711))?;
    }
    // The superuser's password (SCRAM), generated once and kept next to the cluster.
    let password_file = data_dir.join("pg.password");
    let password = match std::fs::read_to_string(&password_file) {
        Ok(p) => p.trim().to_string(),
        Err(_) => {
            let p = crate::random_token();
            crate::secret_files::write(&password_file, &p)?;
            p
        }
    };
    if !pg_dir.join("PG_VERSION").exists() {
        crate::secret_files::private_dir(&pg_dir)?;
        // initdb reads the password from a file the cluster user can read; gone right after.
        let init_dir = data_dir.join("pg-init");
        crate::secret_files::private_dir(&init_dir)?;
        let pwfile = init_dir.join("pwfile");
        crate::secret_files::write(&pwfile, &password)?;
        if is_root() {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg_dir)
                .arg(&init_dir)
                .status()?;
        }
        let status = as_cluster_user(&initdb)
            .args(["-D"])
            .arg(&pg_dir)
            .args(["-U", "postgres", "--auth=scram-sha-256", "-E", "UTF8"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdout(std::process::Stdio::null())
            .status()
            .context("running initdb");
        let _ = std::fs::remove_dir_all(&init_dir);
        if !status?.success() {
            bail!("initdb failed for {}", pg_dir.display());
        }
    }
    let conn =
        format!("host=127.0.0.1 port={port} user=postgres password={password} dbname=postgres");
    if !answers(&conn).await {
        let status = as_cluster_user(&pg_ctl)
            .arg("-D")
            .arg(&pg_dir)
            .arg("-o")
            .arg(format!(
                "-p {port} -c listen_addresses=127.0.0.1 -k {}",
                pg_dir.display()
            ))
            .arg("-l")
            .arg(pg_dir.join("server.log"))
            .args(["-w", "start"])
            .stdout(std::process::Stdio::null())
            .status()
            .context("running pg_ctl start")?;
        if !status.success() {
            bail!(
                "the private PostgreSQL did not start; see {}",
                pg_dir.join("server.log").display()
            );
        }
    }
    ensure_database(&conn, "tidemark").await?;
    // Generated tokens are URL-safe base64: no escaping needed in the URL.
    Ok(format!(
        "postgres://postgres:{password}@127.0.0.1:{port}/tidemark"
    ))
}

/// Stops the private cluster of `data_dir` (tests; the local stack leaves it running).
pub fn stop_private(data_dir: &Path) {
    if let Some(pg_ctl) = find_bin("pg_ctl") {
        let _ = as_cluster_user(&pg_ctl)
            .arg("-D")
            .arg(data_dir.join("pg"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
