//! Size views the API adds to bytes: MB and a human label.

use serde_json::{json, Value};

pub fn mb(bytes: i64) -> f64 {
    (bytes as f64 / 1_048_576.0 * 100.0).round() / 100.0
}

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

pub fn size_json(
    bytes: i64,
    collected_at: Option<chrono::DateTime<chrono::Utc>>,
    collected_date: Option<chrono::NaiveDate>,
) -> Value {
    json!({"bytes": bytes, "mb": mb(bytes), "label": label(bytes), "collected_at": collected_at, "collected_date": collected_date})
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
}
