//! `/api/users`: listing, reading, creating, updating, deleting and restoring users.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use garde::Validate;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use userhub_domain::model::{Email, FullName, Password, UserView, Username};
use userhub_domain::ports::{UserSort, UserSortField};
use userhub_domain::services::{CreateUser, ListUsers, UserChanges};

use super::auth::{NewUserFields, invalid};
use crate::app::ApiState;
use crate::error::ApiError;
use crate::extract::{CurrentUser, ValidJson, ValidQuery, user_id};
use crate::validation;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/api/users")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        super::resource("/api/users/{id}")
            .route(web::get().to(get))
            .route(web::put().to(update))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    )
    .service(super::resource("/api/users/{id}/restore").route(web::post().to(restore)))
    .service(super::resource("/api/users/{id}/unlock").route(web::post().to(unlock)));
}

/// A user as API.md shows it; `email` and `last_login_at` are absent when
/// the caller may not read them.
#[derive(Serialize)]
pub(super) struct UserResponse {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    username: String,
    full_name: Option<String>,
    is_active: bool,
    is_superuser: bool,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_login_at: Option<Option<String>>,
}

pub(super) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

impl From<UserView> for UserResponse {
    fn from(view: UserView) -> Self {
        let user = view.user();
        Self {
            id: user.id.to_string(),
            email: view.email().map(|e| e.as_str().to_owned()),
            username: user.username.as_str().to_owned(),
            full_name: user.full_name.as_ref().map(|n| n.as_str().to_owned()),
            is_active: user.is_active,
            is_superuser: user.is_superuser,
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
            last_login_at: view.last_login_at().map(|at| at.map(rfc3339)),
        }
    }
}

/// 201 with the user and its `Location`.
pub(super) fn created(view: UserView) -> HttpResponse {
    let location = format!("/api/users/{}", view.user().id);
    HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(UserResponse::from(view))
}

#[derive(Deserialize, Validate)]
struct ListQuery {
    #[garde(inner(custom(validation::within(0, i64::MAX))))]
    skip: Option<i64>,
    #[garde(inner(custom(validation::within(1, 100))))]
    limit: Option<i64>,
    #[garde(inner(custom(validation::bounded(100))))]
    search: Option<String>,
    #[garde(inner(custom(sort_rule)))]
    sort: Option<String>,
    #[serde(default, deserialize_with = "validation::query_bool")]
    #[garde(skip)]
    is_active: Option<bool>,
    #[serde(default, deserialize_with = "validation::query_bool")]
    #[garde(skip)]
    is_superuser: Option<bool>,
}

const SORTS: &str =
    "Input should be 'created_at', 'username', 'email', '-created_at', '-username' or '-email'";

fn parse_sort(raw: &str) -> Option<UserSort> {
    let (descending, name) = raw
        .strip_prefix('-')
        .map_or((false, raw), |name| (true, name));
    let field = match name {
        "created_at" => UserSortField::CreatedAt,
        "username" => UserSortField::Username,
        "email" => UserSortField::Email,
        _ => return None,
    };
    Some(UserSort { field, descending })
}

fn sort_rule(value: &str, _: &()) -> garde::Result {
    parse_sort(value)
        .map(drop)
        .ok_or_else(|| garde::Error::new(SORTS))
}

#[derive(Serialize)]
struct UserPage {
    items: Vec<UserResponse>,
    total: u64,
    skip: u64,
    limit: u64,
}

async fn list(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    query: ValidQuery<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.0;
    // Ranges were validated above, so the conversions cannot fail.
    let skip = u64::try_from(q.skip.unwrap_or(0)).unwrap_or_default();
    let limit = u64::try_from(q.limit.unwrap_or(10)).unwrap_or(10);
    let request = ListUsers {
        skip,
        limit,
        search: q.search,
        sort: q.sort.as_deref().and_then(parse_sort).unwrap_or_default(),
        is_active: q.is_active,
        is_superuser: q.is_superuser,
    };
    let (views, total) = state.users.list(&caller.0.user, request).await?;
    let items = views.into_iter().map(UserResponse::from).collect();
    Ok(HttpResponse::Ok().json(UserPage {
        items,
        total,
        skip,
        limit,
    }))
}

async fn get(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = state.users.get(&caller.0.user, user_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(view)))
}

#[derive(Deserialize, Validate)]
struct CreateUserRequest {
    #[garde(custom(validation::email))]
    email: String,
    #[garde(custom(validation::username))]
    username: String,
    #[garde(custom(validation::new_password(Some(&self.username), Some(&self.email))))]
    password: String,
    #[garde(inner(custom(validation::full_name)))]
    full_name: Option<String>,
    #[garde(skip)]
    is_active: Option<bool>,
    #[garde(skip)]
    is_superuser: Option<bool>,
}

async fn create(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    body: ValidJson<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    let fields = NewUserFields::parse(&b.email, &b.username, b.password, b.full_name.as_deref())?;
    let cmd = CreateUser {
        email: fields.email,
        username: fields.username,
        password: fields.password,
        full_name: fields.full_name,
        is_active: b.is_active,
        is_superuser: b.is_superuser,
    };
    Ok(created(state.users.create(&caller.0.user, cmd).await?))
}

/// Every field optional; `full_name: null` clears the name.
#[derive(Deserialize, Validate)]
struct UpdateUserRequest {
    #[garde(inner(custom(validation::email)))]
    email: Option<String>,
    #[garde(inner(custom(validation::username)))]
    username: Option<String>,
    #[serde(default, deserialize_with = "validation::double_option")]
    #[garde(inner(inner(custom(validation::full_name))))]
    full_name: Option<Option<String>>,
    // Personal-information rules need the final username and e-mail: the domain checks them.
    #[garde(inner(custom(validation::new_password(None, None))))]
    password: Option<String>,
    #[garde(skip)]
    is_active: Option<bool>,
    #[garde(skip)]
    is_superuser: Option<bool>,
}

async fn update(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: web::Path<String>,
    body: ValidJson<UpdateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&id)?;
    let b = body.0;
    let changes = UserChanges {
        email: b
            .email
            .as_deref()
            .map(Email::parse)
            .transpose()
            .map_err(|e| invalid("email", e))?,
        username: b
            .username
            .as_deref()
            .map(Username::parse)
            .transpose()
            .map_err(|e| invalid("username", e))?,
        full_name: b
            .full_name
            .map(|name| name.as_deref().map(FullName::parse).transpose())
            .transpose()
            .map_err(|e| invalid("full_name", e))?,
        password: b
            .password
            .map(|p| Password::new(SecretString::from(p)))
            .transpose()
            .map_err(|e| invalid("password", e))?,
        is_active: b.is_active,
        is_superuser: b.is_superuser,
    };
    let view = state.users.update(&caller.0.user, id, changes).await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(view)))
}

async fn delete(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.users.delete(&caller.0.user, user_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn restore(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = state.users.restore(&caller.0.user, user_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(view)))
}

async fn unlock(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = state.users.unlock(&caller.0.user, user_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(view)))
}
