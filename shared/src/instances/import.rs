//! The rows of an onboarding request: a JSON array (`POST /instances/batch`) or a CSV file
//! (`POST /instances/import`, UTF-8 with or without a BOM; `GET /instances/import/template`
//! gives the file). Both become [`Input`] rows that `batch` validates and writes.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use crate::web::request::control_char;
use crate::web::{ApiError, ApiResponse, ApiResult, Req};
use crate::App;

/// The most rows one request may hold.
pub const MAX_ROWS: usize = 1000;

/// Columns every file has, then the optional ones.
pub const REQUIRED: &[&str] = &["name", "db_type", "host", "port"];
pub const OPTIONAL: &[&str] = &[
    "tls_mode",
    "credential",
    "description",
    "tags",
    "exclude_databases",
    "database_name",
];

/// A field's problem in one row.
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// One row as sent: text not yet validated. Credential and tags are named, not numbered.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub db_type: String,
    #[serde(default)]
    pub host: String,
    pub port: Option<i64>,
    pub tls_mode: Option<String>,
    pub credential: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub exclude_databases: Vec<String>,
    pub database_name: Option<String>,
    /// The CSV line it starts on (the header is line 1), or its 1-based place in the array.
    #[serde(skip)]
    pub line: usize,
    /// Problems found while reading it (a port that is not a number, a short row).
    #[serde(skip)]
    pub errors: Vec<FieldError>,
}

/// A list cell: `a;b;c` (also `|` or `,`), blanks dropped.
fn list(cell: &str) -> Vec<String> {
    cell.split([';', '|', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn too_many() -> ApiError {
    ApiError::validation(
        "rows",
        format!("at most {MAX_ROWS} rows per request; split the file"),
    )
}

/// Reads a CSV body: the header must hold the required columns and only known ones.
pub fn parse_csv(body: &[u8]) -> Result<Vec<Input>, ApiError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::validation("body", format!("the file is not UTF-8 text ({e})")))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| ApiError::validation("header", format!("unreadable header: {e}")))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    for h in &header {
        if !REQUIRED.contains(&h.as_str()) && !OPTIONAL.contains(&h.as_str()) {
            return Err(ApiError::validation(
                "header",
                format!(
                    "unknown column {h:?}; the header is {} plus optional {}",
                    REQUIRED.join(","),
                    OPTIONAL.join(",")
                ),
            ));
        }
    }
    if let Some(missing) = REQUIRED.iter().find(|r| !header.iter().any(|h| h == *r)) {
        return Err(ApiError::validation(
            "header",
            format!(
                "the header lacks the column {missing:?}; it must hold {}",
                REQUIRED.join(",")
            ),
        ));
    }
    let mut rows = Vec::new();
    let (mut line_at, mut seen_to) = (1, 0);
    for record in reader.records() {
        let record =
            record.map_err(|e| ApiError::validation("body", format!("unreadable CSV: {e}")))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        if rows.len() == MAX_ROWS {
            return Err(too_many());
        }
        // The reader's own line count skips blank lines: count the file's line breaks, and
        // the blank lines between the record's position and its first cell.
        let at = record.position().map_or(seen_to, |p| p.byte() as usize);
        line_at += text.get(seen_to..at).map_or(0, |t| t.matches('\n').count());
        seen_to = at;
        let blank = text.get(at..).unwrap_or_default().bytes();
        let blank = blank.take_while(|b| matches!(b, b'\n' | b'\r'));
        let line = line_at + blank.filter(|b| *b == b'\n').count();
        let mut row = Input {
            line,
            ..Input::default()
        };
        if record.len() != header.len() {
            row.errors.push(FieldError::new(
                "row",
                format!(
                    "{} cells where the header has {}",
                    record.len(),
                    header.len()
                ),
            ));
        }
        for (column, cell) in header.iter().zip(record.iter()) {
            // PostgreSQL cannot store NUL; no other control character belongs in a cell
            // either (a description may hold tabs and line breaks).
            if let Err(e) = control_char(column, cell, column == "description") {
                row.errors.push(FieldError::new(column, e.message));
                continue;
            }
            let some = || Some(cell.to_string()).filter(|c| !c.is_empty());
            match column.as_str() {
                "name" => row.name = cell.to_string(),
                "db_type" => row.db_type = cell.to_string(),
                "host" => row.host = cell.to_string(),
                "port" => match cell.parse::<i64>() {
                    Ok(p) => row.port = Some(p),
                    Err(_) => row
                        .errors
                        .push(FieldError::new("port", "port must be an integer")),
                },
                "tls_mode" => row.tls_mode = some(),
                "credential" => row.credential = some(),
                "description" => row.description = some(),
                "tags" => row.tags = list(cell),
                "exclude_databases" => row.exclude_databases = list(cell),
                _ => row.database_name = some(),
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    instances: Vec<Input>,
}

/// Reads a JSON body `{"instances": [...]}`.
pub fn parse_json(req: &Req) -> Result<Vec<Input>, ApiError> {
    let body: BatchBody = req.json()?;
    if body.instances.len() > MAX_ROWS {
        return Err(too_many().with_field("instances"));
    }
    Ok(body
        .instances
        .into_iter()
        .enumerate()
        .map(|(i, row)| Input { line: i + 1, ..row })
        .collect())
}

const TEMPLATE: &str =
    "name,db_type,host,port,tls_mode,credential,description,tags,exclude_databases\n\
orders-primary,postgresql,10.0.0.11,5432,require,pg-readonly,Orders (primary),prod;eu,tmp_%\n\
billing-replica,mysql,billing-db.internal,3306,prefer,,Billing replica,prod,\n";

/// `GET /instances/import/template`: the CSV file with its header and two example rows.
pub async fn template(_app: &App, _req: Req) -> ApiResult {
    let mut r = ApiResponse {
        status: StatusCode::OK,
        headers: Default::default(),
        body: Bytes::from_static(TEMPLATE.as_bytes()),
        audit: None,
    };
    r.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    r.headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"instances-template.csv\""),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_bom_quotes_and_lines() {
        let file = "\u{feff}name,db_type,host,port,tags\na,pg,h1,5432,\"x;y\"\n\nb,mysql,h2,notaport,\nc,mysql,h3\n";
        let rows = parse_csv(file.as_bytes()).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (rows[0].line, rows[0].tags.clone()),
            (2, vec!["x".into(), "y".into()])
        );
        assert_eq!(rows[1].line, 4);
        assert_eq!(rows[1].errors[0].field, "port");
        assert_eq!(rows[2].errors[0].field, "row");
        let e = parse_csv(b"name,db_type,host\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("header"));
        assert!(parse_csv(b"name,db_type,host,port,colour\n").is_err());
        let many = format!(
            "name,db_type,host,port\n{}",
            "a,pg,h,1\n".repeat(MAX_ROWS + 1)
        );
        assert_eq!(
            parse_csv(many.as_bytes()).unwrap_err().field.as_deref(),
            Some("rows")
        );
        let quoted =
            "name,db_type,host,port,description\r\na,pg,h,1,\"two\nlines\"\r\n\r\nb,pg,h,1,x\r\n";
        let lines: Vec<usize> = parse_csv(quoted.as_bytes())
            .unwrap()
            .iter()
            .map(|r| r.line)
            .collect();
        assert_eq!(lines, vec![2, 5]);
        let nul = parse_csv(b"name,db_type,host,port,description\na,pg,h,1,x\x00y\n").unwrap();
        assert_eq!(nul[0].errors[0].field, "description");
        let template = parse_csv(TEMPLATE.as_bytes()).unwrap();
        assert!(template.iter().all(|r| r.errors.is_empty()));
    }
}
