//! User management: who may read, create, change, delete and restore whom.

use super::UserPorts;
use super::throttle::{LockoutPolicy, Throttle};
use crate::PortError;
use crate::model::{PasswordPolicy, User, UserId};

mod create;
mod lifecycle;
mod read;
#[cfg(test)]
mod test_support;
mod update;

pub use create::{CreateUser, CreateUserError};
pub use lifecycle::{DeleteUserError, RestoreUserError, UnlockUserError};
pub use read::{GetUserError, ListUsers, ListUsersError, UserListing};
pub use update::{UpdateTarget, UpdateUserError, UserChanges};

/// The user-management use cases. Every method takes the acting user first.
#[derive(Clone)]
pub struct UserService {
    ports: UserPorts,
    password_policy: PasswordPolicy,
    throttle: Throttle,
    email_change_requires_password: bool,
    old_email_reserved_for: time::Duration,
}

impl UserService {
    /// `lockout` counts the wrong passwords an update checks, as logins
    /// do, so that the update route is no way around a lock.
    #[must_use]
    pub fn new(ports: UserPorts, password_policy: PasswordPolicy, lockout: LockoutPolicy) -> Self {
        let throttle = Throttle::new(ports.throttle.clone(), ports.audit.clone(), lockout);
        Self {
            ports,
            password_policy,
            throttle,
            email_change_requires_password: true,
            old_email_reserved_for: time::Duration::days(7),
        }
    }

    /// How long an address an email change replaced stays reserved for its
    /// account: as long as the link that undoes the change lives.
    #[must_use]
    pub fn old_email_reserved_for(mut self, ttl: time::Duration) -> Self {
        self.old_email_reserved_for = ttl;
        self
    }

    /// Whether changing one's own email needs the current password (the
    /// default; `false` is weaker: a stolen access token can then move the
    /// account to another address).
    #[must_use]
    pub fn email_change_requires_password(mut self, required: bool) -> Self {
        self.email_change_requires_password = required;
        self
    }

    /// The user with this id if the actor may see it: deactivated users
    /// exist only for superusers.
    async fn visible(&self, actor: &User, id: UserId) -> Result<Option<User>, PortError> {
        let user = self.ports.users.find_by_id(id).await?;
        Ok(user.filter(|u| u.is_active || actor.is_superuser))
    }
}
