//! Roles and who is calling. Locally: bearer tokens from `TIDEMARK_API_TOKENS`. In AWS: the
//! HttpApi JWT authorizer has already checked the token; we read its scopes.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

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

#[derive(Clone)]
pub enum Authenticator {
    /// token -> role; tokens are never logged or returned.
    Tokens(HashMap<String, Role>),
    /// Trust the claims that the API Gateway authorizer verified.
    Jwt,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Authenticator::Tokens(t) => write!(f, "Tokens({} configured)", t.len()),
            Authenticator::Jwt => write!(f, "Jwt"),
        }
    }
}

impl Authenticator {
    /// Parses `viewer:<token>,operator:<token>,...`; tokens of at least 16 characters.
    pub fn parse_tokens(spec: &str) -> Result<Self, String> {
        let mut map = HashMap::new();
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
            map.insert(token.to_string(), role);
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
                let role = *map.get(token).ok_or_else(ApiError::unauthenticated)?;
                Ok(Principal {
                    subject: token_subject(token),
                    role,
                })
            }
            Authenticator::Jwt => {
                let claims = jwt.ok_or_else(ApiError::unauthenticated)?;
                let role = claims
                    .scopes
                    .iter()
                    .filter_map(|s| {
                        let s = s.rsplit(['/', ':']).next().unwrap_or(s);
                        Role::parse(s)
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
    }

    #[test]
    fn jwt_scopes_pick_highest_role() {
        let claims = JwtClaims {
            subject: "u1".into(),
            scopes: vec!["tidemark/viewer".into(), "tidemark/operator".into()],
        };
        let p = Authenticator::Jwt
            .authenticate(None, Some(&claims))
            .unwrap();
        assert_eq!(p.role, Role::Operator);
        assert_eq!(p.subject, "u1");
        let none = JwtClaims {
            subject: "u2".into(),
            scopes: vec!["email".into()],
        };
        assert_eq!(
            Authenticator::Jwt
                .authenticate(None, Some(&none))
                .unwrap_err()
                .status,
            403
        );
    }
}
