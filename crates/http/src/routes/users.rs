//! `/api/users`: listing, reading, creating, updating, deleting and restoring users.

use actix_web::http::Method;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use userhub_domain::model::{Email, FullName, UserId, Username, VersionMatch};
use userhub_domain::ports::{UserSort, UserSortField};
use userhub_domain::services::{CreateUser, ListUsers, UserChanges, UserListing};
use utoipa::{IntoParams, ToSchema};

use crate::app::ApiState;
use crate::dto::{UserResponse, created, new_password, new_user, user_response};
use crate::error::{ApiError, HttpError};
use crate::extract::{
    Claimed, Client, CurrentUser, HashBudgetSpent, PathId, ValidJson, ValidQuery, client_info,
};
use crate::validation::{self, Fields, IntoDomain};

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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Rows to skip.
    #[param(minimum = 0, default = 0)]
    skip: Option<i64>,
    /// Rows to return.
    #[param(minimum = 1, maximum = 100, default = 10)]
    limit: Option<i64>,
    /// Case-insensitive substring of the username or full name (and the
    /// e-mail, for superusers); empty means no search.
    #[param(max_length = 100, pattern = "^[^\\x00]*$")]
    search: Option<String>,
    /// Order; ties break on the id.
    #[param(inline)]
    sort: Option<SortKey>,
    /// Superusers only.
    #[serde(default, deserialize_with = "validation::query_bool")]
    is_active: Option<bool>,
    #[serde(default, deserialize_with = "validation::query_bool")]
    is_superuser: Option<bool>,
    /// Keyset pagination: the opaque `next_cursor` of the previous page,
    /// with the same `sort`, `search` and filters. The page then starts
    /// right after that page's last row (and `skip` counts from there), so
    /// deep pages cost as little as the first.
    #[param(value_type = Option<String>, max_length = 512)]
    cursor: Option<String>,
}

/// Longest cursor looked at; the server's own are far shorter.
const MAX_CURSOR: usize = 512;

/// What a cursor is bound to besides its caller: the order and filters of
/// the listing it continues.
fn listing_binding(request: &ListUsers) -> String {
    let sort = match request.sort.field {
        UserSortField::CreatedAt => "created_at",
        UserSortField::Username => "username",
        UserSortField::Email => "email",
    };
    format!(
        "{}{sort}\n{:?}\n{:?}\n{}",
        if request.sort.descending { "-" } else { "" },
        request.is_active,
        request.is_superuser,
        request.search.as_deref().unwrap_or_default().to_lowercase(),
    )
}

/// The orders a listing can take; `-` means descending.
#[derive(Clone, Copy, Deserialize, ToSchema)]
pub(crate) enum SortKey {
    #[serde(rename = "created_at")]
    CreatedAt,
    #[serde(rename = "username")]
    Username,
    #[serde(rename = "email")]
    Email,
    #[serde(rename = "-created_at")]
    CreatedAtDesc,
    #[serde(rename = "-username")]
    UsernameDesc,
    #[serde(rename = "-email")]
    EmailDesc,
}

impl From<SortKey> for UserSort {
    fn from(key: SortKey) -> Self {
        let (field, descending) = match key {
            SortKey::CreatedAt => (UserSortField::CreatedAt, false),
            SortKey::Username => (UserSortField::Username, false),
            SortKey::Email => (UserSortField::Email, false),
            SortKey::CreatedAtDesc => (UserSortField::CreatedAt, true),
            SortKey::UsernameDesc => (UserSortField::Username, true),
            SortKey::EmailDesc => (UserSortField::Email, true),
        };
        UserSort { field, descending }
    }
}

impl IntoDomain for ListQuery {
    /// The listing asked for (its position not yet set), and the cursor.
    type Domain = (ListUsers, Option<String>);

    fn into_domain(self, fields: &mut Fields) -> Option<Self::Domain> {
        let skip = fields.optional("skip", self.skip, validation::within(0, i64::MAX));
        let limit = fields.optional("limit", self.limit, validation::within(1, 100));
        let search = fields.optional("search", self.search, validation::bounded(100));
        let cursor = fields.optional("cursor", self.cursor, validation::bounded(MAX_CURSOR));
        let listing = ListUsers {
            skip: u64::try_from(skip?.unwrap_or(0)).unwrap_or_default(),
            limit: u64::try_from(limit?.unwrap_or(10)).unwrap_or(10),
            search: search?,
            sort: self.sort.map(UserSort::from).unwrap_or_default(),
            is_active: self.is_active,
            is_superuser: self.is_superuser,
            after: None,
        };
        Some((listing, cursor?))
    }
}

/// One page of users.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserPage {
    items: Vec<UserResponse>,
    /// Every user matching the query.
    total: u64,
    skip: u64,
    #[schema(minimum = 1, maximum = 100)]
    limit: u64,
    /// Opaque; pass as `cursor` (with the same query) for the page after
    /// this one; `null` when this page is not full (nothing follows).
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// Lists users, a page at a time.
#[utoipa::path(
    get,
    path = "/api/users",
    operation_id = "list_users",
    tag = "users",
    params(ListQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 403, description = "A non-superuser filtered on `is_active` or sorted by `email`", body = HttpError),
    )
)]
pub(crate) async fn list(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    query: ValidQuery<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let (mut request, cursor) = query.0;
    let (skip, limit) = (request.skip, request.limit);
    let caller_id = caller.0.user.id;
    let binding = listing_binding(&request);
    if let Some(raw) = &cursor {
        let position = state
            .cursor_key
            .open(caller_id, &binding, raw)
            .ok_or_else(|| {
                ApiError::field(
                    "value_error",
                    "query",
                    "cursor",
                    "Value error, not a cursor of this listing",
                )
            })?;
        request.after = Some(position);
    }
    let UserListing { items, total, next } = state.users.list(&caller.0.user, request).await?;
    let next_cursor = next.map(|position| state.cursor_key.seal(caller_id, &binding, &position));
    let items = items.into_iter().map(UserResponse::from).collect();
    Ok(HttpResponse::Ok().json(UserPage {
        items,
        total,
        skip,
        limit,
        next_cursor,
    }))
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
    // The session check and the read are one query.
    let view = state.users.get_as(caller.0, id.0).await?;
    Ok(user_response(view))
}

/// A user made by a superuser.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "grace@example.com", "username": "grace", "password": "correct horse battery staple", "full_name": "Grace Hopper", "is_superuser": false}))]
pub(crate) struct CreateUserRequest {
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(
        min_length = 3,
        max_length = 32,
        pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"
    )]
    username: String,
    /// 8–72 bytes, strong enough, without the username or e-mail.
    #[schema(min_length = 8, max_length = 72, pattern = "^[^\\x00]*$", format = Password)]
    password: String,
    #[schema(max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    full_name: Option<String>,
    /// Default `true`.
    is_active: Option<bool>,
    /// Default `false`.
    is_superuser: Option<bool>,
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
    caller: CurrentUser,
    id: PathId<UserId>,
    body: ValidJson<UpdateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let changes = body.0;
    // Counted against the account written, and only for those who may
    // write it: nobody else can spend someone's budget with refused calls.
    let caller_user = &caller.0.user;
    if caller_user.is_superuser || caller_user.id == id.0 {
        state.spend_write_budget(id.0).await?;
    }
    if changes.password.is_some() || changes.current_password.is_some() {
        state.spend_hash_budget(caller.0.user.id).await?;
    }
    let client = client_info(&req, state.trust_forwarded_for);
    let view = state
        .users
        .update(&caller.0.user, id.0, changes, if_match(&req), &client)
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
