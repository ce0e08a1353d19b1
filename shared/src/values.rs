//! Small values every domain module uses: id lists, size views, date ranges, and enums
//! stored as SQL text.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::web::ApiError;

/// An enum stored as text in SQL: its text, every text it has, and the parse back.
pub trait TextEnum: Sized + Copy + 'static {
    const ALL: &'static [&'static str];
    fn as_str(self) -> &'static str;
    fn from_text(s: &str) -> Option<Self>;
}

/// Defines a [`TextEnum`] with `FromStr`, `Display`, `Serialize` and `FromSql` through its
/// text: the one place where the enum meets its SQL (and JSON) spelling. An unknown text in a
/// row is a decoding error (the 500 envelope).
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($variant),+ }

        impl $crate::values::TextEnum for $name {
            const ALL: &'static [&'static str] = &[$($text),+];
            fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            fn from_text(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                $crate::values::TextEnum::as_str(self)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <$name as $crate::values::TextEnum>::from_text(s)
                    .ok_or_else(|| format!("unknown {} {s:?}", stringify!($name)))
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'a> ::tokio_postgres::types::FromSql<'a> for $name {
            fn from_sql(
                ty: &::tokio_postgres::types::Type,
                raw: &'a [u8],
            ) -> Result<Self, Box<dyn ::std::error::Error + Sync + Send>> {
                let text = <&str as ::tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
                Ok(text.parse::<$name>()?)
            }
            fn accepts(ty: &::tokio_postgres::types::Type) -> bool {
                <&str as ::tokio_postgres::types::FromSql>::accepts(ty)
            }
        }
    };
}

/// A response decoded from one row, column by column.
pub trait FromRow: Sized {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, ApiError>;
}

/// Defines a response struct whose fields are the row's columns of the same names, read
/// with `try_get` (a column that is missing or of another type is the 500 envelope).
#[macro_export]
macro_rules! row_struct {
    ($(#[$meta:meta])* $vis:vis struct $name:ident {
        $($(#[$fmeta:meta])* $fvis:vis $field:ident: $ty:ty),+ $(,)?
    }) => {
        $(#[$meta])*
        $vis struct $name { $($(#[$fmeta])* $fvis $field: $ty),+ }

        impl $crate::values::FromRow for $name {
            fn from_row(row: &::tokio_postgres::Row) -> Result<Self, $crate::web::ApiError> {
                Ok($name { $($field: row.try_get(stringify!($field))?),+ })
            }
        }
    };
}

/// Letters, digits, `_` and `-` only (names and identifiers).
pub fn is_identifier(v: &str) -> bool {
    v.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A required text field of at most `max` characters that is not blank; kept trimmed.
pub fn text(field: &str, v: &str, max: usize) -> Result<String, ApiError> {
    let long = v.chars().count() > max;
    let v = v.trim();
    if v.is_empty() || long {
        return Err(ApiError::validation(
            field,
            format!("{field} must have 1 to {max} characters"),
        ));
    }
    Ok(v.to_string())
}

/// Validates an id list: at most `max` (413), positive (400); sorted and deduplicated.
pub fn ids(field: &str, v: &[i64], max: usize) -> Result<Vec<i64>, ApiError> {
    if v.len() > max {
        return Err(
            ApiError::too_large(format!("{field} has more than {max} ids")).with_field(field),
        );
    }
    if v.iter().any(|id| *id <= 0) {
        return Err(ApiError::validation(
            field,
            format!("{field} must hold positive integers"),
        ));
    }
    let mut ids = v.to_vec();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Validates an id list: not empty (400), at most `max` (413), positive (400); sorted and
/// deduplicated.
pub fn id_list(field: &str, ids: &[i64], max: usize) -> Result<Vec<i64>, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::validation(
            field,
            format!("{field} must not be empty"),
        ));
    }
    self::ids(field, ids, max)
}

/// `wanted` minus `found`, both sorted ascending.
pub fn missing(wanted: &[i64], found: &[i64]) -> Vec<i64> {
    let mut out = Vec::new();
    let mut f = found.iter().peekable();
    for w in wanted {
        while f.next_if(|x| *x < w).is_some() {}
        if f.peek() != Some(&w) {
            out.push(*w);
        }
    }
    out
}

/// Bytes as MB with two decimals.
pub fn mb(bytes: i64) -> f64 {
    (bytes as f64 / 1_048_576.0 * 100.0).round() / 100.0
}

/// Bytes for people: `117.7 MB`.
pub fn label(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A latest size as the API shows it: bytes, MB, a label and when it was collected.
#[derive(Debug, Clone, Serialize)]
pub struct Size {
    pub bytes: i64,
    pub mb: f64,
    pub label: String,
    pub collected_at: Option<DateTime<Utc>>,
    pub collected_date: Option<NaiveDate>,
}

impl Size {
    /// The latest size of an `instance_databases` row (`latest_*` columns), if collected.
    pub fn latest(row: &tokio_postgres::Row) -> Result<Option<Size>, ApiError> {
        let Some(bytes) = row.try_get::<_, Option<i64>>("latest_size_bytes")? else {
            return Ok(None);
        };
        Ok(Some(Size {
            bytes,
            mb: mb(bytes),
            label: label(bytes),
            collected_at: row.try_get("latest_collected_at")?,
            collected_date: row.try_get("latest_collected_date")?,
        }))
    }
}

/// `start_date..=end_date`, both business dates, at most [`DateRange::MAX_DAYS`] days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl DateRange {
    pub const MAX_DAYS: i64 = 400;

    /// Every error names `end_date`, the end that is checked against the start.
    pub fn new(start: NaiveDate, end: NaiveDate) -> Result<Self, ApiError> {
        Self::ordered(Some(start), Some(end))?;
        if (end - start).num_days() + 1 > Self::MAX_DAYS {
            return Err(ApiError::validation(
                "end_date",
                format!("a date range covers at most {} days", Self::MAX_DAYS),
            ));
        }
        Ok(DateRange { start, end })
    }

    /// An open range (either end may be missing) must still not end before it starts.
    pub fn ordered(start: Option<NaiveDate>, end: Option<NaiveDate>) -> Result<(), ApiError> {
        match (start, end) {
            (Some(s), Some(e)) if e < s => Err(ApiError::validation(
                "end_date",
                "end_date must not be before start_date",
            )),
            _ => Ok(()),
        }
    }

    /// Days from `start` to `end`, both included.
    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(label(123_456_789), "117.7 MB");
        assert_eq!(mb(123_456_789), 117.74);
        assert_eq!(label(512), "512 B");
        assert_eq!(label(3 * 1024 * 1024 * 1024), "3.0 GB");
    }

    #[test]
    fn date_ranges() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let r = DateRange::new(d("2025-02-04"), d("2026-03-10")).unwrap();
        assert_eq!(r.days(), 400);
        let long = DateRange::new(d("2025-02-03"), d("2026-03-10")).unwrap_err();
        assert_eq!(long.field.as_deref(), Some("end_date"));
        let reversed = DateRange::new(d("2026-03-10"), d("2026-03-09")).unwrap_err();
        assert_eq!(reversed.field.as_deref(), Some("end_date"));
        assert!(DateRange::ordered(None, Some(d("2026-03-09"))).is_ok());
    }

    #[test]
    fn id_lists() {
        assert_eq!(ids("x", &[3, 1, 3], 10).unwrap(), vec![1, 3]);
        assert_eq!(ids("x", &[0], 10).unwrap_err().status, 400);
        assert_eq!(ids("x", &[1, 2], 1).unwrap_err().status, 413);
    }
}
