//! The audit trail: the caller's own security events, and every event for
//! superusers.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use userhub_domain::model::{AuditEvent, AuditKind, FailureReason, UserId};
use userhub_domain::services::{AuditPage, ListAuditEvents};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::dto::rfc3339;
use crate::error::{ApiError, HttpError};
use crate::extract::{CurrentUser, ValidQuery};
use crate::state::ApiState;
use crate::validation::{self, Fields, IntoDomain, Issue};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource(
        "/api/auth/events",
        [(Method::GET, web::to(own))],
    ))
    .service(super::resource(
        "/api/audit-events",
        [(Method::GET, web::to(list))],
    ));
}

/// Longest cursor looked at; the server's own are far shorter.
pub(crate) const MAX_CURSOR: usize = 128;

/// One security event.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193b5e2-7c1a-7d3e-9f00-5a1b2c3d4e60", "at": "2026-11-25T10:00:00.123456Z",
    "type": "user.updated", "outcome": "success",
    "actor_id": "0193b5e2-7c1a-7d3e-9f00-5a1b2c3d4e5f", "subject_id": "0193b5e2-7c1a-7d3e-9f00-5a1b2c3d4e5f",
    "ip": "203.0.113.7", "user_agent": "Mozilla/5.0", "request_id": "4b7c…",
    "details": {"fields": ["full_name"]}}), as = AuditEvent)]
pub(crate) struct AuditEventResponse {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = DateTime)]
    at: String,
    #[serde(rename = "type")]
    #[schema(schema_with = event_type_schema)]
    kind: &'static str,
    /// `success`, or `failure` for `login.failed`, `login.locked` and
    /// `token.reuse_detected`.
    #[schema(example = "success")]
    outcome: &'static str,
    /// Who acted; `null` for an anonymous request (a login attempt, say).
    #[schema(required = true, format = Uuid)]
    actor_id: Option<String>,
    /// Whose account it concerns; `null` for a login name no account has.
    #[schema(required = true, format = Uuid)]
    subject_id: Option<String>,
    /// The client's address; in a user's own listing, `null` where
    /// someone else (a superuser) acted.
    #[schema(required = true)]
    ip: Option<String>,
    #[schema(required = true)]
    user_agent: Option<String>,
    /// The `X-Request-Id` the request was logged under.
    #[schema(required = true)]
    request_id: Option<String>,
    details: Details,
}

/// Facts beyond the columns; never a secret. Keys appear only when set.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditEventDetails)]
pub(crate) struct Details {
    /// The fields a `user.updated` changed (names only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<String>,
    /// Why a login failed: `unknown_account`, `wrong_password`,
    /// `inactive`, `wrong_current_password`, `email_not_verified`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    /// The session a login or session event is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    session_id: Option<String>,
    /// How long a `login.locked` lock lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    lock_seconds: Option<i64>,
    /// How a `login.succeeded` signed in, when not by password: `oauth:<provider>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<String>,
    /// The provider an `identity.linked` or `identity.unlinked` is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    /// The ways in an `email.reverted` removed with the change it undid:
    /// `identity:<provider>`, `totp`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    removed: Vec<String>,
    /// The personal access token a `token.created` or `token.revoked` is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    token_id: Option<String>,
    /// The webhook a `webhook.*` event is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    webhook_id: Option<String>,
}

impl From<AuditEvent> for AuditEventResponse {
    fn from(event: AuditEvent) -> Self {
        let id = |user: Option<UserId>| user.map(|id| id.to_string());
        Self {
            id: event.id.to_string(),
            at: rfc3339(event.at),
            kind: event.kind.as_str(),
            outcome: event.outcome().as_str(),
            actor_id: id(event.actor_id),
            subject_id: id(event.subject_id),
            ip: event.client.ip,
            user_agent: event.client.user_agent,
            request_id: event.client.request_id,
            details: Details {
                fields: event.details.fields,
                reason: event.details.reason.map(FailureReason::as_str),
                session_id: event.details.session_id.map(|id| id.to_string()),
                lock_seconds: event.details.lock_seconds,
                method: event.details.method,
                provider: event.details.provider,
                removed: event.details.removed,
                token_id: event.details.token_id.map(|id| id.to_string()),
                webhook_id: event.details.webhook_id.map(|id| id.to_string()),
            },
        }
    }
}

/// One page of events, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditEventPage {
    items: Vec<AuditEventResponse>,
    /// Opaque; pass as `cursor` (with the same filters) for the next
    /// (older) page; `null` on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// The window of the caller's own listing.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct OwnEventsQuery {
    /// Events to return.
    #[param(minimum = 1, maximum = 100, default = 10)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(max_length = 128, pattern = "^[^\\x00]*$")]
    cursor: Option<String>,
}

/// The caller's own security events: logins and failed attempts on their
/// account, sessions ended, password and profile changes, by them or by a
/// superuser.
#[utoipa::path(
    get,
    path = "/api/auth/events",
    operation_id = "list_own_events",
    tag = "sessions",
    params(OwnEventsQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses((status = 200, description = "The caller's events, newest first", body = AuditEventPage))
)]
pub(crate) async fn own(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    query: ValidQuery<OwnEventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.0;
    let caller = &caller.0.user;
    let after = open_cursor(&state, caller.id, "own", q.cursor.as_deref())?;
    let page = state.audit.own(caller, after, limit(q.limit)).await?;
    Ok(page_response(&state, caller.id, "own", page))
}

/// Filters of the superusers' listing.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Only events about this user.
    #[param(value_type = Option<String>, format = Uuid)]
    user_id: Option<String>,
    /// Only events by this user (an extension of the contract).
    #[param(value_type = Option<String>, format = Uuid)]
    actor_id: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type", schema_with = event_type_schema)]
    kind: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
    /// Events to return.
    #[param(minimum = 1, maximum = 100, default = 10)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page, with the same filters.
    #[param(max_length = 128, pattern = "^[^\\x00]*$")]
    cursor: Option<String>,
}

impl IntoDomain for OwnEventsQuery {
    type Domain = Self;

    fn into_domain(self, fields: &mut Fields) -> Option<Self> {
        let limit = fields.optional("limit", self.limit, validation::within(1, 100));
        let cursor = fields.optional("cursor", self.cursor, validation::bounded(MAX_CURSOR));
        Some(Self {
            limit: limit?,
            cursor: cursor?,
        })
    }
}

/// A superuser's listing: its filters as domain values, what a cursor of
/// it is bound to, and the cursor.
pub(crate) struct AuditListing {
    request: ListAuditEvents,
    binding: String,
    cursor: Option<String>,
}

impl IntoDomain for AuditQuery {
    type Domain = AuditListing;

    /// An empty value is malformed, not absent.
    fn into_domain(self, fields: &mut Fields) -> Option<AuditListing> {
        let binding = format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            self.user_id, self.actor_id, self.kind, self.since, self.until
        );
        // The page's own rules first, then the filters.
        let limit = fields.optional("limit", self.limit, validation::within(1, 100));
        let cursor = fields.optional("cursor", self.cursor, validation::bounded(MAX_CURSOR));
        let subject = fields.optional("user_id", self.user_id, filter(user_id));
        let actor = fields.optional("actor_id", self.actor_id, filter(user_id));
        let kind = fields.optional("type", self.kind, filter(kind));
        let since = fields.optional("since", self.since, filter(datetime));
        let until = fields.optional("until", self.until, filter(datetime));
        Some(AuditListing {
            request: ListAuditEvents {
                user_id: subject?,
                actor_id: actor?,
                kind: kind?,
                since: since?,
                until: until?,
                after: None,
                limit: self::limit(limit?),
            },
            binding,
            cursor: cursor?,
        })
    }
}

/// Every security event, filtered (superusers only).
#[utoipa::path(
    get,
    path = "/api/audit-events",
    operation_id = "list_audit_events",
    tag = "users",
    params(AuditQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "Matching events, newest first", body = AuditEventPage),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
    )
)]
pub(crate) async fn list(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    query: ValidQuery<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let AuditListing {
        request,
        binding,
        cursor,
    } = query.0;
    let caller = &caller.0.user;
    let request = ListAuditEvents {
        after: open_cursor(&state, caller.id, &binding, cursor.as_deref())?,
        ..request
    };
    let page = state.audit.list(caller, request).await?;
    Ok(page_response(&state, caller.id, &binding, page))
}

/// The event types, listed from the domain's own.
fn event_type_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("The event type"))
        .enum_values(Some(AuditKind::ALL.map(AuditKind::as_str)))
        .build()
}

/// The page size asked for; the range was validated.
fn limit(raw: Option<i64>) -> u64 {
    u64::try_from(raw.unwrap_or(10)).unwrap_or(10)
}

pub(crate) fn open_cursor(
    state: &ApiState,
    caller: UserId,
    binding: &str,
    raw: Option<&str>,
) -> Result<Option<Uuid>, ApiError> {
    raw.map(|raw| {
        state
            .cursor_key
            .open::<uuid::Uuid>(caller, binding, raw)
            .ok_or_else(|| {
                ApiError::field(
                    "value_error",
                    "query",
                    "cursor",
                    "Value error, not a cursor of this listing",
                )
            })
    })
    .transpose()
}

fn page_response(state: &ApiState, caller: UserId, binding: &str, page: AuditPage) -> HttpResponse {
    let next_cursor = page
        .next
        .map(|id| state.cursor_key.seal(caller, binding, &id));
    HttpResponse::Ok().json(AuditEventPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor,
    })
}

/// A filter's rule: at most 64 characters, then `parse`.
fn filter<T>(parse: fn(&str) -> Result<T, Issue>) -> impl FnOnce(String) -> Result<T, Issue> {
    move |raw| validation::bounded(64)(raw).and_then(|raw| parse(&raw))
}

fn user_id(raw: &str) -> Result<UserId, Issue> {
    Uuid::parse_str(raw)
        .map(UserId::from_uuid)
        .map_err(|_| Issue::new("uuid_parsing", "Input should be a valid UUID"))
}

fn kind(raw: &str) -> Result<AuditKind, Issue> {
    AuditKind::parse(raw).ok_or_else(|| {
        Issue::new(
            "enum",
            "Input should be one of the event types: 'user.registered', 'login.succeeded', \
         'login.failed', 'login.locked', 'token.reuse_detected', 'session.ended', \
         'sessions.ended_all', 'password.changed', 'password.reset_requested', \
         'password.reset', 'email.verified', 'user.created', 'user.updated', 'user.deleted', \
         'user.restored' or 'user.unlocked'",
        )
    })
}

fn datetime(raw: &str) -> Result<OffsetDateTime, Issue> {
    OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| {
        Issue::new(
            "datetime_from_date_parsing",
            "Input should be a valid datetime (RFC 3339, e.g. 2026-11-25T10:00:00Z)",
        )
    })
}
