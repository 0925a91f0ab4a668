//! Sign-in with an OpenID provider end to end, against a real, certified
//! provider (`oidc-provider`): a browser goes through its login and
//! consent pages, and the test forwards the redirect's `code` and `state`
//! with UserHub's cookie to the callback, as a front end does.

use serde_json::{Value, json};
use userhub_tests::oidc::{OidcProvider, PROVIDER, Redirect, configure, sign_in_at_provider};
use userhub_tests::smtp::{SmtpServer, link_token};
use userhub_tests::totp::code;
use userhub_tests::{Backend, PASSWORD, TestApp, TestDatabase, TestUser, spawn_app_on};

on_both_backends!(
    a_first_sign_in_creates_a_verified_user_and_the_next_finds_it,
    an_address_of_a_local_account_is_refused_unless_linking_by_verified_email,
    linking_while_signed_in_listing_and_unlinking,
    linking_and_unlinking_spend_the_account_write_budget,
    a_state_is_bound_to_its_cookie_spent_once_and_expires,
    an_id_token_with_another_nonce_or_key_is_refused,
    an_unreachable_provider_is_503,
    the_second_factor_applies_after_a_provider_sign_in,
    an_account_without_a_password_sets_one_through_forgot_password,
);

async fn app_with(provider: &OidcProvider, backend: Backend) -> TestApp {
    app_tweaked(provider, backend, |_| {}).await
}

pub(super) async fn app_tweaked(
    provider: &OidcProvider,
    backend: Backend,
    tweak: impl FnOnce(&mut userhub_server::Settings),
) -> TestApp {
    let db = TestDatabase::create(backend).await;
    let url = db.url.clone();
    spawn_app_on(db, url, |settings| {
        provider.configure(settings);
        tweak(settings);
    })
    .await
}

/// An authorization request: the URL and the cookie's value.
pub(super) struct Started {
    pub(super) url: String,
    pub(super) cookie: String,
}

pub(super) async fn authorize(app: &TestApp, path: &str, token: Option<&str>) -> Started {
    let mut request = app.client.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/api/auth/oauth",
        "Max-Age=",
    ] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let body: Value = response.json().await.unwrap();
    let url = body["authorization_url"].as_str().unwrap().to_owned();
    for part in [
        "response_type=code",
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
    ] {
        assert!(url.contains(part), "{url}");
    }
    Started { url, cookie }
}

pub(super) async fn callback(
    app: &TestApp,
    path: &str,
    redirect: &Redirect,
    cookie: Option<&str>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut request = app
        .client
        .get(app.url(path))
        .query(&[("code", &redirect.code), ("state", &redirect.state)]);
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("userhub_oauth_state={cookie}"));
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status == 503 {
        assert!(response.headers().contains_key("retry-after"));
    }
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A whole sign-in as `account` at the provider: the callback's answer.
pub(super) async fn sign_in(app: &TestApp, account: &str) -> (u16, Value) {
    let started = authorize(app, &format!("/api/auth/oauth/{PROVIDER}/authorize"), None).await;
    let redirect = sign_in_at_provider(&started.url, account).await;
    callback(
        app,
        &format!("/api/auth/oauth/{PROVIDER}/callback"),
        &redirect,
        Some(&started.cookie),
        None,
    )
    .await
}

/// Links `account` at the provider to the caller of `token`, who starts
/// and finishes it: the associate callback's answer.
pub(super) async fn link(app: &TestApp, token: &str, account: &str) -> (u16, Value) {
    let path = format!("/api/auth/oauth/{PROVIDER}/associate/authorize");
    let started = authorize(app, &path, Some(token)).await;
    let redirect = sign_in_at_provider(&started.url, account).await;
    callback(
        app,
        &format!("/api/auth/oauth/{PROVIDER}/associate/callback"),
        &redirect,
        Some(&started.cookie),
        Some(token),
    )
    .await
}

pub(super) async fn me(app: &TestApp, token: &str) -> Value {
    app.get("/api/auth/me", token).await.json().await.unwrap()
}

pub(super) async fn identities(app: &TestApp, token: &str) -> Value {
    let response = app.get("/api/auth/identities", token).await;
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

/// The `amr` claim of an access token (read, not verified).
fn amr(access_token: &str) -> Value {
    use base64::Engine as _;
    let payload = access_token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["amr"].clone()
}

pub(super) fn token_of(body: &Value) -> String {
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no tokens: {body}"))
        .to_owned()
}

async fn a_first_sign_in_creates_a_verified_user_and_the_next_finds_it(backend: Backend) {
    let provider = OidcProvider::start();
    let app = app_with(&provider, backend).await;

    let (status, tokens) = sign_in(&app, "alice").await;
    assert_eq!(status, 200, "{tokens}");
    let access = token_of(&tokens);
    assert_eq!(amr(&access), json!(["fed"]));
    // A refresh keeps what the sign-in proved.
    let refreshed: Value = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": tokens["refresh_token"]}),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(amr(&token_of(&refreshed)), json!(["fed"]));
    let alice = me(&app, &access).await;
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["username"], "alice");
    assert_eq!(alice["is_verified"], true);
    let linked = identities(&app, &access).await;
    assert_eq!(linked.as_array().unwrap().len(), 1, "{linked}");
    assert_eq!(linked[0]["provider"], PROVIDER);
    assert_eq!(linked[0]["subject"], "alice");
    assert_eq!(linked[0]["email"], "alice@example.com");

    // The second sign-in finds the same user.
    let (status, again) = sign_in(&app, "alice").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(me(&app, &token_of(&again)).await["id"], alice["id"]);

    // No password: a password login is the usual 401, whatever is typed.
    for typed in ["a-guess-123", PASSWORD] {
        let response = app.login("alice@example.com", typed).await;
        assert_eq!(response.status().as_u16(), 401);
    }
    // The only way in cannot be removed.
    let response = app
        .delete(&format!("/api/auth/identities/{PROVIDER}"), &access)
        .await;
    assert_eq!(response.status().as_u16(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["detail"], "Cannot remove the last sign-in method");

    // A provider that does not vouch for the address: not verified.
    let (status, tokens) = sign_in(&app, "unverified-bob").await;
    assert_eq!(status, 200, "{tokens}");
    let bob = me(&app, &token_of(&tokens)).await;
    assert_eq!(bob["is_verified"], false);
    assert_eq!(bob["username"], "unverified-bob");
    // No address at all: refused.
    let (status, body) = sign_in(&app, "noemail-carl").await;
    assert_eq!(
        (status, body),
        (400, json!({"detail": "OAUTH_NOT_AVAILABLE_EMAIL"}))
    );

    // The audit trail says how alice signed in.
    let root = app.root_token().await;
    let events: Value = app
        .get(
            &format!(
                "/api/audit-events?user_id={}&type=login.succeeded",
                alice["id"].as_str().unwrap()
            ),
            &root,
        )
        .await
        .json()
        .await
        .unwrap();
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{events}");
    assert!(
        items
            .iter()
            .all(|e| e["details"]["method"] == format!("oauth:{PROVIDER}")),
        "{events}"
    );
    let linked: Value = app
        .get(
            &format!(
                "/api/audit-events?user_id={}&type=identity.linked",
                alice["id"].as_str().unwrap()
            ),
            &root,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        linked["items"][0]["details"]["provider"], PROVIDER,
        "{linked}"
    );
}

async fn an_address_of_a_local_account_is_refused_unless_linking_by_verified_email(
    backend: Backend,
) {
    let provider = OidcProvider::start();
    let app = app_with(&provider, backend).await;
    app.user("carol").await;
    let (status, body) = sign_in(&app, "carol").await;
    assert_eq!(
        (status, body),
        (400, json!({"detail": "OAUTH_USER_ALREADY_EXISTS"}))
    );

    // A server that links by verified address, to a verified account only.
    let linking = app_tweaked(&provider, backend, |settings| {
        settings.oauth.oauth_associate_by_email = true;
    })
    .await;
    let root = linking.root_token().await;
    let root_id = me(&linking, &root).await["id"].clone();
    let (status, tokens) = sign_in(&linking, "root").await;
    assert_eq!(status, 200, "{tokens}");
    let access = token_of(&tokens);
    assert_eq!(me(&linking, &access).await["id"], root_id);
    assert_eq!(identities(&linking, &access).await[0]["subject"], "root");
    // Root still has the password.
    assert_eq!(
        linking
            .login(userhub_tests::ROOT_EMAIL, userhub_tests::ROOT_PASSWORD)
            .await
            .status()
            .as_u16(),
        200
    );
    // Someone registered carol's address before her (unverified): her
    // provider sign-in never lands in that account.
    let squatter = linking.user("carol").await;
    let (status, body) = sign_in(&linking, "carol").await;
    assert_eq!(
        (status, body),
        (400, json!({"detail": "OAUTH_USER_ALREADY_EXISTS"}))
    );
    assert_eq!(identities(&linking, &squatter.access).await, json!([]));
    let dan = linking.user("unverified-dan").await;
    // An address the provider does not vouch for is never linked.
    let (status, body) = sign_in(&linking, "unverified-dan").await;
    assert_eq!(
        (status, body),
        (400, json!({"detail": "OAUTH_USER_ALREADY_EXISTS"}))
    );
    assert_eq!(
        identities(&linking, &dan.access).await,
        json!([]),
        "dan's account was not linked"
    );
}

async fn linking_while_signed_in_listing_and_unlinking(backend: Backend) {
    let provider = OidcProvider::start();
    let app = app_with(&provider, backend).await;
    let erin = app.user("erin").await;
    let frank = app.user("frank").await;
    let associate = format!("/api/auth/oauth/{PROVIDER}/associate/authorize");
    let associate_callback = format!("/api/auth/oauth/{PROVIDER}/associate/callback");

    // Needs a signed-in caller.
    let response = app.client.get(app.url(&associate)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);

    let started = authorize(&app, &associate, Some(&erin.access)).await;
    let redirect = sign_in_at_provider(&started.url, "erin-work").await;
    // Another user cannot complete erin's link.
    let (status, body) = callback(
        &app,
        &associate_callback,
        &redirect,
        Some(&started.cookie),
        Some(&frank.access),
    )
    .await;
    assert_eq!(
        (status, body),
        (400, json!({"detail": "OAUTH_INVALID_STATE"}))
    );

    let started = authorize(&app, &associate, Some(&erin.access)).await;
    let redirect = sign_in_at_provider(&started.url, "erin-work").await;
    // A link's state is no sign-in's.
    let (status, _) = callback(
        &app,
        &format!("/api/auth/oauth/{PROVIDER}/callback"),
        &redirect,
        Some(&started.cookie),
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, user) = link(&app, &erin.access, "erin-work").await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["id"], erin.id.as_str());
    let linked = identities(&app, &erin.access).await;
    assert_eq!(linked[0]["subject"], "erin-work");

    // The provider's account now signs erin in.
    let (status, tokens) = sign_in(&app, "erin-work").await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(me(&app, &token_of(&tokens)).await["id"], erin.id.as_str());

    // It is erin's: frank cannot link it too.
    let (status, _) = link(&app, &frank.access, "erin-work").await;
    assert_eq!(status, 409);
    assert_eq!(identities(&app, &frank.access).await, json!([]));

    // Erin has a password, so the identity may go; then it is gone.
    let path = format!("/api/auth/identities/{PROVIDER}");
    assert_eq!(app.delete(&path, &erin.access).await.status().as_u16(), 204);
    assert_eq!(identities(&app, &erin.access).await, json!([]));
    assert_eq!(app.delete(&path, &erin.access).await.status().as_u16(), 404);
    // The next sign-in as erin-work is a new account's.
    let (status, _) = sign_in(&app, "erin-work").await;
    assert_eq!(status, 200);
}

async fn linking_and_unlinking_spend_the_account_write_budget(backend: Backend) {
    let provider = OidcProvider::start();
    let app = app_tweaked(&provider, backend, |s| {
        s.accounts.user_write_limit_per_minute = 1;
    })
    .await;
    let erin = app.user("erin").await;
    let (status, body) = link(&app, &erin.access, "erin-work").await;
    assert_eq!(status, 200, "{body}");
    // The link spent the minute's one write: the unlink waits.
    let path = format!("/api/auth/identities/{PROVIDER}");
    let response = app.delete(&path, &erin.access).await;
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        identities(&app, &erin.access).await[0]["subject"],
        "erin-work"
    );
    // And so does a second link, before its state is looked at.
    let (status, _) = link(&app, &erin.access, "erin-other").await;
    assert_eq!(status, 429);
}

async fn a_state_is_bound_to_its_cookie_spent_once_and_expires(backend: Backend) {
    let provider = OidcProvider::start();
    let app = app_with(&provider, backend).await;
    let path = format!("/api/auth/oauth/{PROVIDER}/callback");
    let invalid = (400, json!({"detail": "OAUTH_INVALID_STATE"}));

    let started = authorize(&app, &format!("/api/auth/oauth/{PROVIDER}/authorize"), None).await;
    let other = authorize(&app, &format!("/api/auth/oauth/{PROVIDER}/authorize"), None).await;
    let redirect = sign_in_at_provider(&started.url, "grace").await;
    // No cookie, another browser's cookie, a tampered state.
    assert_eq!(callback(&app, &path, &redirect, None, None).await, invalid);
    assert_eq!(
        callback(&app, &path, &redirect, Some(&other.cookie), None).await,
        invalid
    );
    let mut tampered = Redirect {
        code: redirect.code.clone(),
        state: redirect.state.clone(),
    };
    let flipped = if tampered.state.starts_with('e') {
        "f"
    } else {
        "e"
    };
    tampered.state.replace_range(0..1, flipped);
    assert_eq!(
        callback(&app, &path, &tampered, Some(&started.cookie), None).await,
        invalid
    );
    // The right cookie: signed in, once.
    let (status, _) = callback(&app, &path, &redirect, Some(&started.cookie), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        callback(&app, &path, &redirect, Some(&started.cookie), None).await,
        invalid
    );
    // An unknown provider.
    let response = app
        .client
        .get(app.url("/api/auth/oauth/nobody/authorize"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    // Missing parameters are the usual 422.
    let response = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 422);

    // A state that outlived its time.
    let short = app_tweaked(&provider, backend, |settings| {
        settings.oauth.oauth_state_ttl_seconds = userhub_server::Span(1);
    })
    .await;
    let started = authorize(
        &short,
        &format!("/api/auth/oauth/{PROVIDER}/authorize"),
        None,
    )
    .await;
    let redirect = sign_in_at_provider(&started.url, "grace").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        callback(&short, &path, &redirect, Some(&started.cookie), None).await,
        invalid
    );
}

async fn an_id_token_with_another_nonce_or_key_is_refused(backend: Backend) {
    let provider = OidcProvider::start();
    let app = app_with(&provider, backend).await;
    let path = format!("/api/auth/oauth/{PROVIDER}/callback");

    // The browser's request names another nonce: the provider signs it
    // into the ID token, and UserHub refuses it.
    let started = authorize(&app, &format!("/api/auth/oauth/{PROVIDER}/authorize"), None).await;
    let mut url = reqwest::Url::parse(&started.url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "nonce" {
                "forged".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let redirect = sign_in_at_provider(url.as_str(), "heidi").await;
    assert_eq!(
        callback(&app, &path, &redirect, Some(&started.cookie), None).await,
        (400, json!({"detail": "OAUTH_INVALID_STATE"}))
    );

    // A provider that signs with a key its published set does not hold.
    let started = authorize(&app, &format!("/api/auth/oauth/{PROVIDER}/authorize"), None).await;
    provider.set_rogue(true).await;
    let redirect = sign_in_at_provider(&started.url, "heidi").await;
    assert_eq!(
        callback(&app, &path, &redirect, Some(&started.cookie), None).await,
        (400, json!({"detail": "OAUTH_INVALID_ID_TOKEN"}))
    );
    provider.set_rogue(false).await;
    let (status, body) = sign_in(&app, "heidi").await;
    assert_eq!(status, 200, "{body}");

    // A provider that rotated its keys: the token names a key the cached
    // set lacks, the set is fetched again, and the sign-in goes through.
    // (A fresh server: the first already fetched the set again for the
    // foreign key, and does so at most every 30 seconds.)
    let fresh = app_with(&provider, backend).await;
    let (status, body) = sign_in(&fresh, "heidi").await;
    assert_eq!(status, 200, "{body}");
    provider.rotate_keys().await;
    let (status, body) = sign_in(&fresh, "heidi").await;
    assert_eq!(status, 200, "{body}");
}

async fn an_unreachable_provider_is_503(backend: Backend) {
    // Nothing listens at the issuer: discovery fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let db = TestDatabase::create(backend).await;
    let url = db.url.clone();
    let app = spawn_app_on(db, url, |settings| configure(settings, &issuer)).await;
    let response = app
        .client
        .get(app.url(&format!("/api/auth/oauth/{PROVIDER}/authorize")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));

    // A provider that goes away between the redirect and the callback.
    let mut provider = OidcProvider::start();
    let app = app_with(&provider, backend).await;
    let started = authorize(&app, &format!("/api/auth/oauth/{PROVIDER}/authorize"), None).await;
    let redirect = sign_in_at_provider(&started.url, "ivan").await;
    provider.stop();
    let (status, body) = callback(
        &app,
        &format!("/api/auth/oauth/{PROVIDER}/callback"),
        &redirect,
        Some(&started.cookie),
        None,
    )
    .await;
    assert_eq!(status, 503, "{body}");
}

async fn the_second_factor_applies_after_a_provider_sign_in(backend: Backend) {
    let provider = OidcProvider::start();
    let app = app_with(&provider, backend).await;
    let judy: TestUser = app.user("judy").await;
    // Judy links her provider account, then turns TOTP on.
    let started = authorize(
        &app,
        &format!("/api/auth/oauth/{PROVIDER}/associate/authorize"),
        Some(&judy.access),
    )
    .await;
    let redirect = sign_in_at_provider(&started.url, "judy-idp").await;
    let (status, _) = callback(
        &app,
        &format!("/api/auth/oauth/{PROVIDER}/associate/callback"),
        &redirect,
        Some(&started.cookie),
        Some(&judy.access),
    )
    .await;
    assert_eq!(status, 200);
    let enrolment: Value = app
        .post(
            "/api/auth/mfa/totp",
            &json!({"current_password": PASSWORD}),
            Some(&judy.access),
        )
        .await
        .json()
        .await
        .unwrap();
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    if userhub_tests::totp::seconds_left_in_step() < 4 {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
    let response = app
        .post(
            "/api/auth/mfa/totp/confirm",
            &json!({"code": code(&secret, 0)}),
            Some(&judy.access),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);

    // The provider's sign-in is only the first factor.
    let (status, body) = sign_in(&app, "judy-idp").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "mfa_required");
    let mfa_token = body["mfa_token"].as_str().unwrap();
    if userhub_tests::totp::seconds_left_in_step() < 4 {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
    // The step of the confirmation is spent; the next one is not.
    let response = app
        .post(
            "/api/auth/login/mfa",
            &json!({"mfa_token": mfa_token, "code": code(&secret, 1)}),
            None,
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(me(&app, &token_of(&tokens)).await["id"], judy.id.as_str());
    // The session began at the provider: no password is claimed.
    assert_eq!(amr(&token_of(&tokens)), json!(["fed", "otp"]));
}

async fn an_account_without_a_password_sets_one_through_forgot_password(backend: Backend) {
    let provider = OidcProvider::start();
    let smtp = SmtpServer::started();
    let port = smtp.port;
    let app = app_tweaked(&provider, backend, move |s| {
        s.mail.smtp_host = "127.0.0.1".into();
        s.mail.smtp_port = Some(port);
        s.mail.smtp_tls = userhub_server::SmtpTlsSetting::None;
        s.server.public_url = "https://app.example.com".into();
    })
    .await;
    let (status, tokens) = sign_in(&app, "kim").await;
    assert_eq!(status, 200, "{tokens}");
    let response = app
        .post(
            "/api/auth/forgot-password",
            &json!({"email": "kim@example.com"}),
            None,
        )
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let mail = smtp.wait_for_links("/reset-password", 1).await;
    let token = link_token(&mail[0], "/reset-password");
    let response = app
        .post(
            "/api/auth/reset-password",
            &json!({"token": token, "new_password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(response.status().as_u16(), 204);
    let login = app.login("kim", PASSWORD).await;
    assert_eq!(login.status().as_u16(), 200);
    // With a password, the identity is no longer the only way in.
    let access = token_of(&login.json().await.unwrap());
    let path = format!("/api/auth/identities/{PROVIDER}");
    assert_eq!(app.delete(&path, &access).await.status().as_u16(), 204);
}
