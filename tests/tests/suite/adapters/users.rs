//! Users and migrations against real databases: round trips, unique
//! constraints, races, escaping, listing.

use migration::{Migrator, MigratorTrait};
use std::time::Duration as StdDuration;
use userhub_domain::model::{Email, User, UserId, Username};
use userhub_domain::ports::{
    InsertUserError, PatchUserError, UserQuery, UserRepository, UserSort, UserSortField,
};
use userhub_tests::{Backend, any_event, stored_now as now, stored_user as user};

use super::*;

on_both_backends!(
    a_user_round_trips_and_is_found_by_email_or_username,
    duplicate_email_or_username_is_reported_as_such,
    concurrent_registrations_of_one_email_end_in_one_user_and_one_email_taken,
    updating_an_unknown_user_is_not_found,
    search_matches_wildcards_literally_and_counts_all_matches,
    search_follows_changes_to_names_and_emails,
    users_made_before_an_upgrade_are_found_after_it,
    listing_sorts_with_ties_broken_by_id_and_pages_do_not_overlap,
    unsearched_totals_follow_every_insert_update_and_delete,
    migrations_go_fresh_down_to_zero_and_up_again,
    a_migration_that_fails_half_way_leaves_nothing_behind,
    a_migration_outlasts_the_statement_timeout,
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

/// Takes longer than the test connection's statement timeout (PostgreSQL).
struct Slow;

impl migration::MigrationName for Slow {
    fn name(&self) -> &str {
        "m99999999_000002_slow"
    }
}

#[migration::async_trait::async_trait]
impl migration::MigrationTrait for Slow {
    async fn up(&self, manager: &migration::SchemaManager) -> Result<(), sea_orm::DbErr> {
        let sql = match manager.get_database_backend() {
            sea_orm::DbBackend::Postgres => "SELECT pg_sleep(1.5)",
            _ => "SELECT 1",
        };
        sea_orm::ConnectionTrait::execute_unprepared(manager.get_connection(), sql).await?;
        Ok(())
    }
}

struct SlowMigrator;

#[migration::async_trait::async_trait]
impl MigratorTrait for SlowMigrator {
    fn migrations() -> Vec<Box<dyn migration::MigrationTrait>> {
        vec![migration::atomic(Box::new(Slow))]
    }
}

/// A migration that copies a large table takes as long as it takes: the
/// server's statement timeout (here 1 s) must not cancel it half way, or
/// no start could ever finish it.
async fn a_migration_outlasts_the_statement_timeout(backend: Backend) {
    let db = userhub_tests::TestDatabase::create(backend).await;
    let url = match backend {
        Backend::Postgres => format!("{}?options=-c%20statement_timeout%3D1000", db.url),
        Backend::Sqlite => db.url.clone(),
    };
    let conn = sea_orm::Database::connect(&url).await.unwrap();
    if backend == Backend::Postgres {
        let timed_out =
            sea_orm::ConnectionTrait::execute_unprepared(&conn, "SELECT pg_sleep(1.5)").await;
        assert!(timed_out.is_err(), "the connection has the timeout");
    }
    SlowMigrator::up(&conn, None).await.unwrap();
    assert_eq!(
        SlowMigrator::get_applied_migrations(&conn)
            .await
            .unwrap()
            .len(),
        1
    );
    let _ = conn.close().await;
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

/// Usernames (sorted) of the users a search for `term` finds.
async fn found(r: &Repos, term: &str, search_email: bool) -> Vec<String> {
    let page = r
        .users
        .list(&UserQuery {
            limit: 10,
            search: Some(term.to_owned()),
            search_email,
            ..UserQuery::default()
        })
        .await
        .unwrap();
    let mut names: Vec<String> = page
        .items
        .into_iter()
        .map(|u| u.username.as_str().to_owned())
        .collect();
    names.sort();
    assert_eq!(page.total, names.len() as u64, "the total counts the same");
    names
}

/// A search finds a user by the username, name and address they have now,
/// never by the ones they had: the terms PostgreSQL searches live off
/// `users` and must follow every change to it.
async fn search_follows_changes_to_names_and_emails(backend: Backend) {
    let r = repos(backend).await;
    let ada = user("ada");
    r.users.insert(&ada, &any_event()).await.unwrap();
    r.users.insert(&user("bob"), &any_event()).await.unwrap();
    let mut renamed = ada.clone();
    renamed.full_name = Some(userhub_domain::model::FullName::parse("Countess Lovelace").unwrap());
    let renamed = r.save(&ada, &ada, &renamed).await.unwrap();
    assert_eq!(found(&r, "countess", false).await, ["ada"]);

    let mut moved = renamed.clone();
    moved.username = Username::parse("augusta").unwrap();
    moved.email = Email::parse("byron@new.example").unwrap();
    let moved = r.save(&renamed, &renamed, &moved).await.unwrap();
    assert_eq!(found(&r, "augusta", false).await, ["augusta"]);
    assert_eq!(found(&r, "lovelace", false).await, ["augusta"]);
    assert_eq!(found(&r, "byron", true).await, ["augusta"]);
    assert!(
        found(&r, "byron", false).await.is_empty(),
        "addresses only when asked"
    );
    assert!(
        found(&r, "ada", true).await.is_empty(),
        "the old username and address are gone"
    );

    let mut unnamed = moved.clone();
    unnamed.full_name = None;
    r.save(&moved, &moved, &unnamed).await.unwrap();
    assert!(found(&r, "countess", false).await.is_empty());
    assert_eq!(found(&r, "o", true).await, ["augusta", "bob"]);
    // A page past the last match still knows how many there are.
    let beyond = r
        .users
        .list(&UserQuery {
            limit: 10,
            skip: 5,
            search: Some("o".into()),
            search_email: true,
            ..UserQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((beyond.items.len(), beyond.total), (0, 2));
}

/// The migration that moved search terms off `users` fills them from the
/// users already there, including those made while it was undone.
async fn users_made_before_an_upgrade_are_found_after_it(backend: Backend) {
    let r = repos(backend).await;
    let mut ada = user("ada");
    ada.full_name = Some(userhub_domain::model::FullName::parse("Ada Lovelace").unwrap());
    r.users.insert(&ada, &any_event()).await.unwrap();
    let conn = sea_orm::Database::connect(&r._db.url).await.unwrap();
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| migration::MigrationName::name(m.as_ref()).to_owned())
        .collect();
    let moved = names
        .iter()
        .position(|n| n == "m20261208_000018_search_terms_off_users")
        .unwrap();
    let undo = u32::try_from(names.len() - moved).unwrap();
    Migrator::down(&conn, Some(undo)).await.unwrap();
    r.users.insert(&user("bob"), &any_event()).await.unwrap();
    Migrator::up(&conn, None).await.unwrap();
    assert_eq!(found(&r, "lovelace", false).await, ["ada"]);
    assert_eq!(found(&r, "bob@example", true).await, ["bob"]);
    let _ = conn.close().await;
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
