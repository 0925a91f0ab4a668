//! Passkeys (WebAuthn): the caller's (list, add, rename, remove), signing
//! in with one, and a superuser's removal of a user's passkeys. Options and
//! answers are WebAuthn Level 3's JSON forms, passed through as they are.

use actix_web::http::Method;
use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use userhub_domain::model::{Passkey, PasskeyId, PasskeyName, UserId};
use userhub_domain::services::CeremonyOptions;
use utoipa::ToSchema;

use crate::dto::rfc3339;
use crate::error::{ApiError, HttpError};
use crate::extract::{Client, CurrentUser, HashBudgetSpent, PathId, ValidJson};
use crate::state::ApiState;
use crate::validation::{self, Fields, IntoDomain, Issue};

pub(crate) mod sign_in;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    let limited = || from_fn(crate::middleware::auth_rate_limit);
    cfg.service(super::resource(
        "/api/auth/passkeys",
        [(Method::GET, web::to(list))],
    ))
    .service(super::resource(
        "/api/auth/passkeys/register/options",
        [(Method::POST, web::to(registration_options))],
    ))
    .service(super::resource(
        "/api/auth/passkeys/register",
        [(Method::POST, web::to(register))],
    ))
    .service(
        super::resource(
            "/api/auth/passkeys/login/options",
            [(Method::POST, web::to(sign_in::login_options))],
        )
        .wrap(limited()),
    )
    .service(
        super::resource(
            "/api/auth/passkeys/login",
            [(Method::POST, web::to(sign_in::login))],
        )
        .wrap(limited()),
    )
    .service(super::resource(
        "/api/auth/passkeys/{id}",
        [
            (Method::PATCH, web::to(rename)),
            (Method::DELETE, web::to(remove)),
        ],
    ))
    .service(super::resource(
        "/api/users/{id}/passkeys",
        [(Method::DELETE, web::to(remove_all))],
    ));
}

/// A passkey, as its owner sees it.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "0193b5e2-7c1a-7d3e-9f00-5a1b2c3d4e62", "name": "Passkey 1", "created_at": "2026-12-07T10:00:00Z", "last_used_at": null, "backed_up": true}))]
pub(crate) struct PasskeyResponse {
    /// UserHub's id for the passkey (not the WebAuthn credential id).
    #[schema(format = Uuid)]
    id: String,
    name: String,
    #[schema(format = DateTime)]
    created_at: String,
    /// When it last signed in.
    #[schema(format = DateTime, required = true)]
    last_used_at: Option<String>,
    /// Whether the authenticator says it is synced (backed up).
    backed_up: bool,
}

impl From<Passkey> for PasskeyResponse {
    fn from(key: Passkey) -> Self {
        Self {
            id: key.id.to_string(),
            name: key.name.as_str().to_owned(),
            created_at: rfc3339(key.created_at),
            last_used_at: key.last_used_at.map(rfc3339),
            backed_up: key.backed_up,
        }
    }
}

/// The options of a ceremony and the token that finishes it, with the
/// member name the contract gives that token.
fn ceremony(options: &CeremonyOptions, token_member: &str) -> Result<HttpResponse, ApiError> {
    let mut body: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&options.options).map_err(|err| {
            tracing::error!(%err, "passkey options are not a JSON object");
            ApiError::Internal
        })?;
    body.insert(
        token_member.to_owned(),
        options.token.expose_secret().into(),
    );
    Ok(HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(body))
}

/// A registration's options: `publicKey` is a
/// `PublicKeyCredentialCreationOptionsJSON` (resident key and user
/// verification required; `excludeCredentials` lists the caller's passkeys).
#[derive(Serialize, ToSchema)]
pub(crate) struct RegistrationOptionsResponse {
    /// For `PublicKeyCredential.parseCreationOptionsFromJSON`.
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    public_key: serde_json::Value,
    /// Single use, 5 minutes: send it back with the credential.
    registration_token: String,
}

/// The caller proves it is them before a passkey is added.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"current_password": "correct horse battery staple"}))]
pub(crate) struct RegistrationOptionsRequest {
    /// Required for an account with a password; an account without one
    /// sends none, and must have signed in within the last 10 minutes.
    #[schema(max_length = 1024, format = Password)]
    current_password: Option<String>,
}

impl IntoDomain for RegistrationOptionsRequest {
    type Domain = Option<SecretString>;

    fn into_domain(self, fields: &mut Fields) -> Option<Option<SecretString>> {
        fields
            .optional(
                "current_password",
                self.current_password,
                validation::required(1024),
            )
            .map(|p| p.map(SecretString::from))
    }
}

/// A registration's answer.
#[derive(Deserialize, ToSchema)]
pub(crate) struct RegisterPasskeyRequest {
    /// From the options.
    #[schema(min_length = 1, max_length = 1024)]
    registration_token: String,
    /// `RegistrationResponseJSON`: what `credential.toJSON()` gives.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
    /// 1–64 characters; "Passkey N" when absent.
    #[schema(min_length = 1, max_length = 64)]
    name: Option<String>,
}

/// A registration's answer, checked for shape.
pub(crate) struct Registration {
    token: String,
    credential: String,
    name: Option<PasskeyName>,
}

fn passkey_name(raw: String) -> Result<PasskeyName, Issue> {
    validation::parse_text(raw, |raw| {
        PasskeyName::parse(raw)
            .map_err(|why| Issue::new("value_error", format!("Value error, {why}")))
    })
}

/// The credential member: a JSON object, as text for the ceremony.
fn credential(value: serde_json::Value) -> Result<String, Issue> {
    if value.is_object() {
        Ok(value.to_string())
    } else {
        Err(Issue::new(
            "dict_type",
            "Input should be a valid dictionary",
        ))
    }
}

impl IntoDomain for RegisterPasskeyRequest {
    type Domain = Registration;

    fn into_domain(self, fields: &mut Fields) -> Option<Registration> {
        let token = fields.take(
            "registration_token",
            validation::required(1024)(self.registration_token),
        );
        let credential = fields.take("credential", credential(self.credential));
        let name = fields.optional("name", self.name, passkey_name);
        Some(Registration {
            token: token?,
            credential: credential?,
            name: name?,
        })
    }
}

/// A passkey's new name.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"name": "Work laptop"}))]
pub(crate) struct RenamePasskeyRequest {
    /// 1–64 characters.
    #[schema(min_length = 1, max_length = 64)]
    name: String,
}

impl IntoDomain for RenamePasskeyRequest {
    type Domain = PasskeyName;

    fn into_domain(self, fields: &mut Fields) -> Option<PasskeyName> {
        fields.take("name", passkey_name(self.name))
    }
}

/// The caller's passkeys.
#[utoipa::path(
    get,
    path = "/api/auth/passkeys",
    operation_id = "list_passkeys",
    tag = "passkeys",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The caller's passkeys, oldest first", body = Vec<PasskeyResponse>),
    )
)]
pub(crate) async fn list(
    state: web::Data<ApiState>,
    caller: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let keys = state.passkeys.list(&caller.0).await?;
    Ok(HttpResponse::Ok().json(
        keys.into_iter()
            .map(PasskeyResponse::from)
            .collect::<Vec<_>>(),
    ))
}

/// Starts adding a passkey: the caller proves it is them.
#[utoipa::path(
    post,
    path = "/api/auth/passkeys/register/options",
    operation_id = "passkey_registration_options",
    tag = "passkeys",
    request_body = RegistrationOptionsRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "Options for `navigator.credentials.create`", body = RegistrationOptionsResponse),
        (status = 400, description = "Wrong password (counted as a failed login)", body = HttpError),
        (status = 403, description = "An account without a password signed in too long ago, or a personal access token", body = HttpError),
        (status = 409, description = "20 passkeys already", body = HttpError),
        (status = 422, description = "No `current_password` for an account that has a password", body = crate::error::HttpValidationError),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn registration_options(
    state: web::Data<ApiState>,
    _budget: HashBudgetSpent,
    caller: CurrentUser,
    body: ValidJson<RegistrationOptionsRequest>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    let options = state
        .passkeys
        .registration_options(&caller.0, body.0.as_ref(), &client.0)
        .await?;
    ceremony(&options, "registration_token")
}

/// Finishes adding a passkey.
#[utoipa::path(
    post,
    path = "/api/auth/passkeys/register",
    operation_id = "register_passkey",
    tag = "passkeys",
    request_body = RegisterPasskeyRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 201, description = "The passkey", body = PasskeyResponse),
        (status = 400, description = "A check failed (attestation, origin, RP ID, challenge), or the token is expired, spent or another user's", body = HttpError,
            example = json!({"detail": "Invalid passkey"})),
        (status = 409, description = "The credential is registered already, or 20 passkeys already", body = HttpError),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn register(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    body: ValidJson<RegisterPasskeyRequest>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    let Registration {
        token,
        credential,
        name,
    } = body.0;
    let key = state
        .passkeys
        .register(&caller.0, &token, &credential, name, &client.0)
        .await?;
    Ok(HttpResponse::Created().json(PasskeyResponse::from(key)))
}

/// Renames one of the caller's passkeys.
#[utoipa::path(
    patch,
    path = "/api/auth/passkeys/{id}",
    operation_id = "rename_passkey",
    tag = "passkeys",
    params(("id" = String, Path, format = Uuid, description = "The passkey's id")),
    request_body = RenamePasskeyRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The passkey", body = PasskeyResponse),
        (status = 404, description = "Not one of the caller's passkeys", body = HttpError),
        (status = 422, description = "A blank name, one with a control character, or longer than 64 characters", body = crate::error::HttpValidationError),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn rename(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<PasskeyId>,
    body: ValidJson<RenamePasskeyRequest>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    let key = state
        .passkeys
        .rename(&caller.0, id.0, &body.0, &client.0)
        .await?;
    Ok(HttpResponse::Ok().json(PasskeyResponse::from(key)))
}

/// Removes one of the caller's passkeys (never the last way in).
#[utoipa::path(
    delete,
    path = "/api/auth/passkeys/{id}",
    operation_id = "remove_passkey",
    tag = "passkeys",
    params(("id" = String, Path, format = Uuid, description = "The passkey's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "Not one of the caller's passkeys", body = HttpError),
        (status = 409, description = "The caller's last way in", body = HttpError,
            example = json!({"detail": "Cannot remove the last sign-in method"})),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn remove(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<PasskeyId>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    state.passkeys.remove(&caller.0, id.0, &client.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Removes every passkey of a user who lost theirs; every session of
/// theirs ends (superusers only).
#[utoipa::path(
    delete,
    path = "/api/users/{id}/passkeys",
    operation_id = "remove_user_passkeys",
    tag = "passkeys",
    params(("id" = String, Path, format = Uuid, description = "The user's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Removed, and the user's sessions ended"),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "No such user", body = HttpError),
    )
)]
pub(crate) async fn remove_all(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<UserId>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state
        .passkeys
        .remove_all(&caller.0, id.0, &client.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
