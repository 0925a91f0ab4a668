//! The personal access token store against real databases: the cap holds
//! when creations race, the authenticating read follows the owner and the
//! expiry, a use is written at most once a minute, and a password reset
//! revokes every token, including one whose creation proved the old
//! password while the reset landed.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use userhub_domain::model::{
    MailKind, NewPersonalToken, PasswordHash, PersonalToken, Scope, Scopes, TokenHash, TokenId,
    TokenName, User,
};
use userhub_domain::ports::{
    CreateTokenError, PersonalTokenRepository, RecoveryTokens, UserPatch, UserRepository,
    WriteGuard,
};
use userhub_infrastructure::{
    SeaOrmPersonalTokenRepository, SeaOrmRecoveryTokens, SeaOrmUserRepository,
};
use userhub_tests::{
    Backend, any_event, migrated_database, stored_now as now, stored_user as user,
};

on_both_backends!(
    a_token_is_found_by_its_hash_while_it_lives_and_its_owner_is_active,
    the_cap_holds_when_creations_race,
    a_use_is_written_at_most_once_a_minute,
    a_token_is_revoked_by_its_owner_only_and_expired_ones_are_purged,
    a_password_reset_revokes_every_token,
    concurrent_reads_each_find_their_own_tokens_owner,
);

struct Stores {
    users: SeaOrmUserRepository,
    tokens: Arc<SeaOrmPersonalTokenRepository>,
    recovery: SeaOrmRecoveryTokens,
    _db: userhub_tests::TestDatabase,
}

async fn stores(backend: Backend) -> Stores {
    let (database, db) = migrated_database(backend).await;
    Stores {
        users: SeaOrmUserRepository::new(database.clone()),
        tokens: Arc::new(SeaOrmPersonalTokenRepository::new(database.clone())),
        recovery: SeaOrmRecoveryTokens::new(database),
        _db: db,
    }
}

async fn with_user(s: &Stores, name: &str) -> User {
    let u = user(name);
    s.users.insert(&u, &any_event()).await.unwrap();
    u
}

fn token(owner: &User, hash: &str, at: OffsetDateTime, days: i64) -> NewPersonalToken {
    NewPersonalToken {
        token: PersonalToken {
            id: TokenId::generate(),
            user_id: owner.id,
            name: TokenName::parse("script").unwrap(),
            scopes: Scopes::of([Scope::UsersRead, Scope::AuditRead]),
            prefix: "uhp_abcd".into(),
            created_at: at,
            expires_at: at + Duration::days(days),
            last_used_at: None,
        },
        hash: TokenHash::new(hash.into()),
        proven: owner.password_hash.clone(),
    }
}

async fn a_token_is_found_by_its_hash_while_it_lives_and_its_owner_is_active(backend: Backend) {
    let s = stores(backend).await;
    let ada = with_user(&s, "ada").await;
    let t0 = now();
    let new = token(&ada, "h1", t0, 1);
    s.tokens.create(&new, 50, t0, &any_event()).await.unwrap();
    let (owner, grant) = s
        .tokens
        .authenticate(&TokenHash::new("h1".into()), t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.id, ada.id);
    assert_eq!(grant.id, new.token.id);
    assert_eq!(grant.scopes, new.token.scopes);
    assert_eq!(grant.last_used_at, None);
    assert_eq!(
        s.tokens.list(ada.id, t0).await.unwrap(),
        vec![new.token.clone()]
    );
    // Another hash, or after expiry: nothing.
    let other = TokenHash::new("h2".into());
    assert!(s.tokens.authenticate(&other, t0).await.unwrap().is_none());
    let later = t0 + Duration::days(1);
    let hash = TokenHash::new("h1".into());
    assert!(s.tokens.authenticate(&hash, later).await.unwrap().is_none());
    assert!(s.tokens.list(ada.id, later).await.unwrap().is_empty());
    // A deactivated owner: nothing, and no new token either.
    let guard = WriteGuard {
        actor: ada.id,
        actor_is_superuser: false,
        keep_a_superuser: false,
        password_hash: None,
        target_active: Some(true),
    };
    let deactivate = UserPatch {
        is_active: Some(false),
        ..UserPatch::default()
    };
    s.users
        .update(ada.id, None, &deactivate, &guard, t0, &any_event())
        .await
        .unwrap();
    assert!(s.tokens.authenticate(&hash, t0).await.unwrap().is_none());
    let err = s
        .tokens
        .create(&token(&ada, "h3", t0, 1), 50, t0, &any_event())
        .await
        .unwrap_err();
    assert!(matches!(err, CreateTokenError::OwnerChanged), "{err:?}");
}

async fn the_cap_holds_when_creations_race(backend: Backend) {
    let s = stores(backend).await;
    let ada = with_user(&s, "ada").await;
    let t0 = now();
    // An expired token does not count.
    s.tokens
        .create(
            &token(&ada, "old", t0 - Duration::days(2), 1),
            3,
            t0 - Duration::days(2),
            &any_event(),
        )
        .await
        .unwrap();
    s.tokens
        .create(&token(&ada, "a", t0, 1), 3, t0, &any_event())
        .await
        .unwrap();
    let racers: Vec<_> = (0..6)
        .map(|i| {
            let tokens = s.tokens.clone();
            let new = token(&ada, &format!("r{i}"), t0, 1);
            tokio::spawn(async move { tokens.create(&new, 3, t0, &any_event()).await })
        })
        .collect();
    let mut made = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(()) => made += 1,
            Err(CreateTokenError::TooMany) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(made, 2, "3 live tokens at most");
    assert_eq!(s.tokens.list(ada.id, t0).await.unwrap().len(), 3);
}

async fn a_use_is_written_at_most_once_a_minute(backend: Backend) {
    let s = stores(backend).await;
    let ada = with_user(&s, "ada").await;
    let t0 = now();
    let new = token(&ada, "h", t0, 1);
    s.tokens.create(&new, 50, t0, &any_event()).await.unwrap();
    let hash = TokenHash::new("h".into());
    let id = new.token.id;
    s.tokens.touch(id, t0, Duration::MINUTE).await.unwrap();
    // Within the minute: the first use stays.
    s.tokens
        .touch(id, t0 + Duration::seconds(30), Duration::MINUTE)
        .await
        .unwrap();
    let (_, grant) = s.tokens.authenticate(&hash, t0).await.unwrap().unwrap();
    assert_eq!(grant.last_used_at, Some(t0));
    let later = t0 + Duration::seconds(61);
    s.tokens.touch(id, later, Duration::MINUTE).await.unwrap();
    let (_, grant) = s.tokens.authenticate(&hash, later).await.unwrap().unwrap();
    assert_eq!(grant.last_used_at, Some(later));
}

async fn a_token_is_revoked_by_its_owner_only_and_expired_ones_are_purged(backend: Backend) {
    let s = stores(backend).await;
    let (ada, bob) = (with_user(&s, "ada").await, with_user(&s, "bob").await);
    let t0 = now();
    let new = token(&ada, "h", t0, 1);
    s.tokens.create(&new, 50, t0, &any_event()).await.unwrap();
    assert!(
        !s.tokens
            .revoke(bob.id, new.token.id, &any_event())
            .await
            .unwrap()
    );
    assert!(
        s.tokens
            .revoke(ada.id, new.token.id, &any_event())
            .await
            .unwrap()
    );
    assert!(
        !s.tokens
            .revoke(ada.id, new.token.id, &any_event())
            .await
            .unwrap()
    );
    let hash = TokenHash::new("h".into());
    assert!(s.tokens.authenticate(&hash, t0).await.unwrap().is_none());

    s.tokens
        .create(&token(&bob, "b", t0, 1), 50, t0, &any_event())
        .await
        .unwrap();
    assert_eq!(s.tokens.purge_expired(t0).await.unwrap(), 0);
    s.tokens
        .create(&token(&bob, "b2", t0, 1), 50, t0, &any_event())
        .await
        .unwrap();
    assert_eq!(s.tokens.revoke_all(bob.id).await.unwrap(), 2);
    assert!(s.tokens.list(bob.id, t0).await.unwrap().is_empty());
    s.tokens
        .create(&token(&bob, "b3", t0, 1), 50, t0, &any_event())
        .await
        .unwrap();
    assert_eq!(
        s.tokens
            .purge_expired(t0 + Duration::days(1))
            .await
            .unwrap(),
        1
    );
}

async fn a_password_reset_revokes_every_token(backend: Backend) {
    let s = stores(backend).await;
    let ada = with_user(&s, "ada").await;
    let t0 = now();
    s.tokens
        .create(&token(&ada, "h", t0, 30), 50, t0, &any_event())
        .await
        .unwrap();
    let reset = TokenHash::new("reset".into());
    s.recovery
        .issue(
            MailKind::PasswordReset,
            ada.id,
            &ada.email,
            &reset,
            None,
            t0 + Duration::minutes(30),
            t0,
            None,
        )
        .await
        .unwrap();
    s.recovery
        .reset_password(
            &reset,
            &PasswordHash::new("$2b$04$new".into()),
            t0,
            &any_event(),
        )
        .await
        .unwrap()
        .unwrap();
    let hash = TokenHash::new("h".into());
    assert!(s.tokens.authenticate(&hash, t0).await.unwrap().is_none());
    assert!(s.tokens.list(ada.id, t0).await.unwrap().is_empty());
    // A creation that proved the old password (its bcrypt ran while the
    // reset landed) stores nothing.
    let err = s
        .tokens
        .create(&token(&ada, "late", t0, 30), 50, t0, &any_event())
        .await
        .unwrap_err();
    assert!(matches!(err, CreateTokenError::OwnerChanged), "{err:?}");
    assert!(s.tokens.list(ada.id, t0).await.unwrap().is_empty());
}

async fn concurrent_reads_each_find_their_own_tokens_owner(backend: Backend) {
    let s = stores(backend).await;
    let t0 = now();
    let mut owners = Vec::new();
    for i in 0..12 {
        let owner = with_user(&s, &format!("user{i}")).await;
        // Hashes as the issuer makes them: SHA-256 in lower-case hex.
        let hash = format!("{i:064x}");
        s.tokens
            .create(&token(&owner, &hash, t0, 1), 50, t0, &any_event())
            .await
            .unwrap();
        owners.push((owner.id, hash));
    }
    let reads: Vec<_> = owners
        .iter()
        .cycle()
        .take(48)
        .map(|(owner, hash)| {
            let tokens = s.tokens.clone();
            let (owner, hash) = (*owner, TokenHash::new(hash.clone()));
            tokio::spawn(async move {
                let found = tokens.authenticate(&hash, t0).await.unwrap();
                (owner, found.map(|(user, _)| user.id))
            })
        })
        .collect();
    for read in reads {
        let (owner, found) = read.await.unwrap();
        assert_eq!(found, Some(owner));
    }
    let unknown = TokenHash::new(format!("{:064x}", 999));
    assert!(s.tokens.authenticate(&unknown, t0).await.unwrap().is_none());
}
