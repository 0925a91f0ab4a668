//! The SeaORM repositories against real databases: round trips, unique
//! constraints, races, escaping and the session lookups.

mod account_back;
mod audit;
mod identities;
mod mfa;
mod passkeys;
mod recovery;
mod sessions;
mod tokens;
mod users;
mod webhooks;
mod writes;

use std::sync::Arc;
use time::Duration;
use userhub_domain::model::{ClientInfo, NewSession, SessionId, TokenHash, User, UserId};
use userhub_domain::ports::{PatchUserError, UserPatch, UserRepository, WriteGuard};
use userhub_infrastructure::{SeaOrmLoginThrottle, SeaOrmSessionRepository, SeaOrmUserRepository};
use userhub_tests::{Backend, TestDatabase, any_event, migrated_database, stored_now as now};

pub(super) struct Repos {
    users: Arc<SeaOrmUserRepository>,
    sessions: Arc<SeaOrmSessionRepository>,
    throttle: Arc<SeaOrmLoginThrottle>,
    _db: TestDatabase,
}

impl Repos {
    /// Writes, as `actor`, the fields in which `after` differs from
    /// `before`, at `before`'s version (as a client's `If-Match` asks).
    async fn save(
        &self,
        actor: &User,
        before: &User,
        after: &User,
    ) -> Result<User, PatchUserError> {
        let guard = WriteGuard {
            actor: actor.id,
            actor_is_superuser: actor.is_superuser,
            keep_a_superuser: false,
            password_hash: None,
            target_active: None,
        };
        self.users
            .update(
                before.id,
                Some(before.version),
                &diff(before, after),
                &guard,
                now(),
                &any_event(),
            )
            .await
    }
}

/// A guard of `actor` acting on their own account.
pub(super) fn own(actor: UserId, keep_a_superuser: bool) -> WriteGuard {
    WriteGuard {
        actor,
        actor_is_superuser: false,
        keep_a_superuser,
        password_hash: None,
        target_active: None,
    }
}

/// The patch that turns `before` into `after`.
pub(super) fn diff(before: &User, after: &User) -> UserPatch {
    UserPatch {
        email: (after.email != before.email).then(|| after.email.clone()),
        username: (after.username != before.username).then(|| after.username.clone()),
        full_name: (after.full_name != before.full_name).then(|| after.full_name.clone()),
        password_hash: (after.password_hash != before.password_hash)
            .then(|| after.password_hash.clone()),
        is_active: (after.is_active != before.is_active).then_some(after.is_active),
        is_superuser: (after.is_superuser != before.is_superuser).then_some(after.is_superuser),
        is_verified: (after.is_verified != before.is_verified).then_some(after.is_verified),
        reserve_old_email: None,
    }
}

pub(super) async fn repos(backend: Backend) -> Repos {
    repos_on(backend, true).await
}

/// [`repos`], with authenticating reads batched (PostgreSQL) or not.
pub(super) async fn repos_on(backend: Backend, batch_reads: bool) -> Repos {
    let (database, db) = migrated_database(backend).await;
    let database = if batch_reads {
        database
    } else {
        database.without_batched_reads()
    };
    Repos {
        users: Arc::new(SeaOrmUserRepository::new(database.clone())),
        sessions: Arc::new(SeaOrmSessionRepository::new(database.clone())),
        throttle: Arc::new(SeaOrmLoginThrottle::new(
            database,
            secrecy::SecretString::from("k".repeat(32)),
        )),
        _db: db,
    }
}

pub(super) fn session(user: &User, hash: &str) -> NewSession {
    NewSession {
        id: SessionId::generate(),
        user_id: user.id,
        refresh_token_hash: TokenHash::new(hash.into()),
        created_at: now(),
        expires_at: now() + Duration::days(1),
        client: ClientInfo::new(Some("agent/1.0"), Some("127.0.0.1".into())),
        proof: userhub_domain::model::SignInProof::PASSWORD,
    }
}
