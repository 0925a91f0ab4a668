//! Builders the use cases' tests share.
#![allow(clippy::unwrap_used)]

use time::Duration;

use super::*;
use crate::model::*;
use crate::model::{Session, TokenHash, User};
use crate::ports::RefreshToken;
use crate::services::fixtures::{Mocks, NOW, password};

pub(super) fn service(mocks: Mocks) -> AuthService {
    service_with_grace(mocks, Duration::ZERO)
}

pub(super) fn service_with_grace(mocks: Mocks, grace: Duration) -> AuthService {
    AuthService::new(mocks.ports().for_auth(), config(grace))
}

pub(super) fn session_service(mocks: Mocks) -> SessionService {
    session_service_with_grace(mocks, Duration::ZERO)
}

pub(super) fn session_service_with_grace(mocks: Mocks, grace: Duration) -> SessionService {
    SessionService::new(mocks.ports().for_sessions(), config(grace))
}

pub(super) fn mfa_service(mocks: Mocks) -> MfaService {
    MfaService::new(mocks.ports().for_mfa(), config(Duration::ZERO))
}

pub(super) fn oauth_service(mocks: Mocks, associate_by_email: bool) -> OAuthService {
    let mut config = config(Duration::ZERO);
    config.oauth_associate_by_email = associate_by_email;
    OAuthService::new(mocks.ports().for_oauth(), config)
}

pub(super) fn config(grace: Duration) -> AuthConfig {
    AuthConfig {
        refresh_token_ttl: Duration::days(7),
        refresh_reuse_grace: grace,
        lockout: LockoutPolicy::default(),
        password_policy: PasswordPolicy::default(),
        require_verified_email: false,
        oauth_associate_by_email: false,
        oauth_state_ttl: time::Duration::minutes(10),
        reauth_window: time::Duration::minutes(10),
        token_max_days: 365,
    }
}

pub(super) fn registration(name: &str, pw: &str) -> RegisterUser {
    RegisterUser {
        email: Email::parse(&format!("{name}@example.com")).unwrap(),
        username: Username::parse(name).unwrap(),
        password: password(pw),
        full_name: None,
    }
}

pub(super) fn expect_tokens(mocks: &mut Mocks) {
    mocks
        .tokens
        .expect_successor_refresh_token()
        .returning(|_| RefreshToken {
            secret: SecretString::from("fresh"),
            hash: TokenHash::new("fresh".into()),
        });
    // Hashes are current unless a test says otherwise.
    mocks.hasher.expect_needs_rehash().return_const(false);
    mocks.issues_refresh_tokens("fresh");
    mocks.issues_access_tokens();
}

pub(super) fn login(login: &str, pw: &str) -> LoginRequest {
    LoginRequest {
        login: login.into(),
        password: SecretString::from(pw),
        client: ClientInfo::default(),
    }
}

pub(super) fn session(user: &User) -> Session {
    Session {
        id: SessionId::generate(),
        user_id: user.id,
        created_at: NOW,
        last_used_at: NOW,
        expires_at: NOW + Duration::days(1),
        revoked_at: None,
        client: ClientInfo::default(),
        proof: crate::model::SignInProof::PASSWORD,
    }
}

/// Mocks of a login with the right password by `user`.
pub(super) fn right_password(user: User) -> Mocks {
    let mut mocks = Mocks::default();
    mocks.finds_by_login(&user);
    mocks.password_matches(true);
    mocks.throttle_permissive();
    mocks.without_second_factor();
    mocks
}

pub(super) fn caller(user: &User) -> Authenticated {
    Authenticated::by_session(user.clone(), SessionId::generate())
}
