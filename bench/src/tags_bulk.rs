//! Scenario `tags_bulk` (see spec/performance.md).

use crate::measure::Measure;

pub async fn run() -> anyhow::Result<Vec<Measure>> {
    anyhow::bail!("scenario tags_bulk is not written yet")
}
