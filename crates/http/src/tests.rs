//! The real routes over mocked ports: how domain outcomes and adapter
//! failures become HTTP responses, without a database.

use std::sync::Arc;

use actix_web::{test, web};
use serde_json::{Value, json};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{PasswordPolicy, RetryPolicy, SessionId, UserId};
use userhub_domain::ports::{
    AccessClaims, InsertUserError, MockClock, MockHealthProbe, MockMailer, MockRecoveryTokens,
    MockRequestCounter, MockWebhookOutbox, MockWebhookRepository, MockWebhookSender,
};
use userhub_domain::services::fixtures;
use userhub_domain::services::{
    AccountService, AuditService, AuthConfig, AuthServices, LockoutPolicy, RecoveryConfig,
    RecoveryService, UserService, WebhookConfig, WebhookPorts, WebhookService,
};

use crate::{ApiSettings, ApiState, build_app};

/// The domain's port mocks, and the health probe the HTTP layer adds.
#[derive(Default)]
struct Mocks {
    ports: fixtures::Mocks,
    health: MockHealthProbe,
}

impl std::ops::Deref for Mocks {
    type Target = fixtures::Mocks;

    fn deref(&self) -> &Self::Target {
        &self.ports
    }
}

impl std::ops::DerefMut for Mocks {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.ports
    }
}

impl Mocks {
    fn state(self) -> web::Data<ApiState> {
        let mut clock = MockClock::new();
        clock.expect_now().returning(OffsetDateTime::now_utc);
        let ports = self.ports.ports_with_clock(clock);
        let auth = AuthServices::new(
            &ports,
            AuthConfig {
                refresh_token_ttl: time::Duration::days(7),
                refresh_reuse_grace: time::Duration::ZERO,
                lockout: LockoutPolicy::default(),
                password_policy: PasswordPolicy::default(),
                require_verified_email: false,
                oauth_associate_by_email: false,
                oauth_state_ttl: time::Duration::minutes(10),
                reauth_window: time::Duration::minutes(10),
                token_max_days: 365,
            },
        );
        web::Data::new(ApiState {
            oauth_cookie_secure: false,
            auth: auth.auth,
            sessions: auth.sessions,
            mfa: auth.mfa,
            oauth: auth.oauth,
            tokens: auth.tokens,
            passkeys: auth.passkeys,
            users: UserService::new(
                ports.for_users(),
                PasswordPolicy::default(),
                LockoutPolicy::default(),
            ),
            audit: AuditService::new(ports.for_audit(), time::Duration::days(90)),
            accounts: AccountService::new(ports.for_accounts()),
            webhooks: WebhookService::new(
                WebhookPorts {
                    webhooks: Arc::new(MockWebhookRepository::new()),
                    outbox: Arc::new(MockWebhookOutbox::new()),
                    sender: Arc::new(MockWebhookSender::new()),
                    users: ports.users.clone(),
                    mail: ports.mail.clone(),
                    clock: ports.clock.clone(),
                },
                WebhookConfig {
                    allow_http: true,
                    retry: RetryPolicy::new(time::Duration::seconds(5)),
                },
            ),
            recovery: RecoveryService::new(
                ports.for_recovery(
                    Arc::new(MockRecoveryTokens::new()),
                    Arc::new(MockMailer::new()),
                    Arc::new(MockRequestCounter::new()),
                ),
                RecoveryConfig {
                    reset_token_ttl: time::Duration::minutes(30),
                    verify_token_ttl: time::Duration::hours(48),
                    public_url: "http://localhost".into(),
                    password_policy: PasswordPolicy::default(),
                    max_attempts: 3,
                    retry_base: time::Duration::seconds(1),
                    revert_token_ttl: time::Duration::days(7),
                    max_links_per_address_per_hour: 5,
                },
            ),
            health: Arc::new(self.health),
            version: "test",
            auth_rate_limit: None,
            hash_budget: None,
            write_limit: None,
            trust_forwarded_for: false,
            cursor_key: crate::CursorKey::derive(b"test"),
            jwks: r#"{"keys":[]}"#.into(),
            metrics: crate::Metrics::global(),
            lifecycle: Arc::default(),
        })
    }
}

fn settings() -> ApiSettings {
    ApiSettings {
        cors_origins: vec![],
        max_body_bytes: 1024,
        max_header_bytes: 16 * 1024,
        body_timeout: std::time::Duration::from_secs(10),
        console: None,
    }
}

async fn call(
    mocks: Mocks,
    request: test::TestRequest,
) -> (u16, actix_web::http::header::HeaderMap, Value) {
    let app = test::init_service(build_app(mocks.state(), settings())).await;
    let response = test::call_service(&app, request.to_request()).await;
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let body = test::read_body(response).await;
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

fn register() -> test::TestRequest {
    test::TestRequest::post()
        .uri("/api/auth/register")
        .set_json(json!({"email": "ada@example.com", "username": "ada", "password": "correct horse battery"}))
}

#[actix_web::test]
async fn a_unique_violation_reported_by_the_repository_is_a_409() {
    let mut mocks = Mocks::default();
    mocks.hashes_to("h");
    mocks
        .users
        .expect_insert()
        .returning(|_, _| Err(InsertUserError::EmailTaken));
    let (status, _, body) = call(mocks, register()).await;
    assert_eq!(status, 409);
    assert_eq!(body, json!({"detail": "Email already registered"}));
}

#[actix_web::test]
async fn an_unavailable_database_is_a_503_with_retry_after() {
    let mut mocks = Mocks::default();
    mocks
        .throttle
        .expect_state()
        .returning(|_, _| Err(PortError::Unavailable("pool timed out".into())));
    let login = test::TestRequest::post()
        .uri("/api/auth/login")
        .set_json(json!({"email": "ada@example.com", "password": "whatever1"}));
    let (status, headers, body) = call(mocks, login).await;
    assert_eq!(status, 503);
    assert_eq!(headers.get("retry-after").unwrap(), "5");
    assert_eq!(body, json!({"detail": "Service temporarily unavailable"}));
}

#[actix_web::test]
async fn forgot_password_answers_202_and_a_full_queue_store_503() {
    let forgot = || {
        test::TestRequest::post()
            .uri("/api/auth/forgot-password")
            .set_json(json!({"email": "Ada@Example.com"}))
    };
    let mut mocks = Mocks::default();
    mocks
        .mail
        .expect_enqueue()
        .withf(|_, email, _, _| email == "ada@example.com")
        .returning(|_, _, _, _| Ok(()));
    let (status, _, body) = call(mocks, forgot()).await;
    assert_eq!(status, 202);
    assert_eq!(
        body,
        json!({"detail": "If an account has this address, a link to reset its password is on its way"})
    );
    let mut mocks = Mocks::default();
    mocks
        .mail
        .expect_enqueue()
        .returning(|_, _, _, _| Err(PortError::Unavailable("down".into())));
    let (status, headers, _) = call(mocks, forgot()).await;
    assert_eq!(status, 503);
    assert!(headers.get("retry-after").is_some());
}

#[actix_web::test]
async fn an_unexpected_failure_is_an_opaque_500() {
    let mut mocks = Mocks::default();
    mocks.hashes_to("h");
    mocks.users.expect_insert().returning(|_, _| {
        Err(InsertUserError::Port(PortError::unexpected(
            "relation \"users\" does not exist",
        )))
    });
    let (status, _, body) = call(mocks, register()).await;
    assert_eq!(status, 500);
    assert_eq!(body, json!({"detail": "Internal Server Error"}));
}

#[actix_web::test]
async fn a_bearer_token_is_resolved_through_the_session_lookup() {
    let user = fixtures::user("ada");
    let (uid, sid) = (user.id, SessionId::generate());
    let mut mocks = Mocks::default();
    mocks
        .tokens
        .expect_verify_access_token()
        .withf(|token| token == "good")
        .returning(move |_| {
            Ok(AccessClaims {
                user_id: uid,
                session_id: sid,
            })
        });
    mocks
        .sessions
        .expect_find_active_user()
        .withf(move |u, s, _| *u == uid && *s == sid)
        .times(1)
        .returning(move |_, _, _| Ok(Some(user.clone())));
    let me = test::TestRequest::get()
        .uri("/api/auth/me/")
        .insert_header(("authorization", "Bearer good"));
    let (status, _, body) = call(mocks, me).await;
    assert_eq!(status, 200);
    assert_eq!(body["email"], "ada@example.com");
}

#[actix_web::test]
async fn a_token_whose_session_is_gone_is_a_401_with_www_authenticate() {
    let mut mocks = Mocks::default();
    mocks.access_token_names(UserId::generate(), SessionId::generate());
    mocks.session_finds(None);
    let me = test::TestRequest::get()
        .uri("/api/auth/me")
        .insert_header(("authorization", "Bearer revoked"));
    let (status, headers, body) = call(mocks, me).await;
    assert_eq!(status, 401);
    assert_eq!(headers.get("www-authenticate").unwrap(), "Bearer");
    assert_eq!(body["detail"], "Could not validate credentials");
}

#[actix_web::test]
async fn a_body_over_the_limit_is_a_413() {
    let big = test::TestRequest::post()
        .uri("/api/auth/register")
        .insert_header(("content-type", "application/json"))
        .set_payload(format!("{{\"email\": \"{}\"}}", "a".repeat(2000)));
    let (status, _, body) = call(Mocks::default(), big).await;
    assert_eq!(status, 413);
    assert_eq!(body["detail"], "Request body too large");
}

#[actix_web::test]
async fn health_is_503_when_the_probe_fails() {
    let mut mocks = Mocks::default();
    mocks
        .health
        .expect_check_database()
        .returning(|| Err(PortError::Unavailable("down".into())));
    let (status, headers, body) = call(mocks, test::TestRequest::get().uri("/health")).await;
    assert_eq!(status, 503);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        body,
        json!({"status": "unavailable", "database": "unavailable", "version": "test"})
    );
}
