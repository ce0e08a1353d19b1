//! Runs a lost worker left open. Every visit is bounded (`TIDEMARK_VISIT_TIMEOUT_SECS`, and
//! the Lambda deadline), so an item `running` for longer than that plus a margin has lost its
//! worker, and a run where nothing started or finished for that long has stalled. Dispatch
//! fails them in the transaction that creates the next run, so a crash never blocks the
//! following collections.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::run::{close, ClosedRun};
use super::RunStatus;
use crate::web::ApiError;

/// Beyond the visit bound: recording the item and closing the run, a slow app database.
pub const STALE_MARGIN: Duration = Duration::from_secs(30);

/// How long an item may run (or a run go without progress) before it is presumed lost.
pub fn stale_after(visit_bound: Duration) -> Duration {
    visit_bound + STALE_MARGIN
}

/// Fails the stale items of `task_key`'s unfinished runs and closes every such run left with
/// no live item: failed when it lost items here, else with its items' outcome (a run whose
/// closing step was lost). Runs in the caller's transaction; a constant number of statements
/// per run closed (at most one per task, plus single-instance runs).
pub async fn fail_stale<C: GenericClient>(
    tx: &C,
    task_key: &str,
    visit_bound: Duration,
) -> Result<Vec<ClosedRun>, ApiError> {
    let after = stale_after(visit_bound);
    let secs = after.as_secs_f64();
    let lost = format!(
        "worker lost: running for more than {} s (the visit bound plus a margin)",
        after.as_secs()
    );
    let stalled = format!(
        "never started: the run made no progress for {} s",
        after.as_secs()
    );
    // Running items past the bound, and pending items of runs with nothing else running and
    // no item started or finished within the bound (their messages are gone). One snapshot:
    // `dead` still sees the lost items as running, hence the age test there too.
    let failed = tx
        .query(
            "WITH lost AS ( \
               UPDATE task_run_items it SET status = 'failed', completed_at = now(), error = $3 \
               FROM task_runs r \
               WHERE r.run_id = it.run_id AND r.task_key = $1 AND r.status IN ('pending', 'running') \
                 AND it.status = 'running' AND it.started_at < now() - make_interval(secs => $2) \
               RETURNING it.run_id), \
             dead AS ( \
               SELECT r.run_id FROM task_runs r JOIN task_run_items i USING (run_id) \
               WHERE r.task_key = $1 AND r.status IN ('pending', 'running') \
               GROUP BY r.run_id \
               HAVING count(*) FILTER (WHERE i.status = 'running' \
                                         AND i.started_at >= now() - make_interval(secs => $2)) = 0 \
                  AND count(*) FILTER (WHERE i.status = 'pending') > 0 \
                  AND greatest(max(r.started_at), max(i.started_at), max(i.completed_at)) \
                      < now() - make_interval(secs => $2)), \
             stalled AS ( \
               UPDATE task_run_items it SET status = 'failed', completed_at = now(), error = $4 \
               FROM dead WHERE it.run_id = dead.run_id AND it.status = 'pending' \
               RETURNING it.run_id) \
             SELECT DISTINCT run_id FROM lost UNION SELECT run_id FROM stalled",
            &[&task_key, &secs, &lost, &stalled],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<Uuid>, _>>()?;
    // Runs left with no live item (the statement above is visible here). A run still being
    // filled (`pending`) counts only once it is older than the bound.
    let open = tx
        .query(
            "SELECT r.run_id FROM task_runs r \
             WHERE r.task_key = $1 AND r.status IN ('pending', 'running') \
               AND (r.status = 'running' OR r.started_at < now() - make_interval(secs => $2)) \
               AND NOT EXISTS (SELECT 1 FROM task_run_items i \
                               WHERE i.run_id = r.run_id AND i.status IN ('pending', 'running')) \
             ORDER BY r.run_id FOR UPDATE",
            &[&task_key, &secs],
        )
        .await?;
    let mut closed = Vec::with_capacity(open.len());
    for row in open {
        let run_id: Uuid = row.try_get(0)?;
        let forced = failed.contains(&run_id).then_some(RunStatus::Failed);
        let run = close(tx, run_id, forced).await?;
        if forced.is_some() {
            tx.execute(
                "UPDATE task_runs SET error = $2 WHERE run_id = $1",
                &[
                    &run_id,
                    &"failed by the next dispatch: its worker was lost (see its items)",
                ],
            )
            .await?;
        }
        tracing::warn!(%run_id, %task_key, status = %run.status, "stale run closed");
        closed.push(run);
    }
    Ok(closed)
}
