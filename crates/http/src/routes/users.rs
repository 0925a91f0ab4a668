//! `/api/users`: listing, reading, creating, updating, deleting and restoring users.

mod listing;

use actix_web::http::Method;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use userhub_domain::model::{Email, FullName, UserId, Username, VersionMatch};
use userhub_domain::services::{CreateUser, UserChanges};
use utoipa::ToSchema;

use crate::dto::{UserResponse, created, new_password, new_user, user_response};
use crate::error::{ApiError, HttpError};
use crate::extract::{
    Claimed, Client, CurrentUser, HashBudgetSpent, PathId, ValidJson, client_info,
};
use crate::state::ApiState;
use crate::validation::{self, Fields, IntoDomain};

pub(crate) use listing::*;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource(
        "/api/users",
        [
            (Method::GET, web::to(list)),
            (Method::POST, web::to(create)),
        ],
    ))
    .service(super::resource(
        "/api/users/{id}",
        [
            (Method::GET, web::to(get)),
            (Method::PUT, web::to(update)),
            (Method::PATCH, web::to(update)),
            (Method::DELETE, web::to(delete)),
        ],
    ))
    .service(super::resource(
        "/api/users/{id}/restore",
        [(Method::POST, web::to(restore))],
    ))
    .service(super::resource(
        "/api/users/{id}/unlock",
        [(Method::POST, web::to(unlock))],
    ));
}

/// The versions `If-Match` accepts: `None` without the header or with `*`.
/// Every `If-Match` line counts, as one list (RFC 9110). A weak or
/// malformed tag can never match (strong comparison).
fn if_match(req: &HttpRequest) -> Option<VersionMatch> {
    let mut lines = req.headers().get_all(header::IF_MATCH).peekable();
    lines.peek()?;
    let mut versions = Vec::new();
    for line in lines {
        for tag in line.to_str().unwrap_or_default().split(',') {
            let tag = tag.trim();
            if tag == "*" {
                return None;
            }
            if let Some(version) = tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .and_then(|t| t.parse::<u64>().ok())
            {
                versions.push(version);
            }
        }
    }
    Some(VersionMatch::any_of(versions))
}

/// One user.
#[utoipa::path(
    get,
    path = "/api/users/{id}",
    operation_id = "get_user",
    tag = "users",
    params(("id" = String, Path, format = Uuid, description = "The user's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The user", body = UserResponse,
            headers(("ETag" = String, description = "The user's version, for `If-Match` (to the user and superusers)"))),
        (status = 404, description = "Unknown user (or deactivated, to a non-superuser)", body = HttpError),
    )
)]
pub(crate) async fn get(
    state: web::Data<ApiState>,
    caller: Claimed,
    id: PathId<UserId>,
) -> Result<HttpResponse, ApiError> {
    let view = match caller {
        // The session check and the read are one query.
        Claimed::Claims(claims) => state.users.get_as(claims, id.0).await?,
        Claimed::Token(caller) => state.users.get(&caller.user, id.0).await?,
    };
    Ok(user_response(view))
}

crate::dto::new_user_request! {
    /// A user made by a superuser.
    #[schema(example = json!({"email": "grace@example.com", "username": "grace", "password": "correct horse battery staple", "full_name": "Grace Hopper", "is_superuser": false}))]
    CreateUserRequest {
        /// Default `true`.
        is_active: Option<bool>,
        /// Default `false`.
        is_superuser: Option<bool>,
    }
}

impl IntoDomain for CreateUserRequest {
    type Domain = CreateUser;

    fn into_domain(self, fields: &mut Fields) -> Option<CreateUser> {
        let new = new_user(
            fields,
            self.email,
            self.username,
            self.password,
            self.full_name.as_deref(),
        )?;
        Some(CreateUser {
            email: new.email,
            username: new.username,
            password: new.password,
            full_name: new.full_name,
            is_active: self.is_active,
            is_superuser: self.is_superuser,
            is_verified: None,
        })
    }
}

/// Creates a user (superusers only).
#[utoipa::path(
    post,
    path = "/api/users",
    operation_id = "create_user",
    tag = "users",
    request_body = CreateUserRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 201, description = "The new user", body = UserResponse,
            headers(("Location" = String, description = "The user's URL"))),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 409, description = "Email or username taken", body = HttpError),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn create(
    state: web::Data<ApiState>,
    _budget: HashBudgetSpent,
    caller: CurrentUser,
    body: ValidJson<CreateUserRequest>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    crate::extract::charge_token_caller(&state, &caller.0).await?;
    let view = state
        .users
        .create(&caller.0.user, body.0, &client.0)
        .await?;
    crate::metrics::record_registration("admin");
    Ok(created(view))
}

/// Every field optional: an absent field (or `null`) stays as it is, except
/// `full_name: null`, which clears the name. `password`, `is_active` and
/// `is_superuser` are superuser-only unless unchanged. Changing one's own
/// `email` needs `current_password` (unless the server turned that off).
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"full_name": "Ada King"}))]
pub(crate) struct UpdateUserRequest {
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    #[schema(
        min_length = 3,
        max_length = 32,
        pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"
    )]
    username: Option<String>,
    #[serde(default, deserialize_with = "validation::double_option")]
    #[schema(value_type = Option<String>, max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    full_name: Option<Option<String>>,
    // Personal-information rules need the final username and e-mail: the domain checks them.
    #[schema(min_length = 8, max_length = 72, pattern = "^[^\\x00]*$", format = Password)]
    password: Option<String>,
    is_active: Option<bool>,
    is_superuser: Option<bool>,
    /// The account's password: needed to change one's own `email`, read
    /// nowhere else, never echoed.
    #[schema(max_length = 1024, pattern = "^[^\\x00]*$", format = Password, write_only)]
    current_password: Option<String>,
}

impl IntoDomain for UpdateUserRequest {
    type Domain = UserChanges;

    fn into_domain(self, fields: &mut Fields) -> Option<UserChanges> {
        let email = fields.optional("email", self.email, |raw| {
            validation::parse_text(raw, Email::parse)
        });
        let username = fields.optional("username", self.username, |raw| {
            validation::parse_text(raw, Username::parse)
        });
        let full_name = fields.optional("full_name", self.full_name, |name| {
            name.as_deref().map(FullName::parse).transpose()
        });
        let password = fields.optional("password", self.password, |raw| {
            new_password(raw, None, None)
        });
        let current_password = fields.optional(
            "current_password",
            self.current_password,
            validation::bounded(1024),
        );
        Some(UserChanges {
            email: email?,
            username: username?,
            full_name: full_name?,
            password: password?,
            is_active: self.is_active,
            is_superuser: self.is_superuser,
            current_password: current_password?.map(SecretString::from),
        })
    }
}

/// Changes the fields sent of a user.
#[utoipa::path(
    put,
    path = "/api/users/{id}",
    operation_id = "update_user",
    tag = "users",
    request_body = UpdateUserRequest,
    params(
        ("id" = String, Path, format = Uuid, description = "The user's id"),
        ("If-Match" = Option<String>, Header, description = "An `ETag` of the user: 412 unless it is still current"),
    ),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The updated user", body = UserResponse,
            headers(("ETag" = String, description = "The user's new version"))),
        (status = 400, description = "Wrong `current_password` for an email change (counted as a failed login)", body = HttpError),
        (status = 403, description = "Not the user, a superuser-only field changed, a wrong password, or an email change without `current_password`", body = HttpError),
        (status = 404, description = "Unknown user", body = HttpError),
        (status = 409, description = "Email or username taken, or the last active superuser demoted", body = HttpError),
        (status = 412, description = "`If-Match` names an older version", body = HttpError),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn update(
    state: web::Data<ApiState>,
    req: HttpRequest,
    caller: Claimed,
    id: PathId<UserId>,
    body: ValidJson<UpdateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let changes = body.0;
    let target = match caller {
        // The session check and the read of the user are one round trip.
        Claimed::Claims(claims) => state.users.target_as(claims, id.0).await?,
        Claimed::Token(caller) => {
            // A token never changes its owner's credentials.
            if caller.user.id == id.0 && (changes.email.is_some() || changes.password.is_some()) {
                return Err(ApiError::Forbidden(crate::scopes::NOT_WITH_TOKEN));
            }
            state.users.target(caller.user, id.0).await?
        }
    };
    // Counted against the account written, and only once the caller is
    // known to be allowed to write it: nobody else can spend someone's budget.
    state.spend_write_budget(id.0).await?;
    if changes.password.is_some() || changes.current_password.is_some() {
        state
            .spend_hash_budget(format!("user:{}", target.actor().id))
            .await?;
    }
    let client = client_info(&req, state.trust_forwarded_for);
    let view = state
        .users
        .apply(target, changes, if_match(&req), &client)
        .await?;
    Ok(user_response(view))
}

/// Soft-deletes a user and ends its sessions.
#[utoipa::path(
    delete,
    path = "/api/users/{id}",
    operation_id = "delete_user",
    tag = "users",
    params(
        ("id" = String, Path, format = Uuid, description = "The user's id"),
        ("If-Match" = Option<String>, Header, description = "An `ETag` of the user: 412 unless it is still current"),
    ),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Deactivated"),
        (status = 403, description = "Neither the user nor a superuser", body = HttpError),
        (status = 404, description = "Unknown or already deleted user", body = HttpError),
        (status = 409, description = "The last active superuser", body = HttpError),
        (status = 412, description = "`If-Match` names an older version", body = HttpError),
    )
)]
pub(crate) async fn delete(
    state: web::Data<ApiState>,
    req: HttpRequest,
    caller: CurrentUser,
    id: PathId<UserId>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state
        .users
        .delete(&caller.0.user, id.0, if_match(&req), &client.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Reactivates a soft-deleted user (superusers only).
#[utoipa::path(
    post,
    path = "/api/users/{id}/restore",
    operation_id = "restore_user",
    tag = "users",
    params(("id" = String, Path, format = Uuid, description = "The user's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The restored user", body = UserResponse),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "Unknown user", body = HttpError),
    )
)]
pub(crate) async fn restore(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<UserId>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let view = state.users.restore(&caller.0.user, id.0, &client.0).await?;
    Ok(user_response(view))
}

/// Lifts a login lockout (superusers only).
#[utoipa::path(
    post,
    path = "/api/users/{id}/unlock",
    operation_id = "unlock_user",
    tag = "users",
    params(("id" = String, Path, format = Uuid, description = "The user's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The user, unlocked", body = UserResponse),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "Unknown user", body = HttpError),
    )
)]
pub(crate) async fn unlock(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<UserId>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let view = state.users.unlock(&caller.0.user, id.0, &client.0).await?;
    Ok(user_response(view))
}
