-- POST /instances/{id}/actions/collect queues a one-item run of task `collect_instance` on the
-- instance's FIFO group: several instances may be collected on demand at once (the handler
-- keeps one unfinished per instance), so that task leaves the one-unfinished-run-per-task rule.
DROP INDEX task_runs_one_unfinished_idx;
CREATE UNIQUE INDEX task_runs_one_unfinished_idx ON task_runs (task_key)
    WHERE status IN ('pending', 'running') AND task_key <> 'collect_instance';
-- The sweep of stale items and the single-instance lookup find a run's open items by instance.
CREATE INDEX task_run_items_open_instance_idx ON task_run_items (instance_id)
    WHERE status IN ('pending', 'running');
