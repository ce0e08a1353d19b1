//! Field rules for instances.

use std::net::IpAddr;

use crate::web::ApiError;

pub const DB_TYPES: &[&str] = &["mysql", "postgresql"];

pub fn name(v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(ApiError::validation("name", "name is required"));
    }
    if v.chars().count() > 100 {
        return Err(ApiError::validation(
            "name",
            "name must be at most 100 characters",
        ));
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || is_cjk(c))
    {
        return Err(ApiError::validation(
            "name",
            "name may contain letters, digits, '_', '-' and CJK characters only",
        ));
    }
    Ok(v.to_string())
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2EBEF)
}

/// Canonical engine name; aliases `mariadb`, `postgres`, `pg` accepted.
pub fn db_type(v: &str) -> Result<&'static str, ApiError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "mysql" | "mariadb" => Ok("mysql"),
        "postgresql" | "postgres" | "pg" => Ok("postgresql"),
        _ => Err(ApiError::validation(
            "db_type",
            "db_type must be mysql or postgresql (aliases: mariadb, postgres, pg)",
        )),
    }
}

pub fn host(v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    let bad = || {
        ApiError::validation(
            "host",
            "host must be a valid IPv4/IPv6 address or hostname (at most 255 characters)",
        )
    };
    if v.is_empty() || v.len() > 255 {
        return Err(bad());
    }
    let bare = v
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(v);
    if bare.parse::<IpAddr>().is_ok() {
        return Ok(bare.to_string());
    }
    // Dotted digits that are not an IPv4 address (e.g. 300.1.1.1) are not a hostname either.
    if v.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    let ok = v.trim_end_matches('.').split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if ok {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(bad())
    }
}

pub fn port(v: i64) -> Result<i32, ApiError> {
    if (1..=65535).contains(&v) {
        Ok(v as i32)
    } else {
        Err(ApiError::validation(
            "port",
            "port must be between 1 and 65535",
        ))
    }
}

pub fn database_name(v: &str) -> Result<Option<String>, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() > 64 || !crate::values::is_identifier(v) {
        return Err(ApiError::validation(
            "database_name",
            "database_name must be at most 64 characters of letters, digits, '_' and '-'",
        ));
    }
    Ok(Some(v.to_string()))
}

pub fn description(v: &str) -> Result<Option<String>, ApiError> {
    if v.chars().count() > 500 {
        return Err(ApiError::validation(
            "description",
            "description must be at most 500 characters",
        ));
    }
    Ok(Some(v.to_string()).filter(|s| !s.trim().is_empty()))
}

/// Database names or LIKE patterns (`tmp_%`) to leave out of collection for this instance.
pub fn exclude_databases(v: &[String]) -> Result<Vec<String>, ApiError> {
    if v.len() > 200 {
        return Err(ApiError::validation(
            "exclude_databases",
            "at most 200 exclusion patterns",
        ));
    }
    let mut out = Vec::with_capacity(v.len());
    for p in v {
        let long = p.chars().count() > 255;
        let p = p.trim();
        if p.is_empty() || long {
            return Err(ApiError::validation(
                "exclude_databases",
                "each pattern must have 1 to 255 characters",
            ));
        }
        out.push(p.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name(" prod-db_1 ").unwrap(), "prod-db_1");
        assert!(name("生产库").is_ok());
        assert!(name("bad name").is_err());
        assert!(name("").is_err());
        assert!(name(&"a".repeat(101)).is_err());
    }

    #[test]
    fn hosts() {
        for ok in [
            "10.0.0.7",
            "::1",
            "[fe80::1]",
            "db.example.com",
            "localhost",
        ] {
            assert!(host(ok).is_ok(), "{ok}");
        }
        for bad in ["300.1.1.1", "1.2.3", "-bad.example", "bad host", "a..b", ""] {
            assert!(host(bad).is_err(), "{bad}");
        }
        assert!(host(&"a".repeat(256)).is_err());
    }

    #[test]
    fn types_ports() {
        assert_eq!(db_type("MariaDB").unwrap(), "mysql");
        assert_eq!(db_type("pg").unwrap(), "postgresql");
        assert!(db_type("oracle").is_err());
        assert!(port(0).is_err());
        assert!(port(65536).is_err());
        assert_eq!(port(5432).unwrap(), 5432);
    }
}
