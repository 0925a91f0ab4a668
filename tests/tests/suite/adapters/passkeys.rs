//! The passkey store against real databases: a ceremony's token is spent
//! once however many requests race with it, the cap and the credential's
//! uniqueness hold, a sign-in's counter is written once per value, and the
//! last way in is never removed.

use std::sync::Arc;

use time::Duration;
use userhub_domain::model::{
    CeremonyKind, CeremonyState, NewPasskey, Passkey, PasskeyCredential, PasskeyId, PasskeyName,
    PasswordHash, TokenHash, User, UserId,
};
use userhub_domain::ports::{
    CreatePasskeyError, PasskeyRemoval, PasskeyRepository, UserPatch, UserRepository, WriteGuard,
};
use userhub_infrastructure::{SeaOrmPasskeyRepository, SeaOrmUserRepository};
use userhub_tests::{
    Backend, any_event, migrated_database, stored_now as now, stored_user as user,
};

on_both_backends!(
    a_ceremony_token_is_spent_once_when_requests_race,
    a_ceremony_is_of_one_kind_and_expires,
    the_cap_and_the_credentials_uniqueness_hold_when_registrations_race,
    a_counter_value_is_recorded_once,
    the_last_way_in_is_never_removed,
    passkeys_are_listed_renamed_and_found_by_credential,
);

struct Stores {
    users: SeaOrmUserRepository,
    passkeys: Arc<SeaOrmPasskeyRepository>,
    _db: userhub_tests::TestDatabase,
}

async fn stores(backend: Backend) -> Stores {
    let (database, db) = migrated_database(backend).await;
    Stores {
        users: SeaOrmUserRepository::new(database.clone()),
        passkeys: Arc::new(SeaOrmPasskeyRepository::new(database)),
        _db: db,
    }
}

async fn with_user(s: &Stores, name: &str) -> User {
    let u = user(name);
    s.users.insert(&u, &any_event()).await.unwrap();
    u
}

fn passkey(owner: UserId, credential_id: &str) -> NewPasskey {
    NewPasskey {
        passkey: Passkey {
            id: PasskeyId::generate(),
            user_id: owner,
            name: PasskeyName::parse("key").unwrap(),
            created_at: now(),
            last_used_at: None,
            backed_up: false,
        },
        credential: PasskeyCredential {
            credential_id: credential_id.into(),
            counter: 3,
            data: "{}".into(),
        },
    }
}

/// `n` tasks at once, each given its index.
async fn race<T: Send + 'static, F>(n: usize, task: impl Fn(usize) -> F) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(task(i))).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

async fn a_ceremony_token_is_spent_once_when_requests_race(backend: Backend) {
    let s = stores(backend).await;
    let ada = with_user(&s, "ada").await;
    let hash = TokenHash::new("c1".into());
    let state = CeremonyState("state".into());
    for kind in [CeremonyKind::Register, CeremonyKind::Login] {
        let hash = TokenHash::new(format!("{}-{}", hash.as_str(), kind.as_str()));
        s.passkeys
            .begin_ceremony(
                &hash,
                kind,
                Some(ada.id),
                &state,
                now() + Duration::minutes(5),
            )
            .await
            .unwrap();
        let store = s.passkeys.clone();
        let taken = race(6, move |_| {
            let store = store.clone();
            let hash = hash.clone();
            async move { store.take_ceremony(&hash, kind, now()).await.unwrap() }
        })
        .await;
        let spent: Vec<_> = taken.into_iter().flatten().collect();
        assert_eq!(spent, vec![(Some(ada.id), state.clone())], "{kind:?}");
    }
}

async fn a_ceremony_is_of_one_kind_and_expires(backend: Backend) {
    let s = stores(backend).await;
    let t0 = now();
    let state = CeremonyState("s".into());
    let login = TokenHash::new("login".into());
    s.passkeys
        .begin_ceremony(
            &login,
            CeremonyKind::Login,
            None,
            &state,
            t0 + Duration::minutes(5),
        )
        .await
        .unwrap();
    // A sign-in's token finishes no registration, and stays for its own kind.
    let wrong = s
        .passkeys
        .take_ceremony(&login, CeremonyKind::Register, t0)
        .await
        .unwrap();
    assert_eq!(wrong, None);
    let late = s
        .passkeys
        .take_ceremony(&login, CeremonyKind::Login, t0 + Duration::minutes(6))
        .await
        .unwrap();
    assert_eq!(late, None, "expired");
    assert_eq!(
        s.passkeys
            .purge_ceremonies(t0 + Duration::minutes(6))
            .await
            .unwrap(),
        1
    );
}

async fn the_cap_and_the_credentials_uniqueness_hold_when_registrations_race(backend: Backend) {
    let s = stores(backend).await;
    let ada = with_user(&s, "ada").await;
    let bob = with_user(&s, "bob").await;
    s.passkeys
        .create(&passkey(ada.id, "a0"), 3, &any_event())
        .await
        .unwrap();
    let store = s.passkeys.clone();
    let outcomes = race(6, move |i| {
        let store = store.clone();
        async move {
            store
                .create(&passkey(ada.id, &format!("a{}", i + 1)), 3, &any_event())
                .await
        }
    })
    .await;
    let made = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(made, 2, "three at most: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(()) | Err(CreatePasskeyError::TooMany)))
    );
    // One credential, two accounts at once: one registration.
    let store = s.passkeys.clone();
    let owners = [bob.id, ada.id];
    let outcomes = race(2, move |i| {
        let store = store.clone();
        async move {
            store
                .create(&passkey(owners[i], "shared"), 20, &any_event())
                .await
        }
    })
    .await;
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Err(CreatePasskeyError::Duplicate)))
    );
}

async fn a_counter_value_is_recorded_once(backend: Backend) {
    let s = stores(backend).await;
    let ada = with_user(&s, "ada").await;
    let key = passkey(ada.id, "c");
    s.passkeys.create(&key, 20, &any_event()).await.unwrap();
    let next = PasskeyCredential {
        counter: 4,
        data: "{\"n\":4}".into(),
        ..key.credential.clone()
    };
    let store = s.passkeys.clone();
    let id = key.passkey.id;
    let recorded = race(4, move |_| {
        let store = store.clone();
        let next = next.clone();
        async move { store.record_use(id, 3, &next, true, now()).await.unwrap() }
    })
    .await;
    assert_eq!(recorded.iter().filter(|r| **r).count(), 1);
    let (found, credential, owner) = s.passkeys.find_by_credential("c").await.unwrap().unwrap();
    assert_eq!(credential.counter, 4);
    assert_eq!(credential.data, "{\"n\":4}");
    assert!(found.backed_up && found.last_used_at.is_some());
    assert_eq!(owner.id, ada.id);
}

async fn the_last_way_in_is_never_removed(backend: Backend) {
    let s = stores(backend).await;
    let ada = with_user(&s, "ada").await;
    let (one, two) = (passkey(ada.id, "k1"), passkey(ada.id, "k2"));
    for key in [&one, &two] {
        s.passkeys.create(key, 20, &any_event()).await.unwrap();
    }
    // With a password, every passkey may go.
    assert_eq!(
        s.passkeys
            .remove(ada.id, one.passkey.id, &any_event())
            .await
            .unwrap(),
        PasskeyRemoval::Removed
    );
    s.passkeys.create(&one, 20, &any_event()).await.unwrap();
    // Without one, two removals racing for the last two passkeys: one passes.
    let patch = UserPatch {
        password_hash: Some(PasswordHash::none()),
        ..UserPatch::default()
    };
    let guard = WriteGuard {
        actor: ada.id,
        actor_is_superuser: false,
        keep_a_superuser: false,
        password_hash: None,
        target_active: None,
    };
    s.users
        .update(ada.id, None, &patch, &guard, now(), &any_event())
        .await
        .unwrap();
    let store = s.passkeys.clone();
    let ids = [one.passkey.id, two.passkey.id];
    let outcomes = race(2, move |i| {
        let store = store.clone();
        async move { store.remove(ada.id, ids[i], &any_event()).await.unwrap() }
    })
    .await;
    let mut sorted = outcomes.clone();
    sorted.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        sorted,
        vec![PasskeyRemoval::LastMethod, PasskeyRemoval::Removed],
        "{outcomes:?}"
    );
    assert_eq!(s.passkeys.list(ada.id).await.unwrap().len(), 1);
    assert_eq!(
        s.passkeys
            .remove(ada.id, PasskeyId::generate(), &any_event())
            .await
            .unwrap(),
        PasskeyRemoval::NotFound
    );
}

async fn passkeys_are_listed_renamed_and_found_by_credential(backend: Backend) {
    let s = stores(backend).await;
    let ada = with_user(&s, "ada").await;
    let bob = with_user(&s, "bob").await;
    let key = passkey(ada.id, "cred");
    s.passkeys.create(&key, 20, &any_event()).await.unwrap();
    let name = PasskeyName::parse("Laptop").unwrap();
    // Another user's rename finds nothing.
    assert_eq!(
        s.passkeys
            .rename(bob.id, key.passkey.id, &name, &any_event())
            .await
            .unwrap(),
        None
    );
    let renamed = s
        .passkeys
        .rename(ada.id, key.passkey.id, &name, &any_event())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.name, name);
    assert_eq!(s.passkeys.list(ada.id).await.unwrap(), vec![renamed]);
    assert!(s.passkeys.list(bob.id).await.unwrap().is_empty());
    assert_eq!(
        s.passkeys.credentials(ada.id).await.unwrap(),
        vec![key.credential]
    );
    assert!(
        s.passkeys
            .find_by_credential("nope")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.passkeys.remove_all(ada.id, &any_event()).await.unwrap(),
        1
    );
    assert!(s.passkeys.list(ada.id).await.unwrap().is_empty());
}
