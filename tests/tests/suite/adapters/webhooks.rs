//! The webhook store against real databases: the trigger turns each
//! event into the deliveries its endpoints' filters take, workers racing
//! for one endpoint never both hold it, two workers draining a burst send
//! each delivery exactly once and in order per endpoint, attempts settle
//! their delivery and the endpoint's failure streak, a rotated secret
//! signs beside the new one while it overlaps, retries by hand, and the
//! audit retention purges deliveries with their events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use secrecy::SecretString;
use time::Duration;
use userhub_domain::PortError;
use userhub_domain::model::{
    AttemptOutcome, AuditEvent, AuditKind, ClientInfo, DeliveryAttempt, DeliveryStatus, Endpoint,
    EventFilter, RetryPolicy, SendResult, Webhook, WebhookChange, WebhookId, WebhookMessage,
    WebhookSecret, WebhookUrl, first_id_at,
};
use userhub_domain::ports::{
    AuditLog, RetryRequest, SystemClock, UserRepository, WebhookOutbox, WebhookRepository,
    WebhookSender,
};
use userhub_domain::services::{WebhookConfig, WebhookPorts, WebhookService};
use userhub_infrastructure::{
    SeaOrmAuditLog, SeaOrmMailQueue, SeaOrmUserRepository, SeaOrmWebhookStore, Sealer, SealingKey,
};
use userhub_tests::{Backend, TestDatabase, migrated_database, stored_event, stored_now as now};
use uuid::Uuid;

on_both_backends!(
    events_become_deliveries_for_the_endpoints_that_take_them,
    racing_workers_never_both_hold_an_endpoint,
    two_workers_send_a_burst_once_each_in_order,
    an_attempt_settles_its_delivery_and_the_failure_streak,
    a_rotated_secret_signs_beside_the_new_one_while_it_overlaps,
    a_secret_sealed_with_a_dropped_key_is_rotated_away,
    a_delivery_is_retried_by_hand_unless_delivered,
    the_audit_retention_purges_deliveries_with_their_events,
);

struct Stores {
    hooks: Arc<SeaOrmWebhookStore>,
    audit: SeaOrmAuditLog,
    database: userhub_infrastructure::Database,
    users: Arc<SeaOrmUserRepository>,
    _db: TestDatabase,
}

async fn stores(backend: Backend) -> Stores {
    let (database, db) = migrated_database(backend).await;
    Stores {
        hooks: Arc::new(SeaOrmWebhookStore::new(
            database.clone(),
            Sealer::new(SealingKey::new(&[7; 32]), None),
        )),
        audit: SeaOrmAuditLog::new(database.clone()),
        users: Arc::new(SeaOrmUserRepository::new(database.clone())),
        database,
        _db: db,
    }
}

fn secret(text: &str) -> WebhookSecret {
    WebhookSecret::new(SecretString::from(text.to_owned()))
}

async fn endpoint(s: &Stores, events: EventFilter) -> WebhookId {
    let hook = Webhook {
        id: WebhookId::generate(),
        url: WebhookUrl::parse("https://hooks.example.com/in", false).unwrap(),
        events,
        description: None,
        enabled: true,
        created_at: now(),
        disabled_reason: None,
    };
    let mut event = stored_event(AuditKind::WebhookCreated);
    event.details.webhook_id = Some(hook.id);
    s.hooks
        .create(&hook, &secret("whsec_c2VjcmV0"), &event)
        .await
        .unwrap();
    hook.id
}

async fn record(s: &Stores, kind: AuditKind) -> AuditEvent {
    let event = stored_event(kind);
    s.audit.record(&event).await.unwrap();
    event
}

async fn kinds(s: &Stores, id: WebhookId) -> Vec<AuditKind> {
    let mut listed = s.hooks.deliveries(id, None, None, 100).await.unwrap();
    listed.reverse();
    listed.into_iter().map(|d| d.kind).collect()
}

async fn events_become_deliveries_for_the_endpoints_that_take_them(backend: Backend) {
    let s = stores(backend).await;
    let all = endpoint(&s, EventFilter::All).await;
    let some = endpoint(
        &s,
        EventFilter::Only(vec![
            AuditKind::UserRegistered,
            AuditKind::TokenReuseDetected,
        ]),
    )
    .await;
    let off = endpoint(&s, EventFilter::All).await;
    let change = WebhookChange {
        enabled: Some(false),
        ..WebhookChange::default()
    };
    let updated = s
        .hooks
        .update(off, &change, &stored_event(AuditKind::WebhookUpdated))
        .await
        .unwrap()
        .unwrap();
    assert!(!updated.enabled);
    for kind in [
        AuditKind::UserRegistered,
        AuditKind::LoginFailed,
        AuditKind::TokenReuseDetected,
        AuditKind::WebhookDeleted,
    ] {
        record(&s, kind).await;
    }
    assert_eq!(
        kinds(&s, all).await,
        [
            AuditKind::UserRegistered,
            AuditKind::LoginFailed,
            AuditKind::TokenReuseDetected
        ],
        "every event but the webhook's own"
    );
    assert_eq!(
        kinds(&s, some).await,
        [AuditKind::UserRegistered, AuditKind::TokenReuseDetected],
        "\"token.reuse_detected\" is matched whole, `_` is no wildcard"
    );
    assert!(
        kinds(&s, off).await.is_empty(),
        "a disabled endpoint gets none"
    );
    let listed = s.hooks.deliveries(all, None, None, 100).await.unwrap();
    assert!(listed.iter().all(|d| d.status == DeliveryStatus::Pending));
    assert!(
        listed.windows(2).all(|w| w[0].id > w[1].id),
        "newest first, by an id that carries the event's time"
    );
    let found = s.hooks.find(some).await.unwrap().unwrap();
    assert_eq!(
        found.events.names(),
        ["user.registered", "token.reuse_detected"]
    );
    assert_eq!(s.hooks.list().await.unwrap().len(), 3);
}

async fn racing_workers_never_both_hold_an_endpoint(backend: Backend) {
    let s = stores(backend).await;
    let first = endpoint(&s, EventFilter::All).await;
    let second = endpoint(&s, EventFilter::All).await;
    record(&s, AuditKind::UserRegistered).await;
    let t = now() + Duration::seconds(1);
    let claims = futures_util::future::join_all((0..6).map(|_| {
        let hooks = s.hooks.clone();
        async move {
            hooks
                .claim(Uuid::new_v4(), t, t + Duration::seconds(60))
                .await
                .unwrap()
        }
    }))
    .await;
    let mut held: Vec<WebhookId> = claims.into_iter().flatten().map(|e| e.id).collect();
    held.sort();
    let mut both = vec![first, second];
    both.sort();
    assert_eq!(held, both, "each endpoint leased exactly once");
    // A worker that died holds nothing once its lease ends.
    let later = t + Duration::seconds(61);
    let again = s
        .hooks
        .claim(Uuid::new_v4(), later, later + Duration::seconds(60))
        .await
        .unwrap();
    assert!(again.is_some());
}

/// A receiver that counts what it gets, per endpoint, in order.
#[derive(Default)]
struct Counting {
    got: Mutex<HashMap<WebhookId, Vec<Uuid>>>,
}

#[async_trait]
impl WebhookSender for Counting {
    async fn check(&self, _: &WebhookUrl) -> Result<(), String> {
        Ok(())
    }

    fn new_secret(&self) -> Result<WebhookSecret, PortError> {
        Ok(secret("whsec_c2VjcmV0"))
    }

    async fn send(&self, endpoint: &Endpoint, message: &WebhookMessage) -> SendResult {
        tokio::task::yield_now().await;
        self.got
            .lock()
            .unwrap()
            .entry(endpoint.id)
            .or_default()
            .push(message.event.id);
        SendResult {
            status: Some(204),
            error: None,
            duration_ms: 0,
        }
    }
}

async fn two_workers_send_a_burst_once_each_in_order(backend: Backend) {
    let s = stores(backend).await;
    let hooks = [
        endpoint(&s, EventFilter::All).await,
        endpoint(&s, EventFilter::All).await,
        endpoint(&s, EventFilter::Only(vec![AuditKind::LoginFailed])).await,
    ];
    let mut written = Vec::new();
    for i in 0..120 {
        let kind = if i % 3 == 0 {
            AuditKind::LoginFailed
        } else {
            AuditKind::UserRegistered
        };
        written.push((record(&s, kind).await.id, kind));
    }
    let receiver = Arc::new(Counting::default());
    let service = WebhookService::new(
        WebhookPorts {
            webhooks: s.hooks.clone(),
            outbox: s.hooks.clone(),
            sender: receiver.clone(),
            users: s.users.clone() as Arc<dyn UserRepository>,
            mail: Arc::new(SeaOrmMailQueue::new(s.database.clone())),
            clock: Arc::new(SystemClock),
        },
        WebhookConfig {
            allow_http: true,
            retry: RetryPolicy::new(Duration::seconds(5)),
        },
    );
    let worker = |service: WebhookService| async move {
        let id = Uuid::new_v4();
        let mut idle = 0;
        while idle < 3 {
            if service.dispatch(id, &|| true).await.unwrap().claimed {
                idle = 0;
            } else {
                idle += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    tokio::join!(worker(service.clone()), worker(service.clone()));
    let got = receiver.got.lock().unwrap().clone();
    let all: Vec<Uuid> = written.iter().map(|(id, _)| *id).collect();
    let failed: Vec<Uuid> = written
        .iter()
        .filter(|(_, k)| *k == AuditKind::LoginFailed)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(got[&hooks[0]], all, "every event once, in order");
    assert_eq!(got[&hooks[1]], all);
    assert_eq!(got[&hooks[2]], failed);
    let (pending, _) = service.backlog().await.unwrap();
    assert_eq!(pending, 0);
}

async fn an_attempt_settles_its_delivery_and_the_failure_streak(backend: Backend) {
    let s = stores(backend).await;
    let id = endpoint(&s, EventFilter::All).await;
    record(&s, AuditKind::UserRegistered).await;
    let t = now();
    let due = s.hooks.due(id, t, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let delivery = due[0].id;
    let failed = DeliveryAttempt {
        at: t,
        status: Some(503),
        error: Some("HTTP 503".into()),
        duration_ms: 12,
    };
    let next = t + Duration::seconds(5);
    let since = s
        .hooks
        .record(id, delivery, &failed, AttemptOutcome::Retry(next))
        .await
        .unwrap();
    assert_eq!(since, Some(t));
    assert!(
        s.hooks.due(id, t, 10).await.unwrap().is_empty(),
        "not due before its retry"
    );
    let later = DeliveryAttempt {
        at: next,
        ..failed.clone()
    };
    let since = s
        .hooks
        .record(
            id,
            delivery,
            &later,
            AttemptOutcome::Retry(next + Duration::seconds(10)),
        )
        .await
        .unwrap();
    assert_eq!(since, Some(t), "the streak keeps its start");
    let ok = DeliveryAttempt {
        at: next + Duration::seconds(10),
        status: Some(200),
        error: None,
        duration_ms: 3,
    };
    let since = s
        .hooks
        .record(id, delivery, &ok, AttemptOutcome::Delivered)
        .await
        .unwrap();
    assert_eq!(since, None);
    let listed = s.hooks.deliveries(id, None, None, 10).await.unwrap();
    assert_eq!(listed[0].status, DeliveryStatus::Delivered);
    assert_eq!(listed[0].attempts, 3);
    assert_eq!(listed[0].last_status, Some(200));
    assert_eq!(listed[0].delivered_at, Some(ok.at));
    let attempts = s.hooks.attempts(id, delivery).await.unwrap().unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.status).collect::<Vec<_>>(),
        [Some(503), Some(503), Some(200)]
    );
    // A late outcome of the same delivery changes nothing.
    s.hooks
        .record(id, delivery, &failed, AttemptOutcome::Failed)
        .await
        .unwrap();
    let listed = s
        .hooks
        .deliveries(id, Some(DeliveryStatus::Delivered), None, 10)
        .await;
    assert_eq!(listed.unwrap().len(), 1);
    let off = s
        .hooks
        .disable(
            id,
            "every delivery failed",
            &stored_event(AuditKind::WebhookDisabled),
        )
        .await
        .unwrap();
    assert!(off);
    assert!(
        !s.hooks
            .disable(id, "again", &stored_event(AuditKind::WebhookDisabled))
            .await
            .unwrap()
    );
    let hook = s.hooks.find(id).await.unwrap().unwrap();
    assert_eq!(
        hook.disabled_reason.as_deref(),
        Some("every delivery failed")
    );
}

async fn a_rotated_secret_signs_beside_the_new_one_while_it_overlaps(backend: Backend) {
    let s = stores(backend).await;
    let id = endpoint(&s, EventFilter::All).await;
    record(&s, AuditKind::UserRegistered).await;
    let t = now();
    let until = t + Duration::hours(24);
    assert!(
        s.hooks
            .rotate_secret(
                id,
                &secret("whsec_bmV3"),
                until,
                &stored_event(AuditKind::WebhookUpdated)
            )
            .await
            .unwrap()
    );
    let worker = Uuid::new_v4();
    let held = s
        .hooks
        .claim(worker, t, t + Duration::seconds(60))
        .await
        .unwrap()
        .unwrap();
    let shown: Vec<String> = held.secrets.iter().map(|s| s.expose().to_owned()).collect();
    assert_eq!(shown, ["whsec_bmV3", "whsec_c2VjcmV0"]);
    s.hooks.release(id, worker, t, None).await.unwrap();
    let after = until + Duration::seconds(1);
    let held = s
        .hooks
        .claim(worker, after, after + Duration::seconds(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.secrets.len(), 1, "the old secret no longer signs");
    assert!(
        !s.hooks
            .rotate_secret(
                WebhookId::generate(),
                &secret("whsec_eA=="),
                until,
                &stored_event(AuditKind::WebhookUpdated)
            )
            .await
            .unwrap()
    );
}

async fn a_secret_sealed_with_a_dropped_key_is_rotated_away(backend: Backend) {
    let s = stores(backend).await;
    let id = endpoint(&s, EventFilter::All).await;
    record(&s, AuditKind::UserRegistered).await;
    // The same database, opened by a server whose only key is a new one.
    let rekeyed = SeaOrmWebhookStore::new(
        s.database.clone(),
        Sealer::new(SealingKey::new(&[8; 32]), None),
    );
    let t = now();
    let worker = Uuid::new_v4();
    assert!(
        rekeyed
            .claim(worker, t, t + Duration::seconds(60))
            .await
            .is_err(),
        "a secret nobody can open signs nothing"
    );
    assert!(
        rekeyed
            .rotate_secret(
                id,
                &secret("whsec_bmV3"),
                t + Duration::hours(24),
                &stored_event(AuditKind::WebhookUpdated)
            )
            .await
            .unwrap()
    );
    let later = t + Duration::seconds(61);
    let held = rekeyed
        .claim(worker, later, later + Duration::seconds(60))
        .await
        .unwrap()
        .unwrap();
    let shown: Vec<&str> = held.secrets.iter().map(WebhookSecret::expose).collect();
    assert_eq!(
        shown,
        ["whsec_bmV3"],
        "the old secret, unopenable, is left out"
    );
}

async fn a_delivery_is_retried_by_hand_unless_delivered(backend: Backend) {
    let s = stores(backend).await;
    let id = endpoint(&s, EventFilter::All).await;
    record(&s, AuditKind::UserRegistered).await;
    record(&s, AuditKind::UserDeleted).await;
    let t = now();
    let due = s.hooks.due(id, t, 10).await.unwrap();
    let attempt = DeliveryAttempt {
        at: t,
        status: None,
        error: Some("timed out".into()),
        duration_ms: 10_000,
    };
    s.hooks
        .record(id, due[0].id, &attempt, AttemptOutcome::Failed)
        .await
        .unwrap();
    s.hooks
        .record(id, due[1].id, &attempt, AttemptOutcome::Delivered)
        .await
        .unwrap();
    let failed = s
        .hooks
        .deliveries(id, Some(DeliveryStatus::Failed), None, 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    let later = t + Duration::seconds(1);
    assert_eq!(
        s.hooks.retry(id, due[0].id, later).await.unwrap(),
        RetryRequest::Queued
    );
    assert_eq!(s.hooks.due(id, later, 10).await.unwrap().len(), 1);
    assert_eq!(
        s.hooks.retry(id, due[1].id, later).await.unwrap(),
        RetryRequest::Delivered
    );
    let other = endpoint(&s, EventFilter::All).await;
    assert_eq!(
        s.hooks.retry(other, due[0].id, later).await.unwrap(),
        RetryRequest::NotFound
    );
    // The test event reaches its endpoint alone.
    let mut test = stored_event(AuditKind::WebhookTest);
    test.details.webhook_id = Some(other);
    assert!(s.hooks.queue_test(other, &test).await.unwrap());
    assert_eq!(kinds(&s, other).await, [AuditKind::WebhookTest]);
    assert_eq!(kinds(&s, id).await.len(), 2);
    let missing = stored_event(AuditKind::WebhookTest);
    assert!(
        !s.hooks
            .queue_test(WebhookId::generate(), &missing)
            .await
            .unwrap()
    );
    assert!(
        s.hooks
            .delete(other, &stored_event(AuditKind::WebhookDeleted))
            .await
            .unwrap()
    );
    assert!(s.hooks.find(other).await.unwrap().is_none());
}

async fn the_audit_retention_purges_deliveries_with_their_events(backend: Backend) {
    let s = stores(backend).await;
    let id = endpoint(&s, EventFilter::All).await;
    let old = {
        let at = now() - Duration::days(100);
        let mut event = AuditEvent::new(AuditKind::UserRegistered, at, &ClientInfo::default());
        // Ids of one process only grow: this one is made as if long ago.
        event.id = first_id_at(at);
        s.audit.record(&event).await.unwrap();
        event
    };
    record(&s, AuditKind::UserDeleted).await;
    let due = s.hooks.due(id, now(), 10).await.unwrap();
    assert_eq!(due[0].event.id, old.id);
    let attempt = DeliveryAttempt {
        at: now(),
        status: Some(500),
        error: Some("HTTP 500".into()),
        duration_ms: 1,
    };
    s.hooks
        .record(id, due[0].id, &attempt, AttemptOutcome::Failed)
        .await
        .unwrap();
    let purged = s.audit.purge(now() - Duration::days(90)).await.unwrap();
    assert!(purged >= 1);
    assert_eq!(kinds(&s, id).await, [AuditKind::UserDeleted]);
    assert!(s.hooks.attempts(id, due[0].id).await.unwrap().is_none());
}
