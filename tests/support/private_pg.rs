//! A PostgreSQL server of the test's own (initdb on a free port, as user `postgres` when
//! running as root), for tests that stop or break the server.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use tidemark_local::postgres::{as_cluster_user, find_bin, is_root};

pub struct PrivatePg {
    pub url: String,
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
    /// The server's options (port, socket folder), for a restart.
    options: String,
}

/// Runs `cmd` with its output discarded: whether it succeeded (`None`: it did not start).
pub(crate) fn quietly(cmd: &mut Command) -> Option<bool> {
    let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
    status.ok().map(|s| s.success())
}

impl PrivatePg {
    /// `None` when the server binaries are not installed.
    pub async fn start() -> Option<PrivatePg> {
        Self::start_configured(None, |_| {}).await
    }

    /// On `port` (else a free one), `configure` editing the data folder before the start.
    pub async fn start_configured(
        port: Option<u16>,
        configure: impl FnOnce(&std::path::Path),
    ) -> Option<PrivatePg> {
        let initdb = find_bin("initdb")?;
        let pg_ctl = find_bin("pg_ctl")?;
        let dir = tempfile::Builder::new()
            .prefix("tidemark-pg-")
            .tempdir()
            .ok()?;
        if is_root() {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .ok()?;
        }
        let data = dir.path().join("data");
        let ok = quietly(as_cluster_user(&initdb).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ]))?;
        assert!(ok, "initdb failed");
        configure(&data);
        let port = match port {
            Some(p) => p,
            None => std::net::TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port(),
        };
        let pg = PrivatePg {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            options: format!(
                "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
                dir.path().display()
            ),
            dir,
            pg_ctl,
        };
        pg.start_again();
        Some(pg)
    }

    /// Starts the (stopped) server with its options; panics with its log when it cannot.
    pub fn start_again(&self) {
        let ok = as_cluster_user(&self.pg_ctl)
            .arg("-D")
            .arg(self.data_dir())
            .arg("-o")
            .arg(&self.options)
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
            panic!("pg_ctl start failed: {log}");
        }
    }

    /// The server's socket folder (for admin connections that bypass TCP rules).
    pub fn socket_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    pub fn stop(&self) {
        let _ = as_cluster_user(&self.pg_ctl)
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.stop();
    }
}
