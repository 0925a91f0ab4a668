//! A real SMTP server for the mail tests: aiosmtpd, storing what it
//! receives in a Maildir that the tests read.
//!
//! The Python with aiosmtpd installed comes from `USERHUB_TEST_SMTP_PYTHON`
//! (`scripts/test.sh` installs it into a venv and sets it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One aiosmtpd process on a port of its own, stopped when dropped.
pub struct SmtpServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

pub(crate) fn python() -> String {
    std::env::var("USERHUB_TEST_SMTP_PYTHON").unwrap_or_else(|_| {
        panic!(
            "the mail, TOTP and webhook tests need aiosmtpd, pyotp and standardwebhooks: run them through \
             ./scripts/test.sh, or set USERHUB_TEST_SMTP_PYTHON to a python that has them \
             (pip install -r tests/smtp/requirements.txt)"
        )
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpServer {
    /// A server that is not started yet: its port is chosen, nothing
    /// listens on it until [`SmtpServer::start`].
    #[must_use]
    pub fn reserve() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("userhub-smtp-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self {
            port,
            dir,
            child: None,
        }
    }

    /// A started server.
    #[must_use]
    pub fn started() -> Self {
        let mut server = Self::reserve();
        server.start();
        server
    }

    /// Starts aiosmtpd and waits until it accepts connections.
    pub fn start(&mut self) {
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting aiosmtpd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every message received so far, raw, oldest first.
    #[must_use]
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("new")) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap(), e.path()))
            .collect();
        files.sort();
        files
            .iter()
            .map(|(_, path)| std::fs::read_to_string(path).unwrap())
            .collect()
    }

    /// Waits (up to 20 s) until `count` messages have arrived, and returns them.
    pub async fn wait_for(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{} message(s) arrived, not {count}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The messages received so far whose text links to `path` (e.g.
    /// `/reset-password`), oldest first.
    #[must_use]
    pub fn links_to(&self, path: &str) -> Vec<String> {
        let marker = format!("{path}?token=");
        self.messages()
            .into_iter()
            .filter(|m| decoded_text(m).contains(&marker))
            .collect()
    }

    /// Waits (up to 20 s) until `count` messages link to `path`, and
    /// returns them, oldest first.
    pub async fn wait_for_links(&self, path: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let messages = self.links_to(path);
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{} message(s) link to {path}, not {count}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where the messages are stored.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The message's text, with its transfer encoding (quoted-printable or
/// base64) undone, so that a link can be searched for.
#[must_use]
pub fn decoded_text(raw: &str) -> String {
    use base64::Engine;
    let mut out = String::new();
    for part in raw.split("\n--") {
        let (head, body) = part
            .split_once("\r\n\r\n")
            .or_else(|| part.split_once("\n\n"))
            .unwrap_or(("", part));
        let head = head.to_ascii_lowercase();
        if head.contains("content-transfer-encoding: base64") {
            let compact: String = body
                .lines()
                .take_while(|l| !l.starts_with("--"))
                .collect::<String>()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(compact) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        } else if head.contains("content-transfer-encoding: quoted-printable") {
            out.push_str(&decode_quoted_printable(body));
        } else {
            out.push_str(body);
        }
        out.push('\n');
    }
    out
}

fn decode_quoted_printable(body: &str) -> String {
    let joined = body.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The token of the first `…/<path>?token=…` link in a message.
#[must_use]
pub fn link_token(raw: &str, path: &str) -> String {
    let text = decoded_text(raw);
    let marker = format!("{path}?token=");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker} link in:\n{text}"))
        + marker.len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// The `To:` header's address.
#[must_use]
pub fn recipient(raw: &str) -> String {
    raw.lines()
        .find_map(|l| l.strip_prefix("To: "))
        .unwrap_or_default()
        .trim()
        .to_owned()
}
