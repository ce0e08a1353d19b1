use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Tidemark on one machine: HTTP API, embedded S3, in-process queue and scheduler.
#[derive(Debug, Parser)]
#[command(name = "tidemark-local", version)]
struct Cli {
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Address of the embedded S3-compatible endpoint.
    #[arg(long, default_value = "127.0.0.1:9000")]
    s3_listen: SocketAddr,
    /// Where the S3 objects, generated secrets and a private PostgreSQL live.
    #[arg(long, default_value = ".tidemark")]
    data_dir: PathBuf,
    /// Do not run the daily schedules (collection, aggregation, maintenance).
    #[arg(long)]
    no_scheduler: bool,
    /// Register this machine's PostgreSQL and MariaDB/MySQL, tag them and collect at once.
    #[arg(long)]
    demo: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Re-encrypt every stored password under a new key (one transaction) and record its
    /// version. Stop the stack first. The new key: TIDEMARK_NEW_CREDENTIAL_KEY, else a
    /// generated one replacing <data-dir>/credential.key.
    RotateCredentialKey,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tidemark::telemetry::init_human();
    let cli = Cli::parse();
    let options = tidemark_local::Options {
        listen: cli.listen,
        s3_listen: cli.s3_listen,
        data_dir: cli.data_dir.clone(),
        scheduler: !cli.no_scheduler,
        database_url: std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty()),
        api_tokens: None,
        settings: Vec::new(),
    };
    if let Some(Command::RotateCredentialKey) = cli.command {
        let done = tidemark_local::rotate::rotate_credential_key(&options).await?;
        println!(
            "credential key rotated: version {}, {} password(s) re-encrypted",
            done.version, done.re_encrypted
        );
        return Ok(());
    }
    let stack = tidemark_local::start(options).await?;
    let api = format!("http://{}", stack.api_addr);
    println!("Tidemark is running.");
    println!("  API:      {api}/api/v1");
    println!("  S3:       http://{}", stack.s3_addr);
    println!(
        "  Database: {}",
        tidemark::config::redact_url(&stack.database_url)
    );
    println!("  Tokens (TIDEMARK_API_TOKENS, kept in the data folder):");
    for (role, token) in &stack.tokens {
        println!("    {:<8} {token}", role.as_str());
    }
    if let Some((_, admin)) = stack
        .tokens
        .iter()
        .find(|(r, _)| *r == tidemark::web::Role::Admin)
    {
        // The fragment never reaches a server; the console keeps it for this tab only.
        println!("  Console:  {api}/#token={admin}");
    }
    if let Some((_, viewer)) = stack
        .tokens
        .iter()
        .find(|(r, _)| *r == tidemark::web::Role::Viewer)
    {
        println!("  Try:      curl -s -H 'Authorization: Bearer {viewer}' {api}/api/v1/instances");
    }
    if cli.demo {
        tidemark_local::demo::run(&stack.app, &stack.tokens).await?;
        println!("  Demo:     instances registered and a collection started; see {api}/api/v1/databases/ledger");
    }
    tokio::signal::ctrl_c().await?;
    println!("stopping");
    Ok(())
}
