//! A real webhook receiver for the tests: `tests/webhooks/receiver.py`,
//! which verifies every delivery with the `standardwebhooks` library.
//! Its Python comes from `USERHUB_TEST_SMTP_PYTHON` (the tests' venv).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One receiver process on a port of its own, stopped when dropped.
pub struct Receiver {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    child: Child,
}

impl Receiver {
    /// A started receiver.
    #[must_use]
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port)
    }

    /// A receiver on `port` (to bring one back where it was).
    #[must_use]
    pub fn start_on(port: u16) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/webhooks/receiver.py");
        let child = Command::new(crate::smtp::python())
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the webhook receiver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the webhook receiver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { port, child }
    }

    /// Its URL, for a webhook.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Sets what it verifies with and how it answers (see the script).
    pub async fn control(&self, settings: Value) {
        let status = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/_control", self.port))
            .json(&settings)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 204);
    }

    /// Verifies with `secrets` from now on.
    pub async fn verify_with(&self, secrets: &[&str]) {
        self.control(json!({ "secrets": secrets })).await;
    }

    /// Every delivery received so far, oldest first.
    pub async fn received(&self) -> Vec<Value> {
        reqwest::get(format!("http://127.0.0.1:{}/_received", self.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until `done` holds of what was received, or `within` passed;
    /// what was received then.
    pub async fn wait_for(&self, within: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received().await;
            if done(&got) || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops it (the port is free again).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}
