//! Sessions and failed logins against real databases: rotation, lookups,
//! listing, counting, purging.

use std::sync::Arc;
use time::Duration;
use userhub_domain::model::{NewSession, PasswordHash, SessionId, TokenHash, User, UserId};
use userhub_domain::ports::{LoginThrottle, SessionRepository, UserRepository};
use userhub_tests::{Backend, any_event, stored_now as now, stored_user as user};

use super::*;

on_both_backends!(
    rotation_is_a_compare_and_swap_and_remembers_spent_tokens,
    concurrent_rotations_of_one_token_have_one_winner,
    unbatched_authenticating_reads_each_get_their_own_answer,
    the_auth_lookup_needs_a_live_session_and_an_active_user,
    the_fused_read_authenticates_as_the_auth_lookup_does,
    concurrent_authenticating_reads_each_get_their_own_answer,
    sessions_are_listed_and_revoked_per_user_only,
    failed_logins_are_counted_atomically_locked_and_reset,
    purging_deletes_ended_sessions_and_their_spent_tokens_only,
);

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
        .find_by_refresh_token(&TokenHash::new("h1".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id, found.client.user_agent.as_deref()),
        (s.id, Some("agent/1.0"))
    );
    let (h1, h2, h3) = (
        TokenHash::new("h1".into()),
        TokenHash::new("h2".into()),
        TokenHash::new("h3".into()),
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
                TokenHash::new("start".into()),
                TokenHash::new(format!("next{i}")),
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

/// Many reads at once (which PostgreSQL answers in shared round trips):
/// each gets the answer it would get alone, and a revocation is seen by
/// every read asked for after it.
async fn concurrent_authenticating_reads_each_get_their_own_answer(backend: Backend) {
    concurrent_reads(backend, true).await;
}

/// The same with `DB_BATCH_READS=false`: one query per read.
async fn unbatched_authenticating_reads_each_get_their_own_answer(backend: Backend) {
    concurrent_reads(backend, false).await;
}

async fn concurrent_reads(backend: Backend, batch_reads: bool) {
    let r = super::repos_on(backend, batch_reads).await;
    let (ada, bob, cy) = (user("ada"), user("bob"), user("cyd"));
    for u in [&ada, &bob, &cy] {
        r.users.insert(u, &any_event()).await.unwrap();
    }
    let (adas, bobs, cys) = (session(&ada, "a"), session(&bob, "b"), session(&cy, "c"));
    for (s, u) in [(&adas, &ada), (&bobs, &bob), (&cys, &cy)] {
        assert!(
            r.sessions
                .create(s, &u.password_hash, &any_event())
                .await
                .unwrap()
        );
    }
    r.save(
        &cy,
        &cy,
        &User {
            is_active: false,
            ..cy.clone()
        },
    )
    .await
    .unwrap();
    let nobody = UserId::generate();
    type Answer = Option<(UserId, Option<UserId>)>;
    // (caller, session, other; what comes back)
    let cases: Vec<(UserId, SessionId, Option<UserId>, Answer)> = vec![
        (ada.id, adas.id, None, Some((ada.id, None))),
        (bob.id, bobs.id, None, Some((bob.id, None))),
        (ada.id, adas.id, Some(bob.id), Some((ada.id, Some(bob.id)))),
        (bob.id, bobs.id, Some(ada.id), Some((bob.id, Some(ada.id)))),
        (ada.id, adas.id, Some(ada.id), Some((ada.id, Some(ada.id)))),
        (ada.id, adas.id, Some(cy.id), Some((ada.id, Some(cy.id)))),
        (ada.id, adas.id, Some(nobody), Some((ada.id, None))),
        (ada.id, bobs.id, None, None),
        (bob.id, adas.id, Some(ada.id), None),
        (cy.id, cys.id, None, None),
        (cy.id, cys.id, Some(ada.id), None),
        (nobody, adas.id, None, None),
    ];
    let sessions = &r.sessions;
    let read = |(caller, sid, other, _): (UserId, SessionId, Option<UserId>, Answer)| async move {
        match other {
            None => sessions
                .find_active_user(caller, sid, now())
                .await
                .unwrap()
                .map(|u| (u.id, None)),
            Some(other) => sessions
                .find_active_user_and(caller, sid, other, now())
                .await
                .unwrap()
                .map(|(c, t)| (c.id, t.map(|t| t.id))),
        }
    };
    let all: Vec<_> = (0..20).flat_map(|_| cases.iter().copied()).collect();
    let answers = futures_util::future::join_all(all.iter().copied().map(read)).await;
    for (case, answer) in all.iter().zip(answers) {
        assert_eq!(answer, case.3, "{case:?}");
    }
    // A revocation is seen by every read asked for after it.
    let before = futures_util::future::join_all((0..20).map(|_| read(cases[0]))).await;
    assert!(before.iter().all(|a| *a == cases[0].3));
    r.sessions.revoke(adas.id, now(), None).await.unwrap();
    let after = futures_util::future::join_all((0..20).map(|_| read(cases[2]))).await;
    assert!(after.iter().all(Option::is_none), "{after:?}");
    assert_eq!(read(cases[1]).await, cases[1].3);
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
        TokenHash::new("revoked".into()),
        TokenHash::new("revoked2".into()),
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
            .find_by_refresh_token(&TokenHash::new("live".into()))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(r.sessions.purge_ended(now()).await.unwrap(), 0);
}
