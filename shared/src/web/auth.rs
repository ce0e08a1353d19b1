//! Roles and who is calling. Locally: bearer tokens from `TIDEMARK_API_TOKENS`. In AWS: the
//! HttpApi JWT authorizer has already checked the token; we read its scopes.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Stable identity used for ownership (exports): JWT `sub`, or a hash of a local token.
    pub subject: String,
    pub role: Role,
}

impl Principal {
    pub fn anonymous() -> Self {
        Principal {
            subject: String::new(),
            role: Role::Viewer,
        }
    }
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(role))
        }
    }
}

/// Claims that API Gateway's JWT authorizer passed on.
#[derive(Debug, Clone, Default)]
pub struct JwtClaims {
    pub subject: String,
    pub scopes: Vec<String>,
}

/// The scope prefix when `TIDEMARK_SCOPE_PREFIX` is not set: scopes `tidemark/<role>`.
pub const DEFAULT_SCOPE_PREFIX: &str = "tidemark";

#[derive(Clone)]
pub enum Authenticator {
    /// SHA-256 of each token -> role; tokens are never kept, logged or returned.
    Tokens(Vec<([u8; 32], Role)>),
    /// Trust the claims that the API Gateway authorizer verified; a scope grants a role only
    /// when it is exactly `<scope_prefix>/<role>`.
    Jwt { scope_prefix: String },
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Authenticator::Tokens(t) => write!(f, "Tokens({} configured)", t.len()),
            Authenticator::Jwt { scope_prefix } => write!(f, "Jwt({scope_prefix}/*)"),
        }
    }
}

impl Authenticator {
    /// Parses `viewer:<token>,operator:<token>,...`; tokens of at least 16 characters.
    pub fn jwt(scope_prefix: &str) -> Self {
        Authenticator::Jwt {
            scope_prefix: scope_prefix.to_string(),
        }
    }

    /// Parses `viewer:<token>,operator:<token>,...`; tokens of at least 16 characters, each
    /// listed once (a token named twice would hold two roles).
    pub fn parse_tokens(spec: &str) -> Result<Self, String> {
        let mut map: Vec<([u8; 32], Role)> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (role, token) = entry
                .split_once(':')
                .ok_or_else(|| "each entry must be role:token".to_string())?;
            let role = Role::parse(role.trim())
                .ok_or_else(|| format!("unknown role {role:?} (viewer, operator, admin)"))?;
            let token = token.trim();
            if token.len() < 16 {
                return Err(format!(
                    "the {} token must have at least 16 characters",
                    role.as_str()
                ));
            }
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if map.iter().any(|(d, _)| *d == digest) {
                return Err(format!(
                    "a token is listed twice (the second time for the {} role)",
                    role.as_str()
                ));
            }
            map.push((digest, role));
        }
        if map.is_empty() {
            return Err("no tokens given".into());
        }
        Ok(Authenticator::Tokens(map))
    }

    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        jwt: Option<&JwtClaims>,
    ) -> Result<Principal, ApiError> {
        match self {
            Authenticator::Tokens(map) => {
                let token = authorization
                    .and_then(|h| {
                        h.strip_prefix("Bearer ")
                            .or_else(|| h.strip_prefix("bearer "))
                    })
                    .map(str::trim)
                    .ok_or_else(ApiError::unauthenticated)?;
                // Digests compared in constant time, all of them: the time taken says nothing
                // about how much of a token was right.
                let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                let mut found: Option<Role> = None;
                for (digest, role) in map {
                    if bool::from(digest.ct_eq(&presented)) {
                        found = Some(*role);
                    }
                }
                let role = found.ok_or_else(ApiError::unauthenticated)?;
                Ok(Principal {
                    subject: token_subject(token),
                    role,
                })
            }
            Authenticator::Jwt { scope_prefix } => {
                let claims = jwt.ok_or_else(ApiError::unauthenticated)?;
                let role = claims
                    .scopes
                    .iter()
                    .filter_map(|s| {
                        s.strip_prefix(scope_prefix.as_str())
                            .and_then(|r| r.strip_prefix('/'))
                            .and_then(Role::parse)
                    })
                    .max()
                    .ok_or_else(|| ApiError::forbidden(Role::Viewer))?;
                Ok(Principal {
                    subject: claims.subject.clone(),
                    role,
                })
            }
        }
    }
}

/// A stable, non-reversible name for a local token (used as the export owner).
pub fn token_subject(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("token:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_authenticate() {
        let a = Authenticator::parse_tokens("viewer:vvvvvvvvvvvvvvvv, admin:aaaaaaaaaaaaaaaaaa")
            .unwrap();
        let p = a
            .authenticate(Some("Bearer aaaaaaaaaaaaaaaaaa"), None)
            .unwrap();
        assert_eq!(p.role, Role::Admin);
        assert!(a
            .authenticate(Some("Bearer nope-nope-nope-nope"), None)
            .is_err());
        assert!(a.authenticate(None, None).is_err());
        assert!(Authenticator::parse_tokens("viewer:short").is_err());
        assert!(Authenticator::parse_tokens("root:aaaaaaaaaaaaaaaaaa").is_err());
        let e = Authenticator::parse_tokens("viewer:aaaaaaaaaaaaaaaaaa,admin:aaaaaaaaaaaaaaaaaa")
            .err()
            .unwrap();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn only_exact_prefixed_scopes_grant_roles() {
        let role = |prefix: &str, scope: &str| {
            let claims = JwtClaims {
                subject: "u".into(),
                scopes: vec!["openid".into(), scope.into()],
            };
            Authenticator::jwt(prefix)
                .authenticate(None, Some(&claims))
                .map(|p| p.role)
                .map_err(|e| e.status.as_u16())
        };
        assert_eq!(role("tidemark", "tidemark/admin"), Ok(Role::Admin));
        for scope in [
            "admin",
            "other/admin",
            "urn:x:admin",
            "tidemark/admins",
            "xtidemark/admin",
            "tidemark/sub/admin",
            "tidemark:admin",
        ] {
            assert_eq!(role("tidemark", scope), Err(403), "{scope}");
        }
        assert_eq!(role("api://inv", "api://inv/operator"), Ok(Role::Operator));
        assert_eq!(role("api://inv", "tidemark/operator"), Err(403));
    }

    #[test]
    fn jwt_scopes_pick_highest_role() {
        let claims = JwtClaims {
            subject: "u1".into(),
            scopes: vec!["tidemark/viewer".into(), "tidemark/operator".into()],
        };
        let p = Authenticator::jwt(DEFAULT_SCOPE_PREFIX)
            .authenticate(None, Some(&claims))
            .unwrap();
        assert_eq!(p.role, Role::Operator);
        assert_eq!(p.subject, "u1");
        let none = JwtClaims {
            subject: "u2".into(),
            scopes: vec!["email".into()],
        };
        assert_eq!(
            Authenticator::jwt(DEFAULT_SCOPE_PREFIX)
                .authenticate(None, Some(&none))
                .unwrap_err()
                .status,
            403
        );
    }
}
