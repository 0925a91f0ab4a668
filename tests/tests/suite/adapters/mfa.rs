//! The second-factor store against real databases: a pending secret and
//! its confirmation, steps and recovery codes spent once (also under a
//! race), turning it off with the sessions, and login challenges that
//! count their attempts.

use std::sync::Arc;

use time::Duration;
use userhub_domain::model::{ClientInfo, NewSession, SealedSecret, SessionId, TokenHash, User};
use userhub_domain::ports::{MfaRepository, SessionRepository, UserRepository};
use userhub_infrastructure::{SeaOrmMfaRepository, SeaOrmSessionRepository, SeaOrmUserRepository};
use userhub_tests::{Backend, any_event, migrated_database, stored_now as now, stored_user};

on_both_backends!(
    a_pending_secret_is_replaced_until_it_is_confirmed,
    steps_and_recovery_codes_are_spent_once,
    concurrent_uses_of_one_step_have_one_winner,
    concurrent_turn_offs_with_one_step_have_one_winner_and_a_used_step_turns_nothing_off,
    turning_it_off_forgets_the_codes_and_ends_the_other_sessions,
    a_reset_lands_only_while_its_actor_is_an_active_superuser,
    a_challenge_counts_its_attempts_and_is_spent_once,
);

struct Stores {
    users: SeaOrmUserRepository,
    sessions: SeaOrmSessionRepository,
    mfa: Arc<SeaOrmMfaRepository>,
    _db: userhub_tests::TestDatabase,
}

async fn stores(backend: Backend) -> (Stores, User) {
    let (database, db) = migrated_database(backend).await;
    let stores = Stores {
        users: SeaOrmUserRepository::new(database.clone()),
        sessions: SeaOrmSessionRepository::new(database.clone()),
        mfa: Arc::new(SeaOrmMfaRepository::new(database)),
        _db: db,
    };
    let ada = stored_user("ada");
    stores.users.insert(&ada, &any_event()).await.unwrap();
    (stores, ada)
}

fn sealed(byte: u8) -> SealedSecret {
    SealedSecret(vec![byte; 40])
}

fn hashes(prefix: &str) -> Vec<TokenHash> {
    (0..10)
        .map(|i| TokenHash::new(format!("{prefix}{i}")))
        .collect()
}

/// `ada` with TOTP on (step 100 spent) and the codes `c0`…`c9`.
async fn enabled(backend: Backend) -> (Stores, User) {
    let (s, ada) = stores(backend).await;
    assert!(s.mfa.set_pending(ada.id, &sealed(1), now()).await.unwrap());
    let on = s
        .mfa
        .enable(ada.id, &sealed(1), 100, &hashes("c"), now(), &any_event())
        .await
        .unwrap();
    assert!(on);
    (s, ada)
}

async fn a_pending_secret_is_replaced_until_it_is_confirmed(backend: Backend) {
    let (s, ada) = stores(backend).await;
    assert!(!s.mfa.status(ada.id).await.unwrap().totp);
    assert!(s.mfa.secret(ada.id).await.unwrap().is_none());
    assert!(s.mfa.set_pending(ada.id, &sealed(1), now()).await.unwrap());
    assert!(s.mfa.set_pending(ada.id, &sealed(2), now()).await.unwrap());
    let stored = s.mfa.secret(ada.id).await.unwrap().unwrap();
    assert_eq!((stored.sealed, stored.enabled), (sealed(2), false));
    // The replaced secret no longer confirms; the pending one does.
    let event = any_event();
    assert!(
        !s.mfa
            .enable(ada.id, &sealed(1), 5, &hashes("c"), now(), &event)
            .await
            .unwrap()
    );
    assert!(
        s.mfa
            .enable(ada.id, &sealed(2), 5, &hashes("c"), now(), &event)
            .await
            .unwrap()
    );
    let status = s.mfa.status(ada.id).await.unwrap();
    assert_eq!((status.totp, status.recovery_codes_left), (true, 10));
    // On, it is neither replaced nor confirmed again.
    assert!(!s.mfa.set_pending(ada.id, &sealed(3), now()).await.unwrap());
    assert!(
        !s.mfa
            .enable(ada.id, &sealed(2), 6, &hashes("d"), now(), &event)
            .await
            .unwrap()
    );
    assert_eq!(
        s.mfa.secret(ada.id).await.unwrap().unwrap().sealed,
        sealed(2)
    );
}

async fn steps_and_recovery_codes_are_spent_once(backend: Backend) {
    let (s, ada) = enabled(backend).await;
    // The confirming step and earlier ones are spent; later ones once each.
    assert!(!s.mfa.spend_step(ada.id, 100).await.unwrap());
    assert!(!s.mfa.spend_step(ada.id, 99).await.unwrap());
    assert!(s.mfa.spend_step(ada.id, 101).await.unwrap());
    assert!(!s.mfa.spend_step(ada.id, 101).await.unwrap());
    let c3 = TokenHash::new("c3".into());
    assert!(
        s.mfa
            .spend_recovery_code(ada.id, &c3, now(), &any_event())
            .await
            .unwrap()
    );
    assert!(
        !s.mfa
            .spend_recovery_code(ada.id, &c3, now(), &any_event())
            .await
            .unwrap()
    );
    let unknown = TokenHash::new("zz".into());
    assert!(
        !s.mfa
            .spend_recovery_code(ada.id, &unknown, now(), &any_event())
            .await
            .unwrap()
    );
    assert_eq!(s.mfa.status(ada.id).await.unwrap().recovery_codes_left, 9);
    // A new set replaces the old one entirely.
    assert!(
        s.mfa
            .replace_recovery_codes(ada.id, &hashes("d"), now(), &any_event())
            .await
            .unwrap()
    );
    let c4 = TokenHash::new("c4".into());
    assert!(
        !s.mfa
            .spend_recovery_code(ada.id, &c4, now(), &any_event())
            .await
            .unwrap()
    );
    assert_eq!(s.mfa.status(ada.id).await.unwrap().recovery_codes_left, 10);
}

async fn concurrent_uses_of_one_step_have_one_winner(backend: Backend) {
    let (s, ada) = enabled(backend).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let mfa = s.mfa.clone();
            tokio::spawn(async move { mfa.spend_step(ada.id, 101).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap());
    }
    assert_eq!(wins, 1);
    let code = TokenHash::new("c0".into());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let mfa = s.mfa.clone();
            let code = code.clone();
            tokio::spawn(async move {
                mfa.spend_recovery_code(ada.id, &code, now(), &any_event())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap());
    }
    assert_eq!(wins, 1);
}

async fn concurrent_turn_offs_with_one_step_have_one_winner_and_a_used_step_turns_nothing_off(
    backend: Backend,
) {
    let (s, ada) = enabled(backend).await;
    // Step 100 is spent already: a turn-off with it changes nothing.
    assert!(
        !s.mfa
            .disable(ada.id, None, None, Some(100), now(), &any_event())
            .await
            .unwrap()
    );
    assert!(s.mfa.status(ada.id).await.unwrap().totp);
    let tries = (0..8).map(|_| {
        let mfa = s.mfa.clone();
        let id = ada.id;
        tokio::spawn(async move {
            mfa.disable(id, None, None, Some(101), now(), &any_event())
                .await
                .unwrap()
        })
    });
    let outcomes = futures_util::future::join_all(tries).await;
    let wins = outcomes
        .into_iter()
        .filter(|o| *o.as_ref().unwrap())
        .count();
    assert_eq!(wins, 1);
    assert!(!s.mfa.status(ada.id).await.unwrap().totp);
}

async fn turning_it_off_forgets_the_codes_and_ends_the_other_sessions(backend: Backend) {
    let (s, ada) = enabled(backend).await;
    let mut ids = Vec::new();
    for i in 0..2 {
        let session = NewSession {
            id: SessionId::generate(),
            user_id: ada.id,
            refresh_token_hash: TokenHash::new(format!("session{i}")),
            created_at: now(),
            expires_at: now() + Duration::days(1),
            client: ClientInfo::default(),
            proof: userhub_domain::model::SignInProof {
                federated: false,
                second_factor: true,
                passkey: false,
            },
        };
        assert!(
            s.sessions
                .create(&session, &ada.password_hash, &any_event())
                .await
                .unwrap()
        );
        ids.push(session.id);
    }
    assert!(
        s.mfa
            .disable(ada.id, Some(ids[0]), None, None, now(), &any_event())
            .await
            .unwrap()
    );
    assert!(
        !s.mfa
            .disable(ada.id, None, None, None, now(), &any_event())
            .await
            .unwrap()
    );
    let status = s.mfa.status(ada.id).await.unwrap();
    assert_eq!((status.totp, status.recovery_codes_left), (false, 0));
    assert!(s.mfa.secret(ada.id).await.unwrap().is_none());
    let live = s.sessions.list_live_for_user(ada.id, now()).await.unwrap();
    let live: Vec<SessionId> = live.iter().map(|l| l.id).collect();
    assert_eq!(live, vec![ids[0]]);
    // Nothing to spend while it is off.
    let c0 = TokenHash::new("c0".into());
    assert!(
        !s.mfa
            .spend_recovery_code(ada.id, &c0, now(), &any_event())
            .await
            .unwrap()
    );
    assert!(!s.mfa.spend_step(ada.id, 200).await.unwrap());
    assert!(
        !s.mfa
            .replace_recovery_codes(ada.id, &hashes("e"), now(), &any_event())
            .await
            .unwrap()
    );
}

fn pending(user: &User, federated: bool) -> userhub_domain::model::PendingLogin {
    userhub_domain::model::PendingLogin {
        user: user.id,
        password_hash: user.password_hash.clone(),
        federated,
    }
}

async fn a_challenge_counts_its_attempts_and_is_spent_once(backend: Backend) {
    let (s, ada) = stores(backend).await;
    let token = TokenHash::new("challenge".into());
    s.mfa
        .create_challenge(&token, &pending(&ada, false), now() + Duration::minutes(5))
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            s.mfa.attempt_challenge(&token, now(), 3).await.unwrap(),
            Some(pending(&ada, false))
        );
    }
    assert_eq!(
        s.mfa.attempt_challenge(&token, now(), 3).await.unwrap(),
        None
    );
    let other = TokenHash::new("other".into());
    s.mfa
        .create_challenge(&other, &pending(&ada, true), now() + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        s.mfa.attempt_challenge(&other, now(), 5).await.unwrap(),
        Some(pending(&ada, true)),
        "a provider sign-in's challenge says so"
    );
    let later = now() + Duration::minutes(6);
    assert_eq!(
        s.mfa.attempt_challenge(&other, later, 5).await.unwrap(),
        None,
        "expired"
    );
    assert!(s.mfa.spend_challenge(&other, now()).await.unwrap());
    assert!(!s.mfa.spend_challenge(&other, now()).await.unwrap());
    assert_eq!(
        s.mfa.attempt_challenge(&other, now(), 5).await.unwrap(),
        None,
        "spent"
    );
    assert_eq!(s.mfa.purge(later).await.unwrap(), 2);
}

async fn a_reset_lands_only_while_its_actor_is_an_active_superuser(backend: Backend) {
    let (s, ada) = enabled(backend).await;
    let bob = stored_user("bob");
    s.users.insert(&bob, &any_event()).await.unwrap();
    // Bob is no superuser: nothing is written.
    let refused = s
        .mfa
        .disable(ada.id, None, Some(bob.id), None, now(), &any_event())
        .await
        .unwrap();
    assert!(!refused);
    assert!(s.mfa.status(ada.id).await.unwrap().totp);
    let mut root = stored_user("root");
    root.is_superuser = true;
    s.users.insert(&root, &any_event()).await.unwrap();
    let done = s
        .mfa
        .disable(ada.id, None, Some(root.id), None, now(), &any_event())
        .await
        .unwrap();
    assert!(done);
    assert!(!s.mfa.status(ada.id).await.unwrap().totp);
}
