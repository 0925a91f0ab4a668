//! Builders the user-management tests share.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::model::*;
use crate::ports::*;
use mockall::predicate::eq;

use crate::services::fixtures::{Mocks, NOW};

pub(super) fn service(mocks: Mocks) -> UserService {
    UserService::new(
        mocks.user_ports(),
        PasswordPolicy::default(),
        LockoutPolicy::default(),
    )
}

/// The user as stored after `patch`.
pub(super) fn apply(user: &User, patch: &UserPatch) -> User {
    let mut after = user.clone();
    if let Some(v) = &patch.email {
        after.email = v.clone();
    }
    if let Some(v) = &patch.username {
        after.username = v.clone();
    }
    if let Some(v) = &patch.full_name {
        after.full_name = v.clone();
    }
    if let Some(v) = &patch.password_hash {
        after.password_hash = v.clone();
    }
    after.is_active = patch.is_active.unwrap_or(after.is_active);
    after.is_superuser = patch.is_superuser.unwrap_or(after.is_superuser);
    after.is_verified = patch.is_verified.unwrap_or(after.is_verified);
    after.updated_at = NOW;
    after.version += 1;
    after
}

/// Expects one conditional write of `target` without a version condition
/// (no `If-Match`), whose patch (and last-superuser guard) pass `check`.
pub(super) fn saved(
    mocks: &mut Mocks,
    target: &User,
    check: impl Fn(&UserPatch, bool) -> bool + Send + 'static,
) {
    let stored = target.clone();
    let id = target.id;
    mocks
        .users
        .expect_update()
        .withf(move |i, v, patch, guard, at, event| {
            *i == id
                && v.is_none()
                && *at == NOW
                && check(patch, guard.keep_a_superuser)
                && event.kind == AuditKind::UserUpdated
                && event.actor_id == Some(guard.actor)
                && event.subject_id == Some(id)
        })
        .times(1)
        .returning(move |_, _, patch, _, _, _| Ok(apply(&stored, patch)));
}

pub(super) fn found(mocks: &mut Mocks, target: &User) {
    let target = target.clone();
    mocks
        .users
        .expect_find_by_id()
        .with(eq(target.id))
        .returning(move |_| Ok(Some(target.clone())));
}
