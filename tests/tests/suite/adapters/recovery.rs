//! The reset-token store and the mail queue against real databases:
//! expiry, superseding, single use under a race, and a queue that hands
//! each job to one worker at a time.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use userhub_domain::model::{
    ClientInfo, MailKind, NewSession, PasswordHash, SessionId, TokenHash, User,
};
use userhub_domain::ports::{MailQueue, RecoveryTokens, SessionRepository, UserRepository};
use userhub_infrastructure::{
    SeaOrmMailQueue, SeaOrmRecoveryTokens, SeaOrmSessionRepository, SeaOrmUserRepository,
};
use userhub_tests::{
    Backend, any_event, migrated_database, stored_now as now, stored_user as user,
};

on_both_backends!(
    a_reset_token_works_once_before_it_expires,
    a_newer_reset_token_supersedes_the_older,
    concurrent_resets_with_one_token_have_one_winner,
    a_reset_ends_every_session_and_skips_deactivated_users,
    the_queue_keeps_one_untaken_job_per_address,
    a_claimed_job_is_leased_to_one_worker_and_retried_when_due,
    finished_jobs_and_expired_tokens_are_purged,
);

fn hash(name: &str) -> TokenHash {
    TokenHash::new(name.into())
}

fn new_hash() -> PasswordHash {
    PasswordHash::new("$2b$04$new".into())
}

struct Stores {
    users: SeaOrmUserRepository,
    sessions: SeaOrmSessionRepository,
    tokens: Arc<SeaOrmRecoveryTokens>,
    queue: Arc<SeaOrmMailQueue>,
    _db: userhub_tests::TestDatabase,
}

async fn stores(backend: Backend) -> Stores {
    let (database, db) = migrated_database(backend).await;
    Stores {
        users: SeaOrmUserRepository::new(database.clone()),
        sessions: SeaOrmSessionRepository::new(database.clone()),
        tokens: Arc::new(SeaOrmRecoveryTokens::new(database.clone())),
        queue: Arc::new(SeaOrmMailQueue::new(database)),
        _db: db,
    }
}

async fn with_user(s: &Stores, name: &str) -> User {
    let u = user(name);
    s.users.insert(&u, &any_event()).await.unwrap();
    u
}

/// Issues a reset token of `user` at `at`, valid until `until`.
async fn issue_reset(
    s: &Stores,
    user: &User,
    token: &TokenHash,
    until: OffsetDateTime,
    at: OffsetDateTime,
) {
    s.tokens
        .issue(
            MailKind::PasswordReset,
            user.id,
            &user.email,
            token,
            None,
            until,
            at,
            None,
        )
        .await
        .unwrap();
}

async fn a_reset_token_works_once_before_it_expires(backend: Backend) {
    let s = stores(backend).await;
    let ada = with_user(&s, "ada").await;
    let t0 = now();
    issue_reset(&s, &ada, &hash("t"), t0 + Duration::minutes(30), t0).await;
    // Expired at its expiry time, and not found under another hash.
    let late = t0 + Duration::minutes(30);
    assert!(
        s.tokens
            .find_reset(&hash("t"), late)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.tokens
            .reset_password(&hash("t"), &new_hash(), late, &any_event())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.tokens
            .find_reset(&hash("other"), t0)
            .await
            .unwrap()
            .is_none()
    );
    let found = s.tokens.find_reset(&hash("t"), t0).await.unwrap().unwrap();
    assert_eq!(found.id, ada.id);
    let written = s
        .tokens
        .reset_password(&hash("t"), &new_hash(), t0, &any_event())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(written.password_hash, new_hash());
    assert_eq!(written.version, ada.version + 1);
    assert!(s.tokens.find_reset(&hash("t"), t0).await.unwrap().is_none());
    assert!(
        s.tokens
            .reset_password(&hash("t"), &new_hash(), t0, &any_event())
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_newer_reset_token_supersedes_the_older(backend: Backend) {
    let s = stores(backend).await;
    let ada = with_user(&s, "ada").await;
    let bob = with_user(&s, "bob").await;
    let t0 = now();
    let until = t0 + Duration::minutes(30);
    issue_reset(&s, &ada, &hash("first"), until, t0).await;
    issue_reset(&s, &bob, &hash("bobs"), until, t0).await;
    issue_reset(&s, &ada, &hash("second"), until, t0).await;
    assert!(
        s.tokens
            .find_reset(&hash("first"), t0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.tokens
            .find_reset(&hash("second"), t0)
            .await
            .unwrap()
            .is_some()
    );
    // Another user's token is untouched.
    assert!(
        s.tokens
            .find_reset(&hash("bobs"), t0)
            .await
            .unwrap()
            .is_some()
    );
}

async fn concurrent_resets_with_one_token_have_one_winner(backend: Backend) {
    let s = stores(backend).await;
    for round in 0..10 {
        let u = with_user(&s, &format!("user{round}")).await;
        let t0 = now();
        let token = hash(&format!("t{round}"));
        issue_reset(&s, &u, &token, t0 + Duration::minutes(30), t0).await;
        let attempts = (0..4).map(|_| {
            let tokens = s.tokens.clone();
            let token = token.clone();
            tokio::spawn(async move {
                tokens
                    .reset_password(&token, &new_hash(), now(), &any_event())
                    .await
            })
        });
        let wins = futures_util::future::join_all(attempts)
            .await
            .into_iter()
            .filter(|r| r.as_ref().unwrap().as_ref().unwrap().is_some())
            .count();
        assert_eq!(wins, 1, "round {round}");
        let stored = s.users.find_by_id(u.id).await.unwrap().unwrap();
        assert_eq!(stored.version, u.version + 1, "written once");
    }
}

async fn a_reset_ends_every_session_and_skips_deactivated_users(backend: Backend) {
    let s = stores(backend).await;
    let ada = with_user(&s, "ada").await;
    let t0 = now();
    for i in 0..2 {
        let session = NewSession {
            id: SessionId::generate(),
            user_id: ada.id,
            refresh_token_hash: hash(&format!("refresh{i}")),
            created_at: t0,
            expires_at: t0 + Duration::days(1),
            client: ClientInfo::default(),
            proof: userhub_domain::model::SignInProof::PASSWORD,
        };
        assert!(
            s.sessions
                .create(&session, &ada.password_hash, &any_event())
                .await
                .unwrap()
        );
    }
    assert_eq!(
        s.sessions
            .list_live_for_user(ada.id, t0)
            .await
            .unwrap()
            .len(),
        2
    );
    issue_reset(&s, &ada, &hash("t"), t0 + Duration::minutes(30), t0).await;
    s.tokens
        .reset_password(&hash("t"), &new_hash(), t0, &any_event())
        .await
        .unwrap()
        .unwrap();
    assert!(
        s.sessions
            .list_live_for_user(ada.id, t0)
            .await
            .unwrap()
            .is_empty()
    );

    let bob = with_user(&s, "bob").await;
    issue_reset(&s, &bob, &hash("b"), t0 + Duration::minutes(30), t0).await;
    let guard = userhub_domain::ports::WriteGuard {
        actor: bob.id,
        actor_is_superuser: false,
        keep_a_superuser: false,
        password_hash: None,
        target_active: Some(true),
    };
    let deactivate = userhub_domain::ports::UserPatch {
        is_active: Some(false),
        ..userhub_domain::ports::UserPatch::default()
    };
    s.users
        .update(bob.id, None, &deactivate, &guard, t0, &any_event())
        .await
        .unwrap();
    assert!(s.tokens.find_reset(&hash("b"), t0).await.unwrap().is_none());
    assert!(
        s.tokens
            .reset_password(&hash("b"), &new_hash(), t0, &any_event())
            .await
            .unwrap()
            .is_none()
    );
    let stored = s.users.find_by_id(bob.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, bob.password_hash);
}

async fn the_queue_keeps_one_untaken_job_per_address(backend: Backend) {
    let s = stores(backend).await;
    let t0 = now();
    for _ in 0..3 {
        s.queue
            .enqueue(
                MailKind::PasswordReset,
                "ada@example.com",
                t0,
                &ClientInfo::default(),
            )
            .await
            .unwrap();
    }
    s.queue
        .enqueue(
            MailKind::PasswordReset,
            "bob@example.com",
            t0,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    let jobs = s
        .queue
        .claim(t0, t0 + Duration::minutes(5), 10)
        .await
        .unwrap();
    let mut emails: Vec<&str> = jobs.iter().map(|j| j.email.as_str()).collect();
    emails.sort_unstable();
    assert_eq!(emails, ["ada@example.com", "bob@example.com"]);
    assert!(
        jobs.iter()
            .all(|j| j.attempts == 1 && j.kind == MailKind::PasswordReset)
    );
    // Once Ada's job is done, a new request queues a new job.
    let ada = jobs.iter().find(|j| j.email == "ada@example.com").unwrap();
    s.queue.complete(ada.id, t0).await.unwrap();
    s.queue
        .enqueue(
            MailKind::PasswordReset,
            "ada@example.com",
            t0,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    s.queue
        .enqueue(
            MailKind::PasswordReset,
            "bob@example.com",
            t0,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    let later = t0 + Duration::minutes(10);
    let again = s
        .queue
        .claim(later, later + Duration::minutes(5), 10)
        .await
        .unwrap();
    // Ada's new job; Bob's first (its lease is over) and his second: a
    // request made once a worker took the first is not merged into it.
    assert_eq!(again.len(), 3, "{again:?}");
    let mut bob: Vec<u32> = again
        .iter()
        .filter(|j| j.email == "bob@example.com")
        .map(|j| j.attempts)
        .collect();
    bob.sort_unstable();
    assert_eq!(bob, [1, 2]);
}

async fn a_claimed_job_is_leased_to_one_worker_and_retried_when_due(backend: Backend) {
    let s = stores(backend).await;
    let t0 = now();
    for i in 0..8 {
        s.queue
            .enqueue(
                MailKind::PasswordReset,
                &format!("user{i}@example.com"),
                t0,
                &ClientInfo::default(),
            )
            .await
            .unwrap();
    }
    // Four workers at once take every job exactly once between them.
    let workers = (0..4).map(|_| {
        let queue = s.queue.clone();
        tokio::spawn(async move { queue.claim(t0, t0 + Duration::minutes(5), 3).await.unwrap() })
    });
    let mut taken: Vec<String> = futures_util::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .map(|j| j.email)
        .collect();
    taken.sort();
    let before = taken.len();
    taken.dedup();
    assert_eq!(before, taken.len(), "a job went to two workers");
    assert_eq!(taken.len(), 8);
    assert!(
        s.queue
            .claim(t0, t0 + Duration::minutes(5), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A retry is due at its time; a failed job is never due again.
    let t1 = t0 + Duration::minutes(6);
    let jobs = s
        .queue
        .claim(t1, t1 + Duration::minutes(5), 2)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 2);
    s.queue
        .retry(jobs[0].id, t1 + Duration::seconds(30), "421 busy")
        .await
        .unwrap();
    s.queue
        .fail(jobs[1].id, t1, "550 no such mailbox")
        .await
        .unwrap();
    let t2 = t1 + Duration::seconds(30);
    let due: Vec<_> = s
        .queue
        .claim(t2, t2 + Duration::seconds(1), 1)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    let t3 = t2 + Duration::minutes(10);
    let rest = s
        .queue
        .claim(t3, t3 + Duration::minutes(5), 100)
        .await
        .unwrap();
    assert!(
        rest.iter().all(|j| j.id != jobs[1].id),
        "a failed job came back"
    );
}

async fn finished_jobs_and_expired_tokens_are_purged(backend: Backend) {
    let s = stores(backend).await;
    let ada = with_user(&s, "ada").await;
    let t0 = now();
    issue_reset(&s, &ada, &hash("old"), t0 + Duration::minutes(30), t0).await;
    s.queue
        .enqueue(
            MailKind::PasswordReset,
            "a@example.com",
            t0,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    s.queue
        .enqueue(
            MailKind::PasswordReset,
            "b@example.com",
            t0,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    s.queue
        .enqueue(
            MailKind::PasswordReset,
            "c@example.com",
            t0,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    let jobs = s
        .queue
        .claim(t0, t0 + Duration::minutes(5), 10)
        .await
        .unwrap();
    s.queue.complete(jobs[0].id, t0).await.unwrap();
    s.queue.fail(jobs[1].id, t0, "gave up").await.unwrap();
    // Nothing finished before t0, nothing expired before t0.
    assert_eq!(s.tokens.purge(t0).await.unwrap(), 0);
    assert_eq!(s.queue.purge(t0).await.unwrap(), 0);
    let later = t0 + Duration::hours(1);
    assert_eq!(s.tokens.purge(later).await.unwrap(), 1);
    // The done and the failed job go; the pending one stays.
    assert_eq!(s.queue.purge(later).await.unwrap(), 2);
    let pending = s
        .queue
        .claim(later, later + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
}
