//! List parameters of api.md: `page`, `limit` (1..200), `include_total`, keyset `cursor`,
//! whitelisted `sort`/`order`. `has_next` comes from fetching `limit + 1` rows, never a count.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;

use super::sql::Sql;
use super::{ApiError, Query};

pub const MAX_LIMIT: i64 = 200;
pub const DEFAULT_LIMIT: i64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    pub fn as_sql(self) -> &'static str {
        match self {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

/// One sortable field: its public name, a non-null SQL expression and that expression's type.
#[derive(Debug)]
pub struct SortField {
    pub name: &'static str,
    pub expr: &'static str,
    pub sql_type: &'static str,
    pub default_order: Order,
}

/// The sorts a list allows; the first is the default.
pub struct SortSpec {
    pub fields: &'static [SortField],
    /// Unique, non-null tie breaker (e.g. `i.id`), always in the sort's direction.
    pub id_expr: &'static str,
}

#[derive(Debug)]
pub struct ListParams {
    /// `None` when continuing from a cursor.
    pub page: Option<i64>,
    pub limit: i64,
    pub include_total: bool,
    pub sort: &'static SortField,
    pub order: Order,
    id_expr: &'static str,
    cursor: Option<Cursor>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    s: String,
    o: String,
    v: String,
    id: i64,
}

impl ListParams {
    pub fn parse(q: &Query, spec: &'static SortSpec) -> Result<Self, ApiError> {
        let limit = match q.text("limit") {
            None => DEFAULT_LIMIT,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    ApiError::validation(
                        "limit",
                        format!("limit must be between 1 and {MAX_LIMIT}"),
                    )
                })?,
        };
        let page = match q.text("page") {
            None => None,
            Some(v) => Some(
                v.parse::<i64>()
                    .ok()
                    .filter(|p| *p >= 1 && *p <= 1_000_000_000)
                    .ok_or_else(|| ApiError::validation("page", "page must be an integer >= 1"))?,
            ),
        };
        let sort = match q.text("sort") {
            None => &spec.fields[0],
            Some(s) => spec.fields.iter().find(|f| f.name == s).ok_or_else(|| {
                let names: Vec<&str> = spec.fields.iter().map(|f| f.name).collect();
                ApiError::validation("sort", format!("sort must be one of: {}", names.join(", ")))
            })?,
        };
        let order = match q.text("order") {
            None => sort.default_order,
            Some(o) if o.eq_ignore_ascii_case("asc") => Order::Asc,
            Some(o) if o.eq_ignore_ascii_case("desc") => Order::Desc,
            Some(_) => return Err(ApiError::validation("order", "order must be asc or desc")),
        };
        let cursor = match q.text("cursor") {
            None => None,
            Some(raw) => {
                if page.is_some() {
                    return Err(ApiError::validation(
                        "page",
                        "page is not allowed together with cursor",
                    ));
                }
                let c: Cursor = URL_SAFE_NO_PAD
                    .decode(raw)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .ok_or_else(|| ApiError::validation("cursor", "cursor is not valid"))?;
                if c.s != sort.name || c.o != order.as_str() {
                    return Err(ApiError::validation(
                        "cursor",
                        "cursor was made for another sort or order; pass the same sort and order",
                    ));
                }
                Some(c)
            }
        };
        Ok(ListParams {
            page: if cursor.is_some() {
                None
            } else {
                Some(page.unwrap_or(1))
            },
            limit,
            include_total: q.bool("include_total")?,
            sort,
            order,
            id_expr: spec.id_expr,
            cursor,
        })
    }

    /// Select-list fragment that the page needs to build the next cursor.
    pub fn key_select(&self) -> String {
        format!(
            "({})::text AS sort_key, {} AS sort_id",
            self.sort.expr, self.id_expr
        )
    }

    /// Adds the keyset condition when continuing from a cursor.
    pub fn keyset_condition(&self, sql: &mut Sql, conds: &mut Vec<String>) {
        if let Some(c) = &self.cursor {
            let op = match self.order {
                Order::Asc => ">",
                Order::Desc => "<",
            };
            let v = sql.bind(c.v.clone());
            let id = sql.bind(c.id);
            conds.push(format!(
                "({}, {}) {op} ({v}::text::{}, {id}::bigint)",
                self.sort.expr, self.id_expr, self.sort.sql_type
            ));
        }
    }

    /// `ORDER BY ... LIMIT limit+1 OFFSET ...`
    pub fn order_and_limit(&self) -> String {
        let dir = self.order.as_sql();
        let offset = self.page.map(|p| (p - 1) * self.limit).unwrap_or(0);
        format!(
            " ORDER BY {} {dir}, {} {dir} LIMIT {} OFFSET {offset}",
            self.sort.expr,
            self.id_expr,
            self.limit + 1
        )
    }

    /// Runs a list: the optional count (same filters, no keyset), then one page by offset or
    /// cursor. `sql` holds the filters' parameters; `from` is e.g. `instances i`.
    pub async fn fetch<T: Serialize>(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        mut sql: Sql,
        mut conds: Vec<String>,
        columns: &str,
        from: &str,
        map: impl Fn(&Row) -> T,
    ) -> Result<Page<T>, ApiError> {
        let total = if self.include_total {
            let mut count = format!("SELECT count(*) FROM {from}");
            if !conds.is_empty() {
                count.push_str(" WHERE ");
                count.push_str(&conds.join(" AND "));
            }
            Some(
                client
                    .query_one(&count, &sql.params())
                    .await?
                    .get::<_, i64>(0),
            )
        } else {
            None
        };
        self.keyset_condition(&mut sql, &mut conds);
        sql.text = format!("SELECT {columns}, {} FROM {from}", self.key_select());
        sql.push_where(&conds);
        sql.push(&self.order_and_limit());
        let rows = client.query(&sql.text, &sql.params()).await?;
        Ok(self.finish(rows, total, map))
    }

    /// Trims the extra row, builds `has_next` and `next_cursor`.
    pub fn finish<T: Serialize>(
        &self,
        mut rows: Vec<Row>,
        total: Option<i64>,
        map: impl Fn(&Row) -> T,
    ) -> Page<T> {
        let has_next = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next_cursor = if has_next {
            rows.last().map(|r| {
                let c = Cursor {
                    s: self.sort.name.to_string(),
                    o: self.order.as_str().to_string(),
                    v: r.get::<_, Option<String>>("sort_key").unwrap_or_default(),
                    id: r.get::<_, i64>("sort_id"),
                };
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap_or_default())
            })
        } else {
            None
        };
        Page {
            items: rows.iter().map(map).collect(),
            page: self.page,
            limit: self.limit,
            has_next,
            next_cursor,
            total,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: Option<i64>,
    pub limit: i64,
    pub has_next: bool,
    pub next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// Reads a `Value` for JSON responses without caring about the column type.
pub fn json_of(row: &Row, col: &str) -> Value {
    row.try_get::<_, Value>(col).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    static SPEC: SortSpec = SortSpec {
        fields: &[
            SortField {
                name: "id",
                expr: "i.id",
                sql_type: "bigint",
                default_order: Order::Desc,
            },
            SortField {
                name: "name",
                expr: "i.name",
                sql_type: "text",
                default_order: Order::Asc,
            },
        ],
        id_expr: "i.id",
    };

    fn parse(q: &str) -> Result<ListParams, ApiError> {
        ListParams::parse(&Query::parse(q), &SPEC)
    }

    #[test]
    fn limits_are_validated_not_clamped() {
        assert_eq!(
            parse("limit=0").unwrap_err().field.as_deref(),
            Some("limit")
        );
        assert_eq!(
            parse("limit=201").unwrap_err().field.as_deref(),
            Some("limit")
        );
        assert_eq!(parse("limit=abc").unwrap_err().code, "VALIDATION_ERROR");
        assert_eq!(parse("page=0").unwrap_err().field.as_deref(), Some("page"));
        assert_eq!(parse("limit=200").unwrap().limit, 200);
        let p = parse("").unwrap();
        assert_eq!(
            (p.page, p.limit, p.sort.name, p.order),
            (Some(1), 20, "id", Order::Desc)
        );
    }

    #[test]
    fn sort_and_order_whitelists() {
        assert_eq!(
            parse("sort=password").unwrap_err().field.as_deref(),
            Some("sort")
        );
        assert_eq!(
            parse("order=up").unwrap_err().field.as_deref(),
            Some("order")
        );
        assert_eq!(parse("sort=name").unwrap().order, Order::Asc);
    }

    #[test]
    fn cursor_must_match_sort_and_excludes_page() {
        let c = URL_SAFE_NO_PAD.encode(br#"{"s":"name","o":"asc","v":"x","id":3}"#);
        assert!(parse(&format!("sort=name&cursor={c}")).is_ok());
        assert_eq!(
            parse(&format!("sort=id&cursor={c}"))
                .unwrap_err()
                .field
                .as_deref(),
            Some("cursor")
        );
        assert_eq!(
            parse(&format!("sort=name&page=2&cursor={c}"))
                .unwrap_err()
                .field
                .as_deref(),
            Some("page")
        );
        assert_eq!(
            parse("cursor=garbage!").unwrap_err().field.as_deref(),
            Some("cursor")
        );
        let p = parse(&format!("sort=name&cursor={c}")).unwrap();
        let mut sql = Sql::new("");
        let mut conds = vec![];
        p.keyset_condition(&mut sql, &mut conds);
        assert_eq!(
            conds,
            vec!["(i.name, i.id) > ($1::text::text, $2::bigint)".to_string()]
        );
    }
}
