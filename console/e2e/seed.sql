-- Seed of the console's end-to-end run (scripts/console-test), after the instances app-001 ..
-- app-025 and pg-billing were registered through the API: 8 databases per app instance (200,
-- all matching "app"), "orders" on pg-billing with 730 days of history, sizes, growth,
-- instance totals, daily/weekly aggregates, a collection run with two failed items, events.
BEGIN;

INSERT INTO instance_databases (instance_id, database_name, latest_size_bytes, latest_collected_at,
                                latest_collected_date, growth_bytes_per_day)
SELECT i.id, n.name,
       (50 + (i.id * 37 + n.k * 101) % 900)::bigint * 1048576,
       CASE WHEN i.name IN ('app-024', 'app-025') THEN now() - interval '5 days' ELSE now() END,
       CASE WHEN i.name IN ('app-024', 'app-025') THEN current_date - 5 ELSE current_date END,
       ((i.id * 13 + n.k * 7) % 40 - 5)::bigint * 65536
FROM instances i
CROSS JOIN (VALUES (1, 'inventory'), (2, 'sessions'), (3, 'audit'), (4, 'billing'),
                   (5, 'metrics'), (6, 'events'), (7, 'users'), (8, 'catalog')) AS n(k, name)
WHERE i.name LIKE 'app-%';

INSERT INTO instance_databases (instance_id, database_name, latest_size_bytes, latest_collected_at,
                                latest_collected_date, growth_bytes_per_day)
SELECT i.id, 'orders', 200 * 1048576 + 729 * 1572864, now(), current_date, 1572864
FROM instances i WHERE i.name = 'pg-billing';

-- Tables of "orders" on pg-billing (issue 15): 30 tables, line_items the largest.
INSERT INTO instance_tables (instance_id, database_name, schema_name, table_name, first_seen_date,
                             last_seen_date, total_bytes, data_bytes, index_bytes, toast_bytes,
                             row_estimate, collected_at, collected_date, growth_7d_bytes,
                             growth_30d_bytes, has_history)
SELECT i.id, 'orders', 'public', CASE WHEN g = 1 THEN 'line_items' ELSE 'table_' || lpad(g::text, 2, '0') END,
       current_date - 30, current_date, (31 - g)::bigint * 8388608, (31 - g)::bigint * 6291456,
       (31 - g)::bigint * 2097152, 0, (31 - g)::bigint * 10000, now(), current_date,
       (31 - g)::bigint * 65536, (31 - g)::bigint * 262144, true
FROM instances i CROSS JOIN generate_series(1, 30) g WHERE i.name = 'pg-billing';

-- 30 days of history per app database, linear with its growth.
INSERT INTO database_size_stats (instance_id, database_name, collected_date, size_bytes, collected_at)
SELECT d.instance_id, d.database_name, d.latest_collected_date - g,
       GREATEST(0, d.latest_size_bytes - d.growth_bytes_per_day * g), now() - make_interval(days => g)
FROM instance_databases d CROSS JOIN generate_series(0, 29) g
WHERE d.database_name <> 'orders';

-- orders: 730 daily points, 1.5 MiB a day with a weekly wobble.
INSERT INTO database_size_stats (instance_id, database_name, collected_date, size_bytes, collected_at)
SELECT d.instance_id, 'orders', current_date - g,
       200 * 1048576 + (729 - g) * 1572864 + ((g % 7) * 524288), now() - make_interval(days => g)
FROM instance_databases d CROSS JOIN generate_series(0, 729) g
WHERE d.database_name = 'orders';

INSERT INTO instance_size_stats (instance_id, collected_date, total_size_bytes, database_count, collected_at)
SELECT instance_id, collected_date, sum(size_bytes), count(*), max(collected_at)
FROM database_size_stats GROUP BY instance_id, collected_date;

UPDATE instances i SET last_collected_at = s.at, last_collected_date = s.d
FROM (SELECT instance_id, max(latest_collected_at) AS at, max(latest_collected_date) AS d
      FROM instance_databases GROUP BY instance_id) s
WHERE s.instance_id = i.id;

-- Aggregates as the daily job writes them (daily and weekly), change against the previous period.
INSERT INTO instance_size_aggregations (instance_id, period_type, period_start, period_end, avg_bytes,
    max_bytes, min_bytes, sample_count, change_bytes, change_percent, trend, database_count)
SELECT instance_id, 'daily', collected_date, collected_date, total_size_bytes, total_size_bytes,
       total_size_bytes, 1,
       total_size_bytes - COALESCE(lag(total_size_bytes) OVER w, total_size_bytes),
       COALESCE((total_size_bytes - lag(total_size_bytes) OVER w)::float8 / NULLIF(lag(total_size_bytes) OVER w, 0) * 100, 0),
       'stable', database_count
FROM instance_size_stats WHERE collected_date > current_date - 30
WINDOW w AS (PARTITION BY instance_id ORDER BY collected_date);

INSERT INTO instance_size_aggregations (instance_id, period_type, period_start, period_end, avg_bytes,
    max_bytes, min_bytes, sample_count, change_bytes, change_percent, trend, database_count)
SELECT instance_id, 'weekly', wk, wk + 6, avg_b, max_b, min_b, n,
       avg_b - COALESCE(lag(avg_b) OVER w, avg_b),
       COALESCE((avg_b - lag(avg_b) OVER w)::float8 / NULLIF(lag(avg_b) OVER w, 0) * 100, 0),
       CASE WHEN (avg_b - lag(avg_b) OVER w)::float8 / NULLIF(lag(avg_b) OVER w, 0) > 0.05 THEN 'growing' ELSE 'stable' END,
       dbs
FROM (SELECT instance_id, date_trunc('week', collected_date)::date AS wk, round(avg(total_size_bytes))::bigint AS avg_b,
             max(total_size_bytes) AS max_b, min(total_size_bytes) AS min_b, count(*)::int AS n, max(database_count) AS dbs
      FROM instance_size_stats WHERE collected_date > current_date - 120 GROUP BY 1, 2) s
WINDOW w AS (PARTITION BY instance_id ORDER BY wk);

INSERT INTO database_size_aggregations (instance_id, database_name, period_type, period_start, period_end,
    avg_bytes, max_bytes, min_bytes, sample_count, change_bytes, change_percent, trend)
SELECT instance_id, database_name, 'weekly', wk, wk + 6, avg_b, max_b, min_b, n,
       avg_b - COALESCE(lag(avg_b) OVER w, avg_b),
       COALESCE((avg_b - lag(avg_b) OVER w)::float8 / NULLIF(lag(avg_b) OVER w, 0) * 100, 0),
       'stable'
FROM (SELECT instance_id, database_name, date_trunc('week', collected_date)::date AS wk,
             round(avg(size_bytes))::bigint AS avg_b, max(size_bytes) AS max_b, min(size_bytes) AS min_b, count(*)::int AS n
      FROM database_size_stats WHERE collected_date > current_date - 120 GROUP BY 1, 2, 3) s
WINDOW w AS (PARTITION BY instance_id, database_name ORDER BY wk);

INSERT INTO database_size_aggregations (instance_id, database_name, period_type, period_start, period_end,
    avg_bytes, max_bytes, min_bytes, sample_count, change_bytes, change_percent, trend)
SELECT instance_id, database_name, 'daily', collected_date, collected_date, size_bytes, size_bytes, size_bytes, 1,
       size_bytes - COALESCE(lag(size_bytes) OVER w, size_bytes),
       COALESCE((size_bytes - lag(size_bytes) OVER w)::float8 / NULLIF(lag(size_bytes) OVER w, 0) * 100, 0), 'stable'
FROM database_size_stats WHERE collected_date > current_date - 30
WINDOW w AS (PARTITION BY instance_id, database_name ORDER BY collected_date);

WITH run AS (
  INSERT INTO task_runs (task_key, trigger, status, started_at, completed_at, items_total, items_succeeded, items_failed)
  VALUES ('collect_databases', 'scheduled', 'completed_with_errors', now() - interval '3 hours',
          now() - interval '3 hours' + interval '95 seconds', 26, 24, 2)
  RETURNING run_id)
INSERT INTO task_run_items (run_id, item_key, instance_id, status, started_at, completed_at, duration_ms, error)
SELECT run.run_id, 'instance:' || i.id, i.id,
       CASE WHEN i.name IN ('app-024', 'app-025') THEN 'failed' ELSE 'completed' END,
       now() - interval '3 hours', now() - interval '3 hours' + interval '2 seconds', 1200 + i.id * 10,
       CASE WHEN i.name IN ('app-024', 'app-025') THEN 'connection refused (' || i.host || ':' || i.port || ')' END
FROM run, instances i;

-- An unfinished run (older than the finished one above) for the cancel check.
WITH run AS (
  INSERT INTO task_runs (task_key, trigger, status, started_at, items_total, items_succeeded)
  VALUES ('collect_databases', 'manual', 'running', now() - interval '4 hours', 4, 1)
  RETURNING run_id)
INSERT INTO task_run_items (run_id, item_key, instance_id, status, started_at, completed_at, duration_ms)
SELECT run.run_id, 'instance:' || i.id, i.id, CASE WHEN i.name = 'app-001' THEN 'completed' ELSE 'pending' END,
       CASE WHEN i.name = 'app-001' THEN now() - interval '4 hours' END,
       CASE WHEN i.name = 'app-001' THEN now() - interval '4 hours' END,
       CASE WHEN i.name = 'app-001' THEN 900 END
FROM run, instances i WHERE i.name IN ('app-001', 'app-002', 'app-003', 'app-004');

INSERT INTO event_logs (occurred_at, level, module, message, context)
SELECT now() - make_interval(mins => g * 17), (ARRAY['INFO', 'INFO', 'WARNING', 'ERROR'])[1 + g % 4],
       (ARRAY['collect', 'capacity', 'exports', 'maintenance'])[1 + g % 4], 'seeded event ' || g, jsonb_build_object('n', g)
FROM generate_series(1, 40) g;

COMMIT;
