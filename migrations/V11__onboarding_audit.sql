-- Onboarding, connection checks and the audit trail (issue 14).

-- The last connection check of each instance: ok or a failure category, the message (never
-- a password), when, and how long it took. The server version goes to `version`.
ALTER TABLE instances
    ADD COLUMN last_check_status  text CHECK (last_check_status IN
        ('ok', 'dns', 'refused', 'timeout', 'tls', 'auth', 'permission', 'other')),
    ADD COLUMN last_check_message text,
    ADD COLUMN last_checked_at    timestamptz,
    ADD COLUMN last_check_ms      integer;
CREATE INDEX instances_last_check_idx ON instances (last_check_status, id);

-- Audit entries are event log lines with who, what and the changed fields: one table behind
-- `GET /logs`. System events leave these columns empty.
ALTER TABLE event_logs
    ADD COLUMN actor       text,
    ADD COLUMN actor_role  text,
    ADD COLUMN action      text,
    ADD COLUMN target_type text,
    ADD COLUMN target_ids  text[]   NOT NULL DEFAULT '{}',
    ADD COLUMN request_id  text,
    ADD COLUMN changes     jsonb;
CREATE INDEX event_logs_id_idx ON event_logs (id);
CREATE INDEX event_logs_actor_idx ON event_logs (actor, occurred_at) WHERE actor IS NOT NULL;
CREATE INDEX event_logs_targets_idx ON event_logs USING gin (target_ids);
