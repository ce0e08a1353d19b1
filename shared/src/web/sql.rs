//! A small builder for dynamic, fully parameterised SQL: text is only ever our own
//! fragments; every value goes through `bind`.

use tokio_postgres::types::ToSql;

#[derive(Default)]
pub struct Sql {
    pub text: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Sql {
            text: text.to_string(),
            params: Vec::new(),
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
    /// `WHERE a AND b ...` (or nothing) from conditions.
    pub fn push_where(&mut self, conds: &[String]) -> &mut Self {
        if !conds.is_empty() {
            self.text.push_str(" WHERE ");
            self.text.push_str(&conds.join(" AND "));
        }
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
