//! Scenario `export` (see spec/performance.md).

use crate::measure::Measure;

pub async fn run() -> anyhow::Result<Vec<Measure>> {
    anyhow::bail!("scenario export is not written yet")
}
