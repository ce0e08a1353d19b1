//! `api-exports`: its routes of the HTTP API (see template.yaml).

#[tokio::main]
async fn main() -> Result<(), tidemark_functions::Error> {
    tidemark_functions::serve_http("api-exports").await
}
