use bytes::Bytes;
use http::{HeaderMap, Method};
use serde::de::DeserializeOwned;

use super::auth::JwtClaims;
use super::{ApiError, Principal, MAX_BODY_BYTES};

/// What a transport hands to the router.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: Method,
    /// Full path, e.g. `/api/v1/instances/3`.
    pub path: String,
    /// Raw query string without `?`.
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Set by the Lambda adapter from the authorizer context.
    pub jwt: Option<JwtClaims>,
    /// Set by the Lambda adapter (API Gateway request id); generated otherwise.
    pub request_id: Option<String>,
}

impl RawRequest {
    pub fn new(method: Method, path_and_query: &str) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        RawRequest {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            jwt: None,
            request_id: None,
        }
    }
}

/// Decoded query parameters, in order, repeatable.
#[derive(Debug, Clone, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// The query string decoded, or a 400 naming the first parameter whose name or value
    /// holds a control character.
    pub fn parse_checked(raw: &str) -> Result<Self, ApiError> {
        let q = Self::parse(raw);
        for (k, v) in &q.0 {
            control_char(k, k, false)?;
            control_char(k, v, false)?;
        }
        Ok(q)
    }
    pub fn parse(raw: &str) -> Self {
        Query(
            raw.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// A non-empty value, trimmed.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
    /// The trimmed value of a typed parameter (integer, boolean, date, time, enum): absent is
    /// `None`; present but blank is a 400 (only free text may be empty).
    pub fn value(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.get(name).map(str::trim) {
            Some("") => Err(ApiError::validation(
                name,
                format!("{name} must not be empty"),
            )),
            v => Ok(v),
        }
    }
    /// A positive 64-bit id, when given.
    pub fn id(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.int(name)? {
            Some(id) if id <= 0 => Err(ApiError::validation(
                name,
                format!("{name} must be a positive integer"),
            )),
            id => Ok(id),
        }
    }
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.value(name)? {
            None => Ok(None),
            // `3.0` is the integer 3, as in a body (JSON Schema's `integer` says so).
            Some(v) => match v.split_once('.') {
                Some((whole, zeros)) if !zeros.is_empty() && zeros.bytes().all(|b| b == b'0') => {
                    whole.parse::<i64>()
                }
                _ => v.parse::<i64>(),
            }
            .map(Some)
            .map_err(|_| ApiError::validation(name, format!("{name} must be an integer"))),
        }
    }
    pub fn bool(&self, name: &str) -> Result<bool, ApiError> {
        match self.value(name)?.map(str::to_ascii_lowercase).as_deref() {
            None => Ok(false),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(_) => Err(ApiError::validation(
                name,
                format!("{name} must be true or false"),
            )),
        }
    }
    pub fn date(&self, name: &str) -> Result<Option<chrono::NaiveDate>, ApiError> {
        match self.value(name)? {
            None => Ok(None),
            Some(v) => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map(Some)
                .map_err(|_| {
                    ApiError::validation(name, format!("{name} must be a date YYYY-MM-DD"))
                }),
        }
    }
    pub fn time(&self, name: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        match self.value(name)? {
            None => Ok(None),
            Some(v) => chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| Some(t.with_timezone(&chrono::Utc)))
                .map_err(|_| {
                    ApiError::validation(name, format!("{name} must be an ISO-8601 time"))
                }),
        }
    }
    /// One of the allowed values, or 400.
    pub fn one_of(
        &self,
        name: &str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, ApiError> {
        match self.value(name)? {
            None => Ok(None),
            Some(v) => allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(v))
                .copied()
                .map(Some)
                .ok_or_else(|| {
                    ApiError::validation(
                        name,
                        format!("{name} must be one of: {}", allowed.join(", ")),
                    )
                }),
        }
    }
}

impl Query {
    /// One of an enum's texts (any case), as that enum.
    pub fn pick<T: crate::values::TextEnum>(&self, name: &str) -> Result<Option<T>, ApiError> {
        Ok(self.one_of(name, T::ALL)?.and_then(T::from_text))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A routed request as handlers see it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub params: Vec<(&'static str, String)>,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub principal: Principal,
    pub request_id: String,
}

impl Req {
    /// A path parameter (`{id}`) that must be a positive integer; otherwise 404 (no such resource).
    pub fn id(&self, name: &str) -> Result<i64, ApiError> {
        self.param(name)
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| ApiError::not_found(name.trim_end_matches("_id")))
    }
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn uuid(&self, name: &str, what: &str) -> Result<uuid::Uuid, ApiError> {
        self.param(name)
            .and_then(|v| uuid::Uuid::parse_str(v).ok())
            .ok_or_else(|| ApiError::not_found(what))
    }

    /// The body as JSON of type `T` (which should `deny_unknown_fields`).
    /// An update's `{id}` path parameter and JSON body.
    pub fn id_and_json<T: DeserializeOwned>(&self) -> Result<(i64, T), ApiError> {
        Ok((self.id("id")?, self.json()?))
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse_json(&self.body)
    }
}

/// Body JSON with the contract's errors: syntax -> `MALFORMED_JSON`; wrong shape, type or an
/// unknown field -> `VALIDATION_ERROR` naming the field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large("request body over 1 MiB"));
    }
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::malformed("a JSON body is required"));
    }
    // A control character arrives as an escape, or raw as DEL or a C1 control (JSON refuses
    // only raw C0 ones, as a syntax error).
    let may_hold_controls = body.contains(&0x7F)
        || body
            .windows(2)
            .any(|w| w == b"\\u" || (w[0] == 0xC2 && (0x80..=0x9F).contains(&w[1])));
    if may_hold_controls {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
            reject_controls("", &value, true)?;
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::malformed(format!("malformed JSON: {e}")))?;
    integral_floats(&mut value);
    serde_json::from_value(value).map_err(|e| {
        let msg = e.to_string();
        let field = backticked(&msg);
        let mut err = ApiError::invalid(strip_position(&msg));
        err.field = field;
        err
    })
}

/// JSON has one number type: `3.0` is the integer 3 (JSON Schema's `integer` says so too),
/// so a whole float within i64 is read as that integer.
fn integral_floats(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64() {
                // -2^63 is i64::MIN; 2^63 is the first float past i64::MAX.
                const I64: std::ops::Range<f64> =
                    -9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0;
                if f.fract() == 0.0 && I64.contains(&f) {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats),
        Value::Object(map) => map.values_mut().for_each(integral_floats),
        _ => {}
    }
}

/// A control character (NUL included) in text is a 400 naming the field: PostgreSQL cannot
/// store NUL, and none of the others belongs in a name, a filter or a search. A JSON body's
/// strings may hold tab and line breaks (a description); query parameters hold none.
pub fn control_char(field: &str, text: &str, multiline: bool) -> Result<(), ApiError> {
    let bad = |c: char| c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r'));
    if text.chars().any(bad) {
        let field = if field.is_empty() { "body" } else { field };
        return Err(ApiError::validation(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(())
}

/// Every string (and key) in a JSON value, named by its path (`filters.search`, `tags[2]`).
fn reject_controls(path: &str, value: &serde_json::Value, multiline: bool) -> Result<(), ApiError> {
    use serde_json::Value;
    match value {
        Value::String(s) => control_char(path, s, multiline),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| reject_controls(&format!("{path}[{i}]"), v, multiline)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            control_char(path, k, false)?;
            let field = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            reject_controls(&field, v, multiline)
        }),
        _ => Ok(()),
    }
}

fn backticked(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let end = msg[start..].find('`')? + start;
    Some(msg[start..end].to_string())
}

fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// For PATCH bodies: absent -> `None`, `null` -> `Some(None)`, value -> `Some(Some(v))`.
pub fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

impl Query {
    /// A JSON object of filters (export bodies) as query parameters: arrays repeat the key.
    pub fn from_json(filters: &serde_json::Value) -> Result<Query, ApiError> {
        let Some(obj) = filters.as_object() else {
            return Err(ApiError::validation("filters", "filters must be an object"));
        };
        let mut pairs = Vec::new();
        for (k, v) in obj {
            let mut push = |v: &serde_json::Value| -> Result<(), ApiError> {
                let s = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    serde_json::Value::Null => return Ok(()),
                    _ => {
                        return Err(ApiError::validation(
                            "filters",
                            format!(
                                "filter {k} must be a string, number, boolean or a list of them"
                            ),
                        ))
                    }
                };
                pairs.push((k.clone(), s));
                Ok(())
            };
            match v {
                serde_json::Value::Array(items) => items.iter().try_for_each(&mut push)?,
                other => push(other)?,
            }
        }
        Ok(Query(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decodes_and_repeats() {
        let q = Query::parse("tag=a&tag=b%20c&search=x+y&empty=");
        assert_eq!(q.all("tag"), vec!["a", "b c"]);
        assert_eq!(q.get("search"), Some("x y"));
        assert_eq!(q.text("empty"), None);
        assert!(q.int("search").is_err());
    }

    #[test]
    fn typed_parameters_are_absent_or_valid_never_blank() {
        let q = Query::parse("limit=&stale=+&instance_id=0&search=&include_total=TRUE");
        for name in ["limit", "stale"] {
            assert_eq!(q.value(name).unwrap_err().field.as_deref(), Some(name));
        }
        assert!(q.bool("stale").is_err());
        assert_eq!(
            q.id("instance_id").unwrap_err().field.as_deref(),
            Some("instance_id")
        );
        assert_eq!(q.value("absent").unwrap(), None);
        // Free text may be empty; booleans are true or false only.
        assert_eq!(q.text("search"), None);
        assert!(q.bool("include_total").unwrap());
        assert!(Query::parse("b=1").bool("b").is_err());
    }

    #[test]
    fn control_characters_are_refused_naming_the_field() {
        let e = Query::parse_checked("limit=5&search=a%00b").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("search"));
        for c in ["%01", "%09", "%0A", "%7F", "%C2%85"] {
            let e = Query::parse_checked(&format!("tag={c}")).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("tag"), "{c}");
        }
        assert!(Query::parse_checked("search=caf%C3%A9+x&tag=%E4%B8%AD").is_ok());

        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct B {
            name: String,
            filters: serde_json::Value,
        }
        let field = |body: &str| parse_json::<B>(body.as_bytes()).unwrap_err().field;
        assert_eq!(
            field(r#"{"name":"a\u0000","filters":{}}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            field(r#"{"name":"a","filters":{"tag":["x","\u001b[31m"]}}"#).as_deref(),
            Some("filters.tag[1]")
        );
        assert!(parse_json::<B>(br#"{"name":"two\nlines\t","filters":{}}"#).is_ok());
        // Raw DEL and C1 controls are valid JSON text, but still control characters.
        assert_eq!(
            field("{\"name\":\"a\u{7f}\",\"filters\":{}}").as_deref(),
            Some("name")
        );
        assert_eq!(
            field("{\"name\":\"a\u{85}\",\"filters\":{}}").as_deref(),
            Some("name")
        );
    }

    #[test]
    fn json_errors_are_classified() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            a: i64,
        }
        assert_eq!(parse_json::<T>(b"{").unwrap_err().code, "MALFORMED_JSON");
        let e = parse_json::<T>(br#"{"a":1,"b":2}"#).unwrap_err();
        assert_eq!(e.code, "VALIDATION_ERROR");
        assert_eq!(e.field.as_deref(), Some("b"));
        assert_eq!(
            parse_json::<T>(br#"{"a":"x"}"#).unwrap_err().code,
            "VALIDATION_ERROR"
        );
        // A whole float is that integer; a fraction is not an integer.
        assert_eq!(parse_json::<T>(br#"{"a":3.0}"#).unwrap().a, 3);
        assert_eq!(
            parse_json::<T>(br#"{"a":3.5}"#).unwrap_err().code,
            "VALIDATION_ERROR"
        );
    }
}
