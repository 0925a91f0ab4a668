//! [`WebhookSender`]: deliveries posted with `reqwest`, signed as the
//! Standard Webhooks specification says, and kept off private networks.
//!
//! Server-side request forgery: the client resolves names through
//! [`PublicOnly`], which refuses a name if any of its addresses is not
//! public, and connects to the addresses it checked (so a second lookup
//! cannot switch them); an address written in the URL is checked before
//! anything is sent. Redirects are not followed, proxies from the
//! environment are not used, an attempt ends after 10 seconds and at most
//! 64 KiB of an answer is read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use secrecy::SecretString;
use sha2::Sha256;
use userhub_domain::PortError;
use userhub_domain::model::{Endpoint, SendResult, WebhookMessage, WebhookSecret, WebhookUrl};
use userhub_domain::ports::WebhookSender;

/// How long an attempt may take, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of an answer read.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// How long a name may take to resolve when an endpoint is saved.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Random bytes per signing secret.
const SECRET_BYTES: usize = 32;

/// Renders a delivery's body (the API's JSON shapes live in the HTTP adapter).
pub type RenderBody = Arc<dyn Fn(&WebhookMessage) -> String + Send + Sync>;

/// Posts deliveries.
#[derive(Clone)]
pub struct HttpWebhookSender {
    client: reqwest::Client,
    allow_private: bool,
    render: RenderBody,
}

impl std::fmt::Debug for HttpWebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpWebhookSender")
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

impl HttpWebhookSender {
    /// A sender rendering bodies with `render`; `allow_private` lets
    /// deliveries reach loopback and private addresses (development).
    ///
    /// # Errors
    /// The HTTP client could not be built.
    pub fn new(allow_private: bool, render: RenderBody) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ATTEMPT_TIMEOUT)
            .no_proxy()
            .dns_resolver(Arc::new(PublicOnly { allow_private }))
            .user_agent(concat!("UserHub-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| err.to_string())?;
        Ok(Self {
            client,
            allow_private,
            render,
        })
    }

    /// Why an address written in a URL may not be reached, if it may not.
    fn refuse_literal(&self, url: &WebhookUrl) -> Option<String> {
        let ip = match url.url().host()? {
            url::Host::Ipv4(ip) => IpAddr::V4(ip),
            url::Host::Ipv6(ip) => IpAddr::V6(ip),
            url::Host::Domain(_) => return None,
        };
        (!self.allow_private && !is_public(ip)).then(|| format!("{ip} is not a public address"))
    }
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under each secret,
/// space-separated. A secret is `whsec_` and base64 of its key bytes.
///
/// # Errors
/// A secret that is not in that format.
pub fn signature(
    secrets: &[WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, String> {
    let mut signatures = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let encoded = secret
            .expose()
            .strip_prefix("whsec_")
            .ok_or("a signing secret without its whsec_ prefix")?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| "a signing secret that is not base64")?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|err| err.to_string())?;
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        signatures.push(format!(
            "v1,{}",
            STANDARD.encode(mac.finalize().into_bytes())
        ));
    }
    Ok(signatures.join(" "))
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn check(&self, url: &WebhookUrl) -> Result<(), String> {
        if let Some(why) = self.refuse_literal(url) {
            return Err(why);
        }
        let Some(url::Host::Domain(host)) = url.url().host() else {
            return Ok(());
        };
        let port = url.url().port_or_known_default().unwrap_or(443);
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port)));
        let addrs: Vec<SocketAddr> = lookup
            .await
            .map_err(|_| format!("{host} did not resolve in time"))?
            .map_err(|_| format!("{host} does not resolve"))?
            .collect();
        vet(host, addrs, self.allow_private).map(drop)
    }

    fn new_secret(&self) -> Result<WebhookSecret, PortError> {
        let mut key = [0_u8; SECRET_BYTES];
        getrandom::fill(&mut key).map_err(PortError::unexpected)?;
        Ok(WebhookSecret::new(SecretString::from(format!(
            "whsec_{}",
            STANDARD.encode(key)
        ))))
    }

    async fn send(&self, endpoint: &Endpoint, message: &WebhookMessage) -> SendResult {
        let started = Instant::now();
        let result = |status: Option<u16>, error: Option<String>| SendResult {
            status,
            error,
            duration_ms: u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
        };
        if let Some(why) = self.refuse_literal(&endpoint.url) {
            return result(None, Some(why));
        }
        let body = (self.render)(message);
        let id = message.event.id.to_string();
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = match signature(&endpoint.secrets, &id, timestamp, &body) {
            Ok(signature) => signature,
            Err(why) => return result(None, Some(why)),
        };
        let sent = self
            .client
            .post(endpoint.url.url().clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(err) => return result(None, Some(describe(&err))),
        };
        let status = response.status().as_u16();
        // The answer is read (to reuse the connection), up to a bound.
        let mut read = 0;
        let mut error = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len();
                    if read > MAX_ANSWER_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    error = Some(describe(&err));
                    break;
                }
            }
        }
        if !(200..300).contains(&status) {
            error = Some(format!("HTTP {status}"));
        }
        result(Some(status), error)
    }
}

/// A short account of a failed request: its kind and the innermost cause.
fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut cause: &dyn std::error::Error = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    format!("{kind}: {cause}")
}

/// Resolves names for the client, refusing any name with a non-public
/// address (unless private networks are allowed).
#[derive(Clone, Copy, Debug)]
struct PublicOnly {
    allow_private: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addrs = vet(&host, addrs, allow_private)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// `addrs`, if there are some and all are public (or private ones are
/// allowed).
fn vet(host: &str, addrs: Vec<SocketAddr>, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    if addrs.is_empty() {
        return Err(format!("{host} does not resolve"));
    }
    if let Some(private) = addrs.iter().find(|a| !allow_private && !is_public(a.ip())) {
        return Err(format!(
            "{host} resolves to {}, not a public address",
            private.ip()
        ));
    }
    Ok(addrs)
}

/// Whether `ip` is a public unicast address: not loopback, private,
/// link-local, shared, documentation, benchmarking, multicast, reserved
/// or unspecified (an IPv4 address inside IPv6 is judged as IPv4).
#[must_use]
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 192 && b == 0 && c == 0))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            if nat64 {
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                return is_public(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00
                || (segments[0] & 0xffc0) == 0xfe80
                || (segments[0] == 0x2001 && segments[1] == 0x0db8)
                || segments[..6] == [0, 0, 0, 0, 0, 0])
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn a_name_with_one_private_address_is_refused() {
        let public: SocketAddr = "93.184.216.34:443".parse().unwrap();
        let private: SocketAddr = "10.0.0.1:443".parse().unwrap();
        assert!(vet("h", vec![public], false).is_ok());
        assert!(
            vet("h", vec![public, private], false)
                .unwrap_err()
                .contains("10.0.0.1")
        );
        assert!(vet("h", vec![private], true).is_ok());
        assert!(vet("h", vec![], true).is_err());
    }

    /// The check at each delivery: a name that resolves to a loopback
    /// address now (whatever it resolved to when the endpoint was made)
    /// is never connected to.
    #[tokio::test]
    async fn a_delivery_to_a_private_address_never_connects() {
        use userhub_domain::model::{AuditEvent, AuditKind, ClientInfo, WebhookId};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let strict = HttpWebhookSender::new(false, Arc::new(|_| "{}".into())).unwrap();
        let message = WebhookMessage {
            event: AuditEvent::new(
                AuditKind::UserRegistered,
                time::OffsetDateTime::now_utc(),
                &ClientInfo::default(),
            ),
            user: None,
        };
        for url in [
            format!("http://localhost:{port}/hook"),
            format!("http://127.0.0.1:{port}/hook"),
        ] {
            let endpoint = Endpoint {
                id: WebhookId::generate(),
                url: WebhookUrl::parse(&url, true).unwrap(),
                secrets: vec![strict.new_secret().unwrap()],
                failing_since: None,
            };
            let result = strict.send(&endpoint, &message).await;
            assert_eq!(result.status, None, "{url}");
            assert!(
                result
                    .error
                    .as_deref()
                    .unwrap()
                    .contains("not a public address"),
                "{result:?}"
            );
        }
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "nothing connected");
    }

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The specification's example: secret, id, timestamp and body.
        let secret = WebhookSecret::new(SecretString::from(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
        ));
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(
                &[secret],
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                body
            )
            .unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[tokio::test]
    async fn loopback_names_are_refused_unless_allowed() {
        let strict = HttpWebhookSender::new(false, Arc::new(|_| String::new())).unwrap();
        let url = WebhookUrl::parse("http://localhost:9/", true).unwrap();
        assert!(
            strict
                .check(&url)
                .await
                .unwrap_err()
                .contains("not a public address")
        );
        let url = WebhookUrl::parse("http://127.0.0.1:9/", true).unwrap();
        assert!(strict.check(&url).await.is_err());
        let open = HttpWebhookSender::new(true, Arc::new(|_| String::new())).unwrap();
        assert!(open.check(&url).await.is_ok());
    }
}
