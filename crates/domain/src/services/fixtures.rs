//! Builders for tests of the use cases and of the adapters above them
//! (exported with the `mocks` feature): one mock per port, and users.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::sync::Arc;

use secrecy::SecretString;
use time::OffsetDateTime;
use time::macros::datetime;

use super::{AuditPorts, Ports, UserPorts};
use crate::model::{
    Email, Password, PasswordHash, Session, SessionId, TokenHash, User, UserId, Username,
};
use crate::ports::{
    AccessClaims, AccessToken, MockAuditLog, MockClock, MockIdentityProviders,
    MockIdentityRepository, MockLoginThrottle, MockMailQueue, MockMfaRepository,
    MockPasskeyCeremonies, MockPasskeyRepository, MockPasswordHasher, MockPersonalTokenRepository,
    MockSecondFactor, MockSessionRepository, MockTokenIssuer, MockUserRepository, RefreshToken,
    ThrottleState,
};

/// The time the fixtures' clock tells.
pub const NOW: OffsetDateTime = datetime!(2026-11-25 10:00 UTC);

/// A clock that always tells [`NOW`].
#[must_use]
pub fn stopped_clock() -> MockClock {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(NOW);
    clock
}

/// One mock per port; set expectations, then call [`Mocks::ports`] (or
/// the ports of one service: [`Mocks::user_ports`], [`Mocks::audit_ports`]).
#[derive(Default)]
#[allow(missing_docs)] // each field is the mock of the port of the same name
pub struct Mocks {
    pub users: MockUserRepository,
    pub sessions: MockSessionRepository,
    pub throttle: MockLoginThrottle,
    pub hasher: MockPasswordHasher,
    pub tokens: MockTokenIssuer,
    pub mail: MockMailQueue,
    pub audit: MockAuditLog,
    pub mfa: MockMfaRepository,
    pub second_factor: MockSecondFactor,
    pub identities: MockIdentityRepository,
    pub providers: MockIdentityProviders,
    pub pats: MockPersonalTokenRepository,
    pub passkeys: MockPasskeyRepository,
    pub ceremonies: MockPasskeyCeremonies,
}

impl Mocks {
    /// The ports, with a clock stopped at [`NOW`].
    #[must_use]
    pub fn ports(self) -> Ports {
        self.ports_with_clock(stopped_clock())
    }

    /// The ports, with this clock.
    #[must_use]
    pub fn ports_with_clock(self, clock: MockClock) -> Ports {
        Ports {
            users: Arc::new(self.users),
            sessions: Arc::new(self.sessions),
            throttle: Arc::new(self.throttle),
            hasher: Arc::new(self.hasher),
            tokens: Arc::new(self.tokens),
            mail: Arc::new(self.mail),
            audit: Arc::new(self.audit),
            clock: Arc::new(clock),
            mfa: Arc::new(self.mfa),
            second_factor: Arc::new(self.second_factor),
            identities: Arc::new(self.identities),
            providers: Arc::new(self.providers),
            pats: Arc::new(self.pats),
            passkeys: Arc::new(self.passkeys),
            ceremonies: Arc::new(self.ceremonies),
        }
    }
}

impl Mocks {
    /// The user-management ports, with a clock stopped at [`NOW`]: the
    /// mocks of the other ports are dropped (a rule that used one would not
    /// compile).
    #[must_use]
    pub fn user_ports(self) -> UserPorts {
        self.ports().for_users()
    }

    /// The audit trail's ports, with a clock stopped at [`NOW`].
    #[must_use]
    pub fn audit_ports(self) -> AuditPorts {
        self.ports().for_audit()
    }

    /// No user has a second factor.
    pub fn without_second_factor(&mut self) {
        self.mfa
            .expect_status()
            .returning(|_| Ok(crate::model::MfaStatus::default()));
    }
}

/// An active, unverified, ordinary user `name` with `name@example.com`.
#[must_use]
pub fn user(name: &str) -> User {
    User {
        id: UserId::generate(),
        email: Email::parse(&format!("{name}@example.com")).unwrap(),
        username: Username::parse(name).unwrap(),
        full_name: None,
        password_hash: PasswordHash::new(format!("hash-of-{name}")),
        is_active: true,
        is_superuser: false,
        is_verified: false,
        created_at: NOW,
        updated_at: NOW,
        last_login_at: None,
        version: 1,
    }
}

/// [`user`], as a superuser.
#[must_use]
pub fn superuser(name: &str) -> User {
    User {
        is_superuser: true,
        ..user(name)
    }
}

/// A password that passes the length rules.
#[must_use]
pub fn password(raw: &str) -> Password {
    Password::new(SecretString::from(raw)).unwrap()
}

impl Mocks {
    /// A throttle with no failures recorded for anyone.
    pub fn throttle_clear(&mut self) {
        self.throttle_reports(ThrottleState::default());
    }

    /// Every throttle read reports `state`.
    pub fn throttle_reports(&mut self, state: ThrottleState) {
        self.throttle
            .expect_state()
            .returning(move |_, _| Ok(state));
    }
}

impl Mocks {
    /// A throttle that records failures and forgets them on success, with
    /// nobody locked.
    pub fn throttle_permissive(&mut self) {
        self.throttle_clear();
        self.throttle
            .expect_record_failure()
            .returning(|_, _, _, _, _| {
                Ok(ThrottleState {
                    pair_failures: 1,
                    name_failures: 1,
                    ..ThrottleState::default()
                })
            });
        self.throttle.expect_clear_pair().returning(|_, _| Ok(()));
    }
}

impl Mocks {
    /// A user lookup by login name finds `user`, whatever the name.
    pub fn finds_by_login(&mut self, user: &User) {
        let user = user.clone();
        self.users
            .expect_find_by_login()
            .returning(move |_| Ok(Some(user.clone())));
    }

    /// Every password check answers `matches`.
    pub fn password_matches(&mut self, matches: bool) {
        self.hasher
            .expect_verify()
            .returning(move |_, _| Ok(matches));
    }
}

impl Mocks {
    /// Every lookup by id finds `user`.
    pub fn finds_by_id(&mut self, user: &User) {
        let user = user.clone();
        self.users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(user.clone())));
    }

    /// Every presented refresh token hashes to `hash`, and the session
    /// lookup by that hash finds `session`.
    pub fn refresh_token_finds(&mut self, hash: &'static str, session: Option<Session>) {
        self.tokens
            .expect_hash_token()
            .returning(move |_| TokenHash::new(hash.into()));
        self.sessions
            .expect_find_by_refresh_token()
            .returning(move |_| Ok(session.clone()));
    }

    /// Lookups by id find these users in turn, then none: a row that
    /// another write changed between two reads.
    pub fn reads_in_turn(&mut self, users: Vec<User>) {
        let mut reads = users.into_iter();
        self.users
            .expect_find_by_id()
            .returning(move |_| Ok(reads.next()));
    }

    /// Every password hashes to `hash`.
    pub fn hashes_to(&mut self, hash: &'static str) {
        self.hasher
            .expect_hash()
            .returning(move |_| Ok(PasswordHash::new(hash.into())));
    }

    /// Every access token verifies, naming this user and session.
    pub fn access_token_names(&mut self, user_id: UserId, session_id: SessionId) {
        self.tokens
            .expect_verify_access_token()
            .returning(move |_| {
                Ok(AccessClaims {
                    user_id,
                    session_id,
                })
            });
    }

    /// Every session lookup finds `user`; `None`: the session ended.
    pub fn session_finds(&mut self, user: Option<User>) {
        self.sessions
            .expect_find_active_user()
            .returning(move |_, _, _| Ok(user.clone()));
    }

    /// Every access token issued is `jwt`, for 1800 s.
    pub fn issues_access_tokens(&mut self) {
        self.tokens
            .expect_issue_access_token()
            .returning(|_, _, _, _| {
                Ok(AccessToken {
                    token: "jwt".into(),
                    expires_in: 1800,
                })
            });
    }

    /// Every new refresh token is `secret`, hashed as itself.
    pub fn issues_refresh_tokens(&mut self, secret: &'static str) {
        self.tokens.expect_new_refresh_token().returning(move || {
            Ok(RefreshToken {
                secret: SecretString::from(secret),
                hash: TokenHash::new(secret.into()),
            })
        });
    }
}
