//! The audit trail's store on real databases: events written with their
//! change (or not at all), filters, order, paging and retention.

use time::Duration;
use userhub_domain::model::{
    AuditEvent, AuditKind, AuditQuery, ClientInfo, NewSession, SessionId, TokenHash, User, UserId,
};
use userhub_domain::ports::{
    AuditLog, InsertUserError, LoginThrottle, PatchUserError, SessionRepository, UserPatch,
    UserRepository, WriteGuard,
};
use userhub_infrastructure::{
    SeaOrmAuditLog, SeaOrmLoginThrottle, SeaOrmSessionRepository, SeaOrmUserRepository,
};
use userhub_tests::{
    Backend, TestDatabase, migrated_database, stored_event as event, stored_now as now,
    stored_user as user,
};

on_both_backends!(
    an_event_round_trips_with_every_field,
    a_change_whose_event_fails_is_not_written,
    listing_filters_orders_newest_first_and_pages,
    events_past_the_retention_are_purged,
    session_events_name_the_sessions_user,
    a_lock_is_recorded_only_by_the_failure_that_locks,
);

struct Stores {
    audit: SeaOrmAuditLog,
    users: SeaOrmUserRepository,
    sessions: SeaOrmSessionRepository,
    throttle: SeaOrmLoginThrottle,
    _db: TestDatabase,
}

async fn stores(backend: Backend) -> Stores {
    let (database, db) = migrated_database(backend).await;
    Stores {
        audit: SeaOrmAuditLog::new(database.clone()),
        users: SeaOrmUserRepository::new(database.clone()),
        sessions: SeaOrmSessionRepository::new(database.clone()),
        throttle: SeaOrmLoginThrottle::new(database, secrecy::SecretString::from("k".repeat(32))),
        _db: db,
    }
}

fn all(limit: u64) -> AuditQuery {
    AuditQuery {
        limit,
        ..AuditQuery::default()
    }
}

async fn an_event_round_trips_with_every_field(backend: Backend) {
    let s = stores(backend).await;
    let (actor, subject) = (UserId::generate(), UserId::generate());
    let mut written = event(AuditKind::UserUpdated).by(actor).about(subject);
    written.client =
        ClientInfo::new(Some("agent/1.0"), Some("2001:db8::1".into())).with_request_id("req-1");
    written.details.fields = vec!["email".into(), "is_verified".into()];
    written.details.reason = Some(userhub_domain::model::FailureReason::WrongCurrentPassword);
    written.details.session_id = Some(SessionId::generate());
    written.details.lock_seconds = Some(60);
    s.audit.record(&written).await.unwrap();
    let bare = event(AuditKind::LoginFailed);
    s.audit.record(&bare).await.unwrap();
    let read = s.audit.list(&all(10)).await.unwrap();
    assert_eq!(read, [bare, written]);
}

async fn a_change_whose_event_fails_is_not_written(backend: Backend) {
    let s = stores(backend).await;
    // An event whose id is taken cannot be written: its change must not be either.
    let taken = event(AuditKind::UserRegistered);
    s.audit.record(&taken).await.unwrap();
    let ada = user("ada");
    let err = s.users.insert(&ada, &taken).await.unwrap_err();
    assert!(matches!(err, InsertUserError::Port(_)), "{err:?}");
    assert_eq!(s.users.find_by_id(ada.id).await.unwrap(), None);

    s.users
        .insert(&ada, &event(AuditKind::UserRegistered))
        .await
        .unwrap();
    let patch = UserPatch {
        full_name: Some(Some(userhub_domain::model::FullName::parse("Ada").unwrap())),
        ..UserPatch::default()
    };
    let guard = WriteGuard {
        actor: ada.id,
        actor_is_superuser: false,
        keep_a_superuser: false,
        password_hash: None,
        target_active: None,
    };
    let err = s
        .users
        .update(ada.id, Some(ada.version), &patch, &guard, now(), &taken)
        .await
        .unwrap_err();
    assert!(matches!(err, PatchUserError::Port(_)), "{err:?}");
    assert_eq!(s.users.find_by_id(ada.id).await.unwrap(), Some(ada.clone()));

    let session = new_session(&ada);
    let created = s
        .sessions
        .create(&session, &ada.password_hash, &taken)
        .await;
    assert!(created.is_err());
    assert_eq!(
        s.sessions
            .find_by_refresh_token(&session.refresh_token_hash)
            .await
            .unwrap(),
        None
    );
    let failure = s
        .throttle
        .record_failure("ada", "192.0.2.1", now(), Duration::HOUR, &taken)
        .await;
    assert!(failure.is_err());
    assert_eq!(
        s.throttle.state("ada", "192.0.2.1").await.unwrap(),
        Default::default()
    );
    // Only the first event and the registration are stored.
    assert_eq!(s.audit.list(&all(10)).await.unwrap().len(), 2);
}

fn new_session(user: &User) -> NewSession {
    NewSession {
        id: SessionId::generate(),
        user_id: user.id,
        refresh_token_hash: TokenHash::new(format!("hash-{}", user.id)),
        created_at: now(),
        expires_at: now() + Duration::days(1),
        client: ClientInfo::default(),
        proof: userhub_domain::model::SignInProof::PASSWORD,
    }
}

async fn listing_filters_orders_newest_first_and_pages(backend: Backend) {
    let s = stores(backend).await;
    let (ada, bob, root) = (UserId::generate(), UserId::generate(), UserId::generate());
    let start = now();
    let mut written: Vec<AuditEvent> = Vec::new();
    for (i, (kind, actor, subject)) in [
        (AuditKind::UserRegistered, Some(ada), ada),
        (AuditKind::LoginFailed, None, ada),
        (AuditKind::LoginFailed, None, bob),
        (AuditKind::UserUpdated, Some(root), ada),
        (AuditKind::LoginSucceeded, Some(ada), ada),
    ]
    .into_iter()
    .enumerate()
    {
        // An hour apart, oldest first.
        let at = start - Duration::hours(10 - i64::try_from(i).unwrap());
        let mut e = AuditEvent::new(kind, at, &ClientInfo::default()).about(subject);
        e.actor_id = actor;
        s.audit.record(&e).await.unwrap();
        written.push(e);
    }
    let ids = |events: Vec<AuditEvent>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let newest_first: Vec<_> = written.iter().rev().map(|e| e.id).collect();
    assert_eq!(ids(s.audit.list(&all(10)).await.unwrap()), newest_first);

    let about_ada = AuditQuery {
        subject: Some(ada),
        ..all(10)
    };
    assert_eq!(
        ids(s.audit.list(&about_ada).await.unwrap()),
        [written[4].id, written[3].id, written[1].id, written[0].id]
    );
    let failures_of_ada = AuditQuery {
        kind: Some(AuditKind::LoginFailed),
        ..about_ada.clone()
    };
    assert_eq!(
        ids(s.audit.list(&failures_of_ada).await.unwrap()),
        [written[1].id]
    );
    let by_root = AuditQuery {
        actor: Some(root),
        ..all(10)
    };
    assert_eq!(ids(s.audit.list(&by_root).await.unwrap()), [written[3].id]);
    // [since, until): the second to the fourth event.
    let window = AuditQuery {
        since: Some(written[1].at),
        until: Some(written[3].at + Duration::minutes(1)),
        ..all(10)
    };
    assert_eq!(
        ids(s.audit.list(&window).await.unwrap()),
        [written[3].id, written[2].id, written[1].id]
    );
    let until_excludes = AuditQuery {
        until: Some(written[1].at),
        ..all(10)
    };
    assert_eq!(
        ids(s.audit.list(&until_excludes).await.unwrap()),
        [written[0].id]
    );
    // Keyset pages of two.
    let first = s.audit.list(&all(2)).await.unwrap();
    let second = s
        .audit
        .list(&AuditQuery {
            before: Some(first[1].id),
            ..all(2)
        })
        .await
        .unwrap();
    assert_eq!(
        ids(first)
            .into_iter()
            .chain(ids(second))
            .collect::<Vec<_>>(),
        newest_first[..4]
    );
}

async fn events_past_the_retention_are_purged(backend: Backend) {
    let s = stores(backend).await;
    let old = AuditEvent::new(
        AuditKind::LoginFailed,
        now() - Duration::days(91),
        &ClientInfo::default(),
    );
    let recent = AuditEvent::new(
        AuditKind::LoginFailed,
        now() - Duration::days(89),
        &ClientInfo::default(),
    );
    s.audit.record(&old).await.unwrap();
    s.audit.record(&recent).await.unwrap();
    assert_eq!(s.audit.purge(now() - Duration::days(90)).await.unwrap(), 1);
    assert_eq!(s.audit.list(&all(10)).await.unwrap(), [recent]);
}

async fn session_events_name_the_sessions_user(backend: Backend) {
    let s = stores(backend).await;
    let ada = user("ada");
    s.users
        .insert(&ada, &event(AuditKind::UserRegistered).own(ada.id))
        .await
        .unwrap();
    let session = new_session(&ada);
    let login = event(AuditKind::LoginSucceeded)
        .own(ada.id)
        .session(session.id);
    assert!(
        s.sessions
            .create(&session, &ada.password_hash, &login)
            .await
            .unwrap()
    );
    // A reused refresh token names only its session; the store fills in whose.
    let reuse = event(AuditKind::TokenReuseDetected).session(session.id);
    s.sessions
        .revoke(session.id, now(), Some(reuse))
        .await
        .unwrap();
    // Ending an ended session of one's own records nothing.
    let ended = event(AuditKind::SessionEnded).own(ada.id);
    assert!(
        !s.sessions
            .revoke_for_user(ada.id, session.id, now(), &ended)
            .await
            .unwrap()
    );
    let listed = s
        .audit
        .list(&AuditQuery {
            subject: Some(ada.id),
            ..all(10)
        })
        .await
        .unwrap();
    let kinds: Vec<_> = listed.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            AuditKind::TokenReuseDetected,
            AuditKind::LoginSucceeded,
            AuditKind::UserRegistered
        ]
    );
    assert_eq!(listed[0].details.session_id, Some(session.id));
}

async fn a_lock_is_recorded_only_by_the_failure_that_locks(backend: Backend) {
    let s = stores(backend).await;
    let until = now() + Duration::minutes(1);
    let lock = || event(AuditKind::LoginLocked);
    s.throttle
        .record_failure(
            "ada",
            "192.0.2.1",
            now(),
            Duration::HOUR,
            &event(AuditKind::LoginFailed),
        )
        .await
        .unwrap();
    assert!(
        s.throttle
            .lock_pair("ada", "192.0.2.1", now(), until, &lock())
            .await
            .unwrap()
    );
    assert!(
        !s.throttle
            .lock_pair("ada", "192.0.2.1", now(), until, &lock())
            .await
            .unwrap()
    );
    let unlock = event(AuditKind::UserUnlocked);
    s.throttle
        .clear_names(&["ada".to_owned()], Some(unlock))
        .await
        .unwrap();
    let kinds: Vec<_> = s
        .audit
        .list(&all(10))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            AuditKind::UserUnlocked,
            AuditKind::LoginLocked,
            AuditKind::LoginFailed
        ]
    );
}
