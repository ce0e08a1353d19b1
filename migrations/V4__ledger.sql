-- The database ledger (api.md "Database ledger"): it reads instance_databases, instances and
-- tags only, and every sort it offers is served by an index in keyset order, so the first page
-- and a cursor page cost an index walk of `limit` rows whatever the fleet or history size.

-- The default order is (instance name, database name). The instance name lives on another
-- table, so it is kept on the inventory row (filled on insert, followed on rename) and
-- (instance_name, database_name, id) becomes one index.
ALTER TABLE instance_databases ADD COLUMN instance_name text;
UPDATE instance_databases d SET instance_name = i.name FROM instances i WHERE i.id = d.instance_id;
ALTER TABLE instance_databases ALTER COLUMN instance_name SET NOT NULL;

CREATE FUNCTION tidemark_instance_databases_name() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT i.name INTO NEW.instance_name FROM instances i WHERE i.id = NEW.instance_id;
    RETURN NEW;
END
$$;
-- Any write that sets the instance (or tries to set the name) takes the instance's real name.
CREATE TRIGGER instance_databases_instance_name
    BEFORE INSERT OR UPDATE OF instance_id, instance_name ON instance_databases
    FOR EACH ROW EXECUTE FUNCTION tidemark_instance_databases_name();

CREATE FUNCTION tidemark_instances_renamed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE instance_databases SET instance_name = NEW.name WHERE instance_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER instances_renamed
    AFTER UPDATE OF name ON instances
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION tidemark_instances_renamed();

-- The (instance name, database name) pair as one sortable value, so a keyset cursor over it is
-- a single comparison that the index below answers.
CREATE TYPE ledger_name_key AS (instance_name text, database_name text);

-- One index per ledger sort, each over active databases only (the ledger never shows others),
-- ending with id: the cursor's tie breaker. Expressions match the SortField exprs exactly.
CREATE INDEX instance_databases_ledger_name_idx ON instance_databases
    ((ROW(instance_name, database_name)::ledger_name_key), id) WHERE is_active;
CREATE INDEX instance_databases_ledger_database_idx ON instance_databases
    (database_name, id) WHERE is_active;
CREATE INDEX instance_databases_ledger_size_idx ON instance_databases
    ((COALESCE(latest_size_bytes, -1)), id) WHERE is_active;
CREATE INDEX instance_databases_ledger_collected_idx ON instance_databases
    ((COALESCE(latest_collected_at, '-infinity'::timestamptz)), id) WHERE is_active;
CREATE INDEX instance_databases_ledger_growth_idx ON instance_databases
    ((COALESCE(growth_bytes_per_day, '-9223372036854775808'::bigint)), id) WHERE is_active;
