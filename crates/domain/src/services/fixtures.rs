//! Builders shared by the use-case tests.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use secrecy::SecretString;
use time::OffsetDateTime;
use time::macros::datetime;

use super::Ports;
use crate::model::{Email, LoginLockout, Password, PasswordHash, User, UserId, Username};
use crate::ports::{
    MockClock, MockPasswordHasher, MockSessionRepository, MockTokenIssuer, MockUserRepository,
};

pub const NOW: OffsetDateTime = datetime!(2026-11-25 10:00 UTC);

/// One mock per port; set expectations, then call [`Mocks::ports`].
#[derive(Default)]
pub struct Mocks {
    pub users: MockUserRepository,
    pub sessions: MockSessionRepository,
    pub hasher: MockPasswordHasher,
    pub tokens: MockTokenIssuer,
}

impl Mocks {
    pub fn ports(self) -> Ports {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(NOW);
        Ports {
            users: Arc::new(self.users),
            sessions: Arc::new(self.sessions),
            hasher: Arc::new(self.hasher),
            tokens: Arc::new(self.tokens),
            clock: Arc::new(clock),
        }
    }
}

pub fn user(name: &str) -> User {
    User {
        id: UserId::generate(),
        email: Email::parse(&format!("{name}@example.com")).unwrap(),
        username: Username::parse(name).unwrap(),
        full_name: None,
        password_hash: PasswordHash::new(format!("hash-of-{name}")),
        is_active: true,
        is_superuser: false,
        created_at: NOW,
        updated_at: NOW,
        last_login_at: None,
        lockout: LoginLockout::default(),
    }
}

pub fn superuser(name: &str) -> User {
    User {
        is_superuser: true,
        ..user(name)
    }
}

pub fn password(raw: &str) -> Password {
    Password::new(SecretString::from(raw)).unwrap()
}
