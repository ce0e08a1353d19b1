-- Incremental capacity aggregation.
--
-- An aggregate keeps what lets its period advance by one day: the sum beside the sample
-- count (the average is their quotient, exactly as avg() computes it), min/max, and the
-- date of its latest sample (an instance's database count is the latest one's).
ALTER TABLE database_size_aggregations ADD COLUMN sum_bytes bigint, ADD COLUMN last_date date;
ALTER TABLE instance_size_aggregations ADD COLUMN sum_bytes bigint, ADD COLUMN last_date date;
-- A night rewrites every current week's, month's and quarter's row in place: room on the
-- page keeps those updates HOT (no index touched; the folded columns are not indexed).
ALTER TABLE database_size_aggregations SET (fillfactor = 70);
ALTER TABLE instance_size_aggregations SET (fillfactor = 70);

-- Which (instance, day) of history the aggregates hold: the collected_at they were folded
-- at. NULL: never folded; older than collected_at: re-collected since (those periods of
-- that instance are rebuilt). Collection rewrites this row with every visit.
ALTER TABLE instance_size_stats ADD COLUMN aggregated_at timestamptz;

-- Periods maintained incrementally (computed once from raw history, then folded into).
-- A period without a row here is computed from raw history the first time it is needed.
CREATE TABLE aggregation_periods (
    period_type  text        NOT NULL CHECK (period_type IN ('daily', 'weekly', 'monthly', 'quarterly')),
    period_start date        NOT NULL,
    period_end   date        NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (period_type, period_start)
);

-- Business dates the aggregation has run for: the daily job backfills from the latest.
CREATE TABLE aggregation_days (
    business_date date        PRIMARY KEY,
    run_id        uuid,
    summary       jsonb       NOT NULL DEFAULT '{}',
    aggregated_at timestamptz NOT NULL DEFAULT now()
);

-- One day of history out of a monthly partition (the fold, the daily period): rows arrive
-- in date order, so a block-range index is enough and costs collection nearly nothing.
CREATE INDEX database_size_stats_date_brin ON database_size_stats USING brin (collected_date);
CREATE INDEX instance_size_stats_date_brin ON instance_size_stats USING brin (collected_date);

