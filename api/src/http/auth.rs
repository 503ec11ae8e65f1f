//! Authentication: `Authorization: Bearer <key>` → the tenant the key belongs to.

use crate::http::error::ApiError;
use crate::http::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;

/// The caller's tenant; every document route takes it, so no route can forget to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        tenant_of(&parts.headers, state)
    }
}

/// The tenant of the request's `Authorization: Bearer` key.
pub fn tenant_of(headers: &HeaderMap, state: &AppState) -> Result<Tenant, ApiError> {
    let key = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or(ApiError::Unauthorized)?;
    let tenant = state
        .config()
        .api_keys
        .tenant(key)
        .ok_or(ApiError::Unauthorized)?;
    tracing::Span::current().record("tenant", tenant);
    Ok(Tenant(tenant.to_string()))
}

/// The token of a `Bearer` authorization value (the scheme is case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn parses_bearer_values() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
