//! Scenario `ledger` (see spec/performance.md).

use crate::measure::Measure;

pub async fn run() -> anyhow::Result<Vec<Measure>> {
    anyhow::bail!("scenario ledger is not written yet")
}
