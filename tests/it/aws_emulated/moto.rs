//! moto in server mode (PyPI `moto[server]`, installed by scripts/services): Secrets Manager,
//! SQS and S3 on one private port, killed on drop.

use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::Credentials;

pub struct Moto {
    pub endpoint: String,
    _process: tokio::process::Child,
}

impl Moto {
    /// On a free port; tried again on another one when the port was taken between our
    /// choosing it and moto binding it.
    pub async fn start() -> Moto {
        for _ in 0..3 {
            if let Some(moto) = Self::start_on_free_port().await {
                return moto;
            }
        }
        panic!("moto did not start; is `moto[server]` installed (scripts/services)?");
    }

    async fn start_on_free_port() -> Option<Moto> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut process = tokio::process::Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 to start moto");
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if !matches!(process.try_wait(), Ok(None)) {
                return None;
            }
            if let Ok(r) = http.get(format!("{endpoint}/moto-api/")).send().await {
                if r.status().is_success() {
                    return Some(Moto {
                        endpoint,
                        _process: process,
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// AWS configuration for the test's own clients, pointed at moto.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(tidemark::storage::https_client())
            .region(aws_config::Region::new(super::lambda::REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await
    }

    /// What the functions get instead of an execution role: static keys and moto's endpoint
    /// through the standard `AWS_ENDPOINT_URL`.
    pub fn function_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", "testing"),
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}
