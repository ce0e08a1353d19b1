//! The aggregation statements, each written once for both levels (a database's sizes, an
//! instance's totals):
//!
//! - [`compute`]: periods computed from raw history (a period seen for the first time, and
//!   every daily period), as the job always did, but reading the previous period's average
//!   from its stored aggregate when there is one.
//! - [`fold`]: periods already held, advanced by the (instance, day) pairs of history not yet
//!   in them (`agg_work`): sums and counts add, min/max widen, the latest sample wins. An
//!   (instance, period) with a re-collected day is rebuilt from that instance's history
//!   instead ([`Fold::Rebuild`]), through its primary key.
//! - [`refresh_changes`]: a period whose previous period changed under it gets its change
//!   and trend again.

/// Change of the average against the previous period beyond which a trend is not stable.
const TREND_PERCENT: f64 = 5.0;

/// What one aggregation statement reads and writes: a database's or an instance's sizes.
pub struct Level {
    /// The key columns besides the period (in the stats and the aggregation tables).
    keys: &'static [&'static str],
    stats: &'static str,
    bytes: &'static str,
    pub table: &'static str,
    /// An instance's aggregate also keeps its latest database count.
    database_count: bool,
}

pub const DATABASES: Level = Level {
    keys: &["instance_id", "database_name"],
    stats: "database_size_stats",
    bytes: "size_bytes",
    table: "database_size_aggregations",
    database_count: false,
};

pub const INSTANCES: Level = Level {
    keys: &["instance_id"],
    stats: "instance_size_stats",
    bytes: "total_size_bytes",
    table: "instance_size_aggregations",
    database_count: true,
};

impl Level {
    fn aliased(&self, alias: &str) -> String {
        let keys: Vec<String> = self.keys.iter().map(|k| format!("{alias}.{k}")).collect();
        keys.join(", ")
    }
    /// `a.k1 = b.k1 AND ...`
    fn same_keys(&self, a: &str, b: &str) -> String {
        let eq: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("{a}.{k} = {b}.{k}"))
            .collect();
        eq.join(" AND ")
    }
    /// (insert column, value from `c`, update assignment) of the latest database count.
    fn count_columns(&self) -> [&'static str; 3] {
        if self.database_count {
            [
                "database_count, ",
                "c.database_count, ",
                "database_count = EXCLUDED.database_count, ",
            ]
        } else {
            [""; 3]
        }
    }
    /// The INSERT head and its ON CONFLICT tail around a `SELECT` from `c` (the new state:
    /// keys, period, sums; `avg_bytes` exact) and `p` (the previous period's exact average).
    fn upsert(&self, select_from: &str) -> String {
        let Level { table, .. } = self;
        let keys = self.keys.join(", ");
        let c_keys = self.aliased("c");
        let [insert_count, select_count, update_count] = self.count_columns();
        format!(
            "INSERT INTO {table} ({keys}, period_type, period_start, period_end, avg_bytes, max_bytes, \
                 min_bytes, sample_count, change_bytes, change_percent, trend, {insert_count}sum_bytes, \
                 last_date, calculated_at) \
             SELECT {c_keys}, c.period_type, c.period_start, c.period_end, \
                 round(c.avg_bytes)::bigint, c.max_bytes, c.min_bytes, c.sample_count::int, {}, \
                 {select_count}c.sum_bytes, c.last_date, now() \
             {select_from} \
             ON CONFLICT ({keys}, period_type, period_start) DO UPDATE SET \
                 period_end = EXCLUDED.period_end, avg_bytes = EXCLUDED.avg_bytes, max_bytes = EXCLUDED.max_bytes, \
                 min_bytes = EXCLUDED.min_bytes, sample_count = EXCLUDED.sample_count, \
                 change_bytes = EXCLUDED.change_bytes, change_percent = EXCLUDED.change_percent, \
                 trend = EXCLUDED.trend, {update_count}sum_bytes = EXCLUDED.sum_bytes, \
                 last_date = EXCLUDED.last_date, calculated_at = EXCLUDED.calculated_at",
            change_columns("c.avg_bytes", "p.avg_bytes")
        )
    }
}

// Every read of an aggregation table also names its periods as constant arrays: with nested
// loops off, that is what lets the (period_type, period_start) index cut the table down to
// those periods instead of a hash join over the whole table, which grows every night.

/// The exact average of a stored aggregate (what `avg()` over its samples gives); rows
/// written before sums were kept fall back to the rounded one.
fn exact_avg(alias: &str) -> String {
    format!(
        "COALESCE({alias}.sum_bytes::numeric / NULLIF({alias}.sample_count, 0), {alias}.avg_bytes)"
    )
}

/// `change_bytes, change_percent, trend` from the current and previous exact averages.
fn changes(cur: &str, prev: &str) -> [String; 3] {
    [
        format!("COALESCE(round({cur} - {prev}), 0)::bigint"),
        format!("CASE WHEN {prev} > 0 THEN ({cur} - {prev}) / {prev} * 100 ELSE 0 END::float8"),
        format!(
            "CASE WHEN {prev} > 0 AND ({cur} - {prev}) / {prev} * 100 > {TREND_PERCENT} THEN 'growing' \
                  WHEN {prev} > 0 AND ({cur} - {prev}) / {prev} * 100 < -{TREND_PERCENT} THEN 'shrinking' \
                  ELSE 'stable' END"
        ),
    ]
}

fn change_columns(cur: &str, prev: &str) -> String {
    changes(cur, prev).join(", ")
}

/// Periods computed from raw history. $1..$6: period type, start, end, previous start and
/// end, whether the previous period's aggregates are held (else its average is read from
/// history too); $7..$8: the dates of history read (no sample after the run's date).
pub fn compute(level: &Level) -> String {
    let Level {
        stats,
        bytes,
        table,
        ..
    } = level;
    let s_keys = level.aliased("s");
    let a_keys = level.aliased("a");
    let (stats_count, cur_count) = if level.database_count {
        (
            ", s.database_count",
            ", (array_agg(s.database_count ORDER BY s.collected_date DESC))[1] AS database_count",
        )
    } else {
        ("", "")
    };
    let keys = level.keys.join(", ");
    let select_from =
        format!("FROM cur c LEFT JOIN prev p USING ({keys}, period_type, period_start)");
    format!(
        "WITH periods AS (SELECT * FROM unnest($1::text[], $2::date[], $3::date[], $4::date[], \
             $5::date[], $6::bool[]) AS p(period_type, period_start, period_end, prev_start, prev_end, prev_held)), \
         stats AS (SELECT {s_keys}, s.collected_date, s.{bytes}{stats_count} \
           FROM {stats} s JOIN instances i ON i.id = s.instance_id \
           WHERE s.collected_date BETWEEN $7 AND $8 AND i.is_active AND i.deleted_at IS NULL), \
         cur AS (SELECT {s_keys}, ps.period_type, ps.period_start, ps.period_end, \
             avg(s.{bytes}) AS avg_bytes, sum(s.{bytes})::bigint AS sum_bytes, max(s.{bytes}) AS max_bytes, \
             min(s.{bytes}) AS min_bytes, count(*) AS sample_count, max(s.collected_date) AS last_date{cur_count} \
           FROM periods ps JOIN stats s ON s.collected_date BETWEEN ps.period_start AND ps.period_end \
           GROUP BY {s_keys}, ps.period_type, ps.period_start, ps.period_end), \
         prev AS (SELECT {s_keys}, ps.period_type, ps.period_start, avg(s.{bytes}) AS avg_bytes \
           FROM periods ps JOIN stats s ON s.collected_date BETWEEN ps.prev_start AND ps.prev_end \
           WHERE NOT ps.prev_held GROUP BY {s_keys}, ps.period_type, ps.period_start \
           UNION ALL SELECT {a_keys}, ps.period_type, ps.period_start, {} \
           FROM periods ps JOIN {table} a ON a.period_type = ps.period_type AND a.period_start = ps.prev_start \
             AND a.period_type = ANY($1::text[]) AND a.period_start = ANY($4::date[]) \
           WHERE ps.prev_held) \
         {}",
        exact_avg("a"),
        level.upsert(&select_from)
    )
}

/// How [`fold`] treats the pairs of `agg_work`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// New (instance, day) pairs added to the held aggregates; (instance, period)s with a
    /// re-collected day are left to `Rebuild`. $5: the days of the pairs.
    Add,
    /// (instance, period)s with a re-collected day, from all of that instance's days in the
    /// period up to the run's date ($5).
    Rebuild,
}

/// Held periods advanced by `agg_work`, in two statements: collect the new contributions per
/// (key, period) into `agg_new` ($1..$4: type, start, end, previous start; $5 as in [`Fold`]),
/// then merge them into the aggregates ($1..$6: type, start, end, previous start and end,
/// whether the previous period is held; `raw_prev`: history $7..=$8 of previous periods not
/// held).
pub fn fold(level: &Level, mode: Fold, raw_prev: bool) -> [String; 2] {
    let Level { stats, bytes, .. } = level;
    let table = level.table;
    let s_keys = level.aliased("s");
    let n_keys = level.aliased("n");
    let a_keys = level.aliased("a");
    let count = if level.database_count {
        ", (array_agg(s.database_count ORDER BY s.collected_date DESC))[1] AS database_count"
    } else {
        ""
    };
    // The days' rows on their own first: read by the date index, whatever the join.
    let day_count = if level.database_count {
        ", s.database_count"
    } else {
        ""
    };
    let rebuilt = "rebuilt AS (SELECT DISTINCT w.instance_id, ps.period_type, ps.period_start \
        FROM agg_work w JOIN periods ps ON w.collected_date BETWEEN ps.period_start AND ps.period_end \
        WHERE w.changed)";
    let source = match mode {
        Fold::Add => format!(
            "pairs AS (SELECT w.instance_id, w.collected_date, ps.period_type, ps.period_start \
               FROM agg_work w JOIN periods ps ON w.collected_date BETWEEN ps.period_start AND ps.period_end \
               WHERE NOT EXISTS (SELECT 1 FROM rebuilt r WHERE r.instance_id = w.instance_id \
                 AND r.period_type = ps.period_type AND r.period_start = ps.period_start)), \
             day AS MATERIALIZED (SELECT {s_keys}, s.collected_date, s.{bytes}{day_count} FROM {stats} s \
               WHERE s.collected_date = ANY($5::date[])), \
             new AS (SELECT {s_keys}, pr.period_type, pr.period_start, \
                 sum(s.{bytes})::bigint AS sum_bytes, count(*) AS n, max(s.{bytes}) AS max_bytes, \
                 min(s.{bytes}) AS min_bytes, max(s.collected_date) AS last_date{count} \
               FROM pairs pr JOIN day s ON s.instance_id = pr.instance_id AND s.collected_date = pr.collected_date \
               GROUP BY {s_keys}, pr.period_type, pr.period_start)"
        ),
        Fold::Rebuild => format!(
            "new AS (SELECT {s_keys}, r.period_type, r.period_start, \
                 sum(s.{bytes})::bigint AS sum_bytes, count(*) AS n, max(s.{bytes}) AS max_bytes, \
                 min(s.{bytes}) AS min_bytes, max(s.collected_date) AS last_date{count} \
               FROM rebuilt r JOIN periods ps USING (period_type, period_start) \
               JOIN {stats} s ON s.instance_id = r.instance_id \
                 AND s.collected_date BETWEEN ps.period_start AND LEAST(ps.period_end, $5::date) \
               GROUP BY {s_keys}, r.period_type, r.period_start)"
        ),
    };
    // Added pairs merge with the held row; a rebuilt (instance, period) replaces it.
    let (held, merged) = match mode {
        Fold::Add => (
            format!(
                "LEFT JOIN {table} a ON {} AND a.period_type = n.period_type AND a.period_start = n.period_start \
                 AND a.period_type = ANY($1::text[]) AND a.period_start = ANY($2::date[])",
                level.same_keys("a", "n")
            ),
            (
                "COALESCE(a.sum_bytes, 0) + n.sum_bytes",
                "COALESCE(a.sample_count, 0) + n.n",
                "GREATEST(a.max_bytes, n.max_bytes)",
                "LEAST(a.min_bytes, n.min_bytes)",
                "GREATEST(a.last_date, n.last_date)",
                "CASE WHEN a.last_date IS NULL OR n.last_date >= a.last_date THEN n.database_count ELSE a.database_count END",
            ),
        ),
        Fold::Rebuild => (
            String::new(),
            (
                "n.sum_bytes",
                "n.n",
                "n.max_bytes",
                "n.min_bytes",
                "n.last_date",
                "n.database_count",
            ),
        ),
    };
    let (sum, n, max, min, last, db_count) = merged;
    let merged_count = if level.database_count {
        format!(", {db_count} AS database_count")
    } else {
        String::new()
    };
    // The previous period's average: held, or (a period never computed, `raw_prev`: history
    // $7..=$8) from the history of the instances written.
    let raw = if raw_prev {
        format!(
            "UNION ALL SELECT {s_keys}, ps.period_type, ps.prev_start, avg(s.{bytes}) \
             FROM periods ps JOIN {stats} s ON s.collected_date BETWEEN ps.prev_start AND ps.prev_end \
             WHERE NOT ps.prev_held AND s.collected_date BETWEEN $7 AND $8 \
               AND s.instance_id IN (SELECT instance_id FROM agg_new) \
             GROUP BY {s_keys}, ps.period_type, ps.prev_start"
        )
    } else {
        String::new()
    };
    let select_from = format!(
        "FROM (SELECT m.*, m.sum_bytes::numeric / m.sample_count AS avg_bytes FROM merged m) c \
         LEFT JOIN (SELECT {a_keys}, a.period_type, a.period_start, {} AS avg_bytes \
             FROM periods ps JOIN {table} a ON a.period_type = ps.period_type AND a.period_start = ps.prev_start \
             AND a.period_type = ANY($1::text[]) AND a.period_start = ANY($4::date[]) \
             WHERE ps.prev_held {raw}) p \
           ON {} AND p.period_type = c.period_type AND p.period_start = c.prev_start",
        exact_avg("a"),
        level.same_keys("p", "c")
    );
    let merge = format!(
        "WITH periods AS (SELECT * FROM unnest($1::text[], $2::date[], $3::date[], $4::date[], \
             $5::date[], $6::bool[]) AS p(period_type, period_start, period_end, prev_start, prev_end, prev_held)), \
         merged AS (SELECT {n_keys}, n.period_type, n.period_start, ps.period_end, ps.prev_start, \
             {sum} AS sum_bytes, {n} AS sample_count, {max} AS max_bytes, {min} AS min_bytes, \
             {last} AS last_date{merged_count} \
           FROM agg_new n JOIN periods ps USING (period_type, period_start) {held}) \
         {}",
        level.upsert(&select_from)
    );
    let columns = new_columns(level);
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let names = names.join(", ");
    let collect = format!(
        "INSERT INTO agg_new ({names}) \
         WITH periods AS (SELECT * FROM unnest($1::text[], $2::date[], $3::date[], $4::date[]) \
             AS p(period_type, period_start, period_end, prev_start)), \
         {rebuilt}, {source} SELECT {names} FROM new"
    );
    [collect, merge]
}

/// The columns of `agg_new`: one level's new contributions per (key, period).
fn new_columns(level: &Level) -> Vec<(&'static str, &'static str)> {
    let mut cols = vec![("instance_id", "bigint")];
    if !level.database_count {
        cols.push(("database_name", "text"));
    }
    cols.extend([
        ("period_type", "text"),
        ("period_start", "date"),
        ("sum_bytes", "bigint"),
        ("n", "bigint"),
        ("max_bytes", "bigint"),
        ("min_bytes", "bigint"),
        ("last_date", "date"),
    ]);
    if level.database_count {
        cols.push(("database_count", "int"));
    }
    cols
}

/// A fresh `agg_new` for one level (dropped at commit). Its statistics (ANALYZE after the
/// collect) are what lets the merge join on whole keys.
pub fn new_table(level: &Level) -> String {
    let cols: Vec<String> = new_columns(level)
        .iter()
        .map(|(n, t)| format!("{n} {t}"))
        .collect();
    format!(
        "DROP TABLE IF EXISTS agg_new; CREATE TEMP TABLE agg_new ({}) ON COMMIT DROP",
        cols.join(", ")
    )
}

/// Change and trend again for the rows of periods ($1, $2; previous start $3) whose previous
/// period's row was rewritten in this transaction (`calculated_at = now()`) and they were not.
pub fn refresh_changes(level: &Level) -> String {
    let table = level.table;
    let c_keys = level.aliased("c");
    format!(
        "WITH periods AS (SELECT * FROM unnest($1::text[], $2::date[], $3::date[]) \
             AS p(period_type, period_start, prev_start)), \
         x AS (SELECT {c_keys}, c.period_type, c.period_start, {} \
           FROM periods ps JOIN {table} c ON c.period_type = ps.period_type AND c.period_start = ps.period_start \
             AND c.period_type = ANY($1::text[]) AND c.period_start = ANY($2::date[]) \
           JOIN {table} p ON {} AND p.period_type = ps.period_type AND p.period_start = ps.prev_start \
             AND p.period_type = ANY($1::text[]) AND p.period_start = ANY($3::date[]) \
           WHERE p.calculated_at = now() AND c.calculated_at <> now()) \
         UPDATE {table} t SET change_bytes = x.change_bytes, change_percent = x.change_percent, \
             trend = x.trend, calculated_at = now() \
         FROM x WHERE {} AND t.period_type = x.period_type AND t.period_start = x.period_start",
        change_columns_named(&exact_avg("c"), &exact_avg("p")),
        level.same_keys("p", "c"),
        level.same_keys("t", "x"),
    )
}

fn change_columns_named(cur: &str, prev: &str) -> String {
    let [bytes, percent, trend] = changes(cur, prev);
    format!("{bytes} AS change_bytes, {percent} AS change_percent, {trend} AS trend")
}

pub const WORK_TABLE: &str =
    "CREATE TEMP TABLE agg_work (instance_id bigint, collected_date date, \
    collected_at timestamptz, changed bool) ON COMMIT DROP";

/// The (instance, day) pairs of history in `$1..=$2` that the aggregates do not hold yet:
/// never folded, or re-collected since (`changed`).
pub const WORK: &str = "INSERT INTO agg_work \
    SELECT s.instance_id, s.collected_date, s.collected_at, s.aggregated_at IS NOT NULL AS changed \
    FROM instance_size_stats s JOIN instances i ON i.id = s.instance_id \
    WHERE s.collected_date BETWEEN $1 AND $2 AND i.is_active AND i.deleted_at IS NULL \
      AND s.aggregated_at IS DISTINCT FROM s.collected_at";

/// The pairs are held now (at the collected_at they were read at: a collection committing
/// meanwhile leaves its row to the next run).
pub const MARK: &str = "UPDATE instance_size_stats s SET aggregated_at = w.collected_at \
    FROM agg_work w WHERE s.instance_id = w.instance_id AND s.collected_date = w.collected_date \
    AND s.collected_date BETWEEN $1 AND $2";

/// Which of the periods ($1, $2) have aggregates held.
pub const HELD: &str = "SELECT p.period_type, p.period_start FROM aggregation_periods a \
    JOIN unnest($1::text[], $2::date[]) AS p(period_type, period_start) USING (period_type, period_start)";

pub const REGISTER: &str =
    "INSERT INTO aggregation_periods (period_type, period_start, period_end) \
    SELECT * FROM unnest($1::text[], $2::date[], $3::date[]) ON CONFLICT DO NOTHING";
