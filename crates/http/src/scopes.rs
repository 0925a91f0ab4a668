//! What a personal access token may reach: one table, consulted by the
//! authentication extractors for every request a token authenticates, so
//! no handler checks a scope by hand. A route missing from the table is
//! closed to tokens.

use actix_web::HttpRequest;
use actix_web::http::Method;
use userhub_domain::model::{Scope, TokenGrant};

use crate::error::ApiError;

/// The 403 `detail` of a route no token may use.
pub(crate) const NOT_WITH_TOKEN: &str = "Not allowed with a personal access token";

/// What a route asks of a token.
#[derive(Debug, PartialEq, Eq)]
enum Reach {
    /// This scope.
    Scope(Scope),
    /// Nothing: a token's own revocation (the use case refuses any other).
    OwnRevocation,
    /// Closed to tokens: credentials, sessions, second factors, tokens.
    Never,
}

/// The table: (method, route pattern) to what a token needs there.
fn reach(method: &Method, pattern: &str) -> Reach {
    let read = method == Method::GET || method == Method::HEAD;
    match pattern {
        "/api/auth/me" if read => Reach::Scope(Scope::ProfileRead),
        "/api/auth/events" | "/api/audit-events" if read => Reach::Scope(Scope::AuditRead),
        "/api/users" | "/api/users/{id}" if read => Reach::Scope(Scope::UsersRead),
        "/api/users" if method == Method::POST => Reach::Scope(Scope::UsersWrite),
        "/api/users/{id}" if [Method::PUT, Method::PATCH, Method::DELETE].contains(method) => {
            Reach::Scope(Scope::UsersWrite)
        }
        "/api/users/{id}/restore" | "/api/users/{id}/unlock" if method == Method::POST => {
            Reach::Scope(Scope::UsersWrite)
        }
        "/api/auth/tokens/{id}" if method == Method::DELETE => Reach::OwnRevocation,
        _ => Reach::Never,
    }
}

/// Refuses a token-authenticated request its route does not allow it.
pub(crate) fn check(req: &HttpRequest, grant: &TokenGrant) -> Result<(), ApiError> {
    let pattern = req.match_pattern().unwrap_or_default();
    match reach(req.method(), &pattern) {
        Reach::Scope(scope) if grant.scopes.allows(scope) => Ok(()),
        Reach::Scope(scope) => Err(ApiError::InsufficientScope {
            required_scope: scope.as_str(),
        }),
        Reach::OwnRevocation => Ok(()),
        Reach::Never => Err(ApiError::Forbidden(NOT_WITH_TOKEN)),
    }
}

/// Documents what a token needs on the operation `method path`: the
/// `pat` security scheme with its scope, and the 403 of a missing one.
pub(crate) fn document(method: &Method, path: &str, op: &mut utoipa::openapi::path::Operation) {
    let scopes: Vec<&str> = match reach(method, path) {
        Reach::Scope(scope) => vec![scope.as_str()],
        Reach::OwnRevocation => Vec::new(),
        Reach::Never => return,
    };
    let Some(security) = op.security.as_mut() else {
        return;
    };
    security.push(utoipa::openapi::security::SecurityRequirement::new(
        "pat", scopes,
    ));
    op.responses
        .responses
        .entry("403".to_owned())
        .or_insert_with(|| {
            utoipa::openapi::RefOr::Ref(utoipa::openapi::Ref::from_response_name(
                "InsufficientScope",
            ))
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_reach_the_contracts_routes_and_nothing_else() {
        let get = Method::GET;
        assert_eq!(
            reach(&get, "/api/auth/me"),
            Reach::Scope(Scope::ProfileRead)
        );
        assert_eq!(
            reach(&get, "/api/users/{id}"),
            Reach::Scope(Scope::UsersRead)
        );
        assert_eq!(
            reach(&Method::PATCH, "/api/users/{id}"),
            Reach::Scope(Scope::UsersWrite)
        );
        assert_eq!(
            reach(&Method::DELETE, "/api/auth/tokens/{id}"),
            Reach::OwnRevocation
        );
        for (method, pattern) in [
            (Method::POST, "/api/auth/change-password"),
            (Method::POST, "/api/auth/logout"),
            (Method::GET, "/api/auth/sessions"),
            (Method::GET, "/api/auth/tokens"),
            (Method::POST, "/api/auth/tokens"),
            (Method::DELETE, "/api/users/{id}/mfa"),
            (Method::GET, "/api/users/{id}/tokens"),
            (Method::PATCH, "/api/auth/me"),
            (Method::GET, "/api/auth/mfa"),
        ] {
            assert_eq!(reach(&method, pattern), Reach::Never, "{method} {pattern}");
        }
    }
}
