//! The OpenAPI 3.1 document, generated from the handlers and their types,
//! and the Swagger UI that renders it at `/docs`.

use std::sync::{Arc, LazyLock};

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{
    Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme,
};
use utoipa::openapi::{Content, HeaderBuilder, OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi, PartialSchema, ToResponse};

use crate::error::{
    ApiError, CodedError, FieldError, HttpError, HttpValidationError, MfaRequiredError, OAuthError,
    OAuthValidationError, ScopeError,
};
use crate::routes::{
    accounts, audit, auth, identities, mfa, oauth, operations, passkeys, recovery, sessions,
    tokens, users, webhooks,
};

/// 429: an account lockout or the per-IP limit.
#[derive(ToResponse)]
#[response(
    description = "Too many attempts: a locked account or the per-IP limit",
    headers(("Retry-After" = u64, description = "Seconds to wait")),
    example = json!({"detail": "Too many failed login attempts; try again later"})
)]
#[allow(dead_code)]
pub(crate) struct TooManyRequests(HttpError<'static>);

/// UserHub's API, as served.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "UserHub API",
        description = "User management and authentication. Errors are FastAPI-shaped: `{\"detail\": …}`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        auth::register, auth::login, mfa::second_step::login, auth::refresh, auth::me,
        recovery::forgot_password, recovery::reset_password,
        recovery::request_verify_token, recovery::verify, recovery::revert_email, recovery::undo,
        sessions::logout, sessions::logout_all, sessions::list, sessions::end,
        sessions::change_password, audit::own,
        tokens::list, tokens::create, tokens::revoke, tokens::list_for, tokens::revoke_for,
        passkeys::list, passkeys::registration_options, passkeys::register, passkeys::rename,
        passkeys::remove, passkeys::sign_in::login_options, passkeys::sign_in::login,
        passkeys::remove_all,
        mfa::status, mfa::begin, mfa::confirm, mfa::disable, mfa::recovery_codes,
        oauth::authorize, oauth::callback, oauth::associate_authorize,
        oauth::associate_authorize_with_password, oauth::associate_callback,
        identities::identities, identities::unlink,
        users::list, users::create, users::get, users::update, users::delete,
        users::restore, users::unlock, mfa::reset, audit::list,
        accounts::sessions, accounts::end_sessions, accounts::sign_in_methods,
        webhooks::list, webhooks::create, webhooks::get, webhooks::update, webhooks::delete,
        webhooks::rotate_secret, webhooks::test, webhooks::deliveries::list,
        webhooks::deliveries::attempts, webhooks::deliveries::retry,
        operations::health, operations::live, operations::jwks, operations::metrics,
    ),
    components(
        schemas(HttpValidationError, FieldError, OAuthError, OAuthValidationError, MfaRequiredError, CodedError, ScopeError),
        responses(TooManyRequests)
    ),
    modifiers(&Conventions),
    tags(
        (name = "auth", description = "Registration, login, tokens and the current user"),
        (name = "sessions", description = "The caller's sessions and password"),
        (name = "mfa", description = "The caller's second factor (TOTP, RFC 6238)"),
        (name = "oauth", description = "Sign-in with an OpenID provider, and the caller's linked identities"),
        (name = "users", description = "User management"),
        (name = "tokens", description = "Personal access tokens: scoped, expiring credentials for scripts and services"),
        (name = "passkeys", description = "Passkeys (WebAuthn): sign in with a fingerprint, a face or a security key"),
        (name = "webhooks", description = "Webhooks: the audit trail's events delivered to your services, signed as Standard Webhooks (superusers)"),
        (name = "operations", description = "Health, public keys and metrics"),
    )
)]
pub struct ApiDoc;

/// The document served at `/openapi.json`, rendered once.
pub(crate) static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| String::from("{}"))
});

/// The responses every operation of a kind can give, added in one place so
/// that no operation forgets one: 401 wherever a token is needed, 413, 415
/// and 422 wherever input is read, 503 wherever the database is used.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from `/api/auth/login`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::Password(Password::new(
                    "/api/auth/login",
                    Scopes::new(),
                ))],
                "The OAuth2 password flow: log in with your e-mail (or username) and password",
            )),
        );
        components.add_security_scheme(
            "pat",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("uhp_…")
                    .description(Some(
                        "A personal access token from `/api/auth/tokens`, sent as `Authorization: Bearer uhp_…`; \
                         an operation lists the scope it needs",
                    ))
                    .build(),
            ),
        );
        let shared = [
            (
                "InsufficientScope",
                ResponseBuilder::new()
                    .description(
                        "A personal access token without the scope this operation needs, or any token \
                         where tokens are not allowed (`{\"detail\": \"Not allowed with a personal access token\"}`)",
                    )
                    .content(
                        "application/json",
                        utoipa::openapi::ContentBuilder::new()
                            .schema(Some(RefOr::Ref(Ref::from_schema_name("ScopeError"))))
                            .example(Some(serde_json::json!({
                                "detail": "Insufficient scope",
                                "required_scope": "users:write",
                            })))
                            .build(),
                    )
                    .build(),
            ),
            (
                "Unauthorized",
                error(
                    "Missing, invalid or expired token; ended session or deactivated user",
                    "Could not validate credentials",
                    Some(("WWW-Authenticate", "`Bearer`")),
                ),
            ),
            ("ValidationFailed", validation_failed("HttpValidationError")),
            (
                "OAuthValidationFailed",
                validation_failed("OAuthValidationError"),
            ),
            (
                "PayloadTooLarge",
                error(
                    "The body is larger than `MAX_BODY_BYTES`",
                    "Request body too large",
                    None,
                ),
            ),
            (
                "BodyTimeout",
                error(
                    "The body did not arrive within `BODY_TIMEOUT_SECONDS` of the head; the connection is closed",
                    "Request body not received in time",
                    None,
                ),
            ),
            (
                "UnsupportedMediaType",
                error(
                    "The body is not JSON",
                    "Content-Type must be application/json",
                    None,
                ),
            ),
            (
                "OAuthUnsupportedMediaType",
                oauth_error(
                    "The body is neither JSON nor a form",
                    "Content-Type must be application/json or application/x-www-form-urlencoded",
                ),
            ),
            (
                "Unavailable",
                error(
                    "The database cannot serve right now",
                    "Service temporarily unavailable",
                    Some(("Retry-After", "Seconds to wait")),
                ),
            ),
        ];
        for (name, response) in shared {
            components
                .responses
                .insert(name.to_owned(), RefOr::T(response));
        }

        for (path, item) in &mut doc.paths.paths {
            let operations = [
                (Method::GET, &mut item.get),
                (Method::PUT, &mut item.put),
                (Method::POST, &mut item.post),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
            ];
            for (method, op) in operations {
                if let Some(op) = op {
                    add_conventional(path, op);
                    crate::scopes::document(&method, path, op);
                }
            }
        }
        // PATCH is served like PUT.
        if let Some(item) = doc.paths.paths.get_mut("/api/users/{id}")
            && let Some(mut patch) = item.put.clone()
        {
            patch.operation_id = Some("patch_user".to_owned());
            patch.summary = Some("Changes the fields sent of a user (as PUT)".to_owned());
            item.patch = Some(patch);
        }
    }
}

fn add_conventional(path: &str, op: &mut Operation) {
    // The token endpoints answer with RFC 6749's fields too.
    let oauth = matches!(op.operation_id.as_deref(), Some("login" | "refresh"));
    let mut add = |status: &str, name: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    };
    if op.security.is_some() {
        add("401", "Unauthorized");
    }
    if op.request_body.is_some() {
        add("408", "BodyTimeout");
        add("413", "PayloadTooLarge");
        add(
            "415",
            if oauth {
                "OAuthUnsupportedMediaType"
            } else {
                "UnsupportedMediaType"
            },
        );
    }
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if op.request_body.is_some() || has_params {
        add(
            "422",
            if oauth {
                "OAuthValidationFailed"
            } else {
                "ValidationFailed"
            },
        );
    }
    if path.starts_with("/api/") {
        add("503", "Unavailable");
    }
}

fn error(description: &str, detail: &str, header: Option<(&str, &str)>) -> Response {
    let content = utoipa::openapi::ContentBuilder::new()
        .schema(Some(RefOr::Ref(Ref::from_schema_name("HttpError"))))
        .example(Some(serde_json::json!({ "detail": detail })))
        .build();
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content);
    if let Some((name, text)) = header {
        response = response.header(
            name,
            HeaderBuilder::new()
                .schema(String::schema())
                .description(Some(text))
                .build(),
        );
    }
    response.build()
}

fn validation_failed(schema: &str) -> Response {
    ResponseBuilder::new()
        .description("Invalid input: one entry per failing field")
        .content(
            "application/json",
            Content::new(Some(RefOr::Ref(Ref::from_schema_name(schema)))),
        )
        .build()
}

fn oauth_error(description: &str, detail: &str) -> Response {
    let content = utoipa::openapi::ContentBuilder::new()
        .schema(Some(RefOr::Ref(Ref::from_schema_name("OAuthError"))))
        .example(Some(serde_json::json!({
            "detail": detail,
            "error": "invalid_request",
            "error_description": detail,
        })))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build()
}

/// Swagger UI's settings: the document to show, and tokens kept across reloads.
static SWAGGER: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        utoipa_swagger_ui::Config::from("/openapi.json")
            .persist_authorization(true)
            .try_it_out_enabled(true),
    )
});

/// The password flow's dialog asks for a client id and secret (and where
/// to send them) that UserHub neither needs nor checks: hidden, so that
/// Authorize shows the username and password only.
const HIDE_CLIENT_FIELDS: &str = ".auth-container .wrapper:has(> label[for=password_type]), \
     .auth-container .wrapper:has(> label[for=client_id_password]), \
     .auth-container .wrapper:has(> label[for=client_secret_password]) { display: none; }";

/// `GET /openapi.json`.
pub(crate) async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT.as_str())
}

/// `GET /docs` and the files under it, all served from the binary.
pub(crate) async fn docs(tail: Option<web::Path<String>>) -> Result<HttpResponse, ApiError> {
    let tail = tail.map(web::Path::into_inner).unwrap_or_default();
    let file = utoipa_swagger_ui::serve(&tail, SWAGGER.clone())
        .map_err(|err| {
            tracing::error!(error = %err, "serving Swagger UI failed");
            ApiError::Internal
        })?
        .ok_or(ApiError::NotFound("Not Found"))?;
    let body = if tail.is_empty() || tail == "index.html" {
        // The page's links are relative; `/docs` and `/docs/` must both find them.
        String::from_utf8_lossy(&file.bytes)
            .replacen(
                "<head>",
                &format!(
                    "<head>\n    <base href=\"/docs/\">\n    <style>{HIDE_CLIENT_FIELDS}</style>"
                ),
                1,
            )
            .into_bytes()
    } else {
        file.bytes.into_owned()
    };
    Ok(HttpResponse::Ok()
        .content_type(file.content_type)
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .body(body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use userhub_domain::model::{Email, FullName, Password, Username};
    use utoipa::OpenApi;

    use super::ApiDoc;

    /// utoipa's attributes take literals only, so the field rules are
    /// written there as numbers and patterns; this holds every request
    /// schema's to the domain's constants, the rules the server applies.
    #[test]
    fn the_documented_field_limits_are_the_domains() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let limits: [(&str, Option<usize>, usize); 5] = [
            ("username", Some(Username::MIN_LEN), Username::MAX_LEN),
            ("email", None, Email::MAX_LEN),
            ("full_name", None, FullName::MAX_LEN),
            ("password", Some(Password::MIN_BYTES), Password::MAX_BYTES),
            (
                "new_password",
                Some(Password::MIN_BYTES),
                Password::MAX_BYTES,
            ),
        ];
        // The schemas that take new values (a login takes any name and
        // password it is given; responses have no limits).
        let requests = [
            "RegisterRequest",
            "CreateUserRequest",
            "UpdateUserRequest",
            "ChangePasswordRequest",
            "ResetPasswordRequest",
            "ForgotPasswordRequest",
            "VerifyRequestRequest",
        ];
        let mut checked = 0;
        for schema_name in requests {
            let properties = doc["components"]["schemas"][schema_name]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{schema_name} is documented"));
            for (field, min, max) in limits {
                let Some(property) = properties.get(field) else {
                    continue;
                };
                let where_ = format!("{schema_name}.{field}");
                assert_eq!(property["maxLength"], max, "{where_}: {property}");
                match min {
                    Some(min) => assert_eq!(property["minLength"], min, "{where_}: {property}"),
                    None => assert!(property.get("minLength").is_none(), "{where_}: {property}"),
                }
                if field == "username" {
                    assert_eq!(
                        property["pattern"],
                        Username::PATTERN,
                        "{where_}: {property}"
                    );
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 16, "every field of those schemas is checked");
    }
}
