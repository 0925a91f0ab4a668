//! The identity store against real databases: a user made with its first
//! identity, all or nothing; links refused by either key; the last way in
//! kept even when two unlinks race; sign-in states spent once.

use std::sync::Arc;

use time::Duration;
use userhub_domain::model::{PasswordHash, ProviderIdentity, User};
use userhub_domain::ports::{
    IdentityRepository, LinkIdentityError, NewIdentityUserError, Unlinked, UserRepository,
};
use userhub_infrastructure::{SeaOrmIdentityRepository, SeaOrmUserRepository};
use userhub_tests::{Backend, any_event, migrated_database, stored_now as now, stored_user};

on_both_backends!(
    a_user_is_made_with_its_identity_or_not_at_all,
    a_link_is_refused_by_either_key_and_for_an_inactive_user,
    two_racing_unlinks_of_the_last_two_ways_in_leave_one,
    a_state_is_spent_once_and_forgotten_when_expired,
);

struct Stores {
    users: SeaOrmUserRepository,
    identities: Arc<SeaOrmIdentityRepository>,
    _db: userhub_tests::TestDatabase,
}

async fn stores(backend: Backend) -> Stores {
    let (database, db) = migrated_database(backend).await;
    Stores {
        users: SeaOrmUserRepository::new(database.clone()),
        identities: Arc::new(SeaOrmIdentityRepository::new(database)),
        _db: db,
    }
}

fn identity(provider: &str, subject: &str) -> ProviderIdentity {
    ProviderIdentity {
        provider: provider.into(),
        subject: subject.into(),
        email: Some(format!("{subject}@example.com")),
        email_verified: true,
        preferred_username: None,
        name: None,
    }
}

fn passwordless(name: &str) -> User {
    User {
        password_hash: PasswordHash::none(),
        ..stored_user(name)
    }
}

async fn a_user_is_made_with_its_identity_or_not_at_all(backend: Backend) {
    let s = stores(backend).await;
    let ada = passwordless("ada");
    let events = [any_event(), any_event()];
    s.identities
        .create_user(&ada, &identity("corp", "a1"), &events)
        .await
        .unwrap();
    assert_eq!(
        s.identities.find_user("corp", "a1").await.unwrap(),
        Some(ada.id)
    );
    assert_eq!(s.identities.find_user("corp", "other").await.unwrap(), None);
    let stored = s.users.find_by_id(ada.id).await.unwrap().unwrap();
    assert!(!stored.password_hash.is_set());
    let listed = s.identities.list(ada.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].email.as_deref(), Some("a1@example.com"));

    // The identity is taken: the new user is not stored either.
    let bob = passwordless("bob");
    let err = s
        .identities
        .create_user(&bob, &identity("corp", "a1"), &events)
        .await
        .unwrap_err();
    assert!(
        matches!(err, NewIdentityUserError::IdentityTaken),
        "{err:?}"
    );
    assert!(s.users.find_by_id(bob.id).await.unwrap().is_none());
    // Taken address and username are told apart.
    let mut twin = passwordless("bob");
    twin.email = ada.email.clone();
    let err = s
        .identities
        .create_user(&twin, &identity("corp", "b1"), &events)
        .await
        .unwrap_err();
    assert!(matches!(err, NewIdentityUserError::EmailTaken), "{err:?}");
    let mut twin = passwordless("carl");
    twin.username = ada.username.clone();
    let err = s
        .identities
        .create_user(&twin, &identity("corp", "c1"), &events)
        .await
        .unwrap_err();
    assert!(
        matches!(err, NewIdentityUserError::UsernameTaken),
        "{err:?}"
    );
}

async fn a_link_is_refused_by_either_key_and_for_an_inactive_user(backend: Backend) {
    let s = stores(backend).await;
    let ada = stored_user("ada");
    let bob = stored_user("bob");
    let mut gone = stored_user("gone");
    gone.is_active = false;
    for user in [&ada, &bob, &gone] {
        s.users.insert(user, &any_event()).await.unwrap();
    }
    let link = |user: &User, provider: &str, subject: &str| {
        let identities = s.identities.clone();
        let (id, identity) = (user.id, identity(provider, subject));
        async move { identities.link(id, &identity, now(), &any_event()).await }
    };
    link(&ada, "corp", "a1").await.unwrap();
    // Linked again, to ada or to bob: its owner is named.
    for user in [&ada, &bob] {
        let err = link(user, "corp", "a1").await.unwrap_err();
        assert!(
            matches!(err, LinkIdentityError::LinkedTo(owner) if owner == ada.id),
            "{err:?}"
        );
    }
    // Ada has an identity at corp already.
    let err = link(&ada, "corp", "a2").await.unwrap_err();
    assert!(matches!(err, LinkIdentityError::ProviderLinked), "{err:?}");
    link(&ada, "other", "a1").await.unwrap();
    let err = link(&gone, "corp", "g1").await.unwrap_err();
    assert!(matches!(err, LinkIdentityError::Inactive), "{err:?}");
    let providers: Vec<String> = s
        .identities
        .list(ada.id)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.provider)
        .collect();
    assert_eq!(providers, ["corp", "other"]);
}

async fn two_racing_unlinks_of_the_last_two_ways_in_leave_one(backend: Backend) {
    let s = stores(backend).await;
    for round in 0..5 {
        let ada = passwordless(&format!("ada{round}"));
        s.identities
            .create_user(
                &ada,
                &identity("corp", &format!("a{round}")),
                &[any_event()],
            )
            .await
            .unwrap();
        s.identities
            .link(
                ada.id,
                &identity("other", &format!("a{round}")),
                now(),
                &any_event(),
            )
            .await
            .unwrap();
        let race = |provider: &'static str| {
            let identities = s.identities.clone();
            tokio::spawn(async move { identities.unlink(ada.id, provider, &any_event()).await })
        };
        let (first, second) = (race("corp"), race("other"));
        let mut outcomes = [
            first.await.unwrap().unwrap(),
            second.await.unwrap().unwrap(),
        ];
        outcomes.sort_by_key(|o| *o != Unlinked::Done);
        assert_eq!(outcomes, [Unlinked::Done, Unlinked::LastMethod]);
        assert_eq!(s.identities.list(ada.id).await.unwrap().len(), 1);
    }
    // With a password, the last identity may go; then nothing is linked.
    let bob = stored_user("bob");
    s.users.insert(&bob, &any_event()).await.unwrap();
    s.identities
        .link(bob.id, &identity("corp", "b1"), now(), &any_event())
        .await
        .unwrap();
    let event = any_event();
    let unlink = |provider| s.identities.unlink(bob.id, provider, &event);
    assert_eq!(unlink("corp").await.unwrap(), Unlinked::Done);
    assert_eq!(unlink("corp").await.unwrap(), Unlinked::NotLinked);
}

async fn a_state_is_spent_once_and_forgotten_when_expired(backend: Backend) {
    let s = stores(backend).await;
    let expires = now() + Duration::minutes(10);
    assert!(s.identities.spend_state("s1", expires).await.unwrap());
    assert!(!s.identities.spend_state("s1", expires).await.unwrap());
    assert!(s.identities.spend_state("s2", now()).await.unwrap());
    assert_eq!(
        s.identities
            .purge(now() + Duration::minutes(1))
            .await
            .unwrap(),
        1
    );
    assert!(!s.identities.spend_state("s1", expires).await.unwrap());
}
