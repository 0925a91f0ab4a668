//! Conditional user writes against real databases: versions, guards, demotions and races.

use std::time::Duration as StdDuration;
use userhub_domain::model::{PasswordHash, User, UserId};
use userhub_domain::ports::{
    PatchUserError, SessionRepository, UserPatch, UserRepository, WriteGuard,
};
use userhub_tests::{Backend, any_event, stored_now as now, stored_user as user};

use super::*;

on_both_backends!(
    concurrent_demotions_never_remove_the_last_active_superuser,
    writes_are_conditional_on_the_version_read,
    writes_without_a_version_never_refuse_each_other,
    deletion_and_restore_are_conditional_on_is_active,
    a_write_that_relied_on_a_password_proof_needs_that_password_still,
    an_administrators_decision_survives_the_users_concurrent_writes,
);

async fn concurrent_demotions_never_remove_the_last_active_superuser(backend: Backend) {
    let r = repos(backend).await;
    let deactivate = UserPatch {
        is_active: Some(false),
        ..UserPatch::default()
    };
    for round in 0..5 {
        let (a, b) = (
            User {
                is_superuser: true,
                ..user(&format!("root{round}a"))
            },
            User {
                is_superuser: true,
                ..user(&format!("root{round}b"))
            },
        );
        r.users.insert(&a, &any_event()).await.unwrap();
        r.users.insert(&b, &any_event()).await.unwrap();
        let demote = |u: &User| {
            let users = r.users.clone();
            let (id, patch) = (u.id, deactivate.clone());
            tokio::spawn(async move {
                users
                    .update(id, None, &patch, &own(id, true), now(), &any_event())
                    .await
            })
        };
        let (first, second) = (demote(&a), demote(&b));
        let outcomes = [first.await.unwrap(), second.await.unwrap()];
        let ok = outcomes.iter().filter(|o| o.is_ok()).count();
        let refused = outcomes
            .iter()
            .filter(|o| matches!(o, Err(PatchUserError::LastSuperuser)))
            .count();
        assert_eq!((ok, refused), (1, 1), "round {round}: {outcomes:?}");
        // The survivor is now the last one; demote it unguarded so the next pair stands alone.
        let survivor = if outcomes[0].is_ok() { &b } else { &a };
        let plain = UserPatch {
            is_superuser: Some(false),
            ..UserPatch::default()
        };
        assert!(matches!(
            r.users
                .update(
                    survivor.id,
                    None,
                    &plain,
                    &own(survivor.id, true),
                    now(),
                    &any_event()
                )
                .await,
            Err(PatchUserError::LastSuperuser)
        ));
        r.users
            .update(
                survivor.id,
                None,
                &plain,
                &own(survivor.id, false),
                now(),
                &any_event(),
            )
            .await
            .unwrap();
    }
    assert!(matches!(
        r.users
            .update(
                UserId::generate(),
                None,
                &deactivate,
                &own(UserId::generate(), true),
                now(),
                &any_event()
            )
            .await,
        Err(PatchUserError::NotFound)
    ));
}

/// A write that names a version (a client's `If-Match`) is refused when
/// the user moved on, whatever it changes; the version moves with every
/// write, and a login does not move it.
async fn writes_are_conditional_on_the_version_read(backend: Backend) {
    let r = repos(backend).await;
    let ada = user("ada");
    r.users.insert(&ada, &any_event()).await.unwrap();
    let renamed = r
        .save(
            &ada,
            &ada,
            &User {
                full_name: Some(userhub_domain::model::FullName::parse("Ada").unwrap()),
                ..ada.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.version, 2);
    let stale = r
        .save(
            &ada,
            &ada,
            &User {
                is_active: false,
                ..ada.clone()
            },
        )
        .await;
    assert!(matches!(stale, Err(PatchUserError::Stale)), "{stale:?}");
    r.users.record_login(ada.id, now()).await.unwrap();
    let stored = r.users.find_by_id(ada.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert!(stored.last_login_at.is_some());
    assert!(stored.is_active);
    assert_eq!(stored.full_name, renamed.full_name);
}

/// Sixteen concurrent writes of one user's name and a login racing them,
/// none naming a version: every one lands (none is refused because
/// another landed first), and the name is one of those sent.
async fn writes_without_a_version_never_refuse_each_other(backend: Backend) {
    let r = repos(backend).await;
    let ada = user("ada");
    r.users.insert(&ada, &any_event()).await.unwrap();
    let writes: Vec<_> = (0..16)
        .map(|i| {
            let users = r.users.clone();
            tokio::spawn(async move {
                let patch = UserPatch {
                    full_name: Some(Some(
                        userhub_domain::model::FullName::parse(&format!("Ada {i}")).unwrap(),
                    )),
                    ..UserPatch::default()
                };
                users
                    .update(
                        ada.id,
                        None,
                        &patch,
                        &own(ada.id, false),
                        now(),
                        &any_event(),
                    )
                    .await
            })
        })
        .collect();
    let login = {
        let users = r.users.clone();
        tokio::spawn(async move { users.record_login(ada.id, now()).await })
    };
    for write in writes {
        write.await.unwrap().unwrap();
    }
    login.await.unwrap().unwrap();
    let stored = r.users.find_by_id(ada.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 17, "sixteen writes, and no login, moved it");
    let name = stored.full_name.unwrap();
    assert!(name.as_str().starts_with("Ada "), "{}", name.as_str());
}

/// A deletion is a patch of `is_active` that needs an active user, a
/// restore one that needs a deactivated user: of two concurrent deletions
/// one lands and the other learns the user is gone.
async fn deletion_and_restore_are_conditional_on_is_active(backend: Backend) {
    let r = repos(backend).await;
    let ada = user("ada");
    r.users.insert(&ada, &any_event()).await.unwrap();
    let flag = |active: bool| UserPatch {
        is_active: Some(active),
        ..UserPatch::default()
    };
    let expecting = |active: bool| WriteGuard {
        target_active: Some(active),
        ..own(ada.id, false)
    };
    let root = User {
        is_superuser: true,
        ..user("root")
    };
    r.users.insert(&root, &any_event()).await.unwrap();
    let as_root = |active: bool| WriteGuard {
        actor: root.id,
        actor_is_superuser: true,
        ..expecting(active)
    };
    let deletions: Vec<_> = (0..2)
        .map(|_| {
            let (users, guard) = (r.users.clone(), as_root(true));
            tokio::spawn(async move {
                users
                    .update(ada.id, None, &flag(false), &guard, now(), &any_event())
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for deletion in deletions {
        outcomes.push(deletion.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Err(PatchUserError::ActiveChanged))),
        "{outcomes:?}"
    );
    let restored = r
        .users
        .update(
            ada.id,
            None,
            &flag(true),
            &as_root(false),
            now(),
            &any_event(),
        )
        .await
        .unwrap();
    assert!(restored.is_active);
    let again = r
        .users
        .update(
            ada.id,
            None,
            &flag(true),
            &as_root(false),
            now(),
            &any_event(),
        )
        .await;
    assert!(
        matches!(again, Err(PatchUserError::ActiveChanged)),
        "{again:?}"
    );
}

/// A write whose rules checked a password (an email change) lands only
/// while that password is the user's; otherwise it says so.
async fn a_write_that_relied_on_a_password_proof_needs_that_password_still(backend: Backend) {
    let r = repos(backend).await;
    let ada = user("ada");
    r.users.insert(&ada, &any_event()).await.unwrap();
    let patch = UserPatch {
        email: Some(userhub_domain::model::Email::parse("ada@new.example").unwrap()),
        ..UserPatch::default()
    };
    let proven = WriteGuard {
        password_hash: Some(ada.password_hash.clone()),
        ..own(ada.id, false)
    };
    r.users
        .replace_password_hash(
            ada.id,
            &ada.password_hash,
            &PasswordHash::new("$2b$04$changed".into()),
            now(),
            None,
        )
        .await
        .unwrap();
    let refused = r
        .users
        .update(ada.id, None, &patch, &proven, now(), &any_event())
        .await;
    assert!(
        matches!(refused, Err(PatchUserError::PasswordChanged)),
        "{refused:?}"
    );
    let current = WriteGuard {
        password_hash: Some(PasswordHash::new("$2b$04$changed".into())),
        ..own(ada.id, false)
    };
    let moved = r
        .users
        .update(ada.id, None, &patch, &current, now(), &any_event())
        .await
        .unwrap();
    assert_eq!(moved.email.as_str(), "ada@new.example");
}

/// Races of the kind that used to undo an administrator's decision: the
/// user's own in-flight writes against a deactivation, a demotion and a
/// password reset, many rounds. The administrator's decision always stands.
async fn an_administrators_decision_survives_the_users_concurrent_writes(backend: Backend) {
    let r = repos(backend).await;
    for round in 0..20 {
        let target = User {
            is_superuser: true,
            ..user(&format!("target{round}"))
        };
        r.users.insert(&target, &any_event()).await.unwrap();
        // Another superuser, who decides, so that demotions are allowed.
        let keeper = User {
            is_superuser: true,
            ..user(&format!("keeper{round}"))
        };
        r.users.insert(&keeper, &any_event()).await.unwrap();
        let reset = PasswordHash::new(format!("$2b$04$reset{round}"));
        // The user's writes: a profile change at the version they read, a
        // password change conditional on the hash they proved, a login.
        let own = {
            let (users, sessions, target) = (r.users.clone(), r.sessions.clone(), target.clone());
            tokio::spawn(async move {
                for i in 0..5 {
                    let patch = UserPatch {
                        full_name: Some(Some(
                            userhub_domain::model::FullName::parse(&format!("N{i}")).unwrap(),
                        )),
                        ..UserPatch::default()
                    };
                    let _ = users
                        .update(
                            target.id,
                            None,
                            &patch,
                            &own(target.id, false),
                            now(),
                            &any_event(),
                        )
                        .await;
                    let _ = users
                        .replace_password_hash(
                            target.id,
                            &target.password_hash,
                            &PasswordHash::new(format!("$2b$04$mine{i}")),
                            now(),
                            None,
                        )
                        .await;
                    let _ = sessions
                        .create(
                            &session(&target, &format!("s{round}-{i}")),
                            &target.password_hash,
                            &any_event(),
                        )
                        .await;
                }
            })
        };
        // The administrator's decision, at the version read now.
        let admin = {
            let users = r.users.clone();
            let sessions = r.sessions.clone();
            let (id, reset) = (target.id, reset.clone());
            let guard = WriteGuard {
                actor: keeper.id,
                actor_is_superuser: true,
                keep_a_superuser: true,
                password_hash: None,
                target_active: None,
            };
            tokio::spawn(async move {
                // Without `If-Match` the decision depends on nothing the
                // user's writes change: it lands at the first try.
                let patch = UserPatch {
                    is_active: Some(false),
                    is_superuser: Some(false),
                    password_hash: Some(reset.clone()),
                    ..UserPatch::default()
                };
                users
                    .update(id, None, &patch, &guard, now(), &any_event())
                    .await
                    .unwrap();
                sessions
                    .revoke_all_for_user(id, None, now(), None)
                    .await
                    .unwrap();
            })
        };
        own.await.unwrap();
        admin.await.unwrap();
        let stored = r.users.find_by_id(target.id).await.unwrap().unwrap();
        assert!(!stored.is_active, "round {round}: deactivation undone");
        assert!(!stored.is_superuser, "round {round}: demotion undone");
        assert_eq!(stored.password_hash, reset, "round {round}: reset undone");
        assert!(
            r.sessions
                .list_live_for_user(target.id, now())
                .await
                .unwrap()
                .is_empty(),
            "round {round}: a session outlived the reset"
        );
    }
}

/// Writes to one row queue in the server, not on PostgreSQL's row lock:
/// while the row is locked elsewhere, one of them waits in the database and
/// the rest hold no connection, so the pool still serves other users.
/// (PostgreSQL only: SQLite has no row locks to queue on.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_one_row_wait_in_the_server_and_leave_the_pool_free() {
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
    let r = repos(Backend::Postgres).await;
    let ada = user("ada");
    let bob = user("bob");
    r.users.insert(&ada, &any_event()).await.unwrap();
    r.users.insert(&bob, &any_event()).await.unwrap();
    let outside = sea_orm::Database::connect(&r._db.url).await.unwrap();
    let holder = outside.begin().await.unwrap();
    holder
        .execute_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
            [ada.id.as_uuid().into()],
        ))
        .await
        .unwrap();
    // More writers than the pool (4) has connections.
    let writes: Vec<_> = (0..6)
        .map(|i| {
            let users = r.users.clone();
            tokio::spawn(async move {
                let patch = UserPatch {
                    full_name: Some(Some(
                        userhub_domain::model::FullName::parse(&format!("Ada {i}")).unwrap(),
                    )),
                    ..UserPatch::default()
                };
                users
                    .update(
                        ada.id,
                        None,
                        &patch,
                        &own(ada.id, false),
                        now(),
                        &any_event(),
                    )
                    .await
            })
        })
        .collect();
    let waiting = || async {
        let row = outside
            .query_one_raw(Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    };
    while waiting().await == 0 {
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(waiting().await, 1, "one write waits on the row lock");
    // Well within the pool's 5 s acquire timeout: connections are free.
    let other = tokio::time::timeout(StdDuration::from_secs(2), r.users.find_by_id(bob.id))
        .await
        .expect("another user's read is not starved of connections");
    assert!(other.unwrap().is_some());
    holder.commit().await.unwrap();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    let stored = r.users.find_by_id(ada.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 7, "all six writes landed");
    let _ = outside.close().await;
}
