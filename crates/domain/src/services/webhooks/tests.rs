#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use mockall::predicate::{always, eq};
use secrecy::SecretString;
use time::Duration;
use uuid::Uuid;

use super::*;
use crate::model::{AttemptOutcome, DueDelivery, Endpoint, MailKind, SendResult, UndoTarget};
use crate::ports::{
    MockMailQueue, MockUserRepository, MockWebhookOutbox, MockWebhookRepository, MockWebhookSender,
};
use crate::services::fixtures::{NOW, stopped_clock, superuser, user};

#[derive(Default)]
struct Mocks {
    webhooks: MockWebhookRepository,
    outbox: MockWebhookOutbox,
    sender: MockWebhookSender,
    users: MockUserRepository,
    mail: MockMailQueue,
}

impl Mocks {
    fn service(self) -> WebhookService {
        WebhookService::new(
            WebhookPorts {
                webhooks: Arc::new(self.webhooks),
                outbox: Arc::new(self.outbox),
                sender: Arc::new(self.sender),
                users: Arc::new(self.users),
                mail: Arc::new(self.mail),
                clock: Arc::new(stopped_clock()),
            },
            WebhookConfig {
                allow_http: false,
                retry: RetryPolicy::new(Duration::seconds(5)),
            },
        )
    }
}

fn new_webhook() -> NewWebhook {
    NewWebhook {
        url: WebhookUrl::parse("https://hooks.example.com/in", false).unwrap(),
        events: EventFilter::All,
        description: None,
    }
}

fn endpoint(failing_since: Option<time::OffsetDateTime>) -> Endpoint {
    Endpoint {
        id: WebhookId::from_uuid(Uuid::from_u128(1)),
        url: WebhookUrl::parse("https://hooks.example.com/in", false).unwrap(),
        secrets: vec![WebhookSecret::new(SecretString::from("whsec_a"))],
        failing_since,
    }
}

fn due(n: u128) -> DueDelivery {
    DueDelivery {
        id: DeliveryId::from_uuid(Uuid::from_u128(100 + n)),
        event: AuditEvent::new(AuditKind::UserRegistered, NOW, &ClientInfo::default()),
        attempts: 0,
    }
}

fn answer(status: u16) -> SendResult {
    SendResult {
        status: Some(status),
        error: (!(200..300).contains(&status)).then(|| format!("HTTP {status}")),
        duration_ms: 3,
    }
}

#[tokio::test]
async fn only_superusers_manage_webhooks() {
    let service = Mocks::default().service();
    let ada = user("ada");
    let id = WebhookId::generate();
    let client = ClientInfo::default();
    assert!(matches!(
        service.list(&ada).await,
        Err(WebhookError::Forbidden)
    ));
    assert!(matches!(
        service.create(&ada, new_webhook(), &client).await,
        Err(WebhookError::Forbidden)
    ));
    assert!(matches!(
        service.delete(&ada, id, &client).await,
        Err(WebhookError::Forbidden)
    ));
    assert!(matches!(
        service.test(&ada, id, &client).await,
        Err(WebhookError::Forbidden)
    ));
    assert!(matches!(
        service.retry(&ada, id, DeliveryId::generate()).await,
        Err(WebhookError::Forbidden)
    ));
}

#[tokio::test]
async fn a_refused_host_stores_nothing() {
    let mut mocks = Mocks::default();
    mocks
        .sender
        .expect_check()
        .returning(|_| Err("hooks.example.com resolves to a private address".into()));
    mocks.webhooks.expect_create().never();
    let err = mocks
        .service()
        .create(&superuser("root"), new_webhook(), &ClientInfo::default())
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::UrlRefused(why) if why.contains("private")));
}

#[tokio::test]
async fn plain_http_is_refused_in_production() {
    let mut mocks = Mocks::default();
    mocks.sender.expect_check().never();
    let new = NewWebhook {
        url: WebhookUrl::parse("http://hooks.example.com/in", true).unwrap(),
        ..new_webhook()
    };
    let err = mocks
        .service()
        .create(&superuser("root"), new, &ClientInfo::default())
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::UrlRefused(why) if why.contains("https://")));
}

#[tokio::test]
async fn a_creation_is_stored_with_its_event_and_shows_its_secret() {
    let mut mocks = Mocks::default();
    mocks.sender.expect_check().returning(|_| Ok(()));
    mocks
        .sender
        .expect_new_secret()
        .returning(|| Ok(WebhookSecret::new(SecretString::from("whsec_c2VjcmV0"))));
    let root = superuser("root");
    let root_id = root.id;
    mocks
        .webhooks
        .expect_create()
        .withf(move |hook, secret, event| {
            event.kind == AuditKind::WebhookCreated
                && event.actor_id == Some(root_id)
                && event.details.webhook_id == Some(hook.id)
                && hook.enabled
                && secret.expose() == "whsec_c2VjcmV0"
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    // The superuser's inbox hears of it, with a link that deletes it.
    mocks
        .mail
        .expect_notify()
        .withf(move |notice, _, _| {
            notice.kind == MailKind::WebhookCreated
                && notice.user_id == root_id
                && matches!(notice.target, Some(UndoTarget::Webhook { .. }))
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    let (hook, secret) = mocks
        .service()
        .create(&root, new_webhook(), &ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(hook.url.as_str(), "https://hooks.example.com/in");
    assert_eq!(secret.expose(), "whsec_c2VjcmV0");
}

/// A stored endpoint at `url`.
fn stored(url: &str) -> Webhook {
    Webhook {
        id: WebhookId::generate(),
        url: WebhookUrl::parse(url, false).unwrap(),
        events: new_webhook().events,
        description: None,
        enabled: true,
        created_at: NOW,
        disabled_reason: None,
    }
}

#[tokio::test]
async fn an_update_names_the_fields_it_sets_and_checks_a_new_url() {
    let mut mocks = Mocks::default();
    mocks.sender.expect_check().times(1).returning(|_| Ok(()));
    mocks
        .webhooks
        .expect_find()
        .returning(|_| Ok(Some(stored("https://hooks.example.com/in"))));
    mocks
        .webhooks
        .expect_update()
        .withf(|_, change, event| {
            change.enabled == Some(false)
                && event.kind == AuditKind::WebhookUpdated
                && event.details.fields == ["url", "enabled"]
        })
        .returning(|_, _, _| Ok(None));
    let change = WebhookChange {
        url: Some(WebhookUrl::parse("https://other.example.com/", false).unwrap()),
        enabled: Some(false),
        ..WebhookChange::default()
    };
    let err = mocks
        .service()
        .update(
            &superuser("root"),
            WebhookId::generate(),
            change,
            &ClientInfo::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::NotFound));
}

#[tokio::test]
async fn a_delivered_delivery_is_not_retried() {
    let mut mocks = Mocks::default();
    mocks
        .webhooks
        .expect_retry()
        .with(always(), always(), eq(NOW))
        .returning(|_, _, _| Ok(RetryRequest::Delivered));
    let err = mocks
        .service()
        .retry(
            &superuser("root"),
            WebhookId::generate(),
            DeliveryId::generate(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::AlreadyDelivered));
}

/// A worker round over `answers` (one per due delivery, in order); the
/// outcomes recorded and the pause the endpoint was released with.
async fn round(
    answers: Vec<SendResult>,
    failing_since: Option<time::OffsetDateTime>,
) -> (
    DispatchRound,
    Vec<AttemptOutcome>,
    Option<Option<time::OffsetDateTime>>,
    bool,
) {
    let mut mocks = Mocks::default();
    let worker = Uuid::from_u128(7);
    let count = answers.len();
    mocks
        .outbox
        .expect_claim()
        .with(eq(worker), eq(NOW), eq(NOW + Duration::seconds(60)))
        .returning(move |_, _, _| Ok(Some(endpoint(failing_since))));
    mocks
        .outbox
        .expect_due()
        .returning(move |_, _, _| Ok((0..count as u128).map(due).collect()));
    mocks.users.expect_find_by_id().returning(|_| Ok(None));
    let answers = Mutex::new(answers.into_iter());
    let sent = Arc::new(Mutex::new(Vec::new()));
    let seen = sent.clone();
    mocks.sender.expect_send().returning(move |_, message| {
        seen.lock().unwrap().push(message.event.id);
        answers.lock().unwrap().next().unwrap()
    });
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let kept = recorded.clone();
    mocks
        .outbox
        .expect_record()
        .returning(move |_, _, _, outcome| {
            kept.lock().unwrap().push(outcome);
            Ok(match outcome {
                AttemptOutcome::Delivered => None,
                _ => Some(failing_since.unwrap_or(NOW)),
            })
        });
    let released = Arc::new(Mutex::new(None));
    let release = released.clone();
    mocks
        .outbox
        .expect_release()
        .with(always(), eq(worker), eq(NOW), always())
        .returning(move |_, _, _, paused| {
            *release.lock().unwrap() = Some(paused);
            Ok(())
        });
    let disabled = Arc::new(Mutex::new(false));
    let off = disabled.clone();
    mocks
        .outbox
        .expect_disable()
        .returning(move |_, reason, event| {
            assert!(reason.starts_with("every delivery failed since"));
            assert_eq!(event.kind, AuditKind::WebhookDisabled);
            *off.lock().unwrap() = true;
            Ok(true)
        });
    let done = mocks.service().dispatch(worker, &|| true).await.unwrap();
    let outcomes = recorded.lock().unwrap().clone();
    let paused = *released.lock().unwrap();
    let off = *disabled.lock().unwrap();
    (done, outcomes, paused, off)
}

#[tokio::test]
async fn a_round_sends_due_deliveries_in_order_and_releases_the_endpoint() {
    let (done, outcomes, paused, off) = round(vec![answer(200), answer(204)], None).await;
    assert_eq!(done.delivered, 2);
    assert_eq!(
        outcomes,
        [AttemptOutcome::Delivered, AttemptOutcome::Delivered]
    );
    assert_eq!(paused, Some(None), "released, not paused");
    assert!(!off);
}

#[tokio::test]
async fn an_endpoint_in_trouble_waits_and_keeps_its_order() {
    let (done, outcomes, paused, _) =
        round(vec![answer(200), answer(503), answer(200)], None).await;
    assert_eq!((done.delivered, done.retried), (1, 1));
    let retry_at = match outcomes[1] {
        AttemptOutcome::Retry(at) => at,
        other => panic!("{other:?}"),
    };
    assert!(retry_at >= NOW + Duration::seconds(4) && retry_at <= NOW + Duration::seconds(6));
    assert_eq!(outcomes.len(), 2, "the third waits behind the second");
    assert_eq!(paused, Some(Some(retry_at)));
}

#[tokio::test]
async fn an_event_the_receiver_refuses_does_not_hold_up_the_rest() {
    let (done, outcomes, paused, _) = round(vec![answer(400), answer(200)], None).await;
    assert_eq!((done.delivered, done.retried), (1, 1));
    assert_eq!(outcomes.len(), 2);
    assert_eq!(paused, Some(None));
}

#[tokio::test]
async fn an_endpoint_failing_for_three_days_is_turned_off() {
    let (_, outcomes, paused, off) = round(
        vec![answer(500), answer(200)],
        Some(NOW - Duration::days(3)),
    )
    .await;
    assert_eq!(outcomes.len(), 1);
    assert!(off);
    assert_eq!(paused, Some(None));
    let (_, _, _, off) = round(vec![answer(500)], Some(NOW - Duration::days(2))).await;
    assert!(!off, "two days is not yet three");
}

#[tokio::test]
async fn no_due_endpoint_is_a_quiet_round() {
    let mut mocks = Mocks::default();
    mocks.outbox.expect_claim().returning(|_, _, _| Ok(None));
    mocks.outbox.expect_release().never();
    let done = mocks
        .service()
        .dispatch(Uuid::nil(), &|| true)
        .await
        .unwrap();
    assert!(!done.claimed);
}

#[tokio::test]
async fn a_stopping_server_sends_no_more_and_releases_its_endpoint() {
    let mut mocks = Mocks::default();
    mocks
        .outbox
        .expect_claim()
        .returning(|_, _, _| Ok(Some(endpoint(None))));
    mocks
        .outbox
        .expect_due()
        .returning(|_, _, _| Ok((0..3).map(due).collect()));
    mocks.users.expect_find_by_id().returning(|_| Ok(None));
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = stopping.clone();
    mocks.sender.expect_send().times(1).returning(move |_, _| {
        // The signal comes while the first one is out.
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        answer(204)
    });
    mocks
        .outbox
        .expect_record()
        .times(1)
        .returning(|_, _, _, _| Ok(None));
    mocks
        .outbox
        .expect_release()
        .with(always(), always(), always(), eq(None))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let keep_going = move || !stopping.load(std::sync::atomic::Ordering::SeqCst);
    let done = mocks
        .service()
        .dispatch(Uuid::nil(), &keep_going)
        .await
        .unwrap();
    assert_eq!(done.delivered, 1);
}

/// Events that go somewhere new: the superuser's inbox can delete the
/// webhook, as after its creation. The same URL sent back says nothing.
#[tokio::test]
async fn pointing_a_webhook_elsewhere_tells_the_superuser_with_an_undo_link() {
    for (url, told) in [
        ("https://elsewhere.example.net/in", 1),
        ("https://hooks.example.com/in", 0),
    ] {
        let mut mocks = Mocks::default();
        mocks.sender.expect_check().returning(|_| Ok(()));
        let hook = stored("https://hooks.example.com/in");
        let id = hook.id;
        mocks
            .webhooks
            .expect_find()
            .with(eq(id))
            .returning(move |_| Ok(Some(hook.clone())));
        mocks
            .webhooks
            .expect_update()
            .returning(move |_, _, _| Ok(Some(stored(url))));
        let root = superuser("root");
        let root_id = root.id;
        mocks
            .mail
            .expect_notify()
            .withf(move |notice, _, _| {
                notice.kind == MailKind::WebhookRedirected
                    && notice.user_id == root_id
                    && notice.target == Some(UndoTarget::Webhook { id })
            })
            .times(told)
            .returning(|_, _, _| Ok(()));
        let change = WebhookChange {
            url: Some(WebhookUrl::parse(url, false).unwrap()),
            ..WebhookChange::default()
        };
        mocks
            .service()
            .update(&root, id, change, &ClientInfo::default())
            .await
            .unwrap();
    }
}
