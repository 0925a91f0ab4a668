//! The browser console's files at `/admin/`: served from the binary under
//! its Content-Security-Policy, off with `ADMIN_CONSOLE=false`, and the
//! page a provider's redirect lands on. The console itself runs in
//! Chromium (scripts/browser-test.sh).

use userhub_tests::{Backend, spawn_app, spawn_app_with};

const POLICY: &str = "default-src 'self'; frame-ancestors 'none'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_from_the_binary_under_its_policy() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in ["/admin/", "/admin"] {
        let page = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(page.headers()["content-security-policy"], POLICY);
        assert_eq!(page.headers()["x-frame-options"], "DENY");
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = page.text().await.unwrap();
        assert!(html.contains(r#"<script type="module" src="/admin/main.js">"#));
    }
    let script = app
        .client
        .get(app.url("/admin/main.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(script.headers()["content-security-policy"], POLICY);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let etag = script.headers()["etag"].clone();
    let again = app
        .client
        .get(app.url("/admin/main.js"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let config: serde_json::Value = app
        .client
        .get(app.url("/admin/config.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config, serde_json::json!({"providers": []}));
    for missing in ["/admin/nothing.js", "/admin/../Cargo.toml", "/admin/vendor"] {
        let response = app.client.get(app.url(missing)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{missing}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_console_false_turns_it_off() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.server.admin_console = false).await;
    for path in ["/admin/", "/admin/main.js", "/admin/config.json"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_ne!(response.headers()["content-security-policy"], POLICY);
    }
    // A provider's redirect gets the API's answer, as without a console.
    let landing = app
        .client
        .get(app.url("/api/auth/oauth/corp/callback?code=c&state=s"))
        .header("sec-fetch-mode", "navigate")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(landing.status(), 404);
    assert!(
        landing.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("json")
    );
}

/// A browser the provider sends back to the API's callback gets the
/// console's page, which finishes the sign-in by calling the same URL for
/// JSON; scripts calling it get JSON as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_redirect_in_a_browser_lands_on_the_console() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in [
        "/api/auth/oauth/corp/callback?code=c&state=s",
        "/api/auth/oauth/corp/associate/callback?code=c&state=s",
    ] {
        let page = app
            .client
            .get(app.url(path))
            .header("sec-fetch-mode", "navigate")
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(page.headers()["content-security-policy"], POLICY);
        assert_eq!(page.headers()["cache-control"], "no-store");
        assert!(page.text().await.unwrap().contains("/admin/main.js"));
        let script = app
            .client
            .get(app.url(path))
            .header("sec-fetch-mode", "cors")
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_ne!(script.status(), 200, "{path}");
        assert!(
            script.headers()["content-type"]
                .to_str()
                .unwrap()
                .contains("json")
        );
    }
}
