//! Webhooks: endpoints that hear about the audit trail's events, and the
//! deliveries of those events to them.

use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

use super::{AuditEvent, AuditKind, DeliveryId, User, WebhookId};

/// Longest accepted URL, in bytes.
pub const MAX_WEBHOOK_URL_LEN: usize = 2048;
/// Longest accepted description, in characters.
pub const MAX_WEBHOOK_DESCRIPTION_LEN: usize = 200;
/// How long a rotated-out secret still signs, so receivers can switch.
pub const PREVIOUS_SECRET_OVERLAP: Duration = Duration::hours(24);

/// An endpoint's URL: `https://` (or `http://` where allowed), a host,
/// no user name or password (they would show in every listing and log)
/// and no fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookUrl {
    url: url::Url,
}

impl WebhookUrl {
    /// Validates `raw`; `allow_http` admits plain `http://` (outside
    /// production).
    ///
    /// # Errors
    /// What is wrong with it, in words.
    pub fn parse(raw: &str, allow_http: bool) -> Result<Self, &'static str> {
        if raw.len() > MAX_WEBHOOK_URL_LEN {
            return Err("URL longer than 2048 characters");
        }
        let url = url::Url::parse(raw).map_err(|_| "not an absolute URL")?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => return Err("URL must use https://"),
            _ => return Err("URL must use https:// or http://"),
        }
        if url.host().is_none() {
            return Err("URL has no host");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("URL must not hold a user name or password");
        }
        if url.fragment().is_some() {
            return Err("URL must not have a fragment");
        }
        Ok(Self { url })
    }

    /// Wraps a URL read from storage (validated when it was stored).
    ///
    /// # Errors
    /// It does not parse.
    pub fn stored(raw: &str) -> Result<Self, &'static str> {
        url::Url::parse(raw)
            .map(|url| Self { url })
            .map_err(|_| "not an absolute URL")
    }

    /// The URL as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The parsed URL.
    #[must_use]
    pub const fn url(&self) -> &url::Url {
        &self.url
    }
}

/// Which events an endpoint hears about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventFilter {
    /// Every deliverable event (`["*"]`).
    All,
    /// These types only (never empty, no duplicates, all deliverable).
    Only(Vec<AuditKind>),
}

impl EventFilter {
    /// The filter of the names a request gave.
    ///
    /// # Errors
    /// An empty list, `*` with other names, or a name that is no
    /// deliverable event type (webhook events never are).
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        if names.is_empty() {
            return Err("at least one event type, or \"*\"".into());
        }
        if names.iter().any(|n| n.as_ref() == "*") {
            return if names.len() == 1 {
                Ok(Self::All)
            } else {
                Err("\"*\" stands alone".into())
            };
        }
        let mut kinds = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            let kind = AuditKind::parse(name)
                .filter(|kind| kind.is_deliverable())
                .ok_or_else(|| format!("unknown event type {name:?}"))?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        Ok(Self::Only(kinds))
    }

    /// The names, as shown: `["*"]` or the types in the order given.
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        match self {
            Self::All => vec!["*"],
            Self::Only(kinds) => kinds.iter().map(|k| k.as_str()).collect(),
        }
    }

    /// Whether an event of `kind` goes to an endpoint with this filter.
    #[must_use]
    pub fn matches(&self, kind: AuditKind) -> bool {
        kind.is_deliverable()
            && match self {
                Self::All => true,
                Self::Only(kinds) => kinds.contains(&kind),
            }
    }
}

/// A free-text note on an endpoint: at most 200 characters, no control
/// characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookDescription(String);

impl WebhookDescription {
    /// Validates `raw`.
    ///
    /// # Errors
    /// What is wrong with it, in words.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.chars().any(char::is_control) {
            return Err("description holds a control character");
        }
        if raw.chars().count() > MAX_WEBHOOK_DESCRIPTION_LEN {
            return Err("description longer than 200 characters");
        }
        Ok(Self(raw.to_owned()))
    }

    /// The description as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A signing secret, `whsec_` and base64 of random bytes, as the Standard
/// Webhooks libraries take it.
#[derive(Clone, Debug)]
pub struct WebhookSecret(SecretString);

impl WebhookSecret {
    /// Wraps a secret's text.
    #[must_use]
    pub const fn new(secret: SecretString) -> Self {
        Self(secret)
    }

    /// The secret's text.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// An endpoint as superusers see it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: WebhookId,
    /// Where deliveries go.
    pub url: WebhookUrl,
    /// Which events.
    pub events: EventFilter,
    /// A note.
    pub description: Option<WebhookDescription>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// Why the server turned it off, if it did.
    pub disabled_reason: Option<String>,
}

/// A change to an endpoint: the fields given, nothing else.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookChange {
    /// A new URL.
    pub url: Option<WebhookUrl>,
    /// A new filter.
    pub events: Option<EventFilter>,
    /// A new description (`Some(None)` clears it).
    pub description: Option<Option<WebhookDescription>>,
    /// On or off; turning it on clears `disabled_reason`.
    pub enabled: Option<bool>,
}

impl WebhookChange {
    /// The names of the fields it sets, for the audit trail.
    #[must_use]
    pub fn fields(&self) -> Vec<String> {
        [
            ("url", self.url.is_some()),
            ("events", self.events.is_some()),
            ("description", self.description.is_some()),
            ("enabled", self.enabled.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| name.to_owned())
        .collect()
    }
}

named! {
    /// Where a delivery stands.
    #[allow(missing_docs)]
    pub enum DeliveryStatus {
        Pending = "pending",
        Delivered = "delivered",
        Failed = "failed",
    }
}

/// One event's delivery to one endpoint, as the API lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Its id.
    pub id: DeliveryId,
    /// The event (the `webhook-id` every attempt sends).
    pub event_id: uuid::Uuid,
    /// The event's type.
    pub kind: AuditKind,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// The HTTP status of the last attempt, if one came back.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When a 2xx came back.
    pub delivered_at: Option<OffsetDateTime>,
}

/// One attempt, kept with its delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// When it was sent.
    pub at: OffsetDateTime,
    /// The HTTP status, if one came back.
    pub status: Option<u16>,
    /// Why it failed.
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: u32,
}

/// An endpoint the delivery worker holds for a while: its URL and the
/// secrets that sign (the previous one only while it overlaps).
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Its id.
    pub id: WebhookId,
    /// Where deliveries go.
    pub url: WebhookUrl,
    /// The secrets that sign, current first.
    pub secrets: Vec<WebhookSecret>,
    /// Since when its deliveries have failed without a success between.
    pub failing_since: Option<OffsetDateTime>,
}

/// A due delivery, with its event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueDelivery {
    /// Its id.
    pub id: DeliveryId,
    /// The event.
    pub event: AuditEvent,
    /// Attempts made so far.
    pub attempts: u32,
}

/// What is sent: the event and its subject as they are now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookMessage {
    /// The event.
    pub event: AuditEvent,
    /// The user it is about, if any (and still there).
    pub user: Option<User>,
}

/// What came of sending a delivery once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendResult {
    /// The HTTP status, if one came back.
    pub status: Option<u16>,
    /// Why it is no success, if it is not.
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: u32,
}

impl SendResult {
    /// A 2xx came back.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// Whether the failure says the endpoint, not this one event, is in
    /// trouble (no answer, a timeout, 5xx, 408, 429): then its other
    /// deliveries wait too, and keep their order.
    #[must_use]
    pub fn endpoint_trouble(&self) -> bool {
        match self.status {
            None => true,
            Some(status) => status >= 500 || status == 408 || status == 429,
        }
    }
}

/// How an attempt ends for its delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx came back.
    Delivered,
    /// Tried again at this time.
    Retry(OffsetDateTime),
    /// Given up (retryable by hand).
    Failed,
}

/// When failed deliveries are tried again, and when the server gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait before the first retry; each next one about twice as long.
    pub base: Duration,
    /// The longest wait between two attempts.
    pub max_wait: Duration,
    /// How long after its event a delivery is still tried.
    pub give_up_after: Duration,
    /// How long an endpoint may fail without a success before it is
    /// turned off.
    pub disable_after: Duration,
}

impl RetryPolicy {
    /// Retries from `base`, for a day; endpoints off after three days.
    #[must_use]
    pub const fn new(base: Duration) -> Self {
        Self {
            base,
            max_wait: Duration::hours(6),
            give_up_after: Duration::hours(24),
            disable_after: Duration::days(3),
        }
    }

    /// The wait after the `attempts`-th failed attempt: `base` doubled
    /// per earlier attempt, capped, and spread by `jitter` (0 to 1) over
    /// ±20 % so that endpoints that failed together do not retry together.
    #[must_use]
    pub fn wait(&self, attempts: u32, jitter: f64) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        let wait = self
            .base
            .saturating_mul(2_i32.saturating_pow(doublings))
            .min(self.max_wait);
        wait * (0.8 + 0.4 * jitter.clamp(0.0, 1.0))
    }

    /// What a failed attempt at `now` of a delivery of an event at
    /// `event_at`, its `attempts`-th, leads to.
    #[must_use]
    pub fn after_failure(
        &self,
        event_at: OffsetDateTime,
        attempts: u32,
        now: OffsetDateTime,
        jitter: f64,
    ) -> AttemptOutcome {
        if now - event_at >= self.give_up_after {
            AttemptOutcome::Failed
        } else {
            AttemptOutcome::Retry(now + self.wait(attempts, jitter))
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn urls_need_https_a_host_and_no_credentials() {
        assert!(WebhookUrl::parse("https://hooks.example.com/in", false).is_ok());
        assert_eq!(
            WebhookUrl::parse("http://hooks.example.com/in", false),
            Err("URL must use https://")
        );
        assert!(WebhookUrl::parse("http://hooks.example.com/in", true).is_ok());
        assert!(WebhookUrl::parse("ftp://hooks.example.com/", true).is_err());
        assert!(WebhookUrl::parse("https://user:pw@hooks.example.com/", false).is_err());
        assert!(WebhookUrl::parse("https://hooks.example.com/#x", false).is_err());
        assert!(WebhookUrl::parse("/relative", false).is_err());
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert!(WebhookUrl::parse(&long, false).is_err());
    }

    #[test]
    fn filters_take_known_deliverable_types_or_a_lone_star() {
        assert_eq!(EventFilter::parse(&["*"]), Ok(EventFilter::All));
        assert!(EventFilter::parse(&["*", "user.created"]).is_err());
        assert!(EventFilter::parse::<&str>(&[]).is_err());
        assert!(EventFilter::parse(&["user.nope"]).is_err());
        assert!(EventFilter::parse(&["webhook.created"]).is_err());
        let filter = EventFilter::parse(&["user.created", "user.deleted", "user.created"]).unwrap();
        assert_eq!(filter.names(), ["user.created", "user.deleted"]);
        assert!(filter.matches(AuditKind::UserDeleted));
        assert!(!filter.matches(AuditKind::LoginFailed));
        assert!(!EventFilter::All.matches(AuditKind::WebhookTest));
        assert!(EventFilter::All.matches(AuditKind::LoginFailed));
    }

    #[test]
    fn waits_double_from_the_base_within_the_jitter_and_the_cap() {
        let policy = RetryPolicy::new(Duration::seconds(5));
        assert_eq!(policy.wait(1, 0.5), Duration::seconds(5));
        assert_eq!(policy.wait(2, 0.5), Duration::seconds(10));
        assert_eq!(policy.wait(3, 0.0), Duration::seconds(16));
        assert_eq!(policy.wait(3, 1.0), Duration::seconds(24));
        assert_eq!(policy.wait(40, 0.5), Duration::hours(6));
    }

    #[test]
    fn deliveries_are_tried_for_a_day_then_given_up() {
        let policy = RetryPolicy::new(Duration::seconds(5));
        let event_at = datetime!(2026-12-07 10:00 UTC);
        let early = event_at + Duration::minutes(1);
        assert_eq!(
            policy.after_failure(event_at, 1, early, 0.5),
            AttemptOutcome::Retry(early + Duration::seconds(5))
        );
        let late = event_at + Duration::hours(23);
        assert!(matches!(
            policy.after_failure(event_at, 14, late, 0.5),
            AttemptOutcome::Retry(_)
        ));
        let done = event_at + Duration::hours(24);
        assert_eq!(
            policy.after_failure(event_at, 15, done, 0.5),
            AttemptOutcome::Failed
        );
    }

    #[test]
    fn trouble_at_the_endpoint_is_no_answer_5xx_408_or_429() {
        let result = |status, error: Option<&str>| SendResult {
            status,
            error: error.map(str::to_owned),
            duration_ms: 1,
        };
        assert!(result(Some(204), None).succeeded());
        assert!(!result(Some(204), Some("body too large")).succeeded());
        assert!(result(None, Some("timeout")).endpoint_trouble());
        assert!(result(Some(503), Some("HTTP 503")).endpoint_trouble());
        assert!(result(Some(429), Some("HTTP 429")).endpoint_trouble());
        assert!(!result(Some(400), Some("HTTP 400")).endpoint_trouble());
    }
}
