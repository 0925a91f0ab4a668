//! The SeaORM repositories against real databases: round trips, unique
//! constraints, races, escaping and the session lookups.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use migration::{Migrator, MigratorTrait};
use time::Duration;
use userhub_domain::model::{
    ClientInfo, Email, NewSession, PasswordHash, RefreshTokenHash, SessionId, User, UserId,
    Username,
};
use userhub_domain::ports::{
    InsertUserError, LoginThrottle, PatchUserError, SessionRepository, UserPatch, UserQuery,
    UserRepository, UserSort, UserSortField, WriteGuard,
};
use userhub_infrastructure::{SeaOrmLoginThrottle, SeaOrmSessionRepository, SeaOrmUserRepository};
use userhub_tests::{
    Backend, TestDatabase, any_event, migrated_database, stored_now as now, stored_user as user,
};

struct Repos {
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
fn own(actor: UserId, keep_a_superuser: bool) -> WriteGuard {
    WriteGuard {
        actor,
        actor_is_superuser: false,
        keep_a_superuser,
        password_hash: None,
        target_active: None,
    }
}

/// The patch that turns `before` into `after`.
fn diff(before: &User, after: &User) -> UserPatch {
    UserPatch {
        email: (after.email != before.email).then(|| after.email.clone()),
        username: (after.username != before.username).then(|| after.username.clone()),
        full_name: (after.full_name != before.full_name).then(|| after.full_name.clone()),
        password_hash: (after.password_hash != before.password_hash)
            .then(|| after.password_hash.clone()),
        is_active: (after.is_active != before.is_active).then_some(after.is_active),
        is_superuser: (after.is_superuser != before.is_superuser).then_some(after.is_superuser),
        is_verified: (after.is_verified != before.is_verified).then_some(after.is_verified),
    }
}

async fn repos(backend: Backend) -> Repos {
    let (database, db) = migrated_database(backend).await;
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

fn session(user: &User, hash: &str) -> NewSession {
    NewSession {
        id: SessionId::generate(),
        user_id: user.id,
        refresh_token_hash: RefreshTokenHash::new(hash.into()),
        created_at: now(),
        expires_at: now() + Duration::days(1),
        client: ClientInfo::new(Some("agent/1.0"), Some("127.0.0.1".into())),
        second_factor: false,
    }
}

on_both_backends!(
    a_user_round_trips_and_is_found_by_email_or_username,
    duplicate_email_or_username_is_reported_as_such,
    concurrent_registrations_of_one_email_end_in_one_user_and_one_email_taken,
    updating_an_unknown_user_is_not_found,
    search_matches_wildcards_literally_and_counts_all_matches,
    listing_sorts_with_ties_broken_by_id_and_pages_do_not_overlap,
    rotation_is_a_compare_and_swap_and_remembers_spent_tokens,
    concurrent_rotations_of_one_token_have_one_winner,
    the_auth_lookup_needs_a_live_session_and_an_active_user,
    the_fused_read_authenticates_as_the_auth_lookup_does,
    sessions_are_listed_and_revoked_per_user_only,
    failed_logins_are_counted_atomically_locked_and_reset,
    purging_deletes_ended_sessions_and_their_spent_tokens_only,
    concurrent_demotions_never_remove_the_last_active_superuser,
    unsearched_totals_follow_every_insert_update_and_delete,
    writes_are_conditional_on_the_version_read,
    writes_without_a_version_never_refuse_each_other,
    deletion_and_restore_are_conditional_on_is_active,
    a_write_that_relied_on_a_password_proof_needs_that_password_still,
    an_administrators_decision_survives_the_users_concurrent_writes,
    migrations_go_fresh_down_to_zero_and_up_again,
    a_migration_that_fails_half_way_leaves_nothing_behind,
);

/// Creates a table, then fails: a migration interrupted half way.
struct HalfWay;

impl migration::MigrationName for HalfWay {
    fn name(&self) -> &str {
        "m99999999_000001_half_way"
    }
}

#[migration::async_trait::async_trait]
impl migration::MigrationTrait for HalfWay {
    async fn up(&self, manager: &migration::SchemaManager) -> Result<(), sea_orm::DbErr> {
        sea_orm::ConnectionTrait::execute_unprepared(
            manager.get_connection(),
            "CREATE TABLE half_way (id INTEGER PRIMARY KEY)",
        )
        .await?;
        Err(sea_orm::DbErr::Migration("interrupted".into()))
    }
}

struct HalfWayMigrator;

#[migration::async_trait::async_trait]
impl MigratorTrait for HalfWayMigrator {
    fn migrations() -> Vec<Box<dyn migration::MigrationTrait>> {
        vec![migration::atomic(Box::new(HalfWay))]
    }
}

/// Each migration commits with its `seaql_migrations` row or not at all,
/// on SQLite as on PostgreSQL: after a failure half way, neither its table
/// nor its record exists, and the migration can run again.
async fn a_migration_that_fails_half_way_leaves_nothing_behind(backend: Backend) {
    let db = userhub_tests::TestDatabase::create(backend).await;
    let conn = sea_orm::Database::connect(&db.url).await.unwrap();
    for _ in 0..2 {
        let err = HalfWayMigrator::up(&conn, None).await.unwrap_err();
        assert!(err.to_string().contains("interrupted"), "{err}");
        let applied = HalfWayMigrator::get_applied_migrations(&conn)
            .await
            .unwrap();
        assert!(applied.is_empty(), "no record of it");
        let table =
            sea_orm::ConnectionTrait::execute_unprepared(&conn, "SELECT * FROM half_way").await;
        assert!(table.is_err(), "its table was rolled back");
    }
    let _ = conn.close().await;
}

/// The operators' `fresh`, `down` (to zero) and `up` work on a migrated
/// database, with data in it.
async fn migrations_go_fresh_down_to_zero_and_up_again(backend: Backend) {
    let r = repos(backend).await;
    r.users.insert(&user("ada"), &any_event()).await.unwrap();
    let conn = sea_orm::Database::connect(&r._db.url).await.unwrap();
    Migrator::fresh(&conn).await.unwrap();
    Migrator::down(&conn, None).await.unwrap();
    assert!(
        Migrator::get_applied_migrations(&conn)
            .await
            .unwrap()
            .is_empty()
    );
    Migrator::up(&conn, None).await.unwrap();
    Migrator::up(&conn, None).await.unwrap();
    let again = r.users.find_by_login("ada").await.unwrap();
    assert!(again.is_none(), "fresh started over");
    r.users.insert(&user("ada"), &any_event()).await.unwrap();
}

/// The unsearched `total` comes from counters kept by triggers; it must
/// equal a real count after every kind of change, for every filter.
async fn unsearched_totals_follow_every_insert_update_and_delete(backend: Backend) {
    let r = repos(backend).await;
    let mut users = Vec::new();
    for (i, (active, superuser)) in [(true, false), (true, true), (false, false), (true, false)]
        .into_iter()
        .enumerate()
    {
        let mut u = user(&format!("counted{i}"));
        u.is_active = active;
        u.is_superuser = superuser;
        r.users.insert(&u, &any_event()).await.unwrap();
        users.push(u);
    }
    let total = |is_active: Option<bool>, is_superuser: Option<bool>| {
        let users = r.users.clone();
        async move {
            users
                .list(&UserQuery {
                    limit: 1,
                    is_active,
                    is_superuser,
                    ..UserQuery::default()
                })
                .await
                .unwrap()
                .total
        }
    };
    let all = [None, Some(true), Some(false)];
    let expect = |users: &[User], a: Option<bool>, s: Option<bool>| {
        users
            .iter()
            .filter(|u| a.is_none_or(|a| u.is_active == a) && s.is_none_or(|s| u.is_superuser == s))
            .count() as u64
    };
    for a in all {
        for s in all {
            assert_eq!(total(a, s).await, expect(&users, a, s), "{a:?} {s:?}");
        }
    }
    // Deactivate one, promote another, touch a third without changing flags.
    let before = users.clone();
    users[0].is_active = false;
    r.save(&before[1], &before[0], &users[0]).await.unwrap();
    users[3].is_superuser = true;
    r.save(&before[1], &before[3], &users[3]).await.unwrap();
    users[2].full_name = Some(userhub_domain::model::FullName::parse("Still Inactive").unwrap());
    r.save(&before[1], &before[2], &users[2]).await.unwrap();
    r.users.record_login(users[1].id, now()).await.unwrap();
    for a in all {
        for s in all {
            assert_eq!(
                total(a, s).await,
                expect(&users, a, s),
                "{a:?} {s:?} after updates"
            );
        }
    }
    // A search counts the matching rows themselves.
    let searched = r
        .users
        .list(&UserQuery {
            limit: 1,
            search: Some("counted".into()),
            ..UserQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(searched.total, 4);
}

async fn a_user_round_trips_and_is_found_by_email_or_username(backend: Backend) {
    let r = repos(backend).await;
    let ada = User {
        full_name: Some(userhub_domain::model::FullName::parse("Ada Lovelace").unwrap()),
        ..user("ada")
    };
    r.users.insert(&ada, &any_event()).await.unwrap();
    assert_eq!(r.users.find_by_id(ada.id).await.unwrap(), Some(ada.clone()));
    assert_eq!(
        r.users.find_by_login("ada@example.com").await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(
        r.users.find_by_login("ada").await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(r.users.find_by_login("nobody").await.unwrap(), None);
    let at = now();
    r.users.record_login(ada.id, at).await.unwrap();
    assert_eq!(
        r.users
            .find_by_id(ada.id)
            .await
            .unwrap()
            .unwrap()
            .last_login_at,
        Some(at)
    );
}

async fn duplicate_email_or_username_is_reported_as_such(backend: Backend) {
    let r = repos(backend).await;
    let ada = user("ada");
    r.users.insert(&ada, &any_event()).await.unwrap();
    let same_email = User {
        id: UserId::generate(),
        username: Username::parse("other").unwrap(),
        ..ada.clone()
    };
    assert!(matches!(
        r.users.insert(&same_email, &any_event()).await,
        Err(InsertUserError::EmailTaken)
    ));
    let same_name = User {
        id: UserId::generate(),
        email: Email::parse("x@example.com").unwrap(),
        ..ada.clone()
    };
    assert!(matches!(
        r.users.insert(&same_name, &any_event()).await,
        Err(InsertUserError::UsernameTaken)
    ));
    let bob = user("bob");
    r.users.insert(&bob, &any_event()).await.unwrap();
    let clash = User {
        email: ada.email.clone(),
        ..bob.clone()
    };
    assert!(matches!(
        r.save(&bob, &bob, &clash).await,
        Err(PatchUserError::EmailTaken)
    ));
}

async fn concurrent_registrations_of_one_email_end_in_one_user_and_one_email_taken(
    backend: Backend,
) {
    let r = repos(backend).await;
    let attempts = (0..8).map(|i| {
        let users = r.users.clone();
        let candidate = User {
            username: Username::parse(&format!("ada{i}")).unwrap(),
            ..user("ada")
        };
        let candidate = User {
            id: UserId::generate(),
            ..candidate
        };
        tokio::spawn(async move { users.insert(&candidate, &any_event()).await })
    });
    let results = futures_util::future::join_all(attempts).await;
    let ok = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(InsertUserError::EmailTaken))))
        .count();
    assert_eq!((ok, taken), (1, 7));
}

async fn updating_an_unknown_user_is_not_found(backend: Backend) {
    let r = repos(backend).await;
    let ghost = user("ghost");
    let renamed = User {
        full_name: Some(userhub_domain::model::FullName::parse("Ghost").unwrap()),
        ..ghost.clone()
    };
    assert!(matches!(
        r.save(&ghost, &ghost, &renamed).await,
        Err(PatchUserError::NotFound)
    ));
}

async fn search_matches_wildcards_literally_and_counts_all_matches(backend: Backend) {
    let r = repos(backend).await;
    for name in ["a_b", "axb", "abc", "back.slash"] {
        r.users.insert(&user(name), &any_event()).await.unwrap();
    }
    let mut named = user("percent");
    named.full_name =
        Some(userhub_domain::model::FullName::parse("Hundred %Percent\\Done").unwrap());
    r.users.insert(&named, &any_event()).await.unwrap();
    let search = |term: &str, search_email: bool| UserQuery {
        limit: 10,
        search: Some(term.to_owned()),
        search_email,
        ..UserQuery::default()
    };
    let names = |page: userhub_domain::ports::UserPage| {
        let mut names: Vec<String> = page
            .items
            .into_iter()
            .map(|u| u.username.as_str().to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(r.users.list(&search("_", false)).await.unwrap()),
        ["a_b"]
    );
    assert_eq!(
        names(r.users.list(&search("%", false)).await.unwrap()),
        ["percent"]
    );
    assert_eq!(
        names(r.users.list(&search("\\", false)).await.unwrap()),
        ["percent"]
    );
    assert_eq!(
        names(r.users.list(&search("hundred %p", false)).await.unwrap()),
        ["percent"]
    );
    // Emails are searched only when asked (for superusers).
    assert!(
        r.users
            .list(&search("example.com", false))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let page = r
        .users
        .list(&UserQuery {
            limit: 2,
            ..search("example.com", true)
        })
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.total), (2, 5));
}

async fn listing_sorts_with_ties_broken_by_id_and_pages_do_not_overlap(backend: Backend) {
    let r = repos(backend).await;
    let mut inserted = Vec::new();
    for name in ["carol", "alice", "bob", "dave", "erin"] {
        let u = user(name);
        r.users.insert(&u, &any_event()).await.unwrap();
        inserted.push(u);
        tokio::time::sleep(StdDuration::from_millis(2)).await;
    }
    let sorted = |field, descending, skip| UserQuery {
        skip,
        limit: 2,
        sort: UserSort { field, descending },
        ..UserQuery::default()
    };
    let mut seen = Vec::new();
    for skip in [0, 2, 4] {
        let page = r
            .users
            .list(&sorted(UserSortField::Username, false, skip))
            .await
            .unwrap();
        assert_eq!(page.total, 5);
        seen.extend(
            page.items
                .into_iter()
                .map(|u| u.username.as_str().to_owned()),
        );
    }
    assert_eq!(seen, ["alice", "bob", "carol", "dave", "erin"]);
    let first = r
        .users
        .list(&sorted(UserSortField::Email, true, 0))
        .await
        .unwrap();
    assert_eq!(first.items[0].username.as_str(), "erin");
    let oldest = r
        .users
        .list(&sorted(UserSortField::CreatedAt, false, 0))
        .await
        .unwrap();
    assert_eq!(oldest.items[0].id, inserted[0].id);
    let newest = r
        .users
        .list(&sorted(UserSortField::CreatedAt, true, 0))
        .await
        .unwrap();
    assert_eq!(newest.items[0].id, inserted[4].id);
}

async fn rotation_is_a_compare_and_swap_and_remembers_spent_tokens(backend: Backend) {
    let r = repos(backend).await;
    let ada = user("ada");
    r.users.insert(&ada, &any_event()).await.unwrap();
    let s = session(&ada, "h1");
    assert!(
        r.sessions
            .create(&s, &PasswordHash::new("$2b$04$hash".into()), &any_event())
            .await
            .unwrap()
    );
    let found = r
        .sessions
        .find_by_refresh_token(&RefreshTokenHash::new("h1".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id, found.client.user_agent.as_deref()),
        (s.id, Some("agent/1.0"))
    );
    let (h1, h2, h3) = (
        RefreshTokenHash::new("h1".into()),
        RefreshTokenHash::new("h2".into()),
        RefreshTokenHash::new("h3".into()),
    );
    let later = now() + Duration::days(2);
    assert!(
        r.sessions
            .rotate(s.id, &h1, &h2, now(), later)
            .await
            .unwrap()
    );
    assert!(
        !r.sessions
            .rotate(s.id, &h1, &h3, now(), later)
            .await
            .unwrap(),
        "h1 is spent"
    );
    assert_eq!(r.sessions.find_by_refresh_token(&h1).await.unwrap(), None);
    assert_eq!(
        r.sessions
            .find_by_spent_token(&h1)
            .await
            .unwrap()
            .map(|(id, _)| id),
        Some(s.id)
    );
    let current = r
        .sessions
        .find_by_refresh_token(&h2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.expires_at, later);
    r.sessions.revoke(s.id, now(), None).await.unwrap();
    assert!(
        !r.sessions
            .rotate(s.id, &h2, &h3, now(), later)
            .await
            .unwrap(),
        "revoked"
    );
}

async fn concurrent_rotations_of_one_token_have_one_winner(backend: Backend) {
    let r = repos(backend).await;
    let ada = user("ada");
    r.users.insert(&ada, &any_event()).await.unwrap();
    let s = session(&ada, "start");
    assert!(
        r.sessions
            .create(&s, &PasswordHash::new("$2b$04$hash".into()), &any_event())
            .await
            .unwrap()
    );
    let sessions = Arc::new(r.sessions.clone());
    let attempts = (0..6).map(|i| {
        let sessions = sessions.clone();
        tokio::spawn(async move {
            let (old, new) = (
                RefreshTokenHash::new("start".into()),
                RefreshTokenHash::new(format!("next{i}")),
            );
            sessions
                .rotate(s.id, &old, &new, now(), now() + Duration::days(1))
                .await
                .unwrap()
        })
    });
    let wins = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(wins, 1);
}

/// `find_active_user_and` answers `find_active_user`'s question and reads
/// another user in the same round trip.
async fn the_fused_read_authenticates_as_the_auth_lookup_does(backend: Backend) {
    let r = repos(backend).await;
    let (ada, bob) = (user("ada"), user("bob"));
    r.users.insert(&ada, &any_event()).await.unwrap();
    r.users.insert(&bob, &any_event()).await.unwrap();
    let live = session(&ada, "live");
    let expired = NewSession {
        expires_at: now() - Duration::seconds(1),
        ..session(&ada, "expired")
    };
    let bobs = session(&bob, "bobs");
    for s in [&live, &expired] {
        assert!(
            r.sessions
                .create(s, &ada.password_hash, &any_event())
                .await
                .unwrap()
        );
    }
    assert!(
        r.sessions
            .create(&bobs, &bob.password_hash, &any_event())
            .await
            .unwrap()
    );
    let sessions = &r.sessions;
    let fused = move |caller: UserId, sid: SessionId, other: UserId| async move {
        sessions
            .find_active_user_and(caller, sid, other, now())
            .await
            .unwrap()
            .map(|(c, t)| (c.id, t.map(|t| (t.id, t.is_active))))
    };
    assert_eq!(
        fused(ada.id, live.id, bob.id).await,
        Some((ada.id, Some((bob.id, true))))
    );
    assert_eq!(
        fused(ada.id, live.id, ada.id).await,
        Some((ada.id, Some((ada.id, true))))
    );
    let nobody = UserId::generate();
    assert_eq!(fused(ada.id, live.id, nobody).await, Some((ada.id, None)));
    assert_eq!(fused(ada.id, expired.id, bob.id).await, None, "expired");
    assert_eq!(
        fused(ada.id, bobs.id, bob.id).await,
        None,
        "another user's session"
    );
    assert_eq!(
        fused(nobody, live.id, ada.id).await,
        None,
        "another user's token"
    );
    // A deactivated target is read as it is; a deactivated caller is refused.
    r.save(
        &bob,
        &bob,
        &User {
            is_active: false,
            ..bob.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        fused(ada.id, live.id, bob.id).await,
        Some((ada.id, Some((bob.id, false))))
    );
    r.save(
        &ada,
        &ada,
        &User {
            is_active: false,
            ..ada.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        fused(ada.id, live.id, ada.id).await,
        None,
        "deactivated caller"
    );
}

async fn the_auth_lookup_needs_a_live_session_and_an_active_user(backend: Backend) {
    let r = repos(backend).await;
    let ada = user("ada");
    r.users.insert(&ada, &any_event()).await.unwrap();
    let live = session(&ada, "live");
    let expired = NewSession {
        expires_at: now() - Duration::seconds(1),
        ..session(&ada, "expired")
    };
    assert!(
        r.sessions
            .create(&live, &ada.password_hash, &any_event())
            .await
            .unwrap()
    );
    assert!(
        r.sessions
            .create(&expired, &ada.password_hash, &any_event())
            .await
            .unwrap()
    );
    let lookup = |sid| r.sessions.find_active_user(ada.id, sid, now());
    assert_eq!(lookup(live.id).await.unwrap().map(|u| u.id), Some(ada.id));
    assert_eq!(lookup(expired.id).await.unwrap(), None);
    assert_eq!(
        r.sessions
            .find_active_user(UserId::generate(), live.id, now())
            .await
            .unwrap(),
        None
    );
    let gone = r
        .save(
            &ada,
            &ada,
            &User {
                is_active: false,
                ..ada.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(lookup(live.id).await.unwrap(), None, "deactivated");
    let root = User {
        is_superuser: true,
        ..user("root")
    };
    r.users.insert(&root, &any_event()).await.unwrap();
    r.save(&root, &gone, &ada).await.unwrap();
    r.sessions
        .revoke_all_for_user(ada.id, None, now(), None)
        .await
        .unwrap();
    assert_eq!(lookup(live.id).await.unwrap(), None, "revoked");
}

async fn sessions_are_listed_and_revoked_per_user_only(backend: Backend) {
    let r = repos(backend).await;
    let (ada, bob) = (user("ada"), user("bob"));
    r.users.insert(&ada, &any_event()).await.unwrap();
    r.users.insert(&bob, &any_event()).await.unwrap();
    let (a1, a2, a3, b1) = (
        session(&ada, "a1"),
        session(&ada, "a2"),
        session(&ada, "a3"),
        session(&bob, "b1"),
    );
    for s in [&a1, &a2, &a3, &b1] {
        assert!(
            r.sessions
                .create(s, &PasswordHash::new("$2b$04$hash".into()), &any_event())
                .await
                .unwrap()
        );
    }
    let live = |u: UserId| r.sessions.list_live_for_user(u, now());
    let ids = |sessions: Vec<userhub_domain::model::Session>| {
        sessions.into_iter().map(|s| s.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(live(ada.id).await.unwrap()),
        [a3.id, a2.id, a1.id],
        "newest first"
    );
    assert!(
        !r.sessions
            .revoke_for_user(ada.id, b1.id, now(), &any_event())
            .await
            .unwrap(),
        "not ada's"
    );
    assert!(
        r.sessions
            .revoke_for_user(ada.id, a1.id, now(), &any_event())
            .await
            .unwrap()
    );
    assert!(
        !r.sessions
            .revoke_for_user(ada.id, a1.id, now(), &any_event())
            .await
            .unwrap(),
        "already ended"
    );
    r.sessions
        .revoke_all_for_user(ada.id, Some(a2.id), now(), None)
        .await
        .unwrap();
    assert_eq!(ids(live(ada.id).await.unwrap()), [a2.id]);
    assert_eq!(ids(live(bob.id).await.unwrap()), [b1.id]);
}

async fn failed_logins_are_counted_atomically_locked_and_reset(backend: Backend) {
    let r = repos(backend).await;
    let t = now();
    // Concurrent failures of one pair: every one counted, none lost.
    let attempts = (0..6).map(|_| {
        let throttle = r.throttle.clone();
        tokio::spawn(async move {
            throttle
                .record_failure("ada", "10.0.0.1", t, Duration::HOUR, &any_event())
                .await
                .unwrap()
        })
    });
    let states: Vec<_> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut counts: Vec<u32> = states.iter().map(|s| s.pair_failures).collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 2, 3, 4, 5, 6], "no increment lost");
    let mut by_name: Vec<u32> = states.iter().map(|s| s.name_failures).collect();
    by_name.sort_unstable();
    assert_eq!(by_name, [1, 2, 3, 4, 5, 6]);

    // Of concurrent lock attempts one locks; failures in flight while
    // locked are not counted, so nothing re-locks or escalates.
    let until = t + Duration::minutes(1);
    let locks = (0..4).map(|_| {
        let throttle = r.throttle.clone();
        tokio::spawn(async move {
            throttle
                .lock_pair("ada", "10.0.0.1", t, until, &any_event())
                .await
        })
    });
    let locked = futures_util::future::join_all(locks)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(Ok(true))))
        .count();
    assert_eq!(locked, 1);
    let state = r
        .throttle
        .record_failure("ada", "10.0.0.1", t, Duration::HOUR, &any_event())
        .await
        .unwrap();
    assert_eq!(
        (
            state.pair_failures,
            state.pair_lockouts,
            state.pair_locked_until
        ),
        (0, 1, Some(until))
    );
    assert_eq!(
        state.name_failures, 7,
        "the name's budget counts every failure"
    );
    assert!(
        !r.throttle
            .lock_pair("ada", "10.0.0.1", t, until, &any_event())
            .await
            .unwrap()
    );

    // Another address of the same name is not locked, an unknown name's state is empty.
    let elsewhere = r.throttle.state("ada", "10.0.0.2").await.unwrap();
    assert_eq!(
        (elsewhere.pair_locked_until, elsewhere.name_failures),
        (None, 7)
    );
    assert_eq!(
        r.throttle.state("nobody", "10.0.0.1").await.unwrap(),
        Default::default()
    );

    // The name's window restarts once it has passed.
    let later = t + Duration::HOUR;
    let state = r
        .throttle
        .record_failure("ada", "10.0.0.2", later, Duration::HOUR, &any_event())
        .await
        .unwrap();
    assert_eq!(
        (state.name_failures, state.name_window_start),
        (1, Some(later))
    );

    // Success forgets the pair; an unlock forgets the name everywhere; purge forgets old rows.
    r.throttle.clear_pair("ada", "10.0.0.1").await.unwrap();
    assert_eq!(
        r.throttle
            .state("ada", "10.0.0.1")
            .await
            .unwrap()
            .pair_lockouts,
        0
    );
    r.throttle
        .record_failure("bob", "10.0.0.1", t, Duration::HOUR, &any_event())
        .await
        .unwrap();
    r.throttle
        .clear_names(&["ada".to_owned()], None)
        .await
        .unwrap();
    assert_eq!(
        r.throttle.state("ada", "10.0.0.2").await.unwrap(),
        Default::default()
    );
    assert_eq!(r.throttle.purge(t + Duration::seconds(1)).await.unwrap(), 2);
    assert_eq!(
        r.throttle.state("bob", "10.0.0.1").await.unwrap(),
        Default::default()
    );
}

async fn purging_deletes_ended_sessions_and_their_spent_tokens_only(backend: Backend) {
    let r = repos(backend).await;
    let ada = user("ada");
    r.users.insert(&ada, &any_event()).await.unwrap();
    let live = session(&ada, "live");
    let revoked = session(&ada, "revoked");
    let expired = NewSession {
        expires_at: now() - Duration::seconds(1),
        ..session(&ada, "expired")
    };
    for s in [&live, &revoked, &expired] {
        assert!(
            r.sessions
                .create(s, &PasswordHash::new("$2b$04$hash".into()), &any_event())
                .await
                .unwrap()
        );
    }
    let (old, new) = (
        RefreshTokenHash::new("revoked".into()),
        RefreshTokenHash::new("revoked2".into()),
    );
    assert!(
        r.sessions
            .rotate(revoked.id, &old, &new, now(), now() + Duration::days(1))
            .await
            .unwrap()
    );
    r.sessions.revoke(revoked.id, now(), None).await.unwrap();
    assert_eq!(r.sessions.purge_ended(now()).await.unwrap(), 2);
    assert_eq!(
        r.sessions.find_by_spent_token(&old).await.unwrap(),
        None,
        "spent tokens go with their session"
    );
    assert!(
        r.sessions
            .find_by_refresh_token(&RefreshTokenHash::new("live".into()))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(r.sessions.purge_ended(now()).await.unwrap(), 0);
}

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
