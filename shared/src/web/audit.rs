//! The audit trail's one entry point. The router records every successful mutating request
//! (POST, PUT, PATCH, DELETE) after the handler answered: who (subject and role), when, the
//! request id, the action (`PATCH /instances/{id}` unless the handler names it) and the
//! targets (the `{id}` path parameter, or the id a `Location` header names). A handler adds
//! what only it knows by attaching an [`Audit`] to its response:
//!
//! ```ignore
//! Ok(ApiResponse::ok(&after).audit(Audit::diff(&before, &after)))
//! Ok(ApiResponse::ok(answer).audit(Audit::targets(&ids).count("deleted", ids.len())))
//! ```
//!
//! Secrets never reach an entry: only response values are diffed (responses hold no
//! secrets), any field named like a secret is written as `"changed"`, and a handler marks a
//! write-only field it changed with [`Audit::changed`].

use serde::Serialize;
use serde_json::{json, Map, Value};

/// What a handler adds to its request's audit entry.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Overrides the default `METHOD /route/{pattern}`.
    pub action: Option<String>,
    /// Overrides the default targets (path `{id}` or `Location`).
    pub target_ids: Option<Vec<String>>,
    /// `{field: {old, new}}`, or `{field: "changed"}` for write-only fields.
    pub changes: Map<String, Value>,
    /// Counts of a bulk action (`created`, `skipped`, ...): one entry, not one per row.
    pub counts: Map<String, Value>,
    /// Not a change (a read that is a POST): no entry.
    pub skip: bool,
}

/// Fields never diffed: bookkeeping that changes on every write.
const IGNORED: &[&str] = &["updated_at"];

/// A field whose value must never be written to the trail.
pub fn is_secret(field: &str) -> bool {
    let f = field.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "ciphertext",
        "private_key",
        "api_key",
    ]
    .iter()
    .any(|s| f.contains(s))
        || f == "key"
}

impl Audit {
    /// No entry for this request (it changed nothing).
    pub fn skip() -> Self {
        Audit {
            skip: true,
            ..Audit::default()
        }
    }

    /// The fields that differ between two serialisations of a resource, old and new.
    pub fn diff(before: &impl Serialize, after: &impl Serialize) -> Self {
        let mut audit = Audit::default();
        audit.add_diff(before, after);
        audit
    }

    /// Adds the differences between `before` and `after` (top-level fields).
    pub fn add_diff(&mut self, before: &impl Serialize, after: &impl Serialize) -> &mut Self {
        let (Ok(Value::Object(old)), Ok(Value::Object(new))) =
            (serde_json::to_value(before), serde_json::to_value(after))
        else {
            return self;
        };
        for (field, new_value) in &new {
            let old_value = old.get(field).unwrap_or(&Value::Null);
            if IGNORED.contains(&field.as_str()) || old_value == new_value {
                continue;
            }
            let entry = if is_secret(field) {
                json!("changed")
            } else {
                json!({"old": old_value, "new": new_value})
            };
            self.changes.insert(field.clone(), entry);
        }
        self
    }

    /// A write-only field (a password, a secret) changed; its value is never recorded.
    pub fn changed(mut self, field: &str) -> Self {
        self.changes.insert(field.to_string(), json!("changed"));
        self
    }

    /// The entry's targets (a bulk action's ids).
    pub fn targets<T: ToString>(ids: &[T]) -> Self {
        Audit::default().with_targets(ids)
    }

    pub fn with_targets<T: ToString>(mut self, ids: &[T]) -> Self {
        self.target_ids = Some(ids.iter().map(ToString::to_string).collect());
        self
    }

    /// A bulk action's count (`created: 997`).
    pub fn count(mut self, name: &str, n: usize) -> Self {
        self.counts.insert(name.to_string(), json!(n));
        self
    }

    /// Names the action (`instances.import`) instead of `METHOD /pattern`.
    pub fn action(mut self, action: &str) -> Self {
        self.action = Some(action.to_string());
        self
    }
}

/// One entry as the router writes it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub actor: String,
    pub actor_role: &'static str,
    pub action: String,
    /// The first path segment (`instances`, `credentials`, ...).
    pub target_type: String,
    pub target_ids: Vec<String>,
    pub request_id: String,
    pub changes: Value,
    pub counts: Value,
}

impl Entry {
    /// The entry for a successful mutating request: the handler's [`Audit`] over the
    /// defaults from the route.
    pub fn build(
        audit: Audit,
        (method, pattern): (&http::Method, &str),
        principal: &super::Principal,
        path_id: Option<&str>,
        location: Option<&str>,
        request_id: &str,
    ) -> Entry {
        let target_type = pattern
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let default_targets = path_id
            .or_else(|| location.and_then(|l| l.rsplit('/').next()))
            .map(|id| vec![id.to_string()])
            .unwrap_or_default();
        Entry {
            actor: principal.subject.clone(),
            actor_role: principal.role.as_str(),
            action: audit
                .action
                .unwrap_or_else(|| format!("{method} {pattern}")),
            target_type,
            target_ids: audit.target_ids.unwrap_or(default_targets),
            request_id: request_id.to_string(),
            changes: Value::Object(audit.changes),
            counts: Value::Object(audit.counts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_keeps_changed_fields_and_hides_secrets() {
        let before =
            json!({"id": 1, "name": "a", "port": 5432, "updated_at": "t1", "password_hint": "x"});
        let after =
            json!({"id": 1, "name": "b", "port": 5432, "updated_at": "t2", "password_hint": "y"});
        let a = Audit::diff(&before, &after).changed("password");
        assert_eq!(a.changes["name"], json!({"old": "a", "new": "b"}));
        assert!(!a.changes.contains_key("port"));
        assert!(!a.changes.contains_key("updated_at"));
        assert_eq!(a.changes["password_hint"], "changed");
        assert_eq!(a.changes["password"], "changed");
        assert!(is_secret("webhook_secret") && is_secret("key") && !is_secret("keys_used"));
    }
}
