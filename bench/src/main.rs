//! `cargo run --release -p tidemark-bench -- <scenario> [--json]` (scenarios: api, cold-start,
//! tags-bulk, ledger, export, collect, tables)
//!
//! Each scenario builds its own data in a fresh database, drives the local stack over HTTP
//! where a user would, and measures its naive baseline side by side in the same run.

mod aggregate;
mod alerts;
mod api;
mod cold_start;
mod collect;
mod export;
mod ledger;
mod measure;
mod operations;
mod tables;
mod tags_bulk;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    Aggregate,
    Api,
    ColdStart,
    TagsBulk,
    Ledger,
    Export,
    Collect,
    Operations,
    Tables,
}

#[derive(Debug, Parser)]
#[command(name = "tidemark-bench")]
struct Cli {
    scenario: Scenario,
    /// One JSON object per measure instead of the table.
    #[arg(long)]
    json: bool,
    /// Multiplies the fleet (as `TIDEMARK_BENCH_SCALE` does), e.g. `--scale 10`.
    #[arg(long)]
    scale: Option<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(scale) = cli.scale {
        std::env::set_var("TIDEMARK_BENCH_SCALE", scale.to_string());
    }
    let measures = match cli.scenario {
        Scenario::Aggregate => aggregate::run().await?,
        Scenario::Api => api::run().await?,
        Scenario::ColdStart => cold_start::run().await?,
        Scenario::TagsBulk => tags_bulk::run().await?,
        Scenario::Ledger => ledger::run().await?,
        Scenario::Export => export::run().await?,
        Scenario::Collect => collect::run().await?,
        Scenario::Operations => operations::run().await?,
        Scenario::Tables => tables::run().await?,
    };
    measure::report(&measures, cli.json);
    Ok(())
}
