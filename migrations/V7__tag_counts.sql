-- Tag lists count each tag's non-deleted instances. Counting links minus links to deleted
-- instances lets that count be an index-only scan of instance_tags (tag_id, instance_id)
-- anti-joined to this small index of deleted instances, instead of probing every instance.
CREATE INDEX instances_deleted_idx ON instances (id) WHERE deleted_at IS NOT NULL;
