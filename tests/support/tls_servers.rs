//! TLS fixtures: a CA and server certificates made by the test (rcgen), a private PostgreSQL
//! that accepts only TLS (`ssl=on`, only `hostssl` lines), a private MariaDB with
//! `require_secure_transport=ON`, and a fake PostgreSQL server that declines TLS and asks
//! for a cleartext password, recording every byte it receives.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use tidemark_local::postgres::is_root;

use crate::private_pg::{quietly, PrivatePg};

/// A certificate authority of the test's own.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and its key, PEM.
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("self-signed CA");
        TestCa { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server_cert(&self, names: &[&str]) -> ServerCert {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "tidemark test server");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes the CA's PEM into `dir` and returns its path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.pem()).expect("write CA");
        p
    }
}

fn chown(user: &str, paths: &[&Path]) {
    if is_root() {
        let _ = Command::new("chown")
            .arg(format!("{user}:{user}"))
            .args(paths)
            .status();
    }
}

fn write_private(path: &Path, text: &str, user: &str) {
    std::fs::write(path, text).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    chown(user, &[path]);
}

/// A PostgreSQL server that speaks only TLS, certificate for `names`, on `port`.
pub async fn tls_postgres(cert: &ServerCert, port: u16) -> Option<PrivatePg> {
    PrivatePg::start_configured(Some(port), |data| {
        write_private(&data.join("server.crt"), &cert.cert_pem, "postgres");
        write_private(&data.join("server.key"), &cert.key_pem, "postgres");
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
        conf.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(data.join("postgresql.conf"), conf).expect("conf");
        // Socket for the admin; TCP only over TLS.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
        .expect("hba");
    })
    .await
}

/// A private MariaDB (its own datadir and port) requiring TLS of every client.
pub struct PrivateMariaDb {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PrivateMariaDb {
    /// `None` when the MariaDB server binaries are not installed.
    pub async fn start(cert: &ServerCert, ca_pem: &str, port: u16) -> Option<PrivateMariaDb> {
        let mariadbd = ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())?;
        let install = ["/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())?;
        let dir = tempfile::Builder::new()
            .prefix("tidemark-maria-")
            .tempdir()
            .ok()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).ok()?;
        for (name, text) in [
            ("server.crt", cert.cert_pem.as_str()),
            ("server.key", cert.key_pem.as_str()),
            ("ca.crt", ca_pem),
        ] {
            write_private(&dir.path().join(name), text, "mysql");
        }
        chown("mysql", &[dir.path(), &data]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
        }
        let user = if is_root() { "--user=mysql" } else { "" };
        let ok = quietly(
            Command::new(&install)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
                .args(Some(user).filter(|u| !u.is_empty())),
        )?;
        assert!(ok, "mariadb-install-db failed");
        let p = dir.path();
        let mut cmd = Command::new(&mariadbd);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", p.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", p.join("mysqld.pid").display()))
            .arg(format!("--ssl-cert={}", p.join("server.crt").display()))
            .arg(format!("--ssl-key={}", p.join("server.key").display()))
            .arg(format!("--ssl-ca={}", p.join("ca.crt").display()))
            .arg("--require-secure-transport=ON")
            .arg("--innodb-buffer-pool-size=16M")
            .arg(format!("--log-error={}", p.join("error.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            cmd.arg("--user=mysql");
        }
        let child = cmd.spawn().ok()?;
        let server = PrivateMariaDb {
            port,
            child,
            _dir: dir,
        };
        for _ in 0..150 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(server._dir.path().join("error.log")).unwrap_or_default();
        panic!("private MariaDB did not start on {port}: {log}");
    }

    /// Runs SQL as root over the server's socket (no TLS needed there).
    pub fn sql(&self, statement: &str) -> String {
        let out = Command::new("mariadb")
            .arg(format!(
                "--socket={}",
                self._dir.path().join("mysqld.sock").display()
            ))
            .args(["-uroot", "-N", "-B", "-e", statement])
            .output()
            .expect("mariadb client");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fake server on `port` that records every byte any client sends it (`received`); each
/// connection is served by `serve`, which records what it reads through [`record`].
pub struct FakeServer {
    pub port: u16,
    pub received: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

type Sink = Arc<Mutex<Vec<u8>>>;

fn record(sink: &Sink, bytes: &[u8]) {
    if let Ok(mut s) = sink.lock() {
        s.extend_from_slice(bytes);
    }
}

impl FakeServer {
    async fn start<F, Fut>(port: u16, serve: F) -> FakeServer
    where
        F: Fn(TcpStream, Sink) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind fake server");
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, sink.clone()));
            }
        });
        FakeServer {
            port,
            received,
            task,
        }
    }

    pub fn received(&self) -> Vec<u8> {
        self.received.lock().map(|b| b.clone()).unwrap_or_default()
    }

    pub fn clear(&self) {
        if let Ok(mut b) = self.received.lock() {
            b.clear();
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn mysql_greeting() -> Vec<u8> {
    let mut p = vec![0x0a];
    p.extend_from_slice(b"5.7.99-fake\0");
    p.extend_from_slice(&7u32.to_le_bytes());
    p.extend_from_slice(b"abcdefgh\0");
    // PROTOCOL_41, SECURE_CONNECTION, LONG_PASSWORD, TRANSACTIONS ...; bit 0x0800 (SSL) off.
    p.extend_from_slice(&0xF7FFu16.to_le_bytes());
    p.push(0x21);
    p.extend_from_slice(&2u16.to_le_bytes());
    // Upper flags: MULTI_STATEMENTS, MULTI_RESULTS, PLUGIN_AUTH.
    p.extend_from_slice(&0x000Bu16.to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0u8; 10]);
    p.extend_from_slice(b"ijklmnopqrst\0");
    p.extend_from_slice(b"mysql_native_password\0");
    let len = p.len() as u32;
    let mut packet = len.to_le_bytes()[..3].to_vec();
    packet.push(0);
    packet.extend_from_slice(&p);
    packet
}

/// A fake MySQL server that does not offer TLS: its greeting (HandshakeV10) lacks the
/// CLIENT_SSL capability.
pub async fn fake_no_tls_mysql(port: u16) -> FakeServer {
    FakeServer::start(port, |mut sock, sink| async move {
        if sock.write_all(&mysql_greeting()).await.is_err() {
            return;
        }
        let mut buf = [0u8; 4096];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await
        {
            if n == 0 {
                return;
            }
            record(&sink, &buf[..n]);
        }
    })
    .await
}

/// A fake PostgreSQL server: answers `N` (no TLS) to an SSLRequest and then asks for a
/// cleartext password.
pub async fn fake_cleartext_pg(port: u16) -> FakeServer {
    FakeServer::start(port, |mut sock, sink| async move {
        let mut buf = [0u8; 4096];
        loop {
            let n = match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => return,
            };
            let chunk = buf[..n].to_vec();
            record(&sink, &chunk);
            // SSLRequest: length 8, code 80877103.
            let reply: &[u8] =
                if chunk.len() >= 8 && chunk[..8] == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f] {
                    b"N"
                } else if chunk.first() == Some(&b'p') {
                    // The password message: fail the login, as a thief would not care.
                    return;
                } else {
                    // AuthenticationCleartextPassword.
                    &[b'R', 0, 0, 0, 8, 0, 0, 0, 3]
                };
            if sock.write_all(reply).await.is_err() {
                return;
            }
        }
    })
    .await
}
