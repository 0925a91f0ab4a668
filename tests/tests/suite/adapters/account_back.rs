//! Taking an account back, against real databases: an address an email
//! change replaced stays its account's while the change can be undone, and
//! undoing the change removes the ways in added after it, and only those.

use userhub_domain::model::{
    ClientInfo, Email, MailKind, NewPasskey, NewSession, Passkey, PasskeyCredential, PasskeyId,
    PasskeyName, ProviderIdentity, SealedSecret, SessionId, SignInProof, TokenHash, UndoTarget,
    User,
};
use userhub_domain::ports::{
    IdentityRepository, InsertUserError, MfaRepository, PasskeyRepository, PatchUserError,
    RecoveryTokens, RevertOutcome, SessionRepository, UserPatch, UserRepository, WriteGuard,
};
use userhub_domain::services::EVICTED_BY_REVERT;
use userhub_infrastructure::{
    SeaOrmIdentityRepository, SeaOrmMfaRepository, SeaOrmPasskeyRepository, SeaOrmRecoveryTokens,
    SeaOrmSessionRepository, SeaOrmUserRepository,
};
use userhub_tests::{
    Backend, TestDatabase, any_event, migrated_database, stored_now as now, stored_user as user,
};

use time::{Duration, OffsetDateTime};

on_both_backends!(
    a_replaced_address_is_reserved_for_its_account_until_the_reservation_ends,
    a_revert_removes_the_ways_in_added_after_the_change_and_keeps_the_older,
    an_undo_link_removes_its_identity_ends_every_session_and_works_once,
    a_passkeys_undo_link_removes_it_and_a_revert_removes_the_passkeys_added_after_the_change,
);

struct Stores {
    users: SeaOrmUserRepository,
    identities: SeaOrmIdentityRepository,
    mfa: SeaOrmMfaRepository,
    tokens: std::sync::Arc<SeaOrmRecoveryTokens>,
    sessions: SeaOrmSessionRepository,
    _db: TestDatabase,
}

async fn stores(backend: Backend) -> Stores {
    let (database, db) = migrated_database(backend).await;
    Stores {
        users: SeaOrmUserRepository::new(database.clone()),
        identities: SeaOrmIdentityRepository::new(database.clone()),
        mfa: SeaOrmMfaRepository::new(database.clone()),
        tokens: std::sync::Arc::new(SeaOrmRecoveryTokens::new(database.clone())),
        sessions: SeaOrmSessionRepository::new(database),
        _db: db,
    }
}

async fn with_user(s: &Stores, name: &str) -> User {
    let u = user(name);
    s.users.insert(&u, &any_event()).await.unwrap();
    u
}

fn own(u: &User) -> WriteGuard {
    WriteGuard {
        actor: u.id,
        actor_is_superuser: false,
        keep_a_superuser: false,
        password_hash: None,
        target_active: None,
    }
}

/// Moves `u` to `to` at `at`, reserving the old address until `until`.
async fn change_email(
    s: &Stores,
    u: &User,
    to: &str,
    at: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<User, PatchUserError> {
    let patch = UserPatch {
        email: Some(Email::parse(to).unwrap()),
        reserve_old_email: Some((u.email.clone(), until)),
        ..UserPatch::default()
    };
    s.users
        .update(u.id, None, &patch, &own(u), at, &any_event())
        .await
}

async fn a_replaced_address_is_reserved_for_its_account_until_the_reservation_ends(
    backend: Backend,
) {
    let s = stores(backend).await;
    let ada = with_user(&s, "ada").await;
    let bob = with_user(&s, "bob").await;
    let ada = change_email(
        &s,
        &ada,
        "ada@new.example",
        now(),
        now() + Duration::days(7),
    )
    .await
    .unwrap();
    // Nobody else registers the old address, or moves to it.
    let squatter = User {
        email: Email::parse("ada@example.com").unwrap(),
        ..user("squatter")
    };
    assert!(matches!(
        s.users.insert(&squatter, &any_event()).await,
        Err(InsertUserError::EmailTaken)
    ));
    assert!(matches!(
        change_email(
            &s,
            &bob,
            "ada@example.com",
            now(),
            now() + Duration::days(7)
        )
        .await,
        Err(PatchUserError::EmailTaken)
    ));
    assert_eq!(
        s.users.find_by_id(bob.id).await.unwrap().unwrap().email,
        bob.email,
        "the refused change wrote nothing"
    );
    // A provider sign-up with it is refused too.
    let identity = ProviderIdentity {
        provider: "corp".into(),
        subject: "sub-squat".into(),
        email: Some("ada@example.com".into()),
        email_verified: true,
        preferred_username: None,
        name: None,
    };
    assert!(matches!(
        s.identities
            .create_user(&squatter, &identity, &[any_event()])
            .await,
        Err(userhub_domain::ports::NewIdentityUserError::EmailTaken)
    ));
    // Its own account may take it back.
    let ada = change_email(
        &s,
        &ada,
        "ada@example.com",
        now(),
        now() + Duration::days(7),
    )
    .await
    .unwrap();
    assert_eq!(ada.email.as_str(), "ada@example.com");
    // A reservation that ended holds nothing: bob moves away, his old
    // address reserved until a moment ago, and carol registers it.
    change_email(
        &s,
        &bob,
        "bob@new.example",
        now(),
        now() - Duration::seconds(1),
    )
    .await
    .unwrap();
    let carol = User {
        email: Email::parse("bob@example.com").unwrap(),
        ..user("carol")
    };
    s.users.insert(&carol, &any_event()).await.unwrap();
}

fn identity(subject: &str) -> ProviderIdentity {
    ProviderIdentity {
        provider: subject.into(),
        subject: subject.into(),
        email: None,
        email_verified: false,
        preferred_username: None,
        name: None,
    }
}

async fn turn_on_totp(s: &Stores, u: &User, at: OffsetDateTime) {
    let sealed = SealedSecret(vec![1; 40]);
    assert!(s.mfa.set_pending(u.id, &sealed, at).await.unwrap());
    assert!(
        s.mfa
            .enable(
                u.id,
                &sealed,
                1,
                &[TokenHash::new("c0".into())],
                at,
                &any_event()
            )
            .await
            .unwrap()
    );
}

async fn a_revert_removes_the_ways_in_added_after_the_change_and_keeps_the_older(backend: Backend) {
    let s = stores(backend).await;
    let t0 = now() - Duration::hours(3);
    let changed = now() - Duration::hours(2);
    let t2 = now() - Duration::hours(1);
    // Ada's own identity and second factor predate the change; the
    // intruder's identity comes after it.
    let ada = with_user(&s, "ada").await;
    s.identities
        .link(ada.id, &identity("mine"), t0, &any_event())
        .await
        .unwrap();
    turn_on_totp(&s, &ada, t0).await;
    // Bob's second factor comes after the change.
    let bob = with_user(&s, "bob").await;
    let mut tokens = Vec::new();
    for (u, n) in [(&ada, "a"), (&bob, "b")] {
        change_email(
            &s,
            u,
            &format!("intruder-{n}@evil.example"),
            changed,
            changed + Duration::days(7),
        )
        .await
        .unwrap();
        let token = TokenHash::new(format!("revert-{n}"));
        s.tokens
            .issue(
                MailKind::EmailChanged,
                u.id,
                &u.email,
                &token,
                None,
                changed + Duration::days(7),
                changed,
                None,
            )
            .await
            .unwrap();
        tokens.push(token);
    }
    s.identities
        .link(ada.id, &identity("theirs"), t2, &any_event())
        .await
        .unwrap();
    turn_on_totp(&s, &bob, t2).await;

    let reverted = s
        .tokens
        .revert_email(&tokens[0], now(), EVICTED_BY_REVERT, &any_event())
        .await
        .unwrap();
    assert!(matches!(reverted, RevertOutcome::Reverted(ref u) if u.email == ada.email));
    let left: Vec<String> = s
        .identities
        .list(ada.id)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.provider)
        .collect();
    assert_eq!(left, ["mine"]);
    assert!(s.mfa.status(ada.id).await.unwrap().totp, "older: stays");

    s.tokens
        .revert_email(&tokens[1], now(), EVICTED_BY_REVERT, &any_event())
        .await
        .unwrap();
    let status = s.mfa.status(bob.id).await.unwrap();
    assert_eq!((status.totp, status.recovery_codes_left), (false, 0));
    // The address the intruder chose holds nothing once the change is undone.
    let intruder = User {
        email: Email::parse("intruder-a@evil.example").unwrap(),
        ..user("intruder")
    };
    s.users.insert(&intruder, &any_event()).await.unwrap();
}

async fn an_undo_link_removes_its_identity_ends_every_session_and_works_once(backend: Backend) {
    let s = stores(backend).await;
    let ada = with_user(&s, "ada").await;
    for subject in ["mine", "theirs"] {
        s.identities
            .link(ada.id, &identity(subject), now(), &any_event())
            .await
            .unwrap();
    }
    for i in 0..2 {
        let session = NewSession {
            id: SessionId::generate(),
            user_id: ada.id,
            refresh_token_hash: TokenHash::new(format!("refresh{i}")),
            created_at: now(),
            expires_at: now() + Duration::days(1),
            client: ClientInfo::default(),
            proof: SignInProof::PASSWORD,
        };
        assert!(
            s.sessions
                .create(&session, &ada.password_hash, &any_event())
                .await
                .unwrap()
        );
    }
    let target = UndoTarget::Identity {
        provider: "theirs".into(),
        subject: "theirs".into(),
    };
    let token = TokenHash::new("undo".into());
    s.tokens
        .issue(
            MailKind::IdentityLinked,
            ada.id,
            &ada.email,
            &token,
            Some(target.clone()),
            now() + Duration::days(7),
            now(),
            None,
        )
        .await
        .unwrap();
    // Two clicks at once: one removes, the other finds the link spent.
    let clicks = (0..2).map(|_| {
        let tokens = s.tokens.clone();
        let token = token.clone();
        tokio::spawn(async move { tokens.undo(&token, now(), &any_event()).await.unwrap() })
    });
    let outcomes: Vec<Option<UndoTarget>> = futures_util::future::join_all(clicks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Some(target.clone()))
            .count(),
        1
    );
    assert_eq!(outcomes.iter().filter(|o| o.is_none()).count(), 1);
    let left: Vec<String> = s
        .identities
        .list(ada.id)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.provider)
        .collect();
    assert_eq!(left, ["mine"]);
    assert!(
        s.sessions
            .list_live_for_user(ada.id, now())
            .await
            .unwrap()
            .is_empty()
    );
    // An expired link does nothing.
    let old = TokenHash::new("old".into());
    s.tokens
        .issue(
            MailKind::IdentityLinked,
            ada.id,
            &ada.email,
            &old,
            Some(target),
            now() - Duration::seconds(1),
            now() - Duration::days(7),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        s.tokens.undo(&old, now(), &any_event()).await.unwrap(),
        None
    );
}

fn passkey(owner: &User, credential_id: &str, at: OffsetDateTime) -> NewPasskey {
    NewPasskey {
        passkey: Passkey {
            id: PasskeyId::generate(),
            user_id: owner.id,
            name: PasskeyName::numbered(1),
            created_at: at,
            last_used_at: None,
            backed_up: false,
        },
        credential: PasskeyCredential {
            credential_id: credential_id.into(),
            counter: 0,
            data: "{}".into(),
        },
    }
}

async fn a_passkeys_undo_link_removes_it_and_a_revert_removes_the_passkeys_added_after_the_change(
    backend: Backend,
) {
    let (database, _db) = migrated_database(backend).await;
    let users = SeaOrmUserRepository::new(database.clone());
    let passkeys = SeaOrmPasskeyRepository::new(database.clone());
    let tokens = SeaOrmRecoveryTokens::new(database);
    let ada = user("ada");
    users.insert(&ada, &any_event()).await.unwrap();
    let t0 = now() - Duration::hours(3);
    let changed = now() - Duration::hours(2);
    let mine = passkey(&ada, "mine", t0);
    let theirs = passkey(&ada, "theirs", now() - Duration::hours(1));
    let noticed = passkey(&ada, "noticed", now() - Duration::hours(1));
    for key in [&mine, &theirs, &noticed] {
        passkeys.create(key, 20, &any_event()).await.unwrap();
    }
    // The notice of one passkey: its link removes it, and only it.
    let target = UndoTarget::Passkey {
        id: noticed.passkey.id,
    };
    let undo = TokenHash::new("undo-passkey".into());
    tokens
        .issue(
            MailKind::PasskeyAdded,
            ada.id,
            &ada.email,
            &undo,
            Some(target.clone()),
            now() + Duration::days(7),
            now(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        tokens.undo(&undo, now(), &any_event()).await.unwrap(),
        Some(target)
    );
    assert_eq!(passkeys.list(ada.id).await.unwrap().len(), 2);
    // A revert of an email change removes the passkey added after it.
    users
        .update(
            ada.id,
            None,
            &UserPatch {
                email: Some(Email::parse("intruder@evil.example").unwrap()),
                ..UserPatch::default()
            },
            &own(&ada),
            changed,
            &any_event(),
        )
        .await
        .unwrap();
    let revert = TokenHash::new("revert-passkey".into());
    tokens
        .issue(
            MailKind::EmailChanged,
            ada.id,
            &ada.email,
            &revert,
            None,
            changed + Duration::days(7),
            changed,
            None,
        )
        .await
        .unwrap();
    let reverted = tokens
        .revert_email(&revert, now(), EVICTED_BY_REVERT, &any_event())
        .await
        .unwrap();
    assert!(matches!(reverted, RevertOutcome::Reverted(_)));
    let left: Vec<_> = passkeys
        .list(ada.id)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(left, vec![mine.passkey.id]);
}
