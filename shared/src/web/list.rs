//! List parameters: `page`, `limit` (1..200), `include_total`, keyset `cursor`, whitelisted
//! `sort`/`order`. `has_next` comes from fetching `limit + 1` rows, never a count.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use super::sql::Sql;
use super::{ApiError, ApiResponse, ApiResult, Query};
use crate::values::FromRow;
use crate::App;

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

impl SortField {
    /// A field sorted ascending unless the caller asks otherwise.
    pub const fn asc(name: &'static str, expr: &'static str, sql_type: &'static str) -> Self {
        SortField {
            name,
            expr,
            sql_type,
            default_order: Order::Asc,
        }
    }
    /// A field sorted descending unless the caller asks otherwise.
    pub const fn desc(name: &'static str, expr: &'static str, sql_type: &'static str) -> Self {
        SortField {
            name,
            expr,
            sql_type,
            default_order: Order::Desc,
        }
    }
}

/// A [`SortSpec`] as a table: the tie breaker, then `name order "expression" sql_type` per
/// field, the default first: `sorts! { "t.id"; name asc "t.name" text, id desc "t.id" bigint }`.
#[macro_export]
macro_rules! sorts {
    ($id:literal; $($name:ident $order:ident $expr:literal $ty:ident),+ $(,)?) => {
        $crate::web::list::SortSpec {
            fields: &[$($crate::web::list::SortField::$order(
                stringify!($name),
                $expr,
                stringify!($ty),
            )),+],
            id_expr: $id,
        }
    };
}

/// What a list selects: `columns` from `from` (a table with its alias, joins allowed).
pub struct Source<'a> {
    pub columns: &'a str,
    pub from: &'a str,
    /// Work done on the page's rows only, after it is cut: the page becomes `p` and the final
    /// statement is `SELECT p.*, {columns} FROM (page) p {joins}`, in the page's order.
    pub wrap: Option<Wrap<'a>>,
}

pub struct Wrap<'a> {
    pub columns: &'a str,
    pub joins: &'a str,
}

impl<'a> Source<'a> {
    pub fn new(columns: &'a str, from: &'a str) -> Self {
        Source {
            columns,
            from,
            wrap: None,
        }
    }
    pub fn wrapped(mut self, columns: &'a str, joins: &'a str) -> Self {
        self.wrap = Some(Wrap { columns, joins });
        self
    }
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
    /// The list's filters: conditions and their values.
    pub sql: Sql,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    s: String,
    o: String,
    v: String,
    id: i64,
}

fn bad_cursor() -> ApiError {
    ApiError::validation("cursor", "cursor is not valid")
}

/// `limit`: 1..=200, default 20; out of range is a 400, never clamped.
pub fn parse_limit(q: &Query) -> Result<i64, ApiError> {
    match q.text("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::validation("limit", format!("limit must be between 1 and {MAX_LIMIT}"))
            }),
    }
}

impl ListParams {
    pub fn parse(q: &Query, spec: &'static SortSpec) -> Result<Self, ApiError> {
        let limit = parse_limit(q)?;
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
                    .ok_or_else(bad_cursor)?;
                if c.v.chars().any(char::is_control)
                    || (sort.sql_type == "bigint" && c.v.parse::<i64>().is_err())
                    || (sort.sql_type == "float" && c.v.parse::<f64>().is_err())
                {
                    return Err(bad_cursor());
                }
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
            sql: Sql::default(),
        })
    }

    /// Select-list fragment that the page needs to build the next cursor.
    fn key_select(&self) -> String {
        format!(
            "({})::text AS sort_key, {} AS sort_id",
            self.sort.expr, self.id_expr
        )
    }

    /// A cursor that decodes but whose value is not of the sort's type (a tampered one) is a
    /// 400 on `cursor`; PostgreSQL is asked because it alone knows every type's text form.
    async fn check_cursor(
        &self,
        client: &impl deadpool_postgres::GenericClient,
    ) -> Result<(), ApiError> {
        let Some(c) = &self.cursor else {
            return Ok(());
        };
        let check = format!("SELECT $1::text::{}", self.sort.sql_type);
        match client.query_one(&check, &[&c.v]).await {
            Ok(_) => Ok(()),
            Err(e) if e.code().is_some_and(|s| s.code().starts_with("22")) => Err(bad_cursor()),
            Err(e) => Err(e.into()),
        }
    }

    /// Adds the keyset condition when continuing from a cursor.
    pub fn keyset_condition(&self, sql: &mut Sql) {
        if let Some(c) = &self.cursor {
            let op = match self.order {
                Order::Asc => ">",
                Order::Desc => "<",
            };
            let v = sql.bind(c.v.clone());
            let id = sql.bind(c.id);
            sql.and(format!(
                "({}, {}) {op} ({v}::text::{}, {id}::bigint)",
                self.sort.expr, self.id_expr, self.sort.sql_type
            ));
        }
    }

    /// `ORDER BY ... LIMIT limit+1 OFFSET ...`
    fn order_and_limit(&self) -> String {
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
    /// cursor. `sql` holds the filters' parameters; a row that does not decode is a 500.
    pub async fn fetch<T: Serialize>(
        mut self,
        client: &impl deadpool_postgres::GenericClient,
        source: Source<'_>,
        map: impl Fn(&Row) -> Result<T, ApiError>,
    ) -> Result<Page<T>, ApiError> {
        let mut sql = std::mem::take(&mut self.sql);
        let from = source.from;
        let total = if self.include_total {
            let count = format!("SELECT count(*) FROM {from}{}", sql.where_clause());
            let row = client.query_one(&count, &sql.params()).await?;
            Some(row.try_get::<_, i64>(0)?)
        } else {
            None
        };
        self.check_cursor(client).await?;
        self.keyset_condition(&mut sql);
        // A wrapped page carries its sort value so the outer statement keeps the order.
        let sort_value = match source.wrap {
            Some(_) => format!(", {} AS sort_value", self.sort.expr),
            None => String::new(),
        };
        let page = format!(
            "SELECT {}, {}{sort_value} FROM {from}{}{}",
            source.columns,
            self.key_select(),
            sql.where_clause(),
            self.order_and_limit()
        );
        sql.text = match &source.wrap {
            None => page,
            Some(w) => {
                let dir = self.order.as_sql();
                format!(
                    "SELECT p.*, {} FROM ({page}) p {} ORDER BY p.sort_value {dir}, p.sort_id {dir}",
                    w.columns, w.joins
                )
            }
        };
        let rows = client.query(&sql.text, &sql.params()).await?;
        self.finish(rows, total, map)
    }

    /// A list handler's whole answer: the page of `T`s decoded from `source`'s rows.
    pub async fn respond<T: FromRow + Serialize>(self, app: &App, source: Source<'_>) -> ApiResult {
        let client = app.db.get().await?;
        let page = self.fetch(&client, source, T::from_row).await?;
        Ok(ApiResponse::ok(page))
    }

    /// A whole list handler: `q`'s paging and sort, the conditions `filter` adds, one page of
    /// `T` from `source`.
    pub async fn filtered<T: FromRow + Serialize>(
        app: &App,
        q: &Query,
        spec: &'static SortSpec,
        source: Source<'_>,
        filter: impl FnOnce(&mut Sql),
    ) -> ApiResult {
        let mut params = ListParams::parse(q, spec)?;
        filter(&mut params.sql);
        params.respond::<T>(app, source).await
    }

    /// Trims the extra row, builds `has_next` and `next_cursor`.
    fn finish<T: Serialize>(
        &self,
        mut rows: Vec<Row>,
        total: Option<i64>,
        map: impl Fn(&Row) -> Result<T, ApiError>,
    ) -> Result<Page<T>, ApiError> {
        let has_next = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next_cursor = match rows.last() {
            Some(r) if has_next => {
                let c = Cursor {
                    s: self.sort.name.to_string(),
                    o: self.order.as_str().to_string(),
                    v: r.try_get::<_, Option<String>>("sort_key")?
                        .unwrap_or_default(),
                    id: r.try_get::<_, i64>("sort_id")?,
                };
                Some(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap_or_default()))
            }
            _ => None,
        };
        Ok(Page {
            items: rows.iter().map(map).collect::<Result<_, _>>()?,
            page: self.page,
            limit: self.limit,
            has_next,
            next_cursor,
            total,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    static SPEC: SortSpec = crate::sorts! {
        "i.id";
        id desc "i.id" bigint, name asc "i.name" text
    };

    fn parse(q: &str) -> Result<ListParams, ApiError> {
        ListParams::parse(&Query::parse(q), &SPEC)
    }

    /// The field a rejected query names.
    fn rejected(q: &str) -> Option<String> {
        parse(q).unwrap_err().field
    }

    #[test]
    fn limits_are_validated_not_clamped() {
        assert_eq!(rejected("limit=0").as_deref(), Some("limit"));
        assert_eq!(rejected("limit=201").as_deref(), Some("limit"));
        assert_eq!(parse("limit=abc").unwrap_err().code, "VALIDATION_ERROR");
        assert_eq!(rejected("page=0").as_deref(), Some("page"));
        assert_eq!(parse("limit=200").unwrap().limit, 200);
        let p = parse("").unwrap();
        assert_eq!(
            (p.page, p.limit, p.sort.name, p.order),
            (Some(1), 20, "id", Order::Desc)
        );
    }

    #[test]
    fn sort_and_order_whitelists() {
        assert_eq!(rejected("sort=password").as_deref(), Some("sort"));
        assert_eq!(rejected("order=up").as_deref(), Some("order"));
        assert_eq!(parse("sort=name").unwrap().order, Order::Asc);
    }

    #[test]
    fn cursor_must_match_sort_and_excludes_page() {
        let c = URL_SAFE_NO_PAD.encode(br#"{"s":"name","o":"asc","v":"x","id":3}"#);
        assert!(parse(&format!("sort=name&cursor={c}")).is_ok());
        assert_eq!(
            rejected(&format!("sort=id&cursor={c}")).as_deref(),
            Some("cursor")
        );
        assert_eq!(
            rejected(&format!("sort=name&page=2&cursor={c}")).as_deref(),
            Some("page")
        );
        assert_eq!(rejected("cursor=garbage!").as_deref(), Some("cursor"));
        // Decodes, but the value is not the sort's type or holds a NUL.
        for (sort, tampered) in [
            ("id", r#"{"s":"id","o":"desc","v":"x","id":3}"#),
            (
                "id",
                r#"{"s":"id","o":"desc","v":"99999999999999999999","id":3}"#,
            ),
            ("name", r#"{"s":"name","o":"asc","v":"a\u0000","id":3}"#),
        ] {
            let c = URL_SAFE_NO_PAD.encode(tampered);
            let q = format!("sort={sort}&cursor={c}");
            assert_eq!(rejected(&q).as_deref(), Some("cursor"), "{tampered}");
        }
        let p = parse(&format!("sort=name&cursor={c}")).unwrap();
        let mut sql = Sql::new("");
        p.keyset_condition(&mut sql);
        assert_eq!(
            sql.where_clause(),
            " WHERE (i.name, i.id) > ($1::text::text, $2::bigint)"
        );
    }
}
