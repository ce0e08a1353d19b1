//! Running a list: the count, the page by offset or keyset, and the next cursor.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use tokio_postgres::Row;

use super::{bad_cursor, Cursor, ListParams, Order, Page, SortSpec, Source};
use crate::values::FromRow;
use crate::web::sql::Sql;
use crate::web::{ApiError, ApiResponse, ApiResult, Query};
use crate::App;

impl ListParams {
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

    /// The number of rows the filters keep, and whether it is the planner's estimate: exact,
    /// unless the list allows an estimate (`estimate_total_above`) and the planner puts the
    /// rows above it, where counting them would cost many times the page.
    async fn total(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        from: &str,
        sql: &Sql,
    ) -> Result<(i64, bool), ApiError> {
        let rows = format!("SELECT 1 FROM {from}{}", sql.where_clause());
        if let Some(above) = self.estimate_total_above {
            let explain = format!("EXPLAIN (FORMAT JSON) {rows}");
            let plan: serde_json::Value = client
                .query_one(&explain, &sql.params())
                .await?
                .try_get(0)?;
            let estimate = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0).round() as i64;
            if estimate > above {
                return Ok((estimate, true));
            }
        }
        let count = format!("SELECT count(*) FROM ({rows}) c");
        let row = client.query_one(&count, &sql.params()).await?;
        Ok((row.try_get::<_, i64>(0)?, false))
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
            Some(self.total(client, from, &sql).await?)
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
        total: Option<(i64, bool)>,
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
            total: total.map(|(n, _)| n),
            total_is_estimate: total.map(|(_, estimate)| estimate),
        })
    }
}
