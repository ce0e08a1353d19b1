//! List parameters: `page`, `limit` (1..200), `include_total`, keyset `cursor`, whitelisted
//! `sort`/`order`. `has_next` comes from fetching `limit + 1` rows, never a count.

mod fetch;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

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
    /// Above this many rows (by the planner's estimate) `total` is that estimate rather than
    /// a count; `None` (the default) always counts.
    pub estimate_total_above: Option<i64>,
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
    match q.value("limit")? {
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
        let page = match q.value("page")? {
            None => None,
            Some(v) => Some(
                v.parse::<i64>()
                    .ok()
                    .filter(|p| *p >= 1 && *p <= 1_000_000_000)
                    .ok_or_else(|| ApiError::validation("page", "page must be an integer >= 1"))?,
            ),
        };
        let sort = match q.value("sort")? {
            None => &spec.fields[0],
            Some(s) => spec.fields.iter().find(|f| f.name == s).ok_or_else(|| {
                let names: Vec<&str> = spec.fields.iter().map(|f| f.name).collect();
                ApiError::validation("sort", format!("sort must be one of: {}", names.join(", ")))
            })?,
        };
        let order = match q.value("order")? {
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
            estimate_total_above: None,
            sort,
            order,
            id_expr: spec.id_expr,
            cursor,
            sql: Sql::default(),
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
    /// With `total`: true when it is the planner's estimate rather than a count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_is_estimate: Option<bool>,
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
