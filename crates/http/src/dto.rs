//! The request and response shapes several routes share, and their
//! conversions: the user as shown, the fields of a new user, timestamps,
//! and the 422 for a value the domain refused.

use actix_web::HttpResponse;
use actix_web::http::header;
use secrecy::SecretString;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use userhub_domain::model::{Email, FullName, Password, PasswordError, UserView, Username};
use userhub_domain::services::RegisterUser;
use utoipa::ToSchema;

use crate::validation::{self, Fields};

/// A user; `email`, `is_verified` and `last_login_at` are absent when the
/// caller may not read them.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "0193b5e2-7c1a-7d3e-9f00-5a1b2c3d4e5f", "email": "ada@example.com", "username": "ada", "full_name": "Ada Lovelace", "is_active": true, "is_superuser": false, "is_verified": true, "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z", "last_login_at": null}))]
pub(crate) struct UserResponse {
    #[schema(format = Uuid)]
    id: String,
    /// Present only to the user and to superusers.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Email, nullable = false)]
    email: Option<String>,
    username: String,
    #[schema(required = true)]
    full_name: Option<String>,
    is_active: bool,
    is_superuser: bool,
    /// Present only to the user and to superusers: the address was shown
    /// to be theirs (a mailed link was followed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    is_verified: Option<bool>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// Present only to the user and to superusers; `null` before the first login.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_login_at: Option<Option<String>>,
}

pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
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
            is_verified: view.is_verified(),
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
            last_login_at: view.last_login_at().map(|at| at.map(rfc3339)),
        }
    }
}

/// The user's `ETag`: its version, bumped by every write.
fn etag(view: &UserView) -> String {
    format!("\"{}\"", view.user().version)
}

/// 200 with the user, and its `ETag` for the user and superusers: the
/// version also moves at each login, which other callers may not learn
/// (they cannot write the user anyway).
pub(crate) fn user_response(view: UserView) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if view.email().is_some() {
        response.insert_header((header::ETAG, etag(&view)));
    }
    response.json(UserResponse::from(view))
}

/// 201 with the user and its `Location`.
pub(crate) fn created(view: UserView) -> HttpResponse {
    let location = format!("/api/users/{}", view.user().id);
    HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(UserResponse::from(view))
}

/// Declares the body of a request that makes a user: the fields every new
/// user is made of, their documented limits written once, then `$extra`.
macro_rules! new_user_request {
    ($(#[$meta:meta])* $name:ident { $($(#[$extra_meta:meta])* $extra:ident: $ty:ty,)* }) => {
        #[derive(serde::Deserialize, utoipa::ToSchema)]
        $(#[$meta])*
        pub(crate) struct $name {
            /// A valid address; trimmed and lower-cased before storage; unique.
            #[schema(format = Email, max_length = 254)]
            email: String,
            /// Lower-cased before storage; unique.
            #[schema(
                min_length = 3,
                max_length = 32,
                pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"
            )]
            username: String,
            /// 8–72 bytes, not containing the username or the e-mail's local part,
            /// and strong enough by the zxcvbn estimate.
            #[schema(min_length = 8, max_length = 72, pattern = "^[^\\x00]*$", format = Password)]
            password: String,
            /// At most 100 characters, no control characters.
            #[schema(max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
            full_name: Option<String>,
            $($(#[$extra_meta])* $extra: $ty,)*
        }
    };
}
pub(crate) use new_user_request;

/// The fields every new user is made of, each parsed once, every refusal
/// recorded in `fields`.
pub(crate) fn new_user(
    fields: &mut Fields,
    email: String,
    username: String,
    password: String,
    full_name: Option<&str>,
) -> Option<RegisterUser> {
    let email = fields.take("email", validation::parse_text(email, Email::parse));
    let username = fields.take(
        "username",
        validation::parse_text(username, Username::parse),
    );
    let password = fields.take(
        "password",
        new_password(password, username.as_ref(), email.as_ref()),
    );
    let full_name = fields.optional("full_name", full_name, FullName::parse);
    Some(RegisterUser {
        email: email?,
        username: username?,
        password: password?,
        full_name: full_name?,
    })
}

/// A new password, checked against its owner's username and address where
/// the request names valid ones (the domain checks the stored ones again).
pub(crate) fn new_password(
    raw: String,
    username: Option<&Username>,
    email: Option<&Email>,
) -> Result<Password, PasswordError> {
    let password = Password::new(SecretString::from(raw))?;
    password.check_not_personal(
        username.map_or("", Username::as_str),
        email.map_or("", Email::local_part),
    )?;
    Ok(password)
}
