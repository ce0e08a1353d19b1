//! A small builder for dynamic, fully parameterised SQL: text is only ever our own
//! fragments; every value goes through `bind`.

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio_postgres::types::{FromSql, ToSql};

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::ApiError;
use crate::values::FromRow;

/// Statement text, its bound values and the `WHERE` conditions gathered so far.
#[derive(Default)]
pub struct Sql {
    pub text: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
    conds: Vec<String>,
}

impl std::fmt::Debug for Sql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sql")
            .field("text", &self.text)
            .field("params", &self.params.len())
            .field("conds", &self.conds)
            .finish()
    }
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Sql {
            text: text.to_string(),
            ..Sql::default()
        }
    }
    pub fn push(&mut self, fragment: &str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }
    /// Adds a parameter and returns its placeholder (`$n`).
    pub fn bind<T: ToSql + Sync + Send + 'static>(&mut self, value: T) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }
    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
    /// Adds a condition (our own SQL; values go through `bind`).
    pub fn and(&mut self, cond: impl Into<String>) -> &mut Self {
        self.conds.push(cond.into());
        self
    }
    /// `column = value` when a value is given.
    pub fn eq<T: ToSql + Sync + Send + 'static>(
        &mut self,
        column: &str,
        value: Option<T>,
    ) -> &mut Self {
        if let Some(v) = value {
            let p = self.bind(v);
            self.conds.push(format!("{column} = {p}"));
        }
        self
    }
    /// Any of `columns` contains `term` (ILIKE, wildcards escaped), when a term is given.
    pub fn search(&mut self, term: Option<&str>, columns: &[&str]) -> &mut Self {
        if let Some(t) = term {
            let p = self.bind(contains_pattern(t));
            let any: Vec<String> = columns.iter().map(|c| format!("{c} ILIKE {p}")).collect();
            self.conds.push(format!("({})", any.join(" OR ")));
        }
        self
    }
    /// ` WHERE a AND b ...`, or nothing without conditions.
    pub fn where_clause(&self) -> String {
        if self.conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conds.join(" AND "))
        }
    }
    /// Appends the `WHERE` clause to the text.
    pub fn push_where(&mut self) -> &mut Self {
        let clause = self.where_clause();
        self.text.push_str(&clause);
        self
    }
}

/// Escapes `%`, `_` and `\` for a LIKE/ILIKE pattern and wraps it in `%...%`.
pub fn contains_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The `SET` list of a PATCH: only the fields the body has, each value bound, `updated_at`
/// always refreshed.
pub struct Update {
    sql: Sql,
    sets: Vec<String>,
    /// The new name, if any: a unique violation is a 409 that names it.
    name: Option<String>,
}

impl Default for Update {
    fn default() -> Self {
        Update {
            sql: Sql::default(),
            sets: vec!["updated_at = now()".to_string()],
            name: None,
        }
    }
}

impl Update {
    pub fn set<T: ToSql + Sync + Send + 'static>(&mut self, column: &str, value: T) -> &mut Self {
        let p = self.sql.bind(value);
        self.sets.push(format!("{column} = {p}"));
        self
    }

    /// Sets the unique `name` when the body has one.
    pub fn set_name(&mut self, name: Option<String>) -> &mut Self {
        if let Some(n) = &name {
            self.set("name", n.clone());
        }
        self.name = name;
        self
    }

    /// Sets `column` when the body has the field.
    pub fn set_some<T: ToSql + Sync + Send + 'static>(
        &mut self,
        column: &str,
        value: Option<T>,
    ) -> &mut Self {
        if let Some(v) = value {
            self.set(column, v);
        }
        self
    }

    /// `UPDATE {table} SET ... WHERE id = $n{and}` on one row; a unique-name violation is a
    /// 409 naming the new name; no row updated is a 404 for `what`.
    pub async fn run(
        mut self,
        client: &impl deadpool_postgres::GenericClient,
        table: &str,
        id: i64,
        and: &str,
        what: &str,
    ) -> Result<(), ApiError> {
        let idp = self.sql.bind(id);
        self.sql.text = format!(
            "UPDATE {table} SET {} WHERE id = {idp}{and}",
            self.sets.join(", ")
        );
        let n = client
            .execute(&self.sql.text, &self.sql.params())
            .await
            .map_err(|e| ApiError::name_taken(e, what, self.name.as_deref().unwrap_or("")))?;
        if n == 0 {
            return Err(ApiError::not_found(what));
        }
        Ok(())
    }
}

/// The create path: runs an `INSERT ... RETURNING id`; a unique-name violation is a 409 on
/// `name` naming the resource.
pub async fn insert_named(
    client: &impl deadpool_postgres::GenericClient,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
    what: &str,
    name: &str,
) -> Result<i64, ApiError> {
    let row = client
        .query_one(statement, params)
        .await
        .map_err(|e| ApiError::name_taken(e, what, name))?;
    Ok(row.try_get(0)?)
}

/// The first column of the one row `statement` returns (a count, an id, an array).
pub async fn scalar<T: for<'a> FromSql<'a>>(
    client: &impl deadpool_postgres::GenericClient,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<T, ApiError> {
    Ok(client.query_one(statement, params).await?.try_get(0)?)
}

/// The one row `statement` returns, or 404 naming `what` when there is none.
pub async fn row(
    client: &impl deadpool_postgres::GenericClient,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
    what: &str,
) -> Result<Row, ApiError> {
    client
        .query_opt(statement, params)
        .await?
        .ok_or_else(|| ApiError::not_found(what))
}

/// [`row`] decoded as a `T`.
pub async fn one<T: FromRow>(
    client: &impl deadpool_postgres::GenericClient,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
    what: &str,
) -> Result<T, ApiError> {
    T::from_row(&row(client, statement, params, what).await?)
}

/// The row of `from` whose `key` column is `id`, as a `T`; 404 naming `what` when absent.
pub async fn by_id<T: FromRow>(
    client: &impl deadpool_postgres::GenericClient,
    (columns, from, key): (&str, &str, &str),
    id: i64,
    what: &str,
) -> Result<T, ApiError> {
    let statement = format!("SELECT {columns} FROM {from} WHERE {key} = $1");
    one(client, &statement, &[&id], what).await
}

/// A client (connection or transaction) that counts the statements sent through it, so the
/// claim "constant number of statements" is something a test can check at the client.
pub struct Counted<'a, C> {
    client: &'a C,
    sent: AtomicUsize,
}

impl<'a, C: GenericClient> Counted<'a, C> {
    pub fn new(client: &'a C) -> Self {
        Counted {
            client,
            sent: AtomicUsize::new(0),
        }
    }

    /// Statements sent so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// The client, counting the one statement about to be sent through it.
    pub fn counted(&self) -> &C {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.client
    }
}
