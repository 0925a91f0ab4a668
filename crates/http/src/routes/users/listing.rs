//! `GET /api/users`: a page of users, by offset or by cursor.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use userhub_domain::ports::{UserSort, UserSortField};
use userhub_domain::services::{ListUsers, UserListing};
use utoipa::{IntoParams, ToSchema};

use crate::dto::UserResponse;
use crate::error::{ApiError, HttpError};
use crate::extract::{CurrentUser, ValidQuery};
use crate::state::ApiState;
use crate::validation::{self, Fields, IntoDomain};

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
