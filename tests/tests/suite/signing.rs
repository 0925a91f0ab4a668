//! Asymmetric access tokens and the published JWK Set.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use userhub_tests::{Backend, PASSWORD, TestApp, TestDatabase, TestUser, spawn_app, spawn_app_on};

on_both_backends!(
    hs256_publishes_no_key,
    rs256_tokens_verify_with_the_published_key_and_refuse_algorithm_confusion,
    eddsa_tokens_verify_with_the_published_key,
);

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn app_signing_with(backend: Backend, algorithm: &str, key: &str) -> TestApp {
    let db = TestDatabase::create(backend).await;
    let url = db.url.clone();
    let (algorithm, key) = (algorithm.to_owned(), key.to_owned());
    spawn_app_on(db, url, move |s| {
        s.tokens.jwt_algorithm = algorithm.parse().expect("a known algorithm");
        s.tokens.jwt_private_key_file = Some(fixture(&format!("{key}-private.pem")));
        s.tokens.jwt_public_key_file = Some(fixture(&format!("{key}-public.pem")));
    })
    .await
}

async fn jwks(app: &TestApp) -> JwkSet {
    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    response.json().await.unwrap()
}

/// Checks the token against the published key set, as another service would.
fn verify_with(jwks: &JwkSet, token: &str, alg: Algorithm) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, alg);
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("the token's kid is published");
    let mut validation = Validation::new(alg);
    validation.set_audience(&["userhub-api"]);
    validation.set_issuer(&["userhub"]);
    let claims =
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap();
    assert_eq!(claims.claims["typ"], "access");
}

async fn hs256_publishes_no_key(backend: Backend) {
    let app = spawn_app(backend).await;
    assert!(jwks(&app).await.keys.is_empty());
}

async fn rs256_tokens_verify_with_the_published_key_and_refuse_algorithm_confusion(
    backend: Backend,
) {
    let app = app_signing_with(backend, "RS256", "rsa").await;
    let TestUser {
        access, refresh, ..
    } = app.user("ada").await;
    assert_eq!(app.get("/api/auth/me", &access).await.status(), 200);
    let keys = jwks(&app).await;
    assert_eq!(keys.keys.len(), 1);
    verify_with(&keys, &access, Algorithm::RS256);
    let refreshed = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": refresh}),
            None,
        )
        .await;
    assert_eq!(refreshed.status(), 200);

    // HS256 "signed" with the public key, the classic RS/HS confusion.
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(access.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let public_pem = std::fs::read(fixture("rsa-public.pem")).unwrap();
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &payload,
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    assert_eq!(app.get("/api/auth/me", &confused).await.status(), 401);
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        access.split('.').nth(1).unwrap()
    );
    assert_eq!(app.get("/api/auth/me", &unsigned).await.status(), 401);
    assert_eq!(app.login("ada", PASSWORD).await.status(), 200);
}

async fn eddsa_tokens_verify_with_the_published_key(backend: Backend) {
    let app = app_signing_with(backend, "EdDSA", "ed25519").await;
    let TestUser { access, .. } = app.user("ada").await;
    assert_eq!(app.get("/api/auth/me", &access).await.status(), 200);
    let keys = jwks(&app).await;
    let raw: Value = serde_json::to_value(&keys).unwrap();
    assert_eq!(
        (
            raw["keys"][0]["kty"].as_str(),
            raw["keys"][0]["crv"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"))
    );
    verify_with(&keys, &access, Algorithm::EdDSA);
}
