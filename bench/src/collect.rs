//! Scenario `collect` (see spec/performance.md).

use crate::measure::Measure;

pub async fn run() -> anyhow::Result<Vec<Measure>> {
    anyhow::bail!("scenario collect is not written yet")
}
