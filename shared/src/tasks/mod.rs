//! (tasks: see its issue.)

use crate::http::router::Route;

pub fn routes() -> Vec<Route> {
    vec![]
}

/// Runs still unfinished long after they started (a lost worker) are failed.
pub async fn fail_stale_runs(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE task_runs SET status = 'failed', completed_at = now(), error = 'run did not finish within 6 hours' \
             WHERE status IN ('pending', 'running') AND started_at < now() - interval '6 hours'",
            &[],
        )
        .await
}
