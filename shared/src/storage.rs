//! The S3 client: one rustls (ring) HTTPS client shared by config loading and every SDK
//! client. With `TIDEMARK_S3_ENDPOINT` set it talks path-style to that endpoint (the local
//! stack's).

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls;

#[derive(Clone, Debug)]
pub struct Storage {
    pub client: Client,
    pub bucket: String,
}

/// The HTTPS client every AWS SDK client of a process shares (one TLS stack: rustls + ring).
pub fn https_client() -> aws_sdk_s3::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// An S3 client from already loaded AWS configuration (the Lambda functions load it once
/// for every SDK client); `endpoint` for a non-AWS S3.
pub fn s3_client_from(shared: &SdkConfig, endpoint: Option<&str>) -> Client {
    let mut builder = aws_sdk_s3::config::Builder::from(shared);
    if let Some(ep) = endpoint {
        builder = builder.endpoint_url(ep).force_path_style(true);
    }
    Client::from_conf(builder.build())
}

/// An S3 client for a non-AWS endpoint with static credentials (the local stack).
pub async fn s3_client(endpoint: &str, access_key: String, secret_key: String) -> Client {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            access_key,
            secret_key,
            None,
            None,
            "tidemark-static",
        ))
        .load()
        .await;
    s3_client_from(&shared, Some(endpoint))
}
