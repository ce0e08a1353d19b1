//! What can be exported: each kind validates its filters like the list it mirrors, builds one
//! parameterised query, and turns each row into one CSV record.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::cells::CsvBuffer;
use crate::values::DateRange;
use crate::web::sql::Sql;
use crate::web::{ApiError, Query};

crate::text_enum! {
    /// What can be exported.
    pub enum Kind {
        DatabaseLedger = "database_ledger", Instances = "instances",
        DatabaseSizes = "database_sizes", DatabaseTables = "database_tables",
    }
}

/// Tag names of each instance joined by `;`, computed once per instance (not per database).
const INSTANCE_TAGS: &str =
    "LEFT JOIN LATERAL (SELECT string_agg(t.name, ';' ORDER BY t.name) AS tags \
    FROM instance_tags it JOIN tags t ON t.id = it.tag_id WHERE it.instance_id = i.id) tg ON true";

/// The JSON a filter takes: its query parameter's text, or for a typed one also the JSON
/// value (`5`, `true`); `tag` also a list of names. `null` is no filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterJson {
    Text,
    Integer,
    Boolean,
    TextList,
}

fn filter_json(name: &str) -> FilterJson {
    match name {
        "instance_id" | "min_size_bytes" => FilterJson::Integer,
        "stale" | "include_deleted" => FilterJson::Boolean,
        "tag" => FilterJson::TextList,
        _ => FilterJson::Text,
    }
}

/// Refuses a filter of another JSON type (400 naming `filters.<name>`), so `{"search": 5}`
/// is not read as the text "5".
pub fn check_filter_types(filters: &serde_json::Value) -> Result<(), ApiError> {
    use serde_json::Value;
    let Some(obj) = filters.as_object() else {
        return Err(ApiError::validation("filters", "filters must be an object"));
    };
    for (name, v) in obj {
        let ok = match (filter_json(name), v) {
            (_, Value::Null | Value::String(_)) => true,
            (FilterJson::Integer, Value::Number(n)) => n.is_i64(),
            (FilterJson::Boolean, Value::Bool(_)) => true,
            (FilterJson::TextList, Value::Array(items)) => items.iter().all(Value::is_string),
            _ => false,
        };
        if !ok {
            let what = match filter_json(name) {
                FilterJson::Text => "a string",
                FilterJson::Integer => "an integer",
                FilterJson::Boolean => "a boolean",
                FilterJson::TextList => "a string or a list of strings",
            };
            return Err(ApiError::validation(
                &format!("filters.{name}"),
                format!("filter {name} must be {what}"),
            ));
        }
    }
    Ok(())
}

impl Kind {
    /// The filters of the list this kind exports (paging and sorting do not apply).
    fn filter_names(self) -> &'static [&'static str] {
        match self {
            Kind::DatabaseLedger => &[
                "search",
                "db_type",
                "instance_id",
                "tag",
                "tag_mode",
                "min_size_bytes",
                "stale",
            ],
            Kind::Instances => &[
                "search",
                "db_type",
                "status",
                "include_deleted",
                "tag",
                "tag_mode",
            ],
            Kind::DatabaseSizes => &["instance_id", "database_name", "start_date", "end_date"],
            Kind::DatabaseTables => &[
                "instance_id",
                "database_name",
                "schema",
                "db_type",
                "tag",
                "tag_mode",
            ],
        }
    }

    pub const fn header(self) -> &'static [&'static str] {
        match self {
            Kind::DatabaseLedger => &[
                "id",
                "instance_id",
                "instance_name",
                "host",
                "port",
                "db_type",
                "database_name",
                "size_bytes",
                "size_mb",
                "collected_at",
                "collected_date",
                "growth_bytes_per_day",
                "sync_status",
                "tags",
            ],
            Kind::Instances => &[
                "id",
                "name",
                "db_type",
                "host",
                "port",
                "database_name",
                "description",
                "status",
                "version",
                "tags",
                "last_collected_at",
                "created_at",
                "updated_at",
                "deleted_at",
            ],
            Kind::DatabaseSizes => &[
                "instance_id",
                "instance_name",
                "host",
                "db_type",
                "database_name",
                "collected_date",
                "size_bytes",
                "size_mb",
                "data_size_bytes",
                "log_size_bytes",
                "collected_at",
            ],
            Kind::DatabaseTables => &[
                "id",
                "instance_id",
                "instance_name",
                "db_type",
                "database_name",
                "schema_name",
                "table_name",
                "kind",
                "parent_name",
                "engine",
                "total_bytes",
                "data_bytes",
                "index_bytes",
                "toast_bytes",
                "free_bytes",
                "row_estimate",
                "growth_7d_bytes",
                "growth_30d_bytes",
                "collected_at",
            ],
        }
    }

    /// Validates the filters exactly as the list does and builds the export's query. Errors
    /// are the list's 400s, with the field named `filters.<name>`.
    pub fn select(self, q: &Query) -> Result<Sql, ApiError> {
        let allowed = self.filter_names();
        if let Some((name, _)) = q.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            return Err(ApiError::validation(
                &format!("filters.{name}"),
                format!(
                    "unknown filter {name:?} for a {} export; allowed: {}",
                    self.as_str(),
                    allowed.join(", ")
                ),
            ));
        }
        let prefix_field = |mut e: ApiError| {
            if let Some(f) = &e.field {
                e.field = Some(format!("filters.{f}"));
            }
            e
        };
        let mut sql = Sql::default();
        match self {
            Kind::DatabaseLedger => {
                crate::filters::ledger(q, &mut sql).map_err(prefix_field)?;
                sql.text = format!(
                    "SELECT d.id, i.id AS instance_id, i.name AS instance_name, i.host, i.port, i.db_type, \
                     d.database_name, d.latest_size_bytes, d.latest_collected_at, d.latest_collected_date, \
                     d.growth_bytes_per_day, tg.tags \
                     FROM instances i {INSTANCE_TAGS} JOIN instance_databases d ON d.instance_id = i.id"
                );
                sql.push_where();
                // Instances in name order, each one's databases from the (instance_id,
                // database_name) index: rows stream from the first one, with no big sort.
                sql.push(" ORDER BY i.name, d.database_name, d.id");
            }
            Kind::Instances => {
                crate::filters::instances(q, &mut sql).map_err(prefix_field)?;
                sql.text = format!(
                    "SELECT i.id, i.name, i.db_type, i.host, i.port, i.database_name, i.description, \
                     {} AS status, i.version, tg.tags, i.last_collected_at, i.created_at, i.updated_at, \
                     i.deleted_at FROM instances i {INSTANCE_TAGS}",
                    crate::instances::STATUS
                );
                sql.push_where();
                sql.push(" ORDER BY i.id");
            }
            Kind::DatabaseSizes => {
                let range = SizeRange::parse(q).map_err(prefix_field)?;
                let (start, end) = (sql.bind(range.dates.start), sql.bind(range.dates.end));
                sql.and(format!("s.collected_date BETWEEN {start} AND {end}"))
                    .eq("s.instance_id", range.instance_id)
                    .eq("s.database_name", range.database_name);
                sql.text = "SELECT s.instance_id, i.name AS instance_name, i.host, i.db_type, s.database_name, \
                     s.collected_date, s.size_bytes, s.data_size_bytes, s.log_size_bytes, s.collected_at \
                     FROM database_size_stats s JOIN instances i ON i.id = s.instance_id"
                    .to_string();
                sql.push_where();
                sql.push(" ORDER BY i.name, s.database_name, s.collected_date");
            }
            Kind::DatabaseTables => {
                crate::filters::tables(q, &mut sql).map_err(prefix_field)?;
                sql.text = "SELECT t.id, i.id AS instance_id, i.name AS instance_name, i.db_type, t.database_name, \
                     t.schema_name, t.table_name, t.kind, t.parent_name, t.engine, t.total_bytes, t.data_bytes, \
                     t.index_bytes, t.toast_bytes, t.free_bytes, t.row_estimate, t.growth_7d_bytes, \
                     t.growth_30d_bytes, t.collected_at \
                     FROM instance_tables t JOIN instances i ON i.id = t.instance_id"
                    .to_string();
                sql.push_where();
                // The unique (instance, database, schema, table) index gives the order.
                sql.push(" ORDER BY t.instance_id, t.database_name, t.schema_name, t.table_name");
            }
        }
        Ok(sql)
    }

    /// One CSV record from one row of [`Kind::select`]'s query. `now` fixes `sync_status`
    /// for the whole file.
    pub fn write_row(
        self,
        row: &Row,
        out: &mut CsvBuffer,
        now: DateTime<Utc>,
    ) -> Result<(), RowError> {
        use Cell::*;
        match self {
            Kind::DatabaseLedger => {
                let size: Option<i64> = row.try_get(7)?;
                let collected_at: Option<DateTime<Utc>> = row.try_get(8)?;
                cells(row, out, 0, &[Int, Int, Text, Text, Port, Text, Text])?;
                out.opt_int(size)?;
                out.mb(size)?;
                out.time(collected_at)?;
                cells(row, out, 9, &[OptDate, OptInt])?;
                out.text(crate::ledger::sync_status(collected_at, now))?;
                cells(row, out, 11, &[OptText])?;
            }
            Kind::Instances => {
                let columns = [
                    Int, Text, Text, Text, Port, OptText, OptText, Text, OptText, OptText, OptTime,
                    Time, Time, OptTime,
                ];
                cells(row, out, 0, &columns)?;
            }
            Kind::DatabaseSizes => {
                let size: i64 = row.try_get(6)?;
                cells(row, out, 0, &[Int, Text, Text, Text, Text, Date])?;
                out.int(size)?;
                out.mb(Some(size))?;
                cells(row, out, 7, &[OptInt, OptInt, Time])?;
            }
            Kind::DatabaseTables => {
                let columns = [
                    Int, Int, Text, Text, Text, Text, Text, Text, OptText, OptText, Int, Int, Int,
                    OptInt, OptInt, OptInt, OptInt, OptInt, Time,
                ];
                cells(row, out, 0, &columns)?;
            }
        }
        out.end_row()?;
        Ok(())
    }
}

/// How one column of a row becomes one CSV cell.
#[derive(Clone, Copy)]
enum Cell {
    Int,
    OptInt,
    /// A port (`integer` column).
    Port,
    Text,
    OptText,
    Time,
    OptTime,
    Date,
    OptDate,
}

/// Writes `columns` from the row's columns `first`, `first + 1`, ...
fn cells(row: &Row, out: &mut CsvBuffer, first: usize, columns: &[Cell]) -> Result<(), RowError> {
    for (i, cell) in columns.iter().enumerate() {
        let i = first + i;
        match cell {
            Cell::Int => out.int(row.try_get(i)?)?,
            Cell::OptInt => out.opt_int(row.try_get(i)?)?,
            Cell::Port => out.int(i64::from(row.try_get::<_, i32>(i)?))?,
            Cell::Text => out.text(row.try_get(i)?)?,
            Cell::OptText => out.opt_text(row.try_get(i)?)?,
            Cell::Time => out.time(Some(row.try_get(i)?))?,
            Cell::OptTime => out.time(row.try_get(i)?)?,
            Cell::Date => out.date(Some(row.try_get(i)?))?,
            Cell::OptDate => out.date(row.try_get(i)?)?,
        }
    }
    Ok(())
}

/// A row could not be decoded or written (both mean a bug or a schema change, not bad input).
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("decoding a row: {0}")]
    Decode(#[from] tokio_postgres::Error),
    #[error("writing CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// The filters of a `database_sizes` export: one instance's or all history, in a required
/// [`DateRange`].
#[derive(Debug)]
pub struct SizeRange {
    pub instance_id: Option<i64>,
    pub database_name: Option<String>,
    pub dates: DateRange,
}

impl SizeRange {
    pub fn parse(q: &Query) -> Result<SizeRange, ApiError> {
        let start = q
            .date("start_date")?
            .ok_or_else(|| ApiError::validation("start_date", "start_date is required"))?;
        let end = q
            .date("end_date")?
            .ok_or_else(|| ApiError::validation("end_date", "end_date is required"))?;
        let dates = DateRange::new(start, end)?;
        let instance_id = q.id("instance_id")?;
        Ok(SizeRange {
            instance_id,
            database_name: q.text("database_name").map(str::to_string),
            dates,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filters(v: serde_json::Value) -> Query {
        Query::from_json(&v).unwrap()
    }

    fn rejected_field(kind: Kind, v: serde_json::Value) -> Option<String> {
        match kind.select(&filters(v)) {
            Err(e) => e.field,
            Ok(sql) => panic!("accepted: {}", sql.text),
        }
    }

    #[test]
    fn filters_are_validated_like_the_lists() {
        let field = |k, v| rejected_field(k, v);
        assert_eq!(
            field(Kind::DatabaseLedger, json!({"min_size_bytes": -1})).as_deref(),
            Some("filters.min_size_bytes")
        );
        assert_eq!(
            field(Kind::DatabaseLedger, json!({"sort": "size"})).as_deref(),
            Some("filters.sort")
        );
        assert_eq!(
            field(Kind::Instances, json!({"status": "gone"})).as_deref(),
            Some("filters.status")
        );
        let ok = Kind::DatabaseLedger
            .select(&filters(
                json!({"tag": ["a", "b"], "tag_mode": "all", "db_type": "pg"}),
            ))
            .unwrap();
        assert_eq!(ok.params().len(), 2);
    }

    #[test]
    fn size_history_needs_a_range_of_at_most_400_days() {
        assert_eq!(
            rejected_field(Kind::DatabaseSizes, json!({})).as_deref(),
            Some("filters.start_date")
        );
        assert_eq!(
            rejected_field(
                Kind::DatabaseSizes,
                json!({"start_date": "2025-01-01", "end_date": "2026-02-05"})
            )
            .as_deref(),
            Some("filters.end_date")
        );
        assert!(Kind::DatabaseSizes
            .select(&filters(json!({
                "instance_id": 3, "start_date": "2025-01-01", "end_date": "2026-02-04"
            })))
            .is_ok());
    }
}
