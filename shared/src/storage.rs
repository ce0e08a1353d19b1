//! The S3 client: one rustls (ring) HTTPS client shared by config loading and S3. With
//! `TIDEMARK_S3_ENDPOINT` set it talks path-style to that endpoint (the local stack's).

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls;

#[derive(Clone, Debug)]
pub struct Storage {
    pub client: Client,
    pub bucket: String,
}

/// Static credentials for a non-AWS endpoint; in AWS the default chain (the Lambda role).
pub async fn s3_client(
    endpoint: Option<&str>,
    static_credentials: Option<(String, String)>,
) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(ep) = endpoint {
        loader = loader
            .endpoint_url(ep)
            .region(aws_config::Region::new("us-east-1"));
    }
    if let Some((key, secret)) = static_credentials {
        loader = loader.credentials_provider(Credentials::new(
            key,
            secret,
            None,
            None,
            "tidemark-static",
        ));
    }
    let shared = loader.load().await;
    let mut builder = aws_sdk_s3::config::Builder::from(&shared);
    if endpoint.is_some() {
        builder = builder.force_path_style(true);
    }
    Client::from_conf(builder.build())
}
