//! A real, certified OpenID provider for the sign-in tests: `oidc-provider`
//! (Node.js) started from `tests/oidc/provider.mjs` on a free port, and a
//! browser (a client with its own cookie jar) that goes through its login
//! and consent pages.
//!
//! `scripts/test.sh` installs the provider's packages and sets
//! `USERHUB_TEST_OIDC_PROVIDER` to the script.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::redirect::Policy;
use serde_json::Value;
use userhub_server::{DEFAULT_SCOPES, OAuthProvider, Settings};

/// Where the provider sends browsers back to; nothing serves it: the test
/// reads the redirect and forwards `code` and `state`, as a front end does.
pub const REDIRECT_BASE: &str = "http://app.test";
/// UserHub's client id at the provider.
pub const CLIENT_ID: &str = "userhub";
/// Its client secret.
pub const CLIENT_SECRET: &str = "userhub-test-secret";
/// The provider's name in UserHub's settings and paths.
pub const PROVIDER: &str = "test";

/// One provider process, stopped when dropped.
pub struct OidcProvider {
    /// Its issuer, `http://127.0.0.1:<port>`.
    pub issuer: String,
    child: Child,
}

fn script() -> String {
    std::env::var("USERHUB_TEST_OIDC_PROVIDER").unwrap_or_else(|_| {
        panic!(
            "the sign-in tests need oidc-provider: run them through ./scripts/test.sh, or run \
             `npm ci` in tests/oidc and set USERHUB_TEST_OIDC_PROVIDER=$PWD/tests/oidc/provider.mjs"
        )
    })
}

impl OidcProvider {
    /// Starts the provider and waits until it serves.
    #[must_use]
    pub fn start() -> Self {
        let mut child = Command::new("node")
            .arg(script())
            .args([REDIRECT_BASE, CLIENT_ID, CLIENT_SECRET])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting node");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("the provider's first line");
        // Whatever else it prints is read, so that it never writes to a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|err| panic!("the provider did not start ({err}): {line:?}"));
        Self {
            issuer: ready["issuer"].as_str().expect("issuer").to_owned(),
            child,
        }
    }

    /// UserHub's settings for this provider, as provider [`PROVIDER`].
    pub fn configure(&self, settings: &mut Settings) {
        configure(settings, &self.issuer);
    }

    /// Makes a second provider with the same issuer but other signing keys
    /// answer everything but the key set (`on`), or stops it.
    pub async fn set_rogue(&self, on: bool) {
        self.switch(&format!("on={}", u8::from(on))).await;
    }

    /// Makes the provider sign with new keys and publish them: a rotation.
    pub async fn rotate_keys(&self) {
        self.switch("on=1&keys=1").await;
    }

    async fn switch(&self, query: &str) {
        let status = reqwest::Client::new()
            .post(format!("{}/__test/rogue?{query}", self.issuer))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 204);
    }

    /// Stops the provider: it no longer answers.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// UserHub's settings for a provider [`PROVIDER`] at `issuer`.
pub fn configure(settings: &mut Settings, issuer: &str) {
    settings.oauth_providers = vec![OAuthProvider {
        name: PROVIDER.into(),
        issuer: issuer.into(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.to_owned().into(),
        scopes: DEFAULT_SCOPES.into(),
    }];
    settings.oauth.oauth_redirect_base_url = REDIRECT_BASE.into();
}

/// What the provider sent back to the redirect URI.
#[derive(Debug)]
pub struct Redirect {
    /// The authorization code.
    pub code: String,
    /// The `state`, as UserHub made it.
    pub state: String,
}

/// A browser that opens `authorization_url`, signs in at the provider as
/// `account` and consents; the redirect back to UserHub's callback.
pub async fn sign_in_at_provider(authorization_url: &str, account: &str) -> Redirect {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::custom(|attempt| {
            if attempt.url().host_str() == Some("app.test") {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }))
        .build()
        .unwrap();
    let mut response = browser.get(authorization_url).send().await.unwrap();
    for _ in 0..4 {
        if response.status().is_redirection() {
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            let url = reqwest::Url::parse(&location).unwrap();
            let query = |name: &str| {
                url.query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_else(|| panic!("no {name} in {location}"))
            };
            return Redirect {
                code: query("code"),
                state: query("state"),
            };
        }
        let page = response.url().clone();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status.as_u16(), 200, "the provider's page {page}: {body}");
        response = match body["prompt"].as_str() {
            Some("login") => browser
                .post(format!("{page}/login"))
                .form(&[("login", account)])
                .send()
                .await
                .unwrap(),
            Some("consent") => browser
                .post(format!("{page}/confirm"))
                .send()
                .await
                .unwrap(),
            _ => panic!("unexpected page {page}: {body}"),
        };
    }
    panic!("the provider never sent the browser back");
}
