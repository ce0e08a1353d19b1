//! Who may decide where an instance's password goes, and how it travels.
//!
//! The collector sends the stored password to the instance's host:port, under its TLS
//! settings. So pointing a credential at a server (setting or changing `credential_id`), or
//! moving a server that has one (`host`, `port`, `db_type`, `tls_mode`, `tls_ca_pem`), is as
//! good as reading the password: admin only, like the credentials themselves. Operators keep
//! every other edit (name, description, tags, exclusions, activity, collections).

use deadpool_postgres::GenericClient;

use crate::tls::{parse_pem_bundle, TlsMode};
use crate::web::{ApiError, Principal, Role};

/// The connection settings of one instance as stored, or as a request would leave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub db_type: String,
    pub host: String,
    pub port: i32,
    pub credential_id: Option<i64>,
    pub tls_mode: String,
    pub tls_ca_pem: Option<String>,
}

impl Connection {
    /// The instance's settings, locked for the rest of the transaction; `None`: no such
    /// (undeleted) instance.
    pub async fn load_for_update<C: GenericClient>(
        client: &C,
        id: i64,
    ) -> Result<Option<Connection>, ApiError> {
        Ok(client
            .query_opt(
                "SELECT db_type, host, port, credential_id, tls_mode, tls_ca_pem FROM instances \
                 WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
                &[&id],
            )
            .await?
            .map(|r| Connection {
                db_type: r.get(0),
                host: r.get(1),
                port: r.get(2),
                credential_id: r.get(3),
                tls_mode: r.get(4),
                tls_ca_pem: r.get(5),
            }))
    }
}

/// Refuses (403) a change of `before` into `after` that only an admin may make. `before`:
/// `None` when the instance is being created.
pub fn check(
    principal: &Principal,
    before: Option<&Connection>,
    after: &Connection,
) -> Result<(), ApiError> {
    if principal.role >= Role::Admin {
        return Ok(());
    }
    let denied = |what: &str| {
        ApiError::new(
            http::StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!(
                "{what} requires the admin role: the collector sends the credential's password there"
            ),
        )
    };
    let Some(before) = before else {
        return match after.credential_id {
            Some(_) => Err(denied("creating an instance with a credential_id")),
            None => Ok(()),
        };
    };
    if before.credential_id != after.credential_id && after.credential_id.is_some() {
        return Err(denied("setting or changing credential_id"));
    }
    if before.credential_id.is_some() {
        let moved = before.host != after.host
            || before.port != after.port
            || before.db_type != after.db_type;
        if moved {
            return Err(denied(
                "changing host, port or db_type of an instance that has a credential",
            ));
        }
        if before.tls_mode != after.tls_mode || before.tls_ca_pem != after.tls_ca_pem {
            return Err(denied(
                "changing tls_mode or tls_ca_pem of an instance that has a credential",
            ));
        }
    }
    Ok(())
}

pub fn tls_mode(v: &str) -> Result<TlsMode, ApiError> {
    TlsMode::parse(v).ok_or_else(|| {
        ApiError::validation(
            "tls_mode",
            format!("tls_mode must be one of {}", TlsMode::NAMES),
        )
    })
}

/// A PEM bundle of CA certificates (up to 64 KiB); empty means none.
pub fn tls_ca_pem(v: &str) -> Result<Option<String>, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() > 65_536 {
        return Err(ApiError::validation(
            "tls_ca_pem",
            "tls_ca_pem must be at most 64 KiB",
        ));
    }
    parse_pem_bundle(v.as_bytes())
        .map_err(|e| ApiError::validation("tls_ca_pem", format!("tls_ca_pem: {e}")))?;
    Ok(Some(v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(credential_id: Option<i64>) -> Connection {
        Connection {
            db_type: "postgresql".into(),
            host: "db1".into(),
            port: 5432,
            credential_id,
            tls_mode: "prefer".into(),
            tls_ca_pem: None,
        }
    }

    fn who(role: Role) -> Principal {
        Principal {
            subject: "t".into(),
            role,
        }
    }

    #[test]
    fn operators_cannot_point_a_password_elsewhere() {
        let op = who(Role::Operator);
        let admin = who(Role::Admin);
        let with = conn(Some(1));
        let moved = Connection {
            host: "evil".into(),
            ..with.clone()
        };
        assert_eq!(check(&op, Some(&with), &moved).unwrap_err().status, 403);
        assert!(check(&admin, Some(&with), &moved).is_ok());
        // Without a credential there is no password to steal.
        let without = conn(None);
        let moved_plain = Connection {
            host: "elsewhere".into(),
            ..without.clone()
        };
        assert!(check(&op, Some(&without), &moved_plain).is_ok());
        assert!(check(&op, Some(&without), &conn(Some(2))).is_err());
        assert!(check(&op, None, &conn(Some(2))).is_err());
        assert!(check(&op, None, &without).is_ok());
        // Dropping the credential takes nothing away from an admin.
        assert!(check(&op, Some(&with), &without).is_ok());
        let downgraded = Connection {
            tls_mode: "disable".into(),
            ..with.clone()
        };
        assert!(check(&op, Some(&with), &downgraded).is_err());
        assert!(check(&op, Some(&with), &with).is_ok());
    }
}
