-- Export runs (issue: exports). A run claims its job by bumping `attempt`, the fencing token
-- every later write of that run checks; `heartbeat_at` is its lease, renewed at each part, so
-- a job left 'running' by a crashed worker can be claimed again. `upload_id` is the open
-- multipart upload (with `object_key`), kept so a restart, a failure or maintenance can abort
-- it. `seq` orders the list and is its keyset tie-breaker.
ALTER TABLE export_jobs
    ADD COLUMN attempt      integer     NOT NULL DEFAULT 0,
    ADD COLUMN heartbeat_at timestamptz,
    ADD COLUMN upload_id    text,
    ADD COLUMN seq          bigint      GENERATED ALWAYS AS IDENTITY;

CREATE UNIQUE INDEX export_jobs_seq_key ON export_jobs (seq);
CREATE INDEX export_jobs_requester_seq_idx ON export_jobs (requested_by, created_at DESC, seq DESC);
CREATE INDEX export_jobs_created_at_idx ON export_jobs (created_at);
