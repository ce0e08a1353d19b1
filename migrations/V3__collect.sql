-- Collection (issue 4): the business date of the instance's newest collection, so a late
-- message of an older date is recognised in O(1) and never rolls inventory or latest sizes back.
ALTER TABLE instances ADD COLUMN last_collected_date date;

-- A stable bigint key per run and per item, for keyset pagination of the task-run lists
-- (run_id is a uuid, item_key text; list cursors carry a bigint tie breaker).
ALTER TABLE task_runs ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX task_runs_seq_idx ON task_runs (seq);
CREATE INDEX task_runs_started_seq_idx ON task_runs (started_at, seq);
ALTER TABLE task_run_items ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE INDEX task_run_items_run_seq_idx ON task_run_items (run_id, seq);
